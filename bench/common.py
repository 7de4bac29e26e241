"""What the benchmarks share: percentiles, a loopback load generator, server processes, printing.

Benchmarks are run by hand (``make bench``), never by the test suite. Everything here talks to
loopback addresses only and every loop is bounded both in count and in time.
"""

from __future__ import annotations

import asyncio
import math
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from bot.sandbox.world import World

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"


def _cpu_of(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """The benchmark could not measure what it meant to (a server did not start, answers were wrong)."""


# -- statistics -----------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0–100) with linear interpolation between closest ranks; NaN if empty."""
    if not values:
        return math.nan
    if not 0 <= p <= 100:
        raise ValueError("p must be between 0 and 100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# -- the load generator ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpRequest:
    """One request, sent as is by every worker."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    content: bytes = b""


Check = Callable[[httpx.Response], bool]


def status_200(response: httpx.Response) -> bool:
    return response.status_code == 200


@dataclass
class LoadResult:
    label: str
    concurrency: int
    sent: int = 0
    errors: int = 0
    elapsed: float = 0.0  # seconds, from the first request sent to the last answer received
    latencies: list[float] = field(default_factory=list)  # seconds, of the answers that passed the check
    first_error: str = ""
    timed_out: bool = False
    client_cpu: float = 0.0  # seconds of CPU used by this (the load generator's) process
    server_cpu: float = 0.0  # seconds of CPU used by the server, when the caller measured it

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        """Good answers per second."""
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    def p(self, q: float) -> float:
        """The ``q``-th percentile of latency, in milliseconds."""
        return percentile(self.latencies, q) * 1000

    def cpu_ms_per_request(self, server: bool) -> float:
        seconds = self.server_cpu if server else self.client_cpu
        return seconds * 1000 / self.ok if self.ok else math.nan

    def server_busy(self) -> float:
        """Share of one core the server used during the runs."""
        return self.server_cpu / self.elapsed if self.elapsed > 0 else math.nan

    def add(self, other: LoadResult) -> None:
        """Fold another run (e.g. one round of several) into this one."""
        self.sent += other.sent
        self.errors += other.errors
        self.elapsed += other.elapsed
        self.latencies += other.latencies
        self.first_error = self.first_error or other.first_error
        self.timed_out = self.timed_out or other.timed_out
        self.client_cpu += other.client_cpu
        self.server_cpu += other.server_cpu


def process_cpu_seconds() -> float:
    """User + system CPU time of this process (every thread) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class LoadGenerator:
    """``concurrency`` workers, each with its own ``httpx.AsyncClient`` (one kept-alive connection).

    A closed loop: each worker sends its next request as soon as it has the answer to the previous
    one, so latency includes queueing in the server — and in this generator, which costs more CPU
    per request than a small server does. Runs stop after ``requests`` requests or ``max_seconds``,
    whichever comes first::

        async with LoadGenerator(request, concurrency=32) as load:
            await load.run(200, max_seconds=10)  # warm-up, thrown away
            result = await load.run(3000, max_seconds=30, label="bot")
    """

    def __init__(
        self,
        request: HttpRequest,
        concurrency: int,
        check: Check = status_200,
        timeout: float = 10.0,
    ) -> None:
        if httpx.URL(request.url).host not in (LOOPBACK, "localhost", "::1"):
            raise ValueError(f"benchmarks only talk to loopback addresses, not {request.url}")
        self.request = request
        self.concurrency = concurrency
        self.check = check
        self.timeout = timeout
        self._clients: list[httpx.AsyncClient] = []

    async def __aenter__(self) -> LoadGenerator:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self._clients = [
            httpx.AsyncClient(timeout=self.timeout, limits=limits, trust_env=False) for _ in range(self.concurrency)
        ]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.gather(*(client.aclose() for client in self._clients))
        self._clients = []

    async def run(self, requests: int, max_seconds: float, label: str = "") -> LoadResult:
        if not self._clients:
            raise RuntimeError("use LoadGenerator as an async context manager")
        result = LoadResult(label, self.concurrency)
        deadline = time.perf_counter() + max_seconds
        req = self.request

        async def worker(client: httpx.AsyncClient) -> None:
            # Built once and sent again and again: the generator's own cost is not the server's.
            prepared = client.build_request(req.method, req.url, headers=req.headers, content=req.content)
            while result.sent < requests:
                if time.perf_counter() >= deadline:
                    result.timed_out = True
                    return
                result.sent += 1
                started = time.perf_counter()
                try:
                    response = await client.send(prepared)
                    good = self.check(response)
                    problem = "" if good else f"HTTP {response.status_code}: {response.text[:200]}"
                except httpx.HTTPError as exc:
                    good, problem = False, f"{type(exc).__name__}: {exc}"
                if good:
                    result.latencies.append(time.perf_counter() - started)
                else:
                    result.errors += 1
                    result.first_error = result.first_error or problem

        cpu = process_cpu_seconds()
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for client in self._clients))
        result.elapsed = time.perf_counter() - started
        result.client_cpu = process_cpu_seconds() - cpu
        return result


# -- server processes -----------------------------------------------------------------------------


