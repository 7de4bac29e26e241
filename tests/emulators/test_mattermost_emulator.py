"""The Mattermost emulator driven by the real client, mattermostautodriver (httpx + aiohttp)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import aiohttp
import httpx
import pytest
import websockets
from mattermostautodriver import AsyncTypedDriver, TypedDriver
from mattermostautodriver.exceptions import (
    InvalidOrMissingParameters,
    NoAccessTokenProvided,
    NotEnoughPermissions,
    ResourceNotFound,
    TooManyRequests,
    UnknownMattermostError,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.emulators.base import EmulatorServer
from services.emulators.fixtures import fixture
from services.emulators.mattermost import State, create_app
from tests.conftest import wait_for

FIXTURE = fixture("mattermost_slash_command.txt")


@dataclass
class Capture:
    """A tiny integration server: records raw requests, answers what the test configured."""

    received: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    answers: dict[str, tuple[int, bytes, str]] = field(default_factory=dict)

    def answer(self, path: str, body: Any, status: int = 200, content_type: str = "application/json") -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.answers[path] = (status, raw, content_type)

    def last(self, path: str) -> tuple[dict[str, str], bytes]:
        for got_path, headers, body in reversed(self.received):
            if got_path == path:
                return headers, body
        raise AssertionError(f"nothing received on {path}")

    async def handle(self, request: Request) -> Response:
        self.received.append((request.url.path, dict(request.headers), await request.body()))
        status, body, content_type = self.answers.get(request.url.path, (200, b"{}", "application/json"))
        return Response(body, status_code=status, headers={"Content-Type": content_type})


@dataclass
class World:
    state: State
    url: str
    port: int
    capture: Capture
    capture_url: str
    team: dict[str, Any]
    town: dict[str, Any]
    other: dict[str, Any]
    users: dict[str, tuple[dict[str, Any], str]]

    def driver(self, name: str, token: str | None = None) -> AsyncTypedDriver:
        options = {
            "url": "127.0.0.1",
            "port": self.port,
            "scheme": "http",
            "token": token or self.users[name][1],
            "max_retries": 0,
        }
        driver = AsyncTypedDriver(options)
        driver.client.token = options["token"]  # what login() does, without the round trip
        return driver

    def uid(self, name: str) -> str:
        return str(self.users[name][0]["id"])


@dataclass
class CaptureServer:
    """One capture server for the module (starting servers is the slow part); fresh Capture per test."""

    url: str
    current: Capture

    async def handle(self, request: Request) -> Response:
        return await self.current.handle(request)


@pytest.fixture(scope="module")
def capture_server() -> Iterator[CaptureServer]:
    holder = CaptureServer("", Capture())
    capture_app = Starlette(routes=[Route("/{path:path}", holder.handle, methods=["GET", "POST"])])
    with EmulatorServer(capture_app, name="capture") as server:
        holder.url = server.url
        yield holder


@pytest.fixture
def world(capture_server: CaptureServer) -> Iterator[World]:
    capture = capture_server.current = Capture()
    state = State()
    state.integration_timeout = 2.0
    users = {
        "cpn-bot": state.add_user("cpn-bot", is_bot=True),
        # A bot account given the system_admin role: the one kind of bot allowed to send ephemerals.
        "admin-bot": state.add_user("admin-bot", is_bot=True, admin=True),
        "alice": state.add_user("alice", first_name="Alice", last_name="Martin"),
        "bob": state.add_user("bob"),
        "root": state.add_user("root", admin=True),
    }
    team = state.add_team("ministere", "Ministère")
    town = state.add_channel(team["id"], "projet-alpha", "Projet Alpha")
    other = state.add_channel(team["id"], "projet-beta", "Projet Beta", type="P")
    for name in ("cpn-bot", "admin-bot", "alice"):
        state.add_member(town["id"], users[name][0]["id"])
    state.add_member(other["id"], users["cpn-bot"][0]["id"])
    state.add_team_member(team["id"], users["bob"][0]["id"])
    with EmulatorServer(create_app(state), name="mattermost") as server:
        state.site_url = server.url
        yield World(state, server.url, server.port, capture, capture_server.url, team, town, other, users)


# ------------------------------------------------------------------------------ auth
async def test_login_with_token_and_401_without(world: World) -> None:
    driver = world.driver("alice")
    me = await driver.login()
    assert me["username"] == "alice" and me["roles"] == "system_user"
    assert len(me["id"]) == 26 and me["id"].isalnum() and me["id"] == me["id"].lower()
    bad = world.driver("alice", token="not-a-token")
    with pytest.raises(NoAccessTokenProvided) as err:
        await bad.login()
    assert err.value.error_id == "api.context.session_expired.app_error"
    async with httpx.AsyncClient(base_url=world.url, trust_env=False) as raw:
        anonymous = await raw.get("/api/v4/users/me")
        ping = await raw.get("/api/v4/system/ping")
        missing = await raw.get("/api/v4/nowhere")
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/json"
    assert set(anonymous.json()) >= {"id", "message", "detailed_error", "request_id", "status_code"}
    assert ping.status_code == 200 and ping.json()["status"] == "OK"
    assert missing.status_code == 404 and missing.json()["id"] == "api.context.404.app_error"
    recorded = [(r.path, r.auth_ok) for r in world.state.requests]
    assert ("/api/v4/users/me", False) in recorded and ("/api/v4/system/ping", None) in recorded


async def test_users_teams_and_channels(world: World) -> None:
    alice = world.driver("alice")
    bob = await alice.users.get_user_by_username("bob")
    assert bob["email"] == "bob@interieur.gouv.fr"  # ShowEmailAddress = true
    assert "notify_props" not in bob  # other users' profiles are sanitized
    assert (await alice.users.get_user_by_email("alice@interieur.gouv.fr"))["first_name"] == "Alice"
    listed = await alice.users.get_users_by_ids([world.uid("bob"), world.uid("root")])
    assert {u["username"] for u in listed} == {"bob", "root"}
    teams = await alice.teams.get_teams_for_user("me")
    assert [t["name"] for t in teams] == ["ministere"]
    channel = await alice.channels.get_channel_by_name(world.team["id"], "projet-alpha")
    assert channel["id"] == world.town["id"] and channel["type"] == "O"
    with pytest.raises(ResourceNotFound):  # private channel alice is not in: reported missing
        await alice.channels.get_channel_by_name(world.team["id"], "projet-beta")
    member = await alice.channels.get_channel_member(world.town["id"], world.uid("alice"))
    assert member["roles"] == "channel_user"
    with pytest.raises(ResourceNotFound) as err:
        await alice.channels.get_channel_member(world.town["id"], world.uid("bob"))
    assert err.value.error_id == "app.channel.get_member.missing.app_error"
    dm = await alice.channels.create_direct_channel([world.uid("alice"), world.uid("cpn-bot")])
    assert dm["type"] == "D" and dm["name"] == "__".join(sorted([world.uid("alice"), world.uid("cpn-bot")]))
    with pytest.raises(ResourceNotFound):
        await alice.users.get_user("a" * 26)


# ------------------------------------------------------------------------------ posts
async def test_create_get_patch_update_delete_and_thread(world: World) -> None:
    bot, alice = world.driver("cpn-bot"), world.driver("alice")
    root = await bot.posts.create_post(world.town["id"], "Synchronisation lancée #sync")
    assert root["type"] == "" and root["props"]["from_bot"] == "true" and root["hashtags"] == "#sync"
    assert {"id", "create_at", "update_at", "edit_at", "delete_at", "is_pinned", "metadata"} <= set(root)
    reply = await bot.posts.create_post(world.town["id"], "étape 1", root_id=root["id"])
    thread = await alice.posts.get_post_thread(reply["id"])
    assert thread["order"] == [reply["id"], root["id"]] and set(thread["posts"]) == {root["id"], reply["id"]}
    patched = await bot.posts.patch_post(root["id"], message="Synchronisation terminée")
    assert patched["message"] == "Synchronisation terminée" and patched["edit_at"] > 0
    assert patched["props"]["from_bot"] == "true"  # patch keeps what it does not change
    updated = await bot.posts.update_post(root["id"], id=root["id"], message="fini")
    assert updated["message"] == "fini" and updated["props"] == {}
    with pytest.raises(NotEnoughPermissions):
        await alice.posts.patch_post(root["id"], message="hack")
    with pytest.raises(InvalidOrMissingParameters):
        await bot.posts.update_post(root["id"], id=reply["id"], message="wrong id")
    assert (await bot.posts.delete_post(root["id"])) == {"status": "OK"}
    with pytest.raises(ResourceNotFound):
        await alice.posts.get_post(reply["id"])  # replies go with their root
    assert world.state.thread(root["id"]) == []


async def test_channel_posts_shape_and_paging(world: World) -> None:
    bot = world.driver("cpn-bot")
    ids = [(await bot.posts.create_post(world.town["id"], f"message {i}"))["id"] for i in range(5)]
    page = await bot.posts.get_posts_for_channel(world.town["id"], page=0, per_page=2)
    assert set(page) == {"order", "posts", "next_post_id", "prev_post_id", "has_next"}
    assert page["order"] == [ids[4], ids[3]] and page["has_next"] is True
    assert page["prev_post_id"] == ids[2] and page["next_post_id"] == ""
    last = await bot.posts.get_posts_for_channel(world.town["id"], page=2, per_page=2)
    assert last["order"] == [ids[0]] and last["has_next"] is False
    before = await bot.posts.get_posts_for_channel(world.town["id"], before=ids[2], per_page=10)
    assert before["order"] == [ids[1], ids[0]]
    after = await bot.posts.get_posts_for_channel(world.town["id"], after=ids[2])
    assert after["order"] == [ids[4], ids[3]]
    stamp = world.state.posts[ids[3]]["update_at"]
    since = await bot.posts.get_posts_for_channel(world.town["id"], since=stamp - 1)
    assert {ids[3], ids[4]} <= set(since["order"])
    assert all(p["update_at"] >= stamp for p in since["posts"].values())
    with pytest.raises(NotEnoughPermissions):
        await world.driver("bob").posts.get_posts_for_channel(world.other["id"])


async def test_pending_post_id_deduplicates_within_ttl(world: World) -> None:
    bot = world.driver("cpn-bot")
    body = {"channel_id": world.town["id"], "message": "une fois", "pending_post_id": "bot:outbox-42"}
    first = await bot.client.post("/api/v4/posts", options=body)
    second = await bot.client.post("/api/v4/posts", options=body)
    assert first["id"] == second["id"] and first["pending_post_id"] == "bot:outbox-42"
    assert len(world.state.channel_posts(world.town["id"])) == 1
    world.state.pending_post_ttl = 0.05
    third_body = dict(body, pending_post_id="bot:outbox-43")
    await bot.client.post("/api/v4/posts", options=third_body)
    await asyncio.sleep(0.1)
    fourth = await bot.client.post("/api/v4/posts", options=third_body)  # TTL over: a new post
    assert len(world.state.channel_posts(world.town["id"])) == 3 and fourth["id"] != first["id"]


async def test_non_member_gets_403_and_bad_root_400(world: World) -> None:
    with pytest.raises(NotEnoughPermissions) as err:
        await world.driver("bob").posts.create_post(world.town["id"], "intrus")
    assert err.value.error_id == "api.context.permissions.app_error"
    bot = world.driver("cpn-bot")
    elsewhere = await bot.posts.create_post(world.other["id"], "ailleurs")
    with pytest.raises(InvalidOrMissingParameters):
        await bot.posts.create_post(world.town["id"], "réponse", root_id=elsewhere["id"])
    with pytest.raises(InvalidOrMissingParameters):
        await bot.posts.create_post(world.town["id"], "réponse", root_id="b" * 26)


@pytest.mark.parametrize("sender", ["admin-bot", "root"])
async def test_ephemeral_from_a_system_admin_is_delivered_and_never_stored(world: World, sender: str) -> None:
    post = {"channel_id": world.town["id"], "message": "Seulement pour vous"}
    sent = await world.driver(sender).posts.create_post_ephemeral(world.uid("alice"), post)
    assert sent["type"] == "system_ephemeral" and sent["user_id"] == world.uid(sender)
    assert world.state.ephemeral_for(world.uid("alice"))[0]["message"] == "Seulement pour vous"
    assert world.state.channel_posts(world.town["id"]) == []  # never stored as a post


@pytest.mark.parametrize("sender", ["cpn-bot", "alice"])
async def test_ephemeral_without_system_admin_is_refused_like_the_real_server(world: World, sender: str) -> None:
    """api4/post.go createEphemeralPost: PermissionCreatePostEphemeral, held by system_admin only;
    a plain bot account (member of the channel) gets the same 403 as a person."""
    body = {"user_id": world.uid("bob"), "post": {"channel_id": world.town["id"], "message": "psst"}}
    async with httpx.AsyncClient(base_url=world.url, trust_env=False) as raw:
        answer = await raw.post(
            "/api/v4/posts/ephemeral", json=body, headers={"Authorization": f"Bearer {world.users[sender][1]}"}
        )
    assert answer.status_code == 403 and answer.headers["content-type"] == "application/json"
    error = answer.json()
    assert error["id"] == "api.context.permissions.app_error" and error["status_code"] == 403
    assert error["message"] == "You do not have the appropriate permissions." and error["detailed_error"] == ""
    assert world.state.ephemeral_for(world.uid("bob")) == []


async def test_a_message_or_props_over_the_limits_is_refused_like_post_is_valid(world: World) -> None:
    """model/post.go Post.IsValid: message ≤ 16 383 runes (PostMessageMaxRunesV2), props ≤ 800 000."""
    bot = world.driver("cpn-bot")
    longest = "é" * 16383  # runes, not bytes
    fits = await bot.posts.create_post(world.town["id"], longest)
    async with httpx.AsyncClient(base_url=world.url, trust_env=False) as raw:
        headers = {"Authorization": f"Bearer {world.users['cpn-bot'][1]}"}
        too_long = {"channel_id": world.town["id"], "message": longest + "x"}
        props = {"channel_id": world.town["id"], "message": "ok", "props": {"blob": "a" * 800000}}
        answers = [
            await raw.post("/api/v4/posts", json=too_long, headers=headers),
            await raw.put(f"/api/v4/posts/{fits['id']}/patch", json={"message": longest + "x"}, headers=headers),
            await raw.put(
                f"/api/v4/posts/{fits['id']}", json={"id": fits["id"], "message": longest + "x"}, headers=headers
            ),
            await raw.post("/api/v4/posts", json=props, headers=headers),
        ]
    ids = [a.json()["id"] for a in answers]
    assert [a.status_code for a in answers] == [400, 400, 400, 400]
    assert ids[:3] == ["model.post.is_valid.message_length.app_error"] * 3
    assert ids[3] == "model.post.is_valid.props.app_error"
    assert answers[0].json()["message"] == "Post Message property is longer than the maximum permitted length."
    assert [p["message"] for p in world.state.channel_posts(world.town["id"])] == [longest]


async def test_since_returns_at_most_1000_posts_and_deleted_ones_too(world: World) -> None:
    """store/sqlstore/post_store.go GetPostsSince: UpdateAt > since, no DeleteAt filter, LIMIT 1000."""
    bot = world.driver("cpn-bot")
    start = time.time() * 1000 - 1
    for i in range(1005):
        world.state.create_post(world.uid("alice"), world.town["id"], f"m{i}")
    victim = world.state.channel_posts(world.town["id"])[0]
    world.state.delete_post(victim["id"], world.uid("alice"))
    since = await bot.posts.get_posts_for_channel(world.town["id"], since=int(start))
    assert len(since["order"]) == 1000
    assert victim["id"] in since["order"] and since["posts"][victim["id"]]["delete_at"] > 0
    stamps = [since["posts"][i]["create_at"] for i in since["order"]]
    assert stamps == sorted(stamps, reverse=True)


# ------------------------------------------------------------------------------ slash commands
def _fixture_body() -> str:
    lines = FIXTURE.read_text(encoding="utf-8").splitlines()
    return next(line for line in lines if line.startswith("channel_id="))


async def test_execute_command_forwards_a_form_like_the_real_server(world: World) -> None:
    command = world.state.register_command(
        world.team["id"], "cpn", world.capture_url + "/cmd", token="cmdtoken123", creator_id=world.uid("root")
    )
    world.capture.answer("/cmd", {"response_type": "ephemeral", "text": "Projet <https://x.fr|créé>"})
    alice = world.driver("alice")
    text = "projet créer démo/x @bob. @nobody ~projet-alpha ~projet-beta a=b:c"
    result = await alice.commands.execute_command(world.town["id"], "/CPN " + text)
    headers, raw = world.capture.last("/cmd")
    body = raw.decode()
    pairs = parse_qsl(body, keep_blank_values=True)
    keys = [k for k, _ in pairs]
    assert keys == sorted(keys)  # Go's url.Values.Encode sorts keys
    fixture_keys = [k for k, _ in parse_qsl(_fixture_body())]
    assert [k for k in keys if k in fixture_keys] == fixture_keys  # same fields, same order
    assert "text=projet+cr%C3%A9er+d%C3%A9mo%2Fx+%40bob.+%40nobody" in body  # '+' for spaces, QueryEscape
    values = dict(pairs)
    assert values["command"] == "/cpn" and values["text"] == text and values["token"] == "cmdtoken123"
    assert values["team_domain"] == "ministere" and values["channel_name"] == "projet-alpha"
    assert values["user_name"] == "alice" and values["user_id"] == world.uid("alice")
    assert [v for k, v in pairs if k == "user_mentions"] == ["bob"]  # trailing '.' trimmed, unknown dropped
    assert [v for k, v in pairs if k == "user_mentions_ids"] == [world.uid("bob")]
    assert [v for k, v in pairs if k == "channel_mentions"] == ["projet-alpha"]  # private one dropped
    assert values["response_url"].startswith(world.url + "/hooks/commands/")
    assert headers["authorization"] == "Token cmdtoken123" and headers["accept"] == "application/json"
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    assert headers["user-agent"] == "Mattermost-Bot/1.1"
    assert result["text"] == "Projet <https://x.fr|créé>" and len(result["trigger_id"]) == 26
    shown = world.state.ephemeral_for(world.uid("alice"))
    assert shown[0]["message"] == "Projet [créé](https://x.fr)" and shown[0]["props"]["from_webhook"] == "true"
    assert command["token"] not in json.dumps(result)


async def test_in_channel_answer_unknown_trigger_and_integration_down(world: World) -> None:
    world.state.register_command(world.team["id"], "cpn", world.capture_url + "/cmd", token="t")
    world.capture.answer("/cmd", {"response_type": "in_channel", "text": "Bonjour à tous"})
    alice = world.driver("alice")
    await alice.commands.execute_command(world.town["id"], "/cpn aide")
    posted = world.state.channel_posts(world.town["id"])
    assert [p["message"] for p in posted] == ["Bonjour à tous"] and posted[0]["user_id"] == world.uid("alice")
    with pytest.raises(ResourceNotFound) as err:
        await alice.commands.execute_command(world.town["id"], "/inconnu x")
    assert err.value.error_id == "api.command.execute_command.not_found.app_error"
    world.capture.answer("/cmd", {"message": "boom"}, status=503)
    with pytest.raises(UnknownMattermostError) as down:
        await alice.commands.execute_command(world.town["id"], "/cpn aide")
    assert down.value.status_code == 500
    assert down.value.error_id == "api.command.execute_command.failed_resp.app_error"
    with pytest.raises(NotEnoughPermissions):  # bob is not in the channel
        await world.driver("bob").commands.execute_command(world.town["id"], "/cpn aide")


async def test_response_url_allows_five_answers(world: World) -> None:
    world.state.register_command(world.team["id"], "cpn", world.capture_url + "/cmd", token="t")
    await world.driver("alice").commands.execute_command(world.town["id"], "/cpn sync")
    _, raw = world.capture.last("/cmd")
    response_url = dict(parse_qsl(raw.decode()))["response_url"]
    async with httpx.AsyncClient(trust_env=False) as client:
        answers = [
            await client.post(response_url, json={"response_type": "in_channel", "text": f"étape {i}"})
            for i in range(6)
        ]
    assert [a.status_code for a in answers] == [200] * 5 + [400]
    assert answers[0].text == "ok" and answers[0].headers["content-type"] == "text/plain"
    assert answers[5].json()["id"] == "web.command_webhook.general.app_error"
    assert len(world.state.channel_posts(world.town["id"])) == 5
    unknown = urlsplit(response_url)._replace(path="/hooks/commands/" + "c" * 26).geturl()
    async with httpx.AsyncClient(trust_env=False) as client:
        assert (await client.post(unknown, json={"text": "x"})).status_code == 404


# ------------------------------------------------------------------------------ buttons, dialogs
async def test_post_action_round_trip(world: World) -> None:
    integration = {"url": world.capture_url + "/action", "context": {"op": "sync", "repo": "api"}}
    props = {"attachments": [{"text": "Relancer ?", "actions": [{"name": "Relancer", "integration": integration}]}]}
    bot, alice = world.driver("cpn-bot"), world.driver("alice")
    post = await bot.posts.create_post(world.town["id"], "Échec du pipeline", props=props)
    action = post["props"]["attachments"][0]["actions"][0]
    assert len(action["id"]) == 26 and "integration" not in action  # never shown to clients
    world.capture.answer("/action", {"update": {"message": "Relancé", "props": {}}, "ephemeral_text": "C'est parti"})
    answer = await alice.posts.do_post_action(post["id"], action["id"])
    assert answer["status"] == "OK" and answer["trigger_id"]
    headers, raw = world.capture.last("/action")
    sent = json.loads(raw)
    assert headers["content-type"] == "application/json"
    assert sent["context"] == {"op": "sync", "repo": "api"} and sent["user_name"] == "alice"
    assert sent["post_id"] == post["id"] and sent["team_domain"] == "ministere"
    assert {"channel_id", "channel_name", "team_id", "trigger_id", "type", "data_source"} <= set(sent)
    stored = await alice.posts.get_post(post["id"])
    assert stored["message"] == "Relancé" and stored["edit_at"] > 0
    assert stored["props"] == {}  # the update's props replace the post's
    eph = world.state.ephemeral_for(world.uid("alice"))[-1]
    assert eph["message"] == "C'est parti" and eph["root_id"] == post["id"]
    world.capture.answer("/action", {"error": "x"}, status=500)
    again = await bot.posts.create_post(world.town["id"], "bis", props=props)
    with pytest.raises(InvalidOrMissingParameters) as err:
        await alice.posts.do_post_action(again["id"], again["props"]["attachments"][0]["actions"][0]["id"])
    assert err.value.error_id == "api.post.do_action.action_integration.app_error"
    with pytest.raises(ResourceNotFound):
        await alice.posts.do_post_action(again["id"], "d" * 26)


@pytest.mark.parametrize("action_id", ["ticketresolveRésolu", "supporthelpfulÇamaaidé", "common_cancel", "a-b"])
async def test_a_press_on_an_action_id_outside_ascii_letters_and_digits_is_the_routers_404(
    world: World, action_id: str
) -> None:
    integration = {"url": world.capture_url + "/action", "context": {}}
    action = {"id": action_id, "name": "Résolu", "integration": integration}
    bot = world.driver("cpn-bot")
    # The real server stores such a post (no rule on action ids): only the press fails.
    post = await bot.posts.create_post(world.town["id"], "carte", props={"attachments": [{"actions": [action]}]})
    assert post["props"]["attachments"][0]["actions"][0]["id"] == action_id
    url = f"{world.url}/api/v4/posts/{post['id']}/actions/{quote(action_id)}"
    async with httpx.AsyncClient() as client:
        for headers in ({"Authorization": f"Bearer {world.users['alice'][1]}"}, {}):  # routed before the session
            answer = await client.post(url, json={}, headers=headers)
            assert answer.status_code == 404
            assert answer.json()["id"] == "api.context.404.app_error"
    assert world.capture.received == []


def _card(world: World, text: str, context: dict[str, Any]) -> list[dict[str, Any]]:
    """Attachments with two buttons to the capture's ``/eph``: one without id, one with its own."""
    integration = {"url": world.capture_url + "/eph", "context": context}
    cancel = {"url": world.capture_url + "/eph", "context": {"op": "cancel"}}
    buttons = [
        {"name": "Confirmer", "integration": integration},
        {"id": "annuler", "name": "Annuler", "integration": cancel},
    ]
    return [{"text": text, "actions": buttons}]


