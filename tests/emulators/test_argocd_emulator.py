"""The Argo CD emulator, driven with httpx exactly as the bot's adapter calls API v1."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from services.emulators.argocd import State, create_app, repo_permitted
from services.emulators.base import EmulatorServer
from services.emulators.fixtures import fixture
from tests.conftest import wait_for
from tests.support.app_switch import AppSwitch

PASSWORD = "argo-admin-password"
GITLAB = "https://gitlab.cpn.example/forge/shop"
FIXTURE = fixture("argocd_app.json")


@pytest.fixture(scope="module")
def switch() -> Iterator[tuple[AppSwitch, EmulatorServer]]:
    app = AppSwitch()
    with EmulatorServer(app, name="argocd") as running:
        yield app, running


@pytest.fixture
def state() -> State:
    state = State(admin_password=PASSWORD)
    state.timings.cascade_delete_seconds = 0.05
    state.timings.refresh_seconds = 0.01
    return state


@pytest.fixture
def server(switch: tuple[AppSwitch, EmulatorServer], state: State) -> EmulatorServer:
    app, running = switch
    app.app = create_app(state)
    return running


def http(server: EmulatorServer, **kwargs: Any) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=5, **kwargs)


@pytest.fixture
def anonymous(server: EmulatorServer) -> Iterator[httpx.Client]:
    with http(server) as client:
        yield client


@pytest.fixture
def argo(server: EmulatorServer) -> Iterator[httpx.Client]:
    """Logged in the way the bot does it: POST /api/v1/session, then a Bearer token."""
    credentials = {"username": "admin", "password": PASSWORD}
    with http(server) as login:
        token = login.post("/api/v1/session", json=credentials).json()["token"]
    with http(server, headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def grpc_error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert body["error"] == body["message"]
    return body["code"], body["message"]


def shop_project(state: State) -> None:
    state.add_project(
        "shop",
        source_repos=[f"{GITLAB}/**"],
        destinations=[{"server": "https://kubernetes.default.svc", "namespace": "shop-*"}],
    )


def application(name: str = "shop-dev-api", **source: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"dso/project": "shop", "dso/environment": "dev"}},
        "spec": {
            "project": "shop",
            "source": {"repoURL": f"{GITLAB}/infra.git", "path": ".", "targetRevision": "main", **source},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "shop-dev"},
        },
    }


# --------------------------------------------------------------------------- health, version, session


def test_healthz_and_version(anonymous: httpx.Client, argo: httpx.Client, state: State) -> None:
    health = anonymous.get("/healthz")
    assert health.status_code == 200 and health.text == "ok"
    assert anonymous.get("/api/version").json() == {"Version": state.version}
    full = argo.get("/api/version").json()
    assert full["Version"] == state.version and "HelmVersion" in full


def test_session_login_and_auth_failures(anonymous: httpx.Client, server: EmulatorServer) -> None:
    with http(server) as browser:
        login = browser.post("/api/v1/session", json={"username": "admin", "password": PASSWORD})
        assert login.status_code == 200
        token = login.json()["token"]
        assert token.count(".") == 2
        assert login.cookies.get("argocd.token") == token
        assert browser.get("/api/v1/projects").status_code == 200  # the cookie alone authenticates

    wrong = anonymous.post("/api/v1/session", json={"username": "admin", "password": "nope"})
    assert wrong.status_code == 401
    assert grpc_error(wrong) == (16, "Invalid username or password")
    missing = anonymous.get("/api/v1/applications")
    assert missing.status_code == 401
    assert grpc_error(missing) == (16, "no session information")
    with http(server, headers={"Authorization": "Bearer garbage"}) as bad:
        response = bad.get("/api/v1/applications")
    assert response.status_code == 401
    assert grpc_error(response) == (16, "invalid session: token contains an invalid number of segments")
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with http(server, headers={"Authorization": f"Bearer {forged}"}) as bad:
        assert bad.get("/api/v1/projects").status_code == 401


def test_cookie_auth_userinfo_and_logout(server: EmulatorServer, state: State) -> None:
    token = state.issue_token("admin")
    with http(server, cookies={"argocd.token": token}) as by_cookie:
        assert by_cookie.get("/api/v1/projects").status_code == 200
        info = by_cookie.get("/api/v1/session/userinfo").json()
        assert info == {"loggedIn": True, "username": "admin", "iss": "argocd"}
        assert by_cookie.delete("/api/v1/session").status_code == 200
        revoked = by_cookie.get("/api/v1/projects")
    assert revoked.status_code == 401
    assert grpc_error(revoked)[1] == "invalid session: token is revoked, please re-login"
    with http(server) as anonymous:
        assert anonymous.get("/api/v1/session/userinfo").json() == {"loggedIn": False}


# --------------------------------------------------------------------------- projects


def project_body(description: str = "Shop", namespace: str = "shop-*") -> dict[str, Any]:
    return {
        "project": {
            "metadata": {"name": "shop"},
            "spec": {
                "description": description,
                "sourceRepos": [f"{GITLAB}/**"],
                "destinations": [{"server": "https://kubernetes.default.svc", "namespace": namespace}],
            },
        }
    }


def test_create_get_list_projects(argo: httpx.Client) -> None:
    created = argo.post("/api/v1/projects", json=project_body())
    assert created.status_code == 200
    project = created.json()
    assert project["metadata"]["name"] == "shop"
    assert project["metadata"]["namespace"] == "argocd"
    assert {"uid", "resourceVersion", "creationTimestamp"} <= set(project["metadata"])
    assert project["spec"]["sourceRepos"] == [f"{GITLAB}/**"]
    assert argo.get("/api/v1/projects/shop").json() == project
    names = [p["metadata"]["name"] for p in argo.get("/api/v1/projects").json()["items"]]
    assert names == ["default", "shop"]
    missing = argo.get("/api/v1/projects/nope")
    assert missing.status_code == 404
    assert grpc_error(missing) == (5, 'appprojects.argoproj.io "nope" not found')


def test_create_project_twice_needs_upsert_when_spec_differs(argo: httpx.Client) -> None:
    first = argo.post("/api/v1/projects", json=project_body()).json()
    assert argo.post("/api/v1/projects", json=project_body()).json() == first  # idempotent
    different = argo.post("/api/v1/projects", json=project_body(description="Changed"))
    assert different.status_code == 400
    assert grpc_error(different) == (
        3,
        'existing project spec is different; use upsert flag to force update; difference in keys "Description"',
    )
    upserted = argo.post("/api/v1/projects", json={**project_body(description="Changed"), "upsert": True})
    assert upserted.status_code == 200
    assert upserted.json()["spec"]["description"] == "Changed"


def test_update_project_needs_current_resource_version(argo: httpx.Client) -> None:
    current = argo.post("/api/v1/projects", json=project_body()).json()
    body = project_body(namespace="shop-prod")
    without = argo.put("/api/v1/projects/shop", json=body)
    assert without.status_code == 400
    assert "must be specified for an update" in grpc_error(without)[1]
    body["project"]["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    updated = argo.put("/api/v1/projects/shop", json=body)
    assert updated.status_code == 200
    assert updated.json()["spec"]["destinations"][0]["namespace"] == "shop-prod"
    stale = argo.put("/api/v1/projects/shop", json=body)
    assert stale.status_code == 409
    assert grpc_error(stale)[0] == 10


def test_delete_project_refused_while_referenced(argo: httpx.Client, state: State) -> None:
    shop_project(state)
    state.add_application(application())
    refused = argo.delete("/api/v1/projects/shop")
    assert refused.status_code == 400
    assert grpc_error(refused) == (3, "project is referenced by 1 applications")
    assert argo.delete("/api/v1/applications/shop-dev-api", params={"cascade": "false"}).status_code == 200
    assert argo.delete("/api/v1/projects/shop").json() == {}
    assert state.project("shop") is None


# --------------------------------------------------------------------------- applications


def test_create_application_shaped_like_argocd(argo: httpx.Client, state: State) -> None:
    shop_project(state)
    created = argo.post("/api/v1/applications", json=application())
    assert created.status_code == 200
    app = created.json()
    fixture = json.loads(FIXTURE.read_text())
    assert set(app) == set(fixture)
    assert {"name", "namespace", "uid", "resourceVersion", "creationTimestamp", "labels"} <= set(app["metadata"])
    status = app["status"]
    assert set(status) >= {"sync", "health", "resources", "summary", "reconciledAt", "sourceType"}
    assert status["sync"]["status"] == "OutOfSync"
    assert len(status["sync"]["revision"]) == 40
    assert status["sync"]["comparedTo"]["source"] == app["spec"]["source"]
    assert status["health"] == {"status": "Missing"}
    assert status["sourceType"] == "Directory"
    assert [r["kind"] for r in status["resources"]] == ["Service", "Deployment"]
    assert argo.get("/api/v1/applications/shop-dev-api").json() == app


def test_application_repo_and_destination_must_be_permitted(argo: httpx.Client, state: State) -> None:
    shop_project(state)
    evil = application(repoURL="https://github.com/evil/infra.git")
    refused = argo.post("/api/v1/applications", json=evil)
    assert refused.status_code == 400
    code, message = grpc_error(refused)
    assert code == 3
    assert "application repo https://github.com/evil/infra.git is not permitted in project 'shop'" in message
    elsewhere = application()
    elsewhere["spec"]["destination"]["namespace"] = "kube-system"
    refused = argo.post("/api/v1/applications", json=elsewhere)
    assert refused.status_code == 400
    assert (
        "application destination server 'https://kubernetes.default.svc' and namespace 'kube-system' do not "
        "match any of the allowed destinations in project 'shop'"
    ) in grpc_error(refused)[1]
    orphan = application()
    orphan["spec"]["project"] = "ghost"
    refused = argo.post("/api/v1/applications", json=orphan)
    assert "application references project ghost which does not exist" in grpc_error(refused)[1]
    assert state.app("shop-dev-api") is None


def test_create_application_twice_and_upsert(argo: httpx.Client, state: State) -> None:
    shop_project(state)
    first = argo.post("/api/v1/applications", json=application()).json()
    assert argo.post("/api/v1/applications", json=application()).json() == first
    changed = application(targetRevision="release")
    refused = argo.post("/api/v1/applications", json=changed)
    assert refused.status_code == 400
    assert grpc_error(refused) == (
        3,
        "existing application spec is different, use upsert flag to force update",
    )
    upserted = argo.post("/api/v1/applications", params={"upsert": "true"}, json=changed)
    assert upserted.status_code == 200
    assert upserted.json()["spec"]["source"]["targetRevision"] == "release"


def test_missing_application_is_403_unless_project_given(argo: httpx.Client, state: State) -> None:
    denied = argo.get("/api/v1/applications/ghost")
    assert denied.status_code == 403
    assert grpc_error(denied) == (7, "permission denied")
    missing = argo.get("/api/v1/applications/ghost", params={"project": "shop"})
    assert missing.status_code == 404
    assert grpc_error(missing) == (5, 'applications.argoproj.io "ghost" not found')
    assert argo.delete("/api/v1/applications/ghost").status_code == 403


def test_list_applications_by_project_and_selector(argo: httpx.Client, state: State) -> None:
    shop_project(state)
    state.add_application(application("shop-dev-api"))
    prod = application("shop-prod-api")
    prod["metadata"]["labels"]["dso/environment"] = "prod"
    prod["spec"]["destination"]["namespace"] = "shop-prod"
    state.add_application(prod)
    other = application("tools")
    other["spec"]["project"] = "default"
    state.add_application(other)

    def names(**params: Any) -> list[str]:
        body = argo.get("/api/v1/applications", params=params).json()
        assert "resourceVersion" in body["metadata"]
        return [a["metadata"]["name"] for a in body["items"]]

    assert names() == ["shop-dev-api", "shop-prod-api", "tools"]
    assert names(projects="shop") == ["shop-dev-api", "shop-prod-api"]
    assert names(selector="dso/environment=prod") == ["shop-prod-api"]
    assert names(selector="dso/project=shop,dso/environment!=prod") == ["shop-dev-api", "tools"]
    assert names(projects="nope") == []


def test_update_and_delete_application(argo: httpx.Client, state: State) -> None:
    shop_project(state)
    app = argo.post("/api/v1/applications", json=application()).json()
    app["spec"]["source"]["path"] = "overlays/dev"
    updated = argo.put("/api/v1/applications/shop-dev-api", json=app)
    assert updated.status_code == 200
    assert updated.json()["spec"]["source"]["path"] == "overlays/dev"
    assert int(updated.json()["metadata"]["resourceVersion"]) > int(app["metadata"]["resourceVersion"])
    app["spec"]["source"]["repoURL"] = "https://github.com/evil/x.git"
    assert argo.put("/api/v1/applications/shop-dev-api", json=app).status_code == 400

    deleted = argo.delete("/api/v1/applications/shop-dev-api", params={"cascade": "false"})
    assert deleted.status_code == 200 and deleted.json() == {}
    assert state.deletions == [("shop-dev-api", False)]
    assert state.app("shop-dev-api") is None


def test_refresh_reads_the_revision_the_test_pushed(argo: httpx.Client, state: State) -> None:
    shop_project(state)
    before = argo.post("/api/v1/applications", json=application()).json()
    pushed = "c0ffee" * 6 + "c0ff"
    state.set_target_revision("shop-dev-api", pushed)
    # Without a refresh Argo CD still shows what it compared last time.
    assert argo.get("/api/v1/applications/shop-dev-api").json()["status"]["sync"]["revision"] != pushed
    refreshed = argo.get("/api/v1/applications/shop-dev-api", params={"refresh": "normal"}).json()
    assert refreshed["status"]["sync"]["revision"] == pushed
    assert refreshed["status"]["sync"]["status"] == "OutOfSync"
    assert refreshed["status"]["reconciledAt"] >= before["status"]["reconciledAt"]


def test_destination_by_cluster_name(argo: httpx.Client, state: State) -> None:
    state.add_cluster("ovh-prod", "https://ovh-prod.example:6443")
    state.add_project("shop", source_repos=["*"], destinations=[{"name": "ovh-*", "namespace": "*"}])
    app = application()
    app["spec"]["destination"] = {"name": "ovh-prod", "namespace": "shop-prod"}
    assert argo.post("/api/v1/applications", json=app).status_code == 200
    app = application("other")
    app["spec"]["destination"] = {"name": "nowhere", "namespace": "shop-prod"}
    refused = argo.post("/api/v1/applications", json=app)
    assert "there are no clusters with this name: nowhere" in grpc_error(refused)[1]


def test_source_repo_globs() -> None:
    patterns = [f"{GITLAB}/**", "https://gitlab.cpn.example/forge/shared/*"]
    assert repo_permitted(patterns, f"{GITLAB}/infra.git")
    assert repo_permitted(patterns, f"{GITLAB}/group/deep/infra.git")
    assert repo_permitted(patterns, "https://gitlab.cpn.example/forge/shared/charts.git")
    assert not repo_permitted(patterns, "https://gitlab.cpn.example/forge/shared/a/b.git")
    assert not repo_permitted(patterns, "https://github.com/evil/infra.git")
    assert repo_permitted(["*"], "https://anything.example/a/b/c.git")
    assert not repo_permitted(["*", "!https://gitlab.cpn.example/x/**"], "https://gitlab.cpn.example/x/y.git")
    assert repo_permitted(["*", "!https://gitlab.cpn.example/x/**"], "https://gitlab.cpn.example/z/y.git")
    assert repo_permitted(["https://GitLab.cpn.example/forge/shop/infra"], f"{GITLAB}/infra.git")


# --------------------------------------------------------------------------- faults


def test_fault_switches(argo: httpx.Client, state: State) -> None:
    state.faults.down = True
    down = argo.get("/api/v1/applications")
    assert down.status_code == 503
    assert grpc_error(down)[0] == 14
    state.faults.clear()
    state.faults.fail("GET /api/v1/projects", 500, times=1)
    assert argo.get("/api/v1/projects").status_code == 500
    assert argo.get("/api/v1/projects").status_code == 200


# --------------------------------------------------------------------------- phase 2: operations


class Receiver:
    """Stands in for the bot's ``POST /hooks/argocd``: records the notifications."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], dict[str, Any]]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await AppSwitch()(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.received.append((headers, json.loads(body)))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture(scope="module")
