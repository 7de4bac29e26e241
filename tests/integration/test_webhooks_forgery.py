"""Cross-project forgery: an event applies only to the project whose secret authenticated it."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bot.sandbox.world import Timings, World
from bot.workflows.naming import derive
from services.emulators.fixtures import fixtures_dir
from tests.support.mattermost import User


@pytest.fixture(scope="module")
def two() -> Iterator[World]:
    world = World.create(timings=Timings.fast()).start()
    try:
        bob = User(world, "bob")
        for name in ("alpha", "beta"):
            bob.run(f"/cpn project create {name}")
            world.wait_idle(30)
            bob.run(f"/cpn repo add {name} api")
            world.wait_idle(30)
        yield world
    finally:
        world.stop()


def inbox_rows(world: World) -> int:
    assert world.bot is not None
    return int(world.bot.store.inbox_db.execute("SELECT count(*) FROM inbox").fetchone()[0])


def fixture(name: str) -> Any:
    return json.loads((fixtures_dir() / name).read_text())


def secret(world: World, source: str, slug: str) -> str:
    return derive(world.webhook_secrets[source].encode(), source, slug)


def gitlab_payload(event: str, owner: str) -> dict[str, Any]:
    name = {"Pipeline Hook": "gitlab_pipeline_event.json", "Job Hook": "gitlab_job_event.json"}[event]
    data = copy.deepcopy(fixture(name))
    path = f"forge/projects/{owner}/api"
    data.setdefault("project", {})["path_with_namespace"] = path
    if event == "Job Hook":
        data["project_name"] = path
    return data


@pytest.mark.parametrize("event", ["Pipeline Hook", "Job Hook"])
def test_a_gitlab_event_about_another_projects_repository_is_refused(two: World, event: str) -> None:
    before = inbox_rows(two)
    headers = {
        "Content-Type": "application/json",
        "X-Gitlab-Event": event,
        "X-Gitlab-Event-UUID": str(uuid.uuid4()),
        "X-Gitlab-Token": secret(two, "gitlab", "beta"),
    }
    forged = httpx.post(
        f"{two.bot_url}/hooks/gitlab?project=beta", json=gitlab_payload(event, "alpha"), headers=headers
    )
    assert forged.status_code == 403 and forged.json()["error"]
    assert inbox_rows(two) == before
    headers["X-Gitlab-Event-UUID"] = str(uuid.uuid4())
    own = httpx.post(f"{two.bot_url}/hooks/gitlab?project=beta", json=gitlab_payload(event, "beta"), headers=headers)
    assert own.status_code == 202


@pytest.mark.parametrize(
    ("header_key", "body_key", "status"), [("beta-api", "alpha-api", 403), ("beta-api", "beta-api", 202)]
)
def test_a_sonarqube_body_must_name_the_signing_projects_key(
    two: World, header_key: str, body_key: str, status: int
) -> None:
    before = inbox_rows(two)
    body = copy.deepcopy(fixture("sonarqube_webhook.json")["error"])
    body["project"] = {"key": body_key, "name": body_key, "url": "http://sonar.example/"}
    body["taskId"] = uuid.uuid4().hex
    raw = json.dumps(body).encode()
    signature = hmac.new(secret(two, "sonarqube", "beta").encode(), raw, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-SonarQube-Project": header_key,
        "X-Sonar-Webhook-HMAC-SHA256": signature,
    }
    answer = httpx.post(f"{two.bot_url}/hooks/sonarqube", content=raw, headers=headers)
    assert answer.status_code == status, answer.text
    assert inbox_rows(two) == before + (status == 202)


def test_a_gitlab_retry_with_a_new_event_uuid_is_deduplicated_on_its_idempotency_key(two: World) -> None:
    # gitlabhq/gitlabhq:app/services/web_hook_service.rb: a retry keeps its Idempotency-Key and
    # gets a fresh X-Gitlab-Event-UUID.
    key = str(uuid.uuid4())
    answers = []
    for _ in range(2):
        headers = {
            "Content-Type": "application/json",
            "X-Gitlab-Event": "Pipeline Hook",
            "X-Gitlab-Event-UUID": str(uuid.uuid4()),
            "Idempotency-Key": key,
            "X-Gitlab-Token": secret(two, "gitlab", "beta"),
        }
        payload = gitlab_payload("Pipeline Hook", "beta")
        answers.append(httpx.post(f"{two.bot_url}/hooks/gitlab?project=beta", json=payload, headers=headers))
    assert [a.status_code for a in answers] == [202, 202]
    assert [a.json()["duplicate"] for a in answers] == [False, True]
