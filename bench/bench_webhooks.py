"""GitLab webhook ingest: pipeline and job events from 64 concurrent senders, against a bare baseline.

The bot runs as ``cpn-bot serve --config …`` in its own process with ``server.workers = 2`` (its
two worker processes, events and posts; ``--workers`` to change), wired to the sandbox's emulators
(in this process) with short emulated timings (``Timings.fast()``). Its CPU figures include its
workers'. Bob creates the project
``bench`` in ~equipe-alpha (the channel is linked: successes on ``main`` are posted there) and adds
its repository ``api``, typing the commands as a user does. Then N events — many pipelines on
``main``, each one ``Pipeline Hook`` running, a ``Job Hook`` per job finished, ``Pipeline Hook``
success — are POSTed to ``/hooks/gitlab?project=bench`` as GitLab sends them (its token, a unique
``X-Gitlab-Event-UUID``), by 64 senders in a closed loop; a pipeline's events all go through one
sender, in order. Measured:

- accepted events per second (202 answers, first request sent → last answer received) and the
  acknowledgement latency of every request;
- event-to-post latency: per pipeline, from the moment its final event was sent to the moment
  its card in the Mattermost emulator shows the final status (the post's ``update_at``: the
  card is not edited after it, as the final event is the pipeline's last);
- the same POSTs against a bare FastAPI/uvicorn endpoint (in its own process, answering 202),
  before and after the bot, as the baseline;
- the bot's queue depths (``cpn_queue_depth`` of its ``/metrics``) right after the last answer and
  once every card is final.

    .venv/bin/python bench/bench_webhooks.py [--events 5000] [--senders 64] [--workers 2] [--profile-bot FILE]

``--profile-bot FILE`` runs the bot under cProfile (slower: figures are then only indicative) and
prints where its time goes. Exit 0 when every event was accepted and every card ended final
(targets missed are printed, not fatal); 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import re
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bench.common import (
    LOOPBACK,
    BenchError,
    ServerProcess,
    bot_process,
    free_port,
    heading,
    load_average,
    machine_line,
    percentile,
    process_cpu_seconds,
    python_env,
    serve_like_the_bot,
    start_world_for_subprocess,
    stop_world,
    table,
    usable_cores,
    verdict,
)
from services.emulators.fixtures import fixtures_dir

if TYPE_CHECKING:
    from bot.sandbox.world import World

THROUGHPUT_TARGET = 1000.0  # accepted events per second
BASELINE_SHARE_TARGET = 0.40
ACK_P99_TARGET_MS = 50.0
POST_P99_TARGET_S = 1.0

FIXTURES = fixtures_dir()
SLUG = "bench"
REPO = "api"
USER = "bob"
CHANNEL = "equipe-alpha"
# The cards as the French catalog words them (bot/locales/fr.toml, the sandbox's language).
CREATE_TITLE = f"Création du projet {SLUG}"
# A change that went through everywhere is one line, not a card (commands/common.py:progress_card).
UPDATE_TITLE = f"Dépôt `{REPO}` ajouté par @{USER}."
READY = "Projet prêt"
CARD_ID = re.compile(r"pipeline #(\d+) ")
JOBS = (("compile", "build"), ("unit-tests", "test"), ("package", "deploy"))  # (name, stage), in order
EVENTS_PER_PIPELINE = 2 + len(JOBS)  # running, one per job finished, success
FIRST_PIPELINE_ID = 700_000


# -- the events -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """One POST as GitLab sends it; ``final`` for a pipeline's last event (its success)."""

    pipeline_id: int
    final: bool
    event: str
    uuid: str
    body: bytes


@dataclass(frozen=True)
class Target:
    """Where the events go: the bot, or the baseline."""

    label: str
    host: str
    port: int
    path: str
    token: str
    expect: bytes  # a piece of a good answer's body

    def wire(self, delivery: Delivery) -> bytes:
        """The whole HTTP/1.1 request, with the headers GitLab sends (``lib/gitlab/web_hooks.rb``)."""
        head = (
            f"POST {self.path} HTTP/1.1\r\n"
            f"Host: {self.host}:{self.port}\r\n"
            "User-Agent: GitLab/17.5.0\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(delivery.body)}\r\n"
            f"X-Gitlab-Event: {delivery.event}\r\n"
            f"X-Gitlab-Webhook-UUID: {delivery.uuid}\r\n"
            f"X-Gitlab-Event-UUID: {delivery.uuid}\r\n"
            "X-Gitlab-Instance: https://gitlab.example.com\r\n"
            f"X-Gitlab-Token: {self.token}\r\n"
            "\r\n"
        )
        return head.encode("latin-1") + delivery.body


