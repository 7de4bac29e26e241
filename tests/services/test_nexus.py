"""The Nexus adapter against the Nexus emulator on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from services.emulators.base import EmulatorServer
from services.emulators.nexus import State, User, create_app
from services.errors import Failure, ServiceError
from services.health import Health, nexus_probe, run_probe
from services.nexus import Nexus

ADMIN_PASSWORD = "nexus-admin-Pa55!"
USER_PASSWORD = "project-Secret-42!"


@pytest.fixture
def state() -> State:
    return State(ADMIN_PASSWORD)


@pytest.fixture
def server(state: State) -> Iterator[EmulatorServer]:
    with EmulatorServer(create_app(state), name="nexus") as server:
        yield server


@pytest.fixture
async def nexus(server: EmulatorServer) -> AsyncIterator[Nexus]:
    client = Nexus(server.url, "admin", ADMIN_PASSWORD, timeout=5.0)
    yield client
    await client.close()


async def test_ensure_maven_creates_three_repositories(nexus: Nexus, state: State) -> None:
    result = await nexus.ensure_maven("alpha")
    assert result.changed
    assert result.value == ["alpha-repository-release", "alpha-repository-snapshot", "alpha-repository-group"]
    release = state.repository("alpha-repository-release")
    snapshot = state.repository("alpha-repository-snapshot")
    group = state.repository("alpha-repository-group")
    assert release is not None and release.type == "hosted" and release.write_policy == "ALLOW_ONCE"
    assert release.maven is not None and release.maven["versionPolicy"] == "RELEASE"
    assert snapshot is not None and snapshot.write_policy == "ALLOW"
    assert snapshot.maven is not None and snapshot.maven["versionPolicy"] == "SNAPSHOT"
    assert group is not None and group.type == "group"
    assert group.members == ["alpha-repository-release", "alpha-repository-snapshot"]
    again = await nexus.ensure_maven("alpha")
    assert not again.changed and again.what == ""


async def test_ensure_maven_fixes_what_differs(nexus: Nexus, state: State) -> None:
    await nexus.ensure_maven("alpha")
    with state.lock:
        state.repositories["alpha-repository-release"].write_policy = "ALLOW"
        state.repositories["alpha-repository-group"].members = ["alpha-repository-release", "maven-central"]
    fixed = await nexus.ensure_maven("alpha")
    assert fixed.changed
    assert "fixed maven repository alpha-repository-release" in fixed.what
    assert "fixed maven group alpha-repository-group" in fixed.what
    release = state.repository("alpha-repository-release")
    group = state.repository("alpha-repository-group")
    assert release is not None and release.write_policy == "ALLOW_ONCE"
    assert group is not None
    assert group.members == ["alpha-repository-release", "maven-central", "alpha-repository-snapshot"]


async def test_ensure_npm(nexus: Nexus, state: State) -> None:
    result = await nexus.ensure_npm("alpha")
    assert result.changed and result.value == ["alpha-npm", "alpha-npm-group"]
    hosted = state.repository("alpha-npm")
    group = state.repository("alpha-npm-group")
    assert hosted is not None and hosted.format == "npm" and hosted.write_policy == "ALLOW"
    assert group is not None and group.members == ["alpha-npm"]
    assert not (await nexus.ensure_npm("alpha")).changed


async def test_ensure_access_creates_privileges_role_user(nexus: Nexus, state: State) -> None:
    await nexus.ensure_maven("alpha")
    result = await nexus.ensure_access("alpha", USER_PASSWORD)
    assert result.changed and result.value is None
    assert USER_PASSWORD not in result.what
    role = state.role("alpha-ID")
    assert role is not None
    assert role.privileges == [
        "alpha-repository-group-privilege",
        "alpha-repository-release-privilege",
        "alpha-repository-snapshot-privilege",
    ]
    user = state.user("alpha")
    assert user is not None and user.roles == ["alpha-ID"] and user.status == "active"
    assert state.check_password("alpha", USER_PASSWORD)

    again = await nexus.ensure_access("alpha", "another-Pa55word!")
    assert not again.changed and again.what == ""
    assert state.check_password("alpha", USER_PASSWORD)  # not changed without reset_password

    await nexus.ensure_npm("alpha")  # npm enabled later: the role gains its privileges
    grown = await nexus.ensure_access("alpha", USER_PASSWORD)
    assert grown.changed and "updated privileges of role alpha-ID" in grown.what
    role = state.role("alpha-ID")
    assert role is not None and "alpha-npm-privilege" in role.privileges
    assert "alpha-npm-group-privilege" in role.privileges


async def test_ensure_access_reset_password(nexus: Nexus, state: State) -> None:
    await nexus.ensure_maven("alpha")
    await nexus.ensure_access("alpha", USER_PASSWORD)
    new_password = "rotated-Secret-77!"
    result = await nexus.ensure_access("alpha", new_password, reset_password=True)
    assert result.changed and "reset password of user alpha" in result.what
    assert new_password not in result.what
    assert state.check_password("alpha", new_password)


async def test_ensure_access_gives_role_back(nexus: Nexus, state: State) -> None:
    await nexus.ensure_maven("alpha")
    await nexus.ensure_access("alpha", USER_PASSWORD)
    with state.lock:
        state.users["alpha"].roles = ["nx-anonymous"]
    result = await nexus.ensure_access("alpha", USER_PASSWORD)
    assert result.changed and "gave role alpha-ID" in result.what
    user = state.user("alpha")
    assert user is not None and user.roles == ["alpha-ID", "nx-anonymous"]


async def test_delete_project(nexus: Nexus, state: State) -> None:
    await nexus.ensure_maven("alpha")
    await nexus.ensure_npm("alpha")
    await nexus.ensure_access("alpha", USER_PASSWORD)
    await nexus.ensure_maven("alphabet")  # a project whose name starts the same stays
    removed = await nexus.delete_project("alpha")
    assert removed == 5 + 1 + 1 + 5
    assert state.repository("alpha-npm") is None and state.repository("alpha-repository-group") is None
    assert state.user("alpha") is None and state.role("alpha-ID") is None
    with state.lock:
        assert not [p for p in state.privileges if p.startswith("alpha-")]
    assert state.repository("alphabet-repository-release") is not None
    assert await nexus.delete_project("alpha") == 0


async def test_urls(server: EmulatorServer) -> None:
    client = Nexus(server.url + "/", "admin", ADMIN_PASSWORD)
    await client.close()
    assert client.repository_urls("alpha") == {
        "MAVEN_REPO_RELEASE": f"{server.url}/repository/alpha-repository-release",
        "MAVEN_REPO_SNAPSHOT": f"{server.url}/repository/alpha-repository-snapshot",
        "NPM_REPO": f"{server.url}/repository/alpha-npm",
    }
    assert client.ui_url("alpha") == f"{server.url}/#browse/browse:alpha-repository-group"


async def test_down_is_unavailable(nexus: Nexus, state: State) -> None:
    state.faults.down = True
    with pytest.raises(ServiceError) as err:
        await nexus.ensure_maven("alpha")
    assert err.value.failure is Failure.UNAVAILABLE


async def test_bad_password_and_missing_rights(server: EmulatorServer, state: State) -> None:
    bad = Nexus(server.url, "admin", "wrong-password")
    with pytest.raises(ServiceError) as err:
        await bad.ensure_maven("alpha")
    await bad.close()
    assert err.value.failure is Failure.UNAUTHORIZED
    assert "wrong-password" not in str(err.value) and "wrong-password" not in err.value.detail

    state.add_user("dev", "dev-Password-1", roles=["nx-anonymous"])
    dev = Nexus(server.url, "dev", "dev-Password-1")
    with pytest.raises(ServiceError) as err:
        await dev.ensure_npm("alpha")
    await dev.close()
    assert err.value.failure is Failure.FORBIDDEN


async def test_invalid_name_is_invalid_without_secret(nexus: Nexus) -> None:
    with pytest.raises(ServiceError) as err:
        await nexus.ensure_npm("_bad")
    assert err.value.failure is Failure.INVALID
    assert err.value.detail == "cannot create repository _bad-npm"


async def test_a_slow_remote_realm_does_not_hold_the_user_lookup(server: EmulatorServer, state: State) -> None:
    # An LDAP realm slower than the adapter's timeout: only a search limited to the local realm
    # (source=default) answers in time.
    state.remote_delay_seconds = 2.0
    client = Nexus(server.url, "admin", ADMIN_PASSWORD, timeout=0.5)
    try:
        await client.ensure_maven("alpha")
        assert (await client.ensure_access("alpha", USER_PASSWORD)).changed
    finally:
        state.remote_delay_seconds = 0.0
        await client.close()
    user = state.user("alpha")
    assert user is not None and user.source == "default"


async def test_an_ldap_user_of_the_same_name_is_not_the_bots(nexus: Nexus, state: State) -> None:
    with state.lock:
        state.remote_users["alpha"] = User("alpha", "Alpha", "Ldap", "alpha@ldap.example", "", source="LDAP")
    await nexus.ensure_maven("alpha")
    assert "created user alpha" in (await nexus.ensure_access("alpha", USER_PASSWORD)).what
    assert state.user("alpha") is not None


@pytest.mark.parametrize("blob_store", ["default", "fast-ssd"])
async def test_new_repositories_use_the_configured_blob_store(
    server: EmulatorServer, state: State, blob_store: str
) -> None:
    state.blob_stores.add("fast-ssd")
    client = Nexus(server.url, "admin", ADMIN_PASSWORD, timeout=5.0, blob_store=blob_store)
    try:
        await client.ensure_maven("alpha")
        await client.ensure_npm("alpha")
    finally:
        await client.close()
    for name in ("alpha-repository-release", "alpha-repository-group", "alpha-npm", "alpha-npm-group"):
        repository = state.repository(name)
        assert repository is not None and repository.blob_store == blob_store


async def test_an_existing_repository_keeps_its_blob_store(server: EmulatorServer, state: State) -> None:
    state.blob_stores.add("fast-ssd")
    first = Nexus(server.url, "admin", ADMIN_PASSWORD, timeout=5.0)
    try:
        await first.ensure_maven("alpha")
    finally:
        await first.close()
    with state.lock:
        state.repositories["alpha-repository-release"].write_policy = "ALLOW"
    client = Nexus(server.url, "admin", ADMIN_PASSWORD, timeout=5.0, blob_store="fast-ssd")
    try:
        assert (await client.ensure_maven("alpha")).changed
    finally:
        await client.close()
    release = state.repository("alpha-repository-release")
    assert release is not None and release.blob_store == "default" and release.write_policy == "ALLOW_ONCE"


async def test_an_unknown_blob_store_is_invalid(server: EmulatorServer) -> None:
    client = Nexus(server.url, "admin", ADMIN_PASSWORD, timeout=5.0, blob_store="missing")
    try:
        with pytest.raises(ServiceError) as err:
            await client.ensure_maven("alpha")
    finally:
        await client.close()
    assert err.value.failure is Failure.INVALID


async def test_the_health_probe_does_not_wait_for_a_remote_realm(server: EmulatorServer, state: State) -> None:
    state.remote_delay_seconds = 2.0
    try:
        check = await run_probe("Nexus", nexus_probe(server.url, "admin", ADMIN_PASSWORD), timeout=0.5)
    finally:
        state.remote_delay_seconds = 0.0
    assert check.health is Health.OK, check.detail