def receiver_server() -> Iterator[tuple[Receiver, EmulatorServer]]:
    receiver = Receiver()
    with EmulatorServer(receiver, name="hook-receiver") as running:
        yield receiver, running


@pytest.fixture
def hooks(receiver_server: tuple[Receiver, EmulatorServer], state: State) -> Receiver:
    receiver, running = receiver_server
    receiver.received.clear()
    state.notification_webhooks.append((f"{running.url}/hooks/argocd", {"X-Cpn-Webhook-Secret": "s3cr3t"}))
    return receiver


@pytest.fixture
def fast(state: State) -> State:
    state.timings.sync_seconds = 0.02
    state.timings.health_seconds = 0.02
    return state


REV1 = "1" * 40
REV2 = "2" * 40


def events(receiver: Receiver) -> list[str]:
    return [payload["event"] for _, payload in receiver.received]


def wait_events(receiver: Receiver, count: int) -> None:
    deadline = time.monotonic() + 3
    while len(receiver.received) < count and time.monotonic() < deadline:
        time.sleep(0.005)


def test_sync_runs_succeeds_and_becomes_healthy(argo: httpx.Client, state: State, hooks: Receiver) -> None:
    state.timings.sync_seconds = 0.2
    state.timings.health_seconds = 0.3
    shop_project(state)
    state.add_application(application())
    state.set_target_revision("shop-dev-api", REV1)

    started = argo.post("/api/v1/applications/shop-dev-api/sync", json={"prune": True})
    assert started.status_code == 200
    body = started.json()
    assert body["operation"]["sync"]["revision"] == REV1
    assert body["operation"]["initiatedBy"] == {"username": "admin"}
    assert body["status"]["operationState"]["phase"] == "Running"
    busy = argo.post("/api/v1/applications/shop-dev-api/sync", json={})
    assert busy.status_code == 400
    code, message = grpc_error(busy)
    assert code == 9 and message.endswith("another operation is already in progress")

    progressing = state.wait_until(
        "shop-dev-api", lambda a: a["status"].get("operationState", {}).get("phase") == "Succeeded"
    )
    assert progressing["status"]["health"]["status"] == "Progressing"
    app = state.wait_idle("shop-dev-api")
    fixture = json.loads(FIXTURE.read_text())["status"]
    status = app["status"]
    assert status["health"] == {"status": "Healthy"}
    assert status["sync"]["status"] == "Synced" and status["sync"]["revision"] == REV1
    op_state = status["operationState"]
    assert set(fixture["operationState"]) <= set(op_state)
    assert op_state["message"] == "successfully synced (all tasks run)"
    assert op_state["syncResult"]["revision"] == REV1
    assert {r["status"] for r in op_state["syncResult"]["resources"]} == {"Synced"}
    entry = status["history"][0]
    assert set(fixture["history"][0]) <= set(entry)
    assert entry["id"] == 0 and entry["revision"] == REV1
    assert entry["source"] == app["spec"]["source"]
    assert {r["health"]["status"] for r in status["resources"]} == {"Healthy"}
    assert status["summary"]["images"]

    wait_events(hooks, 2)
    assert events(hooks) == ["on-sync-succeeded", "on-deployed"]
    headers, payload = hooks.received[1]
    assert headers["x-cpn-webhook-secret"] == "s3cr3t"
    assert headers["content-type"] == "application/json"
    assert set(payload) == {"app", "event", "revision", "syncStatus", "healthStatus", "at"}
    assert payload["app"] == "shop-dev-api" and payload["revision"] == REV1
    assert (payload["syncStatus"], payload["healthStatus"]) == ("Synced", "Healthy")


