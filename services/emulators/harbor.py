"""Harbor emulator: the API v2.0 surface the bot drives (projects, members, project robots,
repositories, artifacts and tags, Trivy vulnerability reports, webhook policies) and ``/health``.

Shapes follow goharbor/harbor:api/v2.0/swagger.yaml; behaviours its handlers
(src/server/v2.0/handler/*.go) and controllers:

- Basic auth with a Harbor user (system admin or project member) or a robot
  (``robot$<project>+<name>`` and its secret). A missing or wrong login on a protected route answers
  401 ``UNAUTHORIZED``; a known user lacking rights 403 ``FORBIDDEN``. Every error has the body
  ``{"errors": [{"code": …, "message": …}]}`` (src/lib/http/error.go, swagger ``Errors``).
- Project names match ``^[a-z0-9]+(?:[._-][a-z0-9]+)*$`` and are 1–255 long
  (src/pkg/project/manager.go); a taken name is 409 ``CONFLICT``; a project with repositories
  cannot be deleted (412 ``PRECONDITION``).
- Robots are created with a secret shown once (201 ``RobotCreated``); GET never shows it; PATCH
  refreshes it (src/server/v2.0/handler/robot.go).
- A repository name with ``/`` is URL-encoded twice in paths (swagger ``repositoryName``): a single
  encoding does not reach the route, as in Harbor's router.
- Lists take ``page``/``page_size`` (≤ 100) and answer ``X-Total-Count`` and a ``Link`` header.
- A push fires ``PUSH_ARTIFACT``; a scan (on push when the project's ``auto_scan`` is on, or
  :meth:`State.scan`) ``SCANNING_COMPLETED`` or ``SCANNING_FAILED``, to the project's webhook
  policies, with the target's ``auth_header`` as ``Authorization`` (set on the job's header by
  src/pkg/notifier/handler/notification/http_handler.go process, which src/jobservice/job/impl/
  notification/webhook_job.go execute sends as is; Content-Type from src/pkg/notifier/formats/
  default.go); payloads src/controller/event/handler/webhook/{artifact,scan}.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import secrets
import string
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from services.base import ssl_context
from services.emulators.base import FaultMiddleware, Faults

API = "/api/v2.0"
PREFIX = "robot$"
# harbor_admin_password of goharbor/harbor:make/harbor.yml, what a fresh install starts with.
DEFAULT_ADMIN_PASSWORD = "Harbor12345"
_NAME_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")  # pkg/project/manager.go, handler/robot.go
_REPO_COMPONENT = r"[a-z0-9]+(?:[._-][a-z0-9]+)*"
_REPO_RE = re.compile(rf"^{_REPO_COMPONENT}(?:/{_REPO_COMPONENT})*$")
_STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    412: "PRECONDITION",
    429: "TOO_MANY_REQUEST",
    500: "UNKNOWN",
    503: "SERVICE_UNAVAILABLE",
}
ROLE_NAMES = {1: "projectAdmin", 2: "developer", 3: "guest", 4: "maintainer", 5: "limitedGuest"}
# A subset of the project-scope policies robots may hold (src/common/rbac/project/rbac_role.go).
_PROJECT_ACCESS = (
    {("repository", action) for action in ("pull", "push", "delete", "list", "read", "update")}
    | {("artifact", a) for a in ("read", "list", "delete", "create")}
    | {("tag", a) for a in ("create", "delete", "list")}
    | {("scan", a) for a in ("create", "read", "stop")}
    | {("artifact-label", a) for a in ("create", "delete")}
    | {
        ("helm-chart", "read"),
        ("helm-chart-version", "create"),
    }
)
VULN_MIME = "application/vnd.security.vulnerability.report; version=1.1"
NATIVE_MIME = "application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0"
_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
EVENT_TYPES = (
    "PUSH_ARTIFACT",
    "PULL_ARTIFACT",
    "DELETE_ARTIFACT",
    "SCANNING_COMPLETED",
    "SCANNING_FAILED",
    "SCANNING_STOPPED",
    "QUOTA_EXCEED",
    "QUOTA_WARNING",
    "REPLICATION",
    "TAG_RETENTION",
)


class HarborError(Exception):
    def __init__(self, status: int, message: str = "", code: str | None = None) -> None:
        super().__init__(status)
        self.status, self.message, self.code = status, message, code


def error_body(status: int, message: str = "", code: str | None = None) -> dict[str, Any]:
    """Harbor's error body (swagger ``Errors``)."""
    text = message or {401: "unauthorized", 403: "forbidden", 404: "not found", 503: "service unavailable"}.get(
        status, "internal server error" if status >= 500 else "bad request"
    )
    return {"errors": [{"code": code or _STATUS_CODES.get(status, "UNKNOWN"), "message": text}]}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _secret() -> str:
    # controller/robot CreateSec: 32 random letters and digits, at least one of each case and a digit.
    alphabet = string.ascii_letters + string.digits
    while True:
        value = "".join(secrets.choice(alphabet) for _ in range(32))
        if valid_secret(value):
            return value


def valid_secret(value: str) -> bool:
    """controller/robot IsValidSec: 8–128 long, a lower-case letter, an upper-case one, a digit."""
    return (
        8 <= len(value) <= 128
        and re.search("[a-z]", value) is not None
        and re.search("[A-Z]", value) is not None
        and re.search(r"\d", value) is not None
    )


@dataclass
class User:
    id: int
    username: str
    password: str = field(repr=False)
    admin: bool = False
    email: str = ""


@dataclass
class Robot:
    id: int
    name: str  # as stored: "<project>+<name>"; shown with the prefix
    project_id: int
    secret: str = field(repr=False)
    description: str = ""
    duration: int = -1
    disable: bool = False
    permissions: list[dict[str, Any]] = field(default_factory=list)
    creation_time: str = field(default_factory=_now)
    update_time: str = field(default_factory=_now)


@dataclass
class Member:
    id: int
    user_id: int  # 0 for a group member
    role_id: int
    group_id: int = 0
    group_name: str = ""


@dataclass
class TagRecord:
    id: int
    name: str
    push_time: str


@dataclass
class Artifact:
    id: int
    digest: str
    size: int
    push_time: str
    tags: list[TagRecord] = field(default_factory=list)
    report: dict[str, Any] | None = None  # the Trivy report once scanned
    scan_status: str = ""  # "", "Running", "Success", "Error"


@dataclass
class Repository:
    id: int
    name: str  # full: "<project>/<name>"
    project_id: int
    creation_time: str = field(default_factory=_now)
    artifacts: list[Artifact] = field(default_factory=list)


