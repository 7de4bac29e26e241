"""The Mattermost emulator's websocket, ``GET /api/v4/websocket``.

Protocol of the real server (server/channels/app/platform/web_conn.go, web_socket_router.go) as
mattermostautodriver's ``Websocket`` speaks it: the client sends
``{"seq":1,"action":"authentication_challenge","data":{"token":…}}``, the server answers
``{"status":"OK","seq_reply":1}`` then the ``hello`` event with ``seq`` 0, and every later event
carries the next ``seq`` of that connection. A bad token gets a FAIL reply and the socket closes.
A token in the upgrade request's ``Authorization`` header authenticates at once, as on the server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from services.emulators.mattermost_http import app_error_body, token_of
from services.emulators.mattermost_state import JsonDict, State, broadcast_shape, new_id, now_ms

_REPLY = "_reply"  # queue items with this key are replies to client actions, sent without seq


def websocket_endpoint(state: State) -> Callable[[WebSocket], Awaitable[None]]:
    async def endpoint(ws: WebSocket) -> None:
        await ws.accept()
        user = state.user_for_token(token_of(ws))
        try:
            if user is None:
                user = await _challenge(state, ws)
            if user is None:
                await ws.close(code=1008)
                return
            await _serve(state, ws, user)
        except WebSocketDisconnect:
            return

    return endpoint


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


async def _serve(state: State, ws: WebSocket, user: JsonDict) -> None:
    """Send hello, then queued events (seq 1, 2, …) and replies until the client goes away."""
    queue: asyncio.Queue[JsonDict] = asyncio.Queue()
    sock = state.attach_socket(user["id"], queue)
    reader = asyncio.create_task(_read(state, ws, queue))
    try:
        hello = {
            "event": "hello",
            "data": {
                "connection_id": new_id(),
                "server_hostname": "",
                "server_version": state.server_version,
            },
            "broadcast": broadcast_shape({"user_id": user["id"]}),
            "seq": 0,
        }
        await ws.send_text(_dump(hello))
        seq = 1
        while True:
            item = await _next_item(queue, reader)
            if item is None:
                return
            if _REPLY in item:
                await ws.send_text(_dump(item[_REPLY]))
                continue
            await ws.send_text(_dump({**item, "seq": seq}))
            seq += 1
    finally:
        state.detach_socket(sock)
        reader.cancel()


async def _next_item(queue: asyncio.Queue[JsonDict], reader: asyncio.Task[None]) -> JsonDict | None:
    """The next queued item, or None once the reader has stopped (client disconnected)."""
    getter = asyncio.ensure_future(queue.get())
    done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
    if getter in done:
        return getter.result()
    getter.cancel()
    return None


async def _read(state: State, ws: WebSocket, queue: asyncio.Queue[JsonDict]) -> None:
    """Answer the client's actions (ping, user_typing, …) harmlessly through the writer's queue."""
    try:
        while True:
            request = _decode(await ws.receive_text())
            seq = request.get("seq", 0)
            reply: JsonDict = {"status": "OK", "seq_reply": seq}
            if request.get("action") == "ping":
                reply["data"] = {"text": "pong", "version": state.server_version, "server_time": now_ms()}
            queue.put_nowait({_REPLY: reply})
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
