"""Argo CD emulator: the API v1 subset (argocd-server's grpc-gateway) the bot drives with httpx.

Faithful to Argo CD 2.x (``argoproj/argo-cd`` ``server/session``, ``server/project``,
``server/application`` and ``assets/swagger.json``):

- Log in with ``POST /api/v1/session {"username", "password"}`` → ``{"token": <JWT>}``; then send
  ``Authorization: Bearer <token>`` or the ``argocd.token`` cookie. No or bad token → 401.
- Errors are grpc-gateway JSON: ``{"error": msg, "code": <grpc code>, "message": msg}`` with the
  HTTP status grpc-gateway maps the code to (InvalidArgument 3 and FailedPrecondition 9 → 400,
  NotFound 5 → 404, PermissionDenied 7 → 403, Aborted 10 → 409, Unauthenticated 16 → 401).
- As in argocd-server, getting an application that does not exist answers 403 "permission denied"
  (so that existence does not leak) unless the request names its ``project``: then 404.
- AppProjects are Kubernetes objects: ``PUT`` needs the current ``metadata.resourceVersion``.
- An application's repo must match its project's ``sourceRepos`` globs and its destination the
  project's ``destinations``, else 400 "application repo … is not permitted in project …".

Operations: ``POST …/sync`` (or ``…/rollback``, or automated sync when git moves) sets
``operation`` and a Running ``operationState``; a worker thread then ends it Succeeded or Failed
after ``timings.sync_seconds`` (``State.scenarios`` decides), appends a ``history`` entry, and
moves health from Progressing to Healthy or Degraded after ``timings.health_seconds``. Each step
may POST a notification to ``State.notification_webhooks`` (template in :func:`notify`).

Everything lives in memory behind one lock, so tests may read the state from their own thread.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from services.base import ssl_context
from services.emulators.base import FaultMiddleware, Faults, bearer_token

# gRPC status codes and the HTTP status grpc-gateway (runtime.HTTPStatusFromCode) gives them.
INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED = 3, 5, 6, 7
FAILED_PRECONDITION, ABORTED, INTERNAL, UNAUTHENTICATED = 9, 10, 13, 16
HTTP_OF_CODE = {
    0: 200,
    1: 408,
    2: 500,
    3: 400,
    4: 504,
    5: 404,
    6: 409,
    7: 403,
    8: 429,
    9: 400,
    10: 409,
    11: 400,
    12: 501,
    13: 500,
    14: 503,
    15: 500,
    16: 401,
}
CODE_OF_HTTP = {400: 3, 401: 16, 403: 7, 404: 5, 408: 1, 409: 10, 429: 8, 501: 12, 503: 14, 504: 4}
IN_CLUSTER = "https://kubernetes.default.svc"
SHA_RE = re.compile(r"^[0-9a-f]{40}$")


def now_iso() -> str:
    """Kubernetes' timestamp format: ``2024-03-05T07:33:04Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ArgoError(Exception):
    """A gRPC status, answered in grpc-gateway's JSON error shape."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def response(self) -> JSONResponse:
        body = {"error": self.message, "code": self.code, "message": self.message}
        return JSONResponse(body, status_code=HTTP_OF_CODE.get(self.code, 500))


def error_body(status: int) -> dict[str, Any]:
    """grpc-gateway's error shape, for the fault switches."""
    message = {503: "service unavailable", 401: "no session information"}.get(status, f"http status {status}")
    return {"error": message, "code": CODE_OF_HTTP.get(status, 2), "message": message}


def permission_denied() -> ArgoError:
    return ArgoError(PERMISSION_DENIED, "permission denied")


def app_not_found(name: str) -> ArgoError:
    return ArgoError(NOT_FOUND, f'applications.argoproj.io "{name}" not found')


def project_not_found(name: str) -> ArgoError:
    return ArgoError(NOT_FOUND, f'appprojects.argoproj.io "{name}" not found')


# --------------------------------------------------------------------------- globs


def glob_regex(pattern: str, separator: str | None) -> re.Pattern[str]:
    """Argo CD's glob (gobwas/glob): ``*`` stops at the separator, ``**`` does not; ``{a,b}``."""
    out, i = [], 0
    star = f"[^{re.escape(separator)}]*" if separator else ".*"
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append(star)
        elif char == "?":
            out.append(f"[^{re.escape(separator)}]" if separator else ".")
        elif char == "{":
            end = pattern.find("}", i)
            if end > i:
                options = pattern[i + 1 : end].split(",")
                out.append("(?:" + "|".join(re.escape(o) for o in options) + ")")
                i = end + 1
                continue
            out.append(re.escape(char))
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("^" + "".join(out) + "$")


def glob_match(pattern: str, text: str, separator: str | None = None) -> bool:
    return bool(glob_regex(pattern, separator).match(text))


def normalize_git_url(url: str) -> str:
    url = url.strip().lower().rstrip("/")
    return url[:-4] if url.endswith(".git") else url


def repo_permitted(patterns: list[str], repo_url: str) -> bool:
    """AppProject.IsSourcePermitted: normalized URLs, ``*`` allows all, ``!pattern`` denies."""
    wanted = normalize_git_url(repo_url)
    allowed = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        raw = normalize_git_url(pattern[1:] if negated else pattern)
        matched = raw == "*" or glob_match(raw, wanted, "/")
        if negated and matched:
            return False
        # As in Argo CD, a deny pattern that does not match counts as a match.
        allowed = allowed or negated or matched
    return allowed


def destination_permitted(destinations: list[dict[str, Any]], server: str, cluster: str, namespace: str) -> bool:
    for dest in destinations:
        server_ok = glob_match(dest["server"], server) if dest.get("server") else False
        name_ok = glob_match(dest["name"], cluster) if dest.get("name") else False
        if (server_ok or name_ok) and glob_match(dest.get("namespace") or "", namespace):
            return True
    return False


# --------------------------------------------------------------------------- sync windows


def cron_field(spec: str, value: int, low: int, high: int) -> bool:
    """One field of a 5-field cron schedule (robfig/cron, as Argo CD parses it)."""
    for part in spec.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            first, last = low, high
        elif "-" in base:
            first, last = (int(v) for v in base.split("-", 1))
        else:
            first = last = int(base)
            if step_text:
                last = high
        if first <= value <= last and (value - first) % step == 0:
            return True
    return False


