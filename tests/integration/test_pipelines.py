"""Repository sync and pipeline notifications: webhooks in, one card per pipeline out."""

from __future__ import annotations

import copy
import json
import logging
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.sandbox.world import Timings, World
from bot.workflows.naming import derive
from services.emulators.fixtures import fixtures_dir
from services.emulators.gitlab_pipelines import FAKE_TOKEN
from tests.conftest import wait_for
from tests.integration.test_results import send_sonar
from tests.support.mattermost import User, channel_posts

FIXTURES = fixtures_dir()
Hook = Callable[..., httpx.Response]


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def project_secret(world: World, slug: str = "alpha") -> str:
    return derive(world.webhook_secrets["gitlab"].encode(), "gitlab", slug)


def send(
    world: World,
    event: str,
    payload: dict[str, Any],
    token: str | None = None,
    delivery: str | None = None,
    project: str | None = "alpha",
    raw: bytes | None = None,
) -> httpx.Response:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitLab/17.1.0-pre",
        "X-Gitlab-Event": event,
        # As GitLab: a fresh event UUID per request, an idempotency key stable across retries.
        "X-Gitlab-Event-UUID": str(uuid.uuid4()),
        "X-Gitlab-Instance": "https://gitlab.example.com",
        "Idempotency-Key": delivery or str(uuid.uuid4()),
    }
    if token is not None:
        headers["X-Gitlab-Token"] = token
    url = f"{world.bot_url}/hooks/gitlab" + (f"?project={project}" if project else "")
    return httpx.post(url, content=raw if raw is not None else json.dumps(payload).encode(), headers=headers)


def as_repo(payload: dict[str, Any], repo: str = "api", gitlab_project_id: int = 500) -> dict[str, Any]:
    """A fixture payload, re-addressed to the project's repository on the platform's GitLab."""
    data = copy.deepcopy(payload)
    path = f"forge/projects/alpha/{repo}"
    project = data.setdefault("project", {})
    project.update(
        {
            "id": gitlab_project_id,
            "path_with_namespace": path,
            "default_branch": "master",
            "web_url": f"https://gitlab.example.com/{path}",
        }
    )
    if "project_id" in data:
        data["project_id"] = gitlab_project_id
        data["project_name"] = path
    return data


