"""The bot's files are its own: SQLite files 0600 and the data directory 0700, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.store import Store


@pytest.fixture
def loose_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_sqlite_files_and_their_journals_are_private_under_a_022_umask(tmp_path: Path, loose_umask: None) -> None:
    data = tmp_path / "var" / "cpn-bot"
    store = Store(data / "cpn-bot.sqlite")
    store.audit("u", "alice", "test", "x", "ok")
    store.inbox_db.execute(
        "INSERT INTO inbox (source, delivery_id, event_type, headers, body) VALUES ('t', '1', 'e', '{}', '{}')"
    )
    files = sorted(data.iterdir())
    names = {f.name for f in files}
    assert {"cpn-bot.sqlite", "cpn-bot.sqlite-wal", "cpn-bot.sqlite-shm", "cpn-bot.inbox.sqlite-wal"} <= names
    assert {f.name: oct(mode(f)) for f in files} == {f.name: oct(0o600) for f in files}
    assert mode(data) == 0o700
    store.close()


def test_files_left_world_readable_by_an_older_version_are_tightened(tmp_path: Path, loose_umask: None) -> None:
    Store(tmp_path / "cpn-bot.sqlite").close()
    for f in tmp_path.iterdir():
        f.chmod(0o644)
    Store(tmp_path / "cpn-bot.sqlite").close()
    assert {mode(f) for f in tmp_path.iterdir()} == {0o600}


def test_an_existing_data_directory_keeps_its_mode(tmp_path: Path, loose_umask: None) -> None:
    tmp_path.chmod(0o750)
    Store(tmp_path / "cpn-bot.sqlite").close()
    assert mode(tmp_path) == 0o750
