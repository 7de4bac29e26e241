"""The store migrates itself; metrics render in the Prometheus format."""

from __future__ import annotations

from pathlib import Path

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
    "inbox",
    "outbox",
    "posts",
    "audit",
}


def test_migrations_create_every_table_in_wal_mode(tmp_path: Path) -> None:
    store = Store(tmp_path / "bot.sqlite")
    assert REQUIRED <= set(store.db.table_names())
    assert store.version == len(MIGRATIONS)
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
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