def cards(world: World, channel: str = "equipe-alpha") -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(post, attachment) of every card in the channel."""
    found = []
    for post in channel_posts(world, channel):
        for attachment in (post.get("props") or {}).get("attachments") or []:
            found.append((post, attachment))
    return found


def pipeline_cards(world: World, pipeline_id: int, channel: str = "equipe-alpha") -> list[dict[str, Any]]:
    return [a for _, a in cards(world, channel) if f"pipeline #{pipeline_id} " in a.get("title", "")]


@pytest.fixture
def alpha(make_world: Callable[..., World]) -> World:
    """A project linked to equipe-alpha with one repository, and no pipeline yet."""
    world = make_world()
    bob = User(world, "bob")
    bob.run("/cpn project create alpha")
    world.wait_idle(30)
    bob.run("/cpn repo add alpha api")
    world.wait_idle(30)
    return world


# -- webhooks: authentication, parsing, durability --------------------------------------------------


def test_a_webhook_without_the_right_token_is_refused_and_nothing_is_stored(alpha: World) -> None:
    payload = as_repo(fixture("gitlab_pipeline_event.json"))
    before = alpha.store().count("inbox")
    for token in (None, "", "wrong-token", project_secret(alpha, "beta"), alpha.webhook_secrets["sonarqube"]):
        assert send(alpha, "Pipeline Hook", payload, token=token).status_code == 401
    assert alpha.store().count("inbox") == before


def test_an_event_that_cannot_be_stored_is_not_acknowledged(alpha: World, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    assert alpha.bot is not None

    async def locked(delivery: object) -> tuple[int, bool]:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(alpha.bot.inbox, "receive", locked)
    answer = send(alpha, "Pipeline Hook", as_repo(fixture("gitlab_pipeline_event.json")), token=project_secret(alpha))
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
    assert answer.json() == {"error": "the event could not be stored; send it again later"}  # no detail leaks


def test_malformed_json_is_a_400(alpha: World) -> None:
    for raw in (b"{not json", b"[1, 2]", b"\xff\xfe", b""):
        answer = send(alpha, "Pipeline Hook", {}, token=project_secret(alpha), raw=raw)
        assert answer.status_code == 400, raw


def test_the_fixture_pipeline_event_makes_one_card_with_its_stages_and_failure(alpha: World) -> None:
    payload = as_repo(fixture("gitlab_pipeline_event.json"))
    answer = send(alpha, "Pipeline Hook", payload, token=project_secret(alpha))
    assert answer.status_code == 202 and answer.json() == {"accepted": True, "duplicate": False}
    alpha.wait_idle()
    (card,) = pipeline_cards(alpha, 31)
    assert card["title"] == "✅ alpha / api — pipeline #31 réussi"
    # The link is rebuilt from the configured GitLab, not the body's "url" (http://example.com/…).
    assert alpha.bot is not None and alpha.bot.config.gitlab is not None
    gitlab = str(alpha.bot.config.gitlab.url).rstrip("/")
    assert card["title_link"] == f"{gitlab}/forge/projects/alpha/api/-/pipelines/31"
    text = card["text"]
    assert "**master** · `bcbb5ec3` test — User" in text
    assert "✅ build → ❌ test → ⏳ deploy" in text.splitlines()  # the fixture's jobs, stage by stage
    assert "En échec : `test-build`" in text


def test_the_fixture_job_event_and_push_event_are_accepted(alpha: World) -> None:
    job = as_repo(fixture("gitlab_job_event.json"))
    assert send(alpha, "Job Hook", job, token=project_secret(alpha)).status_code == 202
    push = as_repo(fixture("gitlab_push_event.json"))
    assert send(alpha, "Push Hook", push, token=project_secret(alpha)).status_code == 202
    alpha.wait_idle()
    # A created job on a branch that is not the default one: nothing to say yet (quiet by default).
    assert pipeline_cards(alpha, 2366) == []
    assert alpha.store().count("inbox", "status = 'done'") == 2


def test_unknown_events_and_projects_are_accepted_ignored_and_counted(alpha: World) -> None:
    assert send(alpha, "Note Hook", {"object_kind": "note"}, token=project_secret(alpha)).status_code == 202
    original = fixture("gitlab_pipeline_event.json")  # gitlab-org/gitlab-test: not a project of the bot
    master = alpha.webhook_secrets["gitlab"]
    assert send(alpha, "Pipeline Hook", original, token=master, project=None).status_code == 202
    alpha.wait_idle()
    metrics = httpx.get(f"{alpha.bot_url}/metrics").text
    assert 'cpn_events_ignored_total{reason="unknown_event",source="gitlab"} 1' in metrics
    assert 'cpn_events_ignored_total{reason="unknown_project",source="gitlab"} 1' in metrics
    assert not [c for _, c in cards(alpha) if "pipeline #" in c["title"]]  # no pipeline card


def test_the_same_delivery_twice_gives_one_card(alpha: World) -> None:
    payload = as_repo(fixture("gitlab_pipeline_event.json"))
    payload["object_attributes"]["ref"] = "master"
    delivery = str(uuid.uuid4())
    first = send(alpha, "Pipeline Hook", payload, token=project_secret(alpha), delivery=delivery)
    second = send(alpha, "Pipeline Hook", payload, token=project_secret(alpha), delivery=delivery)
    assert first.json()["duplicate"] is False and second.json()["duplicate"] is True
    alpha.wait_idle()
    assert len([p for p in channel_posts(alpha, "equipe-alpha") if "pipeline #31" in json.dumps(p)]) == 1


def job_event(
    status: str, job_id: int, name: str, stage: str, pipeline_id: int = 77, finished: str | None = None
) -> dict[str, Any]:
    payload = as_repo(fixture("gitlab_job_event.json"))
    payload.update(
        {
            "build_id": job_id,
            "build_name": name,
            "build_stage": stage,
            "build_status": status,
            "pipeline_id": pipeline_id,
            "ref": "master",
            "build_finished_at": finished,
            "build_failure_reason": "script_failure" if status == "failed" else None,
        }
    )
    return payload


def pipeline_event(status: str, pipeline_id: int = 77, ref: str = "master") -> dict[str, Any]:
    payload = as_repo(fixture("gitlab_pipeline_event.json"))
    attrs = payload["object_attributes"]
    attrs.update(
        {
            "id": pipeline_id,
            "status": status,
            "ref": ref,
            "stages": ["test", "build"],
            "finished_at": "2026-11-28 10:00:00 UTC" if status in ("success", "failed") else None,
        }
    )
    payload["builds"] = []
    return payload


def test_job_events_out_of_order_end_in_the_right_final_card(alpha: World) -> None:
    token = project_secret(alpha)
    events = [
        ("Job Hook", job_event("success", 1, "unit", "test", finished="2026-11-28T10:00:01Z")),
        ("Pipeline Hook", pipeline_event("success")),
        ("Job Hook", job_event("running", 2, "image", "build")),
        ("Job Hook", job_event("pending", 1, "unit", "test")),
        ("Job Hook", job_event("success", 2, "image", "build", finished="2026-11-28T10:00:02Z")),
        ("Pipeline Hook", pipeline_event("running")),
        ("Job Hook", job_event("created", 2, "image", "build")),
    ]
    for event, payload in events:
        assert send(alpha, event, payload, token=token).status_code == 202
    alpha.wait_idle()
    (card,) = pipeline_cards(alpha, 77)
    assert card["title"].startswith("✅") and "réussi" in card["title"]
    assert "✅ test → ✅ build" in card["text"]


def test_under_a_backlog_a_pipelines_final_hook_supersedes_its_earlier_events(alpha: World) -> None:
    from bot.inbox import Delivery
    from bot.webhooks import pipeline_subject

    final = pipeline_event("failed", 88)
    final["builds"] = [
        {"id": 1, "stage": "test", "name": "unit", "status": "failed", "failure_reason": "script_failure"},
        {"id": 2, "stage": "build", "name": "image", "status": "skipped"},
    ]
    events = [
        ("Pipeline Hook", pipeline_event("running", 88)),
        ("Job Hook", job_event("running", 1, "unit", "test", pipeline_id=88)),
        ("Job Hook", job_event("failed", 1, "unit", "test", pipeline_id=88, finished="2026-11-28T10:00:01Z")),
        ("Pipeline Hook", final),
        ("Push Hook", fixture("gitlab_push_event.json")),  # about no pipeline: never superseded
    ]

    async def arrive_together() -> None:  # as they wait in the inbox while the bot is behind
        assert alpha.bot is not None
        for event, payload in events:
            subject, closes = pipeline_subject(alpha.bot, event, payload)
            delivery = Delivery("gitlab", str(uuid.uuid4()), event, json.dumps(payload), {}, "alpha", subject, closes)
            alpha.bot.inbox.accept(delivery)

    alpha.run(arrive_together())
    alpha.wait_idle()
    store = alpha.store()
    statuses = [r[0] for r in store.inbox_db.execute("SELECT status FROM inbox ORDER BY id DESC LIMIT 5").fetchall()]
    assert statuses == ["done", "done", "superseded", "superseded", "superseded"]
    decided = store.db.execute("SELECT status, COUNT(*) FROM inbox_done GROUP BY status").fetchall()
    assert ("superseded", 3) in decided  # decided once: not processed after all
    assert alpha.bot is not None
    assert alpha.bot.metrics.value("cpn_events_processed_total", source="gitlab", status="superseded") == 3
    (card,) = pipeline_cards(alpha, 88)
    assert card["title"].startswith("❌") and "❌ test" in card["text"]
    replies = [p["message"] for p in channel_posts(alpha, "equipe-alpha") if "unit" in p["message"]]
    assert len(replies) == 1 and "/-/jobs/1)" in replies[0]  # the job's link, from the final hook


def test_an_event_decided_before_a_crash_but_not_yet_marked_in_the_inbox_is_not_processed_again(
    alpha: World,
) -> None:
    from bot.inbox import Delivery

    store = alpha.store()
    with store.transaction():  # its effects and its decision were committed in the main file…
        store.db.execute(
            "INSERT INTO inbox_done (source, delivery_id, status, error, processed_at) "
            "VALUES ('gitlab', 'crashed-1', 'done', '', 1.0)"
        )
    body = json.dumps(pipeline_event("failed", 91))

    async def still_pending() -> None:  # …the crash came before the inbox file was marked
        assert alpha.bot is not None
        alpha.bot.inbox.accept(Delivery("gitlab", "crashed-1", "Pipeline Hook", body, {}, "alpha"))

    alpha.run(still_pending())
    alpha.wait_idle()
    assert store.inbox_db.execute("SELECT status FROM inbox WHERE delivery_id = 'crashed-1'").fetchone() == ("done",)
    assert pipeline_cards(alpha, 91) == []  # its card is not posted a second time


def test_only_pipeline_and_non_scan_job_hooks_have_a_subject_and_only_a_final_one_closes_it(alpha: World) -> None:
    from bot.webhooks import pipeline_subject

    assert alpha.bot is not None
    bot = alpha.bot
    running, final = pipeline_event("running", 9), pipeline_event("success", 9)
    assert pipeline_subject(bot, "Pipeline Hook", running) == ("pipeline:500:9", False)
    assert pipeline_subject(bot, "Pipeline Hook", final) == ("pipeline:500:9", False)  # lists no job: closes nothing
    final["builds"] = [{"id": 1, "stage": "test", "name": "unit", "status": "success"}]
    assert pipeline_subject(bot, "Pipeline Hook", final) == ("pipeline:500:9", True)
    assert pipeline_subject(bot, "Job Hook", job_event("success", 1, "unit", "test", pipeline_id=9)) == (
        "pipeline:500:9",
        False,
    )
    assert pipeline_subject(bot, "Job Hook", job_event("success", 3, "trivy", "scan", pipeline_id=9)) == ("", False)
    assert pipeline_subject(bot, "Push Hook", fixture("gitlab_push_event.json")) == ("", False)


# -- failures, subscriptions, privacy ---------------------------------------------------------------


def run_pipeline(world: World, scenario: str = "success", branch: str | None = None) -> None:
    gitlab = world.states["gitlab"]
    gitlab.scenarios["forge/projects/alpha/api"] = scenario
    command = "/cpn sync alpha api" + (f" --branch {branch}" if branch else "")
    User(world, "bob").run(command)
    wait_for(lambda: _all_pipelines_done(world), timeout=20, what="the pipelines")
    world.wait_idle()


def _all_pipelines_done(world: World) -> bool:
    """GitLab ran every pipeline and delivered every webhook about them."""
    gitlab = world.states["gitlab"]
    pipelines = [
        p for path in ("forge/projects/alpha/mirror", "forge/projects/alpha/api") for p in gitlab.pipelines_of(path)
    ]
    return len(pipelines) >= 2 and gitlab.quiet


@pytest.fixture
def synced(make_world: Callable[..., World]) -> World:
    world = make_world()
    bob = User(world, "bob")
    bob.run("/cpn project create alpha")
    world.wait_idle(30)
    bob.run("/cpn repo add alpha api --url https://github.com/ministere/api.git")
    wait_for(lambda: _all_pipelines_done(world), timeout=20, what="the first sync")
    world.wait_idle()
    return world


def test_a_sync_from_chat_ends_in_one_thread_with_the_build_it_caused(synced: World) -> None:
    answer = User(synced, "bob").run("/cpn sync alpha api --branch main")
    assert "Synchronisation de `api` lancée : pipeline [#" in answer["text"]
    wait_for(lambda: _all_pipelines_done(synced), timeout=20)
    final = "✅ test → ✅ sonar → ✅ build → ✅ trivy → ✅ push"
    wait_for(
        lambda: sum(final in json.dumps(p, ensure_ascii=False) for p in channel_posts(synced, "equipe-alpha")) == 2,
        timeout=10,
        what="the second build's final card",
    )
    synced.wait_idle()
    posts = channel_posts(synced, "equipe-alpha")
    syncs = [p for p in posts if "synchronisation de api (main) réussie" in json.dumps(p, ensure_ascii=False)]
    assert len(syncs) == 1
    thread = [p for p in posts if p["root_id"] == syncs[0]["id"]]
    assert any("Synchronisation terminée → build" in p["message"] for p in thread)
    builds = [p for p in thread if "pipeline #" in json.dumps(p)]
    assert len(builds) == 1 and final in json.dumps(builds[0], ensure_ascii=False)
    assert "Déclenché par @bob" in json.dumps(syncs[0], ensure_ascii=False)


def test_a_failed_build_gets_a_reply_with_the_end_of_its_log_masked(synced: World) -> None:
    run_pipeline(synced, "fail:build", branch="main")
    posts = channel_posts(synced, "equipe-alpha")
    replies = [p for p in posts if p["message"].startswith("❌ Le job `build`")]
    assert len(replies) == 1
    reply = replies[0]["message"]
    assert "[job #" in reply and "/-/jobs/" in reply
    assert FAKE_TOKEN not in reply and "glpat-***" in reply
    assert reply.count("\n") <= 40 + 4
    failed_card = next(
        p
        for p in posts
        if p["root_id"] and "pipeline #" in json.dumps(p) and "en échec" in json.dumps(p, ensure_ascii=False)
    )
    assert replies[0]["root_id"] == failed_card["root_id"]  # in the same thread as the card


def _last_sync_card(world: World) -> dict[str, Any]:
    return [a for _, a in cards(world) if "synchronisation de api (main)" in a.get("title", "")][-1]


@pytest.mark.parametrize(
    ("pipeline", "quality", "title", "color", "first_line"),
    [
        ("success", "passed", "✅ alpha — synchronisation de api (main) réussie", "#18753C", "Déclenché par @bob"),
        (
            "fail:trivy",
            "failed",
            "❌ alpha — synchronisation de api (main) réussie, mais build en échec (`trivy`)",
            "#CE0500",
            "❌ build en échec (`trivy`) · ❌ quality gate en échec",
        ),
    ],
    ids=["green", "trivy-and-gate-failed"],
)
def test_the_sync_card_tells_the_worst_of_its_thread(
    synced: World, pipeline: str, quality: str, title: str, color: str, first_line: str
) -> None:
    """With the thread collapsed, the team sees the sync's card only: it must not be green over a failure."""
    synced.scenario("forge/projects/alpha/api", pipeline=pipeline, quality=quality)
    run_pipeline(synced, pipeline, branch="main")
    wait_for(
        lambda: sum("— quality gate " in a.get("title", "") for _, a in cards(synced)) >= 2,  # the first sync's, ours
        timeout=10,
        what="the second quality gate, in the thread",
    )
    synced.wait_idle()
    card = _last_sync_card(synced)
    assert (card["title"], card["color"], card["text"].splitlines()[0]) == (title, color, first_line)