def test_degraded_scenario(argo: httpx.Client, fast: State, hooks: Receiver) -> None:
    shop_project(fast)
    fast.add_application(application())
    fast.scenarios["shop-dev-api"] = "degraded"
    argo.post("/api/v1/applications/shop-dev-api/sync", json={})
    app = fast.wait_idle("shop-dev-api")
    assert app["status"]["operationState"]["phase"] == "Succeeded"
    assert app["status"]["health"]["status"] == "Degraded"
    deployment = next(r for r in app["status"]["resources"] if r["kind"] == "Deployment")
    assert deployment["health"]["status"] == "Degraded"
    wait_events(hooks, 2)
    assert events(hooks) == ["on-sync-succeeded", "on-health-degraded"]
    assert hooks.received[1][1]["healthStatus"] == "Degraded"


def test_sync_failed_scenario(argo: httpx.Client, fast: State, hooks: Receiver) -> None:
    shop_project(fast)
    fast.add_application(application())
    fast.scenarios["shop-dev-api"] = "sync_failed"
    argo.post("/api/v1/applications/shop-dev-api/sync", json={})
    app = fast.wait_idle("shop-dev-api")
    op_state = app["status"]["operationState"]
    assert op_state["phase"] == "Failed"
    assert op_state["message"].startswith("one or more objects failed to apply")
    assert "SyncFailed" in {r["status"] for r in op_state["syncResult"]["resources"]}
    assert "history" not in app["status"]
    assert app["status"]["sync"]["status"] == "OutOfSync"
    wait_events(hooks, 1)
    assert events(hooks) == ["on-sync-failed"]