@dataclass
class WebhookPolicy:
    id: int
    name: str
    project_id: int
    targets: list[dict[str, Any]]
    event_types: list[str]
    enabled: bool = True
    description: str = ""
    creator: str = "admin"
    creation_time: str = field(default_factory=_now)
    update_time: str = field(default_factory=_now)


@dataclass
class Project:
    id: int
    name: str
    owner_id: int
    metadata: dict[str, str] = field(default_factory=dict)
    creation_time: str = field(default_factory=_now)
    members: list[Member] = field(default_factory=list)
    repositories: dict[str, Repository] = field(default_factory=dict)  # by short name
    webhooks: list[WebhookPolicy] = field(default_factory=list)


@dataclass
class Delivery:
    """One webhook POST the emulator made, and how the receiver answered (0: unreachable)."""

    url: str
    event_type: str
    headers: dict[str, str]
    payload: dict[str, Any]
    status: int = 0


class State:
    """Everything the emulated Harbor knows; thread-safe (tests read it from another thread)."""

    def __init__(self, admin: str = "admin", admin_password: str = DEFAULT_ADMIN_PASSWORD) -> None:
        self.lock = threading.Lock()
        self.faults = Faults()
        self.users: dict[str, User] = {}
        self.projects: dict[str, Project] = {}
        self.robots: dict[int, Robot] = {}
        self.groups: dict[str, int] = {}  # user groups (OIDC) by name: their ids
        self.unhealthy: dict[str, str] = {}
        self.scan_fails = False  # the next scans end in SCANNING_FAILED
        self.deliveries: list[Delivery] = []
        self.webhook_timeout = 5.0
        self.host = "harbor.local"  # the registry host in resource URLs
        self._ids = 0
        self._threads: list[threading.Thread] = []
        self.add_user(admin, admin_password, admin=True)

    def next_id(self) -> int:
        self._ids += 1
        return self._ids

    # --- seeding -------------------------------------------------------------------------------

    def add_user(self, username: str, password: str, admin: bool = False, email: str = "") -> User:
        with self.lock:
            user = User(self.next_id(), username, password, admin, email or f"{username}@harbor.local")
            self.users[username] = user
            return user

    def add_project(self, name: str, owner: str = "admin", **metadata: str) -> Project:
        with self.lock:
            return self._create_project_locked(name, self.users[owner], {"public": "false", **metadata})

    def push_image(
        self,
        project: str,
        repository: str,
        tag: str,
        digest: str | None = None,
        size: int = 1_234_567,
        vulnerabilities: list[dict[str, Any]] | None = None,
        operator: str = "",
    ) -> str:
        """What a CI ``docker push`` does: the repository appears, ``tag`` moves to the artifact
        (created if new), PUSH_ARTIFACT fires; with ``auto_scan`` the artifact is scanned (its report
        lists ``vulnerabilities``). Returns the artifact's digest."""
        if not _REPO_RE.match(repository) or len(f"{project}/{repository}") > 255:
            raise ValueError(f"invalid repository name {repository!r}")  # what the registry refuses
        with self.lock:
            proj = self.projects[project]
            repo = proj.repositories.get(repository)
            if repo is None:
                repo = Repository(self.next_id(), f"{project}/{repository}", proj.id)
                proj.repositories[repository] = repo
            digest = (
                digest or "sha256:" + hashlib.sha256(f"{project}/{repository}:{tag}#{self._ids}".encode()).hexdigest()
            )
            for other in repo.artifacts:
                other.tags = [t for t in other.tags if t.name != tag]
            artifact = next((a for a in repo.artifacts if a.digest == digest), None)
            if artifact is None:
                artifact = Artifact(self.next_id(), digest, size, _now())
                repo.artifacts.insert(0, artifact)
            artifact.tags.append(TagRecord(self.next_id(), tag, _now()))
            resource = _resource(self.host, repo, digest, tag, {})
            self._fire_locked(proj, "PUSH_ARTIFACT", repo, [resource], operator or "admin")
            auto = proj.metadata.get("auto_scan") == "true"
        if auto:
            self.scan(project, repository, digest, vulnerabilities or [])
        return digest

    def scan(self, project: str, repository: str, reference: str, vulnerabilities: list[dict[str, Any]]) -> None:
        """Trivy scans the artifact: its report is stored, SCANNING_COMPLETED (or _FAILED) fires."""
        with self.lock:
            proj = self.projects[project]
            repo = proj.repositories[repository]
            artifact = _find_artifact(repo, reference)
            if artifact is None:
                raise KeyError(reference)
            failed = self.scan_fails
            artifact.scan_status = "Error" if failed else "Success"
            artifact.report = None if failed else _report(repo, artifact, vulnerabilities)
            tag = artifact.tags[0].name if artifact.tags else ""
            overview = {} if failed else {VULN_MIME: _overview(artifact)}
            resource = _resource(self.host, repo, artifact.digest, tag, overview)
            event = "SCANNING_FAILED" if failed else "SCANNING_COMPLETED"
            self._fire_locked(proj, event, repo, [resource], "auto", scan={"scan_type": "vulnerability"})

    def set_component_health(self, component: str, healthy: bool, message: str = "") -> None:
        with self.lock:
            if healthy:
                self.unhealthy.pop(component, None)
            else:
                self.unhealthy[component] = message or f"{component} is down"

    # --- read helpers (for tests) --------------------------------------------------------------

    def project(self, name: str) -> Project | None:
        with self.lock:
            return copy.deepcopy(self.projects.get(name))

    def tag_names(self, project: str, repository: str) -> list[str]:
        """The tags of ``project/repository`` (as the Quay emulator's helper of the same name)."""
        with self.lock:
            proj = self.projects.get(project)
            repo = proj.repositories.get(repository) if proj else None
            return sorted({t.name for a in repo.artifacts for t in a.tags}) if repo else []

    def robot(self, full_name: str) -> Robot | None:
        with self.lock:
            found = next((r for r in self.robots.values() if PREFIX + r.name == full_name), None)
            return copy.deepcopy(found)

    def login_ok(self, username: str, password: str) -> bool:
        """Whether ``docker login`` with these credentials would work."""
        with self.lock:
            return self._login_locked(username, password) is not None

    def wait_deliveries(self, timeout: float = 5.0) -> list[Delivery]:
        """The webhook POSTs made so far, once those under way have ended."""
        deadline = time.monotonic() + timeout
        with self.lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self.lock:
            return list(self.deliveries)

    # --- internals (lock held) -----------------------------------------------------------------

    def _create_project_locked(self, name: str, owner: User, metadata: dict[str, str]) -> Project:
        project = Project(self.next_id(), name, owner.id, metadata)
        project.members.append(Member(self.next_id(), owner.id, 1))  # the creator is its admin
        self.projects[name] = project
        return project

    def _login_locked(self, username: str, password: str) -> User | Robot | None:
        user = self.users.get(username)
        if user is not None:
            return user if secrets.compare_digest(user.password, password) else None
        robot = next((r for r in self.robots.values() if PREFIX + r.name == username), None)
        if robot is not None and not robot.disable and secrets.compare_digest(robot.secret, password):
            return robot
        return None

    def _fire_locked(
        self,
        project: Project,
        event: str,
        repo: Repository,
        resources: list[dict[str, Any]],
        operator: str,
        scan: dict[str, Any] | None = None,
    ) -> None:
        short = repo.name.partition("/")[2]
        data: dict[str, Any] = {
            "resources": resources,
            "repository": {
                "date_created": int(time.time()),
                "name": short,
                "namespace": project.name,
                "repo_full_name": repo.name,
                "repo_type": "public" if project.metadata.get("public") == "true" else "private",
            },
        }
        if scan is not None:
            data["scan"] = scan
        payload = {"type": event, "occur_at": int(time.time()), "operator": operator, "event_data": data}
        for policy in project.webhooks:
            if not policy.enabled or event not in policy.event_types:
                continue
            for target in policy.targets:
                headers = {"Content-Type": "application/json"}
                if target.get("auth_header"):
                    headers["Authorization"] = str(target["auth_header"])
                delivery = Delivery(str(target.get("address", "")), event, headers, copy.deepcopy(payload))
                thread = threading.Thread(target=self._deliver, args=(delivery,), daemon=True, name="harbor-hook")
                self._threads.append(thread)
                thread.start()

    def _deliver(self, delivery: Delivery) -> None:
        try:
            response = httpx.post(
                delivery.url,
                json=delivery.payload,
                headers=delivery.headers,
                timeout=self.webhook_timeout,
                verify=ssl_context(),
            )
            delivery.status = response.status_code
        except httpx.HTTPError:
            delivery.status = 0
        with self.lock:
            self.deliveries.append(delivery)