def test_a_pipeline_card_without_a_sync_turns_red_when_its_commits_quality_gate_fails(alpha: World) -> None:
    payload = pipeline_event("success", 41)
    assert send(alpha, "Pipeline Hook", payload, token=project_secret(alpha)).status_code == 202
    alpha.wait_idle()
    (card,) = pipeline_cards(alpha, 41)
    assert card["title"] == "✅ alpha / api — pipeline #41 réussi"
    gate = fixture("sonarqube_webhook.json")["error"]
    gate["project"] = {"key": "alpha-api", "name": "alpha-api"}
    gate["branch"]["name"] = "master"
    gate["revision"] = payload["object_attributes"]["sha"]  # the pipeline's commit: the gate is in its thread
    assert send_sonar(alpha, json.dumps(gate).encode()).status_code == 202
    alpha.wait_idle()
    (card,) = pipeline_cards(alpha, 41)
    assert card["title"] == "❌ alpha / api — pipeline #41 réussi, mais quality gate en échec"
    assert (card["color"], card["text"].splitlines()[0]) == ("#CE0500", "❌ quality gate en échec")


def test_quiet_by_default_failures_everywhere_successes_on_the_default_branch_only(alpha: World) -> None:
    token = project_secret(alpha)
    send(alpha, "Pipeline Hook", pipeline_event("success", 101, ref="feature/x"), token=token)
    send(alpha, "Pipeline Hook", pipeline_event("failed", 102, ref="feature/y"), token=token)
    send(alpha, "Pipeline Hook", pipeline_event("success", 103, ref="master"), token=token)
    alpha.wait_idle()
    assert pipeline_cards(alpha, 101) == []
    assert len(pipeline_cards(alpha, 102)) == 1
    assert len(pipeline_cards(alpha, 103)) == 1