def test_rollback(argo: httpx.Client, fast: State) -> None:
    shop_project(fast)
    fast.add_application(application())
    for revision in (REV1, REV2):
        argo.post("/api/v1/applications/shop-dev-api/sync", json={"revision": revision})
        fast.wait_idle("shop-dev-api")
    fast.set_target_revision("shop-dev-api", REV2)
    argo.get("/api/v1/applications/shop-dev-api", params={"refresh": "normal"})

    unknown = argo.post("/api/v1/applications/shop-dev-api/rollback", json={"id": 7})
    assert unknown.status_code == 400
    assert grpc_error(unknown) == (3, "application shop-dev-api does not have deployment with id 7")
    rolled = argo.post("/api/v1/applications/shop-dev-api/rollback", json={"id": 0})
    assert rolled.status_code == 200
    assert rolled.json()["operation"]["sync"]["revision"] == REV1
    app = fast.wait_idle("shop-dev-api")
    assert [h["revision"] for h in app["status"]["history"]] == [REV1, REV2, REV1]
    assert [h["id"] for h in app["status"]["history"]] == [0, 1, 2]
    assert app["status"]["sync"]["status"] == "OutOfSync"  # git still says REV2


def test_terminate_a_running_operation(argo: httpx.Client, state: State, hooks: Receiver) -> None:
    state.timings.sync_seconds = 5
    shop_project(state)
    state.add_application(application())
    nothing = argo.delete("/api/v1/applications/shop-dev-api/operation")
    assert nothing.status_code == 400
    assert grpc_error(nothing) == (3, "Unable to terminate operation. No operation is in progress")
    argo.post("/api/v1/applications/shop-dev-api/sync", json={})
    stopped = argo.delete("/api/v1/applications/shop-dev-api/operation")
    assert stopped.status_code == 200 and stopped.json() == {}
    app = state.wait_idle("shop-dev-api", timeout=2)
    assert app["status"]["operationState"]["phase"] == "Failed"
    assert app["status"]["operationState"]["message"] == "Operation terminated"
    wait_events(hooks, 1)
    assert events(hooks) == ["on-sync-failed"]


