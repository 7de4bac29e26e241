"""Every post the bot makes goes through here: durable, retried, ordered per thread, sent once.

A row is written in SQLite before anything is sent, so a crash or a Mattermost outage loses nothing.
Rows of one *group* (a card and its thread, or one channel's plain posts) are delivered strictly in
order; groups are delivered concurrently. A transient failure backs off exponentially, a ``429``
waits for its ``Retry-After``.

Exactly once: every row has a ``uid`` stamped into the post's props. When a row is retried after an
attempt whose outcome is unknown (timeout, crash between the request and the bookkeeping), the
channel's recent posts are searched for that uid before creating the post again.

Cards edited in place: a row with a ``post_key`` creates the post the first time and edits it
afterwards (``posts`` table: key → post id). Replies name their thread with ``root_key``: the key
of a card, or :func:`thread_of` a post somebody else wrote. When several
edits of one card are pending, only the newest is sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sqlite3
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.config import OutboxConfig
from bot.logs import log
from bot.store import Store, now
from services.errors import Failure, ServiceError

if TYPE_CHECKING:
    from bot.metrics import Metrics
    from services.mattermost import Mattermost

logger = logging.getLogger("cpn.outbox")

Json = dict[str, Any]

# A root key naming a post the bot did not make (a user's question): "mm:<mattermost post id>".
MM_POST = "mm:"
# Its own generator: the jitter neither moves nor follows the process's global random state
# (which tests and libraries seed).
_JITTER = random.Random()


def thread_of(post_id: str) -> str:
    """The root key of the thread of an existing Mattermost post."""
    return MM_POST + post_id


@dataclass(frozen=True)
class Post:
    """What to show: a message and its attachments (pure data, built by renderers)."""

    message: str = ""
    attachments: tuple[Json, ...] = ()
    props: tuple[tuple[str, Any], ...] = ()

    def body(self) -> Json:
        props: Json = dict(self.props)
        if self.attachments:
            props["attachments"] = list(self.attachments)
        return {"message": self.message, "props": props}


def command_answer(body: Json, response_type: str) -> Json:
    """A post as a slash-command answer (model.CommandResponse) for its response URL.

    Attachments go at the top level (an ephemeral answer with only ``props`` shows nothing) and
    ``skip_slack_parsing`` keeps the text as written (no ``<!channel>`` → ``@channel``).
    """
    props = dict(body["props"])
    answer: Json = {"response_type": response_type, "text": body["message"], "skip_slack_parsing": True}
    attachments = props.pop("attachments", None)
    if attachments:
        answer["attachments"] = attachments
    if props:
        answer["props"] = props
    return answer


class Outbox:
    def __init__(self, store: Store, mattermost: Mattermost, metrics: Metrics, config: OutboxConfig) -> None:
        self.store = store
        self.mm = mattermost
        self.metrics = metrics
        self.config = config
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._stopping = False
        self._sem = asyncio.Semaphore(config.concurrency)

    # -- producing ------------------------------------------------------------------------------

    def enqueue(
        self,
        channel_id: str,
        post: Post,
        *,
        post_key: str = "",
        root_key: str = "",
        ephemeral_to: str = "",
        response_url: str = "",
    ) -> int:
        """Queue ``post`` for ``channel_id``; the row id (0 when merged into a pending edit). Never blocks."""
        op = "ephemeral" if ephemeral_to else "post"
        uid = uuid.uuid4().hex
        if ephemeral_to:
            group = f"eph:{uid}"
        else:
            group = root_key or post_key or f"ch:{channel_id}"
        payload = json.dumps(post.body(), ensure_ascii=False)
        if post_key and not ephemeral_to:
            # An edit of a card whose previous edit has not gone out yet replaces it: one call, not two.
            merged = self.store.db.execute(
                "UPDATE outbox SET payload = ? WHERE id = (SELECT MAX(id) FROM outbox WHERE status = 'pending' "
                "AND attempts = 0 AND op = 'post' AND post_key = ? AND group_key = ? AND channel_id = ?) "
                "AND id = (SELECT MAX(id) FROM outbox WHERE group_key = ?)",
                (payload, post_key, group, channel_id, group),
            ).rowcount
            if merged:
                self.metrics.inc("cpn_outbox_merged_total")
                self.wake()
                return 0
        row_id = self.store.db.execute(
            "INSERT INTO outbox (uid, group_key, op, post_key, root_key, channel_id, user_id, payload, response_url, "
            "status, attempts, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, 0.0, ?)",
            (uid, group, op, post_key, root_key, channel_id, ephemeral_to, payload, response_url, now()),
        ).lastrowid
        self.metrics.inc("cpn_outbox_enqueued_total", op=op)
        self.wake()
        return int(row_id or 0)

    def wake(self) -> None:
        self._wake.set()
        self._idle.clear()

    def post_id(self, key: str) -> str | None:
        row = self.store.db.execute("SELECT post_id FROM posts WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def pending(self) -> int:
        return self.store.count("outbox", "status = 'pending'")

    # -- the worker -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Deliver until :meth:`stop`; wakes on enqueue, and polls for rows written by others."""
        while not self._stopping:
            try:
                delivered = await self.deliver_ready()
                if delivered:
                    continue
                if self.pending() == 0:
                    self._idle.set()
                wait = self._next_wait()
            except sqlite3.OperationalError as exc:
                # The database busy for a moment (another process's checkpoint, a posts worker
                # without busy timeout): try again shortly rather than stop delivering.
                log(logger, logging.WARNING, "outbox: database busy", error=str(exc)[:100])
                wait = 0.05
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=wait)
            except TimeoutError:
                pass

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def wait_idle(self, timeout: float = 10.0) -> None:
        """For tests and the sandbox: until nothing is pending."""
        deadline = time.monotonic() + timeout
        while self.pending():
            if time.monotonic() > deadline:
                raise TimeoutError(f"outbox still has {self.pending()} pending rows")
            self.wake()
            await asyncio.sleep(0.01)

    def _next_wait(self) -> float:
        row = self.store.db.execute("SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'pending'").fetchone()
        if row is None or row[0] is None:
            return self.config.poll_seconds
        return max(0.01, min(self.config.poll_seconds, row[0] - now()))

    def _ready_heads(self) -> list[Json]:
        """The first pending row of each group, if its time has come."""
        rows = self.store.db.execute(
            """
            SELECT o.* FROM outbox o
            JOIN (SELECT group_key, MIN(id) AS id FROM outbox WHERE status = 'pending' GROUP BY group_key) h
              ON o.id = h.id
            WHERE o.next_attempt_at <= ?
            ORDER BY o.id
            LIMIT 256
            """,
            (now(),),
        )
        columns = [c[0] for c in rows.description]
        return [dict(zip(columns, r, strict=True)) for r in rows.fetchall()]

    async def deliver_ready(self) -> int:
        heads = self._ready_heads()
        if not heads:
            return 0
        await asyncio.gather(*(self._deliver_guarded(row) for row in heads))
        return len(heads)

    async def _deliver_guarded(self, row: Json) -> None:
        async with self._sem:
            # Read again once our turn comes: a newer edit may have been merged into this row meanwhile.
            fresh = self.store.db.execute("SELECT * FROM outbox WHERE id = ? AND status = 'pending'", (row["id"],))
            columns = [c[0] for c in fresh.description]
            found = fresh.fetchone()
            if found is None:
                return
            row = dict(zip(columns, found, strict=True))
            try:
                await self._deliver(row)
            except ServiceError as exc:
                await self._failed(row, exc)
            except Exception:  # a bug must not stop the other deliveries
                logger.exception("outbox delivery crashed", extra={"fields": {"row": row["id"]}})
                await self._retry_later(row, "internal error", None)

    # -- one delivery ---------------------------------------------------------------------------

    async def _deliver(self, row: Json) -> None:
        if row["post_key"] and self._superseded(row):
            await self._mark(row, "superseded")
            return
        body = json.loads(row["payload"])
        if row["op"] == "ephemeral":
            await self._attempted(row)
            await self._deliver_ephemeral(row, body)
            return

        root_id = ""
        if row["root_key"].startswith(MM_POST):
            root_id = row["root_key"].removeprefix(MM_POST)
        elif row["root_key"] and row["root_key"] != row["post_key"]:
            found = self.post_id(row["root_key"])
            if found is None and self._root_pending(row["root_key"]):
                await self._retry_later(row, "thread root not delivered yet", 0.05)
                return
            root_id = found or ""  # a root that could not be posted: reply at top level

        await self._attempted(row)
        # Read again once counted: an edit merged into this row meanwhile (by another process, which
        # merges only into rows never attempted) goes out now rather than being lost.
        body = self._payload(row) or body
        existing = self.post_id(row["post_key"]) if row["post_key"] else None
        if existing:
            await self.mm.patch_post(existing, body["message"], body["props"])
            await self._sent(row)
            return
        if existing == "":
            # The card went out through the response URL: it cannot be edited.
            await self._mark(row, "superseded")
            return

        props = dict(body["props"], cpn_uid=row["uid"])
        post: Json | None = None
        if row["attempts"] > 0:
            post = await self._find_by_uid(row)
        if post is None:
            try:
                post = await self.mm.create_post(
                    row["channel_id"],
                    body["message"],
                    props,
                    root_id=root_id,
                    pending_post_id=f"{self.mm.bot_user_id}:{row['uid']}",
                )
            except ServiceError as exc:
                if exc.failure is Failure.FORBIDDEN and row["response_url"]:
                    await self._via_response_url(row, body)
                    return
                raise
        await self._sent(row, post)

    async def _via_response_url(self, row: Json, body: Json) -> None:
        """The bot cannot post in this channel: answer through the slash command's response URL."""
        await self.mm.post_to_response_url(row["response_url"], command_answer(body, "in_channel"))
        await self._sent(row, {"id": "", "channel_id": row["channel_id"], "root_id": ""})
        self.metrics.inc("cpn_outbox_response_url_total")

    async def _deliver_ephemeral(self, row: Json, body: Json) -> None:
        """Shown to one person: by the command's response URL when there is one (no role needed),
        else by ``POST /posts/ephemeral``, which needs ``create_post_ephemeral``, a permission of
        the system_admin role only (mattermost/mattermost server/channels/api4/post.go
        createEphemeralPost). Refused, the message goes to the person's direct messages with the
        bot rather than being lost; each refusal is logged and counted."""
        if row["response_url"]:
            try:
                await self.mm.post_to_response_url(row["response_url"], command_answer(body, "ephemeral"))
            except ServiceError as exc:
                if exc.transient:
                    raise
                # Expired (30 min) or used up (5 answers): try the other ways.
            else:
                await self._sent(row)
                self.metrics.inc("cpn_outbox_response_url_total")
                return
        try:
            await self.mm.create_ephemeral(row["user_id"], row["channel_id"], body["message"], body["props"])
        except ServiceError as exc:
            if exc.failure is not Failure.FORBIDDEN:
                raise
            self.metrics.inc("cpn_outbox_ephemeral_refused_total")
            log(
                logger,
                logging.WARNING,
                "ephemeral post refused: the bot account lacks the system_admin role; sent as a direct message",
                row=row["id"],
            )
            await self._via_direct_message(row, body)
            return
        await self._sent(row)

    async def _via_direct_message(self, row: Json, body: Json) -> None:
        channel = await self.mm.direct_channel(self.mm.bot_user_id, row["user_id"])
        props = dict(body["props"], cpn_uid=row["uid"])
        await self.mm.create_post(
            channel["id"], body["message"], props, pending_post_id=f"{self.mm.bot_user_id}:{row['uid']}"
        )
        await self._sent(row)
        self.metrics.inc("cpn_outbox_ephemeral_dm_total")

    async def _find_by_uid(self, row: Json) -> Json | None:
        since = int((row["created_at"] - 5) * 1000)
        for post in await self.mm.channel_posts_since(row["channel_id"], since):
            if (post.get("props") or {}).get("cpn_uid") == row["uid"]:
                self.metrics.inc("cpn_outbox_recovered_total")
                return post
        return None

    def _payload(self, row: Json) -> Json | None:
        found = self.store.db.execute("SELECT payload FROM outbox WHERE id = ?", (row["id"],)).fetchone()
        return json.loads(found[0]) if found else None

    def _superseded(self, row: Json) -> bool:
        newer = self.store.db.execute(
            "SELECT 1 FROM outbox WHERE status = 'pending' AND post_key = ? AND group_key = ? AND id > ? "
            "AND op = 'post' LIMIT 1",
            (row["post_key"], row["group_key"], row["id"]),
        ).fetchone()
        # Only an edit can be skipped: the first row must create the post the others edit.
        return newer is not None and self.post_id(row["post_key"]) is not None

    def _root_pending(self, root_key: str) -> bool:
        return (
            self.store.db.execute(
                "SELECT 1 FROM outbox WHERE status = 'pending' AND post_key = ? LIMIT 1", (root_key,)
            ).fetchone()
            is not None
        )

    # -- bookkeeping ----------------------------------------------------------------------------

    async def _attempted(self, row: Json) -> None:
        """Counted before the request: after a crash, a count above zero means 'look before resending'."""
        await self.store.write(
            lambda db: db.execute("UPDATE outbox SET attempts = attempts + 1 WHERE id = ?", (row["id"],))
        )

    async def _sent(self, row: Json, post: Json | None = None) -> None:
        await self.store.write(lambda db: self._record_sent(row, post))
        self.metrics.inc("cpn_outbox_delivered_total", op=row["op"])
        self.metrics.observe("cpn_outbox_delivery_seconds", now() - row["created_at"])

    def _record_sent(self, row: Json, post: Json | None) -> None:
        self.store.db.execute(
            "UPDATE outbox SET status = 'sent', sent_at = ?, last_error = '' WHERE id = ?", (now(), row["id"])
        )
        if post is not None and row["post_key"]:
            self.store.db.execute(
                "INSERT INTO posts (key, post_id, channel_id, root_id, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET post_id = excluded.post_id, "
                "channel_id = excluded.channel_id, root_id = excluded.root_id, updated_at = excluded.updated_at",
                (row["post_key"], post.get("id", ""), row["channel_id"], post.get("root_id", ""), now(), now()),
            )

    async def _mark(self, row: Json, status: str) -> None:
        await self.store.write(lambda db: db.execute("UPDATE outbox SET status = ? WHERE id = ?", (status, row["id"])))

    async def _failed(self, row: Json, exc: ServiceError) -> None:
        self.metrics.inc("cpn_outbox_errors_total", failure=exc.failure.value)
        too_old = now() - row["created_at"] > self.config.give_up_after_hours * 3600
        if exc.transient and not too_old:
            await self._retry_later(row, str(exc), exc.retry_after)
            return
        log(logger, logging.WARNING, "post dropped", row=row["id"], op=row["op"], error=str(exc))
        self.metrics.inc("cpn_outbox_dropped_total", op=row["op"])
        await self.store.write(
            lambda db: db.execute(
                "UPDATE outbox SET status = 'failed', last_error = ? WHERE id = ?", (str(exc), row["id"])
            )
        )

    async def _retry_later(self, row: Json, error: str, retry_after: float | None) -> None:
        if retry_after is None:
            attempt = max(1, int(row["attempts"]) + 1)
            backoff = min(self.config.max_backoff_seconds, self.config.base_backoff_seconds * 2 ** (attempt - 1))
            retry_after = backoff * (0.5 + _JITTER.random() / 2)
        at = now() + retry_after
        await self.store.write(
            lambda db: db.execute(
                "UPDATE outbox SET next_attempt_at = ?, last_error = ? WHERE id = ?", (at, error[:200], row["id"])
            )
        )
