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
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.event_spool import Spool, spool_path
from bot.logs import log
from bot.store import begin_when_free, private_file

if TYPE_CHECKING:
    from bot.inbox import Delivery


MAX_BATCH = 256
COMMIT_INTERVAL = 0.002  # at most one commit per interval: more events share it, the worker gets the lock between
CHECKPOINT_WHEN_IDLE = 5.0  # seconds without an event, after some: the file's WAL checkpointed here
# An event not durable in the inbox file within this budget (the file locked by another process for
# seconds, a failed write) is spooled to disk and acknowledged: a sender's timeout is not reached.
SPOOL_AFTER = 1.0
SPOOL_RETRY = 0.2  # seconds between two attempts to move spooled events into the inbox

logger = logging.getLogger("cpn.inbox")

INSERT = (
    "INSERT OR IGNORE INTO inbox (source, delivery_id, event_type, project_key, headers, body, status, attempts, "
    "error, received_at, subject, closes, size) VALUES (:source, :delivery_id, :event_type, :project_key, "
    ":headers, :body, :status, :attempts, :error, :received_at, :subject, :closes, :size)"
)

Answer = asyncio.Future[tuple[int, bool]]


class InboxWriter:
    """``await accept(delivery)`` → (row id, is_new), once committed, as :meth:`bot.inbox.Inbox.accept`."""

    def __init__(self, path: str, on_stored: Callable[[], None] | None = None) -> None:
        self.path = path
        self.spool = Spool(spool_path(path))
        self.on_stored = on_stored or (lambda: None)  # spooled events reached the inbox
        self.spooled = 0
        self._spool_waiting = bool(self.spool.pending())  # left by a previous run
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
        conn.execute("PRAGMA secure_delete=ON")
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
            await self._commit()  # what cannot be committed now is spooled, moved in at next start
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
                await asyncio.wait_for(self._wake.wait(), SPOOL_RETRY if self._spool_waiting else CHECKPOINT_WHEN_IDLE)
            except TimeoutError:
                if self._spool_waiting:
                    await self._commit()
                    written = True
                    continue
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
        spooled = self.spool.pending() if self._spool_waiting else []
        if not batch and not spooled:
            self._spool_waiting = False
            return
        conn = self._conn
        try:
            await begin_when_free(conn, SPOOL_AFTER)
            try:
                for _, row in spooled:  # first: they came first
                    insert_delivery(conn, row)
                results = [insert_delivery(conn, row) for row, _ in batch]
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:  # locked, busy, I/O: the disk spool takes them
            self._to_spool(batch, exc)
            return
        except sqlite3.Error as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        if spooled:
            self.spool.remove([path for path, _ in spooled])
            self._spool_waiting = False
            log(logger, logging.INFO, "inbox: spooled events stored", count=len(spooled))
            self.on_stored()
        self.commits += 1
        self.rows += len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    def _to_spool(self, batch: list[tuple[dict[str, Any], Answer]], error: sqlite3.Error) -> None:
        """Each event of ``batch`` durable in the spool, then answered as new (row id 0 until moved)."""
        if batch:
            log(logger, logging.WARNING, "inbox: file busy, events spooled", count=len(batch), error=str(error)[:80])
        for row, future in batch:
            try:
                self.spool.put(row)
            except OSError:
                if not future.done():
                    future.set_exception(error)  # neither stored nor spooled: not acknowledged
                continue
            self.spooled += 1
            self._spool_waiting = True
            if not future.done():
                future.set_result((0, True))


def insert_delivery(conn: sqlite3.Connection, row: dict[str, Any]) -> tuple[int, bool]:
    """Insert a :meth:`Delivery.row` in the inbox file: (row id, is_new); the caller commits."""
    cursor = conn.execute(INSERT, row)
    if cursor.rowcount == 1:
        return int(cursor.lastrowid or 0), True
    existing = conn.execute(
        "SELECT id FROM inbox WHERE source = ? AND delivery_id = ?", (row["source"], row["delivery_id"])
    ).fetchone()
    return int(existing[0]), False
