"""The Harbor adapter against the Harbor emulator on loopback.

Every exchange of every test is also checked against Harbor's own swagger (tests/contracts/specs/
harbor.json): what the adapter sends, and what the emulator answers.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import AsyncIterator, Iterator
from typing import cast

import pytest
from starlette.types import ASGIApp

from services.emulators.base import EmulatorServer
from services.emulators.harbor import State, create_app
from services.errors import Failure, ServiceError
from services.harbor import Harbor, repository_path
from services.health import Health, harbor_probe, run_probe
from services.registry import ContainerRegistry, RobotCredentials, robot_secret
from tests.contracts.openapi import Exchange, Spec
from tests.contracts.recorder import Recorder

ADMIN, PASSWORD = "admin", "Adm1nPassw0rd"


@pytest.fixture
def state() -> State:
    state = State(ADMIN, PASSWORD)
    state.add_user("alice", "Al1cePassw0rd")
    return state


@pytest.fixture
def exchanges() -> list[Exchange]:
    return []


@pytest.fixture
def server(state: State, exchanges: list[Exchange]) -> Iterator[EmulatorServer]:
    app = Recorder(create_app(state), "harbor", exchanges, threading.Lock())
    with EmulatorServer(cast(ASGIApp, app), name="harbor") as server:
        yield server
    spec = Spec("harbor")
    # What the fault switch answered (429, 5xx, before reading the body) is no exchange with Harbor.
    answered = [e for e in exchanges if e.status < 500 and e.status != 429]
    problems = sorted({p for e in answered for p in spec.check_request(e) + spec.check_response(e)})
    assert problems == [], "\n".join(problems)


@pytest.fixture
async def harbor(server: EmulatorServer) -> AsyncIterator[Harbor]:
    client = Harbor(server.url, ADMIN, PASSWORD, timeout=5.0, host="registry.cpn.example")
    yield client
    await client.close()


async def test_harbor_is_a_container_registry(harbor: Harbor) -> None:
    assert isinstance(harbor, ContainerRegistry)
    assert harbor.name == "Harbor" and harbor.host == "registry.cpn.example"
    assert harbor.ui_url("alpha") == f"{harbor.url}/harbor/projects"  # id not known yet
    await harbor.ensure_namespace("alpha")
    project_id = (await harbor.client.get("/api/v2.0/projects/alpha")).json()["project_id"]
    assert harbor.ui_url("alpha") == f"{harbor.url}/harbor/projects/{project_id}/repositories"
    assert harbor.ui_url("alpha", "a/b").endswith("/repositories/a%252Fb")


async def test_ensure_namespace_creates_a_private_project_then_is_idempotent(harbor: Harbor, state: State) -> None:
    first = await harbor.ensure_namespace("alpha")
    assert first.changed and first.value == "alpha" and "alpha" in first.what
    project = state.project("alpha")
    assert project is not None and project.metadata["public"] == "false"
    again = await harbor.ensure_namespace("alpha")
    assert not again.changed


async def test_a_project_name_harbor_refuses_is_invalid(harbor: Harbor) -> None:
    with pytest.raises(ServiceError) as err:
        await harbor.ensure_namespace("Alpha_")
    assert err.value.failure is Failure.INVALID


async def test_robots_are_project_robots_with_pull_or_push_rights(harbor: Harbor, state: State) -> None:
    await harbor.ensure_namespace("alpha")
    ro = await harbor.ensure_robot("alpha", "ro", write=False)
    rw = await harbor.ensure_robot("alpha", "rw", write=True)
    assert ro.changed and "created robot robot$alpha+ro" in ro.what
    assert ro.value.username == "robot$alpha+ro" and rw.value.username == "robot$alpha+rw"
    assert state.login_ok(ro.value.username, ro.value.token)
    assert state.login_ok(rw.value.username, rw.value.token)
    robot = state.robot("robot$alpha+rw")
    assert robot is not None
    assert robot.permissions == [
        {
            "kind": "project",
            "namespace": "alpha",
            "access": [
                {"resource": "repository", "action": "pull", "effect": "allow"},
                {"resource": "repository", "action": "push", "effect": "allow"},
            ],
        }
    ]
    assert robot.duration == -1  # never expires: the CI and the clusters keep using it


async def test_the_robot_secret_is_kept_across_replays(harbor: Harbor, state: State) -> None:
    await harbor.ensure_namespace("alpha")
    first = await harbor.ensure_robot("alpha", "rw", write=True)
    # A replay passes what Vault holds; Harbor cannot show the secret again, and must not change it.
    for _ in range(2):
        again = await harbor.ensure_robot("alpha", "rw", write=True, known=first.value)
        assert not again.changed and again.what == ""
        assert again.value == first.value
    assert state.login_ok(first.value.username, first.value.token)


async def test_a_robot_whose_secret_vault_lost_gets_a_new_one(harbor: Harbor, state: State) -> None:
    await harbor.ensure_namespace("alpha")
    first = await harbor.ensure_robot("alpha", "ro", write=False)
    renewed = await harbor.ensure_robot("alpha", "ro", write=False, known=None)
    assert renewed.changed and "new secret" in renewed.what
    assert renewed.value.token != first.value.token
    assert state.login_ok(renewed.value.username, renewed.value.token)
    assert not state.login_ok(first.value.username, first.value.token)
    other = RobotCredentials("robot$beta+ro", first.value.token)  # another robot's: not this one's
    assert (await harbor.ensure_robot("alpha", "ro", write=False, known=other)).changed


async def test_ensure_robot_fixes_rights_without_touching_the_secret(harbor: Harbor, state: State) -> None:
    await harbor.ensure_namespace("alpha")
    created = await harbor.ensure_robot("alpha", "ci", write=False)
    fixed = await harbor.ensure_robot("alpha", "ci", write=True, known=created.value)
    assert fixed.changed and "push/pull rights" in fixed.what
    assert fixed.value == created.value
    robot = state.robot("robot$alpha+ci")
    assert robot is not None
    assert {a["action"] for a in robot.permissions[0]["access"]} == {"pull", "push"}
    assert state.login_ok(created.value.username, created.value.token)


async def test_ensure_robot_in_a_missing_project(harbor: Harbor) -> None:
    with pytest.raises(ServiceError) as err:
        await harbor.ensure_robot("ghost", "ro", write=False)
    assert err.value.failure is Failure.NOT_FOUND


async def test_the_vault_payload_logs_in_to_harbor(harbor: Harbor) -> None:
    await harbor.ensure_namespace("alpha")
    creds = (await harbor.ensure_robot("alpha", "ro", write=False)).value
    payload = robot_secret(harbor, creds)
    assert payload["HOST"] == "registry.cpn.example" and payload["USERNAME"] == "robot$alpha+ro"
    auth = json.loads(payload["DOCKER_CONFIG"])["auths"]["registry.cpn.example"]["auth"]
    assert base64.b64decode(auth).decode() == f"robot$alpha+ro:{creds.token}"
    assert creds.token not in repr(creds)


async def test_tags_of_a_nested_repository_are_read_with_its_name_encoded_twice(
    harbor: Harbor, state: State, exchanges: list[Exchange]
) -> None:
    await harbor.ensure_namespace("alpha")
    old = state.push_image("alpha", "team/api", "1.0")
    new = state.push_image("alpha", "team/api", "1.1")
    state.push_image("alpha", "team/api", "latest", digest=new)
    tags = await harbor.tags("alpha", "team/api")
    assert tags[0].digest == new  # most recent first
    assert {(t.name, t.digest) for t in tags} == {("1.0", old), ("1.1", new), ("latest", new)}
    assert all(t.last_modified is not None and t.size for t in tags)
    assert repository_path("team/api") == "team%252Fapi"
    sent = [e for e in exchanges if "/artifacts" in e.path]
    # The recorder sees the path decoded once, as Harbor's router does: %252F arrives as %2F.
    assert sent and all("/repositories/team%2Fapi/artifacts" in e.path for e in sent)


async def test_tags_of_a_missing_repository(harbor: Harbor) -> None:
    await harbor.ensure_namespace("alpha")
    with pytest.raises(ServiceError) as err:
        await harbor.tags("alpha", "nothing")
    assert err.value.failure is Failure.NOT_FOUND


async def test_tags_span_several_pages(harbor: Harbor, state: State) -> None:
    await harbor.ensure_namespace("alpha")
    for n in range(105):
        state.push_image("alpha", "api", f"v{n}")
    assert len(await harbor.tags("alpha", "api")) == 105


async def test_members_are_added_updated_and_removed(harbor: Harbor, state: State) -> None:
    await harbor.ensure_namespace("alpha")
    added = await harbor.ensure_member("alpha", "alice", "developer")
    assert added.changed and added.value.role_id == 2
    assert not (await harbor.ensure_member("alpha", "alice", "developer")).changed
    promoted = await harbor.ensure_member("alpha", "alice", "maintainer")
    assert promoted.changed and promoted.value.role_id == 4
    members = {m.username: m.role_id for m in await harbor.members("alpha")}
    assert members == {"admin": 1, "alice": 4}
    assert await harbor.remove_member("alpha", "alice")
    assert not await harbor.remove_member("alpha", "alice")
    with pytest.raises(ServiceError) as err:
        await harbor.ensure_member("alpha", "nobody", "guest")
    assert err.value.failure is Failure.NOT_FOUND


async def test_delete_namespace_deletes_its_repositories_first(harbor: Harbor, state: State) -> None:
    await harbor.ensure_namespace("alpha")
    await harbor.ensure_robot("alpha", "ro", write=False)
    state.push_image("alpha", "api", "1.0")
    state.push_image("alpha", "team/web", "1.0")
    assert await harbor.delete_namespace("alpha")
    assert state.project("alpha") is None
    assert state.robot("robot$alpha+ro") is None  # Harbor deletes a project's robots with it
    assert not await harbor.delete_namespace("alpha")


async def test_health_reports_each_component(harbor: Harbor, state: State) -> None:
    assert (await harbor.health())["status"] == "healthy"
    state.set_component_health("trivy", healthy=False, message="trivy adapter unreachable")
    health = await harbor.health()
    assert health["status"] == "unhealthy"
    assert {"name": "trivy", "status": "unhealthy", "error": "trivy adapter unreachable"} in health["components"]


async def test_wrong_credentials_are_unauthorized(server: EmulatorServer) -> None:
    client = Harbor(server.url, ADMIN, "wrong-password")
    try:
        with pytest.raises(ServiceError) as err:
            await client.ensure_namespace("alpha")
        assert err.value.failure is Failure.UNAUTHORIZED
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("fault", "failure"),
    [("down", Failure.UNAVAILABLE), ("POST /api/v2.0/robots", Failure.UNAVAILABLE), ("429", Failure.RATE_LIMITED)],
)
async def test_the_fault_switch_makes_the_adapter_fail_as_in_an_outage(
    harbor: Harbor, state: State, fault: str, failure: Failure
) -> None:
    await harbor.ensure_namespace("alpha")
    if fault == "down":
        state.faults.down = True
    elif fault == "429":
        state.faults.fail("GET /api/v2.0/projects/*", 429, times=1, headers={"Retry-After": "2"})
    else:
        state.faults.fail(f"{fault}", 500, times=1)
    with pytest.raises(ServiceError) as err:
        await harbor.ensure_robot("alpha", "ro", write=False)
    assert err.value.failure is failure
    state.faults.clear()
    assert (await harbor.ensure_robot("alpha", "ro", write=False)).changed  # it recovers


@pytest.mark.parametrize(
    ("setup", "health", "detail"),
    [
        ("", Health.OK, ""),
        ("trivy", Health.DEGRADED, "unhealthy: trivy"),
        ("database", Health.FAILING, "unhealthy: database"),
        ("password", Health.FAILING, "credentials: credentials refused (401)"),
    ],
)
async def test_check_config_reaches_harbor_health_and_credentials(
    server: EmulatorServer, state: State, setup: str, health: Health, detail: str
) -> None:
    if setup == "password":
        probe = harbor_probe(server.url, ADMIN, "not-the-password")
    else:
        if setup:
            state.set_component_health(setup, healthy=False)
        probe = harbor_probe(server.url, ADMIN, PASSWORD)
    check = await run_probe("Harbor", probe)
    assert (check.health, check.detail) == (health, detail)


async def test_the_scan_webhook_policy_is_created_once_then_set_right(harbor: Harbor, state: State) -> None:
    await harbor.ensure_namespace("alpha")
    url = "http://bot.example/hooks/harbor"
    first = await harbor.ensure_scan_hook("alpha", url, "s3cret")
    assert first.changed and "s3cret" not in first.what
    assert not (await harbor.ensure_scan_hook("alpha", url, "s3cret")).changed
    changed = await harbor.ensure_scan_hook("alpha", url, "rotated")  # a new signing key: the same policy, updated
    assert changed.changed and "updated" in changed.what
    project = state.project("alpha")
    assert project is not None and len(project.webhooks) == 1
    policy = project.webhooks[0]
    assert policy.name == "cpn-bot" and policy.enabled
    assert policy.targets == [
        {"type": "http", "address": url, "auth_header": "Bearer rotated", "skip_cert_verify": False}
    ]
    assert policy.event_types == ["PUSH_ARTIFACT", "SCANNING_COMPLETED", "SCANNING_FAILED"]
