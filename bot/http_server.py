"""uvicorn's HTTP/1.1 protocol with the limits it lacks: slow clients are cut off, connections capped.

uvicorn (``encode/uvicorn:uvicorn/protocols/http/h11_impl.py``) arms ``timeout_keep_alive`` only
once a response is complete (``on_response_complete``) and disarms it on the first byte received
(``data_received``): a client trickling its request line and headers, or its body, a byte at a
time keeps its connection forever, and a connection that never sends anything is never timed out.
Its ``limit_concurrency`` answers 503 only when a request's headers are complete
(``handle_events``, on ``h11.Request``), so it does not bound the sockets tricklers hold either.

:class:`GuardedH11Protocol` adds, per connection:

- a header deadline: from the connection's first moment (and from the first byte of each next
  request on a kept-alive one), the request line and headers must be whole within
  ``header_timeout_seconds``, else ``408`` and the connection is closed (closed silently when
  nothing at all came: an idle connection);
- a minimum body rate: after ``body_grace_seconds``, every window of that length must bring at
  least ``min_body_rate_bytes_per_second`` × the window, else the request is cut: ``408`` when
  the app had not answered yet (it then sees ``http.disconnect``), the connection closed either
  way. A window during which the server itself paused reading (the app not consuming, uvicorn's
  ``FlowControl`` above 64 KiB) does not count against the client;
- a lingering close: a request answered before its body was whole (a refusal from the headers)
  is half-closed, and what the client still sends is discarded unread for at most
  :data:`LINGER_SECONDS`, so that the client reads the answer rather than a reset;
- a connection cap: past ``max_connections`` open connections, a new one is answered ``503`` with
  ``Retry-After`` and closed at once, before a byte of it is read (asyncio has no hook before
  the accept itself: ``connection_made`` is the earliest).

Everything runs in the event loop's callbacks (``call_later``): no task per connection.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.h11_impl import H11Protocol

from bot.config import ServerConfig

_SERVICE_UNAVAILABLE = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"retry-after: 1\r\ncontent-length: 20\r\nconnection: close\r\n\r\ntoo many connections"
)
_REQUEST_TIMEOUT_HEAD = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 15\r\nconnection: close\r\n\r\nrequest timeout"
)


@dataclass(frozen=True)
class TransportLimits:
    header_timeout: float = 10.0
    min_body_rate: int = 1024  # bytes per second; 0: none
    body_grace: float = 5.0
    max_connections: int = 1000

    @classmethod
    def of(cls, server: ServerConfig) -> TransportLimits:
        return cls(
            header_timeout=server.header_timeout_seconds,
            min_body_rate=server.min_body_rate_bytes_per_second,
            body_grace=server.body_grace_seconds,
            max_connections=server.max_connections,
        )


class _WatchedFlow(FlowControl):
    """uvicorn's flow control, remembering that reading was paused (by the server) in a window."""

    paused_in_window = False

    def pause_reading(self) -> None:
        self.paused_in_window = True
        super().pause_reading()


class _LingeringTransport:
    """The connection's transport as the request cycle sees it: closing it while the client is
    still sending its body (a refusal from the headers) half-closes instead, and the rest of the
    body is discarded unread for at most ``LINGER_SECONDS`` before the socket is closed. Closing
    at once would make the kernel answer the unread bytes with a reset, and a client still
    writing (httpx, requests) would see that reset instead of the 401 (what nginx's
    ``lingering_close`` avoids too)."""

    def __init__(self, transport: asyncio.Transport, protocol: GuardedH11Protocol) -> None:
        self._transport = transport
        self._protocol = protocol

    def close(self) -> None:
        if self._protocol.conn.their_state is h11.SEND_BODY and not self._transport.is_closing():
            self._protocol.linger()
        else:
            self._transport.close()

    def is_closing(self) -> bool:
        return self._protocol.lingering or self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


LINGER_SECONDS = 5.0


