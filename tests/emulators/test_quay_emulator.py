"""The Quay emulator, driven with plain httpx the way the bot drives Quay API v1."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from services.emulators.base import EmulatorServer
from services.emulators.quay import State, create_app

ADMIN = "admin-oauth-token"
USER = "alice-oauth-token"


@pytest.fixture
def state() -> State:
    state = State()
    state.add_token(ADMIN, superuser=True)
    state.add_token(USER, superuser=False, username="alice")
    return state


@pytest.fixture
def server(state: State) -> Iterator[EmulatorServer]:
    with EmulatorServer(create_app(state), name="quay") as server:
        yield server


def _client(server: EmulatorServer, token: str | None) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    # Closing the client before the server stops keeps uvicorn's shutdown instant.
    with httpx.Client(base_url=server.url + "/api/v1", headers=headers, timeout=5) as client:
        yield client


@pytest.fixture
def admin(server: EmulatorServer) -> Iterator[httpx.Client]:
    yield from _client(server, ADMIN)


@pytest.fixture
def alice(server: EmulatorServer) -> Iterator[httpx.Client]:
    yield from _client(server, USER)


@pytest.fixture
def anon(server: EmulatorServer) -> Iterator[httpx.Client]:
    yield from _client(server, None)


def _org(client: httpx.Client, name: str = "mi-monprojet") -> None:
    assert client.post("/organization/", json={"name": name, "email": f"{name}@example.fr"}).status_code == 201


# --- auth ---------------------------------------------------------------------------------------


def test_missing_or_bad_token_is_401_with_quay_error_shape(anon: httpx.Client, server: EmulatorServer) -> None:
    resp = anon.post("/organization/", json={"name": "x1"})
    assert resp.status_code == 401
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert body["status"] == 401
    assert body["error_type"] == body["title"] == "invalid_token"
    assert body["error_message"] == body["detail"] == "Requires authentication"
    assert body["type"].endswith("/api/v1/error/invalid_token")
    with httpx.Client(base_url=server.url, headers={"Authorization": "Bearer nope"}) as bad:
        assert bad.put("/api/v1/organization/x/robots/ci", json={}).status_code == 401


def test_the_logged_in_user_is_the_tokens_account(admin: httpx.Client, alice: httpx.Client, anon: httpx.Client) -> None:
    me = admin.get("/user/").json()
    assert me["username"] == "admin" and me["super_user"] is True and me["anonymous"] is False
    assert alice.get("/user/").json()["super_user"] is False
    assert anon.get("/user/").status_code == 401


def test_known_user_without_rights_gets_403(admin: httpx.Client, alice: httpx.Client) -> None:
    _org(admin)
    resp = alice.put("/organization/mi-monprojet/robots/ci", json={"description": "ci"})
    assert resp.status_code == 403
    assert resp.json()["error_type"] == "insufficient_scope"
    assert alice.get("/organization/mi-monprojet/robots").status_code == 403


def test_anonymous_read_of_org_gets_public_view(admin: httpx.Client, anon: httpx.Client) -> None:
    _org(admin)
    view = anon.get("/organization/mi-monprojet").json()
    assert view["email"] == "" and view["is_admin"] is False and "teams" not in view


# --- organizations ------------------------------------------------------------------------------


def test_org_create_get_delete(admin: httpx.Client) -> None:
    resp = admin.post("/organization/", json={"name": "mi-monprojet", "email": "team@example.fr"})
    assert resp.status_code == 201 and resp.json() == "Created"
    view = admin.get("/organization/mi-monprojet").json()
    assert view["name"] == "mi-monprojet" and view["email"] == "team@example.fr"
    assert view["is_admin"] is True and view["ordered_teams"] == ["owners"]
    assert admin.delete("/organization/mi-monprojet").status_code == 204
    missing = admin.get("/organization/mi-monprojet")
    assert missing.status_code == 404 and missing.json()["error_type"] == "not_found"
    assert admin.delete("/organization/mi-monprojet").status_code == 404


def test_org_duplicate_invalid_name_and_reused_email_are_400(admin: httpx.Client) -> None:
    _org(admin)
    dup = admin.post("/organization/", json={"name": "mi-monprojet"})
    assert dup.status_code == 400
    assert dup.json()["error_message"] == "A user or organization with this name already exists"
    assert admin.post("/organization/", json={"name": "Bad Name"}).status_code == 400
    reused = admin.post("/organization/", json={"name": "other", "email": "mi-monprojet@example.fr"})
    assert reused.status_code == 400 and "Email has already been used" in reused.json()["detail"]


# --- robots -------------------------------------------------------------------------------------


def test_robot_lifecycle_and_token_visibility(admin: httpx.Client, state: State) -> None:
    _org(admin)
    created = admin.put("/organization/mi-monprojet/robots/ci", json={"description": "CI push"})
    assert created.status_code == 201
    robot = created.json()
    assert robot["name"] == "mi-monprojet+ci" and robot["description"] == "CI push"
    assert len(robot["token"]) == 64 and robot["token"] == state.robot_token("mi-monprojet", "ci")
    assert robot["unstructured_metadata"] == {}

    # Real Quay returns robot tokens to org admins in the list unless ?token=false.
    listed = admin.get("/organization/mi-monprojet/robots").json()["robots"]
    assert [r["name"] for r in listed] == ["mi-monprojet+ci"] and listed[0]["token"] == robot["token"]
    hidden = admin.get("/organization/mi-monprojet/robots", params={"token": "false"}).json()["robots"]
    assert "token" not in hidden[0]

    regenerated = admin.post("/organization/mi-monprojet/robots/ci/regenerate").json()
    assert regenerated["token"] != robot["token"]
    assert admin.get("/organization/mi-monprojet/robots/ci").json()["token"] == regenerated["token"]

    assert admin.delete("/organization/mi-monprojet/robots/ci").status_code == 204
    gone = admin.delete("/organization/mi-monprojet/robots/ci")
    assert gone.status_code == 400
    assert gone.json() == {"message": "Could not find robot with username: mi-monprojet+ci"}
    assert admin.get("/organization/mi-monprojet/robots/ci").json() == {
        "message": "Could not find robot with specified username"
    }


def test_robot_duplicate_is_400(admin: httpx.Client) -> None:
    _org(admin)
    admin.put("/organization/mi-monprojet/robots/ci", json={})
    dup = admin.put("/organization/mi-monprojet/robots/ci", json={})
    assert dup.status_code == 400
    assert dup.json()["error_message"] == "Existing robot with name: mi-monprojet+ci"


# --- default permissions ------------------------------------------------------------------------


def test_prototype_applies_to_repos_created_later(admin: httpx.Client, state: State) -> None:
    _org(admin)
    admin.put("/organization/mi-monprojet/robots/ci", json={})
    body = {"role": "write", "delegate": {"name": "mi-monprojet+ci", "kind": "user"}}
    proto = admin.post("/organization/mi-monprojet/prototypes", json=body).json()
    assert proto["role"] == "write" and proto["activating_user"] is None
    assert proto["delegate"]["is_robot"] is True and proto["delegate"]["kind"] == "user"
    listed = admin.get("/organization/mi-monprojet/prototypes").json()["prototypes"]
    assert [p["id"] for p in listed] == [proto["id"]]

    state.push_image("mi-monprojet", "api", "1.0.0")
    perm = admin.get("/repository/mi-monprojet/api/permissions/user/mi-monprojet+ci").json()
    assert perm["role"] == "write" and perm["is_robot"] is True

    assert admin.delete(f"/organization/mi-monprojet/prototypes/{proto['id']}").status_code == 204
    assert admin.delete(f"/organization/mi-monprojet/prototypes/{proto['id']}").status_code == 404
    unknown = admin.post(
        "/organization/mi-monprojet/prototypes",
        json={"role": "read", "delegate": {"name": "mi-monprojet+nope", "kind": "user"}},
    )
    assert unknown.status_code == 400 and unknown.json()["detail"] == "Missing delegate user or team"


# --- repositories -------------------------------------------------------------------------------


def test_repository_create_list_get_delete(admin: httpx.Client, anon: httpx.Client) -> None:
    _org(admin)
    body = {"namespace": "mi-monprojet", "repository": "front", "visibility": "private", "description": "d"}
    created = admin.post("/repository", json=body)
    assert created.status_code == 201
    assert created.json() == {"namespace": "mi-monprojet", "name": "front", "kind": "image"}
    dup = admin.post("/repository", json=body)
    assert dup.status_code == 400 and dup.json()["error_message"] == "Repository already exists"

    listed = admin.get("/repository", params={"namespace": "mi-monprojet"}).json()
    assert [r["name"] for r in listed["repositories"]] == ["front"]
    assert listed["repositories"][0]["is_public"] is False and "next_page" not in listed
    assert admin.get("/repository").status_code == 400
    # Private repositories are invisible anonymously.
    assert anon.get("/repository", params={"namespace": "mi-monprojet"}).json()["repositories"] == []
    assert anon.get("/repository/mi-monprojet/front").status_code == 401

    repo = admin.get("/repository/mi-monprojet/front").json()
    assert repo["can_admin"] is True and repo["tags"] == {} and repo["is_organization"] is True
    assert admin.delete("/repository/mi-monprojet/front").status_code == 204
    assert admin.get("/repository/mi-monprojet/front").status_code == 404


def test_repository_list_paginates_with_next_page(server: EmulatorServer, state: State) -> None:
    state.repos_per_page = 2
    state.add_organization("org1")
    for name in ("a", "b", "c"):
        state.push_image("org1", name, "latest")
    headers = {"Authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=server.url + "/api/v1", headers=headers) as client:
        first = client.get("/repository", params={"namespace": "org1"}).json()
        assert [r["name"] for r in first["repositories"]] == ["a", "b"]
        second = client.get("/repository", params={"namespace": "org1", "next_page": first["next_page"]}).json()
        assert [r["name"] for r in second["repositories"]] == ["c"] and "next_page" not in second


def test_repository_permissions(admin: httpx.Client, alice: httpx.Client, state: State) -> None:
    _org(admin)
    state.push_image("mi-monprojet", "api", "1.0.0")
    assert alice.get("/repository/mi-monprojet/api").status_code == 403
    perm = admin.put("/repository/mi-monprojet/api/permissions/user/alice", json={"role": "read"})
    assert perm.status_code == 200 and perm.json()["role"] == "read" and perm.json()["is_org_member"] is False
    assert alice.get("/repository/mi-monprojet/api").json()["can_write"] is False
    assert alice.delete("/repository/mi-monprojet/api").status_code == 403
    assert "alice" in admin.get("/repository/mi-monprojet/api/permissions/user/").json()["permissions"]

    bad_role = admin.put("/repository/mi-monprojet/api/permissions/user/alice", json={"role": "owner"})
    assert bad_role.status_code == 400
    unknown = admin.put("/repository/mi-monprojet/api/permissions/user/bob", json={"role": "read"})
    assert unknown.json()["error_message"] == "Invalid username: bob"

    assert admin.delete("/repository/mi-monprojet/api/permissions/user/alice").status_code == 204
    missing = admin.get("/repository/mi-monprojet/api/permissions/user/alice")
    assert missing.status_code == 400 and missing.json() == {"message": "User does not have permission for repo."}


# --- tags & manifests ---------------------------------------------------------------------------


def test_push_image_creates_repo_and_tag_history(admin: httpx.Client, state: State) -> None:
    _org(admin)
    first = state.push_image("mi-monprojet", "api", "1.0.0", size=42)
    second = state.push_image("mi-monprojet", "api", "1.0.0", size=43)
    state.push_image("mi-monprojet", "api", "latest", digest=second)

    tags = admin.get("/repository/mi-monprojet/api/tag/").json()
    assert tags["page"] == 1 and tags["has_additional"] is False
    assert [(t["name"], t["manifest_digest"]) for t in tags["tags"]] == [
        ("latest", second),
        ("1.0.0", second),
        ("1.0.0", first),
    ]
    assert "end_ts" in tags["tags"][2] and "expiration" in tags["tags"][2]
    active = admin.get("/repository/mi-monprojet/api/tag/", params={"onlyActiveTags": "true"}).json()["tags"]
    assert {t["name"] for t in active} == {"latest", "1.0.0"}
    specific = admin.get("/repository/mi-monprojet/api/tag/", params={"specificTag": "latest"}).json()["tags"]
    assert [t["size"] for t in specific] == [43] and specific[0]["is_manifest_list"] is False
    paged = admin.get("/repository/mi-monprojet/api/tag/", params={"limit": 1, "page": 2}).json()
    assert paged["page"] == 2 and paged["has_additional"] is True and len(paged["tags"]) == 1

    manifest = admin.get(f"/repository/mi-monprojet/api/manifest/{second}").json()
    assert manifest["digest"] == second and manifest["layers"][0]["compressed_size"] == 43
    assert admin.get("/repository/mi-monprojet/api/manifest/sha256:00").status_code == 404
    assert admin.get("/repository/mi-monprojet/nope/tag/").status_code == 404
    assert state.tag_names("mi-monprojet", "api") == ["1.0.0", "latest"]


# --- health & faults ----------------------------------------------------------------------------


def test_health_endpoints_and_faults(server: EmulatorServer, state: State) -> None:
    with httpx.Client(base_url=server.url) as client:
        ok = client.get("/health/instance")
        assert ok.status_code == 200 and ok.json()["status_code"] == 200
        assert all(ok.json()["data"]["services"].values())
        state.set_service_health("database", healthy=False)
        bad = client.get("/health/endtoend")
        assert bad.status_code == 503 and bad.json()["data"]["services"]["database"] is False
        state.set_service_health("database", healthy=True)
        assert client.get("/health/endtoend").status_code == 200

        state.faults.down = True
        down = client.get("/api/v1/organization/x", headers={"Authorization": f"Bearer {ADMIN}"})
        assert down.status_code == 503 and down.json()["status"] == 503
        state.faults.clear()
        state.faults.fail("POST /api/v1/organization/", 500, times=1)
        assert client.post("/api/v1/organization/", json={"name": "zz", "email": "zz@x.fr"}).status_code == 500
        assert client.get("/health/instance").status_code == 200


# --- rules of the real server -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "noemail"}, "Email address is required"),
        ({"name": "bademail", "email": "not-an-address"}, "Invalid email address: not-an-address"),
    ],
)
def test_an_organization_needs_a_valid_email_when_mailing_is_on(
    admin: httpx.Client, body: dict[str, str], message: str
) -> None:
    refused = admin.post("/organization/", json=body)
    assert refused.status_code == 400 and refused.json()["error_message"] == message
    assert refused.json()["error_type"] == "invalid_request"


def test_without_mailing_an_organization_needs_no_email(admin: httpx.Client, state: State) -> None:
    state.mailing = False
    assert admin.post("/organization/", json={"name": "noemail"}).status_code == 201


@pytest.mark.parametrize(("version", "status"), [("3.17.4", 400), ("3.18.0", 201)])
def test_organizations_share_an_email_only_from_3_18(
    admin: httpx.Client, state: State, version: str, status: int
) -> None:
    state.version = version
    _org(admin, "first")
    assert admin.post("/organization/", json={"name": "second", "email": "first@example.fr"}).status_code == status


def test_a_tag_expiring_later_is_active_until_then(admin: httpx.Client, state: State) -> None:
    _org(admin)
    state.push_image("mi-monprojet", "api", "soon")
    state.push_image("mi-monprojet", "api", "gone")
    state.expire_tag("mi-monprojet", "api", "soon", int(time.time()) + 3600)
    state.expire_tag("mi-monprojet", "api", "gone", int(time.time()) - 10)
    active = admin.get("/repository/mi-monprojet/api/tag/", params={"onlyActiveTags": "true"}).json()["tags"]
    assert [t["name"] for t in active] == ["soon"] and "end_ts" in active[0] and "expiration" in active[0]
    assert state.tag_names("mi-monprojet", "api") == ["soon"]