def _fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def _hook_time(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventFactory:
    """Pipeline and job events of the repository ``bench/api``, from GitLab's documented examples."""

    def __init__(self, gitlab_project_id: int, web_url: str, root_group: str) -> None:
        self.gitlab_project_id = gitlab_project_id
        self.web_url = web_url
        self.path = f"{root_group}/{SLUG}/{REPO}"
        self.pipeline_template = _fixture("gitlab_pipeline_event.json")
        self.job_template = _fixture("gitlab_job_event.json")
        for key in ("merge_request", "source_pipeline"):  # a push pipeline has neither
            self.pipeline_template.pop(key, None)
        self.job_template.pop("source_pipeline", None)
        self.next_pipeline = FIRST_PIPELINE_ID

    def pipelines(self, count: int) -> list[list[Delivery]]:
        """``count`` pipelines on ``main``, each a list of its events in the order GitLab sends them."""
        out = []
        for _ in range(count):
            out.append(self._pipeline(self.next_pipeline))
            self.next_pipeline += 1
        return out

    def _project(self) -> dict[str, Any]:
        return {
            "id": self.gitlab_project_id,
            "name": REPO,
            "web_url": self.web_url,
            "path_with_namespace": self.path,
            "default_branch": "main",
        }

    def _pipeline(self, pipeline_id: int) -> list[Delivery]:
        sha = uuid.uuid4().hex + uuid.uuid4().hex[:8]
        started = time.time() - 60
        job_ids = [pipeline_id * 10 + i for i in range(len(JOBS))]
        message = f"feat: change {pipeline_id}\n\nBody of the commit message."
        events: list[tuple[str, dict[str, Any]]] = []

        def pipeline_event(status: str) -> dict[str, Any]:
            data = copy.deepcopy(self.pipeline_template)
            final = status == "success"
            data["object_attributes"].update(
                {
                    "id": pipeline_id,
                    "iid": pipeline_id - FIRST_PIPELINE_ID + 1,
                    "name": None,
                    "ref": "main",
                    "sha": sha,
                    "before_sha": "0" * 40,
                    "source": "push",
                    "status": status,
                    "stages": [stage for _, stage in JOBS],
                    "created_at": _hook_time(started),
                    "finished_at": _hook_time(started + 42) if final else None,
                    "duration": 42 if final else None,
                    "variables": [],
                    "url": f"{self.web_url}/-/pipelines/{pipeline_id}",
                }
            )
            data["project"].update(self._project())
            data["commit"].update({"id": sha, "message": message, "title": message.splitlines()[0]})
            builds = []
            for index, (job_id, (name, stage)) in enumerate(zip(job_ids, JOBS, strict=True)):
                job_status = "success" if final else ("running" if index == 0 else "created")
                build = copy.deepcopy(self.pipeline_template["builds"][1])
                build.update(
                    {
                        "id": job_id,
                        "stage": stage,
                        "name": name,
                        "status": job_status,
                        "created_at": _hook_time(started),
                        "started_at": _hook_time(started + index) if job_status != "created" else None,
                        "finished_at": _hook_time(started + 10 * (index + 1)) if final else None,
                        "failure_reason": None,
                    }
                )
                builds.append(build)
            data["builds"] = builds
            return data

        def job_event(index: int) -> dict[str, Any]:
            name, stage = JOBS[index]
            data = copy.deepcopy(self.job_template)
            data.update(
                {
                    "ref": "main",
                    "sha": sha,
                    "before_sha": "0" * 40,
                    "build_id": job_ids[index],
                    "build_name": name,
                    "build_stage": stage,
                    "build_status": "success",
                    "build_created_at": _iso(started),
                    "build_created_at_iso": _iso(started),
                    "build_started_at": _iso(started + index),
                    "build_started_at_iso": _iso(started + index),
                    "build_finished_at": _iso(started + 10 * (index + 1)),
                    "build_finished_at_iso": _iso(started + 10 * (index + 1)),
                    "build_duration": 9.5,
                    "build_failure_reason": None,
                    "retries_count": 0,
                    "pipeline_id": pipeline_id,
                    "project_id": self.gitlab_project_id,
                    "project_name": self.path.replace("/", " / "),
                }
            )
            data["commit"].update(
                {"id": pipeline_id, "sha": sha, "message": message, "status": "running", "author_name": "Bob Durand"}
            )
            data["repository"].update({"name": REPO, "homepage": self.web_url})
            data["project"].update(self._project())
            return data

        events.append(("Pipeline Hook", pipeline_event("running")))
        events += [("Job Hook", job_event(i)) for i in range(len(JOBS))]
        events.append(("Pipeline Hook", pipeline_event("success")))
        return [
            Delivery(
                pipeline_id=pipeline_id,
                final=i == len(events) - 1,
                event=event,
                uuid=str(uuid.uuid4()),
                body=json.dumps(payload).encode(),
            )
            for i, (event, payload) in enumerate(events)
        ]


def plan(pipelines: list[list[Delivery]], senders: int) -> list[list[Delivery]]:
    """Pipeline ``i`` goes to sender ``i % senders``, which sends its pipelines one after the other."""
    queues: list[list[Delivery]] = [[] for _ in range(senders)]
    for index, events in enumerate(pipelines):
        queues[index % senders].extend(events)
    return [q for q in queues if q]


# -- the load generator: raw HTTP/1.1 on kept-alive connections -----------------------------------


class Connection:
    """One kept-alive HTTP/1.1 connection, requests written whole, answers read by Content-Length.

    Far cheaper per request than an HTTP client library: the generator shares the cores with the
    servers under test, every bit of CPU it spares goes to them.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        self._writer.write(request)
        await self._writer.drain()
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = 0
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                raise ValueError("chunked answers are not read by this generator")
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        body = await self._reader.readexactly(length) if length else b""
        if close:
            await self.close()
        return status, body

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except OSError:
                pass
        self._reader = self._writer = None


@dataclass
class Ingest:
    """One run of the events against one target."""

    label: str
    events: int
    accepted: int = 0
    errors: int = 0
    first_error: str = ""
    timed_out: bool = False
    elapsed: float = 0.0  # first request sent → last answer received
    acks: list[float] = field(default_factory=list)  # seconds, of the accepted events
    final_sent: dict[int, float] = field(default_factory=dict)  # pipeline id → wall clock of its final event
    generator_cpu: float = 0.0  # this process: the generator, and the emulators answering the bot
    server_cpu: float = 0.0
    ended_at: float = 0.0  # wall clock of the last answer

    @property
    def rate(self) -> float:
        return self.accepted / self.elapsed if self.elapsed > 0 else 0.0

    def ack_ms(self, q: float) -> float:
        return percentile(self.acks, q) * 1000


async def ingest(
    target: Target, queues: list[list[Delivery]], server: ServerProcess, max_seconds: float, timeout: float = 10.0
) -> Ingest:
    """Every sender sends its queue in order, each request as soon as the previous one is answered."""
    result = Ingest(target.label, sum(len(q) for q in queues))
    wires = [[(d, target.wire(d)) for d in queue] for queue in queues]  # built before the clock starts
    deadline = time.perf_counter() + max_seconds

    async def sender(items: list[tuple[Delivery, bytes]]) -> None:
        connection = Connection(target.host, target.port)
        try:
            for delivery, wire in items:
                if time.perf_counter() >= deadline:
                    result.timed_out = True
                    return
                sent_wall = time.time()
                started = time.perf_counter()
                try:
                    async with asyncio.timeout(timeout):
                        status, body = await connection.exchange(wire)
                    problem = "" if status == 202 and target.expect in body else f"HTTP {status}: {body[:200]!r}"
                except (OSError, ValueError, IndexError, TimeoutError, asyncio.IncompleteReadError) as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                    await connection.close()
                if problem:
                    result.errors += 1
                    result.first_error = result.first_error or problem
                    continue
                result.acks.append(time.perf_counter() - started)
                result.accepted += 1
                if delivery.final:
                    result.final_sent[delivery.pipeline_id] = sent_wall
        finally:
            await connection.close()

    cpu = process_cpu_seconds()
    server_cpu = server.cpu_seconds()
    started = time.perf_counter()
    await asyncio.gather(*(sender(items) for items in wires))
    result.elapsed = time.perf_counter() - started
    result.ended_at = time.time()
    result.generator_cpu = process_cpu_seconds() - cpu
    result.server_cpu = server.cpu_seconds() - server_cpu
    return result


# -- the cards in the Mattermost emulator ---------------------------------------------------------


class Cards:
    """Reads the pipeline cards of ~equipe-alpha straight from the emulator's state (this process)."""

    def __init__(self, world: World) -> None:
        from bot.render.pipelines import ICONS

        self.state: Any = world.states["mattermost"]
        self.channel_id = world.channels[CHANNEL]
        self.final_icon = ICONS["success"]
        self.since_ms = int(time.time() * 1000)

    def read(self) -> dict[int, tuple[bool, int]]:
        """Pipeline id → (its card shows the final status, the post's ``update_at`` in ms).

        Newest posts first, down to the ones older than this reader: a scan of the pipeline cards
        only, under the emulator's lock, nothing deep-copied.
        """
        found: dict[int, tuple[bool, int]] = {}
        with self.state.lock:
            for post in reversed(self.state.posts.values()):
                if post["create_at"] < self.since_ms:
                    break
                if post["channel_id"] != self.channel_id or post["delete_at"]:
                    continue
                attachments = (post.get("props") or {}).get("attachments") or []
                if not attachments or not isinstance(attachments[0], dict):
                    continue
                title = str(attachments[0].get("title", ""))
                match = CARD_ID.search(title)
                if match:
                    found[int(match.group(1))] = (title.startswith(self.final_icon), int(post["update_at"]))
        return found

    async def wait_final(self, pipelines: set[int], timeout: float, poll: float = 0.05) -> dict[int, int]:
        """Until every pipeline's card is final; returns pipeline id → ``update_at`` (ms) of the final ones."""
        deadline = time.monotonic() + timeout
        while True:
            cards = self.read()
            final = {pid: at for pid, (done, at) in cards.items() if done and pid in pipelines}
            if len(final) == len(pipelines) or time.monotonic() >= deadline:
                return final
            await asyncio.sleep(poll)


# -- setting the project up, as a user does -------------------------------------------------------


def _card_text(post: dict[str, Any], title: str) -> str | None:
    attachments = (post.get("props") or {}).get("attachments") or []
    if not attachments and post.get("message") == title:
        return f"\n\n{READY}"  # the one line of a success says what the final status of a card would
    if attachments and isinstance(attachments[0], dict) and str(attachments[0].get("title", "")).startswith(title):
        return str(attachments[0].get("text") or "")
    return None


def run_command(world: World, text: str, card_title: str, timeout: float = 30.0) -> float:
    """Bob types ``/cpn <text>`` in ~equipe-alpha; waits for the card titled ``card_title`` to say
    the project is ready (or for the one line ``card_title`` of a change that went through).
    Returns the seconds it took."""
    state: Any = world.states["mattermost"]
    channel_id = world.channels[CHANNEL]
    since_ms = int(time.time() * 1000) - 2000
    started = time.monotonic()
    with httpx.Client(
        headers={"Authorization": f"Bearer {world.users[USER].token}"}, timeout=timeout, trust_env=False
    ) as client:
        response = client.post(
            f"{world.servers['mattermost'].url}/api/v4/commands/execute",
            json={"channel_id": channel_id, "command": f"/cpn {text}"},
        )
    if response.status_code != 200 or "⏳" not in str(response.json().get("text") or ""):
        raise BenchError(f"/cpn {text} was not accepted: HTTP {response.status_code}: {response.text[:300]}")
    last = ""
    while time.monotonic() - started < timeout:
        with state.lock:
            texts = [
                t
                for post in reversed(state.posts.values())
                if post["create_at"] >= since_ms and post["channel_id"] == channel_id
                for t in (_card_text(post, card_title),)
                if t is not None
            ]
        if texts:
            last = texts[0]
            if "\n\n" in last:  # the final status comes after a blank line
                if READY not in last:
                    raise BenchError(f"/cpn {text} did not end ready:\n{last}")
                return time.monotonic() - started
        time.sleep(0.02)
    raise BenchError(f"/cpn {text}: card not final after {timeout:.0f} s: {last!r}")


def hook_token(world: World) -> str:
    """The token GitLab sends for the project: the one of the group hook the bot registered."""
    gitlab: Any = world.states["gitlab"]
    with gitlab.lock:
        tokens = [str(h.token) for h in gitlab.hooks.values() if h.url.endswith(f"/hooks/gitlab?project={SLUG}")]
    if not tokens:
        raise BenchError(f"no GitLab hook registered for the project {SLUG}")
    return tokens[-1]


def repository(world: World) -> tuple[int, str]:
    """(id, web URL) of ``bench/api`` in the GitLab emulator."""
    assert world.config is not None
    gitlab: Any = world.states["gitlab"]
    found = gitlab.project_by_path(f"{world.config.platform.root_group}/{SLUG}/{REPO}")
    if found is None:
        raise BenchError(f"the repository {SLUG}/{REPO} is not in GitLab")
    return int(found["id"]), str(found["web_url"])


# -- the baseline server (run in a child process: ``bench_webhooks.py --serve-baseline PORT``) ------


def serve_baseline(port: int) -> None:
    """A bare FastAPI endpoint answering 202 to a JSON POST, run like ``cpn-bot serve``."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/hooks/gitlab")
    async def hook(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"accepted": True, "duplicate": False}, status_code=202)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    serve_like_the_bot(app, port)


def serve_bot_profiled(out: str, config: str) -> int:
    """``cpn-bot serve`` under cProfile, the stats written to ``out`` when it stops.

    Not ``python -m cProfile``: uvicorn re-raises the SIGTERM it caught once it has shut down, and
    the default action would kill the process before the stats are written. The handler installed
    here is the one uvicorn restores and raises to: it turns the signal into a normal exit.
    """
    import cProfile
    import signal

    from bot.cli import main as cli_main

    def leave(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, leave)
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        return cli_main(["serve", "--config", config])
    finally:
        profiler.disable()
        profiler.dump_stats(out)


# -- the measure ----------------------------------------------------------------------------------


async def queue_depths(client: httpx.AsyncClient, bot_url: str) -> dict[str, float]:
    """``cpn_queue_depth`` by queue, and a few counters summed over their labels, from the bot's ``/metrics``."""
    text = (await client.get(f"{bot_url}/metrics")).text
    counters = (
        "cpn_events_processed_total",
        "cpn_events_ignored_total",
        "cpn_event_errors_total",
        "cpn_outbox_delivered_total",
        "cpn_outbox_enqueued_total",
    )
    values: dict[str, float] = {}
    for line in text.splitlines():
        series, _, value = line.rpartition(" ")
        if series.startswith("cpn_queue_depth"):
            values[series] = float(value)
        elif series.startswith(counters):
            name = series.partition("{")[0]
            values[name] = values.get(name, 0.0) + float(value)
    return values


@dataclass
class Outcome:
    baseline: list[Ingest]
    bot: Ingest
    posted: dict[int, int]  # pipeline id → update_at (ms) of its final card
    depths: list[dict[str, float]]  # before the measured events, right after their last answer, at the end
    drain_cpu: float  # bot CPU from the last answer until every card was final
    drain_seconds: float
    warmup_pipelines: int


class Budget:
    """What is left of the time the measure may take in all: each run and each wait gets at most that."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds

    def cap(self, wanted: float) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise BenchError(f"the measure took more than {self.seconds:.0f} s in all: stopped")
        return min(wanted, left)


async def drive(
    world: World,
    bot: ServerProcess,
    baseline: ServerProcess,
    targets: tuple[Target, Target],
    factory: EventFactory,
    args: argparse.Namespace,
) -> Outcome:
    base_target, bot_target = targets
    budget = Budget(args.max_seconds)
    cards = Cards(world)
    warm = factory.pipelines(max(1, args.warmup // EVENTS_PER_PIPELINE))
    measured = factory.pipelines(args.events // EVENTS_PER_PIPELINE)
    warm_plan, measured_plan = plan(warm, args.senders), plan(measured, args.senders)
    run_cap, warm_cap = args.run_seconds, min(args.run_seconds, 5.0)

    # The baseline: warmed up, then measured; measured again after the bot, when it is quiet.
    await ingest(base_target, warm_plan, baseline, budget.cap(warm_cap))
    before = await ingest(base_target, measured_plan, baseline, budget.cap(run_cap))
    before.label += " (before)"

    # The bot: warmed up with pipelines of their own, until their cards are final.
    warm_result = await ingest(bot_target, warm_plan, bot, budget.cap(warm_cap))
    if warm_result.errors or warm_result.timed_out:
        raise BenchError(f"warm-up: {warm_result.accepted}/{warm_result.events} accepted: {warm_result.first_error}")
    warm_ids = {events[0].pipeline_id for events in warm}
    if len(await cards.wait_final(warm_ids, budget.cap(args.drain_timeout))) < len(warm_ids):
        raise BenchError("warm-up: not every card became final")

    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        before_ingest = await queue_depths(client, world.bot_url)
        result = await ingest(bot_target, measured_plan, bot, budget.cap(run_cap))
        after_ingest = await queue_depths(client, world.bot_url)
        drain_cpu = bot.cpu_seconds()
        drain_started = time.monotonic()
        wanted = {events[0].pipeline_id for events in measured}
        posted = await cards.wait_final(wanted, budget.cap(args.drain_timeout))
        drain_seconds = time.monotonic() - drain_started
        drain_cpu = bot.cpu_seconds() - drain_cpu
        at_end = await queue_depths(client, world.bot_url)

    after = await ingest(base_target, measured_plan, baseline, budget.cap(run_cap))
    after.label += " (after)"
    depths = [before_ingest, after_ingest, at_end]
    return Outcome([before, after], result, posted, depths, drain_cpu, drain_seconds, len(warm))


def run(args: argparse.Namespace) -> int:
    from bot.sandbox.world import Timings

    started = time.monotonic()
    pipelines = args.events // EVENTS_PER_PIPELINE
    events = pipelines * EVENTS_PER_PIPELINE
    heading(f"GitLab webhook ingest: {events} pipeline and job events, {args.senders} concurrent senders")
    print(f"machine: {machine_line()}")
    print(f"before:  {load_average()}")
    print(
        f"NOTE: the load generator, the Mattermost and GitLab emulators (this process) and the servers under\n"
        f"      test share the same {usable_cores()} core(s): throughputs are lower bounds, and latencies include\n"
        f"      queueing in the generator; the ratio to the baseline is the figure to follow. The senders\n"
        f"      run a closed loop (next request as soon as the previous one is answered): with {args.senders} of them\n"
        f"      the mean acknowledgement latency is {args.senders} / (events per second) by Little's law."
    )
    print(
        f"load:    {pipelines} pipelines on main, {EVENTS_PER_PIPELINE} events each (Pipeline Hook running, "
        f"{len(JOBS)} Job Hooks success,\n         Pipeline Hook success), a pipeline's events in order through "
        f"one sender; raw HTTP/1.1, one kept-alive\n         connection per sender; warm-up of {args.warmup} "
        f"events each first (not counted)"
    )
    if args.profile_bot:
        print(f"PROFILING: the bot runs under cProfile ({args.profile_bot}): its figures are slowed down")

    modes = {0: "one process", 1: "web process + one worker", 2: "web process + two workers (events, posts)"}
    print(f"cpn-bot: {modes[args.workers]} (server.workers = {args.workers})")
    overrides = {"server": {"workers": args.workers}}
    world = start_world_for_subprocess(timings=Timings.fast(), config_overrides=overrides)
    broken = True  # until the measure is done: the world's directory is kept for a look
    try:
        port = free_port()
        baseline = ServerProcess(
            "baseline",
            [sys.executable, str(Path(__file__).resolve()), "--serve-baseline", str(port)],
            Path(world.root) / "baseline.log",
            env=python_env(),
        )
        bot = bot_process(world)
        if args.profile_bot:
            out = str(Path(args.profile_bot).resolve())
            bot.argv = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--serve-bot-profiled",
                out,
                str(world.config_path),
            ]
            bot.env.update(python_env())
        with baseline, bot:
            baseline.wait_ready(f"http://{LOOPBACK}:{port}/healthz")
            ready_s = bot.wait_ready(f"{world.bot_url}/readyz", timeout=30)
            created_s = run_command(world, f"project create {SLUG}", CREATE_TITLE)
            added_s = run_command(world, f"repo add {SLUG} {REPO}", UPDATE_TITLE)
            print(
                f"cpn-bot serve ready in {ready_s:.1f} s; /cpn project create {SLUG}: {created_s:.1f} s, "
                f"/cpn repo add {SLUG} {REPO}: {added_s:.1f} s"
            )
            token = _checked_token(world)
            gitlab_id, web_url = repository(world)
            assert world.config is not None
            factory = EventFactory(gitlab_id, web_url, world.config.platform.root_group)
            targets = (
                Target("baseline FastAPI/uvicorn", LOOPBACK, port, "/hooks/gitlab", token, b"accepted"),
                Target(
                    "cpn-bot", LOOPBACK, world.bot_port, f"/hooks/gitlab?project={SLUG}", token, b'"duplicate":false'
                ),
            )
            outcome = asyncio.run(drive(world, bot, baseline, targets, factory, args))
            code = bot.stop()
        failures = report(outcome, pipelines, events)
        broken = bool(failures)
    except BenchError as exc:
        print(f"\nFAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        stop_world(world, keep=broken)

    if args.profile_bot:
        print_profile(Path(args.profile_bot), args.profile_lines)
    print(f"\nafter:   {load_average()}")
    print(
        f"bot exit code on SIGTERM: {code} (-15: uvicorn re-raises the signal once shut down); "
        f"total time {time.monotonic() - started:.1f} s"
    )
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


def _checked_token(world: World) -> str:
    """The hook's token; warns when it is not the one derived from the world's GitLab master secret."""
    from bot.workflows.naming import derive

    token = hook_token(world)
    documented = derive(world.webhook_secrets["gitlab"].encode(), "gitlab", SLUG)
    if token != documented:
        print(
            "NOTE: the hook the bot registered in GitLab does not use the secret derived from the world's\n"
            "      webhook_secrets['gitlab'] (is [gitlab] webhook_secret missing from the world's config?):\n"
            "      the events are sent with the registered hook's token, as GitLab does."
        )
    return token


def report(outcome: Outcome, pipelines: int, events: int) -> list[str]:
    """Prints the figures and the targets; returns what failed (not what missed a target)."""
    bot = outcome.bot
    runs = [*outcome.baseline, bot]
    print()
    table(
        [
            "server",
            "accepted",
            "errors",
            "events/s",
            "ack p50 ms",
            "ack p99 ms",
            "ack max ms",
            "server busy",
            "server ms CPU/event",
            "this process ms CPU/event",
        ],
        [
            [
                r.label,
                r.accepted,
                r.errors,
                r.rate,
                r.ack_ms(50),
                r.ack_ms(99),
                r.ack_ms(100),
                f"{r.server_cpu / r.elapsed:.0%}" if r.elapsed else "-",
                r.server_cpu * 1000 / r.accepted if r.accepted else float("nan"),
                r.generator_cpu * 1000 / r.accepted if r.accepted else float("nan"),
            ]
            for r in runs
        ],
    )
    print(
        "(server busy: share of one core the server used while measured; this process: the generator, and for\n"
        " the bot the Mattermost emulator taking its posts too)"
    )

    latencies = [
        max(0.0, at / 1000 - bot.final_sent[pid]) for pid, at in outcome.posted.items() if pid in bot.final_sent
    ]
    bot_total_cpu = bot.server_cpu + outcome.drain_cpu
    print(
        f"\nEvent to post (final event sent → its card shows the final status), {len(latencies)} of {pipelines} "
        f"pipelines:\n"
        f"  p50 {percentile(latencies, 50) * 1000:.0f} ms, p90 {percentile(latencies, 90) * 1000:.0f} ms, "
        f"p99 {percentile(latencies, 99) * 1000:.0f} ms, max {percentile(latencies, 100) * 1000:.0f} ms"
        + (f", mean {statistics.mean(latencies) * 1000:.0f} ms" if latencies else "")
    )
    print(
        f"  the last card became final {outcome.drain_seconds:.2f} s after the last answer (polled every 50 ms); "
        f"bot CPU from the\n  first event to the last card: {bot_total_cpu:.1f} s "
        f"({bot_total_cpu * 1000 / max(1, bot.accepted):.2f} ms per event)"
    )
    _print_depths(outcome)

    base_rate = statistics.mean(r.rate for r in outcome.baseline)
    share = bot.rate / base_rate if base_rate else 0.0
    post_p99 = percentile(latencies, 99)
    print()
    table(
        ["target", "measured", "verdict"],
        [
            [
                f"accepted >= {THROUGHPUT_TARGET:,.0f} events/s",
                f"{bot.rate:,.0f} events/s",
                verdict(bot.rate >= THROUGHPUT_TARGET),
            ],
            [
                f"accepted >= {BASELINE_SHARE_TARGET:.0%} of the baseline",
                f"{share:.0%} (of {base_rate:,.0f} events/s, mean of its 2 runs)",
                verdict(share >= BASELINE_SHARE_TARGET),
            ],
            [
                f"ack p99 < {ACK_P99_TARGET_MS:.0f} ms",
                f"{bot.ack_ms(99):.1f} ms",
                verdict(bot.ack_ms(99) < ACK_P99_TARGET_MS),
            ],
            [
                f"event-to-post p99 < {POST_P99_TARGET_S:.0f} s",
                f"{post_p99 * 1000:.0f} ms",
                verdict(post_p99 < POST_P99_TARGET_S),
            ],
            [
                "(for reference) baseline ack p99",
                " / ".join(f"{r.ack_ms(99):.1f} ms" for r in outcome.baseline),
                "",
            ],
        ],
    )

    failures = []
    for r in runs:
        if r.errors or r.accepted < events:
            why = "time limit reached" if r.timed_out else r.first_error
            failures.append(f"{r.label}: {r.accepted}/{events} events accepted ({why})")
    if len(outcome.posted) < pipelines:
        failures.append(f"only {len(outcome.posted)} of {pipelines} cards became final in time")
    ignored = outcome.depths[-1].get("cpn_events_ignored_total", 0.0)
    if ignored:
        failures.append(f"the bot ignored {ignored:.0f} events (cpn_events_ignored_total)")
    return failures


def _print_depths(outcome: Outcome) -> None:
    def depth(values: dict[str, float], queue: str) -> str:
        value = values.get(f'cpn_queue_depth{{queue="{queue}"}}')
        return "-" if value is None else f"{value:.0f}"

    def count(values: dict[str, float], name: str) -> str:
        return f"{values.get(name, 0.0):.0f}"

    print("\nThe bot's queues (cpn_queue_depth of its /metrics; counters since it started):")
    table(
        ["when", "inbox", "outbox", "operations", "events processed", "event errors", "posts queued", "posts sent"],
        [
            [
                label,
                depth(values, "inbox"),
                depth(values, "outbox"),
                depth(values, "operations"),
                count(values, "cpn_events_processed_total"),
                count(values, "cpn_event_errors_total"),
                count(values, "cpn_outbox_enqueued_total"),
                count(values, "cpn_outbox_delivered_total"),
            ]
            for label, values in zip(
                ("before the measured events", "right after their last answer", "every card final"),
                outcome.depths,
                strict=True,
            )
        ],
    )


def print_profile(path: Path, lines: int) -> None:
    import pstats

    if not path.exists():
        print(f"\n(no profile written at {path})")
        return
    heading(f"Where the bot's time goes (cProfile, main thread, top {lines} by own time)")
    stats = pstats.Stats(str(path))
    stats.sort_stats("tottime").print_stats(lines)
    print(f"by cumulative time (top {lines}):")
    stats.sort_stats("cumulative").print_stats(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--events", type=int, default=5000, help=f"events measured (a multiple of {EVENTS_PER_PIPELINE})"
    )
    parser.add_argument("--senders", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=250, help="warm-up events for each server (not counted)")
    parser.add_argument("--run-seconds", type=float, default=20.0, help="cap of each measured run")
    parser.add_argument("--drain-timeout", type=float, default=20.0, help="seconds the cards may take to be final")
    parser.add_argument("--max-seconds", type=float, default=95.0, help="cap of all the runs and waits, in all")
    parser.add_argument("--profile-bot", metavar="FILE", help="run the bot under cProfile, stats written to FILE")
    parser.add_argument("--workers", type=int, choices=[0, 1, 2], default=2, help="server.workers of the bot")
    parser.add_argument("--profile-lines", type=int, default=30)
    parser.add_argument("--serve-baseline", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--serve-bot-profiled", nargs=2, metavar=("OUT", "CONFIG"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_bot_profiled is not None:
        return serve_bot_profiled(*args.serve_bot_profiled)
    if args.serve_baseline is not None:
        serve_baseline(args.serve_baseline)
        return 0
    if args.events < EVENTS_PER_PIPELINE or args.senders < 1:
        parser.error(f"--events must be at least {EVENTS_PER_PIPELINE} and --senders at least 1")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
