"""Slash-command round trip: ``/cpn help`` at 32 concurrent clients, against a bare FastAPI baseline.

The bot runs as ``cpn-bot serve --config …`` in its own process, wired to the sandbox's Mattermost
emulator (in this process). The baseline is a one-route FastAPI app served by uvicorn with the
same settings, in its own process too. Both are driven by the same load generator, in
alternating rounds.

    .venv/bin/python bench/bench_slash.py [--concurrency 32] [--requests 3000] [--warmup 300] [--rounds 6]

Exit 0 when every request got a good answer (targets missed are printed, not fatal); 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bench.common import (
    LOOPBACK,
    BenchError,
    HttpRequest,
    LoadGenerator,
    LoadResult,
    ServerProcess,
    bot_process,
    free_port,
    heading,
    load_average,
    machine_line,
    python_env,
    serve_like_the_bot,
    slash_request,
    start_world_for_subprocess,
    stop_world,
    table,
    usable_cores,
    verdict,
)

P99_TARGET_MS = 100.0
THROUGHPUT_TARGET = 0.5  # of the baseline's
BASELINE_REPLY = {"response_type": "ephemeral", "text": "ok"}


# -- the baseline server (run in a child process: ``bench_slash.py --serve-baseline PORT``) ---------


def serve_baseline(port: int) -> None:
    """A bare FastAPI endpoint answering a fixed JSON to a form POST, run like ``cpn-bot serve``."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/mattermost/command")
    async def command(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse(BASELINE_REPLY)

    serve_like_the_bot(app, port)


# -- the measure ------------------------------------------------------------------------------------


def good_answer(response: httpx.Response) -> bool:
    """Cheap, for every answer: the full content is checked once, before the runs."""
    return response.status_code == 200 and response.headers.get("content-type") == "application/json"


def check_help_reply(request: HttpRequest) -> str:
    """One ``/cpn help`` sent and read in full; returns the start of its text."""
    response = httpx.request(
        request.method,
        request.url,
        headers=request.headers,
        content=request.content,
        timeout=10,
        trust_env=False,
    )
    if response.status_code != 200:
        raise BenchError(f"/cpn help answered HTTP {response.status_code}: {response.text[:300]}")
    if response.headers.get("content-type") != "application/json":
        raise BenchError(f"/cpn help answered Content-Type {response.headers.get('content-type')!r}")
    body = response.json()
    text = str(body.get("text", ""))
    if body.get("response_type") != "ephemeral" or "/cpn" not in text:
        raise BenchError(f"/cpn help did not answer the help: {json.dumps(body)[:300]}")
    return text


@dataclass
class Target:
    """A server under load: its process, the request it gets and what it has answered so far."""

    server: ServerProcess
    request: HttpRequest
    result: LoadResult


async def drive(targets: list[Target], args: argparse.Namespace) -> None:
    """Warm both up, then alternate rounds between them so that a change in the machine's load
    (other processes on these shared cores) weighs on both alike."""
    rounds = max(1, args.rounds)
    per_round = -(-args.requests // rounds)
    async with AsyncExitStack() as stack:
        loads = [
            await stack.enter_async_context(LoadGenerator(t.request, args.concurrency, good_answer)) for t in targets
        ]
        for load in loads:
            await load.run(args.warmup, max_seconds=args.warmup_seconds)
        # What exists now lives to the end: keep the collector from walking it in the middle of a
        # round (its pauses would count as the server's latency).
        gc.collect()
        gc.freeze()
        for _ in range(rounds):
            for target, load in zip(targets, loads, strict=True):
                wanted = min(per_round, args.requests - target.result.sent)
                if wanted <= 0:
                    continue
                cpu = target.server.cpu_seconds()
                one = await load.run(wanted, max_seconds=args.max_seconds / rounds)
                one.server_cpu = target.server.cpu_seconds() - cpu
                target.result.add(one)
        gc.unfreeze()


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    heading(f"Slash command round trip: /cpn help, {args.concurrency} concurrent clients")
    print(f"machine: {machine_line()}")
    print(f"before:  {load_average()}")
    print(
        f"NOTE: the load generator (with the Mattermost emulator, in this process) and the servers under\n"
        f"      test share the same {usable_cores()} core(s), and the generator (httpx) spends more CPU per\n"
        f"      request than the servers do: throughputs are lower bounds and latencies include the\n"
        f"      generator's own queueing; the ratio to the baseline is the figure to follow."
    )
    print(
        f"load: {args.warmup} warm-up requests each (thrown away), then {args.requests} measured each, "
        f"in {args.rounds} alternating rounds;\n      each client on one kept-alive connection"
    )

    world = start_world_for_subprocess()
    broken = True  # until the measure is done: the world's directory is kept for a look
    try:
        request = slash_request(world, "help")
        port = free_port()
        baseline_request = HttpRequest(
            "POST", f"http://{LOOPBACK}:{port}/mattermost/command", request.headers, request.content
        )
        baseline = ServerProcess(
            "baseline",
            [sys.executable, str(Path(__file__).resolve()), "--serve-baseline", str(port)],
            Path(world.root) / "baseline.log",
            env=python_env(),
        )
        bot = bot_process(world)
        with baseline, bot:
            _wait_post_ok(baseline, baseline_request)
            ready_s = bot.wait_ready(f"{world.bot_url}/readyz", timeout=30)
            help_text = check_help_reply(request)
            print(f"cpn-bot serve ready in {ready_s:.1f} s; its help reply: {len(help_text)} characters of text")
            targets = [
                Target(baseline, baseline_request, LoadResult("baseline FastAPI/uvicorn", args.concurrency)),
                Target(bot, request, LoadResult("cpn-bot /cpn help", args.concurrency)),
            ]
            asyncio.run(drive(targets, args))
        broken = any(t.result.errors for t in targets)
    except BenchError as exc:
        print(f"\nFAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        stop_world(world, keep=broken)

    base, bot_result = (t.result for t in targets)
    print()
    table(
        [
            "server",
            "good",
            "errors",
            "p50 ms",
            "p99 ms",
            "max ms",
            "req/s",
            "server busy",
            "server ms CPU/req",
            "load gen ms CPU/req",
        ],
        [
            [
                r.label,
                r.ok,
                r.errors,
                r.p(50),
                r.p(99),
                r.p(100),
                r.throughput,
                f"{r.server_busy():.0%}",
                r.cpu_ms_per_request(server=True),
                r.cpu_ms_per_request(server=False),
            ]
            for r in (base, bot_result)
        ],
    )
    print("(server busy: share of one core the server process used while measured)")
    ratio = bot_result.throughput / base.throughput if base.throughput else 0.0
    print()
    table(
        ["target", "measured", "verdict"],
        [
            [
                f"cpn-bot p99 < {P99_TARGET_MS:.0f} ms",
                f"{bot_result.p(99):.1f} ms",
                verdict(bot_result.p(99) < P99_TARGET_MS),
            ],
            [
                f"cpn-bot throughput >= {THROUGHPUT_TARGET:.0%} of baseline",
                f"{ratio:.0%}",
                verdict(ratio >= THROUGHPUT_TARGET),
            ],
            [
                "(for reference) baseline p99",
                f"{base.p(99):.1f} ms",
                "",
            ],
        ],
    )
    print(f"\nafter:   {load_average()}; total time {time.monotonic() - started:.1f} s")

    failed = False
    for r in (base, bot_result):
        if r.errors or r.ok < args.requests:
            why = "time limit reached" if r.timed_out else r.first_error
            print(f"FAILED: {r.label}: {r.ok}/{args.requests} good answers ({why})", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def _wait_post_ok(server: ServerProcess, request: HttpRequest, timeout: float = 20.0) -> None:
    """The baseline has no probe: POST its one route until it answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc is not None and server.proc.poll() is not None:
            raise BenchError(f"{server.name} exited:\n{server.log_tail()}")
        try:
            response = httpx.request(
                request.method,
                request.url,
                headers=request.headers,
                content=request.content,
                timeout=1,
                trust_env=False,
            )
            if response.status_code == 200 and response.json() == BASELINE_REPLY:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise BenchError(f"{server.name} did not answer:\n{server.log_tail()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds between the two servers")
    parser.add_argument("--max-seconds", type=float, default=36.0, help="cap of the measured runs, in all")
    parser.add_argument("--warmup-seconds", type=float, default=4.0, help="cap of each warm-up")
    parser.add_argument("--serve-baseline", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_baseline is not None:
        serve_baseline(args.serve_baseline)
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