class GuardedH11Protocol(H11Protocol):
    """:class:`H11Protocol` with a header deadline, a minimum body rate and a connection cap."""

    limits = TransportLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._window_bytes = 0
        self._seen_bytes = False  # of the request being awaited
        self._refused = False
        self.lingering = False
        self._real: asyncio.Transport | None = None

    # -- the connection cap ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refused = True
            self.connections.discard(self)
            transport.write(_SERVICE_UNAVAILABLE)
            transport.close()
            return
        self.flow = _WatchedFlow(transport)
        self._real = transport
        self.transport = _LingeringTransport(transport, self)  # type: ignore[assignment]
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    # -- the header deadline and the body's rate ------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._refused or self.lingering:
            return  # discarded unread
        if self._body_timer is not None:
            self._window_bytes += len(data)
        elif self._header_timer is None:
            self._arm_header_timer()  # the first byte of the next request on a kept-alive connection
        self._seen_bytes = True
        cycle = self.cycle
        super().data_received(data)
        self._after_events(cycle)

    def on_response_complete(self) -> None:
        cycle = self.cycle
        super().on_response_complete()
        self._after_events(cycle)  # pipelined requests are handled from here

    def _after_events(self, before: object) -> None:
        if self.cycle is not before and self._header_timer is not None:
            # A new request's headers are whole.
            self._header_timer.cancel()
            self._header_timer = None
            self._seen_bytes = False
        sending_body = self.conn.their_state is h11.SEND_BODY
        if sending_body and self._body_timer is None and self.limits.min_body_rate > 0:
            self._window_bytes = 0
            self._body_timer = self.loop.call_later(self.limits.body_grace, self._check_body_rate)
        elif not sending_body and self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.limits.header_timeout, self._headers_too_slow)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being answered (pipelining): its own timers apply
        if self._seen_bytes:
            self.transport.write(_REQUEST_TIMEOUT_HEAD)
        self._close()

    def _check_body_rate(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.SEND_BODY:
            return
        flow = self.flow
        paused = isinstance(flow, _WatchedFlow) and (flow.paused_in_window or flow.read_paused)
        if isinstance(flow, _WatchedFlow):
            flow.paused_in_window = flow.read_paused
        if not paused and self._window_bytes < self.limits.min_body_rate * self.limits.body_grace:
            self._body_too_slow()
            return
        self._window_bytes = 0
        self._body_timer = self.loop.call_later(self.limits.body_grace, self._check_body_rate)

    def _body_too_slow(self) -> None:
        cycle = self.cycle
        if cycle is not None and not cycle.response_started:
            try:
                self.transport.write(
                    self.conn.send(
                        h11.Response(
                            status_code=408,
                            headers=[
                                (b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", b"15"),
                                (b"connection", b"close"),
                            ],
                            reason=b"Request Timeout",
                        )
                    )
                    or b""
                )
                self.transport.write(self.conn.send(h11.Data(data=b"request timeout")) or b"")
                self.transport.write(self.conn.send(h11.EndOfMessage()) or b"")
            except h11.LocalProtocolError:
                pass
        if cycle is not None:
            # The app, waiting for the body, sees the client gone; what it sends next is dropped.
            cycle.response_started = True
            cycle.disconnected = True
            cycle.message_event.set()
        self._close()

    def linger(self) -> None:
        """Answered before the body was whole: half-close, discard what still comes, then close."""
        self.lingering = True
        self._cancel_timers()
        assert self._real is not None
        self.flow.resume_reading()
        if self._real.can_write_eof():
            self._real.write_eof()
        self._header_timer = self.loop.call_later(LINGER_SECONDS, self._close)

    def _close(self) -> None:
        self._cancel_timers()
        self.connections.discard(self)
        (self._real or self.transport).close()

    def _cancel_timers(self) -> None:
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None


def guarded_protocol(limits: TransportLimits) -> type[GuardedH11Protocol]:
    """A protocol class with these limits, to pass to uvicorn as ``http=``."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"limits": limits})


def server_options(server: ServerConfig) -> dict[str, Any]:
    """The uvicorn options ``cpn-bot serve`` runs with (and the tests start a server with)."""
    from bot.cli import SERVER_OPTIONS

    return {**SERVER_OPTIONS, "http": guarded_protocol(TransportLimits.of(server))}
