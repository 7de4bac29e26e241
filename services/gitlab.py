"""GitLab, as the bot's admin token sees it: a thin typed layer over python-gitlab.

python-gitlab is blocking (requests), so every call runs in a worker thread through
:func:`~services.base.in_thread`. Its own retries are switched off (no sleeping on ``429``, no
retry of ``5xx``): the caller decides when to retry, with the ``retry_after`` of the error.

Secrets (trigger tokens, group access tokens, webhook tokens) are returned to the caller, who
stores them in Vault; they never appear in an :class:`~services.base.Ensured` ``what`` nor in a
:class:`~services.errors.ServiceError`.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import gitlab
import requests
from gitlab.exceptions import GitlabError

from services.base import Ensured, in_thread, unchanged
from services.errors import Failure, ServiceError, failure_for_status

SERVICE = "GitLab"
T = TypeVar("T")
Json = dict[str, Any]

# Listings ask for GitLab's largest page (lib/api/helpers/pagination.rb: per_page is capped by
# Kaminari's max_per_page, 100) and python-gitlab's get_all follows the ``Link: rel="next"`` pages.
PER_PAGE = 100
# A failed job's reply shows the end of its log: read as a stream, at most this much is held.
TRACE_TAIL_LINES = 40
TRACE_LINE_BYTES = 4096
TRACE_CHUNK_BYTES = 65536
HOOK_EVENTS = ("push_events", "tag_push_events", "merge_requests_events", "pipeline_events", "job_events")


# --- returned objects ------------------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    id: int
    full_path: str
    web_url: str


@dataclass(frozen=True)
class Project:
    id: int
    path: str
    path_with_namespace: str
    web_url: str
    http_url_to_repo: str
    default_branch: str | None  # None while the repository is empty on some GitLab versions


@dataclass(frozen=True)
class User:
    id: int
    username: str
    email: str
    name: str


@dataclass(frozen=True)
class Pipeline:
    id: int
    project_id: int
    status: str
    ref: str
    sha: str
    web_url: str
    source: str
    created_at: str


@dataclass(frozen=True)
class Job:
    id: int
    name: str
    stage: str
    status: str
    web_url: str
    failure_reason: str | None


@dataclass(frozen=True)
class TraceTail:
    text: str  # the last lines of a job's log
    skipped: int  # how many lines come before them


def _group(data: Json) -> Group:
    return Group(int(data["id"]), str(data["full_path"]), str(data.get("web_url") or ""))


def _project(data: Json) -> Project:
    return Project(
        int(data["id"]),
        str(data["path"]),
        str(data["path_with_namespace"]),
        str(data.get("web_url") or ""),
        str(data.get("http_url_to_repo") or ""),
        data.get("default_branch") or None,
    )


def _user(data: Json) -> User:
    return User(
        int(data["id"]),
        str(data.get("username") or ""),
        str(data.get("email") or ""),
        str(data.get("name") or ""),
    )


def _pipeline(data: Json) -> Pipeline:
    return Pipeline(
        int(data["id"]),
        int(data["project_id"]),
        str(data.get("status") or ""),
        str(data.get("ref") or ""),
        str(data.get("sha") or ""),
        str(data.get("web_url") or ""),
        str(data.get("source") or ""),
        str(data.get("created_at") or ""),
    )


def _job(data: Json) -> Job:
    return Job(
        int(data["id"]),
        str(data.get("name") or ""),
        str(data.get("stage") or ""),
        str(data.get("status") or ""),
        str(data.get("web_url") or ""),
        data.get("failure_reason") or None,
    )


def token_expiry(days: int, today: date | None = None) -> str:
    """``expires_at`` of an access token ``days`` from now, one day short, as a UTC date.

    GitLab refuses a date beyond ``Date.current + 365`` where ``Date.current`` is in the instance's
    time zone (gitlabhq/gitlabhq:app/models/personal_access_token.rb,
    ``expires_at_before_instance_max_expiry_date``): the bot's local date, or an instance whose day
    is still yesterday's, would be refused with 400 on the longest lifetime.
    """
    start = today or datetime.now(UTC).date()
    return (start + timedelta(days=max(1, days - 1))).isoformat()


def _attrs(obj: Any) -> Json:
    """The attributes of a python-gitlab object (or a plain dict answer)."""
    if isinstance(obj, dict):
        return obj
    attributes: Json = obj.attributes
    return attributes


def _unless_inherited(call: Callable[[], Any]) -> Callable[[], bool]:
    """``call`` → True; False where GitLab refuses a level below an inherited membership."""

    def guarded() -> bool:
        try:
            call()
        except GitlabError as exc:
            if exc.response_code == 400 and "inherited membership" in str(exc.error_message):
                return False
            raise
        return True

    return guarded


# --- the client ------------------------------------------------------------------------------


class _Client(gitlab.Gitlab):
    """python-gitlab without its own retries: a 429 or a 5xx is reported at once."""

    def http_request(self, verb: str, path: str, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs["obey_rate_limit"] = False
        kwargs["retry_transient_errors"] = False
        kwargs["max_retries"] = 0
        return super().http_request(verb, path, *args, **kwargs)


class GitLab:
    def __init__(self, url: str, token: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.gl = _Client(self.url, private_token=token, timeout=timeout, keep_base_url=True)
        # The Retry-After of the last 429, per worker thread (python-gitlab's errors drop headers).
        self._local = threading.local()
        self.gl.session.hooks["response"].append(self._remember_retry_after)

    async def close(self) -> None:
        await in_thread(SERVICE, self.gl.session.close, self.timeout)

    def ui_url(self, full_path: str) -> str:
        """The page of a group or project, for links shown to users."""
        return f"{self.url}/{full_path.strip('/')}"

    # -- plumbing -------------------------------------------------------------------------------

    def _remember_retry_after(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if response.status_code == 429:
            self._local.retry_after = response.headers.get("Retry-After")

    async def _call(self, what: str, call: Callable[[], T], requests_count: int = 1) -> T:
        """Run a blocking python-gitlab call; ``what`` (no secret) becomes the error's detail."""

        def guarded() -> T:
            self._local.retry_after = None
            try:
                return call()
            except GitlabError as exc:
                status = exc.response_code
                if status is None:
                    raise ServiceError(SERVICE, Failure.UNAVAILABLE, detail=f"{what}: bad answer") from None
                retry = getattr(self._local, "retry_after", None) if status == 429 else None
                raise ServiceError(
                    SERVICE,
                    failure_for_status(status),
                    status,
                    retry_after=float(retry) if retry and str(retry).isdigit() else None,
                    detail=what,
                ) from None
            except requests.Timeout:
                raise ServiceError(SERVICE, Failure.UNAVAILABLE, detail=f"{what}: timeout") from None
            except requests.RequestException:
                raise ServiceError(SERVICE, Failure.UNAVAILABLE, detail=f"{what}: unreachable") from None

        # Each HTTP request has ``timeout``; a call making several gets a budget for each.
        return await in_thread(SERVICE, guarded, self.timeout * requests_count + 1.0)

    async def _maybe(self, what: str, call: Callable[[], T]) -> T | None:
        """Like ``_call`` but a 404 gives None."""
        try:
            return await self._call(what, call)
        except ServiceError as exc:
            if exc.failure is Failure.NOT_FOUND:
                return None
            raise

    # -- instance and users ---------------------------------------------------------------------

    async def version(self) -> str:
        data = await self._call("read version", lambda: self.gl.http_get("/version"))
        return str(_attrs(data).get("version") or "")

    async def find_user_by_email(self, email: str) -> User | None:
        """Admin search by e-mail, then an exact (case-insensitive) match on the address."""
        wanted = email.strip().lower()
        users = await self._call(
            "search users", lambda: self.gl.users.list(search=wanted, get_all=True, per_page=PER_PAGE), requests_count=3
        )
        for user in users:
            data = _attrs(user)
            if str(data.get("email") or "").lower() == wanted:
                return _user(data)
        return None

    # -- groups ---------------------------------------------------------------------------------

    async def find_group(self, full_path: str) -> Group | None:
        path = full_path.strip("/")
        found = await self._maybe(f"read group {path}", lambda: self.gl.groups.get(path, with_projects=False))
        return _group(_attrs(found)) if found is not None else None

    async def ensure_group(self, full_path: str, name: str | None = None, description: str = "") -> Ensured[Group]:
        """The group at ``full_path``, creating missing segments (private) under an existing root.

        ``name`` and ``description`` apply to the last segment when it is created; an existing
        group is kept as it is.
        """
        segments = [s for s in full_path.strip("/").split("/") if s]
        if not segments:
            raise ValueError("empty group path")
        existing = await self.find_group("/".join(segments))
        if existing is not None:
            return unchanged(existing)
        root = await self.find_group(segments[0])
        if root is None:
            raise ServiceError(SERVICE, Failure.NOT_FOUND, 404, detail=f"root group {segments[0]} not found")
        parent = root
        created: list[str] = []
        for depth in range(2, len(segments) + 1):
            path = "/".join(segments[:depth])
            found = await self.find_group(path)
            if found is None:
                last = depth == len(segments)
                segment = segments[depth - 1]
                data: Json = {
                    "name": (name or segment) if last else segment,
                    "path": segment,
                    "parent_id": parent.id,
                    "visibility": "private",
                }
                if last and description:
                    data["description"] = description
                group = await self._call(f"create group {path}", partial(self.gl.groups.create, data))
                found = _group(_attrs(group))
                created.append(found.full_path)
            parent = found
        label = "group" if len(created) == 1 else "groups"
        return Ensured(parent, True, f"created {label} {', '.join(created)}")

    async def delete_group(self, full_path: str) -> bool:
        """Delete a group and everything in it; False if it was not there.

        GitLab 18 first marks a group for deletion (renaming it); it is then removed for good,
        like the console does, so that its path is free at once.
        """
        group = await self.find_group(full_path)
        if group is None:
            return False
        await self._call(f"delete group {group.full_path}", lambda: self.gl.groups.delete(group.id))
        marked = await self._maybe(f"read group {group.id}", lambda: self.gl.groups.get(group.id, with_projects=False))
        if marked is not None and _attrs(marked).get("marked_for_deletion_on"):
            renamed = str(_attrs(marked)["full_path"])
            await self._permanently(
                f"delete group {group.full_path}",
                lambda: self.gl.groups.delete(group.id, permanently_remove="true", full_path=renamed),
            )
        return True

    async def _permanently(self, what: str, call: Callable[[], Any]) -> None:
        """The second, immediate deletion; refused (400) where the instance does not allow it."""
        try:
            await self._call(what, call)
        except ServiceError as exc:
            if exc.failure not in (Failure.INVALID, Failure.NOT_FOUND):
                raise

    # -- projects -------------------------------------------------------------------------------

    async def find_project(self, full_path: str) -> Project | None:
        path = full_path.strip("/")
        found = await self._maybe(f"read project {path}", lambda: self.gl.projects.get(path))
        return _project(_attrs(found)) if found is not None else None

    async def ensure_project(
        self, group: Group, path: str, *, description: str = "", ci_config_path: str | None = None
    ) -> Ensured[Project]:
        """The project ``path`` in ``group`` (private); fixes description and CI config path."""
        full_path = f"{group.full_path}/{path}"
        found = await self._maybe(f"read project {full_path}", lambda: self.gl.projects.get(full_path))
        if found is None:
            data: Json = {
                "name": path,
                "path": path,
                "namespace_id": group.id,
                "visibility": "private",
                "description": description,
            }
            if ci_config_path:
                data["ci_config_path"] = ci_config_path
            created = await self._call(f"create project {full_path}", lambda: self.gl.projects.create(data))
            return Ensured(_project(_attrs(created)), True, f"created project {full_path}")
        current = _attrs(found)
        fixes: Json = {}
        if str(current.get("description") or "") != description:
            fixes["description"] = description
        if ci_config_path is not None and str(current.get("ci_config_path") or "") != ci_config_path:
            fixes["ci_config_path"] = ci_config_path
        if not fixes:
            return unchanged(_project(current))
        project_id = int(current["id"])
        await self._call(f"update project {full_path}", lambda: self.gl.projects.update(project_id, fixes))
        updated = await self._call(f"read project {full_path}", lambda: self.gl.projects.get(project_id))
        return Ensured(_project(_attrs(updated)), True, f"updated project {full_path} ({', '.join(sorted(fixes))})")

    async def delete_project(self, project_id: int) -> bool:
        """Delete a project (then for good if GitLab only marked it); False if it was not there."""
        found = await self._maybe(f"read project {project_id}", lambda: self.gl.projects.get(project_id))
        if found is None:
            return False
        await self._call(f"delete project {project_id}", lambda: self.gl.projects.delete(project_id))
        marked = await self._maybe(f"read project {project_id}", lambda: self.gl.projects.get(project_id))
        if marked is not None and _attrs(marked).get("marked_for_deletion_on"):
            renamed = str(_attrs(marked)["path_with_namespace"])
            await self._permanently(
                f"delete project {project_id}",
                lambda: self.gl.projects.delete(project_id, permanently_remove="true", full_path=renamed),
            )
        return True

    async def list_group_projects(self, group_id: int) -> list[Project]:
        """Projects directly in a group (not in its subgroups)."""
        group = self.gl.groups.get(group_id, lazy=True)
        found = await self._call(
            f"list projects of group {group_id}",
            lambda: group.projects.list(get_all=True, per_page=PER_PAGE),
            requests_count=5,
        )
        return [_project(_attrs(p)) for p in found]

    # -- repository -----------------------------------------------------------------------------

    async def read_file(self, project_id: int, file_path: str, ref: str = "main") -> str | None:
        """Text of a file at ``ref``; None if the project, the ref or the file is absent."""
        content = await self._read_bytes(project_id, file_path, ref)
        return content.decode("utf-8", errors="replace") if content is not None else None

    async def _read_bytes(self, project_id: int, file_path: str, ref: str) -> bytes | None:
        project = self.gl.projects.get(project_id, lazy=True)

        def read() -> bytes:
            data: bytes = project.files.get(file_path, ref=ref).decode()
            return data

        return await self._maybe(f"read file {file_path} of project {project_id}", read)

    async def ensure_file(
        self, project_id: int, file_path: str, content: str, commit_message: str, branch: str = "main"
    ) -> Ensured[None]:
        """Create or update a file so that it holds ``content``; no commit when it already does."""
        current = await self._read_bytes(project_id, file_path, branch)
        if current == content.encode():
            return unchanged(None)
        project = self.gl.projects.get(project_id, lazy=True)
        data = {
            "file_path": file_path,
            "branch": branch,
            "content": content,
            "commit_message": commit_message,
        }
        if current is None:
            await self._call(f"create file {file_path}", lambda: project.files.create(data))
            return Ensured(None, True, f"created file {file_path} in project {project_id}")
        await self._call(f"update file {file_path}", lambda: project.files.update(file_path, new_data=data))
        return Ensured(None, True, f"updated file {file_path} in project {project_id}")

    async def commit(
        self,
        project_id: int,
        branch: str,
        message: str,
        actions: list[dict[str, Any]],
        author_name: str | None = None,
        author_email: str | None = None,
    ) -> str:
        """One commit of several actions (GitLab's ``actions`` entries); returns its sha."""
        project = self.gl.projects.get(project_id, lazy=True)
        data: Json = {"branch": branch, "commit_message": message, "actions": actions}
        if author_name:
            data["author_name"] = author_name
        if author_email:
            data["author_email"] = author_email
        created = await self._call(f"commit to project {project_id}", lambda: project.commits.create(data))
        return str(_attrs(created)["id"])

    async def revert(self, project_id: int, sha: str, branch: str = "main") -> str:
        """Revert a commit on ``branch``; returns the sha of the revert commit."""
        commit = self.gl.projects.get(project_id, lazy=True).commits.get(sha, lazy=True)
        result = await self._call(f"revert {sha[:12]} in project {project_id}", lambda: commit.revert(branch))
        return str(_attrs(result)["id"])

    # -- pipeline triggers ----------------------------------------------------------------------

    async def _triggers(self, project_id: int, description: str) -> list[Json]:
        project = self.gl.projects.get(project_id, lazy=True)
        found = await self._call(
            f"list triggers of project {project_id}", lambda: project.triggers.list(get_all=True, per_page=PER_PAGE), 3
        )
        matching = [_attrs(t) for t in found if _attrs(t).get("description") == description]
        return sorted(matching, key=lambda t: int(t["id"]))

    async def _create_trigger(self, project_id: int, description: str) -> str:
        project = self.gl.projects.get(project_id, lazy=True)
        created = await self._call(
            f"create trigger in project {project_id}",
            lambda: project.triggers.create({"description": description}),
        )
        return str(_attrs(created)["token"])

    async def ensure_trigger(self, project_id: int, description: str) -> Ensured[str | None]:
        """The pipeline trigger with this description; its token when GitLab shows it in full.

        GitLab shows a trigger's token only to its owner (others see 4 characters): an existing
        trigger owned by someone else is kept and the value is None.
        """
        existing = await self._triggers(project_id, description)
        if existing:
            token = str(existing[0].get("token") or "")
            return unchanged(token if len(token) > 4 else None)
        token = await self._create_trigger(project_id, description)
        return Ensured(token, True, f"created pipeline trigger '{description}' in project {project_id}")

    async def rotate_trigger(self, project_id: int, description: str) -> str:
        """Delete the triggers with this description and create a new one; returns its token."""
        project = self.gl.projects.get(project_id, lazy=True)
        for trigger in await self._triggers(project_id, description):
            trigger_id = int(trigger["id"])
            await self._maybe(f"delete trigger in project {project_id}", partial(project.triggers.delete, trigger_id))
        return await self._create_trigger(project_id, description)

    # -- group access tokens --------------------------------------------------------------------

    async def _active_tokens(self, group_id: int, name: str) -> list[Json]:
        group = self.gl.groups.get(group_id, lazy=True)
        found = await self._call(
            f"list access tokens of group {group_id}",
            lambda: group.access_tokens.list(state="active", get_all=True, per_page=PER_PAGE),
            3,
        )
        matching = [_attrs(t) for t in found if _attrs(t).get("name") == name and _attrs(t).get("active", True)]
        return sorted(matching, key=lambda t: int(t["id"]))

    async def _create_group_token(
        self, group_id: int, name: str, scopes: list[str], access_level: int, expires_days: int
    ) -> str:
        group = self.gl.groups.get(group_id, lazy=True)
        data = {
            "name": name,
            "scopes": list(scopes),
            "access_level": access_level,
            "expires_at": token_expiry(expires_days),
        }
        created = await self._call(f"create access token of group {group_id}", lambda: group.access_tokens.create(data))
        return str(_attrs(created)["token"])

    async def _revoke_group_token(self, group_id: int, token_id: int) -> None:
        group = self.gl.groups.get(group_id, lazy=True)
        await self._maybe(f"revoke access token of group {group_id}", lambda: group.access_tokens.delete(token_id))

    @staticmethod
    def _token_matches(token: Json, scopes: list[str], access_level: int) -> bool:
        same_scopes = sorted(token.get("scopes") or []) == sorted(scopes)
        return same_scopes and int(token.get("access_level") or 0) == access_level

    async def ensure_group_access_token(
        self, group_id: int, name: str, scopes: list[str], access_level: int, expires_days: int = 365
    ) -> Ensured[str | None]:
        """An active group access token with this name, scopes and level.

        An existing one is kept (value None: GitLab never shows a token again); one with other
        scopes or level is revoked and replaced; otherwise a token is created (value = token).
        """
        existing = await self._active_tokens(group_id, name)
        if existing and self._token_matches(existing[0], scopes, access_level):
            return unchanged(None)
        for token in existing:
            await self._revoke_group_token(group_id, int(token["id"]))
        value = await self._create_group_token(group_id, name, scopes, access_level, expires_days)
        verb = "replaced" if existing else "created"
        return Ensured(value, True, f"{verb} access token '{name}' of group {group_id}")

    async def rotate_group_access_token(
        self, group_id: int, name: str, scopes: list[str], access_level: int, expires_days: int = 365
    ) -> str:
        """A new value for the token ``name`` (GitLab's rotate keeps its bot user); returns it."""
        existing = await self._active_tokens(group_id, name)
        if existing and self._token_matches(existing[0], scopes, access_level):
            group = self.gl.groups.get(group_id, lazy=True)
            token_id = int(existing[0]["id"])
            expires_at = token_expiry(expires_days)
            rotated = await self._call(
                f"rotate access token of group {group_id}",
                lambda: group.access_tokens.rotate(token_id, expires_at=expires_at),
            )
            for extra in existing[1:]:
                await self._revoke_group_token(group_id, int(extra["id"]))
            return str(_attrs(rotated)["token"])
        for token in existing:
            await self._revoke_group_token(group_id, int(token["id"]))
        return await self._create_group_token(group_id, name, scopes, access_level, expires_days)

    # -- webhooks -------------------------------------------------------------------------------

    async def ensure_group_hook(
        self,
        group_id: int | str,
        url: str,
        token: str,
        *,
        push: bool = True,
        tag_push: bool = True,
        merge_requests: bool = True,
        pipeline: bool = True,
        job: bool = True,
    ) -> Ensured[int]:
        """A group webhook to ``url`` with these events; returns its id.

        Group webhooks exist on Premium/Ultimate only: a Free (CE) instance answers 404, a
        :class:`ServiceError` with ``Failure.NOT_FOUND`` (see :meth:`ensure_project_hook`), as it does
        for a group that does not exist. ``group_id`` may be the group's full path ("The ID or
        URL-encoded path of the group", gitlab:doc/api/group_webhooks.md; python-gitlab encodes it).
        """
        wanted = dict(zip(HOOK_EVENTS, (push, tag_push, merge_requests, pipeline, job), strict=True))
        group = self.gl.groups.get(group_id, lazy=True)
        return await self._ensure_hook(group.hooks, f"group {group_id}", url, token, wanted)

    async def ensure_project_hook(self, project_id: int, url: str, token: str) -> Ensured[int]:
        """A project webhook to ``url`` with every event the bot follows; returns its id."""
        wanted = dict.fromkeys(HOOK_EVENTS, True)
        project = self.gl.projects.get(project_id, lazy=True)
        return await self._ensure_hook(project.hooks, f"project {project_id}", url, token, wanted)

    async def remove_project_hook(self, project_id: int, url: str) -> bool:
        """Remove the project's webhooks to ``url``; False if there was none (or no project)."""
        project = self.gl.projects.get(project_id, lazy=True)
        hooks = await self._maybe(
            f"list hooks of project {project_id}", lambda: project.hooks.list(get_all=True, per_page=PER_PAGE)
        )
        removed = False
        for hook in hooks or []:
            if _attrs(hook).get("url") == url:
                hook_id = int(_attrs(hook)["id"])
                await self._maybe(f"delete hook of project {project_id}", partial(project.hooks.delete, hook_id))
                removed = True
        return removed

    async def _ensure_hook(
        self, manager: Any, owner: str, url: str, token: str, wanted: dict[str, bool]
    ) -> Ensured[int]:
        """GitLab never shows a hook's secret token: it is set when the hook is created and again
        whenever its events are fixed, never compared."""
        hooks = await self._call(f"list hooks of {owner}", lambda: manager.list(get_all=True, per_page=PER_PAGE), 3)
        found = next((_attrs(h) for h in hooks if _attrs(h).get("url") == url), None)
        data: Json = {"url": url, **wanted, "token": token}
        if found is None:
            created = await self._call(f"create hook of {owner}", lambda: manager.create(data))
            return Ensured(int(_attrs(created)["id"]), True, f"created webhook of {owner}")
        hook_id = int(found["id"])
        differ = sorted(event for event, on in wanted.items() if bool(found.get(event)) != on)
        if not differ:
            return unchanged(hook_id)
        await self._call(f"update hook of {owner}", lambda: manager.update(hook_id, data))
        return Ensured(hook_id, True, f"updated webhook of {owner} ({', '.join(differ)})")

    # -- group members --------------------------------------------------------------------------

    async def group_members(self, group_id: int) -> dict[int, int]:
        """Direct members of a group: user id → access level (bot users of group tokens too)."""
        group = self.gl.groups.get(group_id, lazy=True)
        members = await self._call(
            f"list members of group {group_id}", lambda: group.members.list(get_all=True, per_page=PER_PAGE), 5
        )
        return {int(_attrs(m)["id"]): int(_attrs(m)["access_level"]) for m in members}

    async def ensure_group_member(self, group_id: int, user_id: int, access_level: int) -> Ensured[None]:
        """``user_id`` a direct member of the group at ``access_level`` (fixed if different).

        A user who already holds more from a group above cannot be a direct member below it: GitLab
        answers 400 "should be greater than or equal to … inherited membership from group …"
        (gitlabhq/gitlabhq:app/models/member.rb ``higher_access_level_than_group``). The user has
        at least the wanted access then, so that is "unchanged", not an error.
        """
        group = self.gl.groups.get(group_id, lazy=True)
        member = await self._maybe(f"read member {user_id} of group {group_id}", lambda: group.members.get(user_id))
        if member is None:
            added = await self._call(
                f"add member {user_id} to group {group_id}",
                _unless_inherited(lambda: group.members.create({"user_id": user_id, "access_level": access_level})),
            )
            if not added:
                return unchanged(None)
            return Ensured(None, True, f"added user {user_id} to group {group_id} (level {access_level})")
        current = int(_attrs(member)["access_level"])
        if current == access_level:
            return unchanged(None)
        changed = await self._call(
            f"update member {user_id} of group {group_id}",
            _unless_inherited(lambda: group.members.update(user_id, {"access_level": access_level})),
        )
        if not changed:
            return unchanged(None)
        return Ensured(None, True, f"changed level of user {user_id} in group {group_id} ({current} → {access_level})")

    async def remove_group_member(self, group_id: int, user_id: int) -> bool:
        """Remove a direct member; False if the user was not one."""
        group = self.gl.groups.get(group_id, lazy=True)

        def remove() -> bool:
            group.members.delete(user_id)
            return True

        return bool(await self._maybe(f"remove member {user_id} of group {group_id}", remove))

    # -- pipelines and jobs ---------------------------------------------------------------------

    async def trigger_pipeline(
        self, project_id: int, trigger_token: str, ref: str, variables: dict[str, str]
    ) -> Pipeline:
        """Start a pipeline with a trigger token (what teams' CI calls to sync a repository)."""
        project = self.gl.projects.get(project_id, lazy=True)
        started = await self._call(
            f"trigger pipeline of project {project_id}",
            lambda: project.trigger_pipeline(ref, trigger_token, variables=dict(variables)),
        )
        return _pipeline(_attrs(started))

    async def create_pipeline(self, project_id: int, ref: str, variables: dict[str, str]) -> Pipeline:
        """Start a pipeline as the bot (source ``api``)."""
        project = self.gl.projects.get(project_id, lazy=True)
        data = {"ref": ref, "variables": [{"key": k, "value": v} for k, v in variables.items()]}
        started = await self._call(f"create pipeline of project {project_id}", lambda: project.pipelines.create(data))
        return _pipeline(_attrs(started))

    async def pipelines(
        self, project_id: int, ref: str | None = None, per_page: int = 20, updated_after: datetime | None = None
    ) -> list[Pipeline]:
        """Pipelines of a project, newest first, optionally of one ref.

        Without ``updated_after``: the latest ``per_page``. With it: every pipeline updated since
        (``updated_after`` of lib/api/ci/pipelines.rb, app/finders/ci/pipelines_finder.rb
        ``by_updated_at``), page after page, so that a burst is never cut at the first page.
        """
        project = self.gl.projects.get(project_id, lazy=True)
        filters: Json = {"order_by": "id", "sort": "desc"}
        if ref:
            filters["ref"] = ref
        if updated_after is None:
            filters["per_page"] = per_page
            found = await self._call(
                f"list pipelines of project {project_id}",
                lambda: project.pipelines.list(get_all=False, **filters),
            )
        else:
            filters["updated_after"] = updated_after.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            found = await self._call(
                f"list pipelines of project {project_id}",
                lambda: project.pipelines.list(get_all=True, per_page=PER_PAGE, **filters),
                5,
            )
        return [_pipeline(_attrs(p)) for p in found]

    async def pipeline(self, project_id: int, pipeline_id: int) -> Pipeline:
        project = self.gl.projects.get(project_id, lazy=True)
        found = await self._call(
            f"read pipeline {pipeline_id} of project {project_id}", lambda: project.pipelines.get(pipeline_id)
        )
        return _pipeline(_attrs(found))

    async def pipeline_jobs(self, project_id: int, pipeline_id: int) -> list[Job]:
        pipeline = self.gl.projects.get(project_id, lazy=True).pipelines.get(pipeline_id, lazy=True)
        found = await self._call(
            f"list jobs of pipeline {pipeline_id}", lambda: pipeline.jobs.list(get_all=True, per_page=PER_PAGE), 3
        )
        return sorted((_job(_attrs(j)) for j in found), key=lambda j: j.id)

    async def job_trace_tail(
        self, project_id: int, job_id: int, lines: int = TRACE_TAIL_LINES, line_bytes: int = TRACE_LINE_BYTES
    ) -> TraceTail:
        """The last ``lines`` lines of a job's log, read as a stream: a log of any size costs at most
        ``lines × line_bytes`` plus one chunk of memory (a line keeps its last ``line_bytes``)."""
        job = self.gl.projects.get(project_id, lazy=True).jobs.get(job_id, lazy=True)

        def read() -> TraceTail:
            kept: deque[bytes] = deque(maxlen=lines)
            total = 0
            partial = b""
            chunks = job.trace(streamed=True, iterator=True, chunk_size=TRACE_CHUNK_BYTES)
            assert isinstance(chunks, Iterator)
            for chunk in chunks:
                pieces = (partial + chunk).split(b"\n")
                partial = pieces.pop()[-line_bytes:]
                total += len(pieces)
                kept.extend(piece[-line_bytes:] for piece in pieces[-lines:])
            if partial:
                kept.append(partial)
                total += 1
            text = b"\n".join(kept).decode("utf-8", errors="replace")
            return TraceTail(text, total - len(kept))

        return await self._call(f"read trace of job {job_id}", read)

    async def job_artifact(self, project_id: int, job_id: int, path: str) -> bytes | None:
        """One file of a job's artifacts archive; None if the job has no such file."""
        job = self.gl.projects.get(project_id, lazy=True).jobs.get(job_id, lazy=True)

        def read() -> bytes:
            raw = job.artifact(path)
            return raw if isinstance(raw, bytes) else b""

        return await self._maybe(f"read artifact of job {job_id}", read)