async def _press(driver: AsyncTypedDriver, post_id: str, action_id: str, cookie: str) -> Any:
    """What the web app sends for a button of an ephemeral post (mattermostautodriver has no cookie)."""
    return await driver.client.post(f"/api/v4/posts/{post_id}/actions/{action_id}", options={"cookie": cookie})


async def test_ephemeral_buttons_carry_a_cookie_that_reaches_the_integration(world: World) -> None:
    alice = world.driver("alice")
    props = {"attachments": _card(world, "Supprimer api ?", {"op": "delete", "repo": "api"})}
    body = {"channel_id": world.town["id"], "message": "Sûr ?", "props": props}
    sent = await world.driver("admin-bot").posts.create_post_ephemeral(world.uid("alice"), body)
    shown = world.state.ephemeral_for(world.uid("alice"))[-1]
    for seen in (sent, shown):
        actions = seen["props"]["attachments"][0]["actions"]
        assert len(actions[0]["id"]) == 26 and actions[1]["id"] == "annuler"  # generated if missing
        assert all("integration" not in a and a["cookie"] for a in actions)
    buttons = world.state.ephemeral_actions(world.uid("alice"))
    assert [(p, a, n) for p, a, _, n in buttons] == [
        (sent["id"], shown["props"]["attachments"][0]["actions"][0]["id"], "Confirmer"),
        (sent["id"], "annuler", "Annuler"),
    ]
    post_id, action_id, cookie, _ = buttons[0]
    answer = await _press(alice, post_id, action_id, cookie)
    assert answer["status"] == "OK" and answer["trigger_id"]
    payload = json.loads(world.capture.last("/eph")[1])
    assert payload["post_id"] == sent["id"] and payload["context"] == {"op": "delete", "repo": "api"}
    assert payload["channel_id"] == world.town["id"] and payload["channel_name"] == "projet-alpha"
    assert payload["user_id"] == world.uid("alice") and payload["user_name"] == "alice"
    assert payload["team_id"] == world.team["id"] and payload["team_domain"] == "ministere"
    assert payload["type"] == "" and payload["data_source"] == "" and payload["trigger_id"]
    await _press(alice, *buttons[1][:3])
    assert json.loads(world.capture.last("/eph")[1])["context"] == {"op": "cancel"}
    with pytest.raises(ResourceNotFound):  # not stored: without its cookie the post is unknown
        await alice.posts.do_post_action(post_id, action_id)
    # An ephemeral slash-command answer with buttons gets cookies the same way.
    world.state.register_command(world.team["id"], "cpn", world.capture_url + "/cmd", token="t")
    answer_body = {"response_type": "ephemeral", "text": "Choisir", "attachments": props["attachments"]}
    world.capture.answer("/cmd", answer_body)
    await alice.commands.execute_command(world.town["id"], "/cpn supprimer api")
    command_post, command_action, command_cookie, name = world.state.ephemeral_actions(world.uid("alice"))[-2]
    assert command_post != sent["id"] and name == "Confirmer"
    await _press(alice, command_post, command_action, command_cookie)
    assert json.loads(world.capture.last("/eph")[1])["post_id"] == command_post


