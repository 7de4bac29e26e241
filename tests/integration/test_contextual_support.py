"""Support that looks at the asker's project, from the user's side (issue 14, item 4).

In ~equipe-alpha, linked to bob's project alpha (an application repository synchronised from GitHub,
an infrastructure repository, an environment dev), each failure the sandbox plays is met as the team
meets it, then asked about with ``/cpn ask`` as Mattermost sends it. The scenarios and what a right
answer holds are bench/bench_contextual.py's, which measures the same over every held-out question.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench import bench_contextual as ctx
from bot.intents import DEPLOY_FAILURE, PIPELINE_FAILURE, PROJECT_STATUS
from bot.sandbox.world import World
from tests.support.mattermost import User

QUESTION = {
    PIPELINE_FAILURE: "pourquoi mon pipeline a échoué ?",
    DEPLOY_FAILURE: "pourquoi mon déploiement est en échec ?",
    PROJECT_STATUS: "où en est mon projet ?",
}


@pytest.fixture(scope="module")
def project() -> Iterator[World]:
    world = ctx.project_world()
    try:
        yield world
    finally:
        world.stop()


def ask(world: World, question: str, channel: str = "equipe-alpha") -> dict[str, object]:
    return User(world, "bob").run(f"/cpn ask {question}", channel=channel)


@pytest.mark.parametrize("scenario", ctx.SCENARIOS, ids=[s.name for s in ctx.SCENARIOS])
def test_the_answer_comes_from_the_project_itself(project: World, scenario: ctx.Scenario) -> None:
    ctx.play(project, scenario)
    answer = ask(project, QUESTION[scenario.intent])
    assert answer["response_type"] == "ephemeral"  # a question asked alone is answered alone
    assert ctx.judge(project, scenario, answer) == ""


def test_a_failed_job_shows_the_end_of_its_log_masked_and_in_french(project: World) -> None:
    ctx.play(project, ctx.SCENARIOS[0])
    card = ask(project, "why did my build fail?")["attachments"][0]  # type: ignore[index]
    assert card["title"].startswith("🔴 alpha / api — pipeline #") and card["title_link"].endswith(
        tuple(f"/pipelines/{n}" for n in range(1, 100))
    )
    assert "glpat-***" in card["text"] and ctx.UNMASKED not in card["text"]
    assert "ERROR: Job failed: exit code 1" in card["text"]


def test_a_degraded_application_is_told_in_french(project: World) -> None:
    ctx.play(project, next(s for s in ctx.SCENARIOS if s.argocd == "degraded"))
    text = str(ask(project, "mon appli est degraded dans argo, qu'est-ce qui se passe ?")["attachments"][0]["text"])  # type: ignore[index]
    assert "santé : 💔 dégradé" in text and "synchronisation : synchronisé" in text
    assert "Degraded" not in text.split("—", 1)[1].split("\n", 1)[0]  # the state is not ArgoCD's raw word
    assert f"- Deployment/{ctx.APP} : 💔 dégradé — " in text


def test_without_a_linked_project_the_knowledge_base_answers(project: World) -> None:
    answer = ask(project, "pourquoi mon pipeline a échoué ?", channel="equipe-beta")
    card = answer["attachments"][0]  # type: ignore[index]
    assert card["title"].startswith("📘 ")  # an article
    assert "alpha" not in str(answer) and "pipeline #" not in str(answer)


def test_with_every_pipeline_green_it_says_so(project: World) -> None:
    ctx.play(project, ctx.Scenario("all green", PIPELINE_FAILURE, "success"))
    answer = ask(project, "pourquoi mon pipeline a échoué ?")
    shown = str(answer.get("attachments") or answer.get("text"))
    assert "Aucun pipeline en échec sur alpha" in shown
