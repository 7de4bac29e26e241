"""Large webhook bodies: written to a 0600 file as they arrive, a bounded number at once, never
buffered before authentication (issue 12, item 4)."""

from __future__ import annotations

import socket
import stat
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from bot.sandbox.world import World
from bot.spool import spool_directory
from services.emulators.fixtures import fixtures_dir
from tests.conftest import wait_for
from tests.support.mattermost import User, channel_posts

REPORT = (fixtures_dir() / "trivy_image_report.json").read_bytes()
THRESHOLD = 2048  # the fixture report is larger: it is spooled


def spooled_world(make_world: Callable[..., World], **server: Any) -> tuple[World, str]:
    world = make_world(config_overrides={"server": {"spool_threshold_bytes": THRESHOLD, **server}})
    bob = User(world, "bob")
    bob.run("/cpn project create alpha")
    world.wait_idle(30)
    bob.run("/cpn repo add alpha api")
    world.wait_idle(30)
    shown = bob.run("/cpn token create alpha")["text"]
    return world, next(line for line in shown.splitlines() if line.startswith("cpn_"))


def spool_of(world: World) -> Path:
    assert world.bot is not None
    return spool_directory(world.bot.config.store.path)


class HeldUpload:
    """A report POSTed in two halves, the second held back until ``release()``."""

    def __init__(self, world: World, token: str, body: bytes = REPORT) -> None:
        self.gate = threading.Event()
        self.body = body
        self.pool = ThreadPoolExecutor(1)
        self.answer: Future[httpx.Response] = self.pool.submit(
            httpx.post,
            f"{world.bot_url}/hooks/trivy",
            params={"project": "alpha", "repo": "api"},
            content=self._chunks(),
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Content-Length": str(len(body)),
            },
            timeout=30,
        )

    def _chunks(self) -> Iterator[bytes]:
        half = len(self.body) // 2
        yield self.body[:half]
        self.gate.wait(30)
        yield self.body[half:]

    def release(self) -> httpx.Response:
        self.gate.set()
        try:
            return self.answer.result(30)
        finally:
            self.pool.shutdown()


def scan_posts(world: World) -> list[dict[str, Any]]:
    return [
        a
        for p in channel_posts(world, "equipe-alpha")
        for a in (p.get("props") or {}).get("attachments") or []
        if "Trivy" in a.get("title", "")
    ]


def test_a_large_report_is_spooled_to_a_private_file_then_read_from_it_and_removed(
    make_world: Callable[..., World],
) -> None:
    world, token = spooled_world(make_world)
    upload = HeldUpload(world, token)
    tmp = spool_of(world) / "tmp"
    # The file exists before its first bytes are written: wait for them, not for the name.
    held = wait_for(lambda: [f for f in tmp.iterdir() if f.stat().st_size], what="the upload's first half spooled")
    assert len(held) == 1 and stat.S_IMODE(held[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(tmp.stat().st_mode) == 0o700
    assert 0 < held[0].stat().st_size < len(REPORT)  # written as it arrives
    answer = upload.release()
    assert answer.status_code == 202, answer.text
    world.wait_idle()
    card = scan_posts(world)[-1]
    assert "alpine-39" in card["title"] and "Critique **2**" in card["text"]
    # The inbox never held the report, and its file is gone once processed.
    row = world.store().inbox_db.execute("SELECT body FROM inbox WHERE source = 'trivy'").fetchone()
    assert row == ("",)
    assert list(tmp.iterdir()) == [] and list((spool_of(world) / "reports").iterdir()) == []


def test_large_uploads_past_the_cap_wait_their_bound_then_get_503_with_retry_after(
    make_world: Callable[..., World],
) -> None:
    world, token = spooled_world(make_world, max_large_uploads=1, large_upload_wait_seconds=0.2)
    first = HeldUpload(world, token)
    wait_for(lambda: list((spool_of(world) / "tmp").iterdir()), what="the first upload holding the slot")
    second = httpx.post(
        f"{world.bot_url}/hooks/trivy",
        params={"project": "alpha", "repo": "api"},
        content=REPORT,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert second.status_code == 503 and second.headers["retry-after"] == "5"
    assert first.release().status_code == 202
    # The slot is free again.
    third = httpx.post(
        f"{world.bot_url}/hooks/trivy",
        params={"project": "alpha", "repo": "api"},
        content=REPORT,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert third.status_code == 202


def test_a_small_body_stays_in_memory_and_in_the_inbox(make_world: Callable[..., World]) -> None:
    world, token = spooled_world(make_world, spool_threshold_bytes=len(REPORT))
    answer = httpx.post(
        f"{world.bot_url}/hooks/trivy",
        params={"project": "alpha", "repo": "api"},
        content=REPORT,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 202
    world.wait_idle()
    assert "alpine-39" in scan_posts(world)[-1]["title"]
    assert list((spool_of(world) / "reports").iterdir()) == []


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        ("/hooks/trivy", "Authorization: Bearer nope\r\n"),
        ("/hooks/gitlab?project=alpha", "X-Gitlab-Token: wrong\r\n"),
    ],
)
def test_a_refusal_from_the_headers_closes_the_connection_without_reading_the_body(
    world: World, path: str, extra: str
) -> None:
    url = urlsplit(world.bot_url)
    with socket.create_connection((url.hostname or "", url.port or 0), timeout=5) as conn:
        conn.sendall(
            f"POST {path} HTTP/1.1\r\nHost: bot\r\nContent-Length: 20000000\r\n{extra}\r\n".encode() + b"x" * 1000
        )
        answer = b""
        while chunk := conn.recv(65536):  # EOF: the server closed; a timeout here fails the test
            answer += chunk
    head = answer.decode("latin-1").lower()
    assert head.startswith("http/1.1 401") and "connection: close" in head
