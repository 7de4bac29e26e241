"""Inbound events (webhooks) made durable before they are acknowledged, then processed in order.

``accept`` (or ``receive``, through the web process's group commit) writes the row in the inbox
file (deduplicated by the sender's delivery id) and only then may the HTTP handler answer ``202``.
``run`` hands each row to the handler registered for its source, a few per transaction of the
main file, each in a savepoint, and records there what became of it (``inbox_done``); a crash
between the ``202`` and the processing only delays it: pending rows are picked up at start. Under
a backlog, events that a later one of the same batch makes redundant are ``superseded``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from bot.inbox_writer import InboxWriter, insert_delivery
from bot.logs import log
from bot.store import Store, now

if TYPE_CHECKING:
    from bot.runtime import Bot

logger = logging.getLogger("cpn.inbox")


@dataclass
class InboundEvent:
    id: int
    source: str
    delivery_id: str
    event_type: str
    project_key: str
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Delivery:
    """An event as it arrives, before it is stored.

    ``subject`` names what the event is about (a pipeline); an event that ``closes`` its subject
    carries all of it (a pipeline's final hook lists every job), so the pending events of the same
    subject before it need not be processed: under a backlog they are marked ``superseded``.
    """

    source: str
    delivery_id: str
    event_type: str
    body: str
    headers: dict[str, str] = field(default_factory=dict)
    project_key: str = ""
    subject: str = ""
    closes: bool = False

    def row(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "delivery_id": self.delivery_id,
            "event_type": self.event_type,
            "project_key": self.project_key,
            "headers": json.dumps(self.headers),
            "body": self.body,
            "status": "pending",
            "attempts": 0,
            "error": "",
            "received_at": now(),
            "subject": self.subject,
            "closes": int(self.closes),
            "size": len(self.body.encode("utf-8", "surrogatepass")),
        }


class Head(NamedTuple):
    """What is looked at of a pending event before deciding to process it."""

    id: int
    source: str
    delivery_id: str
    subject: str
    closes: bool


class Decision(NamedTuple):
    """What became of an event; keyed by its delivery, which no new event can share (ids can be
    reused by a new inbox file, a delivery id cannot)."""

    id: int
    source: str
    delivery_id: str
    status: str  # done | failed | ignored | superseded
    error: str
    at: float


EventHandler = Callable[[InboundEvent, "Bot"], Awaitable[None]]
HANDLERS: dict[str, EventHandler] = {}
# Run after each batch of events (and at start): work that is cheaper once for many events,
# such as refreshing a pipeline's card once for all the job events that arrived together.
BatchHook = Callable[["Bot"], Awaitable[None]]
AFTER_BATCH: list[BatchHook] = []


def after_batch(hook: BatchHook) -> BatchHook:
    AFTER_BATCH.append(hook)
    return hook


def inbox_handler(source: str) -> Callable[[EventHandler], EventHandler]:
    def decorate(handler: EventHandler) -> EventHandler:
        HANDLERS[source] = handler
        return handler

    return decorate


EVENTS_PER_TURN = 8  # in one transaction, between two turns of the event loop
EVENTS_PER_BATCH = 500  # looked at together: later events may close earlier ones; cards refreshed after


class Inbox:
    def __init__(self, store: Store) -> None:
        self.store = store
        # The web process beside workers writes through a group commit (bot.inbox_writer).
        self.writer: InboxWriter | None = None
        self._wake = asyncio.Event()
        self._stopping = False

    def accept(self, delivery: Delivery) -> tuple[int, bool]:
        """Store the event; returns (row id, is_new). A delivery seen before is not stored twice."""
        row_id, new = insert_delivery(self.store.inbox_db, delivery.row())
        if new:
            self._wake.set()
        return row_id, new

    async def receive(self, delivery: Delivery) -> tuple[int, bool]:
        """As :meth:`accept`, through the group-commit writer when this process has one."""
        if self.writer is None:
            if self.store.inbox_path == ":memory:":
                return self.accept(delivery)
            # One process: a writer of its own too, so that a locked file never stalls the loop
            # and an event that cannot be stored in time is spooled (bot.inbox_writer), not lost.
            self.writer = InboxWriter(self.store.inbox_path, on_stored=self._wake.set)
            self.writer.start()
        answer = await self.writer.accept(delivery)
        self._wake.set()
        return answer

    def pending(self) -> int:
        return self.store.count("inbox", "status = 'pending'")

    def wake(self) -> None:
        """Look for pending rows now (another process stored them)."""
        self._wake.set()

    async def run(self, bot: Bot) -> None:
        await self._after_batch(bot)  # what a crash left half done
        while not self._stopping:
            try:
                if await self._batch(bot):
                    continue
            except sqlite3.OperationalError as exc:
                # A file busy for a moment: what was not decided is still pending, and what was
                # decided but not marked is marked on the next look.
                log(logger, logging.WARNING, "inbox: database busy", error=str(exc)[:100])
                await asyncio.sleep(0.05)
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            except TimeoutError:
                await self._after_batch(bot)  # the idle tick: cards held back by the edit interval

    async def _batch(self, bot: Bot) -> bool:
        """Up to ``EVENTS_PER_BATCH`` pending events, then their cards; False if there were none."""
        heads = await self._heads()
        if not heads:
            return False
        decided = self._supersede(heads, bot)
        skipped = {d.id for d in decided}  # superseded: marked in the inbox file with the others, below
        rows = [row for row in self._pending_rows(heads[-1].id) if row["id"] not in skipped]
        for start in range(0, len(rows), EVENTS_PER_TURN):
            decided += await self._process_turn(rows[start : start + EVENTS_PER_TURN], bot)
            # Let acknowledgements and deliveries run: one loop serves them all. A few events
            # per turn, so that processing keeps pace with 64 senders being acknowledged.
            await asyncio.sleep(0)
        await self._mark(decided)
        await self._after_batch(bot)
        return True

    async def _heads(self) -> list[Head]:
        """The next pending events, those already decided excepted.

        An event is decided in the main file (``inbox_done``) and marked in the inbox file after:
        one a crash caught between the two is marked now, not processed twice.
        """
        heads = [
            Head(int(i), str(source), str(delivery), str(subject), bool(closes))
            for i, source, delivery, subject, closes in self.store.inbox_db.execute(
                "SELECT id, source, delivery_id, subject, closes FROM inbox WHERE status = 'pending' "
                "ORDER BY id LIMIT ?",
                (EVENTS_PER_BATCH,),
            ).fetchall()
        ]
        if not heads:
            return []
        by_delivery = {(h.source, h.delivery_id): h for h in heads}
        pairs = ", ".join("(?, ?)" for _ in heads)
        decided = [
            Decision(by_delivery[(source, delivery)].id, source, delivery, status, error, at)
            for source, delivery, status, error, at in self.store.db.execute(
                "SELECT source, delivery_id, status, error, processed_at FROM inbox_done "  # noqa: S608
                f"WHERE (source, delivery_id) IN (VALUES {pairs})",
                [part for h in heads for part in (h.source, h.delivery_id)],
            ).fetchall()
        ]
        if decided:
            await self._mark(decided)
            done = {d.id for d in decided}
            heads = [h for h in heads if h.id not in done]
        return heads

    def _pending_rows(self, up_to: int) -> list[dict[str, Any]]:
        cursor = self.store.inbox_db.execute(
            "SELECT * FROM inbox WHERE status = 'pending' AND id <= ? ORDER BY id", (up_to,)
        )
        columns = [c[0] for c in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

    def _decide(self, decisions: list[Decision]) -> None:
        """Record in the main file what became of events (in the caller's transaction)."""
        self.store.db.conn.executemany(
            "INSERT OR REPLACE INTO inbox_done (source, delivery_id, status, error, processed_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [(d.source, d.delivery_id, d.status, d.error, d.at) for d in decisions],
        )

    async def _mark(self, decisions: list[Decision]) -> None:
        """Then in the inbox file, once per batch: one short write, never inside the main file's
        transaction, waiting for the web process's lock without blocking."""
        if not decisions:
            return
        marks = [(d.status, d.error, d.at, d.id) for d in decisions]
        # Once decided, an event keeps only its summary (source, kind, project, size, outcome) and
        # its delivery id, for dedupe: a whole report or pipeline payload is not kept for days.
        await self.store.inbox_write(
            lambda conn: conn.executemany(
                "UPDATE inbox SET status = ?, error = ?, processed_at = ?, attempts = attempts + 1, "
                "body = '', headers = '{}' WHERE id = ? AND status = 'pending'",
                marks,
            )
        )

    def _supersede(self, heads: list[Head], bot: Bot) -> list[Decision]:
        """Mark ``superseded`` the events that a later event of the batch closes (see :class:`Delivery`).

        Only under a backlog does a batch hold both; a bot that keeps up processes every event.
        """
        closers = {(h.source, h.subject): h.id for h in heads if h.subject and h.closes}
        decisions = [
            Decision(h.id, h.source, h.delivery_id, "superseded", "", now())
            for h in heads
            if h.subject and closers.get((h.source, h.subject), 0) > h.id
        ]
        if not decisions:
            return []
        with self.store.transaction():
            self._decide(decisions)
        for decision in decisions:
            bot.metrics.inc("cpn_events_processed_total", source=decision.source, status="superseded")
        return decisions

    async def _after_batch(self, bot: Bot) -> None:
        for hook in AFTER_BATCH:
            try:
                await hook(bot)
            except Exception:
                logger.exception("after-batch hook failed")

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def wait_idle(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.pending():
            if time.monotonic() > deadline:
                raise TimeoutError("inbox still has pending events")
            await asyncio.sleep(0.01)

    async def _process_turn(self, rows: list[dict[str, Any]], bot: Bot) -> list[Decision]:
        """A few events in one transaction: one commit (and one take of the write lock) for all."""
        conn = self.store.db.conn
        decisions: list[Decision] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for row in rows:
                decisions.append(await self._process(row, bot))
            self._decide(decisions)
        except BaseException:  # not a handler's failure (that is a decision): the store's, or a stop
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return decisions

    async def _process(self, row: dict[str, Any], bot: Bot) -> Decision:
        """One event: its effects, or none of them; what became of it, for :meth:`_decide`."""
        event = InboundEvent(
            id=row["id"],
            source=row["source"],
            delivery_id=row["delivery_id"],
            event_type=row["event_type"],
            project_key=row["project_key"],
            headers=json.loads(row["headers"]),
            body=row["body"],
        )
        handler = HANDLERS.get(event.source)
        status, error = "done", ""
        db = self.store.db
        db.execute("SAVEPOINT event")
        if handler is None:
            status = "ignored"
            bot.metrics.inc("cpn_events_ignored_total", source=event.source, reason="no_handler")
        else:
            try:
                await handler(event, bot)
            except Exception as exc:
                db.execute("ROLLBACK TO event")  # half an event's effects would be worse than none
                status, error = "failed", type(exc).__name__
                log(logger, logging.ERROR, "event processing failed", event=event.id, error=error)
                logger.debug("event failure", exc_info=True)
                bot.metrics.inc("cpn_event_errors_total", source=event.source)
        db.execute("RELEASE event")
        bot.metrics.inc("cpn_events_processed_total", source=event.source, status=status)
        return Decision(event.id, event.source, event.delivery_id, status, error, now())