async def test_a_forged_foreign_or_expired_cookie_is_refused(world: World) -> None:
    alice = world.driver("alice")
    props = {"attachments": _card(world, "Supprimer ?", {"op": "delete"})}
    for channel in (world.town, world.other):
        body = {"channel_id": channel["id"], "message": "Sûr ?", "props": props}
        await world.driver("admin-bot").posts.create_post_ephemeral(world.uid("alice"), body)
    (post_id, action_id, cookie, _), _, (private_post, private_action, private_cookie, _), _ = (
        world.state.ephemeral_actions(world.uid("alice"))
    )
    raw = base64.b64decode(cookie)
    body_json, tag = raw[:-32], raw[-32:]
    redirected = body_json.replace(b'"op":"delete"', b'"op":"delete-all"')
    assert redirected != body_json
    forged = [
        base64.b64encode(redirected + tag).decode(),  # changed content, old signature
        base64.b64encode(b'{"post_id":"' + post_id.encode() + b'"}' + bytes(32)).decode(),
        "pas du base64 !",
        cookie[:-8],
    ]
    for bad in forged:
        with pytest.raises(InvalidOrMissingParameters) as err:
            await _press(alice, post_id, action_id, bad)
        assert err.value.error_id == "api.post.do_action.action_integration.app_error"
    with pytest.raises(InvalidOrMissingParameters) as other_post:  # a genuine cookie of another post
        await _press(alice, "e" * 26, action_id, cookie)
    assert other_post.value.error_id == "api.post.do_action.action_integration.app_error"
    with pytest.raises(NotEnoughPermissions):  # alice cannot read the private channel of the cookie
        await _press(alice, private_post, private_action, private_cookie)
    world.state.action_cookie_ttl = 0.05
    await asyncio.sleep(0.1)
    with pytest.raises(InvalidOrMissingParameters):
        await _press(alice, post_id, action_id, cookie)
    assert world.capture.received == []  # nothing reached the integration


