"""The Mattermost emulator's web view, over HTTP: off by default, its key, its files, its headers."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from bot.sandbox.web import web_texts
from services.emulators import mattermost_web
from services.emulators.base import EmulatorServer
from services.emulators.mattermost import State, create_app

PAGES = ("/web", "/web/", "/web/static/app.js", "/web/static/markdown.js", "/web/static/style.css", "/web/texts")


@pytest.fixture
def emulator() -> Iterator[tuple[State, httpx.Client]]:
    state = State()
    team = state.add_team("cloud-pi-native", "Cloud π Native")
    for name in ("alice", "bob"):
        user, _ = state.add_user(name, first_name=name.title())
        state.add_team_member(team["id"], user["id"])
    state.add_user("cpn-bot", is_bot=True)
    server = EmulatorServer(create_app(state), name="emulator-mattermost").start()
    client = httpx.Client(base_url=server.url, follow_redirects=False)
    try:
        yield state, client
    finally:
        client.close()
        server.stop()


@pytest.mark.parametrize("path", [*PAGES, "/web/session"])
def test_without_the_view_every_web_route_is_the_apis_404(emulator: tuple[State, httpx.Client], path: str) -> None:
    _, client = emulator
    answer = client.get(path)
    assert answer.status_code == 404
    assert answer.json()["id"] == "api.context.404.app_error"


def test_the_page_and_its_files_have_a_strict_content_security_policy(emulator: tuple[State, httpx.Client]) -> None:
    state, client = emulator
    mattermost_web.enable(state, web_texts("fr"))
    assert client.get("/web").headers["location"] == "/web/"
    page = client.get("/web/")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy and "unsafe-inline" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert client.get("/web/static/app.js").headers["content-type"].startswith("text/javascript")


@pytest.mark.parametrize(
    "name", ["../mattermost.py", "..%2Fmattermost.py", "%2e%2e%2fmattermost_web.py", "missing.js", "index.html~"]
)
def test_only_the_views_own_files_are_served(emulator: tuple[State, httpx.Client], name: str) -> None:
    state, client = emulator
    mattermost_web.enable(state, {})
    assert client.get(f"/web/static/{name}").status_code == 404


@pytest.mark.parametrize("key", [None, "", "not-the-key"])
def test_the_session_needs_the_views_key(emulator: tuple[State, httpx.Client], key: str | None) -> None:
    state, client = emulator
    mattermost_web.enable(state, {})
    answer = client.get("/web/session", headers={"X-Web-Key": key} if key is not None else {})
    assert answer.status_code == 401
    assert answer.json()["id"] == "api.context.session_expired.app_error"
    assert "token" not in answer.text


def test_the_session_lists_the_people_with_tokens_that_work(emulator: tuple[State, httpx.Client]) -> None:
    state, client = emulator
    key = mattermost_web.enable(state, web_texts("en"), "en")
    session = client.get("/web/session", headers={"X-Web-Key": key}).json()
    assert session["team"]["name"] == "cloud-pi-native"
    assert [u["username"] for u in session["users"]] == ["alice", "bob"]  # not the bot account
    for user in session["users"]:
        me = client.get("/api/v4/users/me", headers={"Authorization": f"Bearer {user['token']}"}).json()
        assert me["username"] == user["username"]
    texts = client.get("/web/texts").json()
    assert texts["language"] == "en"
    assert texts["texts"]["only_you"] == "(Only visible to you)"  # Mattermost's own words


@pytest.mark.parametrize(
    ("language", "label"), [("fr", "(Visible uniquement par vous)"), ("en", "(Only visible to you)")]
)
def test_the_views_texts_come_from_the_catalog(language: str, label: str) -> None:
    assert web_texts(language)["only_you"] == label
    assert web_texts("de") == web_texts("fr")  # French by default
