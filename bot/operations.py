"""Long work (onboarding, syncs, deployments) as durable operation rows run by a worker.

The slash command answers at once; the row is in SQLite before that answer, so a crash loses
nothing: at start, rows left ``running`` go back to ``pending`` and run again. Handlers are therefore
written as reconciliations ("ensure …"), safe to run twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.logs import log
from bot.store import Store, now

if TYPE_CHECKING:
    from bot.runtime import Bot

logger = logging.getLogger("cpn.operations")

MAX_ATTEMPTS = 5


@dataclass
class Operation:
    id: int
    kind: str
    params: dict[str, Any]
    channel_id: str
    team_id: str
    user_id: str
    root_key: str
    response_url: str
    attempts: int
    result: dict[str, Any] = field(default_factory=dict)


OperationHandler = Callable[[Operation, "Bot"], Awaitable[dict[str, Any] | None]]
HANDLERS: dict[str, OperationHandler] = {}


def operation(kind: str) -> Callable[[OperationHandler], OperationHandler]:
    """Register the handler of one kind of operation (workflows declare theirs)."""

    def decorate(handler: OperationHandler) -> OperationHandler:
        HANDLERS[kind] = handler
        return handler

    return decorate


def _serial_key(row: dict[str, Any]) -> str:
    try:
        project = json.loads(row["params"]).get("project", "")
    except (ValueError, AttributeError):
        return ""
    return f"project:{project}" if project else ""


class Operations:
    def __init__(self, store: Store, concurrency: int = 4) -> None:
        self.store = store
        self._wake = asyncio.Event()
        self._stopping = False
        self._sem = asyncio.Semaphore(concurrency)
        self._running: set[int] = set()
        self._running_keys: dict[int, str] = {}
        self.bot: Bot | None = None

    def submit(
        self,
        kind: str,
        params: dict[str, Any],
        *,
        channel_id: str = "",
        team_id: str = "",
        user_id: str = "",
        root_key: str = "",
        response_url: str = "",
    ) -> int:
        if kind not in HANDLERS:
            raise KeyError(f"no handler for operation {kind!r}")
        row_id = (
            self.store.db.table("operations")
            .insert(
                {
                    "kind": kind,
                    "status": "pending",
                    "params": json.dumps(params, ensure_ascii=False),
                    "channel_id": channel_id,
                    "team_id": team_id,
                    "user_id": user_id,
                    "root_key": root_key,
                    "response_url": response_url,
                    "attempts": 0,
                    "created_at": now(),
                }
            )
            .last_pk
        )
        self._wake.set()
        return int(row_id or 0)

    def recover(self) -> int:
        """Rows a crash left ``running`` run again."""
        cursor = self.store.db.execute("UPDATE operations SET status = 'pending' WHERE status = 'running'")
        return cursor.rowcount

    def pending(self) -> int:
        return self.store.count("operations", "status IN ('pending', 'running')")

    def wake(self) -> None:
        """Look for pending rows now (another process stored them)."""
        self._wake.set()

    def get(self, op_id: int) -> dict[str, Any] | None:
        rows = list(self.store.db.table("operations").rows_where("id = ?", [op_id]))
        return rows[0] if rows else None

    async def run(self, bot: Bot) -> None:
        self.bot = bot
        tasks: set[asyncio.Task[None]] = set()
        while not self._stopping:
            for row in self._ready():
                self._running.add(row["id"])
                self._running_keys[row["id"]] = _serial_key(row)
                task = asyncio.create_task(self._run_one(row, bot))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            except TimeoutError:
                pass
        for task in tasks:
            task.cancel()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def wait_idle(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.pending():
            if time.monotonic() > deadline:
                raise TimeoutError("operations still pending")
            await asyncio.sleep(0.01)

    def _ready(self) -> list[dict[str, Any]]:
        """Pending rows that may start now: one at a time per project, in the order they came.

        Two reconciliations of one project at once would race each other on every service.
        """
        busy = set(self._running_keys.values())
        ready = []
        for row in self.store.db.table("operations").rows_where("status = 'pending'", order_by="id", limit=64):
            if row["id"] in self._running:
                continue
            key = _serial_key(row)
            if key and key in busy:
                continue
            if key:
                busy.add(key)
            ready.append(row)
        return ready

    async def _run_one(self, row: dict[str, Any], bot: Bot) -> None:
        op = Operation(
            id=row["id"],
            kind=row["kind"],
            params=json.loads(row["params"]),
            channel_id=row["channel_id"],
            team_id=row["team_id"],
            user_id=row["user_id"],
            root_key=row["root_key"],
            response_url=row["response_url"],
            attempts=row["attempts"] + 1,
        )
        try:
            async with self._sem:
                self.store.db.execute(
                    "UPDATE operations SET status = 'running', attempts = ?, started_at = ? WHERE id = ?",
                    (op.attempts, now(), op.id),
                )
                handler = HANDLERS.get(op.kind)
                if handler is None:
                    self._finish(op, "failed", error="unknown operation kind")
                    return
                try:
                    result = await handler(op, bot)
                except Exception as exc:
                    log(
                        logger,
                        logging.ERROR,
                        "operation failed",
                        op=op.id,
                        kind=op.kind,
                        error=type(exc).__name__,
                    )
                    logger.debug("operation failure", exc_info=True)
                    bot.metrics.inc("cpn_operation_errors_total", kind=op.kind)
                    self._finish(op, "failed", error=type(exc).__name__)
                    await bot.report_operation_crash(op)
                    return
                self._finish(op, "done", result=result or {})
                bot.metrics.inc("cpn_operations_total", kind=op.kind)
        finally:
            self._running.discard(op.id)
            self._running_keys.pop(op.id, None)
            self._wake.set()  # the next operation of that project may start

    def _finish(self, op: Operation, status: str, *, error: str = "", result: dict[str, Any] | None = None) -> None:
        # The response URL is a capability valid 30 minutes: not kept once the work is over.
        self.store.db.execute(
            "UPDATE operations SET status = ?, error = ?, result = ?, finished_at = ?, response_url = '' WHERE id = ?",
            (status, error, json.dumps(result or {}, ensure_ascii=False), now(), op.id),
        )
