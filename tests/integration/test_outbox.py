"""Posts survive outages, rate limits and crashes, and arrive exactly once, in order."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from bot.config import OutboxConfig
from bot.metrics import Metrics
from bot.outbox import Outbox, Post
from bot.sandbox.world import World
from bot.store import Store
from tests.conftest import wait_for
from tests.support.mattermost import channel_posts


def enqueue(world: World, *posts: tuple[str, dict[str, str]]) -> None:
    bot = world.bot
    assert bot is not None

    async def go() -> None:
        for message, keys in posts:
            bot.outbox.enqueue(world.channels["equipe-alpha"], Post(message), **keys)

    world.run(go())


def messages(world: World) -> list[str]:
    return [p["message"] for p in channel_posts(world, "equipe-alpha")]


def test_a_post_queued_while_mattermost_is_down_is_delivered_once_when_it_is_back(world: World) -> None:
    mm = world.states["mattermost"]
    mm.faults.down = True
    enqueue(world, ("pendant la panne", {}))
    time.sleep(0.3)  # several attempts fail meanwhile
    assert messages(world) == []
    mm.faults.down = False
    wait_for(lambda: messages(world) == ["pendant la panne"], what="delivery after the outage")
    world.wait_idle()
    assert messages(world) == ["pendant la panne"]


def test_a_429_is_retried_after_its_retry_after(world: World) -> None:
    mm = world.states["mattermost"]
    mm.faults.fail("POST /api/v4/posts", 429, times=1, headers={"Retry-After": "1"}, body={"message": "limit exceeded"})
    started = time.monotonic()
    enqueue(world, ("limité", {}))
    wait_for(lambda: messages(world) == ["limité"], timeout=5)
    assert time.monotonic() - started >= 0.9


def test_a_card_and_its_thread_stay_in_order_and_edits_land_on_the_same_post(world: World) -> None:
    enqueue(
        world,
        ("carte v1", {"post_key": "card:1"}),
        ("réponse 1", {"root_key": "card:1"}),
        ("carte v2", {"post_key": "card:1"}),
        ("réponse 2", {"root_key": "card:1"}),
        ("carte v3", {"post_key": "card:1"}),
    )
    world.wait_idle()
    posts = channel_posts(world, "equipe-alpha")
    cards = [p for p in posts if p["message"].startswith("carte")]
    replies = [p for p in posts if p["message"].startswith("réponse")]
    assert [c["message"] for c in cards] == ["carte v3"]
    assert [r["message"] for r in replies] == ["réponse 1", "réponse 2"]
    assert all(r["root_id"] == cards[0]["id"] for r in replies)


def test_a_post_whose_creation_outcome_is_unknown_is_not_sent_twice(world: World) -> None:
    """A crash after Mattermost created the post but before the row was marked sent."""
    bot = world.bot
    assert bot is not None
    mm = world.states["mattermost"]
    mm.faults.down = True
    enqueue(world, ("une seule fois", {}))
    store = world.store()
    # Once the bot has seen its attempt fail (while the server, in this story, did create the post).
    row = wait_for(lambda: next(iter(store.db.table("outbox").rows_where("attempts > 0 AND last_error != ''")), None))
    # What the lost attempt had done on the server: the post exists, stamped with the row's uid.
    assert world.bot_user is not None
    mm.create_post(
        world.bot_user.id,
        world.channels["equipe-alpha"],
        "une seule fois",
        props={"cpn_uid": row["uid"]},
    )
    mm.faults.down = False
    world.wait_idle()
    assert messages(world) == ["une seule fois"]
    assert bot.metrics.value("cpn_outbox_recovered_total") == 1


def test_a_bot_killed_while_posts_are_queued_delivers_each_exactly_once_after_restart(tmp_path: Path) -> None:
    world = World(tmp_path, bot_in_process=False).start()
    try:
        mm = world.states["mattermost"]
        mm.faults.down = True
        port = world.bot_port
        command = world.serve_command()
        env = dict(os.environ, NO_PROXY="127.0.0.1,localhost")
        first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: _healthy(port), timeout=20, what="the bot process")
            store = Store(world.root / "cpn-bot.sqlite")
            outbox = Outbox(store, None, Metrics(), OutboxConfig())  # type: ignore[arg-type]
            channel = world.channels["equipe-alpha"]
            for n in range(20):
                outbox.enqueue(channel, Post(f"message {n}"), post_key=f"k{n % 3}" if n % 2 else "")
            wait_for(lambda: store.count("outbox", "attempts > 0") >= 4, timeout=10, what="failed attempts")
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        mm.faults.down = False
        second = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: store.count("outbox", "status = 'pending'") == 0, timeout=30, what="the queue drained")
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(10)
        posted = [p["message"] for p in channel_posts(world, "equipe-alpha")]
        plain = sorted(m for m in posted if int(m.split()[1]) % 2 == 0)
        assert plain == sorted(f"message {n}" for n in range(0, 20, 2))
        assert len(posted) == len(set(posted))  # nothing twice
        assert len([m for m in posted if int(m.split()[1]) % 2]) == 3  # one card per key, edited in place
    finally:
        world.stop()


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_an_edit_merged_by_another_process_while_a_delivery_starts_is_the_one_sent(
    world: World, tmp_path: Path
) -> None:
    """The posts worker read the row; the events worker merged a newer card into it before the
    attempt was counted: the newer card is what Mattermost gets."""
    from services.mattermost import Mattermost

    assert world.bot_user is not None
    channel = world.channels["equipe-alpha"]
    path = tmp_path / "outbox.sqlite"
    posts_side, events_side = Store(path), Store(path)
    mm = Mattermost(world.servers["mattermost"].url, world.bot_user.token, 5.0)
    poster = Outbox(posts_side, mm, Metrics(), OutboxConfig())
    producer = Outbox(events_side, None, Metrics(), OutboxConfig())  # type: ignore[arg-type]

    async def race() -> None:
        await mm.login()
        producer.enqueue(channel, Post("carte v1"), post_key="card:race")
        (row,) = poster._ready_heads()  # read: "carte v1"
        producer.enqueue(channel, Post("carte v2"), post_key="card:race")  # merged into the same row
        await poster._deliver(row)
        await mm.close()

    world.run(race())
    assert [m for m in messages(world) if m.startswith("carte")] == ["carte v2"]
    assert posts_side.count("outbox") == 1 and posts_side.count("outbox", "status = 'sent'") == 1


def test_a_database_busy_for_a_moment_does_not_stop_the_deliveries(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot = world.bot
    assert bot is not None
    original, calls = bot.outbox._ready_heads, []

    def busy_once() -> list[dict[str, object]]:
        calls.append(1)
        if len(calls) == 1:
            raise sqlite3.OperationalError("database is locked")
        return original()

    monkeypatch.setattr(bot.outbox, "_ready_heads", busy_once)
    enqueue(world, ("après le verrou", {}))
    wait_for(lambda: messages(world) == ["après le verrou"], timeout=5, what="the delivery after the busy moment")
    assert len(calls) > 1