def cron_matches(schedule: str, moment: datetime) -> bool:
    minute, hour, dom, month, dow = schedule.split()
    days = cron_field(dom, moment.day, 1, 31), cron_field(dow, (moment.weekday() + 1) % 7, 0, 6)
    # As in cron: when both day fields are restricted, either one matching is enough.
    day_ok = (days[0] or days[1]) if dom != "*" and dow != "*" else (days[0] and days[1])
    return (
        cron_field(minute, moment.minute, 0, 59)
        and cron_field(hour, moment.hour, 0, 23)
        and cron_field(month, moment.month, 1, 12)
        and day_ok
    )


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration for what sync windows use: ``1h``, ``30m``, ``1h30m``, ``90s``."""
    found = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text.strip())
    if not text.strip() or found is None:
        raise ArgoError(INVALID_ARGUMENT, f"cannot parse duration '{text}'")
    hours, minutes, seconds = (int(g or 0) for g in found.groups())
    return hours * 3600.0 + minutes * 60.0 + seconds


def window_active(window: dict[str, Any], at: datetime) -> bool:
    """SyncWindow.active (pkg/apis/application/v1alpha1/types.go): the schedule fired within the
    last ``duration`` (UTC; the minutes of that span are tried one by one)."""
    span = parse_duration(str(window.get("duration") or ""))
    start = at.replace(second=0, microsecond=0)
    minutes = int(span // 60)
    return any(cron_matches(str(window.get("schedule") or ""), start - timedelta(minutes=m)) for m in range(minutes))


def window_matches(window: dict[str, Any], app: dict[str, Any]) -> bool:
    """SyncWindows.Matches with the default OR operator: applications, clusters or namespaces."""
    dest = app["spec"].get("destination") or {}
    return (
        any(glob_match(g, app["metadata"]["name"]) for g in window.get("applications") or [])
        or any(
            (dest.get("name") and glob_match(g, dest["name"])) or (dest.get("server") and glob_match(g, dest["server"]))
            for g in window.get("clusters") or []
        )
        or any(glob_match(g, str(dest.get("namespace") or "")) for g in window.get("namespaces") or [])
    )


def sync_allowed_by_windows(state: State, app: dict[str, Any], *, manual: bool, at: datetime) -> bool:
    """SyncWindows.CanSync: an active deny window blocks (a manual sync passes only if every active
    deny window has ``manualSync``); allow windows, when some match, must be active (or all of them
    allow manual syncs)."""
    project = state.projects.get(project_name(app["spec"])) or {}
    windows = [w for w in (project.get("spec") or {}).get("syncWindows") or [] if window_matches(w, app)]
    if not windows:
        return True
    active = [w for w in windows if window_active(w, at)]
    denies = [w for w in active if w.get("kind") == "deny"]
    if denies:
        return manual and all(w.get("manualSync") for w in denies)
    if any(w.get("kind") == "allow" for w in active):
        return True
    inactive_allows = [w for w in windows if w.get("kind") == "allow" and w not in active]
    if inactive_allows:
        return manual and all(w.get("manualSync") for w in inactive_allows)
    return True


# --------------------------------------------------------------------------- state


@dataclass
class Timings:
    """Durations in seconds; tests set them to milliseconds."""

    # How long a sync operation stays Running before it succeeds or fails.
    sync_seconds: float = 1.0
    # How long the application stays Progressing after a successful sync.
    health_seconds: float = 2.0
    # Timeout of the notification webhook deliveries.
    notification_timeout: float = 5.0
    # A cascade delete marks the application (finalizer, deletionTimestamp); the controller removes
    # it once its resources are gone, this long later.
    cascade_delete_seconds: float = 1.0
    # How long ``GET …?refresh=`` blocks: until the controller has reconciled the application.
    refresh_seconds: float = 0.5


@dataclass
class App:
    """An Application object plus the emulator's bookkeeping for its running operation."""

    data: dict[str, Any]
    terminate: threading.Event = field(default_factory=threading.Event)
    # Bumped at each operation so that a late step of an older operation changes nothing.
    operation_id: int = 0
    # The revision automated sync last tried, which Argo CD does not retry after a failure.
    auto_synced: str | None = None