def test_an_explicit_subscription_chooses_events_and_branches(alpha: World) -> None:
    bob = User(alpha, "bob")
    outside = bob.run("/cpn subscribe alpha", channel="equipe-beta")["text"]
    assert "n'est pas membre de ce canal" in outside  # the bot is not in equipe-beta
    bob.run("/cpn unsubscribe alpha", channel="equipe-beta")
    assert (
        "Abonnement"
        in bob.run(
            "/cpn subscribe alpha --events pipeline,push --branches release/* --failures-only", channel="prive-gamma"
        )["text"]
    )
    token = project_secret(alpha)
    send(alpha, "Pipeline Hook", pipeline_event("failed", 201, ref="release/2.1"), token=token)
    send(alpha, "Pipeline Hook", pipeline_event("success", 202, ref="release/2.1"), token=token)
    send(alpha, "Pipeline Hook", pipeline_event("failed", 203, ref="main"), token=token)
    push = as_repo(fixture("gitlab_push_event.json"))
    push["ref"] = "refs/heads/release/2.1"
    send(alpha, "Push Hook", push, token=token)
    alpha.wait_idle()
    assert len(pipeline_cards(alpha, 201, "prive-gamma")) == 1
    assert pipeline_cards(alpha, 202, "prive-gamma") == []
    assert pipeline_cards(alpha, 203, "prive-gamma") == []
    assert len(pipeline_cards(alpha, 203, "equipe-alpha")) == 1  # the linked channel keeps its defaults
    assert any("a poussé 4 commits" in p["message"] for p in channel_posts(alpha, "prive-gamma"))
    assert not any("a poussé" in p["message"] for p in channel_posts(alpha, "equipe-alpha"))
    listing = bob.run("/cpn subscriptions", channel="prive-gamma")["text"]
    assert "**alpha**" in listing and "`release/*`" in listing and "échecs seulement" in listing
    bob.run("/cpn unsubscribe alpha", channel="prive-gamma")
    send(alpha, "Pipeline Hook", pipeline_event("failed", 204, ref="release/2.2"), token=token)
    alpha.wait_idle()
    assert pipeline_cards(alpha, 204, "prive-gamma") == []


