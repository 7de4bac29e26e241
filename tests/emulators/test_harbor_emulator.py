"""The Harbor emulator, driven with plain httpx as a Harbor API v2.0 client would: it refuses what
Harbor refuses, with Harbor's status codes and error body, and every answer is one Harbor's
swagger declares (tests/contracts/specs/harbor.json)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, cast

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from services.emulators.base import EmulatorServer
from services.emulators.harbor import VULN_MIME, State, create_app
from tests.conftest import wait_for
from tests.contracts.openapi import Exchange, Spec
from tests.contracts.recorder import Recorder

ADMIN, PASSWORD = "admin", "Adm1nPassw0rd"
ALICE, ALICE_PASSWORD = "alice", "Al1cePassw0rd"


@pytest.fixture
def state() -> State:
    state = State(ADMIN, PASSWORD)
    state.add_user(ALICE, ALICE_PASSWORD)
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
    # Answers to operations the swagger has (the tests also probe paths Harbor has no route for).
    known = [e for e in exchanges if spec.operation(e.method, e.path) is not None and e.status not in (429, 503)]
    problems = sorted({p for e in known for p in spec.check_response(e)})
    assert problems == [], "\n".join(problems)


def _client(server: EmulatorServer, auth: tuple[str, str] | None) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url + "/api/v2.0", auth=auth, timeout=5) as client:
        yield client


@pytest.fixture
def admin(server: EmulatorServer) -> Iterator[httpx.Client]:
    yield from _client(server, (ADMIN, PASSWORD))


@pytest.fixture
def alice(server: EmulatorServer) -> Iterator[httpx.Client]:
    yield from _client(server, (ALICE, ALICE_PASSWORD))


@pytest.fixture
def anon(server: EmulatorServer) -> Iterator[httpx.Client]:
    yield from _client(server, None)


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["errors"] and len(body["errors"]) == 1
    assert body["errors"][0]["code"] == code
    return str(body["errors"][0]["message"])


def _project(client: httpx.Client, name: str = "alpha") -> None:
    assert client.post("/projects", json={"project_name": name, "metadata": {"public": "false"}}).status_code == 201


def _robot(client: httpx.Client, project: str = "alpha", name: str = "ci", **extra: Any) -> httpx.Response:
    body = {
        "name": name,
        "level": "project",
        "duration": -1,
        "permissions": [
            {"kind": "project", "namespace": project, "access": [{"resource": "repository", "action": "pull"}]}
        ],
        **extra,
    }
    return client.post("/robots", json=body)


# --- auth and errors -----------------------------------------------------------------------------


def test_health_is_public_and_the_api_needs_a_login(anon: httpx.Client, server: EmulatorServer) -> None:
    health = anon.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "healthy"
    assert _error(anon.get("/projects/alpha"), 401, "UNAUTHORIZED")
    with httpx.Client(base_url=server.url + "/api/v2.0", auth=(ADMIN, "wrong"), timeout=5) as wrong:
        _error(wrong.get("/users/current"), 401, "UNAUTHORIZED")


def test_a_user_sees_only_the_projects_they_belong_to(admin: httpx.Client, alice: httpx.Client) -> None:
    _project(admin)
    _error(alice.get("/projects/alpha", headers={"X-Is-Resource-Name": "true"}), 403, "FORBIDDEN")
    assert alice.get("/projects").json() == []
    assert [p["name"] for p in admin.get("/projects").json()] == ["alpha"]


# --- projects ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Alpha", "-alpha", "alpha-", "al..pha", "al/pha", "al pha", "é"])
def test_project_names_follow_harbors_rule(admin: httpx.Client, name: str) -> None:
    message = _error(admin.post("/projects", json={"project_name": name}), 400, "BAD_REQUEST")
    assert message == "project name is not in lower case or contains illegal characters"


@pytest.mark.parametrize("name", ["a", "a.b_c-d", "x" * 255, "0alpha9"])
def test_project_names_harbor_accepts(admin: httpx.Client, name: str) -> None:
    created = admin.post("/projects", json={"project_name": name})
    assert created.status_code == 201
    project_id = int(created.headers["location"].rsplit("/", 1)[-1])
    assert admin.get(f"/projects/{project_id}").json()["name"] == name


def test_a_too_long_or_empty_project_name_is_refused(admin: httpx.Client) -> None:
    _error(admin.post("/projects", json={"project_name": "x" * 256}), 422, "UNPROCESSABLE_ENTITY")
    message = _error(admin.post("/projects", json={"project_name": ""}), 400, "BAD_REQUEST")
    assert "illegal in length" in message


def test_a_taken_project_name_is_a_conflict(admin: httpx.Client) -> None:
    _project(admin)
    message = _error(admin.post("/projects", json={"project_name": "alpha"}), 409, "CONFLICT")
    assert message == "The project named alpha already exists"


def test_head_projects_tells_whether_a_name_is_taken(admin: httpx.Client) -> None:
    assert admin.head("/projects", params={"project_name": "alpha"}).status_code == 404
    _project(admin)
    assert admin.head("/projects", params={"project_name": "alpha"}).status_code == 200


def test_a_project_with_repositories_cannot_be_deleted(admin: httpx.Client, state: State) -> None:
    _project(admin)
    state.push_image("alpha", "api", "1.0")
    message = _error(admin.delete("/projects/alpha"), 412, "PRECONDITION")
    assert message == "the project contains repositories, can not be deleted"
    assert admin.delete("/projects/alpha/repositories/api").status_code == 200
    assert admin.delete("/projects/alpha").status_code == 200
    _error(admin.get("/projects/alpha"), 404, "NOT_FOUND")


def test_a_numeric_project_name_needs_x_is_resource_name(admin: httpx.Client) -> None:
    _project(admin, "2024")
    _error(admin.get("/projects/2024"), 404, "NOT_FOUND")  # taken as an id
    assert admin.get("/projects/2024", headers={"X-Is-Resource-Name": "true"}).json()["name"] == "2024"


# --- robots --------------------------------------------------------------------------------------


def test_a_project_robot_is_named_by_harbor_and_its_secret_shown_once(admin: httpx.Client, state: State) -> None:
    _project(admin)
    created = _robot(admin)
    assert created.status_code == 201
    body = created.json()
    assert body["name"] == "robot$alpha+ci" and body["secret"]
    assert created.headers["location"] == f"/api/v2.0/robots/{body['id']}"
    shown = admin.get(f"/robots/{body['id']}").json()
    assert shown["name"] == "robot$alpha+ci" and "secret" not in shown
    assert state.login_ok("robot$alpha+ci", body["secret"])
    project_id = admin.get("/projects/alpha").json()["project_id"]
    assert _error(_robot(admin), 409, "CONFLICT") == f"robot account {project_id}:alpha+ci already exists"


@pytest.mark.parametrize("name", ["CI", "a+b", "robot$x", "", "-ci"])
def test_robot_names_follow_harbors_rule(admin: httpx.Client, name: str) -> None:
    _project(admin)
    message = _error(_robot(admin, name=name), 400, "BAD_REQUEST")
    assert message == "robot name is not in lower case or contains illegal characters"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"duration": 0}, "bad request error duration input: 0"),
        ({"level": "galaxy"}, "bad request error level input: galaxy"),
        ({"permissions": []}, "bad request empty permission"),
        ({"permissions": [{"kind": "project", "namespace": "alpha", "access": []}]}, "bad request empty access"),
        (
            {"permissions": [{"kind": "project", "namespace": "alpha", "access": [{"resource": "x", "action": "y"}]}]},
            "bad request permission: x:y",
        ),
    ],
)
def test_robot_bodies_harbor_refuses(admin: httpx.Client, extra: dict[str, Any], message: str) -> None:
    _project(admin)
    assert _error(_robot(admin, **extra), 400, "BAD_REQUEST").startswith(message)


def test_project_robots_are_listed_by_project_id_with_pagination(admin: httpx.Client) -> None:
    _project(admin)
    for n in range(12):
        assert _robot(admin, name=f"r{n}").status_code == 201
    project_id = admin.get("/projects/alpha").json()["project_id"]
    q = f"Level=project,ProjectID={project_id}"
    first = admin.get("/robots", params={"q": q})
    assert first.headers["x-total-count"] == "12" and len(first.json()) == 10  # page_size defaults to 10
    assert 'rel="next"' in first.headers["link"]
    second = admin.get("/robots", params={"q": q, "page": 2})
    assert [r["name"] for r in second.json()] == ["robot$alpha+r10", "robot$alpha+r11"]
    assert 'rel="prev"' in second.headers["link"] and 'rel="next"' not in second.headers["link"]
    _error(admin.get("/robots", params={"q": "Level=project"}), 400, "BAD_REQUEST")
    _error(admin.get("/robots", params={"page_size": 101}), 422, "UNPROCESSABLE_ENTITY")


def test_refreshing_a_secret_generates_one_or_sets_the_given_one(admin: httpx.Client, state: State) -> None:
    _project(admin)
    robot = _robot(admin).json()
    generated = admin.patch(f"/robots/{robot['id']}", json={})
    assert generated.status_code == 200 and generated.json()["secret"] != robot["secret"]
    assert state.login_ok("robot$alpha+ci", generated.json()["secret"])
    assert not state.login_ok("robot$alpha+ci", robot["secret"])
    chosen = admin.patch(f"/robots/{robot['id']}", json={"secret": "Chosen-Secret-42"})
    assert chosen.status_code == 200 and chosen.json() == {}
    assert state.login_ok("robot$alpha+ci", "Chosen-Secret-42")
    message = _error(admin.patch(f"/robots/{robot['id']}", json={"secret": "weak"}), 400, "BAD_REQUEST")
    assert message.startswith("the secret must be 8-128")


def test_a_robots_name_and_project_cannot_change(admin: httpx.Client) -> None:
    _project(admin)
    _project(admin, "beta")
    robot = admin.get(f"/robots/{_robot(admin).json()['id']}").json()
    renamed = {**robot, "name": "robot$alpha+other"}
    assert "cannot update the level or name" in _error(
        admin.put(f"/robots/{robot['id']}", json=renamed), 400, "BAD_REQUEST"
    )
    moved = {**robot, "permissions": [{**robot["permissions"][0], "namespace": "beta"}]}
    assert "cannot update the project id" in _error(admin.put(f"/robots/{robot['id']}", json=moved), 400, "BAD_REQUEST")
    assert admin.put(f"/robots/{robot['id']}", json={**robot, "description": "new"}).status_code == 200


# --- members -------------------------------------------------------------------------------------


def test_members_are_added_once_by_username(admin: httpx.Client, alice: httpx.Client) -> None:
    _project(admin)
    body = {"role_id": 2, "member_user": {"username": ALICE}}
    created = admin.post("/projects/alpha/members", json=body)
    assert created.status_code == 201 and created.headers["location"].startswith("/api/v2.0/projects/alpha/members/")
    assert _error(admin.post("/projects/alpha/members", json=body), 409, "CONFLICT")
    unknown = {"role_id": 2, "member_user": {"username": "nobody"}}
    assert _error(admin.post("/projects/alpha/members", json=unknown), 404, "NOT_FOUND") == "user nobody is not found"
    assert _error(
        admin.post("/projects/alpha/members", json={"role_id": 9, "member_user": {"username": ALICE}}),
        400,
        "BAD_REQUEST",
    )
    members = {m["entity_name"]: m["role_name"] for m in admin.get("/projects/alpha/members").json()}
    assert members == {ADMIN: "projectAdmin", ALICE: "developer"}
    assert alice.get("/projects/alpha").status_code == 200  # a member now
    _error(alice.post("/projects/alpha/members", json=body), 403, "FORBIDDEN")  # a developer is no admin


def test_an_oidc_group_is_added_by_name_once_and_listed_as_a_group(admin: httpx.Client) -> None:
    """controller/member Create: a group by name is onboarded (OIDC mode), then a duplicate is 409."""
    _project(admin)
    body = {"role_id": 5, "member_group": {"group_name": "/alpha", "group_type": 3}}
    assert admin.post("/projects/alpha/members", json=body).status_code == 201
    assert _error(admin.post("/projects/alpha/members", json=body), 409, "CONFLICT")
    group = next(m for m in admin.get("/projects/alpha/members").json() if m["entity_name"] == "/alpha")
    assert (group["entity_type"], group["role_name"]) == ("g", "limitedGuest")
    empty = {"role_id": 3, "member_group": {"group_type": 3}}
    assert _error(admin.post("/projects/alpha/members", json=empty), 400, "BAD_REQUEST") == (
        "at least one of member_user or member_group must be provided"
    )


# --- repositories, artifacts, double encoding -----------------------------------------------------


def test_nested_repository_names_are_encoded_twice(admin: httpx.Client, state: State) -> None:
    _project(admin)
    digest = state.push_image("alpha", "team/api", "1.0")
    twice = admin.get("/projects/alpha/repositories/team%252Fapi/artifacts", params={"with_tag": "true"})
    assert twice.status_code == 200
    assert [(a["digest"], [t["name"] for t in a["tags"]]) for a in twice.json()] == [(digest, ["1.0"])]
    assert twice.json()[0]["repository_name"] == "alpha/team/api"
    _error(admin.get("/projects/alpha/repositories/team%2Fapi/artifacts"), 404, "NOT_FOUND")  # once is not enough
    assert [r["name"] for r in admin.get("/projects/alpha/repositories").json()] == ["alpha/team/api"]


def test_a_tag_moves_to_the_artifact_pushed_last(admin: httpx.Client, state: State) -> None:
    _project(admin)
    first = state.push_image("alpha", "api", "latest")
    second = state.push_image("alpha", "api", "latest")
    artifacts = {
        a["digest"]: [t["name"] for t in a["tags"]]
        for a in admin.get("/projects/alpha/repositories/api/artifacts").json()
    }
    assert artifacts == {second: ["latest"], first: []}
    assert admin.get("/projects/alpha/repositories/api/artifacts/latest").json()["digest"] == second
    _error(admin.get("/projects/alpha/repositories/api/artifacts/nope"), 404, "NOT_FOUND")


def test_the_vulnerability_report_is_harbors_v1_1_shape(admin: httpx.Client, state: State) -> None:
    admin.post("/projects", json={"project_name": "alpha", "metadata": {"auto_scan": "true"}})
    vuln = {"id": "CVE-2024-1234", "package": "openssl", "version": "3.0.1", "fix_version": "3.0.9", "severity": "High"}
    state.push_image("alpha", "api", "1.0", vulnerabilities=[vuln])
    report = admin.get("/projects/alpha/repositories/api/artifacts/1.0/additions/vulnerabilities")
    assert report.status_code == 200
    body = report.json()[VULN_MIME]
    assert body["severity"] == "High" and body["scanner"]["name"] == "Trivy"
    item = body["vulnerabilities"][0]
    assert {k: item[k] for k in vuln} == vuln
    assert set(item) >= {"links", "preferred_cvss", "cwe_ids", "artifact_digests", "description", "vendor_attributes"}
    state.push_image("alpha", "web", "1.0")  # scanned, nothing found
    assert (
        admin.get("/projects/alpha/repositories/web/artifacts/1.0/additions/vulnerabilities").json()[VULN_MIME][
            "vulnerabilities"
        ]
        == []
    )


def test_an_artifact_not_scanned_has_an_empty_report(admin: httpx.Client, state: State) -> None:
    _project(admin)
    state.push_image("alpha", "api", "1.0")
    assert admin.get("/projects/alpha/repositories/api/artifacts/1.0/additions/vulnerabilities").json() == {}


# --- webhooks ------------------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[tuple[EmulatorServer, list[tuple[dict[str, str], Any]]]]:
    received: list[tuple[dict[str, str], Any]] = []

    async def hook(request: Request) -> Response:
        received.append((dict(request.headers), await request.json()))
        return Response(status_code=200)

    with EmulatorServer(Starlette(routes=[Route("/hooks/harbor", hook, methods=["POST"])]), name="receiver") as srv:
        yield srv, received


def test_webhook_policies_post_push_and_scan_events_with_their_auth_header(
    admin: httpx.Client, state: State, receiver: tuple[EmulatorServer, list[tuple[dict[str, str], Any]]]
) -> None:
    srv, received = receiver
    admin.post("/projects", json={"project_name": "alpha", "metadata": {"auto_scan": "true"}})
    policy = {
        "name": "cpn-bot",
        "enabled": True,
        "event_types": ["PUSH_ARTIFACT", "SCANNING_COMPLETED", "SCANNING_FAILED"],
        "targets": [{"type": "http", "address": f"{srv.url}/hooks/harbor", "auth_header": "Bearer s3cret"}],
    }
    created = admin.post("/projects/alpha/webhook/policies", json=policy)
    assert created.status_code == 201
    assert _error(admin.post("/projects/alpha/webhook/policies", json=policy), 409, "CONFLICT")
    with_query = {**policy, "name": "other", "targets": [{"type": "http", "address": f"{srv.url}/x?token=t"}]}
    assert admin.post("/projects/alpha/webhook/policies", json=with_query).status_code == 201
    listed = [p for p in admin.get("/projects/alpha/webhook/policies").json() if p["name"] == "cpn-bot"]
    other = next(p for p in admin.get("/projects/alpha/webhook/policies").json() if p["name"] == "other")
    assert other["targets"][0]["address"] == f"{srv.url}/x"  # the query is cut (SSRF guard)
    admin.delete(f"/projects/alpha/webhook/policies/{other['id']}")
    assert [p["name"] for p in listed] == ["cpn-bot"] and listed[0]["targets"][0]["auth_header"] == "Bearer s3cret"

    digest = state.push_image("alpha", "team/api", "1.0", vulnerabilities=[{"id": "CVE-1", "severity": "Critical"}])
    wait_for(lambda: len(received) == 2, what="push and scan events")
    state.scan_fails = True
    state.scan("alpha", "team/api", "1.0", [])
    wait_for(lambda: len(received) == 3, what="the failed scan event")

    by_type = {body["type"]: (headers, body) for headers, body in received}
    assert set(by_type) == {"PUSH_ARTIFACT", "SCANNING_COMPLETED", "SCANNING_FAILED"}
    assert all(headers["authorization"] == "Bearer s3cret" for headers, _ in received)
    push = by_type["PUSH_ARTIFACT"][1]
    assert push["event_data"]["repository"] == {
        "date_created": push["event_data"]["repository"]["date_created"],
        "name": "team/api",
        "namespace": "alpha",
        "repo_full_name": "alpha/team/api",
        "repo_type": "private",
    }
    assert push["event_data"]["resources"][0]["digest"] == digest and push["event_data"]["resources"][0]["tag"] == "1.0"
    scanned = by_type["SCANNING_COMPLETED"][1]["event_data"]
    overview = scanned["resources"][0]["scan_overview"][VULN_MIME]
    assert overview["severity"] == "Critical" and overview["summary"]["summary"] == {"Critical": 1}
    assert scanned["scan"] == {"scan_type": "vulnerability"}
    assert "scan_overview" not in by_type["SCANNING_FAILED"][1]["event_data"]["resources"][0]  # omitempty


def test_an_untagged_artifacts_scan_event_has_no_tag_and_a_digest_resource_url(
    admin: httpx.Client, state: State, receiver: tuple[EmulatorServer, list[tuple[dict[str, str], Any]]]
) -> None:
    """goharbor/harbor:src/pkg/notifier/model/event.go Resource.Tag is omitempty; BuildImageResourceURL
    (src/controller/event/handler/util/util.go) names a digest with ``@``."""
    srv, received = receiver
    admin.post("/projects", json={"project_name": "alpha"})
    target = {"type": "http", "address": f"{srv.url}/hooks/harbor"}
    policy = {"name": "p", "enabled": True, "event_types": ["SCANNING_COMPLETED"], "targets": [target]}
    assert admin.post("/projects/alpha/webhook/policies", json=policy).status_code == 201
    old = state.push_image("alpha", "api", "1.0")
    state.push_image("alpha", "api", "1.0")  # the tag moves: the first artifact is left untagged
    state.scan("alpha", "api", old, [])
    wait_for(lambda: len(received) == 1, what="the scan event")
    resource = received[0][1]["event_data"]["resources"][0]
    assert "tag" not in resource and resource["digest"] == old
    assert resource["resource_url"].endswith(f"/alpha/api@{old}")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"targets": []}, "empty notification target with policy p"),
        ({"targets": [{"type": "http", "address": "ftp://x"}]}, "invalid scheme: ftp"),
        ({"targets": [{"type": "email", "address": "http://x"}]}, "unsupported target type email with policy p"),
        ({"event_types": []}, "empty event type"),
        ({"event_types": ["SOMETHING"]}, "unsupported event type SOMETHING"),
    ],
)
def test_webhook_policies_harbor_refuses(admin: httpx.Client, change: dict[str, Any], message: str) -> None:
    _project(admin)
    policy = {"name": "p", "event_types": ["PUSH_ARTIFACT"], "targets": [{"type": "http", "address": "http://x"}]}
    assert message in _error(
        admin.post("/projects/alpha/webhook/policies", json={**policy, **change}), 400, "BAD_REQUEST"
    )


# --- faults --------------------------------------------------------------------------------------


def test_the_fault_switch(admin: httpx.Client, state: State) -> None:
    _project(admin)
    state.faults.down = True
    assert _error(admin.get("/projects/alpha"), 503, "SERVICE_UNAVAILABLE")
    state.faults.clear()
    state.faults.fail("POST /api/v2.0/robots", 500, times=1)
    assert _error(_robot(admin), 500, "UNKNOWN") == "internal server error"
    assert _robot(admin).status_code == 201
    state.set_component_health("database", healthy=False)
    health = admin.get("/health").json()
    assert health["status"] == "unhealthy"
    assert {"name": "database", "status": "unhealthy", "error": "database is down"} in health["components"]