def _find_artifact(repo: Repository, reference: str) -> Artifact | None:
    if reference.startswith("sha256:"):
        return next((a for a in repo.artifacts if a.digest == reference), None)
    return next((a for a in repo.artifacts if any(t.name == reference for t in a.tags)), None)


def _resource(host: str, repo: Repository, digest: str, tag: str, overview: dict[str, Any]) -> dict[str, Any]:
    """A webhook payload's resource, as goharbor/harbor:src/pkg/notifier/model/event.go ``Resource``
    marshals it: ``tag`` and ``scan_overview`` are ``omitempty`` (absent, not "" or {}, for an
    untagged artifact or a failed scan); ``resource_url`` is ``host/repo:tag``, or ``host/repo@digest``
    without a tag (src/controller/event/handler/util/util.go BuildImageResourceURL)."""
    resource: dict[str, Any] = {"digest": digest}
    if tag:
        resource["tag"] = tag
    resource["resource_url"] = f"{host}/{repo.name}:{tag}" if tag else f"{host}/{repo.name}@{digest}"
    if overview:
        resource["scan_overview"] = overview
    return resource


_SEVERITIES = ("Unknown", "None", "Low", "Medium", "High", "Critical")


def _report(repo: Repository, artifact: Artifact, vulnerabilities: list[dict[str, Any]]) -> dict[str, Any]:
    """The report shape of src/pkg/scan/vuln/report.go (``Report``, ``VulnerabilityItem``)."""
    items = []
    for vuln in vulnerabilities:
        items.append(
            {
                "id": vuln.get("id", "CVE-0000-0000"),
                "package": vuln.get("package", ""),
                "version": vuln.get("version", ""),
                "fix_version": vuln.get("fix_version", ""),
                "severity": vuln.get("severity", "Unknown"),
                "status": vuln.get("status", ""),
                "description": vuln.get("description", ""),
                "links": vuln.get("links", []),
                "artifact_digests": [artifact.digest],
                "preferred_cvss": {"score_v3": vuln.get("score"), "score_v2": None, "vector_v3": "", "vector_v2": ""},
                "cwe_ids": vuln.get("cwe_ids", []),
                "vendor_attributes": {},
            }
        )
    worst = max((_SEVERITIES.index(i["severity"]) for i in items if i["severity"] in _SEVERITIES), default=1)
    return {
        "generated_at": _now(),
        "artifact": {"repository": repo.name, "digest": artifact.digest, "mime_type": _MANIFEST},
        "scanner": {"name": "Trivy", "vendor": "Aqua Security", "version": "v0.58.1"},
        "severity": _SEVERITIES[worst],
        "vulnerabilities": items,
    }


def _overview(artifact: Artifact) -> dict[str, Any]:
    """swagger ``NativeReportSummary`` of the artifact's report."""
    report = artifact.report or {}
    counts: dict[str, int] = {}
    for item in report.get("vulnerabilities", []):
        counts[item["severity"]] = counts.get(item["severity"], 0) + 1
    total = sum(counts.values())
    return {
        "report_id": f"report-{artifact.id}",
        "scan_status": artifact.scan_status or "Success",
        "severity": report.get("severity", "None"),
        "duration": 1,
        "summary": {"total": total, "fixable": total, "summary": counts},
        "start_time": artifact.push_time,
        "end_time": _now(),
        "scanner": report.get("scanner", {"name": "Trivy", "vendor": "Aqua Security", "version": "v0.58.1"}),
        "complete_percent": 100,
    }


# --- request plumbing ----------------------------------------------------------------------------

Handler = Callable[[Request], Awaitable[Response]]
Viewer = User | Robot