async def test_ephemeral_update_goes_back_to_the_presser_only(world: World) -> None:
    alice, bot = world.driver("alice"), world.driver("cpn-bot")
    events: dict[str, list[dict[str, Any]]] = {"alice": [], "cpn-bot": []}

    def collector(name: str) -> Any:
        async def handler(message: str) -> None:
            events[name].append(json.loads(message))

        return handler

    tasks = []
    for name, driver in (("alice", alice), ("cpn-bot", bot)):  # both are members of the channel
        await driver.login()
        tasks.append(asyncio.create_task(driver.init_websocket(collector(name))))
    try:
        for name in events:
            await _until(events[name], lambda e: e.get("event") == "hello")
        world.state.register_command(world.team["id"], "cpn", world.capture_url + "/cmd", token="t")
        attachments = _card(world, "Supprimer api ?", {"op": "delete"})
        world.capture.answer("/cmd", {"response_type": "ephemeral", "text": "Sûr ?", "attachments": attachments})
        await alice.commands.execute_command(world.town["id"], "/cpn supprimer api")
        delivered = await _until(events["alice"], lambda e: e.get("event") == "ephemeral_message")
        assert delivered["broadcast"]["user_id"] == world.uid("alice")
        assert delivered["broadcast"]["channel_id"] == world.town["id"]
        shown = json.loads(delivered["data"]["post"])
        button = shown["props"]["attachments"][0]["actions"][0]
        assert "integration" not in button and button["cookie"]
        new_card = _card(world, "Supprimé", {"op": "undo"})
        update = {"message": "Supprimé", "props": {"attachments": new_card, "from_webhook": "false"}}
        world.capture.answer("/eph", {"update": update, "ephemeral_text": "C'est <https://x.fr|fait>"})
        await _press(alice, shown["id"], button["id"], button["cookie"])
        edited_event = await _until(events["alice"], lambda e: e.get("event") == "post_edited")
        assert edited_event["broadcast"]["user_id"] == world.uid("alice")
        edited = json.loads(edited_event["data"]["post"])
        assert edited["id"] == shown["id"] and edited["message"] == "Supprimé"
        assert edited["type"] == "system_ephemeral" and edited["channel_id"] == world.town["id"]
        assert edited["user_id"] == world.uid("alice")  # UpdateEphemeralPost: the presser when unset
        assert edited["props"]["from_webhook"] == "true"  # retained from the original post
        again = edited["props"]["attachments"][0]["actions"][0]
        assert "integration" not in again and again["cookie"] and len(again["id"]) == 26
        note = await _until(events["alice"], lambda e: "fait" in e.get("data", {}).get("post", ""))
        assert note["event"] == "ephemeral_message"
        assert json.loads(note["data"]["post"])["root_id"] == shown["id"]
        messages = [p["message"] for p in world.state.ephemeral_for(world.uid("alice"))]
        assert messages == ["Supprimé", "C'est [fait](https://x.fr)"]  # the update replaced the post
        assert world.state.channel_posts(world.town["id"]) == []  # never stored
        post_id, action_id, cookie, _ = world.state.ephemeral_actions(world.uid("alice"))[0]
        await _press(alice, post_id, action_id, cookie)  # the new buttons work too
        assert json.loads(world.capture.last("/eph")[1])["context"] == {"op": "undo"}
        await asyncio.sleep(0.1)
        assert [e for e in events["cpn-bot"] if e.get("event") != "hello" and "seq_reply" not in e] == []
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _dialog(title: str = "Nouveau secret") -> dict[str, Any]:
    element = {"display_name": "Valeur", "name": "value", "type": "text", "subtype": "password"}
    return {"callback_id": "secret-set", "title": title, "elements": [element], "submit_label": "Enregistrer"}