def test_resource_tree(argo: httpx.Client, fast: State) -> None:
    shop_project(fast)
    fast.add_application(application())
    assert argo.get("/api/v1/applications/shop-dev-api/resource-tree").json() == {}
    argo.post("/api/v1/applications/shop-dev-api/sync", json={"revision": REV1})
    fast.wait_idle("shop-dev-api")
    nodes = argo.get("/api/v1/applications/shop-dev-api/resource-tree").json()["nodes"]
    assert [n["kind"] for n in nodes] == ["Service", "Deployment", "ReplicaSet", "Pod"]
    by_kind = {n["kind"]: n for n in nodes}
    assert by_kind["ReplicaSet"]["parentRefs"][0]["uid"] == by_kind["Deployment"]["uid"]
    assert by_kind["Pod"]["parentRefs"][0]["name"] == by_kind["ReplicaSet"]["name"]
    assert by_kind["Pod"]["health"] == {"status": "Healthy"}
    assert by_kind["Pod"]["images"][0].endswith(REV1[:8])
    assert argo.get("/api/v1/applications/ghost/resource-tree").status_code == 403


def test_automated_sync_follows_git(argo: httpx.Client, fast: State) -> None:
    shop_project(fast)
    fast.set_target_revision("shop-dev-api", REV1)
    auto = application()
    auto["spec"]["syncPolicy"] = {"automated": {"prune": True, "selfHeal": True}}
    argo.post("/api/v1/applications", json=auto)
    app = fast.wait_until("shop-dev-api", lambda a: a["status"]["health"]["status"] == "Healthy")
    assert app["status"]["history"][0]["initiatedBy"]["automated"] is True
    assert app["status"]["sync"] == {**app["status"]["sync"], "status": "Synced", "revision": REV1}

    fast.set_target_revision("shop-dev-api", REV2)
    argo.get("/api/v1/applications/shop-dev-api", params={"refresh": "normal"})
    app = fast.wait_until("shop-dev-api", lambda a: len(a["status"].get("history", [])) == 2)
    assert app["status"]["history"][1]["revision"] == REV2
    refused = argo.post("/api/v1/applications/shop-dev-api/sync", json={"revision": "release"})
    assert grpc_error(refused) == (9, "Cannot sync to release: auto-sync currently set to main")
    assert argo.post("/api/v1/applications/shop-dev-api/rollback", json={"id": 0}).status_code == 400


