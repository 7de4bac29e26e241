"""The bot's requests and the emulators' responses, checked against the real services' specs.

Mattermost, Argo CD and Harbor cannot run here: their official API specifications (vendored under
specs/, see SOURCES.md) stand in for them. A few end-to-end scenarios run in a world whose
emulators record every exchange; each is then checked against the spec.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.sandbox.world import Timings
from services.emulators.harbor import State as HarborState
from services.errors import ServiceError
from services.harbor import Harbor
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
    "harbor": {
        "GET /projects/{project_name_or_id}",
        "POST /projects",
        "DELETE /projects/{project_name_or_id}",
        "DELETE /projects/{project_name}/repositories/{repository_name}",
        "GET /projects/{project_name}/repositories",
        "GET /robots",
        "POST /robots",
        "PATCH /robots/{robot_id}",
        "GET /projects/{project_name_or_id}/members",
        "POST /projects/{project_name_or_id}/members",
        "PUT /projects/{project_name_or_id}/members/{mid}",
        "DELETE /projects/{project_name_or_id}/members/{mid}",
        "GET /projects/{project_name}/repositories/{repository_name}/artifacts",
        "GET /projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/additions/vulnerabilities",
        "GET /projects/{project_name_or_id}/webhook/policies",
        "POST /projects/{project_name_or_id}/webhook/policies",
        "PUT /projects/{project_name_or_id}/webhook/policies/{webhook_policy_id}",
        "GET /health",
    },
}
SERVICES = sorted(EXERCISED)


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


async def harbor_adapter_tour(harbor: Harbor, state: HarborState) -> None:
    """Every call of the Harbor adapter, each way it can go (create, already there, set right, refused)."""
    await harbor.ensure_namespace("tour")  # POST /projects
    await harbor.ensure_robot("tour", "ci", write=True)  # GET then POST /robots
    await harbor.ensure_robot("tour", "ci", write=False)  # PUT rights, PATCH a new secret
    state.add_user("dana", "Dana-pass-1234")
    await harbor.ensure_member("tour", "dana", "developer")  # POST member
    await harbor.ensure_member("tour", "dana", "maintainer")  # PUT member
    await harbor.remove_member("tour", "dana")  # DELETE member
    with pytest.raises(ServiceError):
        await harbor.ensure_member("tour", "nobody", "guest")  # Harbor's 404: no such user
    state.push_image("tour", "team/web", "1.0")
    await harbor.repositories("tour")
    (tag,) = await harbor.tags("tour", "team/web")
    await harbor.vulnerabilities("tour", "team/web", tag.digest)
    with pytest.raises(ServiceError):
        await harbor.vulnerabilities("tour", "team/web", "sha256:" + "0" * 64)
    await harbor.ensure_scan_hook("tour", "http://bot.local/hooks/harbor", "first-secret")  # POST policy
    await harbor.ensure_scan_hook("tour", "http://bot.local/hooks/harbor", "first-secret")  # as wanted
    await harbor.ensure_scan_hook("tour", "http://bot.local/hooks/harbor", "other-secret")  # PUT policy
    await harbor.health()
    await harbor.delete_namespace("tour")


@pytest.fixture(scope="module")
def harbor_toured() -> Iterator[RecordedWorld]:
    """Onboarding on Harbor (project, robots, scan webhook), a scan report fetched, then the adapter's tour."""
    world = RecordedWorld.create(timings=Timings.fast(), config_overrides={"platform": {"registry": "harbor"}})
    assert isinstance(world, RecordedWorld)
    world.start()
    try:
        User(world, "bob").run("/cpn project create alpha")
        world.wait_idle(30)
        state: HarborState = world.states["harbor"]
        digest = state.push_image("alpha", "api", "1.0")
        state.scan("alpha", "api", digest, [{"id": "CVE-2026-0001", "package": "openssl", "severity": "High"}])
        assert all(d.status == 202 for d in state.wait_deliveries())
        world.wait_idle(30)
        assert world.bot is not None and isinstance(world.bot.platform.registry, Harbor)
        world.run(harbor_adapter_tour(world.bot.platform.registry, state))
        yield world
    finally:
        world.stop()


def recorded(request: pytest.FixtureRequest, service: str) -> RecordedWorld:
    world: RecordedWorld = request.getfixturevalue("harbor_toured" if service == "harbor" else "toured")
    return world


@pytest.mark.parametrize("service", SERVICES)
def test_every_request_the_adapter_sends_is_one_the_spec_accepts(request: pytest.FixtureRequest, service: str) -> None:
    spec = Spec(service)
    exchanges = recorded(request, service).bot_exchanges(service)
    used = {f"{e.method} {op.template}" for e in exchanges if (op := spec.operation(e.method, e.path))}
    assert EXERCISED[service] <= used, used  # the scenarios did reach what they are meant to check
    problems = sorted({p for e in exchanges for p in spec.check_request(e)})
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("service", SERVICES)
def test_every_response_the_emulator_returns_is_one_the_spec_declares(
    request: pytest.FixtureRequest, service: str
) -> None:
    spec = Spec(service)
    problems = sorted({p for e in recorded(request, service).bot_exchanges(service) for p in spec.check_response(e)})
    assert problems == [], "\n".join(problems)
