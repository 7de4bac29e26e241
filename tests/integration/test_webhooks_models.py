"""Webhook bodies against their models: refused at the edge with the field named, or never failing after."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import webhook_models as models
from bot.sandbox.world import World
from bot.workflows.naming import derive
from services.emulators.fixtures import fixtures_dir
from tests.support.mattermost import User
from tests.support.model_strategies import for_model
from tests.support.worlds import alpha_with_api

PATH = "forge/projects/alpha/api"


def fixture(name: str) -> Any:
    return json.loads((fixtures_dir() / name).read_text())


@pytest.fixture(scope="module")
def alpha() -> Iterator[World]:
    """One bot with project alpha and its repository api, for every case of this file."""
    with alpha_with_api() as world:
        yield world


@pytest.mark.parametrize(
    ("model", "name", "part"),
    [
        (models.PipelineHook, "gitlab_pipeline_event.json", None),
        (models.JobHook, "gitlab_job_event.json", None),
        (models.PushHook, "gitlab_push_event.json", None),
        (models.SonarQubeHook, "sonarqube_webhook.json", "ok"),
        (models.SonarQubeHook, "sonarqube_webhook.json", "error"),
        (models.TrivyReport, "trivy_image_report.json", None),
        (models.TrivyReport, "trivy_fs_report.json", None),
    ],
)
def test_the_real_fixtures_validate(model: type[models.Model], name: str, part: str | None) -> None:
    body = fixture(name)
    models.check(model, body[part] if part else body)


# -- the edge --------------------------------------------------------------------------------------


def inbox_rows(world: World) -> int:
    return world.store().count("inbox")


def gitlab(world: World, event: str, raw: bytes) -> httpx.Response:
    token = derive(world.webhook_secrets["gitlab"].encode(), "gitlab", "alpha")
    headers = {"Content-Type": "application/json", "X-Gitlab-Event": event, "X-Gitlab-Token": token}
    return httpx.post(f"{world.bot_url}/hooks/gitlab?project=alpha", content=raw, headers=headers)


def on_repo(payload: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(payload)
    data.setdefault("project", {}).update({"id": 500, "path_with_namespace": PATH})
    return data


def changed(payload: dict[str, Any], path: str, value: Any) -> bytes:
    data = on_repo(payload)
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[int(last) if isinstance(node, list) else last] = value
    return json.dumps(data).encode()


PIPELINE = fixture("gitlab_pipeline_event.json")
JOB = fixture("gitlab_job_event.json")
PUSH = fixture("gitlab_push_event.json")
MR = {"object_kind": "merge_request", "object_attributes": {"iid": 1, "title": "t"}, "project": {}}
NESTED = b'{"project": ' + b'{"a": ' * 200 + b"1" + b"}" * 201

GITLAB_CASES = [
    ("Pipeline Hook", changed(PIPELINE, "object_attributes.id", "31"), "object_attributes.id"),
    ("Pipeline Hook", changed(PIPELINE, "object_attributes.id", 2**63), "object_attributes.id"),
    ("Pipeline Hook", changed(PIPELINE, "object_attributes.stages", "build"), "object_attributes.stages"),
    ("Pipeline Hook", changed(PIPELINE, "object_attributes.duration", "63"), "object_attributes.duration"),
    ("Pipeline Hook", changed(PIPELINE, "builds.0.name", ["x"]), "builds.0.name"),
    ("Pipeline Hook", changed(PIPELINE, "builds.0.allow_failure", 0), "builds.0.allow_failure"),
    ("Pipeline Hook", changed(PIPELINE, "commit", "bcbb5ec3"), "commit"),
    ("Pipeline Hook", changed(PIPELINE, "object_attributes.ref", "m" * 5000), "object_attributes.ref"),
    ("Job Hook", changed(JOB, "build_id", True), "build_id"),
    ("Job Hook", changed(JOB, "pipeline_id", -1), "pipeline_id"),
    ("Job Hook", changed(JOB, "project", [PATH]), "project"),
    ("Push Hook", changed(PUSH, "commits", {"id": "x"}), "commits"),
    ("Push Hook", changed(PUSH, "total_commits_count", 1e300), "total_commits_count"),
    ("Merge Request Hook", changed(MR, "object_attributes.iid", "1"), "object_attributes.iid"),
    ("Merge Request Hook", changed(MR, "object_attributes.url", {"href": "x"}), "object_attributes.url"),
    ("Push Hook", NESTED, ""),
    ("Push Hook", b'{"total_commits_count": 1e999}', ""),
    ("Push Hook", b'{"user_name": "\\ud800"}', ""),
]


@pytest.mark.parametrize(("event", "raw", "field"), GITLAB_CASES)
def test_a_gitlab_body_of_the_wrong_shape_is_a_400_naming_the_field_and_nothing_is_stored(
    alpha: World, event: str, raw: bytes, field: str
) -> None:
    before = inbox_rows(alpha)
    answer = gitlab(alpha, event, raw)
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == field and answer.json()["error"]
    assert inbox_rows(alpha) == before


def sonar(world: World, body: dict[str, Any]) -> httpx.Response:
    raw = json.dumps(body).encode()
    secret = derive(world.webhook_secrets["sonarqube"].encode(), "sonarqube", "alpha")
    headers = {
        "Content-Type": "application/json",
        "X-SonarQube-Project": "alpha-api",
        "X-Sonar-Webhook-HMAC-SHA256": hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest(),
    }
    return httpx.post(f"{world.bot_url}/hooks/sonarqube", content=raw, headers=headers)


def test_sonarqube_and_argocd_bodies_of_the_wrong_shape_are_400s_and_nothing_is_stored(alpha: World) -> None:
    before = inbox_rows(alpha)
    body = copy.deepcopy(fixture("sonarqube_webhook.json")["error"])
    body["project"]["key"] = "alpha-api"
    body["qualityGate"]["conditions"] = "ERROR"
    answer = sonar(alpha, body)
    assert answer.status_code == 400 and answer.json()["field"] == "qualityGate.conditions", answer.text
    body["qualityGate"]["conditions"] = []
    body["branch"]["isMain"] = "false"
    assert sonar(alpha, body).json()["field"] == "branch.isMain"
    argo = alpha.webhook_secrets["argocd"]
    for payload, field in ((["app"], ""), ({"app": 7, "event": "on-deployed"}, "app"), ({"event": "x"}, "app")):
        answer = httpx.post(f"{alpha.bot_url}/hooks/argocd", json=payload, headers={"X-CPN-Token": argo})
        assert answer.status_code == 400 and answer.json()["field"] == field, answer.text
    assert inbox_rows(alpha) == before


def test_a_trivy_report_with_a_wrong_top_level_is_a_400_and_nothing_is_stored(alpha: World) -> None:
    shown = User(alpha, "bob").run("/cpn token create alpha")["text"]
    token = next(line for line in shown.splitlines() if line.startswith("cpn_"))
    before = inbox_rows(alpha)
    report = fixture("trivy_image_report.json")
    report["ArtifactName"] = {"name": "alpine"}
    answer = httpx.post(
        f"{alpha.bot_url}/hooks/trivy",
        params={"project": "alpha", "repo": "api"},
        content=json.dumps(report).encode(),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 400 and answer.json()["field"] == "ArtifactName", answer.text
    assert inbox_rows(alpha) == before


# -- the worker: what passed the edge never fails for its shape --------------------------------------

STATUSES = ("created", "pending", "running", "success", "failed", "canceled", "skipped", "manual")
PATHS = (PATH, "forge/projects/alpha/mirror", "forge/projects/alpha/other", "elsewhere/x")
STEER = {
    "status": st.sampled_from(STATUSES) | st.text(max_size=10),
    "build_status": st.sampled_from(STATUSES),
    "path_with_namespace": st.sampled_from(PATHS),
    "project_name": st.sampled_from(PATHS),
    "build_name": st.sampled_from(("unit", "trivy-fs", "@all")) | st.text(max_size=20),
    "ref": st.sampled_from(("main", "master", "refs/heads/main")) | st.text(max_size=30),
    "action": st.sampled_from(("open", "merge", "close")) | st.text(max_size=10),
    "target_branch": st.sampled_from(("main", "master")),
    "id": st.integers(0, 50) | st.integers(0, 2**63 - 1),
    "pipeline_id": st.integers(0, 50),
    "project_id": st.integers(0, 600) | st.just(500),
}
EVENTS = st.sampled_from(sorted(models.GITLAB_HOOKS)).flatmap(
    lambda event: st.tuples(st.just(event), for_model(models.GITLAB_HOOKS[event], STEER))
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(drawn=st.lists(EVENTS, min_size=1, max_size=4))
def test_every_gitlab_event_the_models_accept_goes_through_the_worker_without_an_exception(
    alpha: World, drawn: list[tuple[str, dict[str, Any]]]
) -> None:
    from bot.inbox import InboundEvent
    from bot.notifications import on_gitlab_event, refresh_cards

    bot = alpha.bot
    assert bot is not None
    events = []
    for number, (event, payload) in enumerate(drawn):
        models.check(models.gitlab_model(event), payload)  # the draw is one the edge lets through
        body = json.dumps(payload)
        events.append(InboundEvent(number, "gitlab", f"h{number}", event, "alpha", {}, body))

    async def through_the_worker() -> None:
        for event in events:
            with bot.store.transaction():
                await on_gitlab_event(event, bot)
        await refresh_cards(bot)

    alpha.run(through_the_worker())


OTHERS = st.one_of(
    st.tuples(
        st.just("sonarqube"),
        for_model(
            models.SonarQubeHook,
            {
                "key": st.sampled_from(("alpha-api", "alpha-other", "beta-api")),
                "status": st.sampled_from(("OK", "ERROR", "SUCCESS", "FAILED", "NONE")) | st.text(max_size=8),
                "name": st.sampled_from(("main", "feature/x")) | st.text(max_size=20),
            },
        ),
    ),
    st.tuples(
        st.just("argocd"),
        for_model(
            models.ArgoCDHook,
            {
                "app": st.sampled_from(("alpha-dev-api", "alpha-prod-api", "nope")) | st.text(max_size=20),
                "event": st.sampled_from(("on-deployed", "on-health-degraded", "on-sync-failed")),
            },
        ),
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(drawn=st.lists(OTHERS, min_size=1, max_size=3))
def test_every_sonarqube_and_argocd_body_the_models_accept_goes_through_the_worker_without_an_exception(
    alpha: World, drawn: list[tuple[str, dict[str, Any]]]
) -> None:
    from bot.deployments import on_argocd_event
    from bot.inbox import InboundEvent
    from bot.results import on_quality_gate

    bot = alpha.bot
    assert bot is not None
    handlers = {"sonarqube": on_quality_gate, "argocd": on_argocd_event}
    checked: dict[str, type[models.Model]] = {"sonarqube": models.SonarQubeHook, "argocd": models.ArgoCDHook}
    events = []
    for number, (source, payload) in enumerate(drawn):
        models.check(checked[source], payload)
        events.append((source, InboundEvent(number, source, f"o{number}", "event", "alpha", {}, json.dumps(payload))))

    async def through_the_worker() -> None:
        for source, event in events:
            with bot.store.transaction():
                await handlers[source](event, bot)

    alpha.run(through_the_worker())
