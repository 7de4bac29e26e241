"""A World whose Mattermost, Argo CD and Harbor emulators record every exchange (an ASGI middleware).

What is recorded is what crossed the wire: the request as the bot's adapter (through its real
client library) sent it, the response as the emulator wrote it.
"""

from __future__ import annotations

import threading
from typing import Any

from bot.sandbox.world import World
from tests.contracts.openapi import Exchange

RECORDED = ("mattermost", "argocd", "harbor")

Scope = dict[str, Any]
Message = dict[str, Any]


class Recorder:
    def __init__(self, app: Any, service: str, sink: list[Exchange], lock: threading.Lock) -> None:
        self.app, self.service, self.sink, self.lock = app, service, sink, lock

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        exchange = Exchange(
            self.service, scope["method"], scope["path"], scope.get("query_string", b"").decode("latin-1"), headers, b""
        )
        chunks: list[bytes] = []

        async def receiving() -> Message:
            message: Message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                exchange.request_body = b"".join(chunks)
            return message

        body: list[bytes] = []

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                exchange.status = message["status"]
                exchange.response_headers = {
                    k.decode("latin-1").lower(): v.decode("latin-1") for k, v in message.get("headers", [])
                }
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))
                if not message.get("more_body"):
                    exchange.response_body = b"".join(body)
                    with self.lock:
                        self.sink.append(exchange)
            await send(message)

        await self.app(scope, receiving, sending)


class _Recording:
    """Stands for an emulator module: same ``create_app``, its app wrapped in a :class:`Recorder`."""

    def __init__(self, module: Any, service: str, world: RecordedWorld) -> None:
        self.module, self.service, self.world = module, service, world

    def create_app(self, state: Any) -> Recorder:
        return Recorder(self.module.create_app(state), self.service, self.world.exchanges, self.world.lock)


class RecordedWorld(World):
    def __post_init__(self) -> None:
        super().__post_init__()
        self.exchanges: list[Exchange] = []
        self.lock = threading.Lock()

    def _serve(self, name: str, state: Any, module: Any) -> Any:
        if name in RECORDED:
            module = _Recording(module, name, self)
        return super()._serve(name, state, module)

    def bot_exchanges(self, service: str) -> list[Exchange]:
        """What the bot's adapter sent (by its credentials), not the tests' own users."""
        with self.lock:
            recorded = [e for e in self.exchanges if e.service == service]
        if service == "mattermost":
            assert self.bot_user is not None
            token = self.bot_user.token
            return [e for e in recorded if e.request_headers.get("authorization", "") == f"Bearer {token}"]
        return recorded  # the scenarios below make no Argo CD or Harbor HTTP call of their own
