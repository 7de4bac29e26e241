"""Slow clients against a real uvicorn server run as ``cpn-bot serve`` runs it (issue 12, item 5):
header and body tricklers are cut off, connections are capped, normal clients are served."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from bot.config import ServerConfig
from bot.http_server import server_options

FAST = {
    "header_timeout_seconds": 0.3,
    "min_body_rate_bytes_per_second": 1000,
    "body_grace_seconds": 0.2,
    "max_connections": 100,
}


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers the size of the body it read; ``?wait=S`` waits S seconds before reading it."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/refuse":  # as the bot refuses a webhook from its headers, body unread
        headers = [(b"content-length", b"7"), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": b"refused"})
        return
    query = scope.get("query_string", b"").decode()
    if query.startswith("wait="):
        await asyncio.sleep(float(query[5:]))
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = str(size).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


@contextmanager
def serving(**limits: Any) -> Iterator[tuple[str, int]]:
    server_config = ServerConfig.model_validate({"public_url": "http://bot.example", **FAST, **limits})
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    options = {**server_options(server_config), "lifespan": "off", "timeout_graceful_shutdown": 1}
    server = uvicorn.Server(uvicorn.Config(echo, **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.01)
    try:
        yield sock.getsockname()
    finally:
        server.should_exit = True
        thread.join(5)
        sock.close()


def until_closed(conn: socket.socket, trickle: bytes = b"", every: float = 0.02, within: float = 5.0) -> bytes:
    """What the server sends until it closes the connection, ``trickle`` sent a byte at a time."""
    conn.settimeout(every)
    received = b""
    deadline = time.monotonic() + within
    sent = 0
    while time.monotonic() < deadline:
        if sent < len(trickle):
            try:
                conn.send(trickle[sent : sent + 1])
                sent += 1
            except OSError:
                return received
        try:
            chunk = conn.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    raise AssertionError(f"still open after {within} s; received {received[:80]!r}")


HEADERS = b"POST /hooks/trivy HTTP/1.1\r\nHost: bot\r\nX-Padding: " + b"a" * 400 + b"\r\n\r\n"


def test_a_client_trickling_its_headers_is_answered_408_and_cut_off() -> None:
    with serving() as address, socket.create_connection(address) as conn:
        started = time.monotonic()
        answer = until_closed(conn, trickle=HEADERS)
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert time.monotonic() - started < 2  # 0.3 s configured; far from the 400 × 20 ms trickle


def test_a_connection_that_sends_nothing_is_closed_silently_after_the_header_timeout() -> None:
    with serving() as address, socket.create_connection(address) as conn:
        assert until_closed(conn, within=3) == b""


def test_a_client_trickling_its_body_is_answered_408_and_cut_off() -> None:
    head = b"POST / HTTP/1.1\r\nHost: bot\r\nContent-Length: 10000\r\n\r\n"
    with serving() as address, socket.create_connection(address) as conn:
        conn.sendall(head)
        started = time.monotonic()
        answer = until_closed(conn, trickle=b"x" * 10000)  # 50 B/s, under the 1000 B/s minimum
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert time.monotonic() - started < 2


def test_a_normal_client_is_served_and_kept_alive() -> None:
    with serving() as (host, port), httpx.Client(base_url=f"http://{host}:{port}") as client:
        assert client.post("/", content=b"x" * 3_000_000).text == "3000000"
        time.sleep(0.5)  # longer than the header timeout: a kept-alive connection idles as uvicorn lets it
        assert client.post("/", content=b"y" * 10).text == "10"


def test_a_body_the_server_is_slow_to_read_is_not_held_against_the_client() -> None:
    # The app reads only after 0.8 s (four body windows): uvicorn pauses the socket meanwhile.
    with serving() as (host, port):
        answer = httpx.post(f"http://{host}:{port}/?wait=0.8", content=b"x" * 2_000_000, timeout=10)
        assert answer.text == "2000000"


def test_a_client_refused_before_its_body_reads_the_answer_not_a_reset() -> None:
    with serving() as (host, port):
        answer = httpx.post(f"http://{host}:{port}/refuse", content=b"x" * 20_000_000, timeout=10)
        assert answer.status_code == 401 and answer.text == "refused"


def test_a_refused_client_still_sending_is_closed_after_the_linger(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bot.http_server.LINGER_SECONDS", 0.3)
    head = b"POST /refuse HTTP/1.1\r\nHost: bot\r\nContent-Length: 100000000\r\n\r\n"
    with serving(min_body_rate_bytes_per_second=0) as address, socket.create_connection(address) as conn:
        conn.sendall(head + b"x" * 100_000)
        started = time.monotonic()
        answer = until_closed(conn)  # the answer, then the server's half-close (its FIN)
        assert answer.startswith(b"HTTP/1.1 401 ")
        with pytest.raises(OSError):  # the rest is discarded, then the socket closed: sends fail
            while time.monotonic() - started < 5:
                conn.send(b"y" * 1000)
                time.sleep(0.01)
        assert 0.3 <= time.monotonic() - started < 2


def test_connections_past_the_cap_are_refused_with_503_at_once() -> None:
    with serving(max_connections=5, header_timeout_seconds=10) as address, ExitStack() as held:
        for _ in range(5):
            held.enter_context(socket.create_connection(address))
        time.sleep(0.1)  # let the server accept them
        with socket.create_connection(address) as extra:
            answer = until_closed(extra, within=2)
        assert answer.startswith(b"HTTP/1.1 503 ") and b"retry-after: 1" in answer
        held.close()
        deadline = time.monotonic() + 5
        while True:  # the server sees the five closed shortly after
            answer_after = httpx.post(f"http://{address[0]}:{address[1]}/", content=b"ok")
            if answer_after.status_code == 200 or time.monotonic() > deadline:
                break
        assert answer_after.text == "2"


@pytest.mark.parametrize("kind", ["headers", "body"])
def test_fifty_tricklers_do_not_stop_a_normal_request_and_are_all_cut_off(kind: str) -> None:
    cut = threading.Semaphore(0)
    stop = threading.Event()

    def trickle(address: tuple[str, int]) -> None:
        with socket.create_connection(address) as conn:
            if kind == "body":
                conn.sendall(b"POST / HTTP/1.1\r\nHost: bot\r\nContent-Length: 100000\r\n\r\n")
            try:
                until_closed(conn, trickle=b"a" * 1000, within=10)
            except AssertionError:
                return
            if not stop.is_set():
                cut.release()

    with serving(header_timeout_seconds=1, body_grace_seconds=1) as address:
        threads = [threading.Thread(target=trickle, args=(address,), daemon=True) for _ in range(50)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(0.2)
            started = time.monotonic()
            answer = httpx.post(f"http://{address[0]}:{address[1]}/", content=b"x" * 100_000, timeout=5)
            assert answer.text == "100000" and time.monotonic() - started < 1
            for _ in range(50):
                assert cut.acquire(timeout=5), "a trickler was not cut off"
        finally:
            stop.set()
            for thread in threads:
                thread.join(10)
