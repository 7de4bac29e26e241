"""Memory of the web process under 8 parallel 60 MB uploads to ``/hooks/trivy`` (issue 12, item 4).

The bot runs as ``cpn-bot serve --config …`` in its own process (a real uvicorn on a loopback
port, the transport limits of ``bot/http_server.py``), wired to the sandbox's emulators, with
``server.workers = 1`` by default (``--workers``): the web process, which receives the uploads,
is measured apart from the worker, which reads the reports (its peak is printed too). Bob creates
the project ``bench``, adds its repository ``api`` and a sync API token. Then, in two phases:

1. 8 unauthenticated uploads at once (a wrong bearer token, ``Content-Length`` announced, 60 MB
   sent): the bot must refuse them from the headers and never buffer them;
2. 8 authenticated ones at once: a real Trivy report (the alpine fixture) padded with a
   ``Packages`` list to 60 MB, as ``trivy image --list-all-pkgs`` writes; the web process spools
   them to disk (at most ``max_large_uploads`` at once, the others wait or get 503), the worker
   reads each mapped file.

During each phase ``VmRSS`` of the process(es) is sampled every 5 ms from ``/proc``; the peak
growth is the highest sample minus the one taken just before the phase. Linux only.

    .venv/bin/python bench/bench_upload_memory.py [--size-mb 60] [--uploads 8] [--workers 1]

Exit 0 when the bot was measured (a missed target is printed, not fatal); 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench.bench_webhooks import CHANNEL, CREATE_TITLE, REPO, SLUG, UPDATE_TITLE, USER, run_command
from bench.common import (
    BenchError,
    ServerProcess,
    bot_process,
    heading,
    load_average,
    machine_line,
    start_world_for_subprocess,
    stop_world,
    table,
    verdict,
)

TARGET_MB = 50.0


class RssSampler:
    """The highest ``VmRSS`` of each of some processes, sampled in a thread."""

    def __init__(self, pids: dict[str, int], every: float = 0.005) -> None:
        self.pids = pids
        self.every = every
        self.before = {name: rss_mb(pid) for name, pid in pids.items()}
        self.peak = dict(self.before)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak[name], rss_mb(pid))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def growth(self, name: str) -> float:
        return self.peak[name] - self.before[name]


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1000  # kB → MB
    except OSError:
        pass
    return 0.0


def padded_report(size: int) -> bytes:
    """The alpine fixture report with a ``Packages`` list in its first result, ``size`` bytes long."""
    from services.emulators.fixtures import fixtures_dir

    report = json.loads((fixtures_dir() / "trivy_image_report.json").read_text())
    package = {
        "ID": "musl@1.1.20-r4",
        "Name": "musl",
        "Version": "1.1.20-r4",
        "Licenses": ["MIT"],
        "Layer": {"Digest": "sha256:" + "0" * 64, "DiffID": "sha256:" + "1" * 64},
        "Identifier": {"PURL": "pkg:apk/alpine/musl@1.1.20-r4?arch=x86_64&distro=3.9.4"},
    }
    one = json.dumps(package, indent=2).encode()
    head = json.dumps(report, indent=2).encode()
    marker = b'"Target": '
    at = head.index(marker)
    prefix, suffix = head[:at], head[at:]
    count = max(1, (size - len(head) - 20) // (len(one) + 2))
    body = prefix + b'"Packages": [' + b",".join([one] * count) + b"],\n      " + suffix
    return body + b" " * max(0, size - len(body))  # trailing spaces: still one JSON document


async def upload_all(url: str, body: bytes, count: int, token: str) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(timeout=120, trust_env=False, limits=limits) as client:

        async def one(i: int) -> None:
            try:
                answer = await client.post(
                    url,
                    params={"project": SLUG, "repo": REPO, "ref": "main", "sha": f"{i:040x}"},
                    content=body,
                    headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                )
                outcomes[f"HTTP {answer.status_code}"] += 1
            except httpx.HTTPError as exc:  # the server closed before the body was all sent
                outcomes[f"closed ({type(exc).__name__})"] += 1

        await asyncio.gather(*(one(i) for i in range(count)))
    return outcomes


def api_token(world: Any) -> str:
    with httpx.Client(
        headers={"Authorization": f"Bearer {world.users[USER].token}"}, timeout=30, trust_env=False
    ) as client:
        answer = client.post(
            f"{world.servers['mattermost'].url}/api/v4/commands/execute",
            json={"channel_id": world.channels[CHANNEL], "command": f"/cpn token create {SLUG}"},
        )
    text = str(answer.json().get("text") or "")
    for line in text.splitlines():
        if line.startswith("cpn_"):
            return line.strip()
    raise BenchError(f"/cpn token create gave no token: HTTP {answer.status_code}")


def wait_processed(reports: Path, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if reports.is_dir() and not any(reports.iterdir()):
            return time.monotonic() - started
        time.sleep(0.05)
    raise BenchError(f"spooled reports still waiting after {timeout:.0f} s")


def run(args: argparse.Namespace) -> int:
    if not Path("/proc/self/status").exists():
        print("FAILED: needs Linux /proc", file=sys.stderr)
        return 1
    from bot.sandbox.world import Timings

    started = time.monotonic()
    heading(f"Web process memory under {args.uploads} parallel {args.size_mb} MB uploads to /hooks/trivy")
    print(f"machine: {machine_line()}")
    print(f"before:  {load_average()}")
    size = int(args.size_mb * 1_000_000)
    garbage = b"x" * size
    report = padded_report(size)
    world = start_world_for_subprocess(timings=Timings.fast(), config_overrides={"server": {"workers": args.workers}})
    broken = True
    bot: ServerProcess = bot_process(world)
    rows: list[list[object]] = []
    growths: dict[str, float] = {}
    try:
        with bot:
            bot.wait_ready(f"{world.bot_url}/readyz", timeout=30)
            run_command(world, f"project create {SLUG}", CREATE_TITLE)
            run_command(world, f"repo add {SLUG} {REPO}", UPDATE_TITLE)
            token = api_token(world)
            time.sleep(1.0)  # let the bot settle after onboarding
            pids = {"web": bot.pid, **{f"worker {i + 1}": pid for i, pid in enumerate(bot.children())}}
            url = f"{world.bot_url}/hooks/trivy"
            reports = Path(f"{world.root}/cpn-bot.sqlite.spool/reports")
            for phase, body, bearer in (
                ("unauthenticated", garbage, "cpn_not-a-token"),
                ("authenticated", report, token),
            ):
                with RssSampler(pids) as sampler:
                    t0 = time.monotonic()
                    outcomes = asyncio.run(upload_all(url, body, args.uploads, bearer))
                    took = time.monotonic() - t0
                    processed = wait_processed(reports, 300) if phase == "authenticated" else 0.0
                    time.sleep(0.3)
                answers = ", ".join(f"{n} × {what}" for what, n in sorted(outcomes.items()))
                for name in pids:
                    growths[f"{phase}:{name}"] = sampler.growth(name)
                    rows.append(
                        [
                            phase,
                            name,
                            f"{sampler.before[name]:.1f}",
                            f"{sampler.peak[name]:.1f}",
                            f"{sampler.growth(name):.1f}",
                            answers if name == "web" else "",
                            f"{took:.1f} s" + (f" (+{processed:.1f} s processing)" if processed else "")
                            if name == "web"
                            else "",
                        ]
                    )
            code = bot.stop()
        broken = False
    except BenchError as exc:
        print(f"\nFAILED: {exc}\n{bot.log_tail()}", file=sys.stderr)
        return 1
    finally:
        stop_world(world, keep=broken)

    print(f"cpn-bot serve (pid {bot.pid}), server.workers = {args.workers}; body {size / 1e6:.0f} MB each")
    print()
    table(["phase", "process", "RSS before MB", "RSS peak MB", "growth MB", "answers", "uploads took"], rows)
    print()
    table(
        ["target", "measured", "verdict"],
        [
            [
                f"web process growth < {TARGET_MB:.0f} MB, {phase}",
                f"{growths[f'{phase}:web']:.1f} MB",
                verdict(growths[f"{phase}:web"] < TARGET_MB),
            ]
            for phase in ("unauthenticated", "authenticated")
        ],
    )
    print(f"\nafter:   {load_average()}")
    print(f"bot exit code on SIGTERM: {code}; total time {time.monotonic() - started:.1f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size-mb", type=float, default=60.0, help="size of each upload, in MB")
    parser.add_argument("--uploads", type=int, default=8, help="parallel uploads per phase")
    parser.add_argument("--workers", type=int, default=1, choices=[0, 1, 2], help="server.workers of the bot")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
