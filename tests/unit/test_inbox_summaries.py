"""Bodies of processed events are not kept: marked events lose theirs, older rows are cleared."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bot.inbox import Decision, Delivery, Inbox
from bot.retention import clear_old_rows
from bot.store import Store, now


def rows(store: Store) -> list[tuple[Any, ...]]:
    query = "SELECT delivery_id, status, body, headers, size, event_type, project_key FROM inbox ORDER BY id"
    return store.inbox_db.execute(query).fetchall()


def test_a_marked_event_keeps_its_summary_and_a_pending_one_its_body(tmp_path: Path) -> None:
    store = Store(tmp_path / "bot.sqlite")
    inbox = Inbox(store)
    done, _ = inbox.accept(Delivery("trivy", "d1", "report", '{"big": "report"}', {"user-agent": "ci"}, "alpha"))
    inbox.accept(Delivery("trivy", "d2", "report", '{"next": 1}', {}, "alpha"))
    asyncio.run(inbox._mark([Decision(done, "trivy", "d1", "done", "", now())]))
    assert rows(store) == [
        ("d1", "done", "", "{}", 17, "report", "alpha"),
        ("d2", "pending", '{"next": 1}', "{}", 11, "report", "alpha"),
    ]
    assert inbox.accept(Delivery("trivy", "d1", "report", "{}"))[1] is False  # still deduplicated


def test_retention_clears_bodies_kept_by_an_older_version(tmp_path: Path) -> None:
    store = Store(tmp_path / "bot.sqlite")
    store.inbox_db.execute(
        "INSERT INTO inbox (source, delivery_id, body, status, received_at) VALUES "
        "('gitlab', 'old', ?, 'done', ?), ('gitlab', 'new', ?, 'pending', ?)",
        ('{"x": 1}', now(), '{"y": 2}', now()),
    )
    asyncio.run(clear_old_rows(SimpleNamespace(store=store)))  # type: ignore[arg-type]
    assert [(r[0], r[2]) for r in rows(store)] == [("old", ""), ("new", '{"y": 2}')]