def test_dry_run_changes_nothing(argo: httpx.Client, fast: State) -> None:
    shop_project(fast)
    fast.add_application(application())
    argo.post("/api/v1/applications/shop-dev-api/sync", json={"dryRun": True})
    app = fast.wait_idle("shop-dev-api")
    assert app["status"]["operationState"]["phase"] == "Succeeded"
    assert app["status"]["operationState"]["operation"]["sync"]["dryRun"] is True
    assert "history" not in app["status"]
    assert app["status"]["health"]["status"] == "Missing"


def test_delete_during_a_sync(argo: httpx.Client, fast: State) -> None:
    shop_project(fast)
    fast.add_application(application())
    argo.post("/api/v1/applications/shop-dev-api/sync", json={})
    assert argo.delete("/api/v1/applications/shop-dev-api").status_code == 200
    wait_for(lambda: fast.app("shop-dev-api") is None, what="the cascade delete to finish")


# --------------------------------------------------------------------------- rules of the real server


def test_a_project_put_replaces_its_metadata(argo: httpx.Client) -> None:
    body = project_body()
    body["project"]["metadata"]["labels"] = {"team": "shop"}
    body["project"]["metadata"]["annotations"] = {"owner": "ops"}
    body["project"]["metadata"]["finalizers"] = ["resources-finalizer.argocd.argoproj.io"]
    created = argo.post("/api/v1/projects", json=body).json()
    update = {"project": {"metadata": {"name": "shop", "resourceVersion": created["metadata"]["resourceVersion"]}}}
    update["project"]["spec"] = created["spec"]
    replaced = argo.put("/api/v1/projects/shop", json=update).json()["metadata"]
    assert not {"labels", "annotations", "finalizers"} & set(replaced)


