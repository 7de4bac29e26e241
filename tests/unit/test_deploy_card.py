"""The deploy card says once, and truly, what happened to the values; a rollback goes to a deployment that differs."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bot.i18n import Translator
from bot.render.deploys import deploy_card, deployed_on
from bot.workflows.deploy import Progress, previous_deployment, running_revision

FR = Translator("fr")
UNCHANGED = "rien à commiter"
COMMITTED = "Valeurs commitées"


@pytest.mark.parametrize(
    ("progress", "shown", "hidden"),
    [
        pytest.param(Progress(), [], [UNCHANGED, COMMITTED], id="before-the-values-step"),
        pytest.param(Progress(values_written=True), [UNCHANGED], [COMMITTED], id="values-already-right"),
        pytest.param(
            Progress(values_written=True, committed="0a1b2c3d", commit_url="https://gitlab.example/-/commit/0a1b"),
            [COMMITTED, "[`0a1b2c3d`](https://gitlab.example/-/commit/0a1b)"],
            [UNCHANGED],
            id="committed",
        ),
        pytest.param(Progress(outcome="failed", message="ArgoCD"), [], [UNCHANGED, COMMITTED], id="failed-before"),
    ],
)
def test_the_values_line_appears_once_the_values_step_is_done(
    progress: Progress, shown: list[str], hidden: list[str]
) -> None:
    text = deploy_card("deploy", "alpha", "dev", "1.4.2", "@bob", "alpha-dev-deploy", "", progress, FR)["text"]
    assert all(s in text for s in shown), text
    assert not any(h in text for h in hidden), text


def _entry(id_: int, revision: str) -> dict[str, Any]:
    return {"id": id_, "revision": revision, "deployedAt": "2026-12-05T13:31:02Z"}


@pytest.mark.parametrize(
    ("history", "synced", "previous"),
    [
        pytest.param([_entry(0, "a"), _entry(1, "b")], "b", 0, id="the-entry-before"),
        pytest.param([_entry(0, "a"), _entry(1, "b"), _entry(2, "b")], "b", 0, id="a-resync-is-not-previous"),
        pytest.param([_entry(0, "a"), _entry(1, "a")], "a", None, id="only-the-running-revision"),
        pytest.param([_entry(0, "a"), _entry(1, "b")], "", 0, id="no-synced-revision-the-last-entry-runs"),
        pytest.param([], "", None, id="no-history"),
    ],
)
def test_the_previous_deployment_is_the_last_with_another_revision(
    history: list[dict[str, Any]], synced: str, previous: int | None
) -> None:
    application = {"status": {"history": history, "sync": {"revision": synced}}}
    assert previous_deployment(history, running_revision(application)) == previous


def test_a_history_date_is_shown_as_a_day_and_a_time_or_a_dash() -> None:
    assert re.fullmatch(r"\d\d/12/2026 \d\d:\d\d", deployed_on("2026-12-05T13:31:02Z"))
    assert deployed_on("") == deployed_on("hier") == "—"
