"""The deploy card says once, and truly, what happened to the infra repository's values."""

from __future__ import annotations

import pytest

from bot.i18n import Translator
from bot.render.deploys import deploy_card
from bot.workflows.deploy import Progress

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
