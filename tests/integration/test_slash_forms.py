"""Slash command forms Mattermost would never send: a 400 with a reason, or the usage reply, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest

from bot.sandbox.world import Timings, World

GOOD = {
    "channel_id": "fukxanjgjbnp7ng383at53k1sy",
    "team_id": "wx4zz8t4ttgmtxqiwfohijayzc",
    "team_domain": "team-awesome",
    "user_id": "erj6qck3rfgtujs86w5r6rckzh",
    "user_name": "alan",
    "command": "/cpn",
    "text": "help",
}


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """One bot open to any team (the form's team is the fixture's), for every case of this file."""
    w = World.create(timings=Timings.fast(), config_overrides={"mattermost": {"allowed_teams": []}}).start()
    try:
        yield w
    finally:
        w.stop()


def post(world: World, body: bytes, method: str = "POST") -> httpx.Response:
    headers = {"Authorization": f"Token {world.slash_token}", "Content-Type": "application/x-www-form-urlencoded"}
    url = f"{world.bot_url}/mattermost/command"
    if method == "GET":
        return httpx.get(f"{url}?{body.decode()}", headers=headers)
    return httpx.post(url, content=body, headers=headers)


def form(**changes: str) -> bytes:
    return urlencode({**GOOD, **changes}).encode()


BAD_FORMS = {
    "more than 200 fields": form() + b"".join(b"&f%d=x" % i for i in range(250)),
    "raw bytes not UTF-8": form() + b"&extra=\xff\xfe",
    "a %-escape not UTF-8": form() + b"&extra=%ff%fe",
    "a user_id that walks up a path": form(user_id="../../system/ping"),
    "a user_id of the wrong length": form(user_id="erj6qck3rfgtujs86w5r6rckz"),
    "a channel_id in capitals": form(channel_id="FUKXANJGJBNP7NG383AT53K1SY"),
}


@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize("case", list(BAD_FORMS))
def test_a_form_mattermost_would_never_send_is_a_400_with_a_reason(world: World, case: str, method: str) -> None:
    if method == "GET" and b"\xff" in BAD_FORMS[case]:
        pytest.skip("raw bytes cannot travel in a URL")
    answer = post(world, BAD_FORMS[case], method)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"], answer.text


def test_a_huge_text_gets_the_usage_reply_or_a_413_never_a_500(world: World) -> None:
    long = post(world, form(text="help " + "x" * 100_000))
    assert long.status_code == 200 and "trop long" in long.json()["text"]
    huge = post(world, form(text="help " + "x" * 3_000_000))
    assert huge.status_code == 413


def test_the_well_formed_form_still_runs(world: World) -> None:
    answer = post(world, form())
    assert answer.status_code == 200 and "/cpn" in answer.json()["text"]
