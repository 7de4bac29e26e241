"""``server.workers``: the web process answers, the worker processes it supervises do the rest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot.sandbox.world import Timings, World
from tests.conftest import wait_for
from tests.integration.test_pipelines import pipeline_cards, pipeline_event, project_secret, send
from tests.support.mattermost import User, channel_posts


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _ready(world: World) -> bool:
    try:
        return httpx.get(f"{world.bot_url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(params=[1, 2], ids=["one worker", "two workers"])
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[World, subprocess.Popen[bytes]]]:
    world = World(
        tmp_path, timings=Timings.fast(), bot_in_process=False, config_overrides={"server": {"workers": request.param}}
    ).start()
    process = subprocess.Popen(world.serve_command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _ready(world), timeout=30, what="the bot and its worker")
        yield world, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(15)
        world.stop()


def test_commands_events_and_posts_go_through_the_two_processes(
    served: tuple[World, subprocess.Popen[bytes]],
) -> None:
    world, process = served
    workers = _children(process.pid)
    checks = httpx.get(f"{world.bot_url}/readyz").json()["checks"]
    assert len(workers) == len([c for c in checks if c.startswith("worker:")]) in (1, 2)
    assert all(v == "ok" for c, v in checks.items() if c.startswith("worker:"))
    bob = User(world, "bob")
    assert "alpha" in bob.run("/cpn project create alpha")["text"]  # answered by the web process
    store = world.store()
    wait_for(lambda: store.count("operations", "status = 'done'") == 1, timeout=20, what="the onboarding")

    # A webhook acknowledged by the web process; its card posted by the worker.
    assert send(world, "Pipeline Hook", pipeline_event("failed", 501), token=project_secret(world)).status_code == 202
    wait_for(lambda: len(pipeline_cards(world, 501)) == 1, timeout=20, what="the card posted by the worker")

    # A mention is heard on the websocket and answered from the knowledge base the web process indexed.
    question = bob.say("@cpn-bot comment ajouter un dépôt privé ?")

    def answered() -> bool:
        replies = [p for p in channel_posts(world, "equipe-alpha") if p["root_id"] == question["id"]]
        return any("Ajouter un dépôt Git au projet" in json.dumps(p, ensure_ascii=False) for p in replies)

    wait_for(answered, timeout=20, what="the answer to the mention")

    # The worker's counters are in the web process's /metrics.
    def processed() -> bool:
        text = httpx.get(f"{world.bot_url}/metrics").text
        return 'cpn_events_processed_total{source="gitlab",status="done"}' in text

    wait_for(processed, timeout=10, what="the worker's metrics")

    # Workers that die are started again, and nothing sent meanwhile is lost.
    for worker in workers:
        os.kill(worker, signal.SIGKILL)
    assert send(world, "Pipeline Hook", pipeline_event("failed", 502), token=project_secret(world)).status_code == 202
    wait_for(lambda: len(pipeline_cards(world, 502)) == 1, timeout=30, what="the card after the workers' restart")
    restarted = _children(process.pid)
    assert len(restarted) == len(workers) and not set(restarted) & set(workers)

    # Stopping the web process stops its workers.
    process.send_signal(signal.SIGTERM)
    process.wait(15)
    assert not any(Path(f"/proc/{pid}").exists() for pid in restarted)


def test_duplicate_deliveries_are_one_event_through_the_group_commit(
    served: tuple[World, subprocess.Popen[bytes]],
) -> None:
    world, _ = served
    User(world, "bob").run("/cpn project create alpha")
    store = world.store()
    wait_for(lambda: store.count("operations", "status = 'done'") == 1, timeout=20, what="the onboarding")
    before = store.count("inbox")
    answers = [
        send(world, "Pipeline Hook", pipeline_event("running", 601), token=project_secret(world), delivery="same")
        for _ in range(3)
    ]
    assert [a.json()["duplicate"] for a in answers] == [False, True, True]
    assert store.count("inbox") == before + 1
    unsigned = send(world, "Pipeline Hook", pipeline_event("running", 602), token="wrong")
    assert unsigned.status_code == 401 and store.count("inbox") == before + 1


def test_workers_stop_when_the_web_process_is_killed(served: tuple[World, subprocess.Popen[bytes]]) -> None:
    _, process = served
    workers = _children(process.pid)
    assert workers
    process.send_signal(signal.SIGKILL)  # no chance to stop its workers itself
    process.wait(10)
    wait_for(lambda: not any(_running(pid) for pid in workers), timeout=15, what="the orphaned workers to stop")


def _running(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
