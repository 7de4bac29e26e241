"""Data of the GitLab emulator: users, tokens, groups, projects, hooks, triggers, pipelines.

Everything lives in memory behind one re-entrant lock: handlers run on the server's thread while
tests read the same objects from theirs. JSON views are in ``gitlab_views``.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from services.emulators.base import Faults
from services.emulators.fixtures import fixture
from services.emulators.gitlab_http import ApiError, bad_request, forbidden, not_found
from services.emulators.gitlab_repo import Action, Repository, now_iso

GITLAB_VERSION = "18.2.1"
GITLAB_REVISION = "c4f8e0a9c7b"

GUEST, REPORTER, DEVELOPER, MAINTAINER, OWNER = 10, 20, 30, 40, 50
ACCESS_LEVELS = (5, GUEST, REPORTER, DEVELOPER, MAINTAINER, OWNER)
VISIBILITIES = ("private", "internal", "public")
TOKEN_SCOPES = (
    "api",
    "read_api",
    "read_user",
    "read_repository",
    "write_repository",
    "read_registry",
    "write_registry",
    "create_runner",
    "manage_runner",
    "k8s_proxy",
    "ai_features",
    "self_rotate",
    "sudo",
    "admin_mode",
)
HOOK_EVENTS = (
    "push_events",
    "tag_push_events",
    "merge_requests_events",
    "issues_events",
    "confidential_issues_events",
    "note_events",
    "confidential_note_events",
    "job_events",
    "pipeline_events",
    "wiki_page_events",
    "deployment_events",
    "releases_events",
    "feature_flag_events",
    "resource_access_token_events",
    "emoji_events",
)
DEFAULT_TRIVY_REPORT = fixture("trivy_image_report.json")


@dataclass
class Timings:
    """Everything that "takes time", in seconds (tests use milliseconds)."""

    job_seconds: float = 1.0  # each job step: created→pending→running→done
    stuck_timeout_seconds: float = 30.0  # a stuck job fails after this (GitLab's job timeout)
    deletion_seconds: float = 0.0  # marked-for-deletion groups/projects disappear after this
    hook_timeout_seconds: float = 10.0  # GitLab's webhook read timeout
    # WebHooks::AutoDisabling (app/models/concerns/web_hooks/auto_disabling.rb): after the 4th
    # failure in a row a hook is off for INITIAL_BACKOFF (1 min), doubling up to MAX_BACKOFF (1 day).
    hook_initial_backoff_seconds: float = 60.0
    hook_max_backoff_seconds: float = 86400.0


@dataclass
class User:
    id: int
    username: str
    email: str
    name: str
    admin: bool
    namespace_id: int
    bot: bool = False
    state: str = "active"
    created_at: str = field(default_factory=now_iso)


@dataclass
class AccessToken:
    id: int
    token: str
    user_id: int
    name: str
    scopes: list[str]
    expires_at: str | None
    kind: str = "personal"  # personal | group
    group_id: int | None = None
    access_level: int | None = None
    description: str = ""
    revoked: bool = False
    created_at: str = field(default_factory=now_iso)
    last_used_at: str | None = None

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and date.fromisoformat(self.expires_at) <= date.today()

    @property
    def active(self) -> bool:
        return not self.revoked and not self.expired


@dataclass
class Member:
    user_id: int
    access_level: int
    created_by_id: int | None
    expires_at: str | None = None
    created_at: str = field(default_factory=now_iso)


@dataclass
class Namespace:
    """A group (``kind="group"``) or a user's personal namespace (``kind="user"``)."""

    id: int
    name: str
    path: str
    kind: str
    parent_id: int | None = None
    owner_id: int | None = None
    visibility: str = "private"
    description: str = ""
    created_at: str = field(default_factory=now_iso)
    marked_for_deletion_on: str | None = None
    members: dict[int, Member] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Project:
    id: int
    name: str
    path: str
    namespace_id: int
    creator_id: int
    description: str = ""
    visibility: str = "private"
    ci_config_path: str = ""
    created_at: str = field(default_factory=now_iso)
    last_activity_at: str = field(default_factory=now_iso)
    marked_for_deletion_on: str | None = None
    topics: list[str] = field(default_factory=list)
    members: dict[int, Member] = field(default_factory=dict)
    repo: Repository = field(default_factory=Repository)
    next_pipeline_iid: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Hook:
    id: int
    url: str
    token: str
    events: dict[str, bool]
    enable_ssl_verification: bool = True
    project_id: int | None = None
    group_id: int | None = None
    name: str = ""
    description: str = ""
    push_events_branch_filter: str = ""
    created_at: str = field(default_factory=now_iso)
    recent_failures: int = 0  # failed deliveries in a row (WebHooks::AutoDisabling)
    disabled_until: float | None = None  # epoch seconds; None: not temporarily disabled

    # auto_disabling.rb: TEMPORARILY_DISABLED_FAILURE_THRESHOLD = 3, PERMANENTLY_… = 39.
    def temporarily_disabled(self, now: float) -> bool:
        return self.disabled_until is not None and self.disabled_until >= now and 4 <= self.recent_failures <= 39

    def permanently_disabled(self) -> bool:
        return self.recent_failures > 39

    def executable(self, now: float) -> bool:
        return not self.temporarily_disabled(now) and not self.permanently_disabled()

    def alert_status(self, now: float) -> str:
        if self.temporarily_disabled(now):
            return "temporarily_disabled"
        return "disabled" if self.permanently_disabled() else "executable"