async def test_dialog_open_needs_a_live_trigger_and_submit_reaches_the_url(world: World) -> None:
    world.state.register_command(world.team["id"], "cpn", world.capture_url + "/cmd", token="t")
    alice, bot = world.driver("alice"), world.driver("cpn-bot")
    await alice.commands.execute_command(world.town["id"], "/cpn secret set")
    _, raw = world.capture.last("/cmd")
    trigger_id = dict(parse_qsl(raw.decode()))["trigger_id"]
    dialog_url = world.capture_url + "/dialog"
    assert await bot.integration_actions.open_interactive_dialog(trigger_id, dialog_url, _dialog()) == {"status": "OK"}
    opened = world.state.dialogs_opened[-1]
    assert opened["user_id"] == world.uid("alice") and opened["dialog"]["title"] == "Nouveau secret"
    with pytest.raises(InvalidOrMissingParameters):
        await bot.integration_actions.open_interactive_dialog(trigger_id, dialog_url, _dialog(title=""))
    with pytest.raises(InvalidOrMissingParameters) as bad:
        await bot.integration_actions.open_interactive_dialog("Zm9v", dialog_url, _dialog())
    assert bad.value.error_id.startswith("interactive_message.decode_trigger_id.")
    world.state.trigger_ttl = 0.05
    await asyncio.sleep(0.1)
    with pytest.raises(InvalidOrMissingParameters) as expired:
        await bot.integration_actions.open_interactive_dialog(trigger_id, dialog_url, _dialog())
    assert expired.value.error_id == "interactive_message.decode_trigger_id.expired"
    world.capture.answer("/dialog", {"errors": {"value": "Trop court"}})
    answer = await alice.integration_actions.submit_interactive_dialog(
        dialog_url, world.town["id"], {"value": "s3cr3t"}, callback_id="secret-set", state="projet-alpha"
    )
    assert answer == {"errors": {"value": "Trop court"}}
    sent = json.loads(world.capture.last("/dialog")[1])
    assert sent == {
        "type": "dialog_submission",
        "callback_id": "secret-set",
        "state": "projet-alpha",
        "user_id": world.uid("alice"),
        "channel_id": world.town["id"],
        "team_id": world.team["id"],
        "submission": {"value": "s3cr3t"},
        "cancelled": False,
    }