class State:
    """All Argo CD data of the emulator, plus its fault switches, timings and scenarios."""

    def __init__(
        self,
        admin_password: str,
        *,
        admin_username: str = "admin",
        namespace: str = "argocd",
        version: str = "v2.14.2+ad27246",
    ) -> None:
        self.lock = threading.RLock()
        self.faults = Faults()
        self.timings = Timings()
        # application name -> "healthy" | "degraded" | "sync_failed" (how its next sync ends).
        self.scenarios: dict[str, str] = {}
        # (url, headers) that receive Argo CD Notifications-style JSON (see ``notify``).
        self.notification_webhooks: list[tuple[str, dict[str, str]]] = []
        self.notifications: list[dict[str, Any]] = []  # every notification sent, for tests
        self.deletions: list[tuple[str, bool]] = []  # (application, cascade), for tests
        # ``application.sync.requireOverridePrivilegeForRevisionSync`` (argocd-cm): syncing to a
        # revision other than the target needs the ``override`` action, granted to these accounts.
        self.require_override_for_revision_sync = False
        self.override_granted: set[str] = set()
        self.namespace = namespace
        self.version = version
        self.accounts: dict[str, str] = {admin_username: admin_password}
        self.clusters: dict[str, str] = {"in-cluster": IN_CLUSTER}
        self.projects: dict[str, dict[str, Any]] = {}
        self.apps: dict[str, App] = {}
        self.target_revisions: dict[str, str] = {}
        # What ``git ls-remote <repoURL> <ref>`` answers; a sandbox wires it to its GitLab emulator.
        self.git_resolver: Callable[[str, str], str | None] | None = None
        # What the app would render at a revision (a digest): Argo CD compares manifests, not commits,
        # so a commit that changes only another environment's values leaves this one Synced.
        self.manifest_digest: Callable[[dict[str, Any], str], str | None] | None = None
        self._secret = secrets.token_bytes(32)
        self._revoked: set[str] = set()
        self._resource_version = 1000
        self.add_project(
            "default",
            source_repos=["*"],
            destinations=[{"server": "*", "namespace": "*"}],
            extra={"clusterResourceWhitelist": [{"group": "*", "kind": "*"}]},
        )

    # ----------------------------------------------------------------- seeding helpers

    def issue_token(self, username: str = "admin", ttl_seconds: int = 86400) -> str:
        """A session token as ``POST /api/v1/session`` returns it (a signed JWT)."""
        now = int(time.time())
        claims = {
            "iss": "argocd",
            "sub": username,
            "exp": now + ttl_seconds,
            "nbf": now,
            "iat": now,
            "jti": str(uuid.uuid4()),
        }
        header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = b64url(json.dumps(claims).encode())
        signature = hmac.new(self._secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{b64url(signature)}"

    def add_cluster(self, name: str, server: str) -> None:
        with self.lock:
            self.clusters[name] = server

    def add_project(
        self,
        name: str,
        *,
        source_repos: list[str] | None = None,
        destinations: list[dict[str, Any]] | None = None,
        description: str = "",
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "sourceRepos": list(source_repos or []),
            "destinations": list(destinations or []),
        }
        if description:
            spec["description"] = description
        spec.update(extra or {})
        with self.lock:
            project = {"metadata": self.new_metadata(name, {}), "spec": spec, "status": {}}
            self.projects[name] = project
            return copy.deepcopy(project)

    def add_application(self, application: dict[str, Any]) -> dict[str, Any]:
        """Create an application as ``POST /api/v1/applications`` would (validated)."""
        with self.lock:
            return create_application(self, copy.deepcopy(application), upsert=False)

    def set_target_revision(self, app: str, revision: str) -> None:
        """The commit the application's ``targetRevision`` now resolves to (a push happened).

        It is seen at the next refresh (``GET …?refresh=normal``) or sync.
        """
        with self.lock:
            self.target_revisions[app] = revision

    # ----------------------------------------------------------------- read helpers

    def app(self, name: str) -> dict[str, Any] | None:
        with self.lock:
            found = self.apps.get(name)
            return copy.deepcopy(found.data) if found else None

    def project(self, name: str) -> dict[str, Any] | None:
        with self.lock:
            found = self.projects.get(name)
            return copy.deepcopy(found) if found else None

    def wait_until(
        self, name: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> dict[str, Any]:
        """Poll application ``name`` until ``predicate(app)`` holds; its JSON, or TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            app = self.app(name)
            if app is not None and predicate(app):
                return app
            if time.monotonic() > deadline:
                raise TimeoutError(f"application {name} did not reach the expected state")
            time.sleep(0.005)

    def wait_idle(self, name: str, timeout: float = 5.0) -> dict[str, Any]:
        """Wait until no operation runs and the health is no longer Progressing."""
        return self.wait_until(
            name,
            lambda a: "operation" not in a and a["status"]["health"]["status"] != "Progressing",
            timeout,
        )

    # ----------------------------------------------------------------- internals

    @property
    def resource_version(self) -> str:
        with self.lock:
            return str(self._resource_version)

    def next_resource_version(self) -> str:
        with self.lock:
            self._resource_version += 1
            return str(self._resource_version)

    def new_metadata(self, name: str, given: dict[str, Any]) -> dict[str, Any]:
        metadata = {k: v for k, v in given.items() if k in ("labels", "annotations", "finalizers") and v}
        metadata.update(
            {
                "name": name,
                "namespace": self.namespace,
                "uid": str(uuid.uuid4()),
                "resourceVersion": self.next_resource_version(),
                "generation": 1,
                "creationTimestamp": now_iso(),
            }
        )
        return metadata

    def verify_token(self, token: str) -> str:
        """The username of a valid token, else an Unauthenticated error like argocd-server's."""
        parts = token.split(".")
        if len(parts) != 3:
            raise ArgoError(UNAUTHENTICATED, "invalid session: token contains an invalid number of segments")
        expected = hmac.new(self._secret, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(b64url(expected), parts[2]):
            raise ArgoError(UNAUTHENTICATED, "invalid session: token signature is invalid: signature is invalid")
        try:
            claims = json.loads(b64decode(parts[1]))
        except ValueError as exc:
            raise ArgoError(UNAUTHENTICATED, "invalid session: token is malformed") from exc
        if claims.get("exp", 0) < time.time():
            raise ArgoError(UNAUTHENTICATED, "invalid session: token has invalid claims: token is expired")
        with self.lock:
            if claims.get("jti") in self._revoked:
                raise ArgoError(UNAUTHENTICATED, "invalid session: token is revoked, please re-login")
        return str(claims["sub"])

    def revoke(self, token: str) -> None:
        claims = json.loads(b64decode(token.split(".")[1]))
        with self.lock:
            self._revoked.add(str(claims.get("jti")))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --------------------------------------------------------------------------- applications


def fake_commit(repo_url: str, target: str) -> str:
    """A stable 40-hex "commit" for a repo and ref the test did not pin."""
    return hashlib.sha1(f"{repo_url}@{target}".encode(), usedforsecurity=False).hexdigest()


def resolve_revision(state: State, name: str, source: dict[str, Any], requested: str = "") -> str:
    """What ``git ls-remote`` would answer for the requested ref or the app's targetRevision."""
    ref = requested or source.get("targetRevision") or "HEAD"
    if SHA_RE.match(ref):
        return ref
    if not requested and name in state.target_revisions:
        return state.target_revisions[name]
    if state.git_resolver is not None:
        found = state.git_resolver(source.get("repoURL", ""), ref)
        if found:
            return found
    return fake_commit(source.get("repoURL", ""), ref)


def source_type(source: dict[str, Any]) -> str:
    if "plugin" in source:
        return "Plugin"
    if "chart" in source or "helm" in source:
        return "Helm"
    if "kustomize" in source:
        return "Kustomize"
    if "directory" in source:
        return "Directory"
    return "Directory"


def desired_resources(app: dict[str, Any]) -> list[dict[str, Any]]:
    """What the manifests "contain": a Service and a Deployment named after the application."""
    name = app["metadata"]["name"]
    namespace = app["spec"].get("destination", {}).get("namespace", "")
    return [
        {"version": "v1", "kind": "Service", "namespace": namespace, "name": name},
        {"group": "apps", "version": "v1", "kind": "Deployment", "namespace": namespace, "name": name},
    ]


def initial_status(state: State, app: dict[str, Any]) -> dict[str, Any]:
    """A new application: compared with git, nothing deployed yet."""
    spec = app["spec"]
    source = spec.get("source", {})
    resources = [{**r, "status": "OutOfSync", "health": {"status": "Missing"}} for r in desired_resources(app)]
    return {
        "controllerNamespace": state.namespace,
        "health": {"status": "Missing"},
        "reconciledAt": now_iso(),
        "resources": resources,
        "sourceType": source_type(source),
        "summary": {},
        "sync": {
            "comparedTo": {"destination": spec.get("destination", {}), "source": source},
            "revision": resolve_revision(state, app["metadata"]["name"], source),
            "status": "OutOfSync",
        },
    }


def validate_application(state: State, app: dict[str, Any]) -> None:
    """argocd-server's validateAndNormalizeApp: project, destination, then project permissions."""
    name = app["metadata"]["name"]
    spec = app["spec"]
    prefix = "error while validating and normalizing app: "
    project = state.projects.get(spec.get("project") or "default")
    if project is None:
        raise ArgoError(
            INVALID_ARGUMENT,
            f"{prefix}application references project {spec.get('project')} which does not exist",
        )
    dest = spec.setdefault("destination", {})
    server = dest.get("server", "")
    cluster = dest.get("name", "")
    if cluster and not server:
        if cluster not in state.clusters:
            raise ArgoError(
                INVALID_ARGUMENT,
                f"{prefix}application destination spec for {name} is invalid: unable to find destination "
                f"server: there are no clusters with this name: {cluster}",
            )
        server = state.clusters[cluster]
    elif server and not cluster:
        cluster = next((n for n, s in state.clusters.items() if s == server), "")
    conditions = []
    repo_url = spec.get("source", {}).get("repoURL", "")
    if not repo_permitted(project["spec"].get("sourceRepos", []), repo_url):
        conditions.append(f"application repo {repo_url} is not permitted in project '{project_name(spec)}'")
    namespace = dest.get("namespace", "")
    if not destination_permitted(project["spec"].get("destinations", []), server, cluster, namespace):
        conditions.append(
            f"application destination server '{server}' and namespace '{namespace}' do not match any of "
            f"the allowed destinations in project '{project_name(spec)}'"
        )
    elif server not in state.clusters.values():
        conditions.append(f"there are no clusters with this URL: {server}")
    if conditions:
        detail = ";".join(f"InvalidSpecError: {c}" for c in conditions)
        raise ArgoError(
            INVALID_ARGUMENT,
            f"{prefix}rpc error: code = InvalidArgument desc = application spec for {name} is invalid: " + detail,
        )


def project_name(spec: dict[str, Any]) -> str:
    return str(spec.get("project") or "default")


def same_application(existing: dict[str, Any], new: dict[str, Any]) -> bool:
    """Create is idempotent when spec, labels, annotations and finalizers are equal."""
    keys = ("labels", "annotations", "finalizers")
    return existing["spec"] == new["spec"] and all(
        (existing["metadata"].get(k) or None) == (new["metadata"].get(k) or None) for k in keys
    )


def create_application(state: State, body: dict[str, Any], *, upsert: bool) -> dict[str, Any]:
    metadata = body.get("metadata") or {}
    name = metadata.get("name")
    if not name:
        raise ArgoError(
            INVALID_ARGUMENT,
            'Application.argoproj.io "" is invalid: metadata.name: Required value: name or generateName is required',
        )
    spec = dict(body.get("spec") or {})
    spec.setdefault("project", "default")
    candidate = {"metadata": dict(metadata), "spec": spec}
    validate_application(state, candidate)
    existing = state.apps.get(name)
    if existing is not None:
        if same_application(existing.data, candidate):
            return copy.deepcopy(existing.data)
        if not upsert:
            raise ArgoError(INVALID_ARGUMENT, "existing application spec is different, use upsert flag to force update")
        return update_application(state, existing, candidate, merge=True)
    app = {"metadata": state.new_metadata(name, metadata), "spec": spec}
    app["status"] = initial_status(state, app)
    state.apps[name] = App(app)
    after_change(state, name)
    return copy.deepcopy(app)


def update_application(state: State, app: App, new: dict[str, Any], *, merge: bool) -> dict[str, Any]:
    """server/application/application.go updateApp: labels and annotations merged (create with
    upsert) or replaced (PUT); finalizers always replaced."""
    data = app.data
    data["spec"] = new["spec"]
    for key in ("labels", "annotations", "finalizers"):
        given = new["metadata"].get(key)
        if merge and key != "finalizers":
            data["metadata"][key] = {**(data["metadata"].get(key) or {}), **(given or {})}
        else:
            data["metadata"][key] = given
        if not data["metadata"][key]:
            data["metadata"].pop(key)
    data["metadata"]["resourceVersion"] = state.next_resource_version()
    data["metadata"]["generation"] = data["metadata"].get("generation", 1) + 1
    reconcile(state, app.data)
    after_change(state, data["metadata"]["name"])
    return copy.deepcopy(data)


def deployed_revision(app: dict[str, Any]) -> str | None:
    history = app["status"].get("history") or []
    return history[-1]["revision"] if history else None


def reconcile(state: State, data: dict[str, Any]) -> None:
    """A refresh: re-read git (the test-set revision) and compare it with what is deployed."""
    name = data["metadata"]["name"]
    source = data["spec"].get("source", {})
    sync = data["status"]["sync"]
    sync["revision"] = resolve_revision(state, name, source)
    sync["comparedTo"] = {"destination": data["spec"].get("destination", {}), "source": source}
    deployed = deployed_revision(data)
    same = deployed == sync["revision"]
    if not same and deployed and state.manifest_digest is not None:
        rendered = state.manifest_digest(data["spec"], deployed)
        same = rendered is not None and rendered == state.manifest_digest(data["spec"], sync["revision"])
    sync["status"] = "Synced" if same else "OutOfSync"
    for resource in data["status"].get("resources", []):
        resource["status"] = sync["status"]
    data["status"]["reconciledAt"] = now_iso()
    data["status"]["sourceType"] = source_type(source)
    annotations = data["metadata"].get("annotations") or {}
    annotations.pop("argocd.argoproj.io/refresh", None)


def after_change(state: State, name: str) -> None:
    """After create, update and refresh: automated sync starts when git moved ahead.

    Like Argo CD, automated sync does not retry a revision whose sync it already attempted.
    """
    app = state.apps[name]
    data = app.data
    automated = (data["spec"].get("syncPolicy") or {}).get("automated")
    revision = data["status"]["sync"]["revision"]
    if automated is None or "operation" in data or data["status"]["sync"]["status"] != "OutOfSync":
        return
    if app.auto_synced == revision:
        return
    app.auto_synced = revision
    sync = {"revision": revision, "prune": bool(automated.get("prune"))}
    start_operation(state, app, sync, {"username": "automated", "automated": True})


# --------------------------------------------------------------------------- operations


@dataclass
class Outcome:
    """What a finished sync step produced, computed under the lock and acted on outside it."""

    events: list[str] = field(default_factory=list)
    watch_health: bool = False


def start_operation(state: State, app: App, sync: dict[str, Any], initiated_by: dict[str, Any]) -> None:
    """Set ``operation`` and a Running ``operationState``, then let a worker thread play it."""
    data = app.data
    sync.setdefault("syncStrategy", {"hook": {}})
    options = (data["spec"].get("syncPolicy") or {}).get("syncOptions")
    if options:
        sync.setdefault("syncOptions", list(options))
    operation = {"sync": sync, "initiatedBy": initiated_by, "retry": {}}
    data["operation"] = operation
    data["status"]["operationState"] = {
        "operation": copy.deepcopy(operation),
        "phase": "Running",
        "message": "",
        "startedAt": now_iso(),
    }
    data["metadata"]["resourceVersion"] = state.next_resource_version()
    app.operation_id += 1
    app.terminate = threading.Event()
    worker = threading.Thread(target=play_operation, args=(state, app, app.operation_id), daemon=True)
    worker.start()


def play_operation(state: State, app: App, operation_id: int) -> None:
    """Running for ``sync_seconds``, then Succeeded or Failed; then Progressing to Healthy/Degraded."""
    terminated = app.terminate.wait(state.timings.sync_seconds)
    with state.lock:
        if not current(state, app, operation_id):
            return
        outcome = finish_operation(state, app, terminated)
    notify(state, app, outcome.events)
    if not outcome.watch_health:
        return
    time.sleep(state.timings.health_seconds)
    with state.lock:
        if not current(state, app, operation_id):
            return
        events = settle_health(state, app)
    notify(state, app, events)


def current(state: State, app: App, operation_id: int) -> bool:
    name = app.data["metadata"]["name"]
    return state.apps.get(name) is app and app.operation_id == operation_id


def finish_operation(state: State, app: App, terminated: bool) -> Outcome:
    data = app.data
    name = data["metadata"]["name"]
    op_state = data["status"]["operationState"]
    sync = data["operation"]["sync"]
    source = sync.get("source") or data["spec"].get("source", {})
    revision = sync["revision"]
    scenario = state.scenarios.get(name, "healthy")
    op_state["finishedAt"] = now_iso()
    del data["operation"]
    data["metadata"]["resourceVersion"] = state.next_resource_version()
    if terminated:
        op_state.update(phase="Failed", message="Operation terminated")
        return Outcome(events=["on-sync-failed"])
    if scenario == "sync_failed" and not sync.get("dryRun"):
        op_state.update(phase="Failed", message=failure_message(data))
        op_state["syncResult"] = sync_result(data, revision, source, failed=True)
        return Outcome(events=["on-sync-failed"])
    op_state.update(phase="Succeeded", message="successfully synced (all tasks run)")
    op_state["syncResult"] = sync_result(data, revision, source, failed=False)
    if sync.get("dryRun"):
        return Outcome()
    deploy(state, data, revision, source, op_state)
    return Outcome(events=["on-sync-succeeded"], watch_health=True)


def failure_message(data: dict[str, Any]) -> str:
    name = data["metadata"]["name"]
    return (
        f'one or more objects failed to apply, reason: Deployment.apps "{name}" is invalid: '
        "spec.template.spec.containers[0].image: Required value"
    )


def sync_result(data: dict[str, Any], revision: str, source: dict[str, Any], *, failed: bool) -> dict[str, Any]:
    resources = []
    for resource in desired_resources(data):
        kind = resource["kind"].lower() + ("." + resource["group"] if resource.get("group") else "")
        broken = failed and resource["kind"] == "Deployment"
        resources.append(
            {
                "group": resource.get("group", ""),
                "version": resource["version"],
                "kind": resource["kind"],
                "namespace": resource["namespace"],
                "name": resource["name"],
                "status": "SyncFailed" if broken else "Synced",
                "message": failure_message(data) if broken else f"{kind}/{resource['name']} configured",
                "hookPhase": "Failed" if broken else "Running",
                "syncPhase": "Sync",
            }
        )
    return {"resources": resources, "revision": revision, "source": copy.deepcopy(source)}


def deploy(state: State, data: dict[str, Any], revision: str, source: dict[str, Any], op_state: dict[str, Any]) -> None:
    """A successful sync: history entry, Synced resources, health Progressing."""
    status = data["status"]
    history = status.setdefault("history", [])
    history.append(
        {
            "deployStartedAt": op_state["startedAt"],
            "deployedAt": op_state["finishedAt"],
            "id": history[-1]["id"] + 1 if history else 0,
            "initiatedBy": copy.deepcopy(op_state["operation"]["initiatedBy"]),
            "revision": revision,
            "source": copy.deepcopy(source),
        }
    )
    del history[:-10]  # revisionHistoryLimit defaults to 10
    reconcile(state, data)
    status["health"] = {"status": "Progressing"}
    for resource in status["resources"]:
        progressing = resource["kind"] == "Deployment"
        resource["health"] = {"status": "Progressing" if progressing else "Healthy"}
    image = f"registry.cpn.example/{data['metadata']['name']}:{revision[:8]}"
    status["summary"] = {"images": [image]}


def settle_health(state: State, app: App) -> list[str]:
    data = app.data
    degraded = state.scenarios.get(data["metadata"]["name"], "healthy") == "degraded"
    health = "Degraded" if degraded else "Healthy"
    data["status"]["health"] = {"status": health}
    for resource in data["status"]["resources"]:
        if resource["kind"] == "Deployment":
            resource["health"] = {"status": health}
            if degraded:
                resource["health"]["message"] = f'Deployment "{resource["name"]}" exceeded its progress deadline'
    data["metadata"]["resourceVersion"] = state.next_resource_version()
    return ["on-health-degraded"] if degraded else ["on-deployed"]


def notify(state: State, app: App, events: list[str]) -> None:
    """POST one Argo CD Notifications-style JSON per event to every configured webhook.

    The template (ours; Argo CD Notifications lets each platform define its own)::

        {"app": <name>, "event": "on-sync-succeeded" | "on-sync-failed" | "on-health-degraded"
         | "on-deployed", "revision": <commit>, "syncStatus": "Synced" | "OutOfSync",
         "healthStatus": "Healthy" | "Progressing" | "Degraded" | "Missing", "at": <RFC 3339>}

    Each webhook's headers (e.g. a shared-secret header) are sent as configured.
    """
    if not events:
        return
    with state.lock:
        data = app.data
        op_state = data["status"].get("operationState") or {}
        revision = (op_state.get("syncResult") or {}).get("revision") or op_state["operation"]["sync"]["revision"]
        payloads = [
            {
                "app": data["metadata"]["name"],
                "event": event,
                "revision": revision,
                "syncStatus": data["status"]["sync"]["status"],
                "healthStatus": data["status"]["health"]["status"],
                "at": now_iso(),
            }
            for event in events
        ]
        targets = list(state.notification_webhooks)
    for payload in payloads:
        for url, headers in targets:
            record: dict[str, Any] = {"url": url, "payload": payload}
            try:
                with httpx.Client(
                    timeout=state.timings.notification_timeout, trust_env=False, verify=ssl_context()
                ) as client:
                    record["status"] = client.post(url, json=payload, headers=headers).status_code
            except httpx.HTTPError as exc:
                record["status"] = None
                record["error"] = type(exc).__name__
            with state.lock:
                state.notifications.append(record)


def label_selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """Kubernetes equality-based selectors: ``a=b``, ``a==b``, ``a!=b``, ``a``, ``!a``."""
    for term in (t.strip() for t in selector.split(",") if t.strip()):
        if "!=" in term:
            key, value = (s.strip() for s in term.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = (s.strip() for s in term.replace("==", "=").split("=", 1))
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


# --------------------------------------------------------------------------- HTTP layer


@dataclass
class Call:
    state: State
    request: Request
    body: dict[str, Any]
    username: str | None

    def query(self, name: str) -> str:
        return self.request.query_params.get(name, "")

    def query_list(self, name: str) -> list[str]:
        return [v for v in self.request.query_params.getlist(name) if v]

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.query(name).lower()
        return default if value == "" else value in ("true", "1")

    def path(self, name: str) -> str:
        return str(self.request.path_params[name])


Handler = Callable[[Call], "dict[str, Any] | Response"]


def session_token(request: Request) -> str | None:
    return bearer_token(request) or request.cookies.get("argocd.token")


async def read_json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ArgoError(INVALID_ARGUMENT, f"invalid character in request body: {exc}") from exc
    if not isinstance(body, dict):
        raise ArgoError(INVALID_ARGUMENT, "json: cannot unmarshal into Go value of type object")
    return body


Before = Callable[[State, Request], Awaitable[None]]


def api(
    state: State, handler: Handler, *, auth: bool = True, before: Before | None = None
) -> Callable[[Request], Awaitable[Response]]:
    """Authenticate (argocd-server's ``Authenticate`` interceptor), parse JSON, map errors;
    ``before`` runs once authenticated, outside the lock (a wait the real server makes)."""

    async def endpoint(request: Request) -> Response:
        try:
            username: str | None = None
            token = session_token(request)
            if token:
                try:
                    username = state.verify_token(token)
                except ArgoError:
                    if auth:
                        raise
            elif auth:
                raise ArgoError(UNAUTHENTICATED, "no session information")
            body = await read_json(request) if request.method in ("POST", "PUT") else {}
            if before is not None:
                await before(state, request)
            with state.lock:
                result = handler(Call(state, request, body, username))
        except ArgoError as error:
            return error.response()
        return result if isinstance(result, Response) else JSONResponse(result)

    return endpoint


# --------------------------------------------------------------------------- session and version


def create_session(call: Call) -> Response:
    username = str(call.body.get("username") or "")
    password = str(call.body.get("password") or "")
    known = call.state.accounts.get(username)
    if not username or known is None or not hmac.compare_digest(known, password):
        raise ArgoError(UNAUTHENTICATED, "Invalid username or password")
    token = call.state.issue_token(username)
    response = JSONResponse({"token": token})
    response.set_cookie("argocd.token", token, httponly=True, samesite="lax", path="/")
    return response


def delete_session(call: Call) -> dict[str, Any]:
    token = session_token(call.request)
    if token:
        call.state.revoke(token)
    return {}


def user_info(call: Call) -> dict[str, Any]:
    if call.username is None:
        return {"loggedIn": False}
    return {"loggedIn": True, "username": call.username, "iss": "argocd"}


def version(call: Call) -> dict[str, Any]:
    if call.username is None:  # anonymous callers only learn the version string
        return {"Version": call.state.version}
    return {
        "Version": call.state.version,
        "BuildDate": "2025-02-20T10:08:09Z",
        "GitCommit": "ad2724661b66ede607db9b5bd4c3c26491f5be67",
        "GitTreeState": "clean",
        "GoVersion": "go1.23.3",
        "Compiler": "gc",
        "Platform": "linux/amd64",
        "KustomizeVersion": "v5.4.3 2024-07-19T16:40:33Z",
        "HelmVersion": "v3.16.3+gcfd0749",
        "KubectlVersion": "v0.31.0",
        "JsonnetVersion": "v0.20.0",
    }


# --------------------------------------------------------------------------- projects


def spec_difference(existing: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = sorted(set(existing) | set(new))
    return [k[:1].upper() + k[1:] for k in keys if (existing.get(k) or None) != (new.get(k) or None)]


def project_payload(call: Call) -> dict[str, Any]:
    project = call.body.get("project")
    if not isinstance(project, dict):
        raise ArgoError(INVALID_ARGUMENT, "missing payload 'project' in request")
    name = (project.get("metadata") or {}).get("name")
    if not name:
        raise ArgoError(
            INVALID_ARGUMENT,
            'AppProject.argoproj.io "" is invalid: metadata.name: Required value: name or generateName is required',
        )
    for dest in (project.get("spec") or {}).get("destinations") or []:
        if not dest.get("server") and not dest.get("name"):
            raise ArgoError(INVALID_ARGUMENT, "destination server or name must be set")
    return project


def create_project(call: Call) -> dict[str, Any]:
    project = project_payload(call)
    name = project["metadata"]["name"]
    spec = dict(project.get("spec") or {})
    existing = call.state.projects.get(name)
    if existing is None:
        created = {"metadata": call.state.new_metadata(name, project["metadata"]), "spec": spec, "status": {}}
        call.state.projects[name] = created
        return copy.deepcopy(created)
    difference = spec_difference(existing["spec"], spec)
    if not difference:
        return copy.deepcopy(existing)
    if not call.body.get("upsert"):
        raise ArgoError(
            INVALID_ARGUMENT,
            "existing project spec is different; use upsert flag to force update; "
            f'difference in keys "{",".join(difference)}"',
        )
    existing["spec"] = spec
    existing["metadata"]["resourceVersion"] = call.state.next_resource_version()
    existing["metadata"]["generation"] = existing["metadata"].get("generation", 1) + 1
    return copy.deepcopy(existing)


def list_projects(call: Call) -> dict[str, Any]:
    items = [copy.deepcopy(p) for _, p in sorted(call.state.projects.items())]
    return {"metadata": {"resourceVersion": call.state.resource_version}, "items": items}


def get_project(call: Call) -> dict[str, Any]:
    name = call.path("name")
    project = call.state.projects.get(name)
    if project is None:
        raise project_not_found(name)
    return copy.deepcopy(project)


def update_project(call: Call) -> dict[str, Any]:
    project = project_payload(call)
    name = call.path("name")
    existing = call.state.projects.get(name)
    if existing is None:
        raise project_not_found(name)
    # AppProject is a custom resource: Kubernetes refuses an update without the current version.
    given = str(project["metadata"].get("resourceVersion") or "")
    if not given:
        raise ArgoError(
            INVALID_ARGUMENT,
            f'appprojects.argoproj.io "{name}" is invalid: metadata.resourceVersion: Invalid value: 0x0: '
            "must be specified for an update",
        )
    if given != existing["metadata"]["resourceVersion"]:
        raise ArgoError(
            ABORTED,
            f'Operation cannot be fulfilled on appprojects.argoproj.io "{name}": the object has been '
            "modified; please apply your changes to the latest version and try again",
        )
    # server/project/project.go Update hands the whole object to the Kubernetes Update: what the
    # request leaves out (labels, annotations, finalizers) is removed, not kept.
    existing["spec"] = dict(project.get("spec") or {})
    for key in ("labels", "annotations", "finalizers"):
        if project["metadata"].get(key):
            existing["metadata"][key] = project["metadata"][key]
        else:
            existing["metadata"].pop(key, None)
    existing["metadata"]["resourceVersion"] = call.state.next_resource_version()
    existing["metadata"]["generation"] = existing["metadata"].get("generation", 1) + 1
    return copy.deepcopy(existing)


def delete_project(call: Call) -> dict[str, Any]:
    name = call.path("name")
    if name not in call.state.projects:
        raise project_not_found(name)
    users = [a for a in call.state.apps.values() if project_name(a.data["spec"]) == name]
    if users:
        raise ArgoError(INVALID_ARGUMENT, f"project is referenced by {len(users)} applications")
    del call.state.projects[name]
    return {}


# --------------------------------------------------------------------------- applications


def find_app(call: Call, name: str) -> App:
    """argocd-server's getAppEnforceRBAC: 403 for a missing app unless ``project`` is given."""
    app = call.state.apps.get(name)
    project = call.query("project") or (call.query_list("projects") or [""])[0]
    if app is None:
        raise app_not_found(name) if project else permission_denied()
    if project and project_name(app.data["spec"]) != project:
        raise app_not_found(name)
    return app


def post_application(call: Call) -> dict[str, Any]:
    return create_application(call.state, call.body, upsert=call.flag("upsert"))


def list_applications(call: Call) -> dict[str, Any]:
    projects = set(call.query_list("projects") + call.query_list("project"))
    selector = call.query("selector")
    name = call.query("name")
    repo = call.query("repo")
    items = []
    for app_name, app in sorted(call.state.apps.items()):
        data = app.data
        if projects and project_name(data["spec"]) not in projects:
            continue
        if name and app_name != name:
            continue
        if repo and normalize_git_url(data["spec"].get("source", {}).get("repoURL", "")) != normalize_git_url(repo):
            continue
        if selector and not label_selector_matches(selector, data["metadata"].get("labels") or {}):
            continue
        items.append(copy.deepcopy(data))
    return {"metadata": {"resourceVersion": call.state.resource_version}, "items": items}


def get_application(call: Call) -> dict[str, Any]:
    app = find_app(call, call.path("name"))
    # "normal" and "hard" both re-read git here: the emulator has no manifest cache to drop.
    if call.query("refresh"):
        reconcile(call.state, app.data)
        app.data["metadata"]["resourceVersion"] = call.state.next_resource_version()
        after_change(call.state, app.data["metadata"]["name"])
    return copy.deepcopy(app.data)


async def refresh_wait(state: State, request: Request) -> None:
    """server/application/application.go Get: with ``?refresh=`` the call returns only once the
    controller has reconciled the application (the refresh annotation gone) — seconds on a real
    instance, ``timings.refresh_seconds`` here."""
    if request.query_params.get("refresh"):
        await asyncio.sleep(state.timings.refresh_seconds)


def put_application(call: Call) -> dict[str, Any]:
    name = call.path("name")
    app = find_app(call, name)
    body = call.body
    metadata = dict(body.get("metadata") or {})
    metadata["name"] = name
    spec = dict(body.get("spec") or {})
    spec.setdefault("project", "default")
    candidate = {"metadata": metadata, "spec": spec}
    if call.flag("validate", True):
        validate_application(call.state, candidate)
    return update_application(call.state, app, candidate, merge=False)


RESOURCES_FINALIZER = "resources-finalizer.argocd.argoproj.io"


def delete_application(call: Call) -> dict[str, Any]:
    """server/application/application.go Delete: a cascade delete adds the resources finalizer and
    deletes; Kubernetes then only sets ``deletionTimestamp`` and the application stays (its project
    still refuses deletion) until the controller has pruned its resources and drops the finalizer."""
    name = call.path("name")
    app = find_app(call, name)
    cascade = call.flag("cascade", True)
    if not cascade and call.query("propagationPolicy"):
        raise ArgoError(INVALID_ARGUMENT, "cannot set propagation policy when cascading is disabled")
    app.terminate.set()  # a running operation dies with its application
    metadata = app.data["metadata"]
    finalizers = [f for f in metadata.get("finalizers") or [] if f != RESOURCES_FINALIZER]
    if cascade and "deletionTimestamp" not in metadata:
        finalizers.append(RESOURCES_FINALIZER)
    if finalizers:
        metadata["finalizers"] = finalizers
    else:
        metadata.pop("finalizers", None)
    call.state.deletions.append((name, cascade))
    if not cascade or not finalizers:
        del call.state.apps[name]
        return {}
    if "deletionTimestamp" not in metadata:
        metadata["deletionTimestamp"] = now_iso()
        metadata["resourceVersion"] = call.state.next_resource_version()
        threading.Timer(call.state.timings.cascade_delete_seconds, finalize_deletion, (call.state, app)).start()
    return {}


def finalize_deletion(state: State, app: App) -> None:
    """The controller's part: resources pruned, finalizer dropped, the object gone."""
    with state.lock:
        name = app.data["metadata"]["name"]
        if state.apps.get(name) is app:
            del state.apps[name]


def sync_application(call: Call) -> dict[str, Any]:
    """server/application/application.go Sync, in its order: sync windows (PermissionDenied), the
    application being deleted, then resolveSourceRevisions (the ``override`` action when the
    setting asks for it, then FailedPrecondition under auto-sync), then a running operation."""
    name = call.path("name")
    app = find_app(call, name)
    data = app.data
    if not sync_allowed_by_windows(call.state, data, manual=True, at=datetime.now(UTC)):
        raise ArgoError(PERMISSION_DENIED, "cannot sync: blocked by sync window")
    if "deletionTimestamp" in data["metadata"]:
        raise ArgoError(FAILED_PRECONDITION, "application is deleting")
    requested = str(call.body.get("revision") or "")
    source = data["spec"].get("source", {})
    target = source.get("targetRevision") or "HEAD"
    if requested and requested != target:
        username = call.username or "admin"
        if call.state.require_override_for_revision_sync and username not in call.state.override_granted:
            raise ArgoError(
                PERMISSION_DENIED,
                f"permission denied: applications, override, {project_name(data['spec'])}/{name}, "
                f"sub: {username}, iat: {now_iso()}",
            )
    automated = (data["spec"].get("syncPolicy") or {}).get("automated")
    if automated is not None and not call.body.get("dryRun") and requested and requested != target:
        raise ArgoError(FAILED_PRECONDITION, f"Cannot sync to {requested}: auto-sync currently set to {target}")
    check_no_operation(data)
    sync: dict[str, Any] = {
        "revision": resolve_revision(call.state, name, source, requested),
        "prune": bool(call.body.get("prune")),
    }
    if call.body.get("dryRun"):
        sync["dryRun"] = True
    if call.body.get("strategy"):
        sync["syncStrategy"] = call.body["strategy"]
    start_operation(call.state, app, sync, {"username": call.username or "admin"})
    return copy.deepcopy(data)


def check_no_operation(data: dict[str, Any]) -> None:
    if "operation" in data:
        raise ArgoError(
            FAILED_PRECONDITION,
            "error setting app operation: rpc error: code = FailedPrecondition desc = another operation is "
            "already in progress",
        )


def rollback_application(call: Call) -> dict[str, Any]:
    name = call.path("name")
    app = find_app(call, name)
    data = app.data
    if (data["spec"].get("syncPolicy") or {}).get("automated") is not None:
        raise ArgoError(FAILED_PRECONDITION, "rollback cannot be initiated when auto-sync is enabled")
    wanted = call.body.get("id")
    entry = next((h for h in data["status"].get("history") or [] if h["id"] == wanted), None)
    if entry is None:
        raise ArgoError(INVALID_ARGUMENT, f"application {name} does not have deployment with id {wanted}")
    check_no_operation(data)
    sync: dict[str, Any] = {
        "revision": entry["revision"],
        "prune": bool(call.body.get("prune")),
        "syncStrategy": {"apply": {}},
        "source": copy.deepcopy(entry["source"]),
    }
    if call.body.get("dryRun"):
        sync["dryRun"] = True
    start_operation(call.state, app, sync, {"username": call.username or "admin"})
    return copy.deepcopy(data)


def terminate_operation(call: Call) -> dict[str, Any]:
    app = find_app(call, call.path("name"))
    if "operation" not in app.data:
        raise ArgoError(INVALID_ARGUMENT, "Unable to terminate operation. No operation is in progress")
    app.data["status"]["operationState"]["phase"] = "Terminating"
    app.terminate.set()
    return {}


def resource_tree(call: Call) -> dict[str, Any]:
    """Service, Deployment → ReplicaSet → Pod, once something has been deployed."""
    data = find_app(call, call.path("name")).data
    history = data["status"].get("history") or []
    if not history:
        return {}
    revision = history[-1]["revision"]
    created = history[0]["deployedAt"]
    nodes = []
    for resource in data["status"]["resources"]:
        nodes.append(tree_node(resource, created))
        if resource["kind"] == "Deployment":
            replica_set = {**resource, "kind": "ReplicaSet", "name": f"{resource['name']}-{revision[:10]}"}
            pod = {**resource, "group": "", "kind": "Pod", "name": f"{replica_set['name']}-x7k2p"}
            nodes.append(tree_node(replica_set, created, parent=resource))
            pod_node = tree_node(pod, created, parent=replica_set)
            pod_node["images"] = list(data["status"].get("summary", {}).get("images", []))
            nodes.append(pod_node)
    return {"nodes": nodes}


def tree_node(resource: dict[str, Any], created: str, parent: dict[str, Any] | None = None) -> dict[str, Any]:
    group = resource.get("group", "") if resource["kind"] not in ("Pod", "Service") else ""
    node: dict[str, Any] = {
        "group": group,
        "version": resource["version"],
        "kind": resource["kind"],
        "namespace": resource["namespace"],
        "name": resource["name"],
        "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{resource['kind']}/{resource['name']}")),
        "resourceVersion": "1",
        "createdAt": created,
    }
    if "health" in resource:
        node["health"] = dict(resource["health"])
    if parent is not None:
        node["parentRefs"] = [
            {
                "group": parent.get("group", ""),
                "kind": parent["kind"],
                "namespace": parent["namespace"],
                "name": parent["name"],
                "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{parent['kind']}/{parent['name']}")),
            }
        ]
    return node


# --------------------------------------------------------------------------- app


def create_app(state: State) -> ASGIApp:
    def route(
        path: str, handler: Handler, methods: list[str], *, auth: bool = True, before: Before | None = None
    ) -> Route:
        return Route(path, api(state, handler, auth=auth, before=before), methods=methods)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        route("/api/version", version, ["GET"], auth=False),
        route("/api/v1/session", create_session, ["POST"], auth=False),
        route("/api/v1/session", delete_session, ["DELETE"]),
        route("/api/v1/session/userinfo", user_info, ["GET"], auth=False),
        route("/api/v1/projects", create_project, ["POST"]),
        route("/api/v1/projects", list_projects, ["GET"]),
        route("/api/v1/projects/{name}", get_project, ["GET"]),
        route("/api/v1/projects/{name}", update_project, ["PUT"]),
        route("/api/v1/projects/{name}", delete_project, ["DELETE"]),
        route("/api/v1/applications", post_application, ["POST"]),
        route("/api/v1/applications", list_applications, ["GET"]),
        route("/api/v1/applications/{name}", get_application, ["GET"], before=refresh_wait),
        route("/api/v1/applications/{name}", put_application, ["PUT"]),
        route("/api/v1/applications/{name}", delete_application, ["DELETE"]),
        route("/api/v1/applications/{name}/sync", sync_application, ["POST"]),
        route("/api/v1/applications/{name}/rollback", rollback_application, ["POST"]),
        route("/api/v1/applications/{name}/operation", terminate_operation, ["DELETE"]),
        route("/api/v1/applications/{name}/resource-tree", resource_tree, ["GET"]),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return ArgoError(NOT_FOUND, "Not Found").response()

    app = Starlette(routes=routes, exception_handlers={404: not_found})
    return FaultMiddleware(app, state.faults, error_body)


__all__ = ["State", "Timings", "create_app", "error_body"]