def test_a_private_project_stays_out_of_public_channels_unless_its_owner_allows_it(
    make_world: Callable[..., World],
) -> None:
    world = make_world()
    bob = User(world, "bob")
    bob.run("/cpn project create alpha --private")
    world.wait_idle(30)
    bob.run("/cpn repo add alpha api")
    bob.run("/cpn member add alpha @carol --role admin")
    world.wait_idle(30)
    token = project_secret(world)
    send(world, "Pipeline Hook", pipeline_event("failed", 301), token=token)
    world.wait_idle()
    assert pipeline_cards(world, 301) == []  # equipe-alpha is public
    bob.run("/cpn project link alpha", channel="prive-gamma")
    send(world, "Pipeline Hook", pipeline_event("failed", 302), token=token)
    world.wait_idle()
    assert len(pipeline_cards(world, 302, "prive-gamma")) == 1
    assert "propriétaire" in User(world, "carol").run("/cpn subscribe alpha --allow-public")["text"]
    bob.run("/cpn subscribe alpha --allow-public")
    send(world, "Pipeline Hook", pipeline_event("failed", 303), token=token)
    world.wait_idle()
    assert len(pipeline_cards(world, 303)) == 1


# -- the sync API -----------------------------------------------------------------------------------


def api_token(world: World, project: str = "alpha") -> str:
    shown = User(world, "bob").run(f"/cpn token create {project}")["text"]
    return next(line for line in shown.splitlines() if line.startswith("cpn_"))


