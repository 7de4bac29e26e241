"""The Quay adapter against the Quay emulator on loopback."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from services.emulators.base import EmulatorServer
from services.emulators.quay import State, create_app
from services.errors import Failure, ServiceError
from services.quay import Quay
from services.registry import ContainerRegistry, RobotCredentials, robot_secret

ADMIN = "quay-admin-oauth-token"
ALICE = "quay-alice-oauth-token"


@pytest.fixture
def state() -> State:
    state = State()
    state.add_token(ADMIN, superuser=True)
    state.add_token(ALICE, superuser=False, username="alice")
    return state


@pytest.fixture
def server(state: State) -> Iterator[EmulatorServer]:
    with EmulatorServer(create_app(state), name="quay") as server:
        yield server


@pytest.fixture
async def quay(server: EmulatorServer) -> AsyncIterator[Quay]:
    client = Quay(server.url, ADMIN, timeout=5.0, host="registry.cpn.example")
    yield client
    await client.close()


async def test_quay_is_a_container_registry(server: EmulatorServer) -> None:
    client = Quay(server.url + "/", ADMIN)
    await client.close()
    assert isinstance(client, ContainerRegistry)
    assert client.name == "Quay"
    assert client.host == f"127.0.0.1:{server.port}"
    assert client.ui_url("alpha") == f"{server.url}/organization/alpha"
    assert client.ui_url("alpha", "api") == f"{server.url}/repository/alpha/api"


async def test_ensure_namespace_creates_then_is_idempotent(quay: Quay, state: State) -> None:
    first = await quay.ensure_namespace("alpha")
    assert first.value == "alpha" and first.changed and "alpha" in first.what
    assert state.organization("alpha") is not None
    again = await quay.ensure_namespace("alpha")
    assert not again.changed and again.value == "alpha"


async def test_ensure_namespace_refused_name(quay: Quay, state: State) -> None:
    state.add_user("bob")  # a user already holds the name
    with pytest.raises(ServiceError) as err:
        await quay.ensure_namespace("bob")
    assert err.value.failure is Failure.INVALID


async def test_robots_cover_present_and_future_repositories(quay: Quay, state: State) -> None:
    await quay.ensure_namespace("alpha")
    state.push_image("alpha", "existing", "v1")  # pushed before the robots exist

    ro = await quay.ensure_robot("alpha", "ro", write=False)
    rw = await quay.ensure_robot("alpha", "rw", write=True)
    assert ro.changed and "created robot alpha+ro" in ro.what
    assert ro.value.username == "alpha+ro"
    assert ro.value.token == state.robot_token("alpha", "ro")
    assert rw.value.token == state.robot_token("alpha", "rw")

    existing = state.repository("alpha", "existing")
    assert existing is not None
    assert existing.permissions["alpha+ro"] == "read"
    assert existing.permissions["alpha+rw"] == "write"

    state.push_image("alpha", "future", "v1")  # a new repository gets the default permissions
    future = state.repository("alpha", "future")
    assert future is not None
    assert future.permissions["alpha+ro"] == "read"
    assert future.permissions["alpha+rw"] == "write"

    again = await quay.ensure_robot("alpha", "rw", write=True)
    assert not again.changed and again.what == ""
    assert again.value == rw.value  # same token: not regenerated


async def test_ensure_robot_fixes_a_wrong_role(quay: Quay, state: State) -> None:
    await quay.ensure_namespace("alpha")
    await quay.ensure_robot("alpha", "ci", write=False)
    state.push_image("alpha", "app", "v1")
    fixed = await quay.ensure_robot("alpha", "ci", write=True)
    assert fixed.changed and "default permission write" in fixed.what
    org = state.organization("alpha")
    assert org is not None
    assert [(p.delegate_name, p.role) for p in org.prototypes] == [("alpha+ci", "write")]
    repo = state.repository("alpha", "app")
    assert repo is not None and repo.permissions["alpha+ci"] == "write"


async def test_no_secret_in_what_or_repr(quay: Quay, state: State) -> None:
    await quay.ensure_namespace("alpha")
    result = await quay.ensure_robot("alpha", "rw", write=True)
    token = result.value.token
    assert token and token not in result.what
    assert token not in repr(result.value) and token not in str(result.value)
    assert token not in repr(result)


async def test_ensure_robot_in_missing_namespace(quay: Quay) -> None:
    with pytest.raises(ServiceError) as err:
        await quay.ensure_robot("ghost", "ro", write=False)
    assert err.value.failure is Failure.NOT_FOUND


async def test_docker_config_and_vault_payload_log_in(quay: Quay, state: State, server: EmulatorServer) -> None:
    await quay.ensure_namespace("alpha")
    creds = (await quay.ensure_robot("alpha", "ro", write=False)).value
    config = json.loads(quay.docker_config(creds))
    auth = config["auths"]["registry.cpn.example"]["auth"]
    assert base64.b64decode(auth).decode() == f"alpha+ro:{creds.token}"
    secret = robot_secret(quay, creds)
    assert secret == {
        "DOCKER_CONFIG": quay.docker_config(creds),
        "HOST": "registry.cpn.example",
        "TOKEN": creds.token,
        "USERNAME": "alpha+ro",
    }


async def test_tags_lists_active_tags(quay: Quay, state: State) -> None:
    await quay.ensure_namespace("alpha")
    state.push_image("alpha", "api", "v1", size=10)
    state.push_image("alpha", "api", "v2", size=20)
    digest = state.push_image("alpha", "api", "v1", size=30)  # v1 moved: the old one is dead
    tags = await quay.tags("alpha", "api")
    assert sorted(t.name for t in tags) == ["v1", "v2"]
    v1 = next(t for t in tags if t.name == "v1")
    assert v1.digest == digest and v1.size == 30 and v1.last_modified is not None
    with pytest.raises(ServiceError) as err:
        await quay.tags("alpha", "missing")
    assert err.value.failure is Failure.NOT_FOUND


async def test_tags_paginates(quay: Quay, state: State) -> None:
    await quay.ensure_namespace("alpha")
    for i in range(130):
        state.push_image("alpha", "many", f"t{i}")
    assert len(await quay.tags("alpha", "many")) == 130


async def test_delete_namespace(quay: Quay, state: State) -> None:
    await quay.ensure_namespace("alpha")
    state.push_image("alpha", "api", "v1")
    assert await quay.delete_namespace("alpha") is True
    assert state.organization("alpha") is None and state.repository("alpha", "api") is None
    assert await quay.delete_namespace("alpha") is False


async def test_down_is_unavailable(quay: Quay, state: State) -> None:
    state.faults.down = True
    with pytest.raises(ServiceError) as err:
        await quay.ensure_namespace("alpha")
    assert err.value.failure is Failure.UNAVAILABLE and err.value.transient


async def test_unreachable_is_unavailable() -> None:
    client = Quay("http://127.0.0.1:9", ADMIN, timeout=1.0)
    with pytest.raises(ServiceError) as err:
        await client.ensure_namespace("alpha")
    await client.close()
    assert err.value.failure is Failure.UNAVAILABLE


async def test_bad_token_and_missing_rights(server: EmulatorServer, state: State) -> None:
    bad = Quay(server.url, "not-a-token")
    with pytest.raises(ServiceError) as err:
        await bad.ensure_namespace("alpha")
    await bad.close()
    assert err.value.failure is Failure.UNAUTHORIZED
    assert "not-a-token" not in str(err.value) and "not-a-token" not in err.value.detail

    state.add_organization("owned", owner="admin")
    alice = Quay(server.url, ALICE)
    with pytest.raises(ServiceError) as err:
        await alice.ensure_robot("owned", "ro", write=False)
    await alice.close()
    assert err.value.failure is Failure.FORBIDDEN


def test_robot_credentials_repr_hides_token() -> None:
    creds = RobotCredentials("alpha+ro", "SECRET-TOKEN-123")
    assert "SECRET-TOKEN-123" not in repr(creds)
    assert "SECRET-TOKEN-123" not in f"{creds}"
    assert "alpha+ro" in repr(creds)


async def test_timeout_is_unavailable(server: EmulatorServer, state: State) -> None:
    state.faults.latency = 0.5
    client = Quay(server.url, ADMIN, timeout=0.1)
    with pytest.raises(ServiceError) as err:
        await client.ensure_namespace("alpha")
    await client.close()
    state.faults.latency = 0.0
    assert err.value.failure is Failure.UNAVAILABLE and err.value.detail == "timeout"


@pytest.mark.parametrize("version", ["3.17.4", "3.18.0"])
async def test_new_organizations_get_their_own_contact_email(
    server: EmulatorServer, state: State, version: str
) -> None:
    # Quay with FEATURE_MAILING refuses an organization without e-mail; up to 3.17 two
    # organizations cannot share one.
    state.version = version
    client = Quay(server.url, ADMIN, timeout=5.0)
    try:
        assert (await client.ensure_namespace("alpha")).changed
        assert (await client.ensure_namespace("beta")).changed
    finally:
        await client.close()
    emails = {name: org.email for name in ("alpha", "beta") if (org := state.organization(name))}
    assert len(set(emails.values())) == 2 and all("@" in e for e in emails.values())


async def test_a_tag_whose_expiration_is_ahead_is_alive(quay: Quay, state: State) -> None:
    await quay.ensure_namespace("alpha")
    state.push_image("alpha", "api", "release")
    state.push_image("alpha", "api", "expired")
    state.push_image("alpha", "api", "kept")
    state.expire_tag("alpha", "api", "release", int(time.time()) + 3600)
    state.expire_tag("alpha", "api", "expired", int(time.time()) - 1)
    assert sorted(t.name for t in await quay.tags("alpha", "api")) == ["kept", "release"]
