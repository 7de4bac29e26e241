"""The SonarQube emulator, driven with httpx exactly as the bot's adapter calls the Web API."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from services.emulators.base import EmulatorServer
from services.emulators.fixtures import fixture
from services.emulators.sonarqube import State, create_app
from tests.support.app_switch import AppSwitch

ADMIN_TOKEN = "squ_test_admin_token"
PASSCODE = "test-passcode"
STRONG_PASSWORD = "Str0ng-Passw0rd!"


@pytest.fixture(scope="module")
def switch() -> Iterator[tuple[AppSwitch, EmulatorServer]]:
    app = AppSwitch()
    with EmulatorServer(app, name="sonarqube") as running:
        yield app, running


@pytest.fixture
def state() -> State:
    return State(admin_token=ADMIN_TOKEN, passcode=PASSCODE)


@pytest.fixture
def server(switch: tuple[AppSwitch, EmulatorServer], state: State) -> EmulatorServer:
    app, running = switch
    app.app = create_app(state)
    return running


def http(server: EmulatorServer, **kwargs: Any) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=5, **kwargs)


@pytest.fixture
def admin(server: EmulatorServer) -> Iterator[httpx.Client]:
    with http(server, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
        yield client


@pytest.fixture
def anonymous(server: EmulatorServer) -> Iterator[httpx.Client]:
    with http(server) as client:
        yield client


def client_for(server: EmulatorServer, token: str) -> httpx.Client:
    return http(server, headers={"Authorization": f"Bearer {token}"})


def errors(response: httpx.Response) -> list[str]:
    return [e["msg"] for e in response.json()["errors"]]


def make_user(state: State, login: str) -> str:
    """A non-admin user with a token; returns the token."""
    state.add_user(login, login.title())
    return state.add_token(login, "ci")


# --------------------------------------------------------------------------- system


def test_status_needs_no_authentication(anonymous: httpx.Client, state: State) -> None:
    response = anonymous.get("/api/system/status")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"id": state.server_id, "version": state.version, "status": "UP"}


def test_health_with_passcode_or_admin(anonymous: httpx.Client, admin: httpx.Client, state: State) -> None:
    by_passcode = anonymous.get("/api/system/health", headers={"X-Sonar-Passcode": PASSCODE})
    assert by_passcode.status_code == 200
    assert by_passcode.json() == {"health": "GREEN", "causes": []}
    state.set_health("RED", ["Elasticsearch status is RED"])
    assert admin.get("/api/system/health").json() == {
        "health": "RED",
        "causes": [{"message": "Elasticsearch status is RED"}],
    }


def test_health_refuses_anonymous_non_admin_and_bad_token(
    server: EmulatorServer, anonymous: httpx.Client, state: State
) -> None:
    no_passcode = anonymous.get("/api/system/health", headers={"X-Sonar-Passcode": "wrong"})
    assert no_passcode.status_code == 403
    assert no_passcode.json() == {"errors": [{"msg": "Insufficient privileges"}]}
    with client_for(server, make_user(state, "alice")) as alice:
        assert alice.get("/api/system/health").status_code == 403
    with client_for(server, "not-a-token") as stranger:
        response = stranger.get("/api/system/health")
    assert response.status_code == 401
    assert response.content == b""


# --------------------------------------------------------------------------- authentication


def test_protected_actions_answer_401_with_empty_body(anonymous: httpx.Client, server: EmulatorServer) -> None:
    response = anonymous.get("/api/users/search")
    assert response.status_code == 401
    assert response.content == b""
    with client_for(server, "squ_revoked") as bad:
        assert bad.get("/api/users/search").status_code == 401
        assert bad.post("/api/projects/create", data={"project": "p", "name": "p"}).status_code == 401


def test_basic_auth_with_token_as_login_or_password(server: EmulatorServer, state: State) -> None:
    state.add_user("bob", "Bob", password=STRONG_PASSWORD)
    with http(server, auth=(ADMIN_TOKEN, "")) as by_token:
        assert by_token.get("/api/users/search").status_code == 200
    with http(server, auth=("bob", STRONG_PASSWORD)) as by_password:
        assert by_password.get("/api/users/search").status_code == 200
        assert by_password.get("/api/authentication/validate").json() == {"valid": True}
    with http(server, auth=("bob", "wrong")) as wrong:
        assert wrong.get("/api/users/search").status_code == 401
        assert wrong.get("/api/authentication/validate").status_code == 401


def test_post_action_refuses_get_and_unknown_url_is_404(admin: httpx.Client) -> None:
    response = admin.get("/api/projects/create", params={"project": "x", "name": "x"})
    assert response.status_code == 405
    unknown = admin.get("/api/nope")
    assert unknown.status_code == 404
    assert errors(unknown) == ["Unknown url : /api/nope"]


# --------------------------------------------------------------------------- users


def test_create_search_and_deactivate_a_local_user(admin: httpx.Client, state: State) -> None:
    created = admin.post(
        "/api/users/create",
        data={"login": "payment", "name": "payment", "password": STRONG_PASSWORD, "local": "true"},
    )
    assert created.status_code == 200
    assert created.json() == {
        "user": {"login": "payment", "name": "payment", "scmAccounts": [], "active": True, "local": True}
    }
    found = admin.get("/api/users/search", params={"q": "paym"}).json()
    assert found["paging"] == {"pageIndex": 1, "pageSize": 50, "total": 1}
    assert found["users"][0]["login"] == "payment"
    assert found["users"][0]["tokensCount"] == 0

    state.add_token("payment", "ci")
    deactivated = admin.post("/api/users/deactivate", data={"login": "payment"})
    assert deactivated.status_code == 200
    assert deactivated.json()["user"]["active"] is False
    assert state.token_names("payment") == []
    assert admin.get("/api/users/search", params={"q": "payment"}).json()["users"] == []
    gone = admin.get("/api/users/search", params={"q": "payment", "deactivated": "true"}).json()
    assert [u["login"] for u in gone["users"]] == ["payment"]
    again = admin.post("/api/users/deactivate", data={"login": "payment"})
    assert again.status_code == 404
    assert errors(again) == ["User 'payment' doesn't exist"]


def test_create_user_validation(admin: httpx.Client) -> None:
    missing = admin.post("/api/users/create", data={"login": "x1"})
    assert missing.status_code == 400
    assert errors(missing) == ["The 'name' parameter is missing"]
    no_password = admin.post("/api/users/create", data={"login": "x1", "name": "X"})
    assert errors(no_password) == ["Password is mandatory and must not be empty"]
    weak = admin.post("/api/users/create", data={"login": "x1", "name": "X", "password": "short"})
    assert errors(weak) == ["Password must be at least 12 characters long"]
    ok = admin.post("/api/users/create", data={"login": "x1", "name": "X", "password": STRONG_PASSWORD})
    assert ok.status_code == 200
    dup = admin.post("/api/users/create", data={"login": "x1", "name": "X", "password": STRONG_PASSWORD})
    assert dup.status_code == 400
    assert errors(dup) == ["An active user with login 'x1' already exists"]


def test_only_admins_create_users(server: EmulatorServer, state: State) -> None:
    with client_for(server, make_user(state, "alice")) as alice:
        response = alice.post("/api/users/create", data={"login": "x", "name": "x", "local": "false"})
    assert response.status_code == 403
    assert errors(response) == ["Insufficient privileges"]


def test_user_search_paging(admin: httpx.Client, state: State) -> None:
    for i in range(5):
        state.add_user(f"user{i}", f"User {i}")
    page = admin.get("/api/users/search", params={"q": "user", "p": 2, "ps": 2}).json()
    assert page["paging"] == {"pageIndex": 2, "pageSize": 2, "total": 5}
    assert [u["login"] for u in page["users"]] == ["user2", "user3"]


# --------------------------------------------------------------------------- user tokens


def test_admin_generates_a_token_for_a_technical_user(
    admin: httpx.Client, server: EmulatorServer, state: State
) -> None:
    state.add_user("payment", "payment", password=STRONG_PASSWORD)
    response = admin.post("/api/user_tokens/generate", data={"login": "payment", "name": "gitlab-ci"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"login", "name", "token", "createdAt", "type"}
    assert body["login"] == "payment" and body["type"] == "USER_TOKEN"
    assert body["token"].startswith("squ_")
    with client_for(server, body["token"]) as payment:
        assert payment.get("/api/authentication/validate").json() == {"valid": True}
        listed = payment.get("/api/user_tokens/search").json()
    assert listed["login"] == "payment"
    assert [t["name"] for t in listed["userTokens"]] == ["gitlab-ci"]
    assert "token" not in listed["userTokens"][0]

    dup = admin.post("/api/user_tokens/generate", data={"login": "payment", "name": "gitlab-ci"})
    assert dup.status_code == 400
    assert errors(dup) == ["A user token for login 'payment' and name 'gitlab-ci' already exists"]

    revoked = admin.post("/api/user_tokens/revoke", data={"login": "payment", "name": "gitlab-ci"})
    assert revoked.status_code == 204
    with client_for(server, body["token"]) as payment:
        assert payment.get("/api/user_tokens/search").status_code == 401


def test_tokens_of_another_user_need_admin(server: EmulatorServer, state: State) -> None:
    state.add_user("bob", "Bob")
    with client_for(server, make_user(state, "alice")) as alice:
        own = alice.post("/api/user_tokens/generate", data={"name": "laptop"})
        assert own.status_code == 200 and own.json()["login"] == "alice"
        other = alice.post("/api/user_tokens/generate", data={"login": "bob", "name": "x"})
        assert other.status_code == 403
        assert alice.get("/api/user_tokens/search", params={"login": "bob"}).status_code == 403


def test_token_for_unknown_user_is_404(admin: httpx.Client) -> None:
    response = admin.post("/api/user_tokens/generate", data={"login": "ghost", "name": "x"})
    assert response.status_code == 404
    assert errors(response) == ["User with login 'ghost' doesn't exist"]


# --------------------------------------------------------------------------- projects


def test_create_search_and_delete_projects(admin: httpx.Client, state: State) -> None:
    created = admin.post(
        "/api/projects/create",
        data={"project": "shop-api-1a2b", "name": "shop-api", "visibility": "private", "mainBranch": "main"},
    )
    assert created.status_code == 200
    assert created.json() == {
        "project": {"key": "shop-api-1a2b", "name": "shop-api", "qualifier": "TRK", "visibility": "private"}
    }
    admin.post("/api/projects/create", data={"project": "shop-web-9f9f", "name": "shop-web"})
    admin.post("/api/projects/create", data={"project": "other-0000", "name": "other"})

    found = admin.get("/api/projects/search", params={"q": "shop"}).json()
    assert found["paging"] == {"pageIndex": 1, "pageSize": 100, "total": 2}
    assert [c["key"] for c in found["components"]] == ["shop-api-1a2b", "shop-web-9f9f"]
    assert found["components"][1]["visibility"] == "public"  # SonarQube's default visibility
    by_keys = admin.get("/api/projects/search", params={"projects": "other-0000,shop-web-9f9f"}).json()
    assert by_keys["paging"]["total"] == 2

    assert admin.post("/api/projects/delete", data={"project": "shop-api-1a2b"}).status_code == 204
    assert state.project("shop-api-1a2b") is None
    missing = admin.post("/api/projects/delete", data={"project": "shop-api-1a2b"})
    assert missing.status_code == 404
    assert errors(missing) == ["Project 'shop-api-1a2b' not found"]


def test_project_key_rules(admin: httpx.Client) -> None:
    admin.post("/api/projects/create", data={"project": "Shop", "name": "Shop"})
    clash = admin.post("/api/projects/create", data={"project": "shop", "name": "shop"})
    assert clash.status_code == 400
    assert errors(clash) == ['Could not create Project with key: "shop". A similar key already exists: "Shop"']
    bad = admin.post("/api/projects/create", data={"project": "1234", "name": "digits"})
    assert bad.status_code == 400
    assert errors(bad)[0].startswith("Malformed key for Project: '1234'.")


def test_projects_search_is_for_admins(server: EmulatorServer, state: State) -> None:
    with client_for(server, make_user(state, "alice")) as alice:
        assert alice.get("/api/projects/search").status_code == 403
        # Without the provisioning permission a user cannot create projects either.
        assert alice.post("/api/projects/create", data={"project": "p", "name": "p"}).status_code == 403


# --------------------------------------------------------------------------- permissions


def test_add_and_remove_project_permissions(admin: httpx.Client, state: State) -> None:
    state.add_project("shop-api")
    state.add_user("payment", "payment")
    for permission in ("user", "codeviewer", "scan"):
        response = admin.post(
            "/api/permissions/add_user",
            data={"login": "payment", "projectKey": "shop-api", "permission": permission},
        )
        assert response.status_code == 204
    assert state.project_permissions("shop-api", "payment") == {"user", "codeviewer", "scan"}
    removed = admin.post(
        "/api/permissions/remove_user",
        data={"login": "payment", "projectKey": "shop-api", "permission": "scan"},
    )
    assert removed.status_code == 204
    assert state.project_permissions("shop-api", "payment") == {"user", "codeviewer"}


def test_permission_errors(admin: httpx.Client, state: State) -> None:
    state.add_project("shop-api")
    state.add_user("payment", "payment")
    wrong = admin.post(
        "/api/permissions/add_user", data={"login": "payment", "projectKey": "shop-api", "permission": "root"}
    )
    assert wrong.status_code == 400
    assert errors(wrong) == [
        "Value of parameter 'permission' (root) must be one of: "
        "[admin, codeviewer, issueadmin, securityhotspotadmin, scan, user]"
    ]
    no_project = admin.post(
        "/api/permissions/add_user", data={"login": "payment", "projectKey": "nope", "permission": "user"}
    )
    assert no_project.status_code == 404
    no_user = admin.post(
        "/api/permissions/add_user", data={"login": "ghost", "projectKey": "shop-api", "permission": "user"}
    )
    assert no_user.status_code == 404
    last_admin = admin.post("/api/permissions/remove_user", data={"login": "admin", "permission": "admin"})
    assert last_admin.status_code == 400


# --------------------------------------------------------------------------- webhooks


def test_webhook_lifecycle(admin: httpx.Client, state: State) -> None:
    state.add_project("shop-api")
    created = admin.post(
        "/api/webhooks/create",
        data={
            "name": "cpn-bot",
            "url": "http://127.0.0.1:8080/hooks/sonarqube",
            "project": "shop-api",
            "secret": "s3cr3t-s3cr3t-s3cr3t",
        },
    )
    assert created.status_code == 200
    hook = created.json()["webhook"]
    assert set(hook) == {"key", "name", "url", "hasSecret"}
    assert hook["hasSecret"] is True and hook["name"] == "cpn-bot"
    listed = admin.get("/api/webhooks/list", params={"project": "shop-api"}).json()
    assert listed == {"webhooks": [hook]}
    assert admin.get("/api/webhooks/list").json() == {"webhooks": []}  # no global webhook
    assert state.webhooks[hook["key"]].secret == "s3cr3t-s3cr3t-s3cr3t"

    assert admin.post("/api/webhooks/delete", data={"webhook": hook["key"]}).status_code == 204
    missing = admin.post("/api/webhooks/delete", data={"webhook": hook["key"]})
    assert missing.status_code == 404
    assert errors(missing) == [f"No webhook with key '{hook['key']}'"]


def test_webhook_rules(admin: httpx.Client, server: EmulatorServer, state: State) -> None:
    state.add_project("shop-api")
    bad_url = admin.post("/api/webhooks/create", data={"name": "x", "url": "not a url", "project": "shop-api"})
    assert bad_url.status_code == 400
    assert errors(bad_url) == ["Url parameter with value 'not a url' is not a valid url"]
    for i in range(10):
        data = {"name": f"h{i}", "url": "https://hooks.example/x", "project": "shop-api"}
        assert admin.post("/api/webhooks/create", data=data).status_code == 200
    full = admin.post(
        "/api/webhooks/create", data={"name": "h10", "url": "https://hooks.example/x", "project": "shop-api"}
    )
    assert errors(full) == ["Maximum number of webhook reached for project 'shop-api'"]
    state.validate_webhooks = True
    loopback = admin.post("/api/webhooks/create", data={"name": "g", "url": "http://127.0.0.1:9/x"})
    assert errors(loopback) == ["Invalid URL: loopback and wildcard addresses are not allowed for webhooks."]
    token = make_user(state, "alice")
    with client_for(server, token) as alice:
        data = {"name": "x", "url": "https://hooks.example/x", "project": "shop-api"}
        assert alice.post("/api/webhooks/create", data=data).status_code == 403
        state.grant("alice", "admin", "shop-api")
        assert alice.get("/api/webhooks/list", params={"project": "shop-api"}).status_code == 200


# --------------------------------------------------------------------------- faults


def test_fault_switches(admin: httpx.Client, state: State) -> None:
    state.faults.down = True
    down = admin.get("/api/system/status")
    assert down.status_code == 503
    assert "errors" in down.json()
    state.faults.clear()
    state.faults.fail("POST /api/projects/create", 500, times=1)
    assert admin.post("/api/projects/create", data={"project": "p", "name": "p"}).status_code == 500
    assert admin.post("/api/projects/create", data={"project": "p", "name": "p"}).status_code == 200


# --------------------------------------------------------------------------- phase 2: analyses


class Receiver:
    """Stands in for the bot's ``POST /hooks/sonarqube``: records raw deliveries."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 200

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
        self.received.append((headers, body))
        await send({"type": "http.response.start", "status": self.status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture(scope="module")
def receiver_server() -> Iterator[tuple[Receiver, EmulatorServer]]:
    receiver = Receiver()
    with EmulatorServer(receiver, name="hook-receiver") as running:
        yield receiver, running


@pytest.fixture
def receiver(receiver_server: tuple[Receiver, EmulatorServer]) -> tuple[Receiver, str]:
    hooks, running = receiver_server
    hooks.received.clear()
    hooks.status = 200
    return hooks, f"{running.url}/hooks/sonarqube"


FIXTURE = json.loads(fixture("sonarqube_webhook.json").read_text())
SECRET = "webhook-shared-secret"


def test_analysis_webhook_is_shaped_like_sonarqube(state: State, receiver: tuple[Receiver, str]) -> None:
    hooks, url = receiver
    state.add_project("aws", "aws")
    state.add_webhook("cpn-bot", url, project_key="aws", secret=SECRET)
    analysis = state.run_analysis("aws", "feature/payments-refactor", "7f3a1c9d" * 5, outcome="failed")

    assert len(hooks.received) == 1
    headers, raw = hooks.received[0]
    assert headers["content-type"] == FIXTURE["headers"]["Content-Type"]
    assert headers["x-sonarqube-project"] == "aws"
    assert headers["x-sonar-webhook-hmac-sha256"] == hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    body = json.loads(raw)
    expected = FIXTURE["error"]
    assert list(body) == list(expected)
    for part in ("project", "branch", "qualityGate"):
        assert list(body[part]) == list(expected[part])
    assert body["taskId"] == analysis.task_id and body["revision"] == "7f3a1c9d" * 5
    assert body["serverUrl"] == state.server_url and body["status"] == "SUCCESS"
    assert body["project"] == {"key": "aws", "name": "aws", "url": "http://localhost:9000/dashboard?id=aws"}
    assert body["branch"] == {
        "name": "feature/payments-refactor",
        "type": "BRANCH",
        "isMain": False,
        "url": "http://localhost:9000/dashboard?id=aws&branch=feature%2Fpayments-refactor",
    }
    gate = body["qualityGate"]
    assert gate["name"] == "Sonar way" and gate["status"] == "ERROR"
    coverage = gate["conditions"][0]
    assert list(coverage) == list(expected["qualityGate"]["conditions"][0])
    assert coverage == {
        "metric": "new_coverage",
        "operator": "LESS_THAN",
        "value": "42.5",
        "status": "ERROR",
        "errorThreshold": "80",
    }
    assert [c["metric"] for c in gate["conditions"]] == [
        "new_coverage",
        "new_duplicated_lines_density",
        "new_security_hotspots_reviewed",
        "new_reliability_rating",
        "new_security_rating",
        "new_maintainability_rating",
    ]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}", body["analysedAt"])
    assert body["properties"]["sonar.analysis.detectedscm"] == "git"


def test_webhooks_reached_and_recorded(admin: httpx.Client, state: State, receiver: tuple[Receiver, str]) -> None:
    hooks, url = receiver
    state.add_project("shop-api", "shop-api")
    state.add_project("other")
    state.add_webhook("project", url + "?p", project_key="shop-api")
    state.add_webhook("global", url + "?g")
    state.add_webhook("elsewhere", url + "?o", project_key="other")
    state.run_analysis("shop-api", revision="a" * 40)

    assert len(hooks.received) == 2
    for headers, raw in hooks.received:
        assert "x-sonar-webhook-hmac-sha256" not in headers  # no secret, no signature
        body = json.loads(raw)
        assert body["branch"]["isMain"] is True
        assert body["branch"]["url"] == body["project"]["url"]
        assert body["qualityGate"]["status"] == "OK"
    assert [d["status"] for d in state.delivered()] == [200, 200]
    listed = admin.get("/api/webhooks/list", params={"project": "shop-api"}).json()["webhooks"][0]
    assert listed["latestDelivery"]["success"] is True
    assert listed["latestDelivery"]["httpStatus"] == 200


def test_failed_deliveries_are_recorded_not_raised(state: State, receiver: tuple[Receiver, str]) -> None:
    hooks, url = receiver
    hooks.status = 500
    state.add_project("shop-api")
    state.add_webhook("bot", url, project_key="shop-api")
    state.add_webhook("dead", "http://127.0.0.1:9/nothing", project_key="shop-api")
    state.run_analysis("shop-api")
    outcomes = {d["url"]: d["status"] for d in state.delivered()}
    assert outcomes == {url: 500, "http://127.0.0.1:9/nothing": None}


def test_project_status_before_and_after_analyses(admin: httpx.Client, state: State) -> None:
    state.add_project("shop-api")
    none = admin.get("/api/qualitygates/project_status", params={"projectKey": "shop-api"}).json()
    assert none["projectStatus"]["status"] == "NONE"

    state.run_analysis("shop-api", "main", "b" * 40, outcome="passed")
    state.run_analysis("shop-api", "feature/x", "c" * 40, outcome="failed")
    main = admin.get("/api/qualitygates/project_status", params={"projectKey": "shop-api"}).json()
    assert main["projectStatus"]["status"] == "OK"
    feature = admin.get(
        "/api/qualitygates/project_status", params={"projectKey": "shop-api", "branch": "feature/x"}
    ).json()["projectStatus"]
    assert feature["status"] == "ERROR"
    assert feature["conditions"][0] == {
        "status": "ERROR",
        "metricKey": "new_coverage",
        "comparator": "LT",
        "errorThreshold": "80",
        "actualValue": "42.5",
    }
    assert {c["metricKey"] for c in feature["conditions"] if c["status"] == "ERROR"} == {
        "new_coverage",
        "new_duplicated_lines_density",
        "new_security_hotspots_reviewed",
        "new_reliability_rating",
    }
    assert "period" in feature


def test_project_status_errors(admin: httpx.Client, server: EmulatorServer, state: State) -> None:
    state.add_project("shop-api")
    unknown_branch = admin.get("/api/qualitygates/project_status", params={"projectKey": "shop-api", "branch": "nope"})
    assert unknown_branch.status_code == 404
    assert errors(unknown_branch) == ["Component 'shop-api' on branch 'nope' not found"]
    missing = admin.get("/api/qualitygates/project_status", params={"projectKey": "ghost"})
    assert missing.status_code == 404
    assert admin.get("/api/qualitygates/project_status").status_code == 400
    with client_for(server, make_user(state, "alice")) as alice:
        private = alice.get("/api/qualitygates/project_status", params={"projectKey": "shop-api"})
        assert private.status_code == 403
        state.grant("alice", "user", "shop-api")
        assert alice.get("/api/qualitygates/project_status", params={"projectKey": "shop-api"}).status_code == 200


def test_measures_component(admin: httpx.Client, state: State) -> None:
    state.add_project("shop-api", "shop-api")
    state.run_analysis("shop-api", "develop", outcome="failed")
    response = admin.get(
        "/api/measures/component",
        params={
            "component": "shop-api",
            "branch": "develop",
            "metricKeys": "new_coverage,bugs,alert_status,ncloc",
        },
    )
    assert response.status_code == 200
    component = response.json()["component"]
    assert {k: component[k] for k in ("key", "name", "qualifier", "branch")} == {
        "key": "shop-api",
        "name": "shop-api",
        "qualifier": "TRK",
        "branch": "develop",
    }
    assert component["measures"] == [
        {"metric": "alert_status", "value": "ERROR"},
        {"metric": "bugs", "value": "3", "bestValue": False},
        {"metric": "ncloc", "value": "4210"},
        {"metric": "new_coverage", "period": {"value": "42.5", "bestValue": False}},
    ]
    never = admin.get("/api/measures/component", params={"component": "shop-api", "metricKeys": "bugs"})
    assert never.json()["component"]["measures"] == []  # main branch not analysed yet
    unknown = admin.get("/api/measures/component", params={"component": "shop-api", "metricKeys": "bugs,foo"})
    assert unknown.status_code == 404
    assert errors(unknown) == ["The following metric keys are not found: foo"]
    ghost = admin.get("/api/measures/component", params={"component": "ghost", "metricKeys": "bugs"})
    assert errors(ghost) == ["Component key 'ghost' not found"]


def test_custom_gate_and_measure_overrides(admin: httpx.Client, state: State) -> None:
    state.add_project("shop-api")
    state.add_quality_gate("strict", [("new_violations", "GT", "0"), ("coverage", "LT", "90")])
    state.set_project_gate("shop-api", "strict")
    analysis = state.run_analysis("shop-api", outcome="passed", measures={"coverage": "95"})
    assert analysis.gate == "strict" and analysis.status == "OK"
    analysis = state.run_analysis("shop-api", measures={"new_violations": "2", "coverage": "95"})
    assert analysis.status == "ERROR"
    status = admin.get("/api/qualitygates/project_status", params={"projectKey": "shop-api"}).json()
    assert [c["status"] for c in status["projectStatus"]["conditions"]] == ["ERROR", "OK"]


def test_search_shows_last_analysis(admin: httpx.Client, state: State) -> None:
    state.add_project("shop-api")
    state.run_analysis("shop-api", revision="d" * 40)
    state.run_analysis("shop-api", "feature/y", revision="e" * 40)
    component = admin.get("/api/projects/search").json()["components"][0]
    assert component["revision"] == "d" * 40
    assert "lastAnalysisDate" in component


def test_background_processing_takes_the_configured_time(state: State, receiver: tuple[Receiver, str]) -> None:
    hooks, url = receiver
    state.timings.analysis_seconds = 0.2
    state.add_project("shop-api")
    state.add_webhook("bot", url, project_key="shop-api")
    state.run_analysis("shop-api", wait=False)
    assert state.analyses_of("shop-api") == [] and hooks.received == []
    deadline = time.monotonic() + 3
    while not hooks.received and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(state.analyses_of("shop-api")) == 1
    assert len(hooks.received) == 1


# --------------------------------------------------------------------------- versions


@pytest.mark.parametrize(("version", "bearer_status"), [("9.9.8.100196", 401), ("10.0.0.68432", 200)])
def test_bearer_tokens_are_read_from_10_0_basic_everywhere(
    server: EmulatorServer, state: State, version: str, bearer_status: int
) -> None:
    state.version = version
    with http(server, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as bearer:
        response = bearer.get("/api/users/search")
        assert response.status_code == bearer_status
        if bearer_status == 401:
            assert response.content == b""
            # The health action reads a passcode, so it has no forced login: an anonymous caller.
            health = bearer.get("/api/system/health")
            assert health.status_code == 403 and errors(health) == ["Insufficient privileges"]
    with http(server, auth=(ADMIN_TOKEN, "")) as basic:
        assert basic.get("/api/users/search").status_code == 200
        assert basic.get("/api/system/health").status_code == 200
