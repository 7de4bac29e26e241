"""The Mattermost emulator's websocket hub: connections that outlive their socket, for resuming.

Semantics of the real server (mattermost/mattermost server/channels/app/platform/web_conn.go,
web_hub.go, server/channels/api4/websocket.go):

- a connection has an id (sent in ``hello``) and a sequence: every event it writes carries the
  next ``seq``, and the last ``deadQueueSize`` = 128 written events are kept (the dead queue);
- when the socket goes away the connection stays in the hub, inactive, and keeps queueing the
  events published for its user (``sendQueueSize`` = 256; a full queue drops the connection) until
  the reaper removes it after ``inactiveConnReaperInterval`` = 5 minutes;
- a client that comes back with ``?connection_id=…&sequence_number=N`` (N = the next seq it
  expects) on a socket authenticated at the upgrade gets the written events from N on replayed
  from the dead queue, then the queued ones, with no ``hello``; when N is no longer in the dead
  queue it gets a new connection id and a ``hello`` with ``seq`` 0 (events were lost), and an
  unknown connection id gets a fresh connection.

Thread-safe: the sandbox and tests publish from other threads than the server's event loop.
"""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

JsonDict = dict[str, Any]

DEAD_QUEUE_SIZE = 128  # platform.deadQueueSize
SEND_QUEUE_SIZE = 256  # platform.sendQueueSize


@dataclass
class Connection:
    """One user's websocket connection (platform.WebConn), with or without a socket attached."""

    id: str
    user_id: str
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[JsonDict] = field(default_factory=asyncio.Queue)  # published, not yet written
    dead: deque[JsonDict] = field(default_factory=lambda: deque(maxlen=DEAD_QUEUE_SIZE))  # written
    sequence: int = 0  # the seq of the next event written
    backlog: int = 0  # published and not yet taken by the socket (the queue fills from other threads)
    active: bool = True
    left_at: float = 0.0  # time.monotonic() when its socket went away
    kick: asyncio.Event = field(default_factory=asyncio.Event)  # set: close the socket now

    def written(self, event: JsonDict) -> JsonDict:
        """``event`` stamped with the next seq and remembered in the dead queue (writePump)."""
        stamped = {**event, "seq": self.sequence}
        self.dead.append(stamped)
        self.sequence += 1
        return stamped

    def replay_from(self, seq: int) -> list[JsonDict] | None:
        """The written events from ``seq`` on (isInDeadQueue + drainDeadQueue), None if gone."""
        seqs = [e["seq"] for e in self.dead]
        if seq not in seqs:
            return None
        return list(self.dead)[seqs.index(seq) :]

    def lossless(self) -> bool:
        """Nothing was written after the client's last event (hasMsgLoss is false)."""
        return not self.dead or self.dead[-1]["seq"] == self.sequence - 1


class Hub:
    """Every connection of the emulator. Timings are attributes so tests can shrink them."""

    def __init__(self, new_id: Callable[[], str]) -> None:
        self.new_id = new_id
        self.lock = threading.RLock()
        self.resume_ttl = 5 * 60.0  # inactiveConnReaperInterval
        self.refusing = False  # emulator only: refuse new sockets, to make a drop last
        self._conns: dict[str, Connection] = {}

    def active(self) -> list[Connection]:
        with self.lock:
            return [c for c in self._conns.values() if c.active]

    def register(self, user_id: str) -> Connection:
        conn = Connection(self.new_id(), user_id, asyncio.get_running_loop())
        with self.lock:
            self._conns[conn.id] = conn
        return conn

    def resume(self, user_id: str, connection_id: str) -> Connection | None:
        """The inactive connection ``connection_id`` of this user, attached again; None if gone."""
        with self.lock:
            self._reap()
            conn = self._conns.get(connection_id)
            if conn is None or conn.user_id != user_id or conn.active:
                return None
            conn.active = True
            conn.kick = asyncio.Event()
            return conn

    def taken(self, conn: Connection) -> None:
        """One queued event went to the socket."""
        with self.lock:
            conn.backlog -= 1

    def renew(self, conn: Connection) -> None:
        """Events were lost: a new connection id, seq 0, an empty dead queue."""
        with self.lock:
            self._conns.pop(conn.id, None)
            conn.id = self.new_id()
            conn.sequence = 0
            conn.dead.clear()
            self._conns[conn.id] = conn

    def detach(self, conn: Connection) -> None:
        with self.lock:
            conn.active = False
            conn.left_at = time.monotonic()

    def drop(self, user_id: str | None = None, refuse: bool = False) -> None:
        """Close the sockets (of one user, or all) as a network drop would; ``refuse`` keeps new
        ones out until :meth:`allow`. The connections stay, so their clients may resume."""
        with self.lock:
            self.refusing = refuse
            targets = [c for c in self._conns.values() if c.active and user_id in (None, c.user_id)]
        for conn in targets:
            conn.loop.call_soon_threadsafe(conn.kick.set)

    def allow(self) -> None:
        with self.lock:
            self.refusing = False

    def forget(self) -> None:
        """Drop every inactive connection, as the reaper or a server restart does."""
        with self.lock:
            self._conns = {cid: c for cid, c in self._conns.items() if c.active}

    def publish(self, message: JsonDict, user_ids: set[str]) -> None:
        """Queue ``message`` on every connection of ``user_ids``, attached or not."""
        with self.lock:
            self._reap()
            targets = [c for c in self._conns.values() if c.user_id in user_ids]
            for conn in targets:
                if conn.loop.is_closed():
                    continue  # the server has stopped
                if not conn.active and conn.backlog >= SEND_QUEUE_SIZE:
                    del self._conns[conn.id]  # the hub gives up on a client that is away too long
                    continue
                conn.backlog += 1
                # call_soon_threadsafe: callers may be the sandbox thread, not the server's loop.
                conn.loop.call_soon_threadsafe(conn.queue.put_nowait, copy.deepcopy(message))

    def _reap(self) -> None:
        limit = time.monotonic() - self.resume_ttl
        self._conns = {cid: c for cid, c in self._conns.items() if c.active or c.left_at > limit}
