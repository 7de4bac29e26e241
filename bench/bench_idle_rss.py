"""Resident memory of an idle bot: ``cpn-bot serve --config …`` wired to the sandbox's emulators.

Starts the bot in its own process, waits until ``/readyz`` answers 200, lets it idle a few
seconds (its workers poll, its websocket to Mattermost is open), then reads ``VmRSS`` and
``VmHWM`` from ``/proc/<pid>/status``. Linux only.

    .venv/bin/python bench/bench_idle_rss.py [--idle 3]

Exit 0 when the bot started and was measured (a missed target is printed, not fatal); 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench.common import (
    BenchError,
    bot_process,
    heading,
    load_average,
    machine_line,
    slash_request,
    start_world_for_subprocess,
    stop_world,
    table,
    verdict,
)

RSS_TARGET_MIB = 120.0


def mib(kib: int) -> float:
    return kib / 1024


def run(args: argparse.Namespace) -> int:
    if not Path("/proc/self/status").exists():
        print("FAILED: needs Linux /proc", file=sys.stderr)
        return 1
    started = time.monotonic()
    heading("Idle resident memory of cpn-bot serve")
    print(f"machine: {machine_line()}")
    print(f"before:  {load_average()}")
    world = start_world_for_subprocess()
    broken = True  # until the measure is done: the world's directory is kept for a look
    bot = bot_process(world)
    rows: list[list[object]] = []
    try:
        with bot:
            ready_s = bot.wait_ready(f"{world.bot_url}/readyz", timeout=30)
            time.sleep(args.idle)
            idle = bot.memory()
            # Not the target, for information: what answering one command adds (lazy imports, caches).
            request = slash_request(world, "help")
            answer = httpx.request(
                request.method,
                request.url,
                headers=request.headers,
                content=request.content,
                timeout=10,
                trust_env=False,
            )
            if answer.status_code != 200:
                raise BenchError(f"/cpn help answered HTTP {answer.status_code}: {answer.text[:300]}")
            time.sleep(0.5)
            after_help = bot.memory()
            code = bot.stop()
        broken = False
    except BenchError as exc:
        print(f"\nFAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        stop_world(world, keep=broken)

    print(f"cpn-bot serve (pid {bot.pid}) ready in {ready_s:.1f} s, then idle {args.idle:.0f} s")
    keys = ["VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem", "VmSize"]
    for key in keys:
        rows.append([key, mib(idle.get(key, 0)), mib(after_help.get(key, 0))])
    rows.append(["Threads", idle.get("Threads", 0), after_help.get("Threads", 0)])
    print()
    table(["/proc/<pid>/status (MiB)", "idle", "after one /cpn help"], rows)
    rss = mib(idle["VmRSS"])
    print()
    table(
        ["target", "measured", "verdict"],
        [[f"idle VmRSS < {RSS_TARGET_MIB:.0f} MiB", f"{rss:.1f} MiB", verdict(rss < RSS_TARGET_MIB)]],
    )
    print(f"\nbot exit code on SIGTERM: {code}; total time {time.monotonic() - started:.1f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--idle", type=float, default=3.0, help="seconds of idling before the reading")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