# ------------------------------------------------------------------------------ websocket
async def _until(events: list[dict[str, Any]], predicate: Any, timeout: float = 3.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in events:
            if predicate(event):
                return event
        await asyncio.sleep(0.01)
    raise AssertionError(f"no matching event in {events}")


async def test_websocket_hello_posted_and_private_events(world: World) -> None:
    alice = world.driver("alice")
    await alice.login()
    events: list[dict[str, Any]] = []

    async def handler(message: str) -> None:
        events.append(json.loads(message))

    task = asyncio.create_task(alice.init_websocket(handler))
    try:
        hello = await _until(events, lambda e: e.get("event") == "hello")
        assert hello["seq"] == 0 and hello["broadcast"]["user_id"] == world.uid("alice")
        assert {"status": "OK", "seq_reply": 1} in events
        bot = world.driver("cpn-bot")
        await bot.posts.create_post(world.town["id"], "Salut @alice")
        await bot.posts.create_post(world.other["id"], "pas pour alice")
        admin_bot = world.driver("admin-bot")
        await admin_bot.posts.create_post_ephemeral(
            world.uid("alice"), {"channel_id": world.town["id"], "message": "psst"}
        )
        posted = await _until(events, lambda e: e.get("event") == "posted")
        post = json.loads(posted["data"]["post"])
        assert post["message"] == "Salut @alice" and posted["seq"] == 1
        assert posted["data"]["channel_name"] == "projet-alpha" and posted["data"]["sender_name"] == "@cpn-bot"
        assert json.loads(posted["data"]["mentions"]) == [world.uid("alice")]
        assert posted["broadcast"]["channel_id"] == world.town["id"]
        eph = await _until(events, lambda e: e.get("event") == "ephemeral_message")
        assert json.loads(eph["data"]["post"])["message"] == "psst" and eph["seq"] == 2
        assert not [e for e in events if "pas pour alice" in json.dumps(e)]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_websocket_rejects_a_bad_token(world: World) -> None:
    ws_url = world.url.replace("http://", "ws://") + "/api/v4/websocket"
    async with aiohttp.ClientSession(trust_env=False) as session, session.ws_connect(ws_url) as ws:
        challenge = {"seq": 1, "action": "authentication_challenge", "data": {"token": "wrong"}}
        await ws.send_str(json.dumps(challenge))
        reply = json.loads(await ws.receive_str())
        assert reply["status"] == "FAIL" and reply["seq_reply"] == 1 and reply["error"]["status_code"] == 401
        closing = await ws.receive()
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


class _Socket:
    """A raw websocket authenticated at the upgrade, as resuming requires (api4/websocket.go)."""

    def __init__(self, world: World, name: str, query: str = "") -> None:
        self.url = world.url.replace("http://", "ws://") + "/api/v4/websocket" + query
        self.headers = {"Authorization": f"Bearer {world.users[name][1]}"}

    async def __aenter__(self) -> websockets.ClientConnection:
        self.ws = await websockets.connect(self.url, additional_headers=self.headers)
        return self.ws

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()


async def _next_event(ws: websockets.ClientConnection) -> dict[str, Any]:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout=3))
        if "event" in message:
            return message


