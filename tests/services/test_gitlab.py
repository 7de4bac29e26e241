"""The GitLab adapter driven against the GitLab emulator on loopback."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from services.base import Ensured
from services.emulators.base import EmulatorServer
from services.emulators.gitlab import State, create_app
from services.errors import Failure, ServiceError
from services.gitlab import GitLab, Group, Pipeline, token_expiry

_names = itertools.count(1)
DEVELOPER, MAINTAINER = 30, 40


def unique(prefix: str) -> str:
    return f"{prefix}{next(_names)}"


@pytest.fixture(scope="module")
def state() -> State:
    created = State()
    created.timings.job_seconds = 0.005
    created.timings.stuck_timeout_seconds = 0.1
    created.add_group("forge")
    return created


@pytest.fixture(scope="module")
def server(state: State) -> Iterator[EmulatorServer]:
    with EmulatorServer(create_app(state), name="gitlab-emulator") as running:
        yield running


@pytest.fixture(autouse=True)
def _clean(state: State) -> Iterator[None]:
    yield
    state.faults.clear()
    state.timings.deletion_seconds = 0.0


@pytest.fixture
def gl(server: EmulatorServer, state: State) -> GitLab:
    return GitLab(server.url, state.root_token, timeout=5)


async def wait_until(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.01)


async def new_group(gl: GitLab) -> Group:
    return (await gl.ensure_group(f"forge/{unique('proj')}")).value


def assert_no_secret(secret: str, *texts: str) -> None:
    for text in texts:
        assert secret not in text


# --- instance, users -------------------------------------------------------------------------


async def test_version(gl: GitLab) -> None:
    assert await gl.version() == "18.2.1"


async def test_find_user_by_email_is_exact_and_case_insensitive(
    gl: GitLab, state: State, server: EmulatorServer
) -> None:
    name = unique("jdupont")
    user, token = state.add_user(name, f"{name.title()}@Interieur.gouv.fr", "Jean Dupont")
    state.add_user(unique("other"), f"x.{name}@interieur.gouv.fr.example", "Other")
    found = await gl.find_user_by_email(f"{name}@interieur.gouv.fr")
    assert found is not None
    assert (found.id, found.username, found.name) == (user["id"], name, "Jean Dupont")
    assert found.email.lower() == f"{name}@interieur.gouv.fr"
    assert await gl.find_user_by_email(f"nobody-{name}@interieur.gouv.fr") is None
    # Without admin rights GitLab does not search e-mails: nobody is found.
    assert await GitLab(server.url, token, timeout=5).find_user_by_email(user["email"]) is None


# --- groups ----------------------------------------------------------------------------------


async def test_ensure_group_creates_missing_segments_privately(gl: GitLab, state: State) -> None:
    slug = unique("alpha")
    path = f"forge/projects-{slug}/{slug}"
    first = await gl.ensure_group(path, name=f"Projet {slug}", description="Projet alpha")
    assert first.changed is True
    assert first.what == f"created groups forge/projects-{slug}, {path}"
    assert first.value.full_path == path and first.value.web_url.endswith(f"/groups/{path}")
    seen = state.group_by_path(path)
    assert seen is not None and seen["id"] == first.value.id
    assert seen["visibility"] == "private" and seen["name"] == f"Projet {slug}"
    assert seen["description"] == "Projet alpha"
    middle = state.group_by_path(f"forge/projects-{slug}")
    assert middle is not None and middle["name"] == f"projects-{slug}"

    again = await gl.ensure_group(path)
    assert again == Ensured(first.value, False, "")
    assert await gl.find_group(path) == first.value
    assert await gl.find_group(f"forge/absent-{slug}") is None

    leaf = await gl.ensure_group(f"{path}/leaf")
    assert leaf.changed and leaf.what == f"created group {path}/leaf"


async def test_ensure_group_needs_an_existing_root(gl: GitLab, state: State) -> None:
    with pytest.raises(ServiceError) as caught:
        await gl.ensure_group(f"{unique('noroot')}/alpha")
    assert caught.value.failure is Failure.NOT_FOUND and "root group" in caught.value.detail


async def test_delete_group_immediate_and_delayed(gl: GitLab, state: State) -> None:
    group = await new_group(gl)
    assert await gl.delete_group(group.full_path) is True
    assert state.group_by_path(group.full_path) is None
    assert await gl.delete_group(group.full_path) is False

    # GitLab 18 only marks a group for deletion: the adapter then removes it for good.
    state.timings.deletion_seconds = 60
    delayed = await new_group(gl)
    assert await gl.delete_group(delayed.full_path) is True
    assert delayed.id not in state.namespaces


# --- projects and repository -----------------------------------------------------------------


async def test_ensure_project_creates_then_fixes(gl: GitLab, state: State) -> None:
    group = await new_group(gl)
    first = await gl.ensure_project(group, "app", description="Appli", ci_config_path=".gitlab-ci-dso.yml")
    project = first.value
    assert first.changed and first.what == f"created project {group.full_path}/app"
    assert project.path == "app" and project.path_with_namespace == f"{group.full_path}/app"
    assert project.http_url_to_repo.endswith(f"/{group.full_path}/app.git")
    seen = state.project_by_path(f"{group.full_path}/app")
    assert seen is not None and seen["visibility"] == "private"
    assert seen["ci_config_path"] == ".gitlab-ci-dso.yml" and seen["description"] == "Appli"

    again = await gl.ensure_project(group, "app", description="Appli", ci_config_path=".gitlab-ci-dso.yml")
    assert again == Ensured(project, False, "")
    # ci_config_path=None: whatever it is, it is kept.
    assert not (await gl.ensure_project(group, "app", description="Appli")).changed

    fixed = await gl.ensure_project(group, "app", description="Nouvelle", ci_config_path="")
    assert fixed.changed and fixed.what.endswith("(ci_config_path, description)")
    seen = state.project_by_path(f"{group.full_path}/app")
    assert seen is not None and seen["description"] == "Nouvelle" and seen["ci_config_path"] is None

    other = (await gl.ensure_project(group, "mirror")).value
    listed = await gl.list_group_projects(group.id)
    assert sorted(p.id for p in listed) == sorted([project.id, other.id])
    assert await gl.find_project(f"{group.full_path}/app") == fixed.value
    assert await gl.find_project(f"{group.full_path}/nothing") is None

    assert await gl.delete_project(other.id) is True
    assert state.project_by_path(f"{group.full_path}/mirror") is None
    assert await gl.delete_project(other.id) is False

    state.timings.deletion_seconds = 60
    assert await gl.delete_project(project.id) is True
    assert project.id not in state.projects


async def test_files_commits_and_revert(gl: GitLab, state: State) -> None:
    group = await new_group(gl)
    project = (await gl.ensure_project(group, "infra")).value
    assert await gl.read_file(project.id, "values.yaml") is None

    created = await gl.ensure_file(project.id, "values.yaml", "a: 1\n", "add values")
    assert created.changed and created.what == f"created file values.yaml in project {project.id}"
    assert state.file_content(project.id, "values.yaml") == "a: 1\n"
    same = await gl.ensure_file(project.id, "values.yaml", "a: 1\n", "again")
    assert same == Ensured(None, False, "")
    commits_before = len(state.projects[project.id].repo.commits)
    updated = await gl.ensure_file(project.id, "values.yaml", "a: 2\n", "change values")
    assert updated.changed and updated.what.startswith("updated file values.yaml")
    assert len(state.projects[project.id].repo.commits) == commits_before + 1
    assert await gl.read_file(project.id, "values.yaml") == "a: 2\n"
    assert await gl.read_file(project.id, "values.yaml", ref="nope") is None

    sha = await gl.commit(
        project.id,
        "main",
        "several files",
        [
            {
                "action": "create",
                "file_path": "mirror.sh",
                "content": "#!/bin/sh\n",
                "execute_filemode": True,
            },
            {"action": "update", "file_path": "values.yaml", "content": "a: 3\n"},
        ],
        author_name="cpn-bot",
        author_email="bot@example.com",
    )
    assert len(sha) == 40
    head = state.projects[project.id].repo.resolve("main")
    assert head is not None and head.id == sha and head.author_name == "cpn-bot"
    assert state.file_content(project.id, "mirror.sh") == "#!/bin/sh\n"

    reverted = await gl.revert(project.id, sha)
    assert reverted != sha
    assert state.file_content(project.id, "mirror.sh") is None
    assert state.file_content(project.id, "values.yaml") == "a: 2\n"


# --- triggers, access tokens, hooks, members -------------------------------------------------


async def test_triggers(gl: GitLab, state: State, server: EmulatorServer) -> None:
    group = await new_group(gl)
    mirror = (await gl.ensure_project(group, "mirror")).value
    created = await gl.ensure_trigger(mirror.id, "mirroring-from-external-repo")
    token = created.value
    assert created.changed and token is not None and token.startswith("glptt-")
    assert_no_secret(token, created.what)
    assert [t.token for t in state.triggers.values() if t.project_id == mirror.id] == [token]

    kept = await gl.ensure_trigger(mirror.id, "mirroring-from-external-repo")
    assert kept == Ensured(token, False, "")

    # Somebody else's trigger: GitLab shows 4 characters, the adapter says it does not know.
    name = unique("maint")
    user, user_token = state.add_user(name, f"{name}@x.fr")
    state.add_member(state.projects[mirror.id], user["id"], MAINTAINER)
    seen_by_other = await GitLab(server.url, user_token, timeout=5).ensure_trigger(
        mirror.id, "mirroring-from-external-repo"
    )
    assert seen_by_other == Ensured(None, False, "")

    rotated = await gl.rotate_trigger(mirror.id, "mirroring-from-external-repo")
    assert rotated != token and rotated.startswith("glptt-")
    assert [t.token for t in state.triggers.values() if t.project_id == mirror.id] == [rotated]


async def test_group_access_tokens(gl: GitLab, state: State) -> None:
    group = await new_group(gl)
    scopes = ["write_repository", "read_repository", "read_api"]
    created = await gl.ensure_group_access_token(group.id, "alpha-bot", scopes, MAINTAINER)
    token = created.value
    assert created.changed and token is not None and token.startswith("glpat-")
    assert_no_secret(token, created.what)
    record = state.tokens[token]
    assert record.kind == "group" and record.group_id == group.id and record.active
    assert sorted(record.scopes) == sorted(scopes) and record.access_level == MAINTAINER

    kept = await gl.ensure_group_access_token(group.id, "alpha-bot", list(reversed(scopes)), MAINTAINER)
    assert kept == Ensured(None, False, "")

    replaced = await gl.ensure_group_access_token(group.id, "alpha-bot", ["read_api"], MAINTAINER)
    assert replaced.changed and replaced.value and replaced.value != token
    assert replaced.what == f"replaced access token 'alpha-bot' of group {group.id}"
    assert state.tokens[token].revoked is True

    assert replaced.value is not None
    rotated = await gl.rotate_group_access_token(group.id, "alpha-bot", ["read_api"], MAINTAINER)
    assert rotated not in (token, replaced.value)
    assert state.tokens[replaced.value].revoked and state.tokens[rotated].active
    # GitLab's rotation keeps the token's bot user.
    assert state.tokens[rotated].user_id == state.tokens[replaced.value].user_id
    active = [t for t in state.tokens.values() if t.group_id == group.id and t.active]
    assert [t.token for t in active] == [rotated]

    # Nothing to rotate: a token is created.
    fresh = await gl.rotate_group_access_token(group.id, "other-bot", ["read_api"], DEVELOPER, expires_days=30)
    assert state.tokens[fresh].active and state.tokens[fresh].name == "other-bot"


async def test_token_expiry_is_a_utc_date_a_day_short_of_the_lifetime(gl: GitLab, state: State) -> None:
    group = await new_group(gl)
    state.server_day_offset = -1  # GitLab's Date.current is in its time zone: still yesterday there
    try:
        token = (await gl.ensure_group_access_token(group.id, "alpha-bot", ["read_api"], MAINTAINER)).value
        assert token is not None
        rotated = await gl.rotate_group_access_token(group.id, "alpha-bot", ["read_api"], MAINTAINER)
    finally:
        state.server_day_offset = 0
    expected = (datetime.now(UTC).date() + timedelta(days=364)).isoformat()
    assert state.tokens[token].expires_at == expected and state.tokens[rotated].expires_at == expected
    assert token_expiry(30, date(2026, 12, 31)) == "2027-01-29"


async def test_group_hook(gl: GitLab, state: State) -> None:
    group = await new_group(gl)
    url = "http://127.0.0.1:9/hooks/gitlab"
    created = await gl.ensure_group_hook(group.id, url, "s3cret-hook-token")
    assert created.changed and created.what == f"created webhook of group {group.id}"
    hook = state.hooks[created.value]
    assert hook.group_id == group.id and hook.token == "s3cret-hook-token"
    assert all(hook.events[e] for e in ("push_events", "tag_push_events", "pipeline_events", "job_events"))
    assert hook.events["merge_requests_events"] is True

    assert await gl.ensure_group_hook(group.id, url, "s3cret-hook-token") == Ensured(created.value, False, "")

    hook.token = "lost"
    fixed = await gl.ensure_group_hook(group.id, url, "s3cret-hook-token", merge_requests=False, job=False)
    assert fixed.changed and fixed.value == created.value
    assert fixed.what.endswith("(job_events, merge_requests_events)")
    assert_no_secret("s3cret-hook-token", created.what, fixed.what)
    assert hook.events["job_events"] is False and hook.events["merge_requests_events"] is False
    assert hook.token == "s3cret-hook-token"  # set again on a fix


async def test_on_a_free_tier_group_hooks_are_not_found_and_project_hooks_are_ensured(gl: GitLab, state: State) -> None:
    group = await new_group(gl)
    project = (await gl.ensure_project(group, "api")).value
    url = "http://bot.example/hooks/gitlab?project=x"
    state.tier = "free"
    try:
        with pytest.raises(ServiceError) as free:
            await gl.ensure_group_hook(group.id, url, "s3cret")
        assert free.value.failure is Failure.NOT_FOUND
        created = await gl.ensure_project_hook(project.id, url, "s3cret")
        assert created.changed and "s3cret" not in created.what
        assert await gl.ensure_project_hook(project.id, url, "s3cret") == Ensured(created.value, False, "")
        hook = state.hooks[created.value]
        assert hook.project_id == project.id and hook.token == "s3cret"
        assert hook.events["pipeline_events"] and hook.events["job_events"] and hook.events["push_events"]
        assert await gl.remove_project_hook(project.id, url) is True
        assert await gl.remove_project_hook(project.id, url) is False
        assert created.value not in state.hooks
    finally:
        state.tier = "premium"


async def test_group_members(gl: GitLab, state: State) -> None:
    group = await new_group(gl)
    name = unique("member")
    user, _ = state.add_user(name, f"{name}@x.fr")
    added = await gl.ensure_group_member(group.id, user["id"], DEVELOPER)
    assert added.changed and f"user {user['id']}" in added.what
    assert state.namespaces[group.id].members[user["id"]].access_level == DEVELOPER
    assert await gl.ensure_group_member(group.id, user["id"], DEVELOPER) == Ensured(None, False, "")
    changed = await gl.ensure_group_member(group.id, user["id"], MAINTAINER)
    assert changed.changed and "30 → 40" in changed.what
    assert (await gl.group_members(group.id))[user["id"]] == MAINTAINER
    assert await gl.remove_group_member(group.id, user["id"]) is True
    assert user["id"] not in await gl.group_members(group.id)
    assert await gl.remove_group_member(group.id, user["id"]) is False


async def test_a_member_who_inherits_more_from_a_group_above_is_left_as_is(gl: GitLab, state: State) -> None:
    group = await new_group(gl)
    name = unique("owner")
    user, _ = state.add_user(name, f"{name}@x.fr")
    root = state.namespaces[state.namespaces[group.id].parent_id or 0]
    state.add_member(root, user["id"], 50)
    try:
        assert await gl.ensure_group_member(group.id, user["id"], DEVELOPER) == Ensured(None, False, "")
        assert user["id"] not in state.namespaces[group.id].members
        state.add_member(state.namespaces[group.id], user["id"], 50)  # a direct owner made by hand
        assert await gl.ensure_group_member(group.id, user["id"], DEVELOPER) == Ensured(None, False, "")
        assert state.namespaces[group.id].members[user["id"]].access_level == 50
    finally:
        del root.members[user["id"]]


async def test_a_multi_megabyte_job_log_is_streamed_and_only_its_tail_is_kept(gl: GitLab, state: State) -> None:
    import tracemalloc

    group = await new_group(gl)
    project = (await gl.ensure_project(group, "noisy")).value
    pipeline_id = _seed_pipelines(state, project.id, 1, "2026-01-01T10:00:00.000Z")[0]
    from services.emulators.gitlab_state import Job as EmulatedJob

    job = EmulatedJob(state.next_id("job"), pipeline_id, project.id, "build", "build", status="failed")
    lines = [f"step {n} " + "x" * 120 for n in range(60_000)] + ["é" * 3000 + " END", "ERREUR FINALE: exit 1"]
    job.trace = lines  # about 8 MB
    with state.lock:
        state.jobs[job.id] = job
        state.pipelines[pipeline_id].job_ids.append(job.id)
    tracemalloc.start()
    try:
        tail = await gl.job_trace_tail(project.id, job.id, lines=40, line_bytes=1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    kept = tail.text.split("\n")
    assert len(kept) == 40 and tail.skipped == len(lines) - 40
    assert kept[-1] == "ERREUR FINALE: exit 1" and kept[-3] == lines[-3]
    assert kept[-2].endswith(" END") and len(kept[-2].encode()) <= 1000  # a long line keeps its end
    assert peak < 2_000_000, f"held {peak} bytes for an 8 MB log"


# --- listings ------------------------------------------------------------------------------


def _listing_queries(state: State, path: str) -> list[dict[str, str]]:
    from urllib.parse import parse_qsl

    found = []
    for line in list(state.request_log):
        method, target = line.split(" ", 1)
        route, _, query = target.partition("?")
        if method == "GET" and route == path:
            found.append(dict(parse_qsl(query)))
    return found


async def test_listings_ask_for_100_a_page_and_follow_every_page(gl: GitLab, state: State) -> None:
    group = await new_group(gl)
    for number in range(130):
        state.add_project(f"repo{number}", group.id)
    state.request_log.clear()
    assert len(await gl.list_group_projects(group.id)) == 130
    queries = _listing_queries(state, f"/api/v4/groups/{group.id}/projects")
    assert [(q["per_page"], q.get("page", "1")) for q in queries] == [("100", "1"), ("100", "2")]


def _seed_pipelines(state: State, project_id: int, count: int, updated_at: str) -> list[int]:
    from services.emulators.gitlab_state import Pipeline as EmulatedPipeline

    ids = []
    with state.lock:
        for _ in range(count):
            pipeline_id = state.next_id("pipeline")
            state.pipelines[pipeline_id] = EmulatedPipeline(
                pipeline_id,
                pipeline_id,
                project_id,
                "a" * 40,
                "0" * 40,
                "main",
                "push",
                1,
                status="success",
                created_at=updated_at,
                updated_at=updated_at,
            )
            ids.append(pipeline_id)
    return ids


async def test_pipeline_discovery_reads_every_pipeline_updated_since_a_time(gl: GitLab, state: State) -> None:
    group = await new_group(gl)
    project = (await gl.ensure_project(group, "busy")).value
    _seed_pipelines(state, project.id, 3, "2026-01-01T10:00:00.000Z")
    recent = _seed_pipelines(state, project.id, 150, "2026-01-01T12:00:00.000Z")
    state.request_log.clear()
    found = await gl.pipelines(project.id, updated_after=datetime(2026, 1, 1, 11, 0, tzinfo=UTC))
    assert sorted(p.id for p in found) == recent
    queries = _listing_queries(state, f"/api/v4/projects/{project.id}/pipelines")
    assert {q["updated_after"] for q in queries} == {"2026-01-01T11:00:00Z"}
    assert [q["per_page"] for q in queries] == ["100", "100"]


# --- pipelines -------------------------------------------------------------------------------

MIRROR_CI = """variables:
  PROJECT_NAME: ""
