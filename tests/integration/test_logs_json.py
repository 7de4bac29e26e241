"""What ``cpn-bot serve`` writes on stderr: JSON lines only, uvicorn's included, never a traceback."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from bot.sandbox.world import Timings, World
from tests.conftest import wait_for

HOSTILE: list[tuple[str, bytes, dict[str, str]]] = [
    ("/mattermost/actions", b"[" * 200_000 + b"]" * 200_000, {"Content-Type": "application/json"}),
    ("/mattermost/actions", b'{"context": {"exp": 1e999, "sig": "\\u00e9\\u00e9"}, "user_id": 1}', {}),
    ("/mattermost/dialogs", b'{"state": "{\\"sig\\": \\"\\udc80\\"}", "user_id": "\\ud800"}', {}),
    ("/mattermost/dialogs", b'{"state": "' + b"[" * 100_000 + b'"}', {}),
    ("/hooks/gitlab", b"{" * 50_000, {"X-Gitlab-Token": "x" * 5000}),
    ("/hooks/trivy?project=%ff%fe", b"\xff" * 1000, {"Authorization": "Bearer glpat-abcdefghijklmnopqrstuvwxyz"}),
    ("/hooks/harbor", b"\xff" * 1000, {"Authorization": "Bearer hbr-abcdefghijklmnopqrstuvwxyz"}),
]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[World, Path]]:
    world = World(
        tmp_path, timings=Timings.fast(), bot_in_process=False, config_overrides={"logging": {"level": "INFO"}}
    ).start()
    stderr = tmp_path / "stderr.log"
    with stderr.open("wb") as sink:
        process = subprocess.Popen(world.serve_command(), stdout=subprocess.DEVNULL, stderr=sink)
        try:
            wait_for(lambda: _up(world), timeout=30, what="the bot")
            yield world, stderr
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
            world.stop()


def _up(world: World) -> bool:
    try:
        return httpx.get(f"{world.bot_url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _raw(world: World, data: bytes) -> None:
    parts = urlsplit(world.bot_url)
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=5) as conn:
        conn.sendall(data)
        try:
            conn.recv(4096)
        except OSError:
            pass


def test_hostile_input_leaves_only_json_lines_and_no_traceback_on_stderr(served: tuple[World, Path]) -> None:
    world, stderr = served
    for path, body, headers in HOSTILE:
        answer = httpx.post(f"{world.bot_url}{path}", content=body, headers=headers, timeout=30)
        assert answer.status_code < 600
    _raw(world, b"GARBAGE / NOT-HTTP\r\n\r\n")  # uvicorn's own "Invalid HTTP request received."
    _raw(world, b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n")
    assert httpx.get(f"{world.bot_url}/healthz").status_code == 200
    text = stderr.read_text(errors="replace")
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, "the bot logged nothing at INFO"
    entries = [json.loads(line) for line in lines]  # a line that is not JSON fails here
    assert "Traceback" not in text
    assert any(e["logger"].startswith("uvicorn") for e in entries)  # uvicorn's lines are JSON too
    assert "abcdefghijklmnopqrstuvwxyz" not in text