def sync_api(
    world: World, project: str, repo: str, token: str | None, body: Any = None, raw: bytes | None = None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    content = raw if raw is not None else json.dumps(body if body is not None else {}).encode()
    return httpx.post(
        f"{world.bot_url}/api/v1/projects/{project}/repositories/{repo}/sync",
        content=content,
        headers={**headers, "Content-Type": "application/json"},
    )


def test_the_sync_api_auth_matrix(synced: World) -> None:
    token = api_token(synced)
    bob = User(synced, "bob")
    bob.run("/cpn project create beta")
    synced.wait_idle(30)
    other = api_token(synced, "beta")
    assert sync_api(synced, "alpha", "api", None).status_code == 401
    assert sync_api(synced, "alpha", "api", "cpn_not-a-real-token").status_code == 401
    assert sync_api(synced, "alpha", "api", other).status_code == 403
    assert sync_api(synced, "nope", "api", token).status_code == 403
    missing = sync_api(synced, "alpha", "nope", token)
    assert missing.status_code == 404 and missing.json()["repositories"] == ["api"]
    for body, raw, status in (
        ({"branch": "main", "all": True}, None, 422),
        ({"branch": "bad..name"}, None, 422),
        ({"branch": 3}, None, 400),  # not the shape of a sync request: 400, the field named
        ({"ref": "main"}, None, 400),
        (None, b"{nope", 400),
    ):
        answer = sync_api(synced, "alpha", "api", token, body, raw)
        assert answer.status_code == status, (body, raw)
        assert answer.json()["error"]
    accepted = sync_api(synced, "alpha", "api", token, {"branch": "main"})
    assert accepted.status_code == 202
    assert accepted.json()["pipeline_id"] > 0 and "/pipelines/" in accepted.json()["web_url"]
    wait_for(
        lambda: any(
            "Demandé par la CI de l'équipe" in json.dumps(p, ensure_ascii=False)
            for p in channel_posts(synced, "equipe-alpha")
        ),
        what="the CI sync card",
    )
    rows = list(synced.store().db.table("api_tokens").rows_where("revoked_at IS NULL AND project_id = 1"))
    bob.run(f"/cpn token revoke alpha {rows[0]['id']}")
    assert sync_api(synced, "alpha", "api", token, {"branch": "main"}).status_code == 401


def test_the_sync_api_is_rate_limited_per_token(make_world: Callable[..., World]) -> None:
    world = make_world(config_overrides={"gitlab": {"sync_rate_per_minute": 2}})
    bob = User(world, "bob")
    bob.run("/cpn project create alpha")
    world.wait_idle(30)
    bob.run("/cpn repo add alpha api --url https://github.com/ministere/api.git")
    world.wait_idle(30)
    token = api_token(world)
    codes = [sync_api(world, "alpha", "api", token, {"all": True}).status_code for _ in range(3)]
    assert codes == [202, 202, 429]
    limited = sync_api(world, "alpha", "api", token, {"all": True})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert api_token(world) != token  # another token has its own budget
    assert sync_api(world, "alpha", "api", api_token(world), {"all": True}).status_code == 202


# -- the polling fallback and crash safety ------------------------------------------------------------


def _synced_then_deaf(world: World) -> tuple[httpx.Client, dict[str, Any]]:
    """alpha with its repository api synced once, then every webhook of its group deleted: a GitLab
    client and the repository as GitLab describes it."""
    bob = User(world, "bob")
    bob.run("/cpn project create alpha")
    world.wait_idle(30)
    bob.run("/cpn repo add alpha api --url https://github.com/ministere/api.git")  # synced: it has a CI file
    wait_for(lambda: _all_pipelines_done(world), timeout=20, what="the first sync")
    world.wait_idle()
    gitlab = httpx.Client(
        base_url=f"{world.servers['gitlab'].url}/api/v4", headers={"PRIVATE-TOKEN": world.service_tokens["gitlab"]}
    )
    group = "forge%2Fprojects%2Falpha"
    for hook in gitlab.get(f"/groups/{group}/hooks").json():  # the webhooks are lost from now on
        gitlab.delete(f"/groups/{group}/hooks/{hook['id']}").raise_for_status()
    project: dict[str, Any] = gitlab.get("/projects/forge%2Fprojects%2Falpha%2Fapi").json()
    return gitlab, project


def test_a_lost_webhook_still_ends_in_the_right_final_card_without_a_duplicate(
    make_world: Callable[..., World],
) -> None:
    world = make_world(config_overrides={"gitlab": {"poll_seconds": 0, "poll_stale_seconds": 0.01}})
    gitlab, project = _synced_then_deaf(world)
    started = gitlab.post(f"/projects/{project['id']}/pipeline", json={"ref": "main"}).json()
    # The bot had heard that it was running, then nothing more.
    event = pipeline_event("running", started["id"], ref="main")
    event["project"].update({"id": project["id"], "default_branch": "main"})
    event["object_attributes"]["url"] = started["web_url"]
    assert send(world, "Pipeline Hook", event, token=project_secret(world)).status_code == 202
    world.wait_idle()
    (card,) = pipeline_cards(world, started["id"])
    assert "en cours" in card["title"]
    wait_for(
        lambda: gitlab.get(f"/projects/{project['id']}/pipelines/{started['id']}").json()["status"] == "success",
        timeout=20,
        what="GitLab finished the pipeline",
    )

    async def poll() -> None:
        from bot.notifications import poll_pipelines

        assert world.bot is not None
        await poll_pipelines(world.bot)

    time.sleep(0.05)
    world.run(poll())
    world.wait_idle()
    (card,) = pipeline_cards(world, started["id"])  # the same card, edited: no duplicate
    assert "réussi" in card["title"] and "✅ test" in card["text"]


def test_a_pipeline_no_webhook_told_about_is_found_by_polling_in_turns_and_posted_once(
    make_world: Callable[..., World],
) -> None:
    # One repository per polling round: alpha's two (mirror, api) take two rounds.
    world = make_world(config_overrides={"gitlab": {"poll_seconds": 0, "poll_batch": 1}})
    gitlab, project = _synced_then_deaf(world)
    started = gitlab.post(f"/projects/{project['id']}/pipeline", json={"ref": "main"}).json()
    wait_for(
        lambda: gitlab.get(f"/projects/{project['id']}/pipelines/{started['id']}").json()["status"] == "success",
        timeout=20,
        what="GitLab finished the pipeline",
    )

    def poll() -> None:
        async def one_round() -> None:
            from bot.notifications import poll_pipelines

            assert world.bot is not None
            await poll_pipelines(world.bot)

        world.run(one_round())
        world.wait_idle()

    poll()  # looks at "alpha/api" (before "alpha/mirror")
    (card,) = pipeline_cards(world, started["id"])
    assert "réussi" in card["title"] and "✅ test" in card["text"]
    poll()  # "alpha/mirror": nothing there
    poll()  # "alpha/api" again: already known
    assert len(pipeline_cards(world, started["id"])) == 1


def test_polling_forgets_a_pipeline_gitlab_no_longer_knows_and_moves_a_failing_one_to_the_back(
    make_world: Callable[..., World], caplog: pytest.LogCaptureFixture
) -> None:
    from bot.notifications import poll_pipelines
    from bot.workflows.pipelines import PipelineBook, pipeline_key

    world = make_world(config_overrides={"gitlab": {"poll_seconds": 0}})
    gitlab, project = _synced_then_deaf(world)
    book = PipelineBook(world.store())
    (synced,) = book.store.rows("SELECT key FROM pipelines WHERE gitlab_project_id = ?", (project["id"],))
    seen = book.get(synced["key"])
    assert seen is not None
    started = gitlab.post(f"/projects/{project['id']}/pipeline", json={"ref": "main"}).json()  # no hook will tell
    world.states["gitlab"].faults.fail(f"GET /api/v4/projects/{project['id']}/pipelines/{started['id']}", 500)
    gone, failing = copy.copy(seen), copy.copy(seen)
    gone.key, gone.pipeline_id = pipeline_key(project["id"], 987654), 987654
    failing.key, failing.pipeline_id = pipeline_key(project["id"], started["id"]), started["id"]
    for state in (gone, failing):
        state.status = "running"
        book.save(state)
    book.store.db.execute("UPDATE pipelines SET updated_at = 1 WHERE key IN (?, ?)", (gone.key, failing.key))

    async def one_round() -> None:
        assert world.bot is not None
        await poll_pipelines(world.bot)

    with caplog.at_level(logging.INFO, logger="cpn.notifications"):
        world.run(one_round())
    said = {(r.levelno, r.getMessage(), r.__dict__.get("fields", {}).get("pipeline")) for r in caplog.records}
    assert {(logging.INFO, "pipeline gone", gone.key), (logging.WARNING, "polling failed", failing.key)} <= said
    assert book.get(gone.key) is None  # a 404 is for ever: not asked again
    after = book.get(failing.key)
    assert after is not None and after.status == "running" and after.updated_at > 1  # behind the others now


@pytest.fixture
def killed_world(tmp_path: Path) -> Iterator[World]:
    world = World(tmp_path, timings=Timings.fast(), bot_in_process=False).start()
    try:
        yield world
    finally:
        world.stop()


def test_a_bot_killed_between_the_202_and_the_post_posts_the_card_after_restart_once(killed_world: World) -> None:
    world = killed_world
    command = world.serve_command()
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: _healthy(world), timeout=20, what="the bot")
    bob = User(world, "bob")
    bob.run("/cpn project create alpha")
    bob.run("/cpn repo add alpha api")
    store = world.store()
    wait_for(lambda: store.count("operations", "status = 'done'") == 2, timeout=20, what="the onboarding")
    wait_for(lambda: store.count("outbox", "status = 'pending'") == 0, timeout=20)
    world.states["mattermost"].faults.down = True  # the card cannot go out before the crash
    answer = send(world, "Pipeline Hook", pipeline_event("failed", 401), token=project_secret(world))
    assert answer.status_code == 202
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    world.states["mattermost"].faults.down = False
    second = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(pipeline_cards(world, 401)) == 1, timeout=30, what="the card after restart")
        wait_for(
            lambda: (
                store.count("outbox", "status = 'pending'") == 0 and store.count("inbox", "status = 'pending'") == 0
            ),
            timeout=20,
        )
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(10)
    assert len(pipeline_cards(world, 401)) == 1