def _basic(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        username, sep, password = base64.b64decode(value.strip()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (username, password) if sep else None


def _int(value: str | None, default: int, name: str) -> int:
    if value is None or value == "":
        return default
    if not re.fullmatch(r"-?[0-9]+", value):
        # go-swagger's parameter binding: 422 for a value not of the declared type.
        raise HarborError(422, f'{name} in query must be of type int64: "{value}"', "UNPROCESSABLE_ENTITY")
    return int(value)


def _paged(request: Request, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
    """A page of ``items`` and the ``X-Total-Count``/``Link`` headers (src/lib/link.go)."""
    page = max(1, _int(request.query_params.get("page"), 1, "page"))
    size = _int(request.query_params.get("page_size"), 10, "page_size")
    if size > 100:
        raise HarborError(422, "page_size in query should be less than or equal to 100", "UNPROCESSABLE_ENTITY")
    size = max(1, size)
    chunk = items[(page - 1) * size : page * size]
    headers = {"X-Total-Count": str(len(items))}
    links = []
    query = dict(request.query_params)
    path = request.url.path
    if page > 1:
        links.append(f'<{path}?{urlencode({**query, "page": page - 1, "page_size": size})}>; rel="prev"')
    if page * size < len(items):
        links.append(f'<{path}?{urlencode({**query, "page": page + 1, "page_size": size})}>; rel="next"')
    if links:
        headers["Link"] = " , ".join(links)
    return chunk, headers


class _Api:
    def __init__(self, state: State) -> None:
        self.state = state

    # auth

    def viewer(self, request: Request) -> Viewer | None:
        creds = _basic(request)
        if creds is None:
            return None
        with self.state.lock:
            return self.state._login_locked(*creds)

    def require_login(self, request: Request) -> Viewer:
        viewer = self.viewer(request)
        if viewer is None:
            raise HarborError(401, "UnAuthorized")
        return viewer

    def role(self, viewer: Viewer, project: Project) -> int | None:
        """The viewer's project role id (1 admin … 3 guest), None when not a member."""
        if isinstance(viewer, User):
            if viewer.admin:
                return 1
            member = next((m for m in project.members if m.user_id == viewer.id), None)
            return member.role_id if member else None
        if viewer.project_id == project.id:
            return 3  # a robot reads its own project
        return None

    def project_for(self, request: Request, viewer: Viewer, need_admin: bool = False) -> Project:
        """The project named (or numbered) in the path; lock held by the caller."""
        raw = request.path_params.get("project_name_or_id") or request.path_params.get("project_name") or ""
        by_name = request.headers.get("x-is-resource-name", "false").lower() == "true"
        project: Project | None
        if not by_name and raw.isdigit() and "project_name" not in request.path_params:
            project = next((p for p in self.state.projects.values() if p.id == int(raw)), None)
        else:
            project = self.state.projects.get(raw)
        if project is None:
            raise HarborError(404, f"project {raw} not found")
        role = self.role(viewer, project)
        if role is None:
            raise HarborError(403, "forbidden")
        if need_admin and role != 1:
            raise HarborError(403, "forbidden")
        return project

    @staticmethod
    async def body(request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            raise HarborError(400, "invalid JSON body") from None
        if not isinstance(body, dict):
            raise HarborError(400, "the request body must be an object")
        return body

    # health and users

    async def health(self, request: Request) -> Response:
        components = ("core", "database", "jobservice", "portal", "redis", "registry", "registryctl", "trivy")
        with self.state.lock:
            views = []
            for name in components:
                view = {"name": name, "status": "unhealthy" if name in self.state.unhealthy else "healthy"}
                if name in self.state.unhealthy:
                    view["error"] = self.state.unhealthy[name]
                views.append(view)
        status = "unhealthy" if any(v["status"] == "unhealthy" for v in views) else "healthy"
        return JSONResponse({"status": status, "components": views})

    async def current_user(self, request: Request) -> Response:
        viewer = self.require_login(request)
        if not isinstance(viewer, User):
            # handler/user.go GetCurrentUserInfo: only a local user has a profile.
            raise HarborError(403, "the current security context is not a local user")
        return JSONResponse(
            {
                "user_id": viewer.id,
                "username": viewer.username,
                "email": viewer.email,
                "realname": viewer.username,
                "comment": "",
                "sysadmin_flag": viewer.admin,
                "admin_role_in_auth": False,
                "creation_time": _now(),
                "update_time": _now(),
            }
        )

    # projects

    def project_view(self, project: Project, viewer: Viewer) -> dict[str, Any]:
        owner = next((u for u in self.state.users.values() if u.id == project.owner_id), None)
        role = self.role(viewer, project)
        return {
            "project_id": project.id,
            "name": project.name,
            "owner_id": project.owner_id,
            "owner_name": owner.username if owner else "",
            "repo_count": len(project.repositories),
            "metadata": dict(project.metadata),
            "creation_time": project.creation_time,
            "update_time": project.creation_time,
            "deleted": False,
            "togglable": True,
            "current_user_role_id": role or 0,
            "current_user_role_ids": [role] if role else [],
            "cve_allowlist": {"id": 0, "project_id": project.id, "items": []},
        }

    async def head_projects(self, request: Request) -> Response:
        self.require_login(request)
        name = request.query_params.get("project_name", "")
        with self.state.lock:
            found = name in self.state.projects
        return Response(status_code=200 if found else 404)

    async def list_projects(self, request: Request) -> Response:
        viewer = self.require_login(request)
        name = request.query_params.get("name")
        with self.state.lock:
            visible = [
                self.project_view(p, viewer)
                for p in sorted(self.state.projects.values(), key=lambda p: p.name)
                if (self.role(viewer, p) is not None or p.metadata.get("public") == "true")
                and (name is None or name in p.name)
            ]
        page, headers = _paged(request, visible)
        return JSONResponse(page, headers=headers)

    async def create_project(self, request: Request) -> Response:
        viewer = self.require_login(request)
        if not isinstance(viewer, User):
            raise HarborError(403, "Only system level robot can create project")
        body = await self.body(request)
        name = body.get("project_name")
        if not isinstance(name, str):
            raise HarborError(422, "project_name in body is required", "UNPROCESSABLE_ENTITY")
        if len(name) > 255:
            raise HarborError(422, "project_name in body should be at most 255 chars long", "UNPROCESSABLE_ENTITY")
        if not 1 <= len(name) <= 255:
            raise HarborError(400, f"Project name {name} is illegal in length. (greater than 255 or less than 1)")
        if not _NAME_RE.match(name):
            raise HarborError(400, "project name is not in lower case or contains illegal characters")
        metadata = {str(k): str(v) for k, v in (body.get("metadata") or {}).items()}
        public = metadata.setdefault("public", "false")
        if public not in ("true", "false"):
            raise HarborError(400, f"metadata.public should only be 'true' or 'false', but got: '{public}'")
        with self.state.lock:
            if name in self.state.projects:
                raise HarborError(409, f"The project named {name} already exists")
            project = self.state._create_project_locked(name, viewer, metadata)
        location = (
            f"{API}/projects/{name if request.headers.get('x-resource-name-in-location') == 'true' else project.id}"
        )
        return Response(status_code=201, headers={"Location": location})

    async def get_project(self, request: Request) -> Response:
        viewer = self.require_login(request)
        with self.state.lock:
            project = self.project_for(request, viewer)
            return JSONResponse(self.project_view(project, viewer))

    async def delete_project(self, request: Request) -> Response:
        viewer = self.require_login(request)
        with self.state.lock:
            project = self.project_for(request, viewer, need_admin=True)
            if project.repositories:
                raise HarborError(412, "the project contains repositories, can not be deleted")
            del self.state.projects[project.name]
            for robot_id in [r.id for r in self.state.robots.values() if r.project_id == project.id]:
                del self.state.robots[robot_id]
        return Response(status_code=200)

    # members

    def member_view(self, project: Project, member: Member) -> dict[str, Any]:
        if member.group_id:
            return {
                "id": member.id,
                "project_id": project.id,
                "entity_name": member.group_name,
                "entity_id": member.group_id,
                "entity_type": "g",
                "role_id": member.role_id,
                "role_name": ROLE_NAMES.get(member.role_id, ""),
            }
        user = next((u for u in self.state.users.values() if u.id == member.user_id), None)
        return {
            "id": member.id,
            "project_id": project.id,
            "entity_name": user.username if user else "",
            "entity_id": member.user_id,
            "entity_type": "u",
            "role_id": member.role_id,
            "role_name": ROLE_NAMES.get(member.role_id, ""),
        }

    async def list_members(self, request: Request) -> Response:
        viewer = self.require_login(request)
        name = request.query_params.get("entityname")
        with self.state.lock:
            project = self.project_for(request, viewer)
            views = [self.member_view(project, m) for m in project.members]
        views = [v for v in views if name is None or name in v["entity_name"]]
        page, headers = _paged(request, views)
        return JSONResponse(page, headers=headers)

    async def create_member(self, request: Request) -> Response:
        viewer = self.require_login(request)
        body = await self.body(request)
        role_id = body.get("role_id")
        username = (body.get("member_user") or {}).get("username") or ""
        user_id = (body.get("member_user") or {}).get("user_id")
        group_name = str((body.get("member_group") or {}).get("group_name") or "")
        if not username and not user_id and not group_name:
            raise HarborError(400, "at least one of member_user or member_group must be provided")
        if role_id not in ROLE_NAMES:
            raise HarborError(400, "Failed to update project member, role is not in 1,2,3")
        with self.state.lock:
            project = self.project_for(request, viewer, need_admin=True)
            if not username and not user_id:
                # A group by name, onboarded when unknown (src/controller/member/controller.go Create,
                # auth.SearchAndOnBoardGroup: an OIDC-mode Harbor, as the platform's, creates it).
                group_id = self.state.groups.setdefault(group_name, self.state.next_id())
                if any(m.group_id == group_id for m in project.members):
                    raise HarborError(409, "The project member specified already exist")
                member = Member(self.state.next_id(), 0, int(role_id), group_id, group_name)
                project.members.append(member)
                raw = request.path_params["project_name_or_id"]
                return Response(status_code=201, headers={"Location": f"{API}/projects/{raw}/members/{member.id}"})
            if username:
                user = self.state.users.get(username)
                if user is None:
                    raise HarborError(404, f"user {username} is not found")
            else:
                user = next((u for u in self.state.users.values() if u.id == user_id), None)
                if user is None:
                    raise HarborError(400, f"User {user_id} not found")
            if any(m.user_id == user.id for m in project.members):
                raise HarborError(409, "The project member specified already exist")
            member = Member(self.state.next_id(), user.id, int(role_id))
            project.members.append(member)
            raw = request.path_params["project_name_or_id"]
        return Response(status_code=201, headers={"Location": f"{API}/projects/{raw}/members/{member.id}"})

    def member_for(self, request: Request, project: Project) -> Member:
        mid = _int(request.path_params["mid"], 0, "mid")
        member = next((m for m in project.members if m.id == mid), None)
        if member is None:
            raise HarborError(404, f"project member {mid} not found")
        return member

    async def get_member(self, request: Request) -> Response:
        viewer = self.require_login(request)
        with self.state.lock:
            project = self.project_for(request, viewer)
            return JSONResponse(self.member_view(project, self.member_for(request, project)))

    async def update_member(self, request: Request) -> Response:
        viewer = self.require_login(request)
        body = await self.body(request)
        if body.get("role_id") not in ROLE_NAMES:
            raise HarborError(400, "Failed to update project member, role is not in 1,2,3")
        with self.state.lock:
            project = self.project_for(request, viewer, need_admin=True)
            self.member_for(request, project).role_id = int(body["role_id"])
        return Response(status_code=200)

    async def delete_member(self, request: Request) -> Response:
        viewer = self.require_login(request)
        with self.state.lock:
            project = self.project_for(request, viewer, need_admin=True)
            project.members.remove(self.member_for(request, project))
        return Response(status_code=200)

    # robots

    def robot_view(self, robot: Robot) -> dict[str, Any]:
        return {
            "id": robot.id,
            "name": PREFIX + robot.name,
            "description": robot.description,
            "expires_at": -1 if robot.duration == -1 else int(time.time()) + robot.duration * 86400,
            "duration": robot.duration,
            "level": "project",
            "disable": robot.disable,
            "editable": True,
            "creator_type": "local",
            "creator_ref": 1,
            "creation_time": robot.creation_time,
            "update_time": robot.update_time,
            "permissions": copy.deepcopy(robot.permissions),
        }

    def validate_robot(self, body: dict[str, Any]) -> tuple[Project, list[dict[str, Any]]]:
        """handler/robot.go validate, for project robots; lock held."""
        duration = body.get("duration", 0)
        if not isinstance(duration, int) or not (duration == -1 or 0 < duration < 2**31 - 1):
            raise HarborError(
                400,
                f"bad request error duration input: {duration}, "
                "duration must be either -1(Never) or a positive integer",
            )
        level = body.get("level")
        if level not in ("system", "project"):
            raise HarborError(400, f"bad request error level input: {level}")
        permissions = body.get("permissions") or []
        if not permissions:
            raise HarborError(400, "bad request empty permission")
        for perm in permissions:
            if not isinstance(perm, dict) or not perm.get("access"):
                raise HarborError(400, "bad request empty access")
        if level == "system":
            raise HarborError(403, "forbidden")  # the emulator holds project robots only
        if len(permissions) > 1:
            raise HarborError(400, "bad request permission")
        perm = permissions[0]
        if perm.get("kind") != "project":
            raise HarborError(400, f"bad request permission level: {perm.get('kind')}")
        for access in perm["access"]:
            if (access.get("resource"), access.get("action")) not in _PROJECT_ACCESS:
                raise HarborError(400, f"bad request permission: {access.get('resource')}:{access.get('action')}")
        project = self.state.projects.get(str(perm.get("namespace", "")))
        if project is None:
            raise HarborError(404, f"project {perm.get('namespace')} not found")
        return project, permissions

    async def create_robot(self, request: Request) -> Response:
        viewer = self.require_login(request)
        body = await self.body(request)
        name = body.get("name")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise HarborError(400, "robot name is not in lower case or contains illegal characters")
        with self.state.lock:
            project, permissions = self.validate_robot(body)
            if self.role(viewer, project) != 1:
                raise HarborError(403, "forbidden")
            stored = f"{project.name}+{name}"
            if any(r.name == stored and r.project_id == project.id for r in self.state.robots.values()):
                raise HarborError(409, f"robot account {project.id}:{stored} already exists")
            robot = Robot(
                self.state.next_id(),
                stored,
                project.id,
                _secret(),
                str(body.get("description") or ""),
                int(body.get("duration", -1)),
                bool(body.get("disable", False)),
                permissions,
            )
            self.state.robots[robot.id] = robot
            created = {
                "id": robot.id,
                "name": PREFIX + robot.name,
                "secret": robot.secret,
                "creation_time": robot.creation_time,
                "expires_at": self.robot_view(robot)["expires_at"],
            }
        return JSONResponse(created, status_code=201, headers={"Location": f"{API}/robots/{robot.id}"})

    async def list_robots(self, request: Request) -> Response:
        viewer = self.require_login(request)
        keywords = dict(part.split("=", 1) for part in (request.query_params.get("q") or "").split(",") if "=" in part)
        level = keywords.get("Level", "system")
        if level not in ("system", "project"):
            raise HarborError(400, "bad request error level input")
        with self.state.lock:
            if level == "system":
                if not (isinstance(viewer, User) and viewer.admin):
                    raise HarborError(403, "forbidden")
                robots: list[Robot] = []  # no system robots here
            else:
                if "ProjectID" not in keywords:
                    raise HarborError(400, "must with project ID when to query project robots")
                pid = keywords["ProjectID"]
                if not pid.isdigit() or int(pid) <= 0:
                    raise HarborError(400, "ProjectID must be a positive integer")
                project = next((p for p in self.state.projects.values() if p.id == int(pid)), None)
                if project is None:
                    raise HarborError(404, f"project {pid} not found")
                if self.role(viewer, project) != 1:
                    raise HarborError(403, "forbidden")
                robots = sorted(
                    (r for r in self.state.robots.values() if r.project_id == project.id), key=lambda r: r.id
                )
            views = [self.robot_view(r) for r in robots]
        page, headers = _paged(request, views)
        return JSONResponse(page, headers=headers)

    def robot_for(self, request: Request, viewer: Viewer) -> Robot:
        robot_id = _int(request.path_params["robot_id"], 0, "robot_id")
        robot = self.state.robots.get(robot_id)
        if robot is None:
            raise HarborError(404, f"robot {robot_id} not found")
        project = next((p for p in self.state.projects.values() if p.id == robot.project_id), None)
        if project is None or self.role(viewer, project) != 1:
            raise HarborError(403, "forbidden")
        return robot

    async def get_robot(self, request: Request) -> Response:
        viewer = self.require_login(request)
        with self.state.lock:
            return JSONResponse(self.robot_view(self.robot_for(request, viewer)))

    async def update_robot(self, request: Request) -> Response:
        viewer = self.require_login(request)
        body = await self.body(request)
        with self.state.lock:
            robot = self.robot_for(request, viewer)
            if body.get("duration") is None:
                body["duration"] = robot.duration
            project, permissions = self.validate_robot(body)
            if project.id != robot.project_id:
                raise HarborError(400, "cannot update the project id of robot")
            if body.get("level") != "project" or body.get("name") != PREFIX + robot.name:
                raise HarborError(400, "cannot update the level or name of robot")
            robot.duration = int(body["duration"])
            robot.description = str(body.get("description") or "")
            robot.disable = bool(body.get("disable", False))
            robot.permissions = permissions
            robot.update_time = _now()
        return Response(status_code=200)

    async def refresh_robot(self, request: Request) -> Response:
        viewer = self.require_login(request)
        body = await self.body(request)
        with self.state.lock:
            robot = self.robot_for(request, viewer)
            given = str(body.get("secret") or "")
            if given and not valid_secret(given):
                raise HarborError(
                    400,
                    "the secret must be 8-128, inclusively, characters long with at least 1 uppercase letter, "
                    "1 lowercase letter and 1 number",
                )
            robot.secret = given or _secret()
            robot.update_time = _now()
            answer = {} if given else {"secret": robot.secret}
        return JSONResponse(answer)

    async def delete_robot(self, request: Request) -> Response:
        viewer = self.require_login(request)
        with self.state.lock:
            robot = self.robot_for(request, viewer)
            del self.state.robots[robot.id]
        return Response(status_code=200)

    # repositories and artifacts

    def repository_for(self, request: Request, project: Project) -> Repository:
        # Starlette decoded the path once: a%252Fb arrived as a%2Fb; the second decoding is ours.
        name = unquote(request.path_params["repository_name"])
        repo = project.repositories.get(name)
        if repo is None:
            raise HarborError(404, f"repository {project.name}/{name} not found")
        return repo

    def repository_view(self, repo: Repository) -> dict[str, Any]:
        return {
            "id": repo.id,
            "name": repo.name,
            "project_id": repo.project_id,
            "description": "",
            "artifact_count": len(repo.artifacts),
            "pull_count": 0,
            "creation_time": repo.creation_time,
            "update_time": repo.creation_time,
        }

    async def list_repositories(self, request: Request) -> Response:
        viewer = self.require_login(request)
        with self.state.lock:
            project = self.project_for(request, viewer)
            views = [self.repository_view(r) for r in sorted(project.repositories.values(), key=lambda r: r.name)]
        page, headers = _paged(request, views)
        return JSONResponse(page, headers=headers)

    async def get_repository(self, request: Request) -> Response:
        viewer = self.require_login(request)
        with self.state.lock:
            project = self.project_for(request, viewer)
            return JSONResponse(self.repository_view(self.repository_for(request, project)))

    async def delete_repository(self, request: Request) -> Response:
        viewer = self.require_login(request)
        with self.state.lock:
            project = self.project_for(request, viewer, need_admin=True)
            repo = self.repository_for(request, project)
            del project.repositories[repo.name.partition("/")[2]]
        return Response(status_code=200)

    def artifact_view(self, repo: Repository, artifact: Artifact, request: Request) -> dict[str, Any]:
        params = request.query_params
        view: dict[str, Any] = {
            "id": artifact.id,
            "type": "IMAGE",
            "media_type": _IMAGE_CONFIG,
            "manifest_media_type": _MANIFEST,
            "artifact_type": _IMAGE_CONFIG,
            "project_id": repo.project_id,
            "repository_id": repo.id,
            "repository_name": repo.name,
            "digest": artifact.digest,
            "size": artifact.size,
            "push_time": artifact.push_time,
            "pull_time": "0001-01-01T00:00:00.000Z",
            "extra_attrs": {"architecture": "amd64", "os": "linux"},
            "annotations": {},
            "references": [],
            "labels": [],
            "accessories": [],
            "addition_links": {
                "vulnerabilities": {
                    "absolute": False,
                    "href": f"{API}/projects/{repo.name.partition('/')[0]}/repositories/"
                    f"{_double(repo.name.partition('/')[2])}/artifacts/{artifact.digest}/additions/vulnerabilities",
                }
            },
        }
        if params.get("with_tag", "true") == "true":
            view["tags"] = [self.tag_view(repo, artifact, t) for t in artifact.tags]
        if params.get("with_scan_overview") == "true" and artifact.scan_status:
            view["scan_overview"] = {VULN_MIME: _overview(artifact)}
        return view

    @staticmethod
    def tag_view(repo: Repository, artifact: Artifact, tag: TagRecord) -> dict[str, Any]:
        return {
            "id": tag.id,
            "repository_id": repo.id,
            "artifact_id": artifact.id,
            "name": tag.name,
            "push_time": tag.push_time,
            "pull_time": "0001-01-01T00:00:00.000Z",
            "immutable": False,
        }

    async def list_artifacts(self, request: Request) -> Response:
        viewer = self.require_login(request)
        with self.state.lock:
            project = self.project_for(request, viewer)
            repo = self.repository_for(request, project)
            views = [self.artifact_view(repo, a, request) for a in repo.artifacts]
        page, headers = _paged(request, views)
        return JSONResponse(page, headers=headers)

    def artifact_for(self, request: Request, repo: Repository) -> Artifact:
        reference = request.path_params["reference"]
        artifact = _find_artifact(repo, reference)
        if artifact is None:
            raise HarborError(404, f"artifact {repo.name}:{reference} not found")
        return artifact

    async def get_artifact(self, request: Request) -> Response:
        viewer = self.require_login(request)
        with self.state.lock:
            project = self.project_for(request, viewer)
            repo = self.repository_for(request, project)
            return JSONResponse(self.artifact_view(repo, self.artifact_for(request, repo), request))

    async def list_artifact_tags(self, request: Request) -> Response:
        viewer = self.require_login(request)
        with self.state.lock:
            project = self.project_for(request, viewer)
            repo = self.repository_for(request, project)
            artifact = self.artifact_for(request, repo)
            views = [self.tag_view(repo, artifact, t) for t in artifact.tags]
        page, headers = _paged(request, views)
        return JSONResponse(page, headers=headers)

    async def vulnerabilities(self, request: Request) -> Response:
        viewer = self.require_login(request)
        accepted = [
            m.strip()
            for m in re.split(r",\s*(?=application/)", request.headers.get("x-accept-vulnerabilities", VULN_MIME))
            if m.strip()
        ]
        with self.state.lock:
            project = self.project_for(request, viewer)
            repo = self.repository_for(request, project)
            artifact = self.artifact_for(request, repo)
            report = copy.deepcopy(artifact.report)
        # handler/artifact.go GetVulnerabilitiesAddition: {mime: report} for the first accepted
        # mime type that has a report, {} when none has.
        answer: dict[str, Any] = {}
        if report is not None and any(m in (VULN_MIME, NATIVE_MIME) for m in accepted):
            mime = next(m for m in accepted if m in (VULN_MIME, NATIVE_MIME))
            answer[mime] = report
        return JSONResponse(answer)

    # webhook policies

    def policy_view(self, policy: WebhookPolicy) -> dict[str, Any]:
        return {
            "id": policy.id,
            "name": policy.name,
            "description": policy.description,
            "project_id": policy.project_id,
            "targets": copy.deepcopy(policy.targets),
            "event_types": list(policy.event_types),
            "creator": policy.creator,
            "creation_time": policy.creation_time,
            "update_time": policy.update_time,
            "enabled": policy.enabled,
        }

    def validate_policy(self, body: dict[str, Any], project: Project, current: int | None) -> list[dict[str, Any]]:
        """handler/webhook.go validateTargets and validateEventTypes, and the policy dao's unique
        name; returns the targets as stored: the address cut to scheme://host/path (SSRF guard)."""
        name = str(body.get("name") or "")
        if any(p.name == name and p.id != current for p in project.webhooks):
            raise HarborError(409, f"notification policy named {name} already exists")
        targets = body.get("targets") or []
        if not targets:
            raise HarborError(400, f"empty notification target with policy {name}")
        stored = []
        for target in targets:
            target = dict(target or {})
            # src/common/utils/utils.go ParseEndpoint keeps the query; validateTargets
            # (src/server/v2.0/handler/webhook.go) then stores only scheme://host/path (SSRF #3755).
            address = str(target.get("address", "")).strip(" ").rstrip("/")
            if not address:
                raise HarborError(400, "empty URL")
            scheme, sep, _rest = address.partition("://")
            if sep and scheme not in ("http", "https"):
                raise HarborError(400, f"invalid scheme: {scheme}")
            parts = urlsplit(address if sep else "http://" + address)
            target["address"] = f"{parts.scheme}://{parts.netloc}{parts.path}"
            if target.get("type") not in ("http", "slack"):
                raise HarborError(400, f"unsupported target type {target.get('type')} with policy {name}")
            stored.append(target)
        events = body.get("event_types") or []
        if not events:
            raise HarborError(400, "empty event type")
        for event in events:
            if event not in EVENT_TYPES:
                raise HarborError(400, f"unsupported event type {event}")
        return stored

    async def list_policies(self, request: Request) -> Response:
        viewer = self.require_login(request)
        with self.state.lock:
            project = self.project_for(request, viewer, need_admin=True)
            views = [self.policy_view(p) for p in project.webhooks]
        page, headers = _paged(request, views)
        return JSONResponse(page, headers=headers)

    async def create_policy(self, request: Request) -> Response:
        viewer = self.require_login(request)
        body = await self.body(request)
        with self.state.lock:
            project = self.project_for(request, viewer, need_admin=True)
            targets = self.validate_policy(body, project, None)
            policy = WebhookPolicy(
                self.state.next_id(),
                str(body.get("name") or ""),
                project.id,
                targets,
                list(body["event_types"]),
                bool(body.get("enabled", True)),
                str(body.get("description") or ""),
                viewer.username if isinstance(viewer, User) else PREFIX + viewer.name,
            )
            project.webhooks.append(policy)
            raw = request.path_params["project_name_or_id"]
        return Response(status_code=201, headers={"Location": f"{API}/projects/{raw}/webhook/policies/{policy.id}"})

    def policy_for(self, request: Request, project: Project) -> WebhookPolicy:
        pid = _int(request.path_params["webhook_policy_id"], 0, "webhook_policy_id")
        policy = next((p for p in project.webhooks if p.id == pid), None)
        if policy is None:
            raise HarborError(404, f"webhook policy {pid} not found")
        return policy

    async def get_policy(self, request: Request) -> Response:
        viewer = self.require_login(request)
        with self.state.lock:
            project = self.project_for(request, viewer, need_admin=True)
            return JSONResponse(self.policy_view(self.policy_for(request, project)))

    async def update_policy(self, request: Request) -> Response:
        viewer = self.require_login(request)
        body = await self.body(request)
        with self.state.lock:
            project = self.project_for(request, viewer, need_admin=True)
            policy = self.policy_for(request, project)
            policy.targets = self.validate_policy(body, project, policy.id)
            policy.name = str(body.get("name") or "")
            policy.event_types = list(body["event_types"])
            policy.enabled = bool(body.get("enabled", True))
            policy.description = str(body.get("description") or "")
            policy.update_time = _now()
        return Response(status_code=200)

    async def delete_policy(self, request: Request) -> Response:
        viewer = self.require_login(request)
        with self.state.lock:
            project = self.project_for(request, viewer, need_admin=True)
            project.webhooks.remove(self.policy_for(request, project))
        return Response(status_code=200)

    async def not_found(self, request: Request) -> Response:
        # Harbor's router answers an unknown path (a repository name encoded once, say) 404.
        raise HarborError(404, f"the resource {request.url.path} cannot be found")


def _double(name: str) -> str:
    return quote(quote(name, safe=""), safe="")


def _wrap(handler: Handler) -> Handler:
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except HarborError as err:
            return JSONResponse(error_body(err.status, err.message, err.code), status_code=err.status)

    return run


def create_app(state: State) -> ASGIApp:
    api = _Api(state)
    project = API + "/projects/{project_name_or_id}"
    repos = API + "/projects/{project_name}/repositories"
    repo = repos + "/{repository_name}"
    artifact = repo + "/artifacts/{reference}"
    routes = [
        Route(API + "/health", _wrap(api.health), methods=["GET"]),
        Route(API + "/users/current", _wrap(api.current_user), methods=["GET"]),
        # HEAD first: Starlette answers HEAD on a GET route too.
        Route(API + "/projects", _wrap(api.head_projects), methods=["HEAD"]),
        Route(API + "/projects", _wrap(api.list_projects), methods=["GET"]),
        Route(API + "/projects", _wrap(api.create_project), methods=["POST"]),
        Route(project, _wrap(api.get_project), methods=["GET"]),
        Route(project, _wrap(api.delete_project), methods=["DELETE"]),
        Route(project + "/members", _wrap(api.list_members), methods=["GET"]),
        Route(project + "/members", _wrap(api.create_member), methods=["POST"]),
        Route(project + "/members/{mid}", _wrap(api.get_member), methods=["GET"]),
        Route(project + "/members/{mid}", _wrap(api.update_member), methods=["PUT"]),
        Route(project + "/members/{mid}", _wrap(api.delete_member), methods=["DELETE"]),
        Route(project + "/webhook/policies", _wrap(api.list_policies), methods=["GET"]),
        Route(project + "/webhook/policies", _wrap(api.create_policy), methods=["POST"]),
        Route(project + "/webhook/policies/{webhook_policy_id}", _wrap(api.get_policy), methods=["GET"]),
        Route(project + "/webhook/policies/{webhook_policy_id}", _wrap(api.update_policy), methods=["PUT"]),
        Route(project + "/webhook/policies/{webhook_policy_id}", _wrap(api.delete_policy), methods=["DELETE"]),
        Route(API + "/robots", _wrap(api.list_robots), methods=["GET"]),
        Route(API + "/robots", _wrap(api.create_robot), methods=["POST"]),
        Route(API + "/robots/{robot_id}", _wrap(api.get_robot), methods=["GET"]),
        Route(API + "/robots/{robot_id}", _wrap(api.update_robot), methods=["PUT"]),
        Route(API + "/robots/{robot_id}", _wrap(api.refresh_robot), methods=["PATCH"]),
        Route(API + "/robots/{robot_id}", _wrap(api.delete_robot), methods=["DELETE"]),
        Route(repos, _wrap(api.list_repositories), methods=["GET"]),
        Route(repo, _wrap(api.get_repository), methods=["GET"]),
        Route(repo, _wrap(api.delete_repository), methods=["DELETE"]),
        Route(repo + "/artifacts", _wrap(api.list_artifacts), methods=["GET"]),
        Route(artifact, _wrap(api.get_artifact), methods=["GET"]),
        Route(artifact + "/tags", _wrap(api.list_artifact_tags), methods=["GET"]),
        Route(artifact + "/additions/vulnerabilities", _wrap(api.vulnerabilities), methods=["GET"]),
        Route("/{path:path}", _wrap(api.not_found), methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]),
    ]
    app = Starlette(routes=routes)
    return FaultMiddleware(app, state.faults, error_body)


__all__ = [
    "EVENT_TYPES",
    "NATIVE_MIME",
    "PREFIX",
    "VULN_MIME",
    "Delivery",
    "HarborError",
    "State",
    "create_app",
    "error_body",
    "valid_secret",
]
