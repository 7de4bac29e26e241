"""Ids from Mattermost (slash form, websocket events, stored rows) never steer an API path."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

import httpx
import pytest

from bot.listener import read_post
from bot.sandbox.world import World
from services.errors import ServiceError
from services.mattermost import InvalidPathSegment, Mattermost, api_path
from tests.support.mattermost import text_of

VALID = "qzgakf1nx3yt9dr4n8585ihbxy"
HOSTILE = ["../../system/ping", f"../users/{VALID}", f"{VALID}/../../system/ping", "ME", "", f"{VALID}?x=1"]


def slash(world: World, **fields: str) -> httpx.Response:
    alice = world.users["alice"]
    form = {
        "channel_id": world.channels["equipe-alpha"],
        "channel_name": "equipe-alpha",
        "command": "/cpn",
        "team_domain": "cloud-pi-native",
        "team_id": world.team_id,
        "text": "whoami",
        "user_id": alice.id,
        "user_name": "alice",
    }
    form.update(fields)
    return httpx.post(
        f"{world.bot_url}/mattermost/command",
        headers={"Authorization": f"Token {world.slash_token}", "Content-Type": "application/x-www-form-urlencoded"},
        content=urlencode(form),
    )


@pytest.mark.parametrize("field", ["user_id", "channel_id", "team_id"])
@pytest.mark.parametrize("hostile", ["../../system/ping", "../users/{bob}"])
def test_a_slash_command_with_a_path_in_an_id_sends_no_request_and_gets_a_reason(
    world: World, field: str, hostile: str
) -> None:
    value = hostile.format(bob=world.users["bob"].id)
    state = world.states["mattermost"]
    before = len(state.requests)
    response = slash(world, **{field: value})
    # A form Mattermost would never send is refused at the edge, naming the field (bot.slash).
    assert response.status_code == 400
    assert response.json()["error"] == f"{field} is not a Mattermost id"
    later = [r.path for r in state.requests[before:]]
    assert not [p for p in later if "system/ping" in p or world.users["bob"].id in p or ".." in p]


def test_a_valid_slash_command_still_works(world: World) -> None:
    response = slash(world)
    assert response.status_code == 200
    assert "@alice" in text_of(response.json())


@pytest.mark.parametrize("value", HOSTILE)
def test_the_adapter_builds_no_path_from_something_that_is_not_an_id(value: str) -> None:
    with pytest.raises(InvalidPathSegment):
        api_path("users/{user}/teams", user=value if value != "ME" else "ME")
    with pytest.raises(InvalidPathSegment):
        api_path("channels/{channel}", channel=value)


def test_the_adapter_quotes_names_and_accepts_real_ids() -> None:
    assert api_path("users/{user}", user="me") == "/api/v4/users/me"
    assert api_path("teams/{team}/channels/name/{channel_name}", team=VALID, channel_name="equipe-alpha") == (
        f"/api/v4/teams/{VALID}/channels/name/equipe-alpha"
    )
    for name in ("..", "../x", "a/b", ".hidden", "a b"):
        with pytest.raises(InvalidPathSegment):
            api_path("users/username/{username}", username=name)


@pytest.mark.parametrize(
    "call",
    [
        lambda mm: mm.get_user("../../system/ping"),
        lambda mm: mm.is_member(VALID, "../users/me"),
        lambda mm: mm.patch_post("../../system/ping", "x"),
        lambda mm: mm.create_post("../x", "x"),
        lambda mm: mm.create_ephemeral("../x", VALID, "x"),
        lambda mm: mm.direct_channel(VALID, "../x"),
        lambda mm: mm.channel_posts_since("../x", 0),
    ],
)
def test_a_stored_row_with_a_bad_id_fails_without_a_request(world: World, call) -> None:  # type: ignore[no-untyped-def]
    state = world.states["mattermost"]

    async def attempt() -> None:
        mm = Mattermost(world.servers["mattermost"].url, world.bot_user.token if world.bot_user else "")
        try:
            await call(mm)
        finally:
            await mm.close()

    before = len(state.requests)
    with pytest.raises(ServiceError) as refused:
        asyncio.run(attempt())
    assert refused.value.status == 400 and not refused.value.transient
    assert len(state.requests) == before


@pytest.mark.parametrize("key", ["id", "user_id", "channel_id", "root_id"])
def test_a_websocket_post_with_a_bad_id_is_not_read(key: str) -> None:
    post = {"id": VALID, "user_id": VALID[::-1], "channel_id": "c" * 26, "root_id": "", "message": "@cpn-bot hi"}
    assert read_post(dict(post), "D", [], "b" * 26, "cpn-bot") is not None
    post[key] = "../../system/ping"
    assert read_post(post, "D", [], "b" * 26, "cpn-bot") is None
