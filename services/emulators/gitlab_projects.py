"""Projects, repository (files, commits, branches, tree) and pipeline trigger tokens."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from services.emulators.gitlab_http import (
    Ctx,
    Router,
    accepted,
    as_bool,
    bad_request,
    forbidden,
    json_response,
    no_content,
    not_found,
    paged_response,
    param_error,
    require,
    validate_path,
)
from services.emulators.gitlab_repo import Action, Commit, now_iso
from services.emulators.gitlab_state import (
    DEVELOPER,
    MAINTAINER,
    OWNER,
    REPORTER,
    VISIBILITIES,
    Project,
    Trigger,
    User,
)
from services.emulators.gitlab_views import branch_json, commit_json, project_json, trigger_json

if TYPE_CHECKING:
    from services.emulators.gitlab_state import State

router = Router()

PROJECT_FIELDS = ("name", "description", "ci_config_path", "visibility", "topics")


def _path_from_name(name: str) -> str:
    # GitLab's ``parameterize``: lower case, runs of other characters become one dash.
    return re.sub(r"[^a-z0-9_.]+", "-", name.lower()).strip("-") or "project"


def _sort_projects(ctx: Ctx, state: State, projects: list[Project]) -> list[Project]:
    order = str(ctx.arg("order_by", "created_at"))
    keys: dict[str, Any] = {
        "id": lambda p: p.id,
        "name": lambda p: p.name.lower(),
        "path": lambda p: state.project_path(p).lower(),
        "created_at": lambda p: (p.created_at, p.id),
        "updated_at": lambda p: (p.last_activity_at, p.id),
        "last_activity_at": lambda p: (p.last_activity_at, p.id),
    }
    return sorted(projects, key=keys.get(order, keys["created_at"]), reverse=str(ctx.arg("sort", "desc")) != "asc")


def _filter_projects(ctx: Ctx, state: State, projects: list[Project]) -> list[Project]:
    search = str(ctx.arg("search", "")).lower()
    if search:
        in_namespace = as_bool(ctx.arg("search_namespaces"))
        projects = [
            p
            for p in projects
            if search in p.name.lower()
            or search in p.path.lower()
            or (in_namespace and search in state.project_path(p).lower())
        ]
    if as_bool(ctx.arg("membership")):
        projects = [p for p in projects if state.project_access(ctx.user_id, p) > 0]
    if as_bool(ctx.arg("owned")):
        projects = [p for p in projects if state.project_access(ctx.user_id, p) >= OWNER]
    if ctx.arg("visibility"):
        projects = [p for p in projects if p.visibility == ctx.arg("visibility")]
    if ctx.arg("topic"):
        projects = [p for p in projects if ctx.arg("topic") in p.topics]
    return _sort_projects(ctx, state, projects)


# --- projects --------------------------------------------------------------------------------


@router.route("GET", "/api/v4/projects")
async def list_projects(ctx: Ctx, state: State) -> Response:
    with state.lock:
        projects = [p for p in state.projects.values() if state.can_see_project(ctx.user_id, p)]
        projects = _filter_projects(ctx, state, projects)
        return paged_response(ctx.request, [project_json(state, p) for p in projects])


@router.route("GET", "/api/v4/groups/{id}/projects")
async def list_group_projects(ctx: Ctx, state: State) -> Response:
    with state.lock:
        group = state.visible_group(ctx.path["id"], ctx.user_id)
        if as_bool(ctx.arg("include_subgroups")):
            candidates = state.projects_under(group)
        else:
            candidates = [p for p in state.projects.values() if p.namespace_id == group.id]
        projects = [p for p in candidates if state.can_see_project(ctx.user_id, p)]
        projects = _filter_projects(ctx, state, projects)
        return paged_response(ctx.request, [project_json(state, p) for p in projects])


@router.route("POST", "/api/v4/projects")
async def create_project(ctx: Ctx, state: State) -> Response:
    name, path = ctx.arg("name"), ctx.arg("path")
    if not name and not path:
        raise param_error("name, path are missing, at least one parameter must be provided")
    name = str(name or path)
    path = str(path or _path_from_name(name))
    validate_path(path)
    visibility = str(ctx.arg("visibility", "private"))
    if visibility not in VISIBILITIES:
        raise param_error("visibility does not have a valid value")
    with state.lock:
        user = state.users[ctx.user_id or 0]
        namespace_ref = ctx.arg("namespace_id") or ctx.arg("namespace")
        namespace = state.namespace(namespace_ref) if namespace_ref else state.namespaces[user.namespace_id]
        if namespace.kind == "group" and not state.can_see_group(ctx.user_id, namespace):
            raise not_found("Namespace")
        if state.group_access(ctx.user_id, namespace) < MAINTAINER:
            raise forbidden()
        project = state.create_project(
            name,
            path,
            namespace.id,
            user.id,
            ci_config_path=str(ctx.arg("ci_config_path", "")),
            visibility=visibility,
            description=str(ctx.arg("description", "")),
        )
        project.topics = _topics(ctx.arg("topics", []))
        if ctx.arg("default_branch"):
            project.repo.default_branch = str(ctx.params["default_branch"])
        if as_bool(ctx.arg("initialize_with_readme")):
            state.init_readme(project, user)
        return json_response(project_json(state, project), status=201)


def _topics(value: Any) -> list[str]:
    if isinstance(value, str):
        return [t.strip() for t in value.split(",") if t.strip()]
    return [str(t) for t in value or []]


@router.route("GET", "/api/v4/projects/{id}")
async def get_project(ctx: Ctx, state: State) -> Response:
    with state.lock:
        project = state.visible_project(ctx.path["id"], ctx.user_id)
        return json_response(project_json(state, project, viewer_id=ctx.user_id))


@router.route("PUT", "/api/v4/projects/{id}")
async def update_project(ctx: Ctx, state: State) -> Response:
    with state.lock:
        project = state.visible_project(ctx.path["id"], ctx.user_id)
        state.require_project_access(ctx.user_id, project, MAINTAINER)
        if "visibility" in ctx.params and ctx.params["visibility"] not in VISIBILITIES:
            raise param_error("visibility does not have a valid value")
        if "path" in ctx.params and ctx.params["path"] != project.path:
            _rename_path(state, project, str(ctx.params["path"]))
        for key in PROJECT_FIELDS:
            if key in ctx.params:
                value = ctx.params[key]
                setattr(project, key, _topics(value) if key == "topics" else str(value or ""))
        if ctx.arg("default_branch"):
            project.repo.default_branch = str(ctx.params["default_branch"])
        project.last_activity_at = now_iso()
        return json_response(project_json(state, project, viewer_id=ctx.user_id))


def _rename_path(state: State, project: Project, path: str) -> None:
    validate_path(path)
    siblings = [p for p in state.projects.values() if p.namespace_id == project.namespace_id and p is not project]
    if any(p.path.lower() == path.lower() for p in siblings):
        raise bad_request({"path": ["has already been taken"]})
    project.path = path


@router.route("DELETE", "/api/v4/projects/{id}")
async def delete_project(ctx: Ctx, state: State) -> Response:
    with state.lock:
        project = state.visible_project(ctx.path["id"], ctx.user_id)
        state.require_project_access(ctx.user_id, project, OWNER)
        if project.marked_for_deletion_on and as_bool(ctx.arg("permanently_remove")):
            state.remove_project(project.id)
            return accepted()
    state.mark_project_for_deletion(project)
    return accepted()


# --- repository: helpers ---------------------------------------------------------------------


def _readable(ctx: Ctx, state: State) -> Project:
    """A project whose code the caller may read (reporter+ on private projects)."""
    project = state.visible_project(ctx.path["id"], ctx.user_id)
    if project.visibility == "private" and state.project_access(ctx.user_id, project) < REPORTER:
        raise forbidden()
    return project


def _writable(ctx: Ctx, state: State) -> Project:
    project = state.visible_project(ctx.path["id"], ctx.user_id)
    state.require_project_access(ctx.user_id, project, DEVELOPER)
    return project


def _decode(content: Any, encoding: Any) -> bytes:
    text = "" if content is None else str(content)
    if str(encoding or "text") == "base64":
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise bad_request("content is not valid base64") from exc
    if encoding not in (None, "", "text"):
        raise param_error("encoding does not have a valid value")
    return text.encode()


def _author(ctx: Ctx, user: User) -> tuple[str, str]:
    return str(ctx.arg("author_name", user.name)), str(ctx.arg("author_email", user.email))


def commit_and_notify(
    state: State,
    project: Project,
    branch: str,
    actions: list[Action],
    message: str,
    author: tuple[str, str],
    user: User,
    start_branch: str | None = None,
) -> Commit:
    """Commit through the API and let the engine send the Push Hook and start CI, like GitLab."""
    before = project.repo.branches.get(branch)
    commit = project.repo.commit(branch, actions, message, author[0], author[1], start_branch)
    project.last_activity_at = now_iso()
    if state.engine is not None:
        state.engine.on_push(project, branch, before, commit, user)
    return commit


def _commit_at(project: Project, ref: str) -> Commit:
    commit = project.repo.resolve(ref)
    if commit is None:
        raise not_found("Commit")
    return commit


def _file_headers(project: Project, path: str, ref: str, commit: Commit) -> dict[str, str]:
    blob = commit.tree[path]
    last = project.repo.last_commit_for(path, commit.id)
    return {
        "X-Gitlab-File-Name": path.rsplit("/", 1)[-1],
        "X-Gitlab-File-Path": path,
        "X-Gitlab-Size": str(len(blob.data)),
        "X-Gitlab-Encoding": "base64",
        "X-Gitlab-Blob-Id": blob.blob_id,
        "X-Gitlab-Commit-Id": commit.id,
        "X-Gitlab-Last-Commit-Id": last.id if last else commit.id,
        "X-Gitlab-Content-Sha256": blob.sha256,
        "X-Gitlab-Ref": ref,
        "X-Gitlab-Execute-Filemode": "true" if blob.executable else "false",
    }


def _file_at(ctx: Ctx, project: Project, ref: str) -> tuple[str, Commit]:
    path = ctx.path["file_path"]
    commit = _commit_at(project, ref)
    if path not in commit.tree:
        raise not_found("File")
    return path, commit


# --- repository: files -----------------------------------------------------------------------

FILES = "/api/v4/projects/{id}/repository/files/{file_path}"


@router.route("GET,HEAD", FILES)
async def get_file(ctx: Ctx, state: State) -> Response:
    require(ctx.params, "ref")
    ref = str(ctx.params["ref"])
    with state.lock:
        project = _readable(ctx, state)
        path, commit = _file_at(ctx, project, ref)
        headers = _file_headers(project, path, ref, commit)
        if ctx.request.method == "HEAD":
            return Response(status_code=200, headers=headers)
        blob = commit.tree[path]
        body = {
            "file_name": headers["X-Gitlab-File-Name"],
            "file_path": path,
            "size": len(blob.data),
            "encoding": "base64",
            "content": base64.b64encode(blob.data).decode(),
            "content_sha256": blob.sha256,
            "ref": ref,
            "blob_id": blob.blob_id,
            "commit_id": commit.id,
            "last_commit_id": headers["X-Gitlab-Last-Commit-Id"],
            "execute_filemode": blob.executable,
        }
        return json_response(body, headers=headers)


@router.route("GET", FILES + "/raw")
async def get_raw_file(ctx: Ctx, state: State) -> Response:
    with state.lock:
        project = _readable(ctx, state)
        ref = str(ctx.arg("ref", project.repo.default_branch))
        path, commit = _file_at(ctx, project, ref)
        headers = _file_headers(project, path, ref, commit)
        return Response(commit.tree[path].data, media_type="text/plain; charset=utf-8", headers=headers)


def _file_action(ctx: Ctx, kind: str) -> Action:
    executable = as_bool(ctx.params["execute_filemode"]) if "execute_filemode" in ctx.params else None
    content = b"" if kind == "delete" else _decode(ctx.params.get("content"), ctx.params.get("encoding"))
    return Action(kind, ctx.path["file_path"], content, executable=executable)


async def _write_file(ctx: Ctx, state: State, kind: str) -> Response:
    needed = ("branch", "commit_message") if kind == "delete" else ("branch", "content", "commit_message")
    missing = [n for n in needed if ctx.params.get(n) is None or (n != "content" and ctx.params.get(n) == "")]
    if missing:
        raise param_error(", ".join(f"{n} is missing" for n in missing))
    branch = str(ctx.params["branch"])
    with state.lock:
        project = _writable(ctx, state)
        user = state.users[ctx.user_id or 0]
        last_known = ctx.arg("last_commit_id")
        if kind == "update" and last_known:
            last = project.repo.last_commit_for(ctx.path["file_path"], branch)
            if last is not None and last.id != last_known:
                raise bad_request("You are attempting to update a file that has changed since you started editing it.")
        commit_and_notify(
            state,
            project,
            branch,
            [_file_action(ctx, kind)],
            str(ctx.params["commit_message"]),
            _author(ctx, user),
            user,
            ctx.arg("start_branch"),
        )
    if kind == "delete":
        return no_content()
    return json_response(
        {"file_path": ctx.path["file_path"], "branch": branch}, status=201 if kind == "create" else 200
    )


@router.route("POST", FILES)
async def create_file(ctx: Ctx, state: State) -> Response:
    return await _write_file(ctx, state, "create")


@router.route("PUT", FILES)
async def update_file(ctx: Ctx, state: State) -> Response:
    return await _write_file(ctx, state, "update")


@router.route("DELETE", FILES)
async def delete_file(ctx: Ctx, state: State) -> Response:
    return await _write_file(ctx, state, "delete")


@router.route("GET", "/api/v4/projects/{id}/repository/tree")
async def get_tree(ctx: Ctx, state: State) -> Response:
    with state.lock:
        project = _readable(ctx, state)
        commit = project.repo.resolve(ctx.arg("ref"))
        if commit is None:
            raise not_found("Tree")
        prefix = str(ctx.arg("path", "")).strip("/")
        recursive = as_bool(ctx.arg("recursive"))
        return paged_response(ctx.request, _tree_entries(commit, prefix, recursive))


def _tree_entries(commit: Commit, prefix: str, recursive: bool) -> list[dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {}
    start = f"{prefix}/" if prefix else ""
    for path, blob in sorted(commit.tree.items()):
        if not path.startswith(start):
            continue
        rest = path[len(start) :].split("/")
        for depth in range(1, len(rest)):
            folder = start + "/".join(rest[:depth])
            if recursive or depth == 1:
                entries.setdefault(folder, _entry(folder, "tree", "040000", ""))
            if not recursive:
                break
        if recursive or len(rest) == 1:
            entries[path] = _entry(path, "blob", "100755" if blob.executable else "100644", blob.blob_id)
    return [entries[key] for key in sorted(entries)]


def _entry(path: str, kind: str, mode: str, blob_id: str) -> dict[str, Any]:
    return {
        "id": blob_id or "0" * 40,
        "name": path.rsplit("/", 1)[-1],
        "type": kind,
        "path": path,
        "mode": mode,
    }


# --- repository: commits ---------------------------------------------------------------------


@router.route("GET", "/api/v4/projects/{id}/repository/commits")
async def list_commits(ctx: Ctx, state: State) -> Response:
    with state.lock:
        project = _readable(ctx, state)
        commits = list(project.repo.history(ctx.arg("ref_name")))
        path = ctx.arg("path")
        if path:
            commits = [c for c in commits if path in (*c.added, *c.modified, *c.removed)]
        return paged_response(ctx.request, [commit_json(state, project, c) for c in commits])


@router.route("GET", "/api/v4/projects/{id}/repository/commits/{sha}")
async def get_commit(ctx: Ctx, state: State) -> Response:
    with state.lock:
        project = _readable(ctx, state)
        return json_response(commit_json(state, project, _commit_at(project, ctx.path["sha"]), detail=True))


def _actions(raw: Any) -> list[Action]:
    if not isinstance(raw, list) or not raw:
        raise param_error("actions is missing")
    actions = []
    for item in raw:
        if not isinstance(item, dict):
            raise param_error("actions is invalid")
        if not item.get("action"):
            raise param_error("actions[action] is missing")
        if not item.get("file_path"):
            raise param_error("actions[file_path] is missing")
        kind = str(item["action"])
        content = b"" if kind in ("delete", "chmod") else _decode(item.get("content"), item.get("encoding"))
        executable = as_bool(item["execute_filemode"]) if "execute_filemode" in item else None
        actions.append(
            Action(
                kind,
                str(item["file_path"]),
                content,
                previous_path=item.get("previous_path"),
                executable=executable,
                last_commit_id=item.get("last_commit_id"),
            )
        )
    return actions


@router.route("POST", "/api/v4/projects/{id}/repository/commits")
async def create_commit(ctx: Ctx, state: State) -> Response:
    require(ctx.params, "branch", "commit_message")
    actions = _actions(ctx.params.get("actions"))
    with state.lock:
        project = _writable(ctx, state)
        user = state.users[ctx.user_id or 0]
        commit = commit_and_notify(
            state,
            project,
            str(ctx.params["branch"]),
            actions,
            str(ctx.params["commit_message"]),
            _author(ctx, user),
            user,
            ctx.arg("start_branch"),
        )
        return json_response(commit_json(state, project, commit, detail=True), status=201)


@router.route("POST", "/api/v4/projects/{id}/repository/commits/{sha}/revert")
async def revert_commit(ctx: Ctx, state: State) -> Response:
    require(ctx.params, "branch")
    branch = str(ctx.params["branch"])
    with state.lock:
        project = _writable(ctx, state)
        user = state.users[ctx.user_id or 0]
        before = project.repo.branches.get(branch)
        commit = project.repo.revert(ctx.path["sha"], branch, user.name, user.email)
        project.last_activity_at = now_iso()
        if state.engine is not None:
            state.engine.on_push(project, branch, before, commit, user)
        return json_response(commit_json(state, project, commit, detail=True), status=201)


# --- repository: branches --------------------------------------------------------------------


@router.route("GET", "/api/v4/projects/{id}/repository/branches")
async def list_branches(ctx: Ctx, state: State) -> Response:
    with state.lock:
        project = _readable(ctx, state)
        search = str(ctx.arg("search", "")).lower()
        names = sorted(n for n in project.repo.branches if search in n.lower())
        return paged_response(ctx.request, [branch_json(state, project, n) for n in names])


@router.route("GET", "/api/v4/projects/{id}/repository/branches/{branch}")
async def get_branch(ctx: Ctx, state: State) -> Response:
    with state.lock:
        project = _readable(ctx, state)
        if ctx.path["branch"] not in project.repo.branches:
            raise not_found("Branch")
        return json_response(branch_json(state, project, ctx.path["branch"]))


@router.route("POST", "/api/v4/projects/{id}/repository/branches")
async def create_branch(ctx: Ctx, state: State) -> Response:
    require(ctx.params, "branch", "ref")
    with state.lock:
        project = _writable(ctx, state)
        name = str(ctx.params["branch"])
        project.repo.create_branch(name, str(ctx.params["ref"]))
        return json_response(branch_json(state, project, name), status=201)


@router.route("DELETE", "/api/v4/projects/{id}/repository/branches/{branch}")
async def delete_branch(ctx: Ctx, state: State) -> Response:
    with state.lock:
        project = _writable(ctx, state)
        name = ctx.path["branch"]
        if name not in project.repo.branches:
            raise not_found("Branch")
        if name == project.repo.default_branch:
            raise bad_request("The default branch of a project cannot be deleted.")
        del project.repo.branches[name]
        return no_content()


# --- pipeline trigger tokens -----------------------------------------------------------------


def _maintained(ctx: Ctx, state: State) -> Project:
    project = state.visible_project(ctx.path["id"], ctx.user_id)
    state.require_project_access(ctx.user_id, project, MAINTAINER)
    return project


def _trigger(state: State, project: Project, trigger_id: str) -> Trigger:
    trigger = state.triggers.get(int(trigger_id)) if trigger_id.isdigit() else None
    if trigger is None or trigger.project_id != project.id:
        raise not_found("Trigger")
    return trigger


@router.route("GET", "/api/v4/projects/{id}/triggers")
async def list_triggers(ctx: Ctx, state: State) -> Response:
    with state.lock:
        project = _maintained(ctx, state)
        triggers = [t for t in state.triggers.values() if t.project_id == project.id]
        return paged_response(ctx.request, [trigger_json(state, t, ctx.user_id) for t in triggers])


@router.route("GET", "/api/v4/projects/{id}/triggers/{trigger_id}")
async def get_trigger(ctx: Ctx, state: State) -> Response:
    with state.lock:
        project = _maintained(ctx, state)
        trigger = _trigger(state, project, ctx.path["trigger_id"])
        return json_response(trigger_json(state, trigger, ctx.user_id))


@router.route("POST", "/api/v4/projects/{id}/triggers")
async def create_trigger(ctx: Ctx, state: State) -> Response:
    require(ctx.params, "description")
    with state.lock:
        project = _maintained(ctx, state)
        trigger = Trigger(
            state.next_id("trigger"),
            project.id,
            str(ctx.params["description"]),
            "glptt-" + secrets.token_hex(20),
            ctx.user_id or 0,
        )
        state.triggers[trigger.id] = trigger
        return json_response(trigger_json(state, trigger, ctx.user_id), status=201)


@router.route("PUT", "/api/v4/projects/{id}/triggers/{trigger_id}")
async def update_trigger(ctx: Ctx, state: State) -> Response:
    with state.lock:
        project = _maintained(ctx, state)
        trigger = _trigger(state, project, ctx.path["trigger_id"])
        if "description" in ctx.params:
            trigger.description = str(ctx.params["description"])
            trigger.updated_at = now_iso()
        return json_response(trigger_json(state, trigger, ctx.user_id))


@router.route("DELETE", "/api/v4/projects/{id}/triggers/{trigger_id}")
async def delete_trigger(ctx: Ctx, state: State) -> Response:
    with state.lock:
        project = _maintained(ctx, state)
        trigger = _trigger(state, project, ctx.path["trigger_id"])
        del state.triggers[trigger.id]
        return no_content()
