"""The bot's websocket client: a dead link is noticed by the heartbeat, and the reconnection asks
to resume where it stopped (mattermost/mattermost server/channels/api4/websocket.go)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bot.mm_socket import MattermostSocket, SocketOptions

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455


class SilentServer:
    """Accepts the upgrade, sends ``hello`` and one event, then neither reads nor answers pings:
    a half-open link, as after a NAT or a proxy forgot the connection."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        for writer in self._writers:
            writer.close()
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        path = head.split(" ", 2)[1]
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in head.split("\r\n")[1:] if line)}
        self.requests.append((path, headers))
        accept = base64.b64encode(
            hashlib.sha1((headers["sec-websocket-key"] + _GUID).encode(), usedforsecurity=False).digest()
        ).decode()
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
        )
        hello = {"event": "hello", "data": {"connection_id": "a" * 26}, "seq": 0}
        posted = {"event": "posted", "data": {}, "seq": 1}
        for message in (hello, posted):
            writer.write(_frame(json.dumps(message).encode()))
        await writer.drain()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)  # silent from now on


def _frame(payload: bytes) -> bytes:
    assert len(payload) < 126
    return bytes([0x81, len(payload)]) + payload


async def test_a_silent_link_is_dropped_by_the_heartbeat_and_resumed_where_it_stopped() -> None:
    server = SilentServer()
    url = await server.start()
    events: list[dict[str, Any]] = []

    async def on_event(message: dict[str, Any]) -> None:
        events.append(message)

    async def on_loss(since_ms: int) -> None:
        raise AssertionError("the same connection id came back: nothing was lost")

    options = SocketOptions(url=url, token="bot-token", ping_seconds=0.1, reconnect_seconds=0.01)
    socket = MattermostSocket(options, on_event, on_loss)
    task = asyncio.create_task(socket.run())
    try:
        async with asyncio.timeout(5):
            while len(server.requests) < 2:
                await asyncio.sleep(0.01)
        first, second = server.requests[:2]
        assert first[0] == "/api/v4/websocket"
        assert first[1]["authorization"] == "Bearer bot-token"  # authenticated at the upgrade
        query = parse_qs(urlsplit(second[0]).query)
        assert query == {"connection_id": ["a" * 26], "sequence_number": ["2"]}
        assert [e["seq"] for e in events[:2]] == [0, 1]
    finally:
        await socket.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop()


def test_a_hello_whose_connection_id_is_not_an_id_is_not_sent_back_in_the_resume_url() -> None:
    import asyncio

    from bot.mm_socket import MattermostSocket, SocketOptions

    async def nothing(_: object) -> None:
        return None

    socket = MattermostSocket(SocketOptions("http://mm.example", "t"), nothing, nothing)
    asyncio.run(socket._hello({"data": {"connection_id": "x&sequence_number=0&evil=1"}}, resuming=False))
    assert socket.connection_id == "" and "?" not in socket._url()
    asyncio.run(socket._hello({"data": {"connection_id": "a" * 26}}, resuming=False))
    assert socket._url().endswith("connection_id=" + "a" * 26 + "&sequence_number=0")