async def _post_events(ws: websockets.ClientConnection, count: int) -> list[tuple[int, str]]:
    """(seq, message) of the next ``count`` posted events."""
    found: list[tuple[int, str]] = []
    while len(found) < count:
        event = await _next_event(ws)
        if event["event"] == "posted":
            found.append((event["seq"], json.loads(event["data"]["post"])["message"]))
    return found


async def test_a_websocket_resumed_with_its_connection_id_gets_the_missed_events_without_hello(world: World) -> None:
    """web_conn.go: the hub keeps an inactive connection; ?connection_id&sequence_number replays
    the dead queue from that seq, then what was queued during the drop, with no hello."""
    post = world.state.create_post
    async with _Socket(world, "alice") as ws:
        hello = await _next_event(ws)
        connection_id = hello["data"]["connection_id"]
        assert hello["event"] == "hello" and hello["seq"] == 0 and len(connection_id) == 26
        post(world.uid("cpn-bot"), world.town["id"], "un")
        post(world.uid("cpn-bot"), world.town["id"], "deux")
        assert await _post_events(ws, 2) == [(1, "un"), (2, "deux")]
    wait_for(lambda: not world.state.hub.active(), what="the connection to go inactive")
    post(world.uid("cpn-bot"), world.town["id"], "pendant la coupure")
    # The client saw "un" (seq 1) only: it asks for seq 2 on.
    async with _Socket(world, "alice", f"?connection_id={connection_id}&sequence_number=2") as ws:
        first = await _next_event(ws)
        assert first["event"] == "posted" and first["seq"] == 2  # no hello
        assert await _post_events(ws, 1) == [(3, "pendant la coupure")]


