"""Worker processes: inbound events, posts, scheduled jobs and the websocket, beside the web process.

With ``server.workers = 1``, ``cpn-bot serve`` answers HTTP only (webhook acknowledgements, slash
commands, buttons and the operations they start) and runs ``cpn-bot worker`` as its child, on
another core: a webhook's ``202`` then costs one insert, and a burst of events no longer slows the
acknowledgements down, nor they the posts. With ``2``, one worker processes the events and another
sends the posts, so that a backlog drains on two cores. The processes share nothing but the SQLite
files. Each wakes when another commits (``PRAGMA data_version`` changes for commits of other
connections); the workers' metrics reach ``/metrics`` through snapshot files.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.store import Store

if TYPE_CHECKING:
    from bot.config import Config

logger = logging.getLogger("cpn.worker")

WATCH_SECONDS = 0.005  # how often a process looks for the other's commits: one cheap PRAGMA
SNAPSHOT_SECONDS = 0.5  # how often a worker writes its metrics for the web process
WORKER_NICENESS = 1


class ProcessRole(StrEnum):
    """What a process of the bot runs."""

    ALL = "all"  # everything in one process (the default, the tests, the sandbox)
    WEB = "web"  # HTTP and operations; the workers do the rest
    WORKER = "worker"  # the one worker: events (inbox, scheduler, websocket listener) and posts (outbox)
    EVENTS = "events"  # of two workers, the one processing events
    POSTS = "posts"  # of two workers, the one sending the posts

    @property
    def serves_http(self) -> bool:
        return self in (ProcessRole.ALL, ProcessRole.WEB)

    @property
    def processes(self) -> bool:
        return self in (ProcessRole.ALL, ProcessRole.WORKER, ProcessRole.EVENTS)

    @property
    def delivers(self) -> bool:
        return self in (ProcessRole.ALL, ProcessRole.WORKER, ProcessRole.POSTS)


def worker_roles(workers: int) -> list[ProcessRole]:
    """The worker processes beside the web process for ``server.workers``."""
    return {0: [], 1: [ProcessRole.WORKER]}.get(workers, [ProcessRole.EVENTS, ProcessRole.POSTS])


def metrics_snapshot_path(config: Config, role: ProcessRole) -> Path:
    return Path(f"{config.store.path}.{role.value}-metrics.json")


def read_snapshot(path: Path) -> dict[str, Any] | None:
    """The worker's last metrics snapshot; None if it has not written one (or it is unreadable)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_snapshot(path: Path, data: dict[str, Any]) -> None:
    """Written beside, then renamed: the web process never reads half a file."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, path)


class StoreWatch:
    """Calls ``wake`` whenever another process has committed to the database."""

    def __init__(self, store: Store, wake: Callable[[], None], interval: float = WATCH_SECONDS) -> None:
        self.store = store
        self.wake = wake
        self.interval = interval

    async def run(self) -> None:
        last = self.store.data_version()
        while True:
            await asyncio.sleep(self.interval)
            current = self.store.data_version()
            if current != last:
                last = current
                self.wake()


class Supervisor:
    """Runs a worker as a child process; restarts it if it dies; stops it with the web process."""

    def __init__(
        self, argv: Sequence[str], role: ProcessRole, restart_delay: float = 0.5, max_delay: float = 30.0
    ) -> None:
        self.argv = list(argv)
        self.role = role
        self.restart_delay = restart_delay
        self.max_delay = max_delay
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._stopping = False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        # The child inherits stdout/stderr: its JSON log lines go where the web process's go.
        self.process = subprocess.Popen(self.argv)  # noqa: S603 (our interpreter, our config path)

    async def run(self) -> None:
        delay = self.restart_delay
        if self.process is None:
            self.start()
        started = time.monotonic()
        while not self._stopping:
            await asyncio.sleep(0.2)
            assert self.process is not None
            code = self.process.poll()
            if code is None or self._stopping:
                continue
            logger.warning("worker process exited: restarting", extra={"fields": {"code": code, "role": self.role}})
            if time.monotonic() - started > 60:
                delay = self.restart_delay  # it had been running well: not a crash loop
            await asyncio.sleep(delay)
            delay = min(self.max_delay, delay * 2)
            if self._stopping:
                break
            self.restarts += 1
            self.start()
            started = time.monotonic()

    async def stop(self, timeout: float = 10.0) -> None:
        self._stopping = True
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def worker_command(config_path: str, role: ProcessRole) -> list[str]:
    """The worker's command line; ``--parent`` names this (the web) process, whose death stops it."""
    command = [sys.executable, "-m", "bot.cli", "worker", "--config", config_path, "--role", role.value]
    return [*command, "--parent", str(os.getpid())]


async def run_worker(config: Config, role: ProcessRole = ProcessRole.WORKER, parent: int | None = None) -> int:
    """``cpn-bot worker``: until SIGTERM or SIGINT, or until the web process ``parent`` is gone;
    the metrics snapshot written as it goes."""
    from bot.runtime import Bot

    # When the cores are all busy, the web process goes a little first: senders wait for its
    # answers, while a worker's backlog drains as soon as the burst is over.
    os.nice(WORKER_NICENESS)
    bot = Bot(config, role=role)
    bot.freeze_heap = True
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    path = metrics_snapshot_path(config, role)
    await bot.start()
    try:
        while not stop.is_set():
            if parent is not None and os.getppid() != parent:
                # The web process died without stopping us (SIGKILL, the OOM killer): the next one
                # starts its own workers, and two would process the same events.
                logger.warning("web process gone: worker stopping", extra={"fields": {"role": role}})
                break
            write_snapshot(path, bot.metrics.snapshot())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SNAPSHOT_SECONDS)
    finally:
        await bot.stop()
        with contextlib.suppress(OSError):
            write_snapshot(path, bot.metrics.snapshot())
    return 0
