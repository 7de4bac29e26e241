"""The inbox keeps what it needs and nothing more: bodies dropped once processed, and an
authenticated GitLab event still acknowledged (spooled to disk) while the inbox file is locked."""

from __future__ import annotations

import json
import sqlite3
import stat
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.event_spool import spool_path
from bot.sandbox.world import World
from services.emulators.fixtures import fixtures_dir
from tests.conftest import wait_for
from tests.integration.test_pipelines import as_repo, fixture, pipeline_cards, project_secret, send
from tests.integration.test_results import push_report
from tests.support.mattermost import User

MARKER = "body-marker-" + uuid.uuid4().hex


@pytest.fixture
def alpha(make_world: Callable[..., World]) -> World:
    world = make_world()
    bob = User(world, "bob")
    bob.run("/cpn project create alpha")
    world.wait_idle(30)
    bob.run("/cpn repo add alpha api")
    world.wait_idle(30)
    return world


def sqlite_bytes(world: World) -> dict[str, bytes]:
    """Every SQLite file of the bot (WAL and SHM included), after a checkpoint of each database."""
    root = world.root
    for name in ("cpn-bot.sqlite", "cpn-bot.inbox.sqlite"):
        conn = sqlite3.connect(root / name)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
    return {p.name: p.read_bytes() for p in root.iterdir() if p.is_file() and ".sqlite" in p.name}


def test_processed_reports_and_events_leave_only_their_summary_and_still_dedupe(alpha: World) -> None:
    shown = User(alpha, "bob").run("/cpn token create alpha")["text"]
    token = next(line for line in shown.splitlines() if line.startswith("cpn_"))
    report = json.loads((fixtures_dir() / "trivy_image_report.json").read_text())
    report["CpnMarker"] = MARKER
    raw_report = json.dumps(report).encode()
    assert push_report(alpha, token, raw_report, ref="main").status_code == 202
    payload = as_repo(fixture("gitlab_pipeline_event.json"))
    payload["cpn_marker"] = MARKER
    delivery = str(uuid.uuid4())
    assert send(alpha, "Pipeline Hook", payload, token=project_secret(alpha), delivery=delivery).status_code == 202
    alpha.wait_idle()
    for name, content in sqlite_bytes(alpha).items():
        assert MARKER.encode() not in content, name
    rows = (
        alpha.store()
        .inbox_db.execute("SELECT source, event_type, project_key, size, status, body FROM inbox")
        .fetchall()
    )
    by_source = {r[0]: r for r in rows}
    assert by_source["trivy"][3] == len(raw_report) and by_source["trivy"][4] == "done"
    assert by_source["gitlab"][1:3] == ("Pipeline Hook", "alpha") and by_source["gitlab"][5] == ""
    again = send(alpha, "Pipeline Hook", payload, token=project_secret(alpha), delivery=delivery)
    assert again.json()["duplicate"] is True
    alpha.wait_idle()
    assert len(pipeline_cards(alpha, 31)) == 1


def test_a_locked_inbox_file_spools_an_authenticated_gitlab_event_and_its_card_comes_once_released(
    alpha: World,
) -> None:
    store = alpha.store()
    spool = spool_path(store.inbox_path)
    holder = sqlite3.connect(store.inbox_path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process, holding the file for seconds
    payload = as_repo(fixture("gitlab_pipeline_event.json"))
    delivery = str(uuid.uuid4())
    try:
        started = time.monotonic()
        answers = [send(alpha, "Pipeline Hook", payload, token=project_secret(alpha), delivery=delivery) for _ in "ab"]
        elapsed = time.monotonic() - started
        assert [a.status_code for a in answers] == [202, 202]
        assert elapsed < 2 * 2.5  # each within the reply budget, far from GitLab's 10 s timeout
        files = sorted(spool.iterdir())
        assert len(files) == 2 and {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}
        assert stat.S_IMODE(spool.stat().st_mode) == 0o700
        assert pipeline_cards(alpha, 31) == []
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    wait_for(lambda: pipeline_cards(alpha, 31), timeout=10, what="the spooled event's card")
    alpha.wait_idle()
    assert len(pipeline_cards(alpha, 31)) == 1  # the redelivery spooled beside it was deduplicated
    assert list(Path(spool).iterdir()) == []
    assert store.count("inbox", "source = 'gitlab'") == 1