def _healthy(world: World) -> bool:
    try:
        return httpx.get(f"{world.bot_url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_pipeline_command_lists_the_last_pipelines(synced: World) -> None:
    run_pipeline(synced, "fail:test", branch="main")
    text = User(synced, "carol").run("/cpn pipeline alpha api")["text"]
    assert "réservé" in text  # carol is not a member
    text = User(synced, "bob").run("/cpn pipeline alpha api")["text"]
    assert "Derniers pipelines de alpha / api" in text
    assert "❌" in text and "[test](" in text and "✅" in text
    assert "Dépôt inconnu" in User(synced, "bob").run("/cpn pipeline alpha nope")["text"]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"branch": ' + b"[" * 5000 + b"]" * 5000 + b"}", ""),  # RecursionError → 500 before
        (b'["main"]', ""),
        (b'"main"', ""),
        (b'{"branch": "\\ud800"}', ""),
        (b'{"branch": 1e999}', ""),
        (b'{"branch": ["main"]}', "branch"),
        (b'{"all": "true"}', "all"),
        (b'{"branch": "' + b"b" * 300 + b'"}', "branch"),
        (b"\xff\xfe", ""),
    ],
)
def test_a_sync_request_body_of_the_wrong_shape_is_a_400_with_a_reason(synced: World, raw: bytes, field: str) -> None:
    answer = sync_api(synced, "alpha", "api", api_token(synced), raw=raw)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] and answer.json()["field"] == field


