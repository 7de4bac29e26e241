"""The Nexus emulator, driven with plain httpx the way the bot (and the console plugin) drive Nexus 3."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from services.emulators.base import EmulatorServer
from services.emulators.nexus import REALM, State, User, create_app

PASSWORD = "s3cret-admin"
API = "/service/rest/v1"


@pytest.fixture
def state() -> State:
    return State(admin_password=PASSWORD)


@pytest.fixture
def server(state: State) -> Iterator[EmulatorServer]:
    with EmulatorServer(create_app(state), name="nexus") as server:
        yield server


@pytest.fixture
def admin(server: EmulatorServer) -> Iterator[httpx.Client]:
    # Closing the client before the server stops keeps uvicorn's shutdown instant.
    with httpx.Client(base_url=server.url + API, auth=("admin", PASSWORD), timeout=5) as client:
        yield client


@pytest.fixture
def anon(server: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url + API, timeout=5) as client:
        yield client


def _hosted(name: str, write_policy: str = "allow_once") -> dict[str, Any]:
    """The body plugins/nexus/src/maven.ts posts."""
    return {
        "name": name,
        "online": True,
        "storage": {
            "blobStoreName": "default",
            "strictContentTypeValidation": True,
            "writePolicy": write_policy,
        },
        "cleanup": {"policyNames": ["string"]},
        "component": {"proprietaryComponents": True},
        "maven": {"versionPolicy": "MIXED", "layoutPolicy": "STRICT", "contentDisposition": "ATTACHMENT"},
    }


def _group(name: str, members: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "online": True,
        "storage": {"blobStoreName": "default", "strictContentTypeValidation": True},
        "group": {"memberNames": members},
    }


# --- auth ---------------------------------------------------------------------------------------


def test_missing_or_bad_credentials_are_401_with_empty_body(anon: httpx.Client, server: EmulatorServer) -> None:
    resp = anon.get("/repositories")
    assert resp.status_code == 401 and resp.content == b""
    assert resp.headers["www-authenticate"] == REALM
    with httpx.Client(base_url=server.url + API, auth=("admin", "wrong")) as bad:
        assert bad.get("/security/users").status_code == 401
    with httpx.Client(base_url=server.url + API, headers={"Authorization": "Basic !!!"}) as garbage:
        assert garbage.get("/security/users").status_code == 401


def test_non_admin_is_403_and_only_sees_repos_it_may_browse(
    admin: httpx.Client, server: EmulatorServer, state: State
) -> None:
    admin.post("/repositories/maven/hosted", json=_hosted("proj-repository-release"))
    admin.post(
        "/security/roles",
        json={
            "id": "proj-ID",
            "name": "proj-role",
            "privileges": ["nx-repository-view-maven2-proj-repository-release-*"],
        },
    )
    state.add_user("proj", "user-pass", roles=["proj-ID"])
    with httpx.Client(base_url=server.url + API, auth=("proj", "user-pass")) as user:
        forbidden = user.get("/security/users")
        assert forbidden.status_code == 403 and forbidden.content == b""
        assert user.post("/repositories/maven/hosted", json=_hosted("x")).status_code == 403
        assert [r["name"] for r in user.get("/repositories").json()] == ["proj-repository-release"]


# --- repositories -------------------------------------------------------------------------------


def test_maven_hosted_and_group_lifecycle(admin: httpx.Client, server: EmulatorServer) -> None:
    created = admin.post("/repositories/maven/hosted", json=_hosted("proj-repository-release"))
    assert created.status_code == 201 and created.content == b""
    detail = admin.get("/repositories/maven/hosted/proj-repository-release").json()
    assert detail["format"] == "maven2" and detail["type"] == "hosted" and detail["online"] is True
    assert detail["storage"] == {
        "blobStoreName": "default",
        "strictContentTypeValidation": True,
        "writePolicy": "ALLOW_ONCE",
    }
    assert detail["maven"]["versionPolicy"] == "MIXED"
    assert detail["url"] == f"{server.url}/repository/proj-repository-release"

    body = _group("proj-repository-group", ["proj-repository-release", "maven-public"])
    assert admin.post("/repositories/maven/group", json=body).status_code == 201
    group = admin.get("/repositories/maven/group/proj-repository-group").json()
    assert group["group"]["memberNames"] == ["proj-repository-release", "maven-public"]

    listed = {r["name"]: r for r in admin.get("/repositories").json()}
    assert {"maven-public", "proj-repository-release", "proj-repository-group"} <= set(listed)
    assert listed["proj-repository-group"]["type"] == "group" and listed["maven-central"]["attributes"]["proxy"]
    simple = admin.get("/repositories/proj-repository-release").json()
    assert simple == {
        "name": "proj-repository-release",
        "format": "maven2",
        "type": "hosted",
        "url": f"{server.url}/repository/proj-repository-release",
        "online": True,
    }

    assert (
        admin.put(
            "/repositories/maven/hosted/proj-repository-release",
            json=_hosted("proj-repository-release", "allow"),
        ).status_code
        == 204
    )
    assert admin.get("/repositories/maven/hosted/proj-repository-release").json()["storage"]["writePolicy"] == "ALLOW"

    assert admin.delete("/repositories/proj-repository-release").status_code == 204
    missing = admin.delete("/repositories/proj-repository-release")
    assert missing.status_code == 404 and missing.content == b""
    assert admin.get("/repositories/maven/hosted/proj-repository-release").status_code == 404
    assert admin.get("/repositories/proj-repository-release").status_code == 404
    assert admin.put("/repositories/maven/hosted/nope", json=_hosted("nope")).status_code == 404


def test_npm_repositories(admin: httpx.Client) -> None:
    hosted = _hosted("proj-npm", "allow")
    del hosted["maven"]
    assert admin.post("/repositories/npm/hosted", json=hosted).status_code == 201
    assert admin.post("/repositories/npm/group", json=_group("proj-npm-group", ["proj-npm"])).status_code == 201
    detail = admin.get("/repositories/npm/hosted/proj-npm").json()
    assert detail["format"] == "npm" and "maven" not in detail
    assert admin.get("/repositories/maven/hosted/proj-npm").status_code == 404
    assert admin.post("/repositories/pypi/hosted", json=hosted).status_code == 404


def test_duplicate_and_invalid_repository_bodies_are_400(admin: httpx.Client) -> None:
    assert admin.post("/repositories/maven/hosted", json=_hosted("proj-release")).status_code == 201
    dup = admin.post("/repositories/maven/hosted", json=_hosted("PROJ-release"))
    assert dup.status_code == 400
    assert dup.json() == [{"id": "PARAMETER name", "message": "Name is already used, must be unique (ignoring case)"}]
    bad_name = admin.post("/repositories/maven/hosted", json=_hosted("_bad"))
    assert bad_name.status_code == 400 and bad_name.json()[0]["id"] == "PARAMETER name"
    bad_policy = admin.post("/repositories/maven/hosted", json=_hosted("p2", "sometimes"))
    assert bad_policy.json()[0]["id"] == "PARAMETER storage.writePolicy"
    no_group = _group("g", [])
    assert admin.post("/repositories/maven/group", json=no_group).status_code == 400


# --- users --------------------------------------------------------------------------------------


def test_user_lifecycle_never_returns_passwords(admin: httpx.Client, server: EmulatorServer, state: State) -> None:
    assert admin.post("/security/roles", json={"id": "proj-ID", "name": "proj-role"}).status_code == 200
    body = {
        "userId": "proj",
        "firstName": "Monkey D.",
        "lastName": "Luffy",
        "emailAddress": "owner@example.fr",
        "password": "first-pass",
        "status": "active",
        "roles": ["proj-ID"],
    }
    created = admin.post("/security/users", json=body)
    assert created.status_code == 200
    assert created.json() == {
        "userId": "proj",
        "firstName": "Monkey D.",
        "lastName": "Luffy",
        "emailAddress": "owner@example.fr",
        "source": "default",
        "status": "active",
        "readOnly": False,
        "roles": ["proj-ID"],
        "externalRoles": [],
    }
    assert "first-pass" not in admin.get("/security/users").text
    # userId filters by prefix, so callers must still match exactly.
    assert [u["userId"] for u in admin.get("/security/users", params={"userId": "pro"}).json()] == ["proj"]
    assert admin.get("/security/users", params={"userId": "zzz"}).json() == []

    changed = admin.put(
        "/security/users/proj/change-password", content="second-pass", headers={"Content-Type": "text/plain"}
    )
    assert changed.status_code == 204 and state.check_password("proj", "second-pass")
    empty = admin.put("/security/users/proj/change-password", content="", headers={"Content-Type": "text/plain"})
    assert empty.status_code == 400 and empty.json() == "Password must be supplied."

    update = {**body, "lastName": "Mugiwara"}
    del update["password"]
    assert admin.put("/security/users/proj", json=update).status_code == 204
    user = state.user("proj")
    assert user is not None and user.last_name == "Mugiwara"
    mismatch = admin.put("/security/users/other", json=update)
    assert mismatch.status_code == 400 and mismatch.json() == "The path's userId does not match the body"

    assert admin.delete("/security/users/proj").status_code == 204
    gone = admin.delete("/security/users/proj")
    assert gone.status_code == 404 and gone.json() == "User 'proj' not found."


def test_user_validation_errors(admin: httpx.Client) -> None:
    body = {
        "userId": "u1",
        "firstName": "A",
        "lastName": "B",
        "emailAddress": "u1@example.fr",
        "password": "p",
        "status": "active",
        "roles": ["nope"],
    }
    unknown_role = admin.post("/security/users", json=body)
    assert unknown_role.status_code == 400
    assert unknown_role.json() == [{"id": "roles", "message": "Unable to locate roleId: nope"}]
    missing = admin.post("/security/users", json={**body, "roles": ["nx-admin"], "firstName": ""})
    assert missing.json() == [{"id": "PARAMETER firstName", "message": "must not be empty"}]
    no_password = admin.post("/security/users", json={**body, "roles": ["nx-admin"], "password": ""})
    assert no_password.json() == "A non-empty password is required."


# --- roles & privileges -------------------------------------------------------------------------


def test_roles_and_privileges(admin: httpx.Client) -> None:
    admin.post("/repositories/maven/hosted", json=_hosted("proj-repository-release"))
    privileges = {p["name"]: p for p in admin.get("/security/privileges").json()}
    builtin = privileges["nx-repository-view-maven2-proj-repository-release-*"]
    assert builtin["type"] == "repository-view" and builtin["readOnly"] is True and builtin["actions"] == ["ALL"]

    custom = {
        "name": "proj-privilege-release",
        "description": "d",
        "actions": ["all"],
        "format": "maven2",
        "repository": "proj-repository-release",
    }
    assert admin.post("/security/privileges/repository-view", json=custom).status_code == 201
    dup = admin.post("/security/privileges/repository-view", json=custom)
    assert dup.status_code == 400 and "already exists" in dup.json()
    assert admin.get("/security/privileges/proj-privilege-release").json()["actions"] == ["ALL"]

    role = {
        "id": "proj-ID",
        "name": "proj-role",
        "description": "desc",
        "privileges": ["proj-privilege-release"],
    }
    created = admin.post("/security/roles", json=role)
    assert created.status_code == 200
    assert created.json() == {**role, "source": "default", "readOnly": False, "roles": []}
    assert admin.post("/security/roles", json=role).json() == "Role 'proj-ID' already exists, use a unique roleId."
    bad = admin.post("/security/roles", json={**role, "id": "x", "privileges": ["ghost"]})
    assert bad.status_code == 400 and bad.json() == "Privilege 'ghost' contained in role 'x' not found."

    assert admin.put("/security/roles/proj-ID", json={**role, "privileges": []}).status_code == 204
    assert admin.get("/security/roles/proj-ID").json()["privileges"] == []
    assert admin.put("/security/roles/proj-ID", json={**role, "id": "other"}).status_code == 409
    internal = admin.delete("/security/roles/nx-admin")
    assert internal.status_code == 400 and "is internal" in internal.json()
    assert admin.delete("/security/roles/proj-ID").status_code == 204
    missing = admin.get("/security/roles/proj-ID")
    assert missing.status_code == 404 and missing.json() == "Role 'proj-ID' not found."

    assert admin.delete("/security/privileges/proj-privilege-release").status_code == 204
    assert admin.delete("/security/privileges/proj-privilege-release").status_code == 404
    assert admin.delete("/security/privileges/nx-all").status_code == 400


# --- status & faults ----------------------------------------------------------------------------


def test_status_endpoints_and_faults(admin: httpx.Client, anon: httpx.Client, state: State) -> None:
    ok = anon.get("/status")
    assert ok.status_code == 200 and ok.content == b""
    assert anon.get("/status/writable").status_code == 200
    assert anon.get("/status/check").status_code == 401
    checks = admin.get("/status/check").json()
    assert all(c["healthy"] for c in checks.values()) and "Blob Stores Ready" in checks

    state.set_check("Blob Stores Ready", healthy=False, message="blob store down")
    checks = admin.get("/status/check").json()
    assert checks["Blob Stores Ready"] == {
        **checks["Blob Stores Ready"],
        "healthy": False,
        "message": "blob store down",
    }

    state.writable = False
    assert anon.get("/status/writable").status_code == 503 and anon.get("/status").status_code == 200
    state.available = False
    assert anon.get("/status").status_code == 503

    state.faults.down = True
    assert admin.get("/repositories").status_code == 503
    state.faults.clear()
    state.faults.fail("POST /service/rest/v1/repositories/maven/*", 500, times=1)
    assert admin.post("/repositories/maven/hosted", json=_hosted("p")).status_code == 500
    assert admin.post("/repositories/maven/hosted", json=_hosted("p")).status_code == 201


# --- rules of the real server -------------------------------------------------------------------


def test_a_repository_needs_a_known_blob_store_and_keeps_it(admin: httpx.Client, state: State) -> None:
    body = _hosted("alpha-release")
    body["storage"]["blobStoreName"] = "missing"
    refused = admin.post("/repositories/maven/hosted", json=body)
    assert refused.status_code == 400
    assert refused.json() == [{"id": "BlobStoreName", "message": "Blob store not found"}]

    state.blob_stores.add("fast-ssd")
    assert admin.post("/repositories/maven/hosted", json=_hosted("alpha-release")).status_code == 201
    moved = _hosted("alpha-release")
    moved["storage"]["blobStoreName"] = "fast-ssd"
    changed = admin.put("/repositories/maven/hosted/alpha-release", json=moved)
    assert changed.status_code == 400
    assert changed.json() == [
        {"id": "BlobStoreName", "message": "You cannot change a repository\u2019s blob store through the API"}
    ]


@pytest.mark.parametrize(
    ("source", "sources"), [(None, {"default", "LDAP"}), ("default", {"default"}), ("LDAP", {"LDAP"})]
)
def test_a_user_search_without_source_asks_every_realm(
    admin: httpx.Client, state: State, source: str | None, sources: set[str]
) -> None:
    state.add_user("alpha", "Pa55-word!", roles=["nx-admin"])
    with state.lock:
        state.remote_users["alpha"] = User("alpha", "Alpha", "Ldap", "alpha@ldap.example", "", source="LDAP")
    params = {"userId": "ALP", **({"source": source} if source else {})}
    found = admin.get("/security/users", params=params).json()
    assert {u["source"] for u in found} == sources and {u["userId"] for u in found} == {"alpha"}


def test_only_a_search_naming_no_source_waits_for_the_remote_realm(admin: httpx.Client, state: State) -> None:
    state.remote_delay_seconds = 0.3
    started = time.monotonic()
    admin.get("/security/users", params={"source": "default"})
    local = time.monotonic() - started
    started = time.monotonic()
    admin.get("/security/users")
    everywhere = time.monotonic() - started
    assert local < 0.3 <= everywhere