def free_port() -> int:
    """A free loopback TCP port (released at once: bind it soon)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """A server in a child process, its output in a log file; stopped by its own pid only."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None):
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.name} is not started")
        return self.proc.pid

    def start(self) -> ServerProcess:
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            cwd=ROOT,
        )
        return self

    def wait_ready(self, url: str, timeout: float = 20.0) -> float:
        """Poll ``url`` until it answers 200; returns the seconds it took since the start."""
        started = time.monotonic()
        deadline = started + timeout
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise BenchError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
                try:
                    if client.get(url).status_code == 200:
                        return time.monotonic() - started
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        raise BenchError(f"{self.name} not ready at {url} after {timeout:.0f} s:\n{self.log_tail()}")

    def cpu_seconds(self) -> float:
        """User + system CPU time the process and its live children (the bot's worker) have used so
        far (Linux /proc). A child that exited is no longer counted: do not compare across its restart."""
        return sum(_cpu_of(pid) for pid in [self.pid, *self.children()])

    def children(self) -> list[int]:
        try:
            text = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
        except OSError:
            return []
        return [int(pid) for pid in text.split()]

    def memory(self) -> dict[str, int]:
        """The ``Vm*``, ``Rss*`` and ``Threads`` lines of /proc/<pid>/status, in kB (threads: count)."""
        found: dict[str, int] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.startswith(("Vm", "Rss")) or key == "Threads":
                found[key] = int(value.split()[0])
        return found

    def log_tail(self, lines: int = 20) -> str:
        if self._log is not None:
            self._log.flush()
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        code: int | None = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
            code = self.proc.returncode
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_like_the_bot(app: Any, port: int) -> None:
    """Run ``app`` (a bare baseline) on loopback as ``cpn-bot serve`` runs the bot's."""
    import uvicorn

    from bot.cli import SERVER_OPTIONS

    uvicorn.run(app, host=LOOPBACK, port=port, **SERVER_OPTIONS)


def python_env() -> dict[str, str]:
    """Environment for a child Python that must import ``bench`` (not an installed package)."""
    path = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT)}


# -- the sandbox world with the bot in its own process --------------------------------------------


def start_world_for_subprocess(**kw: Any) -> World:
    """The sandbox world with ``bot_in_process=False``: emulators up, the bot's port reserved and
    written in its config; start the bot with :func:`bot_process`. ``kw`` goes to ``World``."""
    from bot.sandbox.world import World

    return World.create(bot_in_process=False, **kw).start()


def stop_world(world: World, keep: bool = False) -> None:
    """Stop the world's emulators; its directory (config, secrets, SQLite, logs) is removed unless
    ``keep``: on failure it stays for a look, and its path is printed."""
    world.keep_files = keep
    world.stop()
    if keep:
        print(f"kept for inspection: {world.root}", file=sys.stderr)


def bot_process(world: World, name: str = "cpn-bot") -> ServerProcess:
    """``cpn-bot serve`` for the world's config, not started yet; its log in the world's directory.

    Releases the port the world reserved for the bot: start the process soon after.
    """
    return ServerProcess(name, world.serve_command(), Path(world.root) / f"{name}.log")


def slash_request(world: World, text: str, user: str = "alice", channel: str = "equipe-alpha") -> HttpRequest:
    """The POST Mattermost sends for ``/cpn <text>`` (see fixtures/mattermost_slash_command.txt).

    Go's ``url.Values.Encode()``: keys sorted, ``QueryEscape`` (space as ``+``), one line.
    """
    from urllib.parse import quote_plus, urlencode

    from bot.sandbox.world import TEAM

    mattermost = world.servers["mattermost"].url
    pairs = [
        ("token", world.slash_token),
        ("team_id", world.team_id),
        ("team_domain", TEAM),
        ("channel_id", world.channels[channel]),
        ("channel_name", channel),
        ("user_id", world.users[user].id),
        ("user_name", user),
        ("command", "/cpn"),
        ("text", text),
        ("trigger_id", "YmVuY2g6dHJpZ2dlcjpiZW5jaG1hcmstb25seS1ub3QtYS1yZWFsLXRyaWdnZXI="),
        ("response_url", f"{mattermost}/hooks/commands/benchbenchbenchbenchbenc"),
    ]
    body = urlencode(sorted(pairs, key=lambda kv: kv[0]), quote_via=quote_plus)
    headers = {
        "User-Agent": "Mattermost-Bot/1.1",
        "Accept": "application/json",
        "Authorization": f"Token {world.slash_token}",
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept-Encoding": "gzip",
    }
    return HttpRequest("POST", f"{world.bot_url}/mattermost/command", headers, body.encode())


# -- printing ---------------------------------------------------------------------------------------


def machine_line() -> str:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 0
    return (
        f"{usable} usable core(s) ({os.cpu_count()} online), Python {platform.python_version()}, "
        f"httpx {httpx.__version__}, {platform.system()} {platform.release()}"
    )


def load_average() -> str:
    """The load averages, with a warning when other processes keep the cores busy."""
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "load average unknown"
    line = f"load average {one:.2f} (1 min), {five:.2f} (5 min)"
    if one > 0.5 * usable_cores():
        line += " -- WARNING: the machine is busy, figures are skewed; rerun when it is quiet"
    return line


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def heading(title: str) -> None:
    print()
    print(title)
    print("=" * len(title))


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain aligned table: first column left, the others right."""
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        parts = [row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))]
        return "  ".join(parts).rstrip()

    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))


def _cell(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"
