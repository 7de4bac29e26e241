"""The Mattermost adapter against the Mattermost emulator on loopback."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from services.emulators.base import EmulatorServer
from services.emulators.mattermost import State, create_app
from services.errors import Failure, ServiceError
from services.mattermost import Mattermost


@dataclass
class Seeded:
    state: State
    channel: str
    bot: str
    alice: str
    bot_token: str


@pytest.fixture
def seeded() -> Seeded:
    state = State()
    bot, bot_token = state.add_user("cpn-bot", is_bot=True)
    alice, _ = state.add_user("alice")
    team = state.add_team("ministere", "Ministère")
    channel = state.add_channel(team["id"], "projet-alpha", "Projet Alpha")
    for user in (bot, alice):
        state.add_member(channel["id"], user["id"])
    return Seeded(state, channel["id"], bot["id"], alice["id"], bot_token)


@pytest.fixture
def server(seeded: Seeded) -> Iterator[EmulatorServer]:
    with EmulatorServer(create_app(seeded.state), name="mattermost") as server:
        yield server


@pytest.fixture
async def mm(server: EmulatorServer, seeded: Seeded) -> AsyncIterator[Mattermost]:
    client = Mattermost(server.url, seeded.bot_token, timeout=5.0)
    await client.login()
    yield client
    await client.close()


@pytest.mark.parametrize("count", [10, 1200], ids=["under-the-cap", "over-the-1000-cap"])
async def test_posts_since_are_all_found_and_deleted_ones_skipped(mm: Mattermost, seeded: Seeded, count: int) -> None:
    since = int(time.time() * 1000) - 1
    made = [seeded.state.create_post(seeded.alice, seeded.channel, f"m{i}")["id"] for i in range(count)]
    for victim in made[::7]:
        seeded.state.delete_post(victim, seeded.alice)
    found = await mm.channel_posts_since(seeded.channel, since)
    expected = [pid for i, pid in enumerate(made) if i % 7]
    assert sorted(p["id"] for p in found) == sorted(expected)  # every live one, once
    stamps = [p["create_at"] for p in found]
    assert stamps == sorted(stamps)  # oldest first


async def test_a_plain_bot_is_refused_ephemerals_but_may_open_a_direct_message(mm: Mattermost, seeded: Seeded) -> None:
    with pytest.raises(ServiceError) as refused:
        await mm.create_ephemeral(seeded.alice, seeded.channel, "psst")
    assert refused.value.failure is Failure.FORBIDDEN and refused.value.status == 403
    direct = await mm.direct_channel(mm.bot_user_id, seeded.alice)
    posted = await mm.create_post(direct["id"], "psst")
    assert posted["channel_id"] == direct["id"] and direct["type"] == "D"


async def test_channels_of_lists_the_team_channels_and_direct_messages(mm: Mattermost, seeded: Seeded) -> None:
    direct = await mm.direct_channel(mm.bot_user_id, seeded.alice)
    team_id = seeded.state.db.channels[seeded.channel]["team_id"]
    found = {c["id"] for c in await mm.channels_of(mm.bot_user_id, team_id)}
    assert found == {seeded.channel, direct["id"]}
