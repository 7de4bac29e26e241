"""``/metrics`` and the details of ``/readyz`` are for whoever holds ``server.metrics_token``."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from bot.sandbox.world import Timings, World

TOKEN = "metrics-0123456789abcdef0123456789abcdef"


@pytest.fixture
def guarded() -> Iterator[World]:
    world = World.create(timings=Timings.fast())
    world.config_overrides = {"server": {"metrics_token": world.secret_ref("metrics_token", TOKEN)}}
    try:
        yield world.start()
    finally:
        world.stop()


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong", f"Token {TOKEN}", f"Bearer {TOKEN}x", "Bearer", f"Bearer {TOKEN[:-1]}é"]
)
def test_metrics_without_the_bearer_token_is_refused_with_401(guarded: World, authorization: str | None) -> None:
    headers = {b"Authorization": authorization.encode()} if authorization else {}
    response = httpx.get(f"{guarded.bot_url}/metrics", headers=headers)
    assert response.status_code == 401
    assert "cpn_queue_depth" not in response.text and TOKEN not in response.text
    assert response.headers["www-authenticate"] == "Bearer"


def test_metrics_with_the_bearer_token_are_served(guarded: World) -> None:
    response = httpx.get(f"{guarded.bot_url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200 and "cpn_queue_depth" in response.text


def test_readyz_says_only_ready_to_a_stranger_and_the_details_to_the_token_holder(guarded: World) -> None:
    anonymous = httpx.get(f"{guarded.bot_url}/readyz")
    assert anonymous.status_code == 200 and anonymous.json() == {"ready": True}
    detailed = httpx.get(f"{guarded.bot_url}/readyz", headers={"Authorization": f"bearer {TOKEN}"})
    assert detailed.json() == {"ready": True, "checks": {"store": "ok", "mattermost": "ok"}}
    guarded.states["mattermost"].faults.down = True
    down = httpx.get(f"{guarded.bot_url}/readyz")
    assert down.status_code == 503 and down.json() == {"ready": False}


def test_without_a_metrics_token_both_probes_stay_open(world: World) -> None:
    assert httpx.get(f"{world.bot_url}/metrics").status_code == 200
    assert "checks" in httpx.get(f"{world.bot_url}/readyz").json()
