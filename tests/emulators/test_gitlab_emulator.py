"""The GitLab emulator driven by the real python-gitlab client (and httpx for raw HTTP checks)."""

from __future__ import annotations

import base64
import itertools
import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import gitlab
import httpx
import pytest
from gitlab import exceptions as glexc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse as PlainResponse
from starlette.responses import Response
from starlette.routing import Route

from services.emulators.base import EmulatorServer
from services.emulators.fixtures import fixtures_dir
from services.emulators.gitlab import State, create_app
from services.emulators.gitlab_pipelines import FAKE_TOKEN_LINE

_names = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}{next(_names)}"


@pytest.fixture(scope="module")
def state() -> State:
    created = State()
    # Pipelines and webhook retries in milliseconds.
    created.timings.job_seconds = 0.005
    created.timings.stuck_timeout_seconds = 0.1
    created.timings.hook_initial_backoff_seconds = 60.0
    return created


@pytest.fixture(scope="module")
def server(state: State) -> Iterator[EmulatorServer]:
    with EmulatorServer(create_app(state), name="gitlab-emulator") as running:
        yield running


@pytest.fixture(autouse=True)
def _clean_faults(state: State) -> Iterator[None]:
    yield
    state.faults.clear()
    state.unhealthy.clear()


@pytest.fixture
def admin(server: EmulatorServer, state: State) -> gitlab.Gitlab:
    return gitlab.Gitlab(server.url, private_token=state.root_token)


def client(server: EmulatorServer, token: str) -> gitlab.Gitlab:
    return gitlab.Gitlab(server.url, private_token=token)


def new_user(state: State, admin: bool = False) -> tuple[dict[str, Any], str]:
    name = unique("user")
    return state.add_user(name, f"{name}@interieur.gouv.fr", name.title(), admin=admin)


