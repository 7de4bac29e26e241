"""Group commit for the inbox: the web process's acknowledgements share commits, off the event loop.

With a worker process (:mod:`bot.worker`), two processes write the same SQLite file, and a writer
that finds the other holding the lock waits for it — by sleeping, which in the event loop would
stall every request at once. So the web process hands each inbound event to one thread with its own
connection: it takes everything that has queued up meanwhile, inserts it in one transaction,
commits, and only then are the requests answered. An event is still acknowledged only once it is
durable; under load, one commit serves many acknowledgements.
"""

from __future__ import annotations

import asyncio
import json
import queue
import sqlite3
import threading
from dataclasses import dataclass

from bot.store import now

MAX_BATCH = 256


@dataclass
class _Pending:
    row: tuple[str, str, str, str, str, str, float]  # source, delivery, type, project, headers, body, at
    future: asyncio.Future[tuple[int, bool]]
    loop: asyncio.AbstractEventLoop


class InboxWriter:
    """``await accept(...)`` → (row id, is_new), once committed, as :meth:`bot.inbox.Inbox.accept`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.commits = 0  # how many transactions wrote how many rows: the batching at work
        self.rows = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="inbox-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    async def accept(
        self, source: str, delivery_id: str, event_type: str, body: str, headers: dict[str, str], project_key: str
    ) -> tuple[int, bool]:
        if self._thread is None:
            raise RuntimeError("the inbox writer is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[int, bool]] = loop.create_future()
        row = (source, delivery_id, event_type, project_key, json.dumps(headers), body, now())
        self._queue.put(_Pending(row, future, loop))
        return await future

    # -- the thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=10, check_same_thread=False)
        conn.execute("PRAGMA synchronous=NORMAL")
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch = [first]
                stop = False
                while len(batch) < MAX_BATCH:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stop = True
                        break
                    batch.append(item)
                self._write(conn, batch)
                if stop:
                    return
        finally:
            conn.close()

    def _write(self, conn: sqlite3.Connection, batch: list[_Pending]) -> None:
        results: list[tuple[int, bool]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for pending in batch:
                    results.append(_insert(conn, pending.row))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            for pending in batch:
                pending.loop.call_soon_threadsafe(_fail, pending.future, exc)
            return
        self.commits += 1
        self.rows += len(batch)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[tuple[int, bool]], tuple[int, bool]]]] = {}
        for pending, result in zip(batch, results, strict=True):
            by_loop.setdefault(pending.loop, []).append((pending.future, result))
        for loop, answers in by_loop.items():
            loop.call_soon_threadsafe(_resolve, answers)  # one wake-up of the loop per commit


def _insert(conn: sqlite3.Connection, row: tuple[str, str, str, str, str, str, float]) -> tuple[int, bool]:
    cursor = conn.execute(
        "INSERT OR IGNORE INTO inbox (source, delivery_id, event_type, project_key, headers, body, status, "
        "attempts, error, received_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, '', ?)",
        row,
    )
    if cursor.rowcount == 1:
        return int(cursor.lastrowid or 0), True
    existing = conn.execute("SELECT id FROM inbox WHERE source = ? AND delivery_id = ?", (row[0], row[1])).fetchone()
    return int(existing[0]), False


def _resolve(answers: list[tuple[asyncio.Future[tuple[int, bool]], tuple[int, bool]]]) -> None:
    for future, result in answers:
        if not future.done():
            future.set_result(result)


def _fail(future: asyncio.Future[tuple[int, bool]], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
