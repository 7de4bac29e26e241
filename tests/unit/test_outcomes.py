"""The worst of a thread: ranked outcomes, and the top-level card that carries it."""

from __future__ import annotations

import pytest

from bot.i18n import Lang, Translator
from bot.render.pipelines import pipeline_card
from bot.workflows.outcomes import (
    RANKED,
    Outcome,
    Result,
    bad,
    gate_outcome,
    pipeline_outcome,
    scan_outcome,
    worst,
)
from bot.workflows.pipelines import PipelineState

SYNC_OK = Result("sync", "ok")


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ([], None),
        ([SYNC_OK], SYNC_OK),
        ([SYNC_OK, Result("build", "running")], Result("build", "running")),
        ([SYNC_OK, Result("build", "ok"), Result("quality", "warn")], Result("quality", "warn")),
        (
            [SYNC_OK, Result("build", "failed", ("trivy",)), Result("quality", "failed"), Result("scan", "ok")],
            Result("build", "failed", ("trivy",)),  # between equals, the first given
        ),
        ([SYNC_OK, Result("quality", "warn"), Result("scan", "failed")], Result("scan", "failed")),
    ],
)
def test_the_worst_result_wins_and_the_first_wins_among_equals(results: list[Result], expected: Result | None) -> None:
    assert worst(results) == expected


def test_outcomes_are_ranked_ok_running_warn_failed() -> None:
    for i in range(1, len(RANKED)):
        lower, higher = RANKED[i - 1], RANKED[i]
        assert worst([Result("scan", higher), Result("build", lower)]) == Result("scan", higher)
    assert RANKED == ("ok", "running", "warn", "failed")


def test_the_first_line_lists_failures_then_warnings() -> None:
    results = [SYNC_OK, Result("quality", "warn"), Result("build", "failed"), Result("scan", "failed")]
    assert bad(results) == [Result("build", "failed"), Result("scan", "failed"), Result("quality", "warn")]


@pytest.mark.parametrize(
    ("read", "value", "expected"),
    [
        (pipeline_outcome, "success", "ok"),
        (pipeline_outcome, "failed", "failed"),
        (pipeline_outcome, "canceled", "warn"),
        (pipeline_outcome, "running", "running"),
        (pipeline_outcome, "manual", "running"),
        (gate_outcome, "OK", "ok"),
        (gate_outcome, "WARN", "warn"),
        (gate_outcome, "ERROR", "failed"),
        (scan_outcome, "ok", "ok"),
        (scan_outcome, "warn", "ok"),  # findings within the policy are not the thread's failure
        (scan_outcome, "fail", "failed"),
    ],
)
def test_each_source_reads_as_an_outcome(read: object, value: str, expected: Outcome) -> None:
    assert callable(read) and read(value) == expected


def _sync(status: str = "success") -> PipelineState:
    return PipelineState(
        key="9:1",
        project_id=1,
        repo="mirror",
        gitlab_project_id=9,
        pipeline_id=1,
        status=status,
        variables={"PROJECT_NAME": "api", "GIT_BRANCH_DEPLOY": "main"},
    )


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_a_green_sync_over_a_failed_build_is_a_red_card(lang: Lang) -> None:
    tr = Translator(lang)
    thread = [SYNC_OK, Result("build", "failed", ("trivy",)), Result("quality", "failed")]
    card = pipeline_card(_sync(), "alpha", tr, thread)
    assert card["title"].startswith("❌ alpha") and "`trivy`" in card["title"]
    assert card["color"] == "#CE0500"
    assert card["text"].splitlines()[0].count("❌") == 2
    alone = pipeline_card(_sync(), "alpha", tr, [SYNC_OK, Result("build", "ok"), Result("quality", "ok")])
    assert alone == pipeline_card(_sync(), "alpha", tr)  # all green: the card as it always was
