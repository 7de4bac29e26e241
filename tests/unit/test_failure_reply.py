"""A failed job's reply fits in one Mattermost post and keeps the end of the log."""

from __future__ import annotations

import pytest

from bot.i18n import Lang, Translator
from bot.render.pipelines import MAX_POST_RUNES, TRACE_LINE_RUNES, failure_reply
from bot.workflows.pipelines import JobState

JOB = JobState(id=7, name="build", stage="build", status="failed", url="https://gitlab.example/j/7")
LAST = "ERREUR FINALE: exit 1"
LOGS = {
    "one enormous line": "début\n" + "é" * 40000 + "\n" + LAST,
    "many long lines": "\n".join([*("x" * 2000 for _ in range(39)), LAST]),
    "thousands of lines": "\n".join([*(f"ligne {i}" for i in range(5000)), LAST]),
    "a last line that is enormous": "début\n" + "y" * 30000 + LAST,
}


@pytest.mark.parametrize("lang", ["fr", "en"])
@pytest.mark.parametrize("log", LOGS.values(), ids=LOGS.keys())
def test_the_reply_fits_in_a_post_and_ends_with_the_logs_end(lang: Lang, log: str) -> None:
    message = failure_reply(JOB, log, Translator(lang))
    assert len(message) <= MAX_POST_RUNES  # runes: Python counts code points, like utf8.RuneCount
    body = message.split("```\n", 1)[1].removesuffix("\n```")
    assert body.endswith(LAST)
    assert all(len(line) <= TRACE_LINE_RUNES for line in body.splitlines())


@pytest.mark.parametrize(("lang", "note"), [("fr", "… 4961 lignes plus haut"), ("en", "… 4961 more lines above")])
def test_cut_lines_are_announced(lang: Lang, note: str) -> None:
    message = failure_reply(JOB, LOGS["thousands of lines"], Translator(lang))
    assert note in message.splitlines()


def test_a_short_log_is_shown_whole() -> None:
    message = failure_reply(JOB, "a\nb\nc", Translator("fr"))
    assert message.endswith("```\na\nb\nc\n```") and "plus haut" not in message