@dataclass
class Trigger:
    id: int
    project_id: int
    description: str
    token: str
    owner_id: int
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    last_used: str | None = None


@dataclass
class Job:
    id: int
    pipeline_id: int
    project_id: int
    name: str
    stage: str
    status: str = "created"
    created_at: str = field(default_factory=now_iso)
    queued_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    failure_reason: str | None = None
    retried: bool = False
    trace: list[str] = field(default_factory=list)
    artifacts: dict[str, bytes] = field(default_factory=dict)
    user_id: int | None = None


@dataclass
class Pipeline:
    id: int
    iid: int
    project_id: int
    sha: str
    before_sha: str
    ref: str
    source: str
    user_id: int | None
    variables: list[dict[str, str]] = field(default_factory=list)
    status: str = "created"
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    started_at: str | None = None
    finished_at: str | None = None
    job_ids: list[int] = field(default_factory=list)

    def variable(self, key: str, default: str = "") -> str:
        for item in self.variables:
            if item.get("key") == key:
                return str(item.get("value", ""))
        return default


def new_token(prefix: str = "glpat-") -> str:
    return prefix + secrets.token_urlsafe(15)[:20]


class State:
    """The emulated GitLab instance. Seed it with ``add_user``/``add_group``/``add_project``."""

    def __init__(self, base_url: str = "") -> None:
        self.lock = threading.RLock()
        self.base_url = base_url.rstrip("/")
        self.faults = Faults()
        self.timings = Timings()
        self.scenarios: dict[str, str] = {}
        # Names of readiness checks to report failed, e.g. {"gitaly_check"} (see ``/-/readiness``).
        self.unhealthy: set[str] = set()
        self.trivy_report_path: Path = DEFAULT_TRIVY_REPORT
        # Where the build jobs push a project's image (``host/namespace/repo``), from its path: set
        # by the world that also runs the registry, so the trivy job's report names that image.
        self.image_repository: Callable[[str], str | None] | None = None
        self.instance_uuid = str(uuid.uuid4())
        # GitLab's ``Date.current`` is in its configured time zone: ``server_day_offset = -1`` plays
        # an instance whose day is still yesterday's (UTC-x in the morning, UTC).
        self.server_day_offset = 0
        self.token_max_lifetime_days = 365
        # "premium" (EE: group webhooks exist) or "free" (CE: /groups/:id/hooks is a 404).
        self.tier = "premium"  # 400 with the buffered_token_expiration_limit flag
        self.users: dict[int, User] = {}
        self.tokens: dict[str, AccessToken] = {}
        self.namespaces: dict[int, Namespace] = {}
        self.projects: dict[int, Project] = {}
        self.hooks: dict[int, Hook] = {}
        self.triggers: dict[int, Trigger] = {}
        self.pipelines: dict[int, Pipeline] = {}
        self.jobs: dict[int, Job] = {}
        self.hook_deliveries: list[dict[str, Any]] = []
        self.request_log: deque[str] = deque(maxlen=2000)  # "GET /api/v4/…?query", newest last
        self._ids: dict[str, int] = {}
        # Set by ``create_app``: starts pipelines and delivers webhooks (see gitlab_pipelines).
        self.engine: Any = None
        # Called with {project, job, status, ref, sha} when a job ends: the sandbox plays the
        # analysers (SonarQube's analysis, Quay's push) the jobs would have talked to.
        self.job_listeners: list[Callable[[dict[str, Any]], None]] = []
        _, self.root_token = self.add_user("root", "admin@example.com", "Administrator", admin=True)

    @property
    def quiet(self) -> bool:
        """No pipeline running and no webhook delivery on its way (for tests and the demo)."""
        with self.lock:
            running = any(p.status not in ("success", "failed", "canceled", "skipped") for p in self.pipelines.values())
        return not running and (self.engine is None or self.engine.hooks.in_flight == 0)

    def today(self) -> date:
        return datetime.now(UTC).date() + timedelta(days=self.server_day_offset)

    # --- ids and urls ------------------------------------------------------------------------

    def next_id(self, kind: str) -> int:
        with self.lock:
            self._ids[kind] = self._ids.get(kind, 0) + 1
            return self._ids[kind]

    def url(self, path: str = "") -> str:
        return f"{self.base_url or 'http://gitlab.example.com'}{path}"

    # --- seeding -----------------------------------------------------------------------------

    def add_user(self, username: str, email: str, name: str = "", admin: bool = False) -> tuple[dict[str, Any], str]:
        """Create a user and a personal access token (``api`` scope); returns (user JSON, token)."""
        from services.emulators.gitlab_views import user_json

        with self.lock:
            user = self.create_user(username, email, name or username, admin)
            token = self.create_token(
                user.id,
                "seed",
                ["api", "read_api", "read_user", "read_repository", "write_repository"],
                expires_at=None,
            )
            return user_json(self, user, full=True), token.token

    def create_user(self, username: str, email: str, name: str, admin: bool = False, bot: bool = False) -> User:
        with self.lock:
            if any(u.username.lower() == username.lower() for u in self.users.values()):
                raise ApiError(409, {"message": "Username has already been taken"})
            if any(u.email.lower() == email.lower() for u in self.users.values()):
                raise ApiError(409, {"message": "Email has already been taken"})
            user_id = self.next_id("user")
            namespace = Namespace(self.next_id("namespace"), name, username, "user", owner_id=user_id)
            self.namespaces[namespace.id] = namespace
            user = User(user_id, username, email, name, admin, namespace.id, bot=bot)
            self.users[user.id] = user
            return user

    def create_token(
        self,
        user_id: int,
        name: str,
        scopes: list[str],
        expires_at: str | None,
        kind: str = "personal",
        group_id: int | None = None,
        access_level: int | None = None,
    ) -> AccessToken:
        with self.lock:
            token = AccessToken(
                self.next_id("token"),
                new_token(),
                user_id,
                name,
                scopes,
                expires_at,
                kind=kind,
                group_id=group_id,
                access_level=access_level,
            )
            self.tokens[token.token] = token
            return token

    def add_group(
        self, path: str, parent_id: int | None = None, name: str = "", visibility: str = "private"
    ) -> dict[str, Any]:
        """Create a group (root owns it, like a group made by an admin); returns its JSON."""
        from services.emulators.gitlab_views import group_json

        with self.lock:
            group = self.create_group(name or path, path, parent_id, visibility, creator_id=None)
            return group_json(self, group)

    def create_group(
        self, name: str, path: str, parent_id: int | None, visibility: str, creator_id: int | None
    ) -> Namespace:
        with self.lock:
            if parent_id is not None:
                self.group(parent_id)
            # Top-level paths are shared with usernames; in a group, with its projects.
            taken = any(
                ns.parent_id == parent_id and ns.path.lower() == path.lower() for ns in self.namespaces.values()
            ) or any(p.namespace_id == parent_id and p.path.lower() == path.lower() for p in self.projects.values())
            if taken:
                raise bad_request('Failed to save group {:path=>["has already been taken"]}')
            group = Namespace(self.next_id("namespace"), name, path, "group", parent_id, visibility=visibility)
            if creator_id is not None:
                group.members[creator_id] = Member(creator_id, OWNER, creator_id)
            self.namespaces[group.id] = group
            return group

    def add_project(
        self,
        path: str,
        namespace_id: int,
        name: str = "",
        ci_config_path: str = "",
        initialize_with_readme: bool = False,
    ) -> dict[str, Any]:
        """Create a project in a namespace (as root); returns its JSON."""
        from services.emulators.gitlab_views import project_json

        with self.lock:
            project = self.create_project(name or path, path, namespace_id, creator_id=1, ci_config_path=ci_config_path)
            if initialize_with_readme:
                self.init_readme(project, self.users[1])
            return project_json(self, project)

    def create_project(
        self,
        name: str,
        path: str,
        namespace_id: int,
        creator_id: int,
        ci_config_path: str = "",
        visibility: str = "private",
        description: str = "",
    ) -> Project:
        with self.lock:
            namespace = self.namespaces.get(namespace_id)
            if namespace is None:
                raise not_found("Namespace")
            errors: dict[str, list[str]] = {}
            siblings = [p for p in self.projects.values() if p.namespace_id == namespace_id]
            if any(p.name.lower() == name.lower() for p in siblings):
                errors["name"] = ["has already been taken"]
            if any(p.path.lower() == path.lower() for p in siblings) or any(
                ns.parent_id == namespace_id and ns.path.lower() == path.lower() for ns in self.namespaces.values()
            ):
                errors["path"] = ["has already been taken"]
            if errors:
                raise bad_request(errors)
            project = Project(
                self.next_id("project"),
                name,
                path,
                namespace_id,
                creator_id,
                description=description,
                visibility=visibility,
                ci_config_path=ci_config_path,
            )
            self.projects[project.id] = project
            return project

    def init_readme(self, project: Project, user: User) -> None:
        readme = f"# {project.name}\n".encode()
        project.repo.commit("main", [Action("create", "README.md", readme)], "Initial commit", user.name, user.email)

    def add_member(self, source: Namespace | Project, user_id: int, access_level: int) -> None:
        with self.lock:
            source.members[user_id] = Member(user_id, access_level, 1)

    # --- read helpers (for tests and the sandbox) --------------------------------------------

    def group_by_path(self, full_path: str) -> dict[str, Any] | None:
        from services.emulators.gitlab_views import group_json

        with self.lock:
            group = self._namespace_by_path(full_path)
            return group_json(self, group) if group and group.kind == "group" else None

    def project_by_path(self, full_path: str) -> dict[str, Any] | None:
        from services.emulators.gitlab_views import project_json

        with self.lock:
            project = self._project_by_path(full_path)
            return project_json(self, project) if project else None

    def file_content(self, project: str | int, path: str, ref: str = "main") -> str | None:
        """Text of ``path`` at ``ref`` in a project given by id or full path; None if absent."""
        with self.lock:
            found = self.projects.get(project) if isinstance(project, int) else self._project_by_path(project)
            if found is None:
                return None
            commit = found.repo.resolve(ref)
            blob = commit.tree.get(path) if commit else None
            return blob.data.decode("utf-8", errors="replace") if blob else None

    def pipelines_of(self, project_path: str) -> list[Pipeline]:
        with self.lock:
            project = self._project_by_path(project_path)
            if project is None:
                return []
            return sorted((p for p in self.pipelines.values() if p.project_id == project.id), key=lambda p: p.id)

    def deliveries(self, event: str | None = None) -> list[dict[str, Any]]:
        """A copy of ``hook_deliveries``, optionally only one ``X-Gitlab-Event`` kind."""
        with self.lock:
            return [d for d in self.hook_deliveries if event is None or d["event"] == event]

    # --- paths and lookups -------------------------------------------------------------------

    def full_path(self, namespace: Namespace) -> str:
        parts = [namespace.path]
        parent = self.namespaces.get(namespace.parent_id) if namespace.parent_id else None
        while parent is not None:
            parts.append(parent.path)
            parent = self.namespaces.get(parent.parent_id) if parent.parent_id else None
        return "/".join(reversed(parts))

    def full_name(self, namespace: Namespace) -> str:
        names = [namespace.name]
        parent = self.namespaces.get(namespace.parent_id) if namespace.parent_id else None
        while parent is not None:
            names.append(parent.name)
            parent = self.namespaces.get(parent.parent_id) if parent.parent_id else None
        return " / ".join(reversed(names))

    def project_path(self, project: Project) -> str:
        return f"{self.full_path(self.namespaces[project.namespace_id])}/{project.path}"

    def ancestors(self, namespace: Namespace) -> list[Namespace]:
        """``namespace`` and its parents, nearest first."""
        chain = [namespace]
        while chain[-1].parent_id is not None and chain[-1].parent_id in self.namespaces:
            chain.append(self.namespaces[chain[-1].parent_id])
        return chain

    def _namespace_by_path(self, full_path: str) -> Namespace | None:
        wanted = full_path.strip("/").lower()
        for namespace in self.namespaces.values():
            if self.full_path(namespace).lower() == wanted:
                return namespace
        return None

    def _project_by_path(self, full_path: str) -> Project | None:
        wanted = full_path.strip("/").lower()
        for project in self.projects.values():
            if self.project_path(project).lower() == wanted:
                return project
        return None

    def group(self, ref: str | int) -> Namespace:
        """A group by id or full path, or a ``404 Group Not Found`` error."""
        with self.lock:
            text = str(ref)
            found = self.namespaces.get(int(text)) if text.isdigit() else self._namespace_by_path(text)
            if found is None or found.kind != "group":
                raise not_found("Group")
            return found

    def namespace(self, ref: str | int) -> Namespace:
        with self.lock:
            text = str(ref)
            found = self.namespaces.get(int(text)) if text.isdigit() else self._namespace_by_path(text)
            if found is None:
                raise not_found("Namespace")
            return found

    def project(self, ref: str | int) -> Project:
        with self.lock:
            text = str(ref)
            found = self.projects.get(int(text)) if text.isdigit() else self._project_by_path(text)
            if found is None:
                raise not_found("Project")
            return found

    def user(self, ref: str | int) -> User:
        with self.lock:
            text = str(ref)
            found = self.users.get(int(text)) if text.isdigit() else None
            if found is None:
                raise not_found("User")
            return found

    # --- permissions -------------------------------------------------------------------------

    def is_admin(self, user_id: int | None) -> bool:
        user = self.users.get(user_id) if user_id is not None else None
        return bool(user and user.admin)

    def group_access(self, user_id: int | None, group: Namespace) -> int:
        """Highest access level ``user_id`` holds on ``group`` or its ancestors (admins: owner)."""
        if user_id is None:
            return 0
        if self.is_admin(user_id):
            return OWNER
        if group.kind == "user":
            return OWNER if group.owner_id == user_id else 0
        levels = [ns.members[user_id].access_level for ns in self.ancestors(group) if user_id in ns.members]
        return max(levels, default=0)

    def project_access(self, user_id: int | None, project: Project) -> int:
        if user_id is None:
            return 0
        direct = project.members[user_id].access_level if user_id in project.members else 0
        return max(direct, self.group_access(user_id, self.namespaces[project.namespace_id]))

    def can_see_group(self, user_id: int | None, group: Namespace) -> bool:
        if group.visibility == "public" or (group.visibility == "internal" and user_id is not None):
            return True
        if self.group_access(user_id, group) > 0:
            return True
        # Members of a project or subgroup below can see the group they live in.
        return any(self.project_access(user_id, p) > 0 for p in self.projects_under(group))

    def can_see_project(self, user_id: int | None, project: Project) -> bool:
        if project.visibility == "public" or (project.visibility == "internal" and user_id is not None):
            return True
        return self.project_access(user_id, project) > 0

    def visible_group(self, ref: str | int, user_id: int | None) -> Namespace:
        group = self.group(ref)
        if not self.can_see_group(user_id, group):
            raise not_found("Group")
        return group

    def visible_project(self, ref: str | int, user_id: int | None) -> Project:
        project = self.project(ref)
        if not self.can_see_project(user_id, project):
            raise not_found("Project")
        return project

    def require_group_access(self, user_id: int | None, group: Namespace, level: int) -> None:
        if self.group_access(user_id, group) < level:
            raise forbidden()

    def require_project_access(self, user_id: int | None, project: Project, level: int) -> None:
        if self.project_access(user_id, project) < level:
            raise forbidden()

    def descendants(self, group: Namespace) -> list[Namespace]:
        found: list[Namespace] = []
        frontier = [group.id]
        while frontier:
            children = [ns for ns in self.namespaces.values() if ns.parent_id in frontier]
            found.extend(children)
            frontier = [ns.id for ns in children]
        return found

    def projects_under(self, group: Namespace) -> list[Project]:
        ids = {group.id, *(ns.id for ns in self.descendants(group))}
        return [p for p in self.projects.values() if p.namespace_id in ids]

    # --- deletion ----------------------------------------------------------------------------

    def mark_group_for_deletion(self, group: Namespace) -> None:
        """GitLab 18 delays deletion: the group is renamed and flagged, then removed."""
        with self.lock:
            group.marked_for_deletion_on = datetime.now(UTC).date().isoformat()
            group.path = f"{group.path}-deletion_scheduled-{group.id}"
            group.name = f"{group.name}-deletion_scheduled-{group.id}"
        self._schedule(lambda: self.remove_group(group.id))

    def mark_project_for_deletion(self, project: Project) -> None:
        with self.lock:
            project.marked_for_deletion_on = datetime.now(UTC).date().isoformat()
            project.path = f"{project.path}-deletion_scheduled-{project.id}"
            project.name = f"{project.name}-deletion_scheduled-{project.id}"
        self._schedule(lambda: self.remove_project(project.id))

    def _schedule(self, action: Any) -> None:
        delay = self.timings.deletion_seconds
        if delay <= 0:
            action()
            return
        timer = threading.Timer(delay, action)
        timer.daemon = True
        timer.start()

    def remove_group(self, group_id: int) -> None:
        with self.lock:
            group = self.namespaces.get(group_id)
            if group is None:
                return
            for project in self.projects_under(group):
                self.remove_project(project.id)
            for namespace in [*self.descendants(group), group]:
                self.namespaces.pop(namespace.id, None)
                for hook_id in [h.id for h in self.hooks.values() if h.group_id == namespace.id]:
                    del self.hooks[hook_id]
                for token in self.tokens.values():
                    if token.group_id == namespace.id:
                        token.revoked = True

    def remove_project(self, project_id: int) -> None:
        with self.lock:
            if self.projects.pop(project_id, None) is None:
                return
            for table in (self.hooks, self.triggers):
                for key in [k for k, v in table.items() if getattr(v, "project_id", None) == project_id]:
                    del table[key]

    # --- health ------------------------------------------------------------------------------

    def readiness(self) -> tuple[int, dict[str, Any]]:
        """``/-/readiness?all=1`` body: every check ok unless named in ``unhealthy``."""
        checks = ["master_check", "db_check", "cache_check", "queues_check", "shared_state_check"]
        body: dict[str, Any] = {"status": "ok"}
        for check in checks:
            body[check] = [_check_result(check in self.unhealthy)]
        gitaly = _check_result("gitaly_check" in self.unhealthy)
        gitaly["labels"] = {"shard": "default"}
        body["gitaly_check"] = [gitaly]
        failed = bool(self.unhealthy)
        if failed:
            body["status"] = "failed"
        return (503 if failed else 200), body


def _check_result(failed: bool) -> dict[str, Any]:
    if failed:
        return {"status": "failed", "message": "check error"}
    return {"status": "ok"}


def default_expiry(today: date | None = None) -> str:
    """GitLab's default (and maximum) access-token lifetime: 365 days."""
    return ((today or datetime.now(UTC).date()) + timedelta(days=365)).isoformat()