@pytest.mark.parametrize("how", ["connection-reaped", "send-queue-overflow", "seq-out-of-dead-queue"])
async def test_a_websocket_that_cannot_resume_gets_a_new_connection_id_and_hello(world: World, how: str) -> None:
    """web_hub.go: the reaper (5 min) or a full send queue (256) forgets the connection; a seq no
    longer in the dead queue (128) means loss: a new id and hello with seq 0 in each case."""
    async with _Socket(world, "alice") as ws:
        connection_id = (await _next_event(ws))["data"]["connection_id"]
    wait_for(lambda: not world.state.hub.active(), what="the connection to go inactive")
    if how == "connection-reaped":
        world.state.hub.forget()
    missed = 257 if how == "send-queue-overflow" else 1
    for i in range(missed):
        world.state.create_post(world.uid("cpn-bot"), world.town["id"], f"m{i}")
    sequence = "500" if how == "seq-out-of-dead-queue" else "1"
    async with _Socket(world, "alice", f"?connection_id={connection_id}&sequence_number={sequence}") as ws:
        hello = await _next_event(ws)
        assert hello["event"] == "hello" and hello["seq"] == 0
        assert hello["data"]["connection_id"] != connection_id


@pytest.mark.parametrize("query", ["?connection_id=not-an-id&sequence_number=1", "?connection_id={id}"])
async def test_a_websocket_resume_with_a_bad_id_or_no_sequence_is_closed(world: World, query: str) -> None:
    async with _Socket(world, "alice") as ws:
        connection_id = (await _next_event(ws))["data"]["connection_id"]
    wait_for(lambda: not world.state.hub.active(), what="the connection to go inactive")
    async with _Socket(world, "alice", query.format(id=connection_id)) as ws:
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), timeout=3)


@pytest.mark.parametrize(
    ("display", "expected"), [("username", "@alice"), ("full_name", "Alice Martin")], ids=["username", "full_name"]
)
async def test_sender_name_follows_teammate_name_display_and_is_not_a_username(
    world: World, display: str, expected: str
) -> None:
    """app/notification.go: sender_name = User.GetDisplayNameWithPrefix(TeammateNameDisplay, "@")."""
    world.state.teammate_name_display = display
    async with _Socket(world, "cpn-bot") as ws:
        await _next_event(ws)
        world.state.create_post(world.uid("alice"), world.town["id"], "@cpn-bot bonjour")
        posted = await _next_event(ws)
    assert posted["event"] == "posted" and posted["data"]["sender_name"] == expected
    assert json.loads(posted["data"]["post"])["user_id"] == world.uid("alice")


# ------------------------------------------------------------------------------ admin, faults
async def test_create_command_route_for_system_admins(world: World) -> None:
    root = world.driver("root")
    created = await root.commands.create_command(world.team["id"], "P", "cpn", world.capture_url + "/cmd")
    assert created["trigger"] == "cpn" and len(created["token"]) == 26 and created["creator_id"] == world.uid("root")
    with pytest.raises(InvalidOrMissingParameters) as dup:
        await root.commands.create_command(world.team["id"], "P", "cpn", world.capture_url + "/cmd")
    assert dup.value.error_id == "api.command.duplicate_trigger.app_error"
    with pytest.raises(NotEnoughPermissions):
        await world.driver("alice").commands.create_command(world.team["id"], "P", "x", "http://h/")


async def test_faults_down_and_rate_limit(world: World) -> None:
    sync_driver = TypedDriver(
        {
            "url": "127.0.0.1",
            "port": world.port,
            "scheme": "http",
            "token": world.users["bob"][1],
            "max_retries": 0,
        }
    )
    assert sync_driver.login()["username"] == "bob"
    world.state.faults.down = True
    with pytest.raises(UnknownMattermostError) as down:
        await world.driver("alice").users.get_user("me")
    assert down.value.status_code == 503
    world.state.faults.down = False
    world.state.faults.fail("POST /api/v4/posts", 429, times=1, headers={"Retry-After": "1"})
    with pytest.raises(TooManyRequests) as limited:
        await world.driver("cpn-bot").posts.create_post(world.town["id"], "trop vite")
    assert limited.value.retry_after == 1.0
    assert (await world.driver("cpn-bot").posts.create_post(world.town["id"], "ok"))["message"] == "ok"
    sync_driver.close()
