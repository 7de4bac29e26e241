"""The web process's group commit: every event durable before its answer, many per commit."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.inbox import Inbox
from bot.inbox_writer import InboxWriter
from bot.store import Store


def test_concurrent_events_share_commits_and_each_gets_its_own_row(tmp_path: Path) -> None:
    store = Store(tmp_path / "bot.sqlite")
    writer = InboxWriter(store.path)
    writer.start()

    async def burst() -> list[tuple[int, bool]]:
        return await asyncio.gather(
            *(
                writer.accept("gitlab", f"d{i}", "Pipeline Hook", "{}", {"x-gitlab-event": "e"}, "alpha")
                for i in range(200)
            )
        )

    try:
        results = asyncio.run(burst())
    finally:
        writer.stop()
    assert all(new for _, new in results) and len({row for row, _ in results}) == 200
    assert store.count("inbox", "status = 'pending' AND project_key = 'alpha'") == 200
    assert writer.rows == 200 and writer.commits < 200  # answered after a commit shared by several


def test_a_delivery_seen_before_answers_its_first_row_as_the_direct_path_does(tmp_path: Path) -> None:
    store = Store(tmp_path / "bot.sqlite")
    inbox = Inbox(store)
    first = inbox.accept("gitlab", "same", "Push Hook", "{}")
    inbox.writer = InboxWriter(store.path)
    inbox.writer.start()
    try:
        again = asyncio.run(inbox.receive("gitlab", "same", "Push Hook", "{}"))
        other = asyncio.run(inbox.receive("sonarqube", "same", "quality_gate", "{}"))
    finally:
        inbox.writer.stop()
    assert first == (first[0], True) and again == (first[0], False)
    assert other[1] is True and other[0] != first[0]  # deliveries are unique per source
