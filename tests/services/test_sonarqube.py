"""The SonarQube adapter against the SonarQube emulator on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from services.emulators.base import EmulatorServer
from services.emulators.sonarqube import State, create_app
from services.errors import Failure, ServiceError
from services.health import Health, Probe, sonarqube_probe
from services.sonarqube import SonarQube

ADMIN_TOKEN = "squ_admin_token_for_tests"
HOOK_SECRET = "webhook-Secret-123"


class PermissionsUsers:
    """``GET /api/permissions/users`` (missing from the emulator) answered from its state, as
    SonarQube shapes it, to exercise the adapter's read-before-grant path."""

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/api/permissions/users" and not self.state.faults.down:
            params = Request(scope).query_params
            project = self.state.project(params["projectKey"])
            if project is None:
                response = JSONResponse({"errors": [{"msg": "Project key not found"}]}, status_code=404)
            else:
                users: list[dict[str, Any]] = [
                    {"login": login, "name": login, "permissions": sorted(perms)}
                    for login, perms in project.permissions.items()
                    if perms and params.get("q", "") in login
                ]
                response = JSONResponse(
                    {"paging": {"pageIndex": 1, "pageSize": 100, "total": len(users)}, "users": users}
                )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


@pytest.fixture
def state() -> State:
    return State(ADMIN_TOKEN)


@pytest.fixture
def server(state: State) -> Iterator[EmulatorServer]:
    with EmulatorServer(create_app(state), name="sonarqube") as server:
        yield server


@pytest.fixture
async def sonar(server: EmulatorServer) -> AsyncIterator[SonarQube]:
    client = SonarQube(server.url, ADMIN_TOKEN, timeout=5.0)
    yield client
    await client.close()


async def test_ensure_user_and_token(sonar: SonarQube, state: State) -> None:
    created = await sonar.ensure_user("alpha", "Projet alpha", email="alpha@example.fr")
    assert created.changed and created.what == "created SonarQube user alpha"
    user = state.user("alpha")
    assert user is not None and user.local and user.active and user.email == "alpha@example.fr"
    assert user.password and user.password not in created.what
    assert not (await sonar.ensure_user("alpha", "Projet alpha")).changed

    token = await sonar.generate_token("alpha", "cpn-bot")
    assert state.login_for_token(token) == "alpha"
    second = await sonar.generate_token("alpha", "cpn-bot")  # the old token of that name is revoked
    assert second != token
    assert state.login_for_token(token) is None and state.login_for_token(second) == "alpha"
    assert state.token_names("alpha") == ["cpn-bot"]


async def test_deactivate_then_recreate_user(sonar: SonarQube, state: State) -> None:
    await sonar.ensure_user("alpha", "Projet alpha")
    assert await sonar.deactivate_user("alpha") is True
    user = state.user("alpha")
    assert user is not None and not user.active
    assert await sonar.deactivate_user("alpha") is False
    assert (await sonar.ensure_user("alpha", "Projet alpha")).changed  # reactivated
    user = state.user("alpha")
    assert user is not None and user.active


async def test_ensure_project(sonar: SonarQube, state: State) -> None:
    created = await sonar.ensure_project("alpha-api", "alpha-api")
    assert created.changed and "alpha-api" in created.what
    project = state.project("alpha-api")
    assert project is not None and project.visibility == "private" and project.main_branch == "main"
    assert not (await sonar.ensure_project("alpha-api", "alpha-api")).changed
    assert await sonar.delete_project("alpha-api") is True
    assert state.project("alpha-api") is None
    assert await sonar.delete_project("alpha-api") is False


async def test_ensure_user_permissions_without_read_api(sonar: SonarQube, state: State) -> None:
    """The emulator has no ``api/permissions/users``: every grant is sent (idempotent server-side)."""
    await sonar.ensure_user("alpha", "Projet alpha")
    await sonar.ensure_project("alpha-api", "alpha-api")
    result = await sonar.ensure_user_permissions("alpha", "alpha-api")
    assert result.changed
    assert state.project_permissions("alpha-api", "alpha") == {"user", "codeviewer", "scan"}


async def test_ensure_user_permissions_reads_first(state: State) -> None:
    with EmulatorServer(PermissionsUsers(create_app(state), state), name="sonarqube+") as server:
        sonar = SonarQube(server.url, ADMIN_TOKEN, timeout=5.0)
        await sonar.ensure_user("alpha", "Projet alpha")
        await sonar.ensure_project("alpha-api", "alpha-api")
        state.grant("alpha", "user", "alpha-api")
        result = await sonar.ensure_user_permissions("alpha", "alpha-api")
        assert result.changed and result.what == "granted codeviewer, scan on alpha-api to alpha"
        assert state.project_permissions("alpha-api", "alpha") == {"user", "codeviewer", "scan"}
        again = await sonar.ensure_user_permissions("alpha", "alpha-api")
        assert not again.changed
        with pytest.raises(ServiceError) as err:
            await sonar.ensure_user_permissions("alpha", "ghost")
        assert err.value.failure is Failure.NOT_FOUND
        await sonar.close()


