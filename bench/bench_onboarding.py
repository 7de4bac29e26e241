"""Onboarding of a project end to end: ``/cpn project create`` until its checklist card is final.

The bot runs as ``cpn-bot serve --config …`` in its own process, wired to the sandbox's emulators
(in this process) with short emulated timings (``Timings.fast()``). Each onboarding is driven as a
user does it: Bob types ``/cpn project create <name>`` in ~equipe-alpha (``POST
/api/v4/commands/execute`` with his token, so the emulator calls the bot's slash command), then the
checklist card the bot posts in the channel is read from the emulator's state every few
milliseconds until it shows the final status. Measured:

- one project (command sent → card final), on 5 fresh names, after one thrown-away warm-up;
- 100 projects in a row: the time per project, block of 10 by block of 10, must not grow.

    .venv/bin/python bench/bench_onboarding.py [--single 5] [--sequence 100] [--poll-ms 3]
        [--control console [--connected]]

``--control console``: the console emulator provisions (its plugins drive the other emulators)
and the bot goes through it. The console's own time is then measured too: the same project as
the person gets it in the console (``POST /api/v1/projects`` with their own personal access token,
so that they own it, then its project and logs re-read, §3.1), by the bot's console adapter alone,
without the bot, on as many fresh names as the single runs. The bot's share is what one onboarding
costs beyond that (its card, its webhooks, its store, and without ``--connected`` the ownership
transfer), over the console's time.

``--connected`` (console mode): the user first links his console token with ``/cpn connect``, so
the bot creates the project as him. Without it the bot uses its admin token: the console makes
its bot user the owner, and the bot hands the project to the person (a project update, which the
console provisions again).

Exit 0 when every onboarding ended with "Projet prêt" (targets missed are printed, not fatal);
1 otherwise.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench.common import (
    BenchError,
    ServerProcess,
    bot_process,
    heading,
    load_average,
    machine_line,
    process_cpu_seconds,
    start_world_for_subprocess,
    stop_world,
    table,
    verdict,
)

if TYPE_CHECKING:
    from bot.sandbox.world import World

ONE_PROJECT_TARGET_S = 2.0
GROWTH_TARGET = 1.3  # last block of 10 over the first, medians
USER = "bob"
CHANNEL = "equipe-alpha"
# The card as the French catalog words it (bot/locales/fr.toml, the sandbox's language).
CARD_TITLE = "Création du projet {name}"
READY = "Projet prêt"
TERMINAL_STATES = ("ok", "warning", "failed", "skipped")


class OnboardingFailed(BenchError):
    """One onboarding did not end with a ready project."""


# -- one onboarding -------------------------------------------------------------------------------


@dataclass
class Trace:
    """When each thing was first seen, in seconds since the command was sent."""

    name: str
    replied: float = 0.0  # the command's HTTP answer (the bot's ephemeral reply)
    card: float = 0.0  # the checklist card first seen in the channel
    done: dict[str, float] = field(default_factory=dict)  # service -> its line first seen finished
    final: float = 0.0  # the card's final status ("Projet prêt")
    bot_cpu: float = 0.0  # seconds of CPU the bot used during this onboarding
    local_cpu: float = 0.0  # seconds of CPU this process (emulators, poller) used during it

    @property
    def total(self) -> float:
        return self.final

    def phases(self, services: list[tuple[str, str]]) -> dict[str, float]:
        """Consecutive phases that add up to the total; a service's is from the previous mark
        to its line finished (the card's edits can be coalesced: indicative)."""
        out = {"command answered": self.replied, "card posted": self.card - self.replied}
        mark = self.card
        for service, label in services:
            at = self.done.get(service, mark)
            out[label] = at - mark
            mark = max(mark, at)
        out["final status"] = self.final - mark
        return out


class Onboarder:
    """Sends ``/cpn project create`` as a user and watches the card in the emulator's state."""

    def __init__(self, world: World, bot: ServerProcess, poll_seconds: float, timeout: float) -> None:
        from bot.render.projects import ICONS, SERVICE_NAMES
        from bot.workflows.onboarding import SERVICES

        self.world = world
        self.bot = bot
        self.poll_seconds = poll_seconds
        self.timeout = timeout
        self.state: Any = world.states["mattermost"]
        self.channel_id = world.channels[CHANNEL]
        self.services = [(s, SERVICE_NAMES.get(s, s)) for s in SERVICES]
        self.finished_icons = tuple(ICONS[s] for s in TERMINAL_STATES)
        self.url = f"{world.servers['mattermost'].url}/api/v4/commands/execute"
        self.client = httpx.Client(
            headers={"Authorization": f"Bearer {world.users[USER].token}"},
            timeout=timeout,
            trust_env=False,
        )

    def close(self) -> None:
        self.client.close()

    def connect(self, token: str) -> None:
        """``/cpn connect`` as the user, and its dialog submitted with ``token`` (as a person does)."""
        state = self.state
        opened = len(state.dialogs_opened)
        response = self.client.post(self.url, json={"channel_id": self.channel_id, "command": "/cpn connect"})
        if response.status_code != 200 or len(state.dialogs_opened) <= opened:
            raise BenchError(f"/cpn connect opened no dialog: HTTP {response.status_code} {response.text[:200]}")
        dialog = state.dialogs_opened[-1]
        answer = self.client.post(
            self.url.replace("/commands/execute", "/actions/dialogs/submit"),
            json={
                "url": dialog["url"],
                "callback_id": dialog["dialog"].get("callback_id", ""),
                "state": dialog["dialog"].get("state", ""),
                "channel_id": self.channel_id,
                "team_id": self.world.team_id,
                "submission": {"token": token},
                "cancelled": False,
            },
        )
        if answer.status_code != 200 or (answer.content and answer.json().get("errors")):
            raise BenchError(f"the console token was refused: HTTP {answer.status_code} {answer.text[:200]}")

    def onboard(self, name: str) -> Trace:
        trace = Trace(name)
        title = CARD_TITLE.format(name=name)
        since_ms = int(time.time() * 1000) - 2000  # posts are stamped with the wall clock, in ms
        bot_cpu = self.bot.cpu_seconds()
        local_cpu = process_cpu_seconds()
        started = time.perf_counter()
        response = self.client.post(
            self.url, json={"channel_id": self.channel_id, "command": f"/cpn project create {name}"}
        )
        trace.replied = time.perf_counter() - started
        if response.status_code != 200:
            raise OnboardingFailed(f"{name}: the command answered HTTP {response.status_code}: {response.text[:300]}")
        reply = str(response.json().get("text") or "")
        if name not in reply or "⏳" not in reply:
            raise OnboardingFailed(f"{name}: the command was not accepted: {reply[:300]}")
        post_id = ""
        text = ""
        deadline = started + self.timeout
        while True:
            found = self._read_card(title, since_ms, post_id)
            now = time.perf_counter() - started
            if found is not None:
                post_id, text = found
                if not trace.card:
                    trace.card = now
                for service in self._finished(text):
                    trace.done.setdefault(service, now)
                if "\n\n" in text:  # the final status comes after a blank line
                    trace.final = now
                    break
            if started + now >= deadline:
                raise OnboardingFailed(f"{name}: card not final after {self.timeout:.0f} s: {text!r}")
            time.sleep(self.poll_seconds)
        trace.bot_cpu = self.bot.cpu_seconds() - bot_cpu
        trace.local_cpu = process_cpu_seconds() - local_cpu
        if READY not in text:
            raise OnboardingFailed(f"{name}: the project is not ready:\n{text}")
        return trace

    def _read_card(self, title: str, since_ms: int, post_id: str) -> tuple[str, str] | None:
        """(post id, text) of the card titled ``title``, or None while it is not posted.

        The emulator's posts are read newest first under its lock, down to the command's time,
        and only the card's text is copied: ``channel_posts()`` deep-copies the whole channel,
        which grows by one card per project, so polling it every few ms would make the poller's
        cost (in the emulators' process) grow with the number of projects measured.
        """
        state = self.state
        with state.lock:
            if post_id:
                post = state.posts.get(post_id)
                text = _card_text(post, title) if post is not None else None
                return (post_id, text) if text is not None else None
            for post in reversed(state.posts.values()):
                if post["create_at"] < since_ms:
                    return None
                if post["channel_id"] == self.channel_id and not post["delete_at"]:
                    text = _card_text(post, title)
                    if text is not None:
                        return str(post["id"]), text
        return None

    def _finished(self, text: str) -> list[str]:
        found = []
        for line in text.splitlines():
            if line.startswith(self.finished_icons):
                found += [service for service, label in self.services if f"**{label}**" in line]
        return found


def _card_text(post: dict[str, Any], title: str) -> str | None:
    attachments = (post.get("props") or {}).get("attachments") or []
    if attachments and isinstance(attachments[0], dict) and str(attachments[0].get("title", "")).startswith(title):
        return str(attachments[0].get("text") or "")
    return None


# -- the measure ----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    from bot.sandbox.world import Timings

    started = time.monotonic()
    heading("Onboarding end to end: /cpn project create until the checklist says ready")
    print(f"machine: {machine_line()}")
    print(f"before:  {load_average()}")
    print(
        f"NOTE: the emulators (with this driver) share the machine's cores with the bot; emulated\n"
        f"      work is shortened (Timings.fast(): pipeline and ArgoCD steps of 10 ms); the card is\n"
        f"      polled every {args.poll_ms:g} ms, so times are rounded up by as much."
    )
    world = start_world_for_subprocess(timings=Timings.fast(), control=args.control)
    broken = True  # until the measure is done: the world's directory is kept for a look
    singles: list[Trace] = []
    sequence: list[Trace] = []
    rss_kib: list[int] = []
    onboarder: Onboarder | None = None
    try:
        bot = bot_process(world)
        with bot:
            ready_s = bot.wait_ready(f"{world.bot_url}/readyz", timeout=30)
            print(
                f"cpn-bot serve ready in {ready_s:.1f} s on port {world.bot_port}; "
                f"commands typed by {USER} in ~{CHANNEL}"
            )
            onboarder = Onboarder(world, bot, args.poll_ms / 1000, args.timeout)
            person_token = _person_token(world) if args.control == "console" else ""
            if args.connected:
                onboarder.connect(person_token)
                print(f"{USER} linked his console token with /cpn connect: the bot creates projects as him")
            deadline = time.monotonic() + args.max_seconds
            warm = onboarder.onboard("warm0")
            print(f"warm-up (first onboarding after start, not counted): {warm.total * 1000:.0f} ms")
            for i in range(1, args.single + 1):
                _check_deadline(deadline, args.max_seconds)
                singles.append(onboarder.onboard(f"solo{i}"))
            rss_kib.append(bot.memory()["VmRSS"])
            for i in range(1, args.sequence + 1):
                _check_deadline(deadline, args.max_seconds)
                sequence.append(onboarder.onboard(f"seq{i:03d}"))
            rss_kib.append(bot.memory()["VmRSS"])
            channel_posts_ms, posts = _channel_posts_cost(world)
            code = bot.stop()
            console_own = _console_own_times(world, person_token, args.single) if person_token else []
        broken = False
    except BenchError as exc:
        print(f"\nFAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if onboarder is not None:
            onboarder.close()
        stop_world(world, keep=broken)

    report_single(singles)
    if console_own:
        report_console_share(singles, console_own)
    report_sequence(sequence, rss_kib)
    report_phases(singles, sequence, onboarder.services if onboarder else [])
    print(
        f"\n(for reference: one channel_posts() of ~{CHANNEL} with its {posts} posts takes "
        f"{channel_posts_ms:.2f} ms in this process; the poller reads only the newest posts instead)"
    )
    print(
        f"\nafter:   {load_average()}; bot exit code on SIGTERM: {code}; total time {time.monotonic() - started:.1f} s"
    )
    return 0


def _person_token(world: World) -> str:
    """A personal access token of the user in the console emulator (the one he would link)."""
    console: Any = world.states["console"]
    person = console.user_by_email(world.users[USER].email)
    if person is None:
        raise BenchError(f"{USER} has no console account")
    return str(console.add_pat(person, "bench"))


def _console_own_times(world: World, token: str, count: int) -> list[float]:
    """The console's own time for one project creation as the person makes it (owned by him):
    the bot's adapter alone with his token, fresh names."""
    import asyncio

    from services.console import Console

    state = world.state_file()["console"]

    async def create_all() -> list[float]:
        console = Console(state["url"], token, 10.0, 120.0)
        times = []
        try:
            for i in range(1, count + 1):
                started = time.perf_counter()
                provisioning = await console.projects.create(f"bare{i}")
                times.append(time.perf_counter() - started)
                if provisioning.state != "ok":
                    raise BenchError(f"the console left bare{i} {provisioning.state}")
        finally:
            await console.close()
        return times

    return asyncio.run(create_all())


def report_console_share(singles: list[Trace], console_own: list[float]) -> None:
    bot_ms = statistics.median(t.total * 1000 for t in singles)
    own_ms = statistics.median(t * 1000 for t in console_own)
    share = (bot_ms - own_ms) / own_ms
    print(f"\nThe console's own time for the same creation (its adapter alone, {len(console_own)} fresh names), ms:")
    print("  " + "  ".join(f"{t * 1000:.0f}" for t in console_own))
    table(
        ["onboarding median ms", "console alone median ms", "added by the bot ms", "added / console"],
        [[bot_ms, own_ms, bot_ms - own_ms, f"{share:.0%}"]],
    )
    print()
    table(
        ["target", "measured", "verdict"],
        [["the bot adds < 10 % to the console", f"{share:.0%}", verdict(share < 0.10)]],
    )


def _check_deadline(deadline: float, max_seconds: float) -> None:
    if time.monotonic() >= deadline:
        raise BenchError(f"the onboardings took more than {max_seconds:.0f} s in all: stopped")


def _channel_posts_cost(world: World) -> tuple[float, int]:
    state: Any = world.states["mattermost"]
    started = time.perf_counter()
    posts = state.channel_posts(world.channels[CHANNEL])
    return (time.perf_counter() - started) * 1000, len(posts)


def report_single(traces: list[Trace]) -> None:
    totals = [t.total * 1000 for t in traces]
    print(f"\nOne project, {len(traces)} times on fresh names (command sent → card says ready), ms:")
    print("  " + "  ".join(f"{t.name} {t.total * 1000:.0f}" for t in traces))
    table(
        ["min ms", "median ms", "max ms", "bot CPU ms/project"],
        [[min(totals), statistics.median(totals), max(totals), statistics.mean(t.bot_cpu * 1000 for t in traces)]],
    )
    worst = max(totals) / 1000
    print()
    table(
        ["target", "measured (max of the runs)", "verdict"],
        [[f"one project < {ONE_PROJECT_TARGET_S:.0f} s", f"{worst:.3f} s", verdict(worst < ONE_PROJECT_TARGET_S)]],
    )


def report_sequence(traces: list[Trace], rss_kib: list[int]) -> None:
    block = 10
    blocks = [traces[i : i + block] for i in range(0, len(traces), block)]
    print(f"\n{len(traces)} projects in a row, one after the other: time per project by block of {block}")
    rows: list[list[object]] = []
    for index, chunk in enumerate(blocks):
        totals = [t.total * 1000 for t in chunk]
        rows.append(
            [
                f"{index * block + 1}–{index * block + len(chunk)}",
                statistics.median(totals),
                min(totals),
                max(totals),
                statistics.mean(t.bot_cpu * 1000 for t in chunk),
                statistics.mean(t.local_cpu * 1000 for t in chunk),
            ]
        )
    table(
        ["projects", "median ms", "min ms", "max ms", "bot CPU ms/project", "emulators+driver CPU ms/project"],
        rows,
    )
    first = statistics.median(t.total for t in blocks[0])
    last = statistics.median(t.total for t in blocks[-1])
    ratio = last / first
    slope = statistics.linear_regression(range(len(traces)), [t.total * 1000 for t in traces]).slope
    print(
        f"least-squares trend: {slope * 100:+.1f} ms per 100 projects; "
        f"bot VmRSS {rss_kib[0] / 1024:.1f} → {rss_kib[-1] / 1024:.1f} MiB over the {len(traces)}"
    )
    print()
    table(
        ["target", "measured", "verdict"],
        [
            [
                f"no growth: last block / first block (medians) <= {GROWTH_TARGET}",
                f"{ratio:.2f} ({last * 1000:.0f} / {first * 1000:.0f} ms)",
                verdict(ratio <= GROWTH_TARGET),
            ]
        ],
    )


def report_phases(
    singles: list[Trace], sequence: list[Trace], services: list[tuple[str, str]], block: int = 10
) -> None:
    """Mean of each phase over all measured onboardings, and its median in the first and last
    blocks of the sequence: where a growth comes from."""
    traces = singles + sequence
    phases = [t.phases(services) for t in traces]
    first = [t.phases(services) for t in sequence[:block]]
    last = [t.phases(services) for t in sequence[-block:]]
    total = statistics.mean(t.total for t in traces)
    print(
        f"\nWhere the time goes, as seen on the card (its edits can be coalesced: indicative): mean of the "
        f"{len(traces)} measured\nonboardings, and medians of the first and last {block} of the sequence"
    )
    rows: list[list[object]] = []
    for key in phases[0]:
        mean = statistics.mean(p[key] * 1000 for p in phases)
        rows.append(
            [
                key,
                mean,
                f"{mean / (total * 1000):.0%}",
                statistics.median(p[key] * 1000 for p in first),
                statistics.median(p[key] * 1000 for p in last),
            ]
        )
    rows.append(
        [
            "total",
            total * 1000,
            "100%",
            statistics.median(t.total * 1000 for t in sequence[:block]),
            statistics.median(t.total * 1000 for t in sequence[-block:]),
        ]
    )
    table(["phase", "mean ms", "share", f"first {block} ms", f"last {block} ms"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--single", type=int, default=5, help="one-project runs (after one warm-up)")
    parser.add_argument("--sequence", type=int, default=100, help="projects onboarded in a row")
    parser.add_argument("--poll-ms", type=float, default=3.0, help="how often the card is read")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds one onboarding may take")
    parser.add_argument("--max-seconds", type=float, default=150.0, help="cap of all the onboardings")
    parser.add_argument("--control", choices=["direct", "console"], default="direct", help="who provisions")
    parser.add_argument("--connected", action="store_true", help="console mode: the user links his token first")
    args = parser.parse_args(argv)
    if args.connected and args.control != "console":
        parser.error("--connected needs --control console")
    if args.single < 1 or args.sequence < 1:
        parser.error("--single and --sequence must be at least 1")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