def test_a_builds_scan_names_the_image_as_pushed_to_the_registry_not_the_scanned_file(synced: World) -> None:
    """The trivy job scans ``${IMAGE_REPOSITORY}:${CI_COMMIT_SHORT_SHA}``: its card, its thread and
    ``/cpn scan`` name that image (``registry/project/repo:tag@sha256:…``), as people pull it."""
    gitlab = synced.states["gitlab"]
    build = gitlab.pipelines_of("forge/projects/alpha/api")[-1]
    registry = synced.servers[synced.registry_kind].url.removeprefix("http://")
    reference = f"{registry}/alpha/api:{build.sha[:8]}@sha256:"
    scans = [p for p in channel_posts(synced, "equipe-alpha") if "Trivy" in json.dumps(p, ensure_ascii=False)]
    assert scans, "no scan card after the first build"
    shown = json.dumps(scans, ensure_ascii=False)
    assert reference in shown
    assert ".tar.gz" not in shown and "trivy-test-images" not in shown
    listing = User(synced, "bob").run("/cpn scan alpha")["text"]
    assert f"{registry}/alpha/api" in listing and "trivy-test-images" not in listing
    # the registry holds the pushed image under the digest the report names
    digest = shown.split(reference, 1)[1][:12]
    repository = synced.states["quay"].repository("alpha", "api")
    assert any(d.startswith("sha256:" + digest) for d in repository.manifests)