def test_a_cascade_delete_marks_the_application_until_its_resources_are_gone(argo: httpx.Client, state: State) -> None:
    shop_project(state)
    state.add_application(application())
    state.timings.cascade_delete_seconds = 0.3
    assert argo.delete("/api/v1/applications/shop-dev-api").json() == {}
    deleting = argo.get("/api/v1/applications/shop-dev-api").json()["metadata"]
    assert "deletionTimestamp" in deleting and deleting["finalizers"] == ["resources-finalizer.argocd.argoproj.io"]
    assert grpc_error(argo.delete("/api/v1/projects/shop")) == (3, "project is referenced by 1 applications")
    refused = argo.post("/api/v1/applications/shop-dev-api/sync", json={})
    assert refused.status_code == 400 and grpc_error(refused) == (9, "application is deleting")
    assert argo.delete("/api/v1/applications/shop-dev-api").status_code == 200  # idempotent meanwhile
    wait_for(lambda: state.app("shop-dev-api") is None, what="the controller to drop the finalizer")
    assert argo.delete("/api/v1/projects/shop").json() == {}


def test_a_refresh_answers_once_the_application_is_reconciled(argo: httpx.Client, state: State) -> None:
    shop_project(state)
    state.add_application(application())
    state.timings.refresh_seconds = 0.3
    started = time.monotonic()
    argo.get("/api/v1/applications/shop-dev-api")
    plain = time.monotonic() - started
    started = time.monotonic()
    argo.get("/api/v1/applications/shop-dev-api", params={"refresh": "normal"})
    assert plain < 0.3 <= time.monotonic() - started


