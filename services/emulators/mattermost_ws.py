"""The Mattermost emulator's websocket, ``GET /api/v4/websocket``.

Protocol of the real server (server/channels/api4/websocket.go, app/platform/web_conn.go,
websocket_router.go): a token in the upgrade request's ``Authorization`` header authenticates at
once; otherwise the client sends ``{"seq":1,"action":"authentication_challenge","data":{"token":…}}``
and gets ``{"status":"OK","seq_reply":1}`` (a bad token: a FAIL reply, then the socket closes).
A fresh connection then gets ``hello`` with ``seq`` 0 and its ``connection_id``, and every later
event carries the next ``seq`` of that connection.

Resuming (see ``mattermost_hub``) needs the header: with ``?connection_id=…&sequence_number=N``
the missed events are replayed from N, without ``hello``; an id that is not 26 characters of
``[a-z0-9]``, or a known id without a sequence number, gets the socket closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from services.emulators.mattermost_http import app_error_body, token_of
from services.emulators.mattermost_hub import Connection
from services.emulators.mattermost_state import JsonDict, State, broadcast_shape, is_valid_id, now_ms


def websocket_endpoint(state: State) -> Callable[[WebSocket], Awaitable[None]]:
    async def endpoint(ws: WebSocket) -> None:
        if state.hub.refusing:
            await ws.close(code=1013)  # before accept: the upgrade is refused (a network drop)
            return
        await ws.accept()
        try:
            user = state.user_for_token(token_of(ws))
            resumed: tuple[Connection, int] | None = None
            if user is not None and ws.query_params.get("connection_id"):
                found = _resumable(state, ws, user)
                if found is None:
                    await ws.close()
                    return
                resumed = found or None
            elif user is None:
                user = await _challenge(state, ws)
                if user is None:
                    await ws.close(code=1008)
                    return
            await _Session(state, ws, user, resumed).run()
        except (WebSocketDisconnect, RuntimeError, OSError):
            return  # the client went away mid-write

    return endpoint


def _resumable(state: State, ws: WebSocket, user: JsonDict) -> tuple[Connection, int] | tuple[()] | None:
    """(connection, seq) to resume; () for a fresh connection (unknown id); None: close the socket."""
    connection_id = ws.query_params["connection_id"]
    if not is_valid_id(connection_id):
        return None  # PopulateWebConnConfig: invalid connection id
    conn = state.hub.resume(user["id"], connection_id)
    if conn is None:
        return ()  # timed out or server restarted: a new id
    raw = ws.query_params.get("sequence_number", "")
    if not raw.isdigit():
        state.hub.detach(conn)
        return None  # "sequence number not present in websocket request"
    return conn, int(raw)


async def _challenge(state: State, ws: WebSocket) -> JsonDict | None:
    """Wait for authentication_challenge; the user on success, None after a FAIL reply."""
    while True:
        request = _decode(await ws.receive_text())
        seq = request.get("seq", 0)
        if request.get("action") != "authentication_challenge":
            await ws.send_text(_dump(_fail(seq)))
            continue
        data = request.get("data")
        token = data.get("token") if isinstance(data, dict) else None
        user = state.user_for_token(token if isinstance(token, str) else None)
        if user is None:
            await ws.send_text(_dump(_fail(seq)))
            return None
        await ws.send_text(_dump({"status": "OK", "seq_reply": seq}))
        return user


class _Session:
    """One socket attached to a connection: writes its events, answers the client's actions."""

    def __init__(self, state: State, ws: WebSocket, user: JsonDict, resumed: tuple[Connection, int] | None) -> None:
        self.state, self.ws, self.user = state, ws, user
        self.resumed = resumed
        self.replies: asyncio.Queue[JsonDict] = asyncio.Queue()
        self.send_lock = asyncio.Lock()

    async def run(self) -> None:
        conn = self.resumed[0] if self.resumed else self.state.hub.register(self.user["id"])
        reader = asyncio.create_task(self._read())
        try:
            if self.resumed is None:
                await self._write(conn, self._hello(conn))
            else:
                await self._catch_up(conn, self.resumed[1])
            await self._pump(conn, reader)
        finally:
            self.state.hub.detach(conn)
            reader.cancel()

    async def _catch_up(self, conn: Connection, seq: int) -> None:
        """writePump's start on a reused connection: replay, or a new id and hello after a loss."""
        conn.sequence = seq
        if seq == 0:
            return
        replay = conn.replay_from(seq)
        if replay is not None:
            for event in replay:
                await self._send(event)
                conn.sequence += 1
        elif not conn.lossless():
            self.state.hub.renew(conn)
            await self._write(conn, self._hello(conn))

    def _hello(self, conn: Connection) -> JsonDict:
        data = {"connection_id": conn.id, "server_hostname": "", "server_version": self.state.server_version}
        return {"event": "hello", "data": data, "broadcast": broadcast_shape({"user_id": self.user["id"]})}

    async def _pump(self, conn: Connection, reader: asyncio.Task[None]) -> None:
        while True:
            getter = asyncio.ensure_future(conn.queue.get())
            reply = asyncio.ensure_future(self.replies.get())
            kicked = asyncio.ensure_future(conn.kick.wait())
            waiting = {getter, reply, kicked, reader}
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            for task in (getter, reply, kicked):
                if task not in done:
                    task.cancel()
            if getter in done:
                self.state.hub.taken(conn)
                await self._write(conn, getter.result())
            if reply in done:
                await self._send(reply.result())
            if kicked in done or reader in done:
                with contextlib.suppress(RuntimeError, OSError):
                    await self.ws.close(code=1001)
                return

    async def _write(self, conn: Connection, event: JsonDict) -> None:
        # Remembered before it is written: a send that fails can still be replayed on resume.
        await self._send(conn.written(event))

    async def _send(self, message: JsonDict) -> None:
        async with self.send_lock:
            await self.ws.send_text(_dump(message))

    async def _read(self) -> None:
        """Answer the client's actions (ping, user_typing, …) harmlessly."""
        try:
            while True:
                request = _decode(await self.ws.receive_text())
                seq = request.get("seq", 0)
                reply: JsonDict = {"status": "OK", "seq_reply": seq}
                if request.get("action") == "ping":
                    reply["data"] = {"text": "pong", "version": self.state.server_version, "server_time": now_ms()}
                self.replies.put_nowait(reply)
        except (WebSocketDisconnect, RuntimeError):
            return


def _fail(seq: Any) -> JsonDict:
    error = app_error_body(401, "api.web_socket_router.not_authenticated.app_error")
    return {"status": "FAIL", "seq_reply": seq, "error": error}


def _decode(text: str) -> JsonDict:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _dump(message: JsonDict) -> str:
    return json.dumps(message, separators=(",", ":"))
