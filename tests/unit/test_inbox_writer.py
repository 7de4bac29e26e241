"""The web process's group commit: every event durable before its answer, many per commit."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from bot.inbox import Delivery, Inbox
from bot.inbox_writer import InboxWriter
from bot.store import Store


def test_concurrent_events_share_commits_and_each_gets_its_own_row(tmp_path: Path) -> None:
    store = Store(tmp_path / "bot.sqlite")
    writer = InboxWriter(store.inbox_path)

    async def burst() -> list[tuple[int, bool]]:
        writer.start()
        headers = {"x-gitlab-event": "Pipeline Hook"}
        deliveries = [Delivery("gitlab", f"d{i}", "Pipeline Hook", "{}", headers, "alpha") for i in range(200)]
        try:
            return await asyncio.gather(*(writer.accept(d) for d in deliveries))
        finally:
            await writer.stop()

    results = asyncio.run(burst())
    assert all(new for _, new in results) and len({row for row, _ in results}) == 200
    assert store.count("inbox", "status = 'pending' AND project_key = 'alpha'") == 200
    assert writer.rows == 200 and writer.commits < 200  # answered after a commit shared by several


def test_a_delivery_seen_before_answers_its_first_row_as_the_direct_path_does(tmp_path: Path) -> None:
    store = Store(tmp_path / "bot.sqlite")
    inbox = Inbox(store)
    first = inbox.accept(Delivery("gitlab", "same", "Push Hook", "{}"))

    async def again() -> tuple[tuple[int, bool], tuple[int, bool]]:
        inbox.writer = InboxWriter(store.inbox_path)
        inbox.writer.start()
        try:
            return (
                await inbox.receive(Delivery("gitlab", "same", "Push Hook", "{}")),
                await inbox.receive(Delivery("sonarqube", "same", "quality_gate", "{}")),
            )
        finally:
            await inbox.writer.stop()

    duplicate, other = asyncio.run(again())
    assert first == (first[0], True) and duplicate == (first[0], False)
    assert other[1] is True and other[0] != first[0]  # deliveries are unique per source


def test_while_another_process_holds_the_lock_the_writer_waits_without_blocking_the_loop(tmp_path: Path) -> None:
    store = Store(tmp_path / "bot.sqlite")
    other = sqlite3.connect(store.inbox_path, isolation_level=None)
    writer = InboxWriter(store.inbox_path)

    async def scenario() -> tuple[int, bool]:
        writer.start()
        other.execute("BEGIN IMMEDIATE")  # the worker, marking what it processed
        answer = asyncio.create_task(writer.accept(Delivery("gitlab", "d1", "Push Hook", "{}")))
        for _ in range(20):  # the loop keeps turning meanwhile
            await asyncio.sleep(0.001)
        assert not answer.done()  # not acknowledged: not durable yet
        other.execute("COMMIT")
        try:
            return await asyncio.wait_for(answer, 5)
        finally:
            await writer.stop()

    row_id, new = asyncio.run(scenario())
    assert new and store.count("inbox", "id = ?", (row_id,)) == 1


def test_once_quiet_the_writer_checkpoints_the_inbox_file_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.inbox_writer.CHECKPOINT_WHEN_IDLE", 0.05)
    store = Store(tmp_path / "bot.sqlite")
    writer = InboxWriter(store.inbox_path)

    async def scenario() -> None:
        writer.start()
        await writer.accept(Delivery("gitlab", "d1", "Push Hook", "{}"))
        assert writer.checkpoints == 0  # not while events come
        await asyncio.sleep(0.2)
        await writer.stop()

    asyncio.run(scenario())
    assert writer.checkpoints == 1  # once after the quiet moment, not again while nothing came