async def test_ensure_webhook(sonar: SonarQube, state: State) -> None:
    await sonar.ensure_project("alpha-api", "alpha-api")
    url = "http://127.0.0.1:8065/hooks/sonarqube"
    created = await sonar.ensure_webhook("alpha-api", "cpn-bot", url, HOOK_SECRET)
    assert created.changed and HOOK_SECRET not in created.what
    hooks = state.webhooks_of("alpha-api")
    assert [(h.key, h.name, h.url, h.secret) for h in hooks] == [(created.value, "cpn-bot", url, HOOK_SECRET)]

    kept = await sonar.ensure_webhook("alpha-api", "cpn-bot", url, "another-secret")
    assert not kept.changed and kept.value == created.value  # the secret cannot be compared

    forced = await sonar.ensure_webhook("alpha-api", "cpn-bot", url, "another-secret", force=True)
    assert forced.changed and forced.value != created.value and "another-secret" not in forced.what
    assert [h.secret for h in state.webhooks_of("alpha-api")] == ["another-secret"]

    moved = await sonar.ensure_webhook("alpha-api", "cpn-bot", url + "/v2", HOOK_SECRET)
    assert moved.changed and "replaced" in moved.what
    assert [h.url for h in state.webhooks_of("alpha-api")] == [url + "/v2"]


async def test_quality_gate_and_measures(sonar: SonarQube, state: State) -> None:
    await sonar.ensure_project("alpha-api", "alpha-api")
    assert (await sonar.quality_gate("alpha-api"))["status"] == "NONE"
    state.run_analysis("alpha-api", outcome="failed")
    state.run_analysis("alpha-api", branch="feature/x", outcome="passed")
    gate = await sonar.quality_gate("alpha-api")
    assert gate["status"] == "ERROR" and gate["conditions"]
    assert (await sonar.quality_gate("alpha-api", branch="feature/x"))["status"] == "OK"
    values = await sonar.measures("alpha-api", ["coverage", "new_coverage", "bugs", "alert_status"])
    assert values == {"coverage": "61.0", "new_coverage": "42.5", "bugs": "3", "alert_status": "ERROR"}
    branch = await sonar.measures("alpha-api", ["new_coverage"], branch="feature/x")
    assert branch == {"new_coverage": "87.5"}
    with pytest.raises(ServiceError) as err:
        await sonar.quality_gate("ghost")
    assert err.value.failure is Failure.NOT_FOUND


async def test_ui_url(server: EmulatorServer) -> None:
    sonar = SonarQube(server.url + "/", ADMIN_TOKEN)
    await sonar.close()
    assert sonar.ui_url("alpha-api") == f"{server.url}/dashboard?id=alpha-api"
    assert sonar.ui_url("alpha-api", "feature/x") == f"{server.url}/dashboard?id=alpha-api&branch=feature%2Fx"


async def test_down_is_unavailable(sonar: SonarQube, state: State) -> None:
    state.faults.down = True
    with pytest.raises(ServiceError) as err:
        await sonar.ensure_project("alpha-api", "alpha-api")
    assert err.value.failure is Failure.UNAVAILABLE


async def test_bad_token_and_missing_rights(server: EmulatorServer, state: State) -> None:
    bad = SonarQube(server.url, "squ_wrong")
    with pytest.raises(ServiceError) as err:
        await bad.ensure_user("alpha", "Projet alpha")
    await bad.close()
    assert err.value.failure is Failure.UNAUTHORIZED
    assert "squ_wrong" not in str(err.value) and "squ_wrong" not in err.value.detail

    state.add_user("dev", "Dev")
    dev_token = state.add_token("dev", "t")
    dev = SonarQube(server.url, dev_token)
    with pytest.raises(ServiceError) as err:
        await dev.ensure_user("alpha", "Projet alpha")
    await dev.close()
    assert err.value.failure is Failure.FORBIDDEN
    assert dev_token not in str(err.value)


async def test_invalid_input_is_invalid(sonar: SonarQube) -> None:
    with pytest.raises(ServiceError) as err:
        await sonar.ensure_project("bad key!", "x")
    assert err.value.failure is Failure.INVALID and err.value.detail == "cannot create project bad key!"


@pytest.mark.parametrize("version", ["9.9.8.100196", "10.7.0.96327"])
async def test_the_health_probe_is_accepted_by_9_9_lts_and_10(
    server: EmulatorServer, state: State, version: str
) -> None:
    state.version = version
    health, detail = await run_probe_once(sonarqube_probe(server.url, ADMIN_TOKEN))
    assert (health, detail) == (Health.OK, "")


@pytest.mark.parametrize("version", ["9.9.8.100196", "10.7.0.96327"])
async def test_the_adapter_is_accepted_by_9_9_lts_and_10(server: EmulatorServer, state: State, version: str) -> None:
    state.version = version
    client = SonarQube(server.url, ADMIN_TOKEN, timeout=5.0)
    try:
        assert (await client.ensure_user("alpha", "Projet alpha")).changed
        assert (await client.ensure_project("alpha-api", "alpha-api")).changed
    finally:
        await client.close()


async def run_probe_once(probe: Probe) -> tuple[Health, str]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        return await probe(client)
