"""The bot's requests and the emulators' responses, checked against the real services' specs.

Mattermost and Argo CD cannot run here: their official API specifications (vendored under
specs/, see SOURCES.md) stand in for them. A few end-to-end scenarios run in a world whose
emulators record every exchange; each is then checked against the spec.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.sandbox.world import Timings
from tests.conftest import wait_for
from tests.contracts.openapi import Spec
from tests.contracts.recorder import RecordedWorld
from tests.support import platform as svc
from tests.support.mattermost import User

INFRA = "forge/projects/alpha/deploy"
EXERCISED = {
    "mattermost": {
        "POST /api/v4/posts",
        "PUT /api/v4/posts/{post_id}/patch",
        "GET /api/v4/users/{user_id}",
        "POST /api/v4/actions/dialogs/open",
    },
    "argocd": {
        "POST /api/v1/session",
        "POST /api/v1/projects",
        "GET /api/v1/projects/{name}",
        "POST /api/v1/applications",
        "GET /api/v1/applications/{name}",
        "POST /api/v1/applications/{name}/sync",
    },
}


@pytest.fixture(scope="module")
def toured() -> Iterator[RecordedWorld]:
    """Onboarding, repositories, a sync and its pipeline cards, a deploy to dev, a prod confirmation."""
    world = RecordedWorld.create(timings=Timings(pipeline_step=0.005, argocd_step=0.02, reply_budget=2.5))
    assert isinstance(world, RecordedWorld)
    world.start()
    try:
        bob = User(world, "bob")
        bob.run("/cpn project create alpha")
        world.wait_idle(30)
        bob.run("/cpn member add alpha @carol --role devops")
        bob.run("/cpn repo add alpha api --url https://github.com/ministere/api.git")
        bob.run("/cpn repo add alpha deploy --url https://github.com/ministere/deploy.git --infra")
        bob.run("/cpn repo add alpha lib --url https://gitlab.com/ministere/lib.git --private")
        svc.submit_dialog(world, "bob", {"username": "reader", "token": "glpat-contract-test-token-0001"})
        bob.run("/cpn env add alpha dev --stage dev")
        bob.run("/cpn env add alpha prod --stage prod")
        wait_for(
            lambda: world.states["gitlab"].quiet and len(world.states["gitlab"].pipelines_of(INFRA)) >= 1,
            timeout=30,
            what="the first builds",
        )
        world.wait_idle(30)
        bob.run("/cpn sync alpha api --branch main")
        wait_for(lambda: world.states["gitlab"].quiet, timeout=30, what="the sync")
        world.wait_idle(30)
        User(world, "carol").run("/cpn deploy alpha dev --image-tag 1.4.2")
        for name in list(world.states["argocd"].apps):
            world.states["argocd"].wait_idle(name, timeout=10)
        world.wait_idle(30)
        User(world, "carol").run("/cpn deploy alpha prod --image-tag 1.4.2")
        svc.press_ephemeral(world, "carol", "Confirmer")
        for name in list(world.states["argocd"].apps):
            world.states["argocd"].wait_idle(name, timeout=10)
        world.wait_idle(30)
        yield world
    finally:
        world.stop()


@pytest.mark.parametrize("service", ["mattermost", "argocd"])
def test_every_request_the_adapter_sends_is_one_the_spec_accepts(toured: RecordedWorld, service: str) -> None:
    spec = Spec(service)
    exchanges = toured.bot_exchanges(service)
    used = {f"{e.method} {op.template}" for e in exchanges if (op := spec.operation(e.method, e.path))}
    assert EXERCISED[service] <= used, used  # the scenarios did reach what they are meant to check
    problems = sorted({p for e in exchanges for p in spec.check_request(e)})
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("service", ["mattermost", "argocd"])
def test_every_response_the_emulator_returns_is_one_the_spec_declares(toured: RecordedWorld, service: str) -> None:
    spec = Spec(service)
    problems = sorted({p for e in toured.bot_exchanges(service) for p in spec.check_response(e)})
    assert problems == [], "\n".join(problems)
