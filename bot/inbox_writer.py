"""Group commit for the inbox: the web process's acknowledgements share commits, and never stall.

With a worker process (:mod:`bot.worker`), the web process writes the inbox file and the worker
marks there what it processed; a writer that finds the other holding the lock waits for it — with
SQLite's busy handler, by sleeping, which in the event loop would stall every request at once (a
thread would wait for the GIL instead). So the web process writes the inbox through one task with
its own connection that never blocks: it takes every event that has arrived since its last commit,
tries for the lock and, if the worker has it, tries again a fraction of a millisecond later while
the loop goes on serving requests; then it inserts them all in one transaction, commits, and only
then are the requests answered. An event is still acknowledged only once it is durable; under
load, one commit serves many.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from bot.store import begin_when_free, private_file

if TYPE_CHECKING:
    from bot.inbox import Delivery


MAX_BATCH = 256
COMMIT_INTERVAL = 0.002  # at most one commit per interval: more events share it, the worker gets the lock between
CHECKPOINT_WHEN_IDLE = 5.0  # seconds without an event, after some: the file's WAL checkpointed here

INSERT = (
    "INSERT OR IGNORE INTO inbox (source, delivery_id, event_type, project_key, headers, body, status, attempts, "
    "error, received_at, subject, closes) VALUES (:source, :delivery_id, :event_type, :project_key, :headers, "
    ":body, :status, :attempts, :error, :received_at, :subject, :closes)"
)

Answer = asyncio.Future[tuple[int, bool]]


class InboxWriter:
    """``await accept(delivery)`` → (row id, is_new), once committed, as :meth:`bot.inbox.Inbox.accept`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._pending: list[tuple[dict[str, Any], Answer]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.commits = 0  # how many transactions wrote how many rows: the batching at work
        self.rows = 0
        self.checkpoints = 0

    def start(self) -> None:
        """In the running event loop."""
        # timeout=0: a locked database is reported at once, and begin_when_free waits without blocking.
        private_file(self.path)
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=0)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA wal_autocheckpoint=0")  # not in an answer's way: the workers', or when idle
        self._conn = conn
        self._task = asyncio.create_task(self._run(), name="inbox-writer")

    async def stop(self) -> None:
        """Commit what is waiting, then close."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while self._pending:
            await self._commit()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def accept(self, delivery: Delivery) -> tuple[int, bool]:
        if self._conn is None:
            raise RuntimeError("the inbox writer is not running")
        future: Answer = asyncio.get_running_loop().create_future()
        self._pending.append((delivery.row(), future))
        self._wake.set()
        return await future

    async def _run(self) -> None:
        last = 0.0
        written = False  # since the last checkpoint
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), CHECKPOINT_WHEN_IDLE)
            except TimeoutError:
                if written:
                    self._checkpoint()
                    written = False
                continue
            pause = last + COMMIT_INTERVAL - time.monotonic()
            await asyncio.sleep(max(0.0, pause))  # also lets this loop turn's other requests join
            self._wake.clear()
            await self._commit()
            written = True
            last = time.monotonic()
            if self._pending:
                self._wake.set()

    def _checkpoint(self) -> None:
        """Once quiet: the workers checkpoint the file as they mark rows, but they may be down."""
        assert self._conn is not None
        with contextlib.suppress(sqlite3.Error):  # PASSIVE: never waits, does what it can
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self.checkpoints += 1

    async def _commit(self) -> None:
        assert self._conn is not None
        batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
        if not batch:
            return
        conn = self._conn
        try:
            await begin_when_free(conn)
            try:
                results = [insert_delivery(conn, row) for row, _ in batch]
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self.commits += 1
        self.rows += len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)


def insert_delivery(conn: sqlite3.Connection, row: dict[str, Any]) -> tuple[int, bool]:
    """Insert a :meth:`Delivery.row` in the inbox file: (row id, is_new); the caller commits."""
    cursor = conn.execute(INSERT, row)
    if cursor.rowcount == 1:
        return int(cursor.lastrowid or 0), True
    existing = conn.execute(
        "SELECT id FROM inbox WHERE source = ? AND delivery_id = ?", (row["source"], row["delivery_id"])
    ).fetchone()
    return int(existing[0]), False
