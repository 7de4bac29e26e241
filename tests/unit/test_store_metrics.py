"""The store migrates itself; metrics render in the Prometheus format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.metrics import Metrics
from bot.store import MIGRATIONS, Store

REQUIRED = {
    "projects",
    "members",
    "repositories",
    "environments",
    "channel_links",
    "subscriptions",
    "operations",
    "inbox_done",
    "outbox",
    "posts",
    "audit",
}


def test_migrations_create_every_table_in_wal_mode(tmp_path: Path) -> None:
    store = Store(tmp_path / "bot.sqlite")
    assert REQUIRED <= set(store.db.table_names())
    assert store.version == len(MIGRATIONS)
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.inbox_path == str(tmp_path / "bot.inbox.sqlite")  # the inbox in its own file
    assert store.inbox_db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert "inbox" not in store.db.table_names() and store.count("inbox") == 0
    store.close()
    again = Store(tmp_path / "bot.sqlite")  # re-opening applies nothing twice
    assert again.version == len(MIGRATIONS)


def test_metrics_text_format() -> None:
    metrics = Metrics()
    metrics.describe("cpn_commands_total", "Commands")
    metrics.inc("cpn_commands_total", command="help")
    metrics.inc("cpn_commands_total", command="help")
    metrics.observe("cpn_http_request_seconds", 0.02, route="/x")
    metrics.gauge("cpn_queue_depth", "Depth", lambda: {(("queue", "outbox"),): 3.0})
    text = metrics.render()
    assert "# TYPE cpn_commands_total counter" in text
    assert 'cpn_commands_total{command="help"} 2' in text
    assert 'cpn_http_request_seconds_bucket{route="/x",le="0.025"} 1' in text
    assert 'cpn_queue_depth{queue="outbox"} 3' in text


def test_another_process_metrics_are_added_to_the_rendered_ones() -> None:
    web, worker = Metrics(), Metrics()
    web.inc("cpn_webhooks_accepted_total", source="gitlab")
    worker.inc("cpn_events_processed_total", 3, source="gitlab", status="done")
    worker.inc("cpn_webhooks_accepted_total", 2, source="gitlab")
    worker.observe("cpn_outbox_delivery_seconds", 0.02)
    text = web.render([json.loads(json.dumps(worker.snapshot()))])  # as read back from the snapshot file
    assert 'cpn_webhooks_accepted_total{source="gitlab"} 3' in text
    assert 'cpn_events_processed_total{source="gitlab",status="done"} 3' in text
    assert 'cpn_outbox_delivery_seconds_bucket{le="0.025"} 1' in text
    assert 'cpn_webhooks_accepted_total{source="gitlab"} 1' in web.render()  # its own series untouched


def test_the_schema_cache_sees_tables_created_after_it_was_filled(tmp_path: Path) -> None:
    store = Store(tmp_path / "bot.sqlite")
    assert "later" not in store.db.table_names()
    store.db.execute("CREATE TABLE later (id INTEGER PRIMARY KEY)")
    assert "later" in store.db.table_names()
    store.db.table("later").insert({"id": 1})
    assert store.db.execute("SELECT COUNT(*) FROM later").fetchone()[0] == 1


def test_data_version_changes_when_another_connection_commits(tmp_path: Path) -> None:
    store, other = Store(tmp_path / "bot.sqlite"), Store(tmp_path / "bot.sqlite")
    first = store.data_version()
    store.audit("u1", "bob", "test", "x", "ok")  # its own commits do not count
    assert store.data_version() == first
    other.audit("u1", "bob", "test", "y", "ok")
    assert store.data_version() != first


def test_an_inbox_from_before_the_inbox_file_is_moved_there_once(tmp_path: Path) -> None:
    path = tmp_path / "bot.sqlite"
    old = sqlite_utils_database(path)
    for migration in MIGRATIONS[:8]:  # a database as version 8 left it, with a pending event
        migration(old)
    old.execute("PRAGMA user_version=8")
    old.execute(
        "INSERT INTO inbox (source, delivery_id, event_type, project_key, headers, body, status, attempts, error, "
        "received_at, subject, closes) VALUES ('gitlab', 'd1', 'Push Hook', 'alpha', '{}', '{}', 'pending', 0, '', "
        "1.0, '', 0)"
    )
    old.conn.close()
    store = Store(path)
    assert "inbox" not in store.db.table_names()
    assert store.inbox_db.execute("SELECT delivery_id, status FROM inbox").fetchall() == [("d1", "pending")]
    store.close()
    again = Store(path)  # nothing moved twice
    assert again.count("inbox") == 1


def sqlite_utils_database(path: Path) -> Any:
    import sqlite3

    import sqlite_utils

    return sqlite_utils.Database(sqlite3.connect(path, isolation_level=None))
