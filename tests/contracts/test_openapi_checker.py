"""The spec checker itself: it finds what the real server would refuse (else the contract tests prove nothing)."""

from __future__ import annotations

import json

import pytest

from tests.contracts.openapi import Exchange, Spec

ISSUE_13_ROUTES = [  # what the Harbor adapter of issue 13 will call
    "GET /health",
    "POST /projects",
    "GET /projects/{project_name_or_id}",
    "DELETE /projects/{project_name_or_id}",
    "POST /projects/{project_name_or_id}/members",
    "GET /projects/{project_name_or_id}/members",
    "POST /robots",
    "GET /robots",
    "DELETE /robots/{robot_id}",
    "GET /projects/{project_name}/repositories/{repository_name}/artifacts",
    "GET /projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/tags",
    "GET /projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/additions/vulnerabilities",
    "POST /projects/{project_name_or_id}/webhook/policies",
    "GET /projects/{project_name_or_id}/webhook/policies",
    "PUT /projects/{project_name_or_id}/webhook/policies/{webhook_policy_id}",
]


def _exchange(service: str, method: str, path: str, body: object = None, status: int = 200, **kw: object) -> Exchange:
    raw = b"" if body is None else json.dumps(body).encode()
    response = kw.pop("response", None)
    return Exchange(
        service,
        method,
        path,
        str(kw.pop("query", "")),
        {},
        raw,
        status,
        {"content-type": "application/json"},
        b"" if response is None else json.dumps(response).encode(),
    )


@pytest.mark.parametrize(
    ("exchange", "problem"),
    [
        (_exchange("mattermost", "POST", "/api/v4/posts", {"message": "x"}), "required"),
        (_exchange("mattermost", "POST", "/api/v4/posts", {"channel_id": 3, "message": "x"}), "type"),
        (_exchange("mattermost", "DELETE", "/api/v4/system/ping"), "no such operation"),
        (_exchange("mattermost", "GET", "/api/v4/channels/abc/posts", query="since=yesterday"), "wrong type"),
        (_exchange("argocd", "GET", "/api/v1/applications", query="nam=x"), "not declared"),
        (_exchange("argocd", "POST", "/api/v1/applications/a/rollback", {"id": "one"}), "type"),
    ],
)
def test_a_request_the_spec_refuses_is_reported(exchange: Exchange, problem: str) -> None:
    found = Spec(exchange.service).check_request(exchange)
    assert any(problem in p for p in found), found


@pytest.mark.parametrize(
    ("exchange", "problem"),
    [
        (_exchange("mattermost", "GET", "/api/v4/system/ping", status=418), "not declared"),
        (_exchange("mattermost", "GET", "/api/v4/users/abc", response={"id": 5}), "type"),
        (_exchange("argocd", "POST", "/api/v1/session", {}, response={"token": 3}), "type"),
    ],
)
def test_a_response_the_spec_does_not_declare_is_reported(exchange: Exchange, problem: str) -> None:
    found = Spec(exchange.service).check_response(exchange)
    assert any(problem in p for p in found), found


def test_a_literal_segment_wins_over_a_parameter() -> None:
    operation = Spec("mattermost").operation("POST", "/api/v4/posts/ephemeral")
    assert operation is not None and operation.template == "/api/v4/posts/ephemeral"


def test_the_vendored_harbor_spec_covers_the_routes_of_the_harbor_adapter() -> None:
    spec = Spec("harbor")
    assert spec.base == "/api/v2.0" and spec.swagger2
    for route in ISSUE_13_ROUTES:
        method, template = route.split(" ", 1)
        operation = spec.operation(method, "/api/v2.0" + template.replace("{", "x").replace("}", ""))
        assert operation is not None and operation.template == template, route
    robot = spec.resolve({"$ref": "#/definitions/RobotCreate"})
    assert {"name", "permissions", "duration"} <= set(robot["properties"])
    report = spec.operation("GET", "/api/v2.0/projects/p/repositories/r/artifacts/sha256:1/additions/vulnerabilities")
    assert report is not None and "200" in report.spec["responses"]