def window(kind: str, *, manual: bool = False, schedule: str = "* * * * *") -> dict[str, Any]:
    return {"kind": kind, "schedule": schedule, "duration": "1h", "applications": ["shop-*"], "manualSync": manual}


@pytest.mark.parametrize(
    ("windows", "allowed"),
    [
        ([window("deny")], False),
        ([window("deny", manual=True)], True),
        ([window("allow", schedule="0 0 30 2 *")], False),  # an allow window that never opens
        ([window("allow", schedule="0 0 30 2 *", manual=True)], True),
        ([window("allow"), window("deny", schedule="0 0 30 2 *")], True),
    ],
)
def test_sync_windows_block_a_manual_sync(
    argo: httpx.Client, state: State, windows: list[dict[str, Any]], allowed: bool
) -> None:
    shop_project(state)
    state.projects["shop"]["spec"]["syncWindows"] = windows
    state.add_application(application())
    response = argo.post("/api/v1/applications/shop-dev-api/sync", json={})
    if allowed:
        assert response.status_code == 200
    else:
        assert response.status_code == 403
        assert grpc_error(response) == (7, "cannot sync: blocked by sync window")


def test_a_revision_sync_needs_override_when_the_setting_asks(argo: httpx.Client, state: State) -> None:
    shop_project(state)
    state.add_application(application())
    state.require_override_for_revision_sync = True
    refused = argo.post("/api/v1/applications/shop-dev-api/sync", json={"revision": REV1})
    assert refused.status_code == 403
    code, message = grpc_error(refused)
    assert code == 7 and message.startswith("permission denied: applications, override, shop/shop-dev-api, sub: admin")
    assert argo.post("/api/v1/applications/shop-dev-api/sync", json={}).status_code == 200  # the target: no override


def test_auto_sync_refuses_another_revision(argo: httpx.Client, state: State) -> None:
    shop_project(state)
    state.add_application(application())
    with state.lock:
        state.apps["shop-dev-api"].data["spec"]["syncPolicy"] = {"automated": {"prune": True}}
    refused = argo.post("/api/v1/applications/shop-dev-api/sync", json={"revision": REV1})
    assert refused.status_code == 400
    assert grpc_error(refused) == (9, f"Cannot sync to {REV1}: auto-sync currently set to main")


def test_an_application_put_replaces_labels_annotations_and_finalizers(argo: httpx.Client, state: State) -> None:
    shop_project(state)
    created = state.add_application(application())
    body = {"metadata": {"name": "shop-dev-api", "annotations": {"a": "1"}}, "spec": created["spec"]}
    replaced = argo.put("/api/v1/applications/shop-dev-api", json=body).json()["metadata"]
    assert replaced.get("annotations") == {"a": "1"} and "labels" not in replaced


def test_an_upsert_merges_labels(argo: httpx.Client, state: State) -> None:
    shop_project(state)
    state.add_application(application())
    again = application()
    again["metadata"]["labels"] = {"extra": "yes"}
    again["spec"]["source"]["path"] = "deploy"
    merged = argo.post("/api/v1/applications", params={"upsert": "true"}, json=again).json()["metadata"]["labels"]
    assert merged == {"dso/project": "shop", "dso/environment": "dev", "extra": "yes"}