repo_pull_sync:
  script: ./mirror.sh
"""


async def test_pipelines_jobs_traces_and_artifacts(gl: GitLab, state: State) -> None:
    group = await new_group(gl)
    mirror = (await gl.ensure_project(group, "mirror")).value
    app = (await gl.ensure_project(group, "app", ci_config_path=".gitlab-ci-dso.yml")).value
    await gl.ensure_file(mirror.id, ".gitlab-ci.yml", MIRROR_CI, "mirror CI")
    await gl.ensure_file(app.id, "README.md", "# app\n", "init")
    trigger = (await gl.ensure_trigger(mirror.id, "mirroring-from-external-repo")).value
    assert trigger is not None

    started = await gl.trigger_pipeline(mirror.id, trigger, "main", {"PROJECT_NAME": "app"})
    assert isinstance(started, Pipeline)
    assert (started.project_id, started.ref, started.source) == (mirror.id, "main", "trigger")
    assert started.web_url.endswith(f"/-/pipelines/{started.id}") and len(started.sha) == 40
    assert state.pipelines[started.id].variable("PROJECT_NAME") == "app"

    async def finished(project_id: int, pipeline_id: int) -> Pipeline:
        for _ in range(500):
            current = await gl.pipeline(project_id, pipeline_id)
            if current.status in ("success", "failed", "canceled"):
                return current
            await asyncio.sleep(0.01)
        raise AssertionError("pipeline did not finish")

    assert (await finished(mirror.id, started.id)).status == "success"
    jobs = await gl.pipeline_jobs(mirror.id, started.id)
    assert [(j.name, j.status) for j in jobs] == [("sync", "success")]
    trace = await gl.job_trace_tail(mirror.id, jobs[0].id)
    assert "Job succeeded" in trace.text

    # The sync pushed to app, whose own pipeline (source push) ran the build with a Trivy report.
    built = await wait_until(lambda: state.pipelines_of(app.path_with_namespace))
    done = await finished(app.id, built[0].id)
    assert (done.status, done.source) == ("success", "push")
    app_jobs = await gl.pipeline_jobs(app.id, done.id)
    assert [j.name for j in app_jobs] == ["test", "sonar", "build", "trivy", "push"]
    trivy = next(j for j in app_jobs if j.name == "trivy")
    report = await gl.job_artifact(app.id, trivy.id, "trivy-report.json")
    assert report is not None and json.loads(report)["SchemaVersion"] == 2
    assert await gl.job_artifact(app.id, trivy.id, "nothing.json") is None

    mine = await gl.create_pipeline(app.id, "main", {"SONAR": "off"})
    assert mine.source == "api" and state.pipelines[mine.id].variable("SONAR") == "off"
    listed = await gl.pipelines(app.id, ref="main")
    assert [p.id for p in listed][:2] == [mine.id, done.id]
    assert await gl.pipelines(app.id, ref="other") == []
    assert len(await gl.pipelines(app.id, per_page=1)) == 1

    failed = state.pipelines[mine.id]
    state.scenarios[app.path_with_namespace] = "fail:sonar"
    bad = await gl.create_pipeline(app.id, "main", {})
    result = await finished(app.id, bad.id)
    assert result.status == "failed" and failed.id != bad.id
    sonar = next(j for j in await gl.pipeline_jobs(app.id, bad.id) if j.name == "sonar")
    assert sonar.status == "failed" and sonar.failure_reason == "script_failure"
    state.scenarios.pop(app.path_with_namespace)

    with pytest.raises(ServiceError) as caught:
        await gl.trigger_pipeline(mirror.id, "glptt-wrong", "main", {})
    assert caught.value.failure is Failure.NOT_FOUND
    assert_no_secret(trigger, str(caught.value), caught.value.detail)


# --- errors ----------------------------------------------------------------------------------


async def test_service_down_and_rate_limited(gl: GitLab, state: State) -> None:
    state.faults.down = True
    with pytest.raises(ServiceError) as down:
        await gl.find_group("forge")
    assert down.value.failure is Failure.UNAVAILABLE and down.value.status == 503
    assert down.value.service == "GitLab" and down.value.transient
    state.faults.down = False

    state.faults.fail("GET /api/v4/version", 429, times=1, headers={"Retry-After": "7"})
    with pytest.raises(ServiceError) as limited:
        await gl.version()
    assert limited.value.failure is Failure.RATE_LIMITED and limited.value.retry_after == 7.0
    assert await gl.version() == "18.2.1"


async def test_unreachable_gives_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ServiceError) as caught:
        await GitLab(f"http://127.0.0.1:{port}", "glpat-x", timeout=2).version()
    assert caught.value.failure is Failure.UNAVAILABLE and caught.value.detail.endswith("unreachable")


async def test_bad_token_and_forbidden(server: EmulatorServer, state: State) -> None:
    secret = "glpat-definitely-not-valid"
    with pytest.raises(ServiceError) as refused:
        await GitLab(server.url, secret, timeout=5).find_group("forge")
    assert refused.value.failure is Failure.UNAUTHORIZED and refused.value.status == 401
    assert_no_secret(secret, str(refused.value), refused.value.detail, repr(refused.value))

    name = unique("plain")
    _, token = state.add_user(name, f"{name}@x.fr")
    forge = state.group_by_path("forge")
    assert forge is not None
    state.add_member(state.namespaces[forge["id"]], state.tokens[token].user_id, DEVELOPER)
    with pytest.raises(ServiceError) as denied:
        await GitLab(server.url, token, timeout=5).ensure_group(f"forge/{unique('x')}")
    assert denied.value.failure is Failure.FORBIDDEN and denied.value.status == 403
    assert_no_secret(token, str(denied.value), denied.value.detail)


def test_ui_url() -> None:
    gl = GitLab("https://gitlab.example.com/", "glpat-x")
    assert gl.ui_url("forge/alpha/app") == "https://gitlab.example.com/forge/alpha/app"
    assert gl.ui_url("/forge/alpha/") == "https://gitlab.example.com/forge/alpha"
