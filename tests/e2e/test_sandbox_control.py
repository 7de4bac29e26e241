"""The sandbox's switches over HTTP (``bot.sandbox.control_api``): what ``:scenario`` and
``:degrade`` do, behind a bearer token, refusing bad bodies with a 4xx and a reason."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bot.sandbox.control_api import MAX_BODY, ControlServer
from bot.sandbox.world import Timings, World
from tests.support.mattermost import User, text_of


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    w = World.create(timings=Timings.fast()).start()
    try:
        yield w
    finally:
        w.stop()


@pytest.fixture(scope="module")
def control(world: World) -> Iterator[ControlServer]:
    server = ControlServer(world).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(control: ControlServer) -> Iterator[httpx.Client]:
    state = control.state()
    headers = {"Authorization": f"Bearer {state['sandbox_token']}"}
    with httpx.Client(base_url=state["sandbox_url"], headers=headers, trust_env=False, timeout=10) as c:
        yield c


def services(world: World) -> dict[str, str]:
    return dict(re.findall(r"\*\*(\w+)\*\* : ([^(\n]+?) \(", text_of(User(world, "bob").run("/cpn services"))))


def test_the_state_names_a_loopback_url_and_a_long_token(control: ControlServer) -> None:
    state = control.state()
    assert state["sandbox_url"].startswith("http://127.0.0.1:")
    assert len(state["sandbox_token"]) >= 40


@pytest.mark.parametrize(
    ("body", "path", "pipeline", "quality"),
    [
        ({"repository": "demo/api", "pipeline": "fail:trivy", "quality": "failed"}, "demo/api", "fail:trivy", "failed"),
        ({"repository": "demo/front-web", "pipeline": "stuck:build"}, "demo/front-web", "stuck:build", "passed"),
        ({"repository": "demo/api", "pipeline": "success", "quality": "passed"}, "demo/api", "success", "passed"),
    ],
)
def test_scenario_sets_how_the_next_pipelines_of_a_repository_go(
    world: World, client: httpx.Client, body: dict[str, Any], path: str, pipeline: str, quality: str
) -> None:
    answer = client.post("/scenario", json=body)
    assert answer.status_code == 200, answer.text
    full = f"forge/projects/{path}"
    assert answer.json() == {"repository": path, "path": full, "pipeline": pipeline, "quality": quality}
    assert world.states["gitlab"].scenarios[full] == pipeline
    assert world.quality_outcomes[full] == quality


def test_degrade_then_restore_as_the_team_sees_it(world: World, client: httpx.Client) -> None:
    try:
        answer = client.post("/degrade", json={"service": "SonarQube", "mode": "degraded"})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"service": "sonarqube", "mode": "degraded"}
        assert services(world)["SonarQube"] == "Dégradé"
        assert client.post("/degrade", json={"service": "nexus", "mode": "down"}).status_code == 200
        assert services(world)["Nexus"] == "En échec"
    finally:
        for name in ("sonarqube", "nexus"):
            assert client.post("/degrade", json={"service": name, "mode": "ok"}).status_code == 200
    assert set(services(world).values()) == {"OK"}


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing bearer token"),
        ({"Authorization": "Bearer nope"}, "invalid token"),
        ({"Authorization": "Basic x"}, "missing bearer token"),
    ],
)
def test_without_the_token_nothing_changes(
    world: World, control: ControlServer, headers: dict[str, str], reason: str
) -> None:
    with httpx.Client(base_url=control.state()["sandbox_url"], trust_env=False, timeout=10) as anonymous:
        for route, body in (
            ("/scenario", {"repository": "demo/x", "pipeline": "fail:test"}),
            ("/degrade", {"service": "vault"}),
        ):
            answer = anonymous.post(route, json=body, headers=headers)
            assert answer.status_code == 401 and answer.json()["error"] == reason
    assert "forge/projects/demo/x" not in world.states["gitlab"].scenarios
    assert world.states["vault"].sealed is False


@pytest.mark.parametrize(
    ("route", "content", "status", "field"),
    [
        ("/scenario", b"", 400, ""),
        ("/scenario", b"not json", 400, ""),
        ("/scenario", b"[1, 2]", 400, ""),
        ("/scenario", b'{"repository": "demo/api", "pipeline": NaN}', 400, ""),
        ("/scenario", b'{"repository": "demo/api"}', 400, "pipeline"),
        ("/scenario", b'{"repository": "demo/api", "pipeline": "fail:deploy"}', 400, "pipeline"),
        ("/scenario", b'{"repository": "demo/api", "pipeline": "success", "quality": "meh"}', 400, "quality"),
        ("/scenario", b'{"repository": "api", "pipeline": "success"}', 400, "repository"),
        ("/scenario", b'{"repository": "../../etc/api", "pipeline": "success"}', 400, "repository"),
        ("/scenario", b'{"repository": "Demo/API", "pipeline": "success"}', 400, "repository"),
        ("/scenario", b'{"repository": "demo/api", "pipeline": "success", "extra": 1}', 400, "extra"),
        ("/scenario", b'{"repository": ["demo/api"], "pipeline": "success"}', 400, "repository"),
        ("/degrade", b'{"service": "vault", "mode": "broken"}', 400, "mode"),
        ("/degrade", b'{"service": "va\\u0000ult"}', 400, "service"),
        ("/degrade", b'{"service": 3}', 400, "service"),
        ("/degrade", b'{"service": "jenkins"}', 422, ""),
        ("/degrade", b'{"service": "mattermost", "mode": "down"}', 422, ""),
        ("/degrade", b'{"service": "' + b"a" * MAX_BODY + b'"}', 413, ""),
    ],
)
def test_bad_bodies_get_a_4xx_with_a_reason(
    client: httpx.Client, route: str, content: bytes, status: int, field: str
) -> None:
    answer = client.post(route, content=content, headers={"Content-Type": "application/json"})
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]
    if status == 400:
        assert answer.json()["field"] == field
        assert answer.json()["expected"].startswith('{"')
    if status == 422:
        assert "vault" in answer.json()["services"] and "mattermost" not in answer.json()["services"]


def test_a_chunked_body_too_large_is_cut_off(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"service": "'
        for _ in range(10):
            yield b"a" * 1024

    answer = client.post("/degrade", content=chunks())
    assert answer.status_code == 413


def test_other_methods_and_paths_are_refused(client: httpx.Client) -> None:
    assert client.get("/scenario").status_code == 405
    assert client.post("/restart", json={}).status_code == 404