def raw(server: EmulatorServer, method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
    headers = {"PRIVATE-TOKEN": token} if token else {}
    return httpx.request(method, server.url + path, headers=headers, timeout=5, **kwargs)


# --- health, version, authentication ---------------------------------------------------------


def test_health_routes_follow_faults(server: EmulatorServer, state: State) -> None:
    ready = raw(server, "GET", "/-/readiness?all=1")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ok" and body["master_check"] == [{"status": "ok"}]
    assert body["gitaly_check"][0]["labels"] == {"shard": "default"}
    assert raw(server, "GET", "/-/liveness").json() == {"status": "ok"}

    state.unhealthy.add("gitaly_check")
    failing = raw(server, "GET", "/-/readiness?all=1")
    assert failing.status_code == 503
    assert failing.json()["status"] == "failed"
    assert failing.json()["gitaly_check"][0]["status"] == "failed"

    state.faults.down = True
    down = raw(server, "GET", "/-/readiness?all=1")
    assert down.status_code == 503
    assert down.json() == {"message": "503 Service Unavailable"}


def test_version_and_current_user(admin: gitlab.Gitlab) -> None:
    assert admin.version() == ("18.2.1", "c4f8e0a9c7b")
    admin.auth()
    assert admin.user is not None
    assert admin.user.username == "root" and admin.user.is_admin is True


def test_missing_and_bad_tokens_are_401(server: EmulatorServer) -> None:
    anonymous = raw(server, "GET", "/api/v4/user")
    assert anonymous.status_code == 401
    assert anonymous.json() == {"message": "401 Unauthorized"}
    with pytest.raises(glexc.GitlabAuthenticationError) as caught:
        client(server, "glpat-not-a-real-token").auth()
    assert caught.value.response_code == 401


def test_bearer_header_is_accepted(server: EmulatorServer, state: State) -> None:
    answer = httpx.get(server.url + "/api/v4/user", headers={"Authorization": f"Bearer {state.root_token}"}, timeout=5)
    assert answer.status_code == 200 and answer.json()["username"] == "root"


def test_expired_revoked_and_read_only_tokens(server: EmulatorServer, state: State) -> None:
    user, _ = new_user(state)
    expired = state.create_token(user["id"], "old", ["api"], (date.today() - timedelta(days=1)).isoformat())
    answer = raw(server, "GET", "/api/v4/user", expired.token)
    assert answer.status_code == 401
    assert answer.json() == {"error": "invalid_token", "error_description": "Token has expired."}

    revoked = state.create_token(user["id"], "gone", ["api"], None)
    revoked.revoked = True
    assert raw(server, "GET", "/api/v4/user", revoked.token).json()["error"] == "invalid_token"

    read_only = state.create_token(user["id"], "ro", ["read_api"], None)
    assert raw(server, "GET", "/api/v4/user", read_only.token).status_code == 200
    denied = raw(server, "POST", "/api/v4/groups", read_only.token, json={"name": "x", "path": "x"})
    assert denied.status_code == 403
    assert denied.json()["error"] == "insufficient_scope"


def test_unknown_route_is_grape_404(server: EmulatorServer, state: State) -> None:
    answer = raw(server, "GET", "/api/v4/nothing/here", state.root_token)
    assert answer.status_code == 404 and answer.json() == {"error": "404 Not Found"}


# --- users -----------------------------------------------------------------------------------


def test_users_lookup_and_admin_only_email_search(server: EmulatorServer, state: State, admin: gitlab.Gitlab) -> None:
    user, token = new_user(state)
    found = admin.users.list(username=user["username"])
    assert [u.id for u in found] == [user["id"]]
    assert [u.username for u in admin.users.list(search=user["email"])] == [user["username"]]
    assert admin.users.get(user["id"]).email == user["email"]

    regular = client(server, token)
    assert regular.users.list(search=user["email"]) == []
    assert not hasattr(regular.users.get(user["id"]), "email")
    with pytest.raises(glexc.GitlabGetError) as caught:
        admin.users.get(999999)
    assert caught.value.response_code == 404
    assert caught.value.error_message == "404 User Not Found"


def test_create_user_is_admin_only_and_unique(server: EmulatorServer, state: State, admin: gitlab.Gitlab) -> None:
    name = unique("newcomer")
    data = {"username": name, "email": f"{name}@x.fr", "name": "New Comer", "reset_password": True}
    created = admin.users.create(data)
    assert created.username == name and created.state == "active"
    with pytest.raises(glexc.GitlabCreateError) as duplicate:
        admin.users.create(data)
    assert duplicate.value.response_code == 409

    _, token = new_user(state)
    with pytest.raises(glexc.GitlabCreateError) as caught:
        client(server, token).users.create({**data, "username": unique("x"), "email": "y@x.fr"})
    assert caught.value.response_code == 403
    missing = raw(server, "POST", "/api/v4/users", state.root_token, json={"username": "z"})
    assert missing.status_code == 400 and "email is missing" in missing.json()["error"]


# --- groups and members ----------------------------------------------------------------------


def make_group(admin: gitlab.Gitlab, parent_id: int | None = None) -> Any:
    path = unique("grp")
    data: dict[str, Any] = {"name": path, "path": path}
    if parent_id is not None:
        data["parent_id"] = parent_id
    return admin.groups.create(data)


def test_group_crud_by_id_and_encoded_path(admin: gitlab.Gitlab, state: State) -> None:
    root = make_group(admin)
    sub = make_group(admin, parent_id=root.id)
    assert sub.full_path == f"{root.path}/{sub.path}" and sub.parent_id == root.id
    assert admin.groups.get(sub.full_path).id == sub.id  # python-gitlab sends root%2Fsub
    assert state.group_by_path(sub.full_path) is not None

    sub.description = "projet cpn"
    sub.save()
    assert admin.groups.get(sub.id).description == "projet cpn"
    assert [g.id for g in root.subgroups.list()] == [sub.id]
    assert [g.id for g in admin.groups.list(search=sub.path)] == [sub.id]

    with pytest.raises(glexc.GitlabCreateError) as duplicate:
        admin.groups.create({"name": sub.path, "path": sub.path, "parent_id": root.id})
    assert duplicate.value.response_code == 400
    assert "has already been taken" in str(duplicate.value.error_message)

    admin.groups.delete(sub.id)
    with pytest.raises(glexc.GitlabGetError) as gone:
        admin.groups.get(sub.full_path)
    assert gone.value.response_code == 404
    assert gone.value.error_message == "404 Group Not Found"


def test_delayed_group_deletion(admin: gitlab.Gitlab, state: State) -> None:
    group = make_group(admin)
    make_project(admin, group)
    state.timings.deletion_seconds = 0.05
    try:
        admin.groups.delete(group.id)
        marked = admin.groups.get(group.id)
        assert marked.marked_for_deletion_on is not None
        assert marked.path == f"{group.path}-deletion_scheduled-{group.id}"
        assert state.group_by_path(group.full_path) is None  # the path is free again
        wait_for(lambda: group.id not in state.namespaces)
    finally:
        state.timings.deletion_seconds = 0.0
    with pytest.raises(glexc.GitlabGetError):
        admin.groups.get(group.id)


def test_group_members_and_access_levels(server: EmulatorServer, state: State, admin: gitlab.Gitlab) -> None:
    group = make_group(admin)
    sub = make_group(admin, parent_id=group.id)
    dev, dev_token = new_user(state)
    member = group.members.create({"user_id": dev["id"], "access_level": 30})
    assert member.access_level == 30 and member.username == dev["username"]
    with pytest.raises(glexc.GitlabCreateError) as duplicate:
        group.members.create({"user_id": dev["id"], "access_level": 30})
    assert duplicate.value.response_code == 409
    assert duplicate.value.error_message == "Member already exists"
    with pytest.raises(glexc.GitlabCreateError) as invalid:
        group.members.create({"user_id": dev["id"], "access_level": 35})
    assert invalid.value.response_code == 400

    # Inherited membership shows in members/all of the subgroup, not in its direct members.
    assert dev["id"] in [m.id for m in sub.members_all.list()]
    assert dev["id"] not in [m.id for m in sub.members.list()]

    # A developer cannot manage members (403) and cannot see groups it is not in (404).
    as_dev = client(server, dev_token)
    with pytest.raises(glexc.GitlabCreateError) as forbidden:
        as_dev.groups.get(group.id).members.create({"user_id": 1, "access_level": 10})
    assert forbidden.value.response_code == 403
    other = make_group(admin)
    with pytest.raises(glexc.GitlabGetError) as hidden:
        as_dev.groups.get(other.id)
    assert hidden.value.response_code == 404

    member.access_level = 40
    member.save()
    assert group.members.get(dev["id"]).access_level == 40
    group.members.delete(dev["id"])
    with pytest.raises(glexc.GitlabGetError):
        group.members.get(dev["id"])


@pytest.mark.parametrize("where", ["subgroup", "project"])
def test_a_direct_member_below_an_inherited_level_is_refused_like_gitlab(
    server: EmulatorServer, state: State, admin: gitlab.Gitlab, where: str
) -> None:
    group = make_group(admin)
    sub = make_group(admin, parent_id=group.id)
    source = sub if where == "subgroup" else make_project(admin, sub)
    dev, _ = new_user(state)
    group.members.create({"user_id": dev["id"], "access_level": 30})
    with pytest.raises(glexc.GitlabCreateError) as below:
        source.members.create({"user_id": dev["id"], "access_level": 20})
    assert below.value.response_code == 400
    assert json.loads(below.value.response_body or b"") == {
        "message": {
            "access_level": [
                f"should be greater than or equal to Developer inherited membership from group {group.name}"
            ]
        }
    }
    member = source.members.create({"user_id": dev["id"], "access_level": 30})  # equal is allowed
    member.access_level = 10
    with pytest.raises(glexc.GitlabUpdateError) as lowered:
        member.save()
    assert lowered.value.response_code == 400


# --- projects --------------------------------------------------------------------------------


def make_project(admin: gitlab.Gitlab, group: Any, path: str | None = None, **extra: Any) -> Any:
    path = path or unique("repo")
    return admin.projects.create({"name": path, "path": path, "namespace_id": group.id, **extra})


def test_project_crud_and_shape(admin: gitlab.Gitlab, state: State, server: EmulatorServer) -> None:
    group = make_group(admin)
    project = make_project(admin, group, ci_config_path=".gitlab-ci-dso.yml", description="app")
    assert project.path_with_namespace == f"{group.full_path}/{project.path}"
    assert project.namespace == {
        **project.namespace,
        "id": group.id,
        "full_path": group.full_path,
        "kind": "group",
    }
    assert project.default_branch == "main" and project.ci_config_path == ".gitlab-ci-dso.yml"
    assert project.web_url == f"{server.url}/{project.path_with_namespace}"
    assert project.http_url_to_repo == project.web_url + ".git"
    assert project.empty_repo is True

    fetched = admin.projects.get(project.path_with_namespace)
    assert fetched.id == project.id and "permissions" in fetched.attributes
    fetched.description = "nouvelle description"
    fetched.save()
    assert admin.projects.get(project.id).description == "nouvelle description"
    assert [p.id for p in admin.projects.list(search=project.path)] == [project.id]
    assert [p.id for p in group.projects.list()] == [project.id]
    assert state.project_by_path(project.path_with_namespace) is not None

    with pytest.raises(glexc.GitlabCreateError) as duplicate:
        make_project(admin, group, path=project.path)
    assert duplicate.value.response_code == 400
    body = raw(
        server,
        "POST",
        "/api/v4/projects",
        state.root_token,
        json={"name": project.path, "path": project.path, "namespace_id": group.id},
    ).json()
    assert body == {"message": {"name": ["has already been taken"], "path": ["has already been taken"]}}

    admin.projects.delete(project.id)
    with pytest.raises(glexc.GitlabGetError) as gone:
        admin.projects.get(project.id)
    assert gone.value.error_message == "404 Project Not Found"


def test_project_permissions(server: EmulatorServer, state: State, admin: gitlab.Gitlab) -> None:
    group = make_group(admin)
    project = make_project(admin, group)
    reporter, reporter_token = new_user(state)
    project.members.create({"user_id": reporter["id"], "access_level": 20})
    as_reporter = client(server, reporter_token)
    assert as_reporter.projects.get(project.id).id == project.id
    with pytest.raises(glexc.GitlabCreateError) as no_write:
        as_reporter.projects.get(project.id, lazy=True).files.create(
            {"file_path": "a", "branch": "main", "content": "x", "commit_message": "m"}
        )
    assert no_write.value.response_code == 403
    with pytest.raises(glexc.GitlabCreateError) as no_create:
        as_reporter.projects.create({"name": "nope", "namespace_id": group.id})
    assert no_create.value.response_code == 403
    stranger = client(server, new_user(state)[1])
    with pytest.raises(glexc.GitlabGetError) as hidden:
        stranger.projects.get(project.id)
    assert hidden.value.response_code == 404


def test_project_and_group_hooks_hide_token(admin: gitlab.Gitlab, state: State) -> None:
    group = make_group(admin)
    project = make_project(admin, group)
    hook = project.hooks.create(
        {
            "url": "http://127.0.0.1:9/hooks/gitlab",
            "token": "s3cret",
            "pipeline_events": True,
            "job_events": True,
        }
    )
    assert hook.pipeline_events is True and hook.push_events is True and hook.project_id == project.id
    assert "token" not in hook.attributes
    listed = project.hooks.list()
    assert [h.id for h in listed] == [hook.id] and "token" not in listed[0].attributes
    assert state.hooks[hook.id].token == "s3cret"
    hook.push_events = False
    hook.save()
    assert project.hooks.get(hook.id).push_events is False

    group_hook = group.hooks.create({"url": "http://127.0.0.1:9/g", "token": "t", "pipeline_events": True})
    assert group_hook.group_id == group.id and "token" not in group_hook.attributes
    group.hooks.delete(group_hook.id)
    project.hooks.delete(hook.id)
    assert project.hooks.list() == [] and group.hooks.list() == []
    with pytest.raises(glexc.GitlabCreateError) as invalid:
        project.hooks.create({"url": "ftp://nowhere"})
    assert invalid.value.response_code == 422


# --- repository ------------------------------------------------------------------------------


def test_files_api(admin: gitlab.Gitlab, state: State, server: EmulatorServer) -> None:
    project = make_project(admin, make_group(admin))
    created = project.files.create(
        {
            "file_path": "deploy/values.yaml",
            "branch": "main",
            "content": "replicas: 1\n",
            "commit_message": "add",
        }
    )
    assert created.file_path == "deploy/values.yaml"
    got = project.files.get("deploy/values.yaml", ref="main")
    assert got.decode() == b"replicas: 1\n" and got.encoding == "base64"
    assert re.fullmatch(r"[0-9a-f]{40}", got.last_commit_id) and re.fullmatch(r"[0-9a-f]{40}", got.blob_id)
    assert project.files.raw("deploy/values.yaml", ref="main") == b"replicas: 1\n"
    assert project.files.head("deploy/values.yaml", ref="main")["X-Gitlab-Size"] == "12"

    got.content = base64.b64encode(b"replicas: 2\n").decode()
    got.encoding = "base64"
    got.save(branch="main", commit_message="scale")
    assert state.file_content(project.id, "deploy/values.yaml") == "replicas: 2\n"
    with pytest.raises(glexc.GitlabCreateError) as exists:
        project.files.create(
            {"file_path": "deploy/values.yaml", "branch": "main", "content": "x", "commit_message": "m"}
        )
    assert exists.value.error_message == "A file with this name already exists"

    project.files.delete("deploy/values.yaml", branch="main", commit_message="rm")
    with pytest.raises(glexc.GitlabGetError) as missing:
        project.files.get("deploy/values.yaml", ref="main")
    assert missing.value.error_message == "404 File Not Found"
    no_ref = raw(server, "GET", f"/api/v4/projects/{project.id}/repository/files/README.md", state.root_token)
    assert no_ref.status_code == 400 and no_ref.json() == {"error": "ref is missing"}


def test_commits_branches_and_revert(admin: gitlab.Gitlab, state: State) -> None:
    project = make_project(admin, make_group(admin), initialize_with_readme=True)
    commit = project.commits.create(
        {
            "branch": "main",
            "commit_message": "mirror files",
            "author_name": "cpn-bot",
            "author_email": "bot@cpn.fr",
            "actions": [
                {"action": "create", "file_path": ".gitlab-ci.yml", "content": "include: mirror.yml\n"},
                {
                    "action": "create",
                    "file_path": "mirror.sh",
                    "content": "#!/bin/sh\n",
                    "execute_filemode": True,
                },
                {"action": "update", "file_path": "README.md", "content": "# Mirror\n"},
            ],
        }
    )
    assert re.fullmatch(r"[0-9a-f]{40}", commit.id) and commit.title == "mirror files"
    assert commit.author_name == "cpn-bot" and len(commit.parent_ids) == 1
    assert project.commits.list(ref_name="main")[0].id == commit.id
    assert project.commits.get(commit.id).stats["total"] == 3
    assert project.files.get("mirror.sh", ref="main").execute_filemode is True

    reverted = project.commits.get(commit.id).revert(branch="main")
    assert reverted["message"].startswith('Revert "mirror files"')
    assert state.file_content(project.id, ".gitlab-ci.yml") is None
    assert state.file_content(project.id, "README.md") == f"# {project.name}\n"
    with pytest.raises(glexc.GitlabRevertError):
        project.commits.get(commit.id).revert(branch="main")

    branch = project.branches.create({"branch": "feature/x", "ref": "main"})
    assert branch.commit["id"] == reverted["id"] and branch.default is False
    assert project.branches.get("feature/x").name == "feature/x"
    assert sorted(b.name for b in project.branches.list()) == ["feature/x", "main"]
    with pytest.raises(glexc.GitlabCreateError) as exists:
        project.branches.create({"branch": "feature/x", "ref": "main"})
    assert exists.value.error_message == "Branch already exists"
    with pytest.raises(glexc.GitlabGetError) as missing:
        project.branches.get("nope")
    assert missing.value.error_message == "404 Branch Not Found"
    with pytest.raises(glexc.GitlabCreateError) as bad_action:
        project.commits.create(
            {"branch": "main", "commit_message": "m", "actions": [{"action": "update", "file_path": "nope"}]}
        )
    assert bad_action.value.error_message == "A file with this name doesn't exist"


# --- triggers and access tokens --------------------------------------------------------------


def ci_project(admin: gitlab.Gitlab, group: Any, path: str = "mirror") -> Any:
    project = make_project(admin, group, path=path)
    project.files.create(
        {
            "file_path": ".gitlab-ci.yml",
            "branch": "main",
            "content": "include: mirror.yml\n",
            "commit_message": "ci",
        }
    )
    return project


def test_trigger_tokens_and_trigger_pipeline(server: EmulatorServer, state: State, admin: gitlab.Gitlab) -> None:
    group = make_group(admin)
    mirror = ci_project(admin, group)
    trigger = mirror.triggers.create({"description": "mirroring-from-external-repo"})
    assert trigger.token.startswith("glptt-") and len(trigger.token) > 20
    assert mirror.triggers.list()[0].token == trigger.token  # the owner sees it in full

    maintainer, maintainer_token = new_user(state)
    mirror.members.create({"user_id": maintainer["id"], "access_level": 40})
    seen = client(server, maintainer_token).projects.get(mirror.id, lazy=True).triggers.list()
    assert seen[0].token == trigger.token[:4]

    pipeline = mirror.trigger_pipeline("main", trigger.token, variables={"PROJECT_NAME": "app"})
    assert pipeline.source == "trigger" and pipeline.ref == "main" and pipeline.status == "created"
    # The documented curl form: form fields with ``variables[KEY]=value``.
    form = httpx.post(
        f"{server.url}/api/v4/projects/{mirror.id}/trigger/pipeline",
        data={"token": trigger.token, "ref": "main", "variables[GIT_BRANCH_DEPLOY]": "develop"},
        timeout=5,
    )
    assert form.status_code == 201
    created = state.pipelines[form.json()["id"]]
    assert created.variable("GIT_BRANCH_DEPLOY") == "develop"

    bad = httpx.post(
        f"{server.url}/api/v4/projects/{mirror.id}/trigger/pipeline",
        data={"token": "nope", "ref": "main"},
        timeout=5,
    )
    assert bad.status_code == 404 and bad.json() == {"message": "404 Not Found"}
    unknown_ref = httpx.post(
        f"{server.url}/api/v4/projects/{mirror.id}/trigger/pipeline",
        data={"token": trigger.token, "ref": "nope"},
        timeout=5,
    )
    assert unknown_ref.status_code == 400
    assert unknown_ref.json() == {"message": {"base": ["Reference not found"]}}

    mirror.triggers.delete(trigger.id)
    assert mirror.triggers.list() == []


def test_group_access_tokens(server: EmulatorServer, state: State, admin: gitlab.Gitlab) -> None:
    group = make_group(admin)
    project = make_project(admin, group)
    expires = (date.today() + timedelta(days=300)).isoformat()
    token = group.access_tokens.create(
        {
            "name": "proj-bot",
            "scopes": ["write_repository", "read_api"],
            "access_level": 40,
            "expires_at": expires,
        }
    )
    assert token.token.startswith("glpat-") and token.expires_at == expires and token.active is True
    listed = group.access_tokens.list()
    assert [t.id for t in listed] == [token.id] and "token" not in listed[0].attributes

    as_bot = client(server, token.token)
    assert as_bot.projects.get(project.id).id == project.id  # the bot is a maintainer of the group
    bot_user = admin.users.get(token.user_id)
    assert bot_user.bot is True

    rotated = group.access_tokens.rotate(token.id)
    assert rotated["token"] != token.token
    assert raw(server, "GET", "/api/v4/user", token.token).status_code == 401
    group.access_tokens.delete(rotated["id"])
    assert raw(server, "GET", "/api/v4/user", rotated["token"]).status_code == 401
    with pytest.raises(glexc.GitlabCreateError) as bad_scope:
        group.access_tokens.create({"name": "x", "scopes": ["everything"]})
    assert bad_scope.value.response_code == 400


def _token_answer(server: EmulatorServer, state: State, group_id: int, expires_at: str) -> httpx.Response:
    body = {"name": "bot", "scopes": ["read_api"], "access_level": 30, "expires_at": expires_at}
    return raw(server, "POST", f"/api/v4/groups/{group_id}/access_tokens", state.root_token, json=body)


def test_a_free_tier_gitlab_has_no_group_hooks_but_project_hooks(
    server: EmulatorServer, state: State, admin: gitlab.Gitlab
) -> None:
    group = make_group(admin)
    project = make_project(admin, group)
    state.tier = "free"
    try:
        for method, path in (
            ("GET", f"/api/v4/groups/{group.id}/hooks"),
            ("POST", f"/api/v4/groups/{group.id}/hooks"),
            ("DELETE", f"/api/v4/groups/{group.id}/hooks/1"),
        ):
            answer = raw(server, method, path, state.root_token, json={"url": "http://bot.example/hooks/gitlab"})
            assert (answer.status_code, answer.json()) == (404, {"error": "404 Not Found"})
        assert project.hooks.create({"url": "http://bot.example/hooks/gitlab"}).id
    finally:
        state.tier = "premium"
    assert group.hooks.list() == []


def test_an_access_token_may_live_365_days_not_one_more(
    server: EmulatorServer, state: State, admin: gitlab.Gitlab
) -> None:
    group = make_group(admin)
    today = datetime.now(UTC).date()
    assert _token_answer(server, state, group.id, (today + timedelta(days=365)).isoformat()).status_code == 201
    beyond = _token_answer(server, state, group.id, (today + timedelta(days=366)).isoformat())
    limit = (today + timedelta(days=365)).isoformat()
    refused = {"message": f"400 Bad request - Expires at must be before {limit}"}
    assert (beyond.status_code, beyond.json()) == (400, refused)
    past = _token_answer(server, state, group.id, (today - timedelta(days=1)).isoformat())
    assert (past.status_code, past.json()) == (400, {"message": {"expires_at": ["must be in the future"]}})


def test_the_token_limit_is_counted_from_the_instances_own_day(
    server: EmulatorServer, state: State, admin: gitlab.Gitlab
) -> None:
    group = make_group(admin)
    state.server_day_offset = -1  # an instance whose day is still yesterday's
    try:
        today = datetime.now(UTC).date()
        assert _token_answer(server, state, group.id, (today + timedelta(days=365)).isoformat()).status_code == 400
        assert _token_answer(server, state, group.id, (today + timedelta(days=364)).isoformat()).status_code == 201
    finally:
        state.server_day_offset = 0


# --- pagination ------------------------------------------------------------------------------


def test_pagination_headers_and_get_all(server: EmulatorServer, state: State, admin: gitlab.Gitlab) -> None:
    group = make_group(admin)
    for _ in range(25):
        make_project(admin, group)
    assert len(group.projects.list(get_all=True, per_page=10)) == 25
    assert len(list(group.projects.list(iterator=True, per_page=7))) == 25
    page = group.projects.list(page=3, per_page=10)
    assert len(page) == 5

    answer = raw(server, "GET", f"/api/v4/groups/{group.id}/projects?per_page=10&page=2", state.root_token)
    headers = answer.headers
    assert (headers["X-Page"], headers["X-Per-Page"], headers["X-Total"], headers["X-Total-Pages"]) == (
        "2",
        "10",
        "25",
        "3",
    )
    assert (headers["X-Next-Page"], headers["X-Prev-Page"]) == ("3", "1")
    assert 'rel="next"' in headers["Link"] and 'rel="prev"' in headers["Link"] and "page=3" in headers["Link"]
    last = raw(server, "GET", f"/api/v4/groups/{group.id}/projects?per_page=10&page=3", state.root_token)
    assert last.headers["X-Next-Page"] == "" and 'rel="next"' not in last.headers["Link"]


def test_per_page_is_capped_at_100_like_gitlab(server: EmulatorServer, state: State, admin: gitlab.Gitlab) -> None:
    group = make_group(admin)
    for _ in range(105):
        state.add_project(unique("p"), group.id)
    answer = raw(server, "GET", f"/api/v4/groups/{group.id}/projects?per_page=500", state.root_token)
    assert (len(answer.json()), answer.headers["X-Per-Page"], answer.headers["X-Next-Page"]) == (100, "100", "2")


def test_pipelines_filter_on_updated_after_and_before(
    server: EmulatorServer, state: State, admin: gitlab.Gitlab
) -> None:
    from services.emulators.gitlab_state import Pipeline as EmulatedPipeline

    project = make_project(admin, make_group(admin))
    with state.lock:
        for hour in (9, 11, 13):
            pipeline_id = state.next_id("pipeline")
            stamp = f"2026-01-01T{hour:02d}:00:00.000Z"
            state.pipelines[pipeline_id] = EmulatedPipeline(
                pipeline_id,
                pipeline_id,
                project.id,
                "a" * 40,
                "0" * 40,
                "main",
                "push",
                1,
                status="success",
                created_at=stamp,
                updated_at=stamp,
            )
    path = f"/api/v4/projects/{project.id}/pipelines"
    after = raw(server, "GET", path, state.root_token, params={"updated_after": "2026-01-01T11:00:00Z"}).json()
    assert [p["updated_at"][11:13] for p in after] == ["13", "11"]
    window = {"updated_after": "2026-01-01T10:00:00Z", "updated_before": "2026-01-01T12:00:00Z"}
    assert [p["updated_at"][11:13] for p in raw(server, "GET", path, state.root_token, params=window).json()] == ["11"]
    bad = raw(server, "GET", path, state.root_token, params={"updated_after": "yesterday"})
    assert (bad.status_code, bad.json()) == (400, {"error": "updated_after is invalid"})


# --- pipelines, engine and webhooks (phase 2) ------------------------------------------------

FIXTURES = fixtures_dir()
needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir(), reason="shared GitLab fixtures not available")


