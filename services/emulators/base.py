"""What every emulator shares: a loopback server runner and fault switches.

The runner starts uvicorn in a daemon thread on ``127.0.0.1:0`` and tells the bound URL, so
tests and the sandbox can run several emulators side by side without port clashes.
"""

from __future__ import annotations

import asyncio
import fnmatch
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send


@dataclass
class FailRule:
    """Answer ``status`` to requests whose ``METHOD path`` matches ``pattern`` (fnmatch)."""

    pattern: str
    status: int
    remaining: int | None = None  # None: until cleared
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


class Faults:
    """Switches a test or the sandbox flips to make an emulator misbehave like a real outage.

    - ``down``: every request answers 503 (the service is unreachable behind its proxy).
    - ``latency``: seconds added before each answer.
    - ``fail(pattern, status, times)``: matching requests answer ``status``; e.g.
      ``fail("POST /api/v4/posts", 429, times=1, headers={"Retry-After": "1"})``.
    """

    def __init__(self) -> None:
        self.down = False
        self.latency = 0.0
        self.rules: list[FailRule] = []
        self._lock = threading.Lock()

    def fail(
        self,
        pattern: str,
        status: int,
        times: int | None = None,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        with self._lock:
            self.rules.append(FailRule(pattern, status, times, body or {}, headers or {}))

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.down = False
            self.latency = 0.0

    def match(self, method: str, path: str) -> FailRule | None:
        key = f"{method} {path}"
        with self._lock:
            for rule in self.rules:
                if fnmatch.fnmatchcase(key, rule.pattern):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                        if rule.remaining <= 0:
                            self.rules.remove(rule)
                    return rule
        return None


class FaultMiddleware:
    """ASGI middleware applying :class:`Faults` before the emulator's own routes."""

    def __init__(self, app: ASGIApp, faults: Faults, error_body: Callable[[int], dict[str, Any]]) -> None:
        self.app = app
        self.faults = faults
        self.error_body = error_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if self.faults.latency:
            await asyncio.sleep(self.faults.latency)
        if scope["type"] == "http":
            response: Response | None = None
            if self.faults.down:
                response = JSONResponse(self.error_body(503), status_code=503)
            else:
                rule = self.faults.match(scope["method"], scope["path"])
                if rule is not None:
                    body = rule.body or self.error_body(rule.status)
                    response = JSONResponse(body, status_code=rule.status, headers=rule.headers)
            if response is not None:
                await response(scope, receive, send)
                return
        elif self.faults.down:
            # A websocket to a service that is down never opens.
            await send({"type": "websocket.close", "code": 1011})
            return
        await self.app(scope, receive, send)


class EmulatorServer:
    """Runs an ASGI app with uvicorn on a loopback port, in a daemon thread.

    >>> server = EmulatorServer(app).start()
    >>> server.url  # 'http://127.0.0.1:41234'
    >>> server.stop()
    """

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0, name: str = "emulator") -> None:
        self.app = app
        self.host = host
        self.port = port
        self.name = name
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def bind(self) -> str:
        """Reserve the port now (the URL is known before the app starts); returns the URL."""
        if self._sock is None:
            # proto=IPPROTO_TCP: asyncio then sets TCP_NODELAY on each accepted connection.
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # Without it, small answers on a kept-alive connection wait ~40 ms for Nagle's algorithm.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.bind((self.host, self.port))
            self.port = sock.getsockname()[1]
            self._sock = sock
        return self.url

    def start(self, timeout: float = 10.0) -> EmulatorServer:
        self.bind()
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            ws="websockets-sansio",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name=self.name, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"{self.name} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer …`` header, or None."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return token.strip()


Handler = Callable[[Request], Awaitable[Response]]
