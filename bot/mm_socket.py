"""The bot's websocket to Mattermost: heartbeat, reconnection, and resume of missed events.

mattermostautodriver's ``Websocket`` sends no ping, forgets its connection on every drop and waits
for a ``hello`` that a resumed connection never sends; this client follows the server instead
(mattermost/mattermost server/channels/api4/websocket.go, app/platform/web_conn.go):

- the token goes in the upgrade request's ``Authorization`` header: only a socket authenticated
  at the upgrade may resume;
- pings every ``ping_seconds`` (the server answers them); no pong within that time means a dead
  link: the socket is closed and opened again;
- it reconnects with ``?connection_id=<from hello>&sequence_number=<next seq expected>``: the
  server replays what the socket missed (from its dead queue and what it queued meanwhile);
- a ``hello`` carrying another connection id after a reconnect means the server could not
  resume (connection reaped after 5 min, restart, another cluster node): events may be lost, and
  ``on_loss`` is awaited with the time of the last event seen, to catch up by other means.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import websockets

from bot.ids import is_mattermost_id

logger = logging.getLogger("cpn.listener")
# Its own generator: the reconnect jitter neither moves nor follows the global random state.
_JITTER = random.Random()

EventHandler = Callable[[dict[str, Any]], Awaitable[None]]
LossHandler = Callable[[int], Awaitable[None]]
OutcomeHandler = Callable[[str], None]  # "resumed" or "lost", once per reconnection that says
SEQUENCE_MISMATCH = 4001  # api4/websocket.go clientSequenceMismatchErrCode


@dataclass(frozen=True)
class SocketOptions:
    url: str  # Mattermost's base URL (http(s)://host[:port])
    token: str
    ping_seconds: float = 30.0
    reconnect_seconds: float = 1.0  # first delay; doubles up to max_reconnect_seconds
    max_reconnect_seconds: float = 30.0
    open_timeout: float = 10.0


def websocket_url(base: str) -> str:
    parts = urlsplit(base)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}/api/v4/websocket"


class MattermostSocket:
    def __init__(
        self,
        options: SocketOptions,
        on_event: EventHandler,
        on_loss: LossHandler,
        on_outcome: OutcomeHandler | None = None,
    ) -> None:
        self.options = options
        self.on_event = on_event
        self.on_loss = on_loss
        self.on_outcome = on_outcome or (lambda outcome: None)
        self.connection_id = ""
        self.next_seq = 0
        self.last_event_ms = 0  # server time is not sent: our clock when the last event came
        self.connected = asyncio.Event()
        self.stats = {"connects": 0, "resumed": 0, "lost": 0}
        self._stopping = False
        self._socket: websockets.ClientConnection | None = None

    async def run(self) -> None:
        delay = self.options.reconnect_seconds
        while not self._stopping:
            try:
                await self._session()
                delay = self.options.reconnect_seconds
            except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                logger.warning("websocket to Mattermost lost", extra={"fields": {"error": type(exc).__name__}})
            self.connected.clear()
            if self._stopping:
                return
            await asyncio.sleep(delay * (0.5 + _JITTER.random() / 2))
            delay = min(self.options.max_reconnect_seconds, delay * 2)

    async def stop(self) -> None:
        self._stopping = True
        if self._socket is not None:
            await self._socket.close()

    def _url(self) -> str:
        url = websocket_url(self.options.url)
        if self.connection_id:
            url += "?" + urlencode({"connection_id": self.connection_id, "sequence_number": self.next_seq})
        return url

    async def _session(self) -> None:
        async with websockets.connect(
            self._url(),
            additional_headers={"Authorization": f"Bearer {self.options.token}"},
            ping_interval=self.options.ping_seconds,
            ping_timeout=self.options.ping_seconds,
            close_timeout=self.options.ping_seconds,  # a dead link answers no close frame either
            open_timeout=self.options.open_timeout,
            proxy=None,
            max_size=2**24,
        ) as socket:
            self._socket = socket
            self.stats["connects"] += 1
            self.connected.set()
            resuming = bool(self.connection_id)
            async for raw in socket:
                message = _decode(raw)
                if "event" not in message:
                    continue  # a reply to one of our actions
                seq = message.get("seq")
                if message["event"] == "hello":
                    await self._hello(message, resuming)
                    resuming = False
                elif isinstance(seq, int) and seq > self.next_seq:
                    # A gap: close so that the server replays from the seq we expect.
                    await socket.close(SEQUENCE_MISMATCH)
                    return
                elif resuming:
                    self.stats["resumed"] += 1
                    self.on_outcome("resumed")
                    resuming = False
                if isinstance(seq, int):
                    self.next_seq = seq + 1
                self.last_event_ms = int(time.time() * 1000)
                await self.on_event(message)

    async def _hello(self, message: dict[str, Any], resuming: bool) -> None:
        data = message.get("data") or {}
        new_id = str(data.get("connection_id") or "")
        if not is_mattermost_id(new_id):
            new_id = ""  # it goes back in the resume URL: only a real id (model.NewId) is kept
        lost = resuming and new_id != self.connection_id
        since = self.last_event_ms
        self.connection_id = new_id
        if lost:
            self.stats["lost"] += 1
            self.on_outcome("lost")
            logger.warning("websocket resumed without its missed events: catching up")
            await self.on_loss(since)


def _decode(raw: str | bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