class Capture:
    """A webhook receiver on loopback answering ``status`` and keeping what it got."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 200
        app = Starlette(routes=[Route("/hooks/gitlab", self.receive, methods=["POST"])])
        self.server = EmulatorServer(app, name="gitlab-hook-capture")

    async def receive(self, request: Request) -> Response:
        self.received.append({"headers": dict(request.headers), "body": json.loads(await request.body())})
        return PlainResponse("ok", status_code=self.status)

    @property
    def url(self) -> str:
        return self.server.url + "/hooks/gitlab"

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.received if r["headers"]["x-gitlab-event"] == kind]


@pytest.fixture(scope="module")
def capture() -> Iterator[Capture]:
    receiver = Capture()
    receiver.server.start()
    yield receiver
    receiver.server.stop()


def wait_for(condition: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


def finished(state: State, pipeline_id: int) -> bool:
    with state.lock:
        return state.pipelines[pipeline_id].status in ("success", "failed", "canceled")


def platform_project(admin: gitlab.Gitlab, ci_file: bool = True) -> tuple[Any, Any, Any, str]:
    """A CPiN-like project group: ``mirror`` (with its CI) and an internal repo ``app``."""
    group = make_group(admin)
    mirror = ci_project(admin, group)
    app = make_project(admin, group, path="app", ci_config_path=".gitlab-ci-dso.yml")
    trigger = mirror.triggers.create({"description": "mirroring-from-external-repo"})
    return group, mirror, app, trigger.token


def assert_same_shape(ours: Any, reference: Any, where: str = "$") -> None:
    """Same keys as the fixture at every level where both sides hold an object."""
    if isinstance(reference, dict) and isinstance(ours, dict):
        assert set(ours) == set(reference), f"{where}: {set(ours) ^ set(reference)}"
        for key, value in reference.items():
            assert_same_shape(ours[key], value, f"{where}.{key}")
    elif isinstance(reference, list) and reference and isinstance(ours, list) and ours:
        assert_same_shape(ours[0], reference[0], f"{where}[0]")


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@needs_fixtures
def test_trigger_runs_mirror_then_internal_pipeline_with_hooks(
    server: EmulatorServer, state: State, admin: gitlab.Gitlab, capture: Capture
) -> None:
    group, mirror, app, trigger_token = platform_project(admin)
    group.hooks.create(
        {
            "url": capture.url,
            "token": "hook-secret",
            "push_events": True,
            "pipeline_events": True,
            "job_events": True,
        }
    )
    capture.received.clear()
    answer = httpx.post(
        f"{server.url}/api/v4/projects/{mirror.id}/trigger/pipeline",
        data={
            "token": trigger_token,
            "ref": "main",
            "variables[PROJECT_NAME]": "app",
            "variables[GIT_BRANCH_DEPLOY]": "main",
            "variables[SYNC_ALL]": "false",
        },
        timeout=5,
    )
    assert answer.status_code == 201 and answer.json()["source"] == "trigger"
    mirror_pipeline = answer.json()["id"]
    wait_for(lambda: finished(state, mirror_pipeline))
    internal = wait_for(lambda: state.pipelines_of(app.path_with_namespace))
    wait_for(lambda: finished(state, internal[0].id))

    # What the bot sees through the API.
    pipeline = app.pipelines.get(internal[0].id)
    assert (pipeline.status, pipeline.source, pipeline.ref) == ("success", "push", "main")
    jobs = pipeline.jobs.list(get_all=True)
    assert sorted((j.stage, j.status) for j in jobs) == sorted(
        (stage, "success") for stage in ("test", "sonar", "build", "trivy", "push")
    )
    assert admin.projects.get(mirror.id).pipelines.get(mirror_pipeline).status == "success"
    assert state.file_content(app.id, ".gitlab-ci-dso.yml") is not None

    trivy = next(j for j in jobs if j.name == "trivy")
    job = app.jobs.get(trivy.id)
    trace = job.trace().decode()
    assert FAKE_TOKEN_LINE in trace and trace.rstrip().endswith("Job succeeded")
    report = job.artifact("trivy-report.json")
    assert json.loads(report) == fixture("trivy_image_report.json")

    # Deliveries: a Push Hook for app, Pipeline and Job Hooks for both pipelines, in order.
    wait_for(
        lambda: any(
            r["body"]["object_attributes"]["status"] == "success"
            for r in capture.events("Pipeline Hook")
            if r["body"]["project"]["id"] == app.id
        )
    )
    pushes = capture.events("Push Hook")
    assert [p["body"]["project"]["path_with_namespace"] for p in pushes] == [app.path_with_namespace]
    assert_same_shape(pushes[0]["body"], fixture("gitlab_push_event.json"))
    assert pushes[0]["body"]["ref"] == "refs/heads/main"

    statuses = [
        r["body"]["object_attributes"]["status"]
        for r in capture.events("Pipeline Hook")
        if r["body"]["project"]["id"] == app.id
    ]
    assert statuses == ["pending", "running", "success"]
    for received in capture.events("Pipeline Hook"):
        assert_same_shape(received["body"], fixture("gitlab_pipeline_event.json"))
    for received in capture.events("Job Hook"):
        assert_same_shape(received["body"], fixture("gitlab_job_event.json"))
    sync_states = [r["body"]["build_status"] for r in capture.events("Job Hook") if r["body"]["build_name"] == "sync"]
    assert sync_states == ["created", "pending", "running", "success"]

    headers = fixture("gitlab_webhook_headers.json")
    first = capture.received[0]["headers"]
    for name in [*headers["common"], "X-Gitlab-Event"]:
        assert name.lower() in first
    assert first["x-gitlab-token"] == "hook-secret"
    assert first["user-agent"].startswith("GitLab/") and first["content-type"] == "application/json"
    webhook_uuids = [r["headers"]["x-gitlab-webhook-uuid"] for r in capture.received]
    assert len(set(webhook_uuids)) == len(webhook_uuids)  # SecureRandom.uuid on every request
    keys = [r["headers"]["idempotency-key"] for r in capture.received]
    assert len(set(keys)) == len(keys)
    recorded = state.deliveries("Push Hook")
    assert recorded[-1]["status"] == 200 and recorded[-1]["headers"]["X-Gitlab-Token"] == "[REDACTED]"


def test_sync_of_unknown_repository_fails(state: State, admin: gitlab.Gitlab) -> None:
    _, mirror, _, trigger_token = platform_project(admin)
    pipeline = mirror.trigger_pipeline("main", trigger_token, variables={"PROJECT_NAME": "ghost"})
    wait_for(lambda: finished(state, pipeline.id))
    job = mirror.pipelines.get(pipeline.id).jobs.list()[0]
    assert (job.name, job.status, job.failure_reason) == ("sync", "failed", "script_failure")
    trace = mirror.jobs.get(job.id).trace().decode()
    assert "could not be found" in trace and "ERROR: Job failed: exit code 1" in trace


def test_sync_all_and_ci_skip(state: State, admin: gitlab.Gitlab) -> None:
    _, mirror, app, trigger_token = platform_project(admin)
    first = mirror.trigger_pipeline("main", trigger_token, variables={"PROJECT_NAME": "app"})
    wait_for(lambda: finished(state, first.id))
    app.branches.create({"branch": "develop", "ref": "main"})
    before = len(state.pipelines_of(app.path_with_namespace))
    sync_all = mirror.trigger_pipeline(
        "main", trigger_token, variables={"PROJECT_NAME": "app", "SYNC_ALL": "true", "CI_SKIP": "true"}
    )
    wait_for(lambda: finished(state, sync_all.id))
    assert mirror.pipelines.get(sync_all.id).status == "success"
    assert len(state.pipelines_of(app.path_with_namespace)) == before  # ci.skip: no build
    heads = {b.name: b.commit["title"] for b in app.branches.list()}
    assert heads == {
        "develop": "Synchronise develop from the external repository",
        "main": "Synchronise main from the external repository",
    }


def test_failing_job_skips_the_rest_then_retry(state: State, admin: gitlab.Gitlab) -> None:
    group = make_group(admin)
    app = make_project(admin, group, path="app", initialize_with_readme=True)
    state.scenarios[app.path_with_namespace] = "fail:sonar"
    app.files.create({"file_path": ".gitlab-ci.yml", "branch": "main", "content": "x", "commit_message": "ci"})
    pipeline_id = wait_for(lambda: state.pipelines_of(app.path_with_namespace))[0].id
    wait_for(lambda: finished(state, pipeline_id))
    pipeline = app.pipelines.get(pipeline_id)
    assert pipeline.status == "failed"
    jobs = {j.name: j for j in pipeline.jobs.list()}
    assert {name: j.status for name, j in jobs.items()} == {
        "test": "success",
        "sonar": "failed",
        "build": "skipped",
        "trivy": "skipped",
        "push": "skipped",
    }
    assert jobs["sonar"].failure_reason == "script_failure"
    assert app.jobs.get(jobs["sonar"].id).trace().decode().rstrip().endswith("ERROR: Job failed: exit code 1")
    assert [j.name for j in pipeline.jobs.list(scope="failed")] == ["sonar"]

    del state.scenarios[app.path_with_namespace]
    pipeline.retry()
    wait_for(lambda: finished(state, pipeline_id))
    assert app.pipelines.get(pipeline_id).status == "success"
    assert len(pipeline.jobs.list(include_retried=True)) == 9  # 5 current + 4 retried


def test_stuck_job_times_out_and_cancel(state: State, admin: gitlab.Gitlab) -> None:
    group = make_group(admin)
    app = ci_project(admin, group, path="app")
    state.scenarios[app.path_with_namespace] = "stuck:build"
    pipeline = app.pipelines.create({"ref": "main", "variables": [{"key": "DEPLOY", "value": "yes"}]})
    assert pipeline.source == "api"
    assert app.pipelines.get(pipeline.id).variables.list()[0].key == "DEPLOY"
    build = wait_for(
        lambda: next(
            (j for j in app.pipelines.get(pipeline.id).jobs.list() if j.name == "build" and j.status == "running"),
            None,
        )
    )
    assert build.status == "running"
    wait_for(lambda: finished(state, pipeline.id))
    job = app.jobs.get(build.id)
    assert (job.status, job.failure_reason) == ("failed", "job_execution_timeout")

    state.timings.stuck_timeout_seconds = 30
    try:
        second = app.pipelines.create({"ref": "main"})
        wait_for(lambda: any(j.status == "running" and j.name == "build" for j in second.jobs.list()))
        second.cancel()
        assert app.pipelines.get(second.id).status == "canceled"
        assert {j.name: j.status for j in second.jobs.list()}["build"] == "canceled"
    finally:
        state.timings.stuck_timeout_seconds = 0.1


def test_pipeline_errors_and_listing(server: EmulatorServer, state: State, admin: gitlab.Gitlab) -> None:
    group = make_group(admin)
    bare = make_project(admin, group, initialize_with_readme=True)
    with pytest.raises(glexc.GitlabCreateError) as no_ci:
        bare.pipelines.create({"ref": "main"})
    assert no_ci.value.response_code == 400
    assert json.loads(no_ci.value.response_body or b"{}") == {"message": {"base": ["Missing CI config file"]}}

    app = ci_project(admin, group, path="app")  # committing the CI file starts a push pipeline
    pushed = wait_for(lambda: state.pipelines_of(app.path_with_namespace))[0].id
    app.branches.create({"branch": "develop", "ref": "main"})
    ids = [pushed, *(app.pipelines.create({"ref": ref}).id for ref in ("develop", "main"))]
    wait_for(lambda: all(finished(state, pipeline_id) for pipeline_id in ids))
    assert [p.id for p in app.pipelines.list(ref="main")] == [ids[2], ids[0]]
    assert [p.source for p in app.pipelines.list(sort="asc", get_all=True)] == ["push", "api", "api"]
    assert [p.id for p in app.pipelines.list(status="success", get_all=True)] == ids[::-1]
    assert app.pipelines.latest(ref="develop").id == ids[1]
    answer = raw(server, "GET", f"/api/v4/projects/{app.id}/pipelines?per_page=2", state.root_token)
    assert answer.headers["X-Total"] == "3" and answer.headers["X-Next-Page"] == "2"
    missing = raw(server, "GET", f"/api/v4/projects/{app.id}/jobs/999999/trace", state.root_token)
    assert missing.status_code == 404


def _hooked_project(state: State, admin: gitlab.Gitlab, capture: Capture) -> tuple[Any, Any]:
    project = make_project(admin, make_group(admin), initialize_with_readme=True)
    return project, project.hooks.create({"url": capture.url, "push_events": True, "token": "t0k"})


def _push(project: Any) -> None:
    name = unique("f")
    project.files.create({"file_path": name, "branch": "main", "content": "x", "commit_message": name})


def _deliveries_of(state: State, hook_id: int) -> list[dict[str, Any]]:
    return [d for d in state.deliveries() if d["hook_id"] == hook_id]


@pytest.mark.parametrize("answer", [400, 503])
def test_a_failed_delivery_is_never_resent(state: State, admin: gitlab.Gitlab, capture: Capture, answer: int) -> None:
    project, hook = _hooked_project(state, admin, capture)
    capture.status = answer
    try:
        _push(project)
        wait_for(lambda: _deliveries_of(state, hook.id))
        _push(project)  # a later event still goes out: the queue was not held by a retry
        wait_for(lambda: len(_deliveries_of(state, hook.id)) == 2)
        assert state.engine.hooks.in_flight == 0
        assert [d["status"] for d in _deliveries_of(state, hook.id)] == [answer, answer]
    finally:
        capture.status = 200


def test_each_request_has_its_own_webhook_uuid_and_each_event_its_own_keys(
    state: State, admin: gitlab.Gitlab, capture: Capture
) -> None:
    project, hook = _hooked_project(state, admin, capture)
    second = project.hooks.create({"url": capture.url, "push_events": True})
    _push(project)
    _push(project)
    wait_for(lambda: len(_deliveries_of(state, hook.id)) == 2 and len(_deliveries_of(state, second.id)) == 2)
    mine = [d["headers"] for d in _deliveries_of(state, hook.id)]
    other = [d["headers"] for d in _deliveries_of(state, second.id)]
    every = mine + other
    assert len({h["X-Gitlab-Webhook-UUID"] for h in every}) == 4
    assert len({h["Idempotency-Key"] for h in every}) == 4  # one WebHookService per hook and event
    # The event UUID is the causing request's: the same for both hooks, new for the next push.
    assert [h["X-Gitlab-Event-UUID"] for h in mine] == [h["X-Gitlab-Event-UUID"] for h in other]
    assert mine[0]["X-Gitlab-Event-UUID"] != mine[1]["X-Gitlab-Event-UUID"]
    assert {h["X-Gitlab-Instance"] for h in every} == {state.url()}


def test_a_hook_failing_four_times_in_a_row_is_disabled_for_a_minute_then_doubling(
    state: State, admin: gitlab.Gitlab, capture: Capture
) -> None:
    project, hook = _hooked_project(state, admin, capture)
    capture.status = 500
    try:
        for count in range(1, 4):
            _push(project)
            wait_for(lambda: len(_deliveries_of(state, hook.id)) == count)  # noqa: B023 (awaited here)
            assert project.hooks.get(hook.id).alert_status == "executable"
        started = time.time()
        _push(project)
        wait_for(lambda: len(_deliveries_of(state, hook.id)) == 4)
        wait_for(lambda: state.hooks[hook.id].disabled_until is not None)
        shown = project.hooks.get(hook.id)
        assert shown.alert_status == "temporarily_disabled" and shown.disabled_until
        until = state.hooks[hook.id].disabled_until or 0.0
        assert started + 59 <= until <= time.time() + 61  # INITIAL_BACKOFF = 1 minute
        _push(project)  # while disabled nothing is sent
        time.sleep(0.05)
        assert len(_deliveries_of(state, hook.id)) == 4

        state.hooks[hook.id].disabled_until = time.time() - 1  # the minute is over
        _push(project)
        wait_for(lambda: len(_deliveries_of(state, hook.id)) == 5)
        wait_for(lambda: state.hooks[hook.id].recent_failures == 5)
        second = (state.hooks[hook.id].disabled_until or 0.0) - time.time()
        assert 110 < second <= 120  # doubled: 2 minutes

        capture.status = 200
        state.hooks[hook.id].disabled_until = time.time() - 1
        _push(project)
        wait_for(lambda: state.hooks[hook.id].recent_failures == 0)  # enable! after a success
        assert project.hooks.get(hook.id).alert_status == "executable"
    finally:
        capture.status = 200
