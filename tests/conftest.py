"""Shared fixtures: a whole platform on loopback (:class:`bot.sandbox.world.World`)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# Tests talk to emulators on loopback only; a proxy from the environment must not intercept them.
os.environ["NO_PROXY"] = "127.0.0.1,localhost" + (f",{os.environ['NO_PROXY']}" if os.environ.get("NO_PROXY") else "")
os.environ["no_proxy"] = os.environ["NO_PROXY"]

from bot.sandbox.world import Timings, World


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    """Until ``predicate()`` is truthy (its value is returned); fails the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


@pytest.fixture
def make_world() -> Iterator[Callable[..., World]]:
    """Start a world with options (``registry=…``, ``config_overrides=…``); stopped after the test."""
    worlds: list[World] = []

    def make(**options: Any) -> World:
        options.setdefault("timings", Timings.fast())
        w = World.create(**options).start()
        worlds.append(w)
        return w

    yield make
    for w in worlds:
        w.stop()


@pytest.fixture
def world(make_world: Callable[..., World]) -> World:
    return make_world()


@pytest.fixture(scope="module")
def fuzz_world() -> Iterator[World]:
    """One world for the many examples of a property test (a fresh one per example is too slow)."""
    w = World.create(timings=Timings.fast()).start()
    try:
        yield w
    finally:
        w.stop()
