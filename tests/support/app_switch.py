"""One loopback server per test module, each test plugging in a fresh emulator app."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class AppSwitch:
    """The ASGI app a module-scoped server runs; tests swap the emulator behind it.

    Starting and stopping uvicorn costs ~0.2 s, too much to pay per test.
    """

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        assert self.app is not None
        await self.app(scope, receive, send)
