"""Quay emulator: the API v1 surface the bot drives (organizations, robots, default permissions,
repositories, repository permissions, tags, manifests) plus the ``/health/*`` probes.

Shapes follow quay/quay ``endpoints/api/*.py``:

- Auth is ``Authorization: Bearer <OAuth application token>``. A missing or unknown token leaves
  the request anonymous; protected endpoints then answer 401 ``invalid_token`` "Requires
  authentication", and a known user lacking rights gets 403 ``insufficient_scope`` "Unauthorized"
  (``endpoints.exception.Unauthorized``). Those errors use Quay's problem+json-like body
  (``detail``, ``error_message``, ``error_type``, ``title``, ``type``, ``status``).
- Data-model errors Quay lets bubble up (unknown robot, missing permission…) answer 400
  ``{"message": …}`` (the app-wide ``DataModelException`` handler).
- Anonymous reads follow Quay's default ``FEATURE_ANONYMOUS_ACCESS: true``: ``GET`` of an
  organization or of public repositories works without a token (``State.anonymous_access``).
- Superuser tokens act as ``FEATURE_SUPERUSERS_FULL_ACCESS`` superusers: they may manage every
  organization and repository.
- Robot tokens ARE returned by the robot list to organization admins (and full-access
  superusers) unless ``?token=false`` — exactly like real Quay (``OrgRobotList.get``).
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
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from services.emulators.base import FaultMiddleware, Faults, bearer_token

# util/validation.py and util/names.py of quay/quay.
_NAMESPACE_RE = re.compile(r"^([a-z0-9]+(?:[._-][a-z0-9]+)*)$")
_REPOSITORY_RE = re.compile(r"^[a-z0-9][\.a-z0-9_-]{0,254}$")
_EMAIL_RE = re.compile(r"[^@]+@[^@]+\.[^@]+")  # util/validation.py validate_email (re.match)
_ROLES = ("read", "write", "admin")
_ROLE_RANK = {"read": 1, "write": 2, "admin": 3}
_ERROR_TYPES = {
    400: "invalid_request",
    401: "invalid_token",
    403: "insufficient_scope",
    404: "not_found",
    402: "exceeds_license",
}
_DEFAULT_TAG_EXPIRATION_S = 1209600  # DEFAULT_TAG_EXPIRATION "2w"
_SCHEMA2_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
_SCHEMA2_CONFIG = "application/vnd.docker.container.image.v1+json"
_SCHEMA2_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
_INSTANCE_SERVICES = ("registry_gunicorn", "web_gunicorn", "service_key", "disk_space", "database", "auth")
_ENDTOEND_SERVICES = ("database", "redis", "storage", "auth")


class QuayError(Exception):
    """An error answer, raised from deep inside a handler."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def error_body(status: int, detail: str | None = None, base_url: str = "") -> dict[str, Any]:
    """Quay's ``ApiException.to_dict()`` shape for ``status``."""
    error_type = _ERROR_TYPES.get(status, "downstream_issue")
    message = detail or {401: "Requires authentication", 403: "Unauthorized", 404: "Not Found"}.get(
        status, "Service Unavailable" if status == 503 else "Request error."
    )
    return {
        "detail": message,
        "error_message": message,
        "error_type": error_type,
        "title": error_type,
        "type": f"{base_url}/api/v1/error/{error_type}",
        "status": status,
    }


def _rfc2822(ts: float) -> str:
    """Quay's ``format_date``: RFC 2822 in UTC, e.g. ``Thu, 01 Jan 2026 10:00:00 -0000``."""
    return formatdate(int(ts))


def _avatar(name: str, kind: str) -> dict[str, str]:
    digest = hashlib.sha256(name.encode()).hexdigest()
    return {"name": name, "hash": digest, "color": f"#{digest[:6]}", "kind": kind}


def _robot_token() -> str:
    # random_string_generator(length=64): upper-case letters and digits.
    alphabet = string.ascii_uppercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(64))


@dataclass
class Account:
    """A user an OAuth token acts as."""

    username: str
    superuser: bool


@dataclass
class Robot:
    shortname: str
    token: str
    description: str
    created: float
    unstructured_metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Prototype:
    id: str
    role: str
    delegate_name: str
    delegate_kind: str  # "user" (robots included) or "team"
    activating_user: str | None = None


@dataclass
class Organization:
    name: str
    email: str
    created: float
    owners: set[str] = field(default_factory=set)  # members of the "owners" team
    robots: dict[str, Robot] = field(default_factory=dict)
    prototypes: list[Prototype] = field(default_factory=list)


@dataclass
class Manifest:
    digest: str
    size: int
    is_manifest_list: bool
    manifest_data: str
    layers: list[dict[str, Any]]


@dataclass
class Tag:
    name: str
    manifest_digest: str
    start_ts: int
    seq: int  # push order, to sort pushes made within the same second
    end_ts: int | None = None

    def alive(self, now: float) -> bool:
        """quay/quay:data/model/oci/tag.py filter_to_alive_tags: no end, or an end still ahead."""
        return self.end_ts is None or self.end_ts > now


@dataclass
class Repository:
    namespace: str
    name: str
    description: str
    is_public: bool
    created: float
    badge_token: str = field(default_factory=lambda: secrets.token_hex(16))
    tags: list[Tag] = field(default_factory=list)  # full history, alive and dead
    manifests: dict[str, Manifest] = field(default_factory=dict)
    permissions: dict[str, str] = field(default_factory=dict)  # username -> role

    def active_tags(self, now: float | None = None) -> list[Tag]:
        moment = time.time() if now is None else now
        return [t for t in self.tags if t.alive(moment)]


class State:
    """Everything the emulated Quay knows; thread-safe (tests read it from another thread)."""

    def __init__(
        self, anonymous_access: bool = True, repos_per_page: int = 100, *, mailing: bool = True, version: str = "3.17.4"
    ) -> None:
        self.lock = threading.Lock()
        # FEATURE_MAILING (on by default, quay/quay:config.py): a new organization needs an e-mail.
        self.mailing = mailing
        # Up to 3.17 an e-mail belongs to one namespace; 3.18 lets organizations share one
        # (quay/quay PROJQUAY-6975, data/model/organization.py _create_org_user).
        self.version = version
        self.faults = Faults()
        self.anonymous_access = anonymous_access
        self.repos_per_page = repos_per_page
        self.tokens: dict[str, Account] = {}
        self.users: set[str] = set()
        self.orgs: dict[str, Organization] = {}
        self.repos: dict[tuple[str, str], Repository] = {}
        self.unhealthy: dict[str, str] = {}  # service name -> failure message
        self._seq = 0

    # --- seeding -------------------------------------------------------------------------------

    def add_token(self, token: str, superuser: bool = True, username: str | None = None) -> None:
        """An OAuth application token acting as ``username`` (``admin``/``user<n>`` by default)."""
        with self.lock:
            name = username or ("admin" if superuser else f"user{len(self.tokens) + 1}")
            self.tokens[token] = Account(name, superuser)
            self.users.add(name)

    def add_user(self, username: str) -> None:
        """A plain Quay user (e.g. one that repository permissions can name)."""
        with self.lock:
            self.users.add(username)

    def add_organization(self, name: str, email: str = "", owner: str = "admin") -> None:
        with self.lock:
            self.orgs[name] = Organization(name, email or f"{name}@quay.local", time.time(), {owner})

    def push_image(
        self,
        org: str,
        repo: str,
        tag: str,
        digest: str | None = None,
        size: int = 1_234_567,
        pusher: str | None = None,
        is_manifest_list: bool = False,
    ) -> str:
        """What a CI ``docker push`` does: create the repository if missing (private, with the
        organization's default permissions applied) and point ``tag`` at a new manifest.
        Returns the manifest digest."""
        with self.lock:
            if org not in self.orgs and org not in self.users:
                raise KeyError(f"namespace {org} does not exist")
            repository = self.repos.get((org, repo))
            if repository is None:
                repository = self._create_repo_locked(org, repo, "", False, pusher)
            self._seq += 1
            digest = digest or "sha256:" + hashlib.sha256(f"{org}/{repo}:{tag}#{self._seq}".encode()).hexdigest()
            if digest not in repository.manifests:
                repository.manifests[digest] = _build_manifest(digest, size, is_manifest_list)
            now = int(time.time())
            for old in repository.active_tags(now):
                if old.name == tag:
                    old.end_ts = now
            repository.tags.append(Tag(tag, digest, now, self._seq))
            return digest

    def expire_tag(self, org: str, repo: str, tag: str, end_ts: int) -> None:
        """What ``PUT /api/v1/repository/…/tag/<tag> {"expiration": …}`` does: the tag ends at
        ``end_ts`` (seconds), alive until then."""
        with self.lock:
            repository = self.repos[(org, repo)]
            for current in repository.active_tags():
                if current.name == tag:
                    current.end_ts = end_ts

    def set_service_health(self, service: str, healthy: bool, message: str = "") -> None:
        """Make one ``/health`` service (database, redis, storage, auth…) fail or recover."""
        with self.lock:
            if healthy:
                self.unhealthy.pop(service, None)
            else:
                self.unhealthy[service] = message or f"{service} check failed"

    # --- read helpers (for tests) --------------------------------------------------------------

    def organization(self, name: str) -> Organization | None:
        with self.lock:
            return copy.deepcopy(self.orgs.get(name))

    def repository(self, namespace: str, name: str) -> Repository | None:
        with self.lock:
            return copy.deepcopy(self.repos.get((namespace, name)))

    def robot_token(self, org: str, shortname: str) -> str | None:
        with self.lock:
            robot = self.orgs[org].robots.get(shortname) if org in self.orgs else None
            return robot.token if robot else None

    def tag_names(self, namespace: str, name: str) -> list[str]:
        with self.lock:
            repository = self.repos.get((namespace, name))
            return sorted({t.name for t in repository.active_tags()}) if repository else []

    # --- internals (lock held) -----------------------------------------------------------------

    def _create_repo_locked(
        self, namespace: str, name: str, description: str, is_public: bool, creator: str | None
    ) -> Repository:
        repository = Repository(namespace, name, description, is_public, time.time())
        self.repos[(namespace, name)] = repository
        if creator and creator != namespace:
            # data/model/repository.py: the creating user gets admin, unless it is the namespace.
            repository.permissions[creator] = "admin"
        org = self.orgs.get(namespace)
        if org is not None:
            _apply_prototypes(org, repository, creator)
        return repository

    def _user_exists_locked(self, username: str) -> bool:
        if username in self.users:
            return True
        org_name, _, short = username.partition("+")
        org = self.orgs.get(org_name)
        return bool(short) and org is not None and short in org.robots


def _apply_prototypes(org: Organization, repository: Repository, creator: str | None) -> None:
    """Default permissions: user-specific prototypes win over the org-wide ones."""
    chosen: dict[tuple[str, str], tuple[Prototype, bool]] = {}
    for proto in org.prototypes:
        if proto.activating_user is not None and proto.activating_user != creator:
            continue
        key = (proto.delegate_kind, proto.delegate_name)
        specific = proto.activating_user is not None
        if key in chosen and chosen[key][1] and not specific:
            continue
        chosen[key] = (proto, specific)
    for (kind, name), (proto, _) in chosen.items():
        if kind == "user":
            repository.permissions[name] = proto.role


def _build_manifest(digest: str, size: int, is_manifest_list: bool) -> Manifest:
    layer_digest = "sha256:" + hashlib.sha256(f"layer:{digest}".encode()).hexdigest()
    config_digest = "sha256:" + hashlib.sha256(f"config:{digest}".encode()).hexdigest()
    data = {
        "schemaVersion": 2,
        "mediaType": _SCHEMA2_MANIFEST,
        "config": {"mediaType": _SCHEMA2_CONFIG, "size": 1469, "digest": config_digest},
        "layers": [{"mediaType": _SCHEMA2_LAYER, "size": size, "digest": layer_digest}],
    }
    layers = [
        {
            "index": 0,
            "compressed_size": size,
            "is_remote": False,
            "urls": None,
            "command": None,
            "comment": None,
            "author": None,
            "blob_digest": layer_digest,
            "created_datetime": _rfc2822(time.time()),
        }
    ]
    return Manifest(digest, size, is_manifest_list, json.dumps(data, indent=3), layers)


# --- request plumbing ----------------------------------------------------------------------------

Handler = Callable[[Request], Awaitable[Response]]


class _Api:
    """Route handlers; each reads/writes ``state`` under its lock."""

    def __init__(self, state: State) -> None:
        self.state = state

    # auth & errors

    def viewer(self, request: Request) -> Account | None:
        token = bearer_token(request)
        if token is None:
            return None
        with self.state.lock:
            return self.state.tokens.get(token)

    @staticmethod
    def fail(request: Request, status: int, detail: str | None = None) -> QuayError:
        return QuayError(status, error_body(status, detail, str(request.base_url).rstrip("/")))

    def unauthorized(self, request: Request, viewer: Account | None) -> QuayError:
        # endpoints.exception.Unauthorized: 401 when anonymous, 403 for a known user.
        return self.fail(request, 401 if viewer is None else 403)

    def require_user(self, request: Request) -> Account:
        viewer = self.viewer(request)
        if viewer is None:
            raise self.fail(request, 401)
        return viewer

    def check_anonymous(self, request: Request) -> Account | None:
        """``check_anon_protection`` for endpoints that allow anonymous reads."""
        viewer = self.viewer(request)
        if viewer is None and not self.state.anonymous_access:
            raise QuayError(401, {"error": "Anonymous access is not allowed"})
        return viewer

    @staticmethod
    async def json_body(request: Request, optional: bool = False) -> dict[str, Any]:
        raw = await request.body()
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = None
        if data is None:
            if optional:
                return {}
            raise QuayError(400, error_body(400, "Missing JSON body"))
        if not isinstance(data, dict):
            raise QuayError(400, error_body(400, f"{raw.decode(errors='replace')} is not of type 'object'"))
        return data

    # permission helpers (lock held)

    def is_org_admin(self, viewer: Account | None, org: str) -> bool:
        if viewer is None:
            return False
        if viewer.superuser:
            return True
        found = self.state.orgs.get(org)
        return found is not None and viewer.username in found.owners

    def repo_role(self, viewer: Account | None, repository: Repository) -> str | None:
        if viewer is None:
            return None
        if viewer.superuser or self.is_org_admin(viewer, repository.namespace):
            return "admin"
        if viewer.username == repository.namespace:
            return "admin"
        return repository.permissions.get(viewer.username)

    def require_org_admin(self, request: Request, viewer: Account | None, org: str) -> None:
        if not self.is_org_admin(viewer, org):
            raise self.unauthorized(request, viewer)

    def org_or_404(self, request: Request, name: str) -> Organization:
        org = self.state.orgs.get(name)
        if org is None:
            raise self.fail(request, 404)
        return org

    def require_repo(self, request: Request, viewer: Account | None, min_role: str) -> Repository:
        """``require_repo_read/write/admin``: permission first, then 404 for a missing repo."""
        ns, name = request.path_params["namespace"], request.path_params["repository"]
        repository = self.state.repos.get((ns, name))
        if repository is None:
            if self.is_org_admin(viewer, ns) or (viewer is not None and viewer.username == ns):
                raise self.fail(request, 404)
            raise self.unauthorized(request, viewer)
        role = self.repo_role(viewer, repository)
        if min_role == "read" and repository.is_public:
            return repository
        if role is None or _ROLE_RANK[role] < _ROLE_RANK[min_role]:
            raise self.unauthorized(request, viewer)
        return repository

    # --- organizations --------------------------------------------------------------------------

    async def create_org(self, request: Request) -> Response:
        viewer = self.require_user(request)
        body = await self.json_body(request)
        name = body.get("name")
        if not isinstance(name, str):
            raise self.fail(request, 400, "'name' is a required property")
        email = body.get("email") or ""
        # quay/quay:endpoints/api/organization.py OrganizationList.post (name taken, then "Email
        # address is required" under FEATURE_MAILING), then data/model/user.py create_user_noverify
        # (util/validation.py validate_email, then the namespace pattern, then e-mail reuse).
        with self.state.lock:
            if name in self.state.orgs or name in self.state.users:
                raise self.fail(request, 400, "A user or organization with this name already exists")
            if self.state.mailing and not email:
                raise self.fail(request, 400, "Email address is required")
            if self.state.mailing and not _EMAIL_RE.match(str(email)):
                raise self.fail(request, 400, f"Invalid email address: {email}")
            if not _NAMESPACE_RE.match(name) or not 2 <= len(name) <= 255:
                raise self.fail(
                    request,
                    400,
                    f"Invalid namespace {name}: Namespace must match expression {_NAMESPACE_RE.pattern}",
                )
            shared_ok = _version(self.state.version) >= (3, 18)
            if email and not shared_ok and any(o.email == email for o in self.state.orgs.values()):
                raise self.fail(request, 400, f"Email has already been used: {email}")
            self.state.orgs[name] = Organization(name, email or str(uuid.uuid4()), time.time(), {viewer.username})
        return JSONResponse("Created", status_code=201)

    async def current_user(self, request: Request) -> Response:
        """``GET /api/v1/user/`` (``getLoggedInUser``): the account the token acts as; 401 anonymous."""
        viewer = self.require_user(request)
        with self.state.lock:
            organizations = [
                {"name": org.name, "is_org_admin": True, "can_create_repo": True, "public": False}
                for org in self.state.orgs.values()
                if viewer.username in org.owners
            ]
        return JSONResponse(
            {
                "anonymous": False,
                "username": viewer.username,
                "email": f"{viewer.username}@quay.local",
                "verified": True,
                "can_create_repo": True,
                "is_me": True,
                "super_user": viewer.superuser,
                "organizations": organizations,
                "logins": [],
                "prompts": [],
            }
        )

    async def get_org(self, request: Request) -> Response:
        viewer = self.check_anonymous(request)
        with self.state.lock:
            org = self.org_or_404(request, request.path_params["org"])
            return JSONResponse(self.org_view(viewer, org))

    def org_view(self, viewer: Account | None, org: Organization) -> dict[str, Any]:
        is_admin = viewer is not None and viewer.username in org.owners
        is_member = is_admin
        full_view = is_admin or (viewer is not None and viewer.superuser)
        view: dict[str, Any] = {
            "name": org.name,
            "email": org.email if full_view else "",
            "avatar": _avatar(org.name, "org"),
            "is_admin": is_admin,
            "is_member": is_member,
        }
        if full_view:
            repo_count = sum(1 for ns, _ in self.state.repos if ns == org.name)
            view["teams"] = {
                "owners": {
                    "name": "owners",
                    "description": "",
                    "role": "admin",
                    "avatar": _avatar("owners", "team"),
                    "can_view": True,
                    "repo_count": repo_count,
                    "member_count": len(org.owners),
                    "is_synced": False,
                }
            }
            view["ordered_teams"] = ["owners"]
        if is_admin:
            view.update(
                invoice_email=False,
                invoice_email_address=None,
                tag_expiration_s=_DEFAULT_TAG_EXPIRATION_S,
                is_free_account=True,
            )
        return view

    async def delete_org(self, request: Request) -> Response:
        viewer = self.require_user(request)
        name = request.path_params["org"]
        with self.state.lock:
            self.require_org_admin(request, viewer, name)
            self.org_or_404(request, name)
            del self.state.orgs[name]
            for key in [k for k in self.state.repos if k[0] == name]:
                del self.state.repos[key]
        return Response(status_code=204)

    # --- robots ---------------------------------------------------------------------------------

    @staticmethod
    def robot_view(org: str, robot: Robot, token: bool, metadata: bool) -> dict[str, Any]:
        view: dict[str, Any] = {
            "name": f"{org}+{robot.shortname}",
            "created": _rfc2822(robot.created),
            "last_accessed": None,
            "description": robot.description,
        }
        if token:
            view["token"] = robot.token
        if metadata:
            view["unstructured_metadata"] = robot.unstructured_metadata
        return view

    async def list_robots(self, request: Request) -> Response:
        viewer = self.require_user(request)
        name = request.path_params["org"]
        want_token = _truthy(request.query_params.get("token"), True)
        want_perms = _truthy(request.query_params.get("permissions"), False)
        limit = _int_or_none(request.query_params.get("limit"))
        with self.state.lock:
            org = self.state.orgs.get(name)
            member = org is not None and viewer.username in org.owners
            if not (member or viewer.superuser):
                raise self.unauthorized(request, viewer)
            admin = self.is_org_admin(viewer, name)
            robots = list(org.robots.values()) if org else []
            if limit is not None:
                robots = robots[:limit]
            views = []
            for robot in robots:
                view = self.robot_view(name, robot, token=admin and want_token, metadata=False)
                if admin and want_perms:
                    full = f"{name}+{robot.shortname}"
                    view["teams"] = []
                    view["repositories"] = sorted(
                        r.name for r in self.state.repos.values() if r.namespace == name and full in r.permissions
                    )
                views.append(view)
        return JSONResponse({"robots": views})

    async def get_robot(self, request: Request) -> Response:
        viewer = self.require_user(request)
        name, short = request.path_params["org"], request.path_params["short"]
        with self.state.lock:
            self.require_org_admin(request, viewer, name)
            robot = self._robot_or_400(name, short, "Could not find robot with specified username")
            return JSONResponse(self.robot_view(name, robot, token=True, metadata=True))

    async def create_robot(self, request: Request) -> Response:
        viewer = self.require_user(request)
        name, short = request.path_params["org"], request.path_params["short"]
        body = await self.json_body(request, optional=True)
        description = body.get("description") or ""
        if not isinstance(description, str):
            raise self.fail(request, 400, f"{json.dumps(description)} is not of type 'string'")
        if len(description) > 255:
            raise self.fail(request, 400, f"{json.dumps(description)} is too long")
        with self.state.lock:
            self.require_org_admin(request, viewer, name)
            org = self.state.orgs.get(name)
            if org is None:
                raise QuayError(400, {"message": f"Organization does not exist: {name}"})
            if not _NAMESPACE_RE.match(short) or not 2 <= len(short) <= 255:
                raise self.fail(
                    request,
                    400,
                    f"The name for the robot '{short}' is invalid: "
                    f"Namespace must match expression {_NAMESPACE_RE.pattern}",
                )
            if short in org.robots:
                raise self.fail(request, 400, f"Existing robot with name: {name}+{short}")
            metadata = body.get("unstructured_metadata") or {}
            if not isinstance(metadata, dict):
                raise self.fail(request, 400, f"{json.dumps(metadata)} is not of type 'object'")
            robot = Robot(short, _robot_token(), description, time.time(), dict(metadata))
            org.robots[short] = robot
            return JSONResponse(self.robot_view(name, robot, token=True, metadata=True), status_code=201)

    async def delete_robot(self, request: Request) -> Response:
        viewer = self.require_user(request)
        name, short = request.path_params["org"], request.path_params["short"]
        with self.state.lock:
            self.require_org_admin(request, viewer, name)
            self._robot_or_400(name, short, f"Could not find robot with username: {name}+{short}")
            del self.state.orgs[name].robots[short]
            full = f"{name}+{short}"
            # delete_instance(recursive=True): its permissions and prototypes go with it.
            for repository in self.state.repos.values():
                repository.permissions.pop(full, None)
            org = self.state.orgs[name]
            org.prototypes = [p for p in org.prototypes if p.delegate_name != full]
        return Response(status_code=204)

    async def regenerate_robot(self, request: Request) -> Response:
        viewer = self.require_user(request)
        name, short = request.path_params["org"], request.path_params["short"]
        with self.state.lock:
            self.require_org_admin(request, viewer, name)
            robot = self._robot_or_400(name, short, "Could not find robot with specified username")
            robot.token = _robot_token()
            return JSONResponse(self.robot_view(name, robot, token=True, metadata=False))

    def _robot_or_400(self, org_name: str, short: str, message: str) -> Robot:
        org = self.state.orgs.get(org_name)
        if org is None:
            raise QuayError(400, {"message": f"Organization does not exist: {org_name}"})
        robot = org.robots.get(short)
        if robot is None:
            raise QuayError(400, {"message": message})
        return robot

    # --- default permissions (prototypes) -------------------------------------------------------

    def prototype_view(self, org: Organization, proto: Prototype) -> dict[str, Any]:
        def user_view(username: str) -> dict[str, Any]:
            is_robot = "+" in username
            return {
                "name": username,
                "is_robot": is_robot,
                "kind": "user",
                "is_org_member": is_robot or username in org.owners,
                "avatar": _avatar(username, "robot" if is_robot else "user"),
            }

        if proto.delegate_kind == "user":
            delegate = user_view(proto.delegate_name)
        else:
            delegate = {
                "name": proto.delegate_name,
                "kind": "team",
                "avatar": _avatar(proto.delegate_name, "team"),
            }
        return {
            "activating_user": user_view(proto.activating_user) if proto.activating_user else None,
            "delegate": delegate,
            "role": proto.role,
            "id": proto.id,
        }

    async def list_prototypes(self, request: Request) -> Response:
        viewer = self.require_user(request)
        name = request.path_params["org"]
        with self.state.lock:
            self.require_org_admin(request, viewer, name)
            org = self.org_or_404(request, name)
            return JSONResponse({"prototypes": [self.prototype_view(org, p) for p in org.prototypes]})

    async def create_prototype(self, request: Request) -> Response:
        viewer = self.require_user(request)
        name = request.path_params["org"]
        body = await self.json_body(request)
        role, delegate = body.get("role"), body.get("delegate")
        if role not in _ROLES:
            raise self.fail(request, 400, f"{json.dumps(role)} is not one of {list(_ROLES)}")
        if not isinstance(delegate, dict) or "name" not in delegate or "kind" not in delegate:
            raise self.fail(request, 400, "'delegate' is a required property")
        activating_user = body.get("activating_user")
        activating = activating_user.get("name") if isinstance(activating_user, dict) else None
        with self.state.lock:
            self.require_org_admin(request, viewer, name)
            org = self.org_or_404(request, name)
            if activating and not self.state._user_exists_locked(activating):
                raise self.fail(request, 400, "Unknown activating user")
            kind, delegate_name = delegate["kind"], delegate["name"]
            known = (kind == "user" and self.state._user_exists_locked(delegate_name)) or (
                kind == "team" and delegate_name == "owners"
            )
            if not known:
                raise self.fail(request, 400, "Missing delegate user or team")
            proto = Prototype(str(uuid.uuid4()), role, delegate_name, kind, activating)
            org.prototypes.append(proto)
            return JSONResponse(self.prototype_view(org, proto))

    async def delete_prototype(self, request: Request) -> Response:
        viewer = self.require_user(request)
        name, proto_id = request.path_params["org"], request.path_params["uuid"]
        with self.state.lock:
            self.require_org_admin(request, viewer, name)
            org = self.org_or_404(request, name)
            remaining = [p for p in org.prototypes if p.id != proto_id]
            if len(remaining) == len(org.prototypes):
                raise self.fail(request, 404)
            org.prototypes = remaining
        return Response(status_code=204)

    # --- repositories ---------------------------------------------------------------------------

    async def create_repo(self, request: Request) -> Response:
        viewer = self.require_user(request)
        body = await self.json_body(request)
        for required in ("repository", "visibility", "description"):
            if required not in body:
                raise self.fail(request, 400, f"'{required}' is a required property")
        visibility = body["visibility"]
        if visibility not in ("public", "private"):
            raise self.fail(request, 400, f"{json.dumps(visibility)} is not one of ['public', 'private']")
        namespace = body.get("namespace") or viewer.username
        name = body["repository"]
        with self.state.lock:
            may_create = (
                viewer.superuser
                or namespace == viewer.username
                or (namespace in self.state.orgs and self.is_org_admin(viewer, namespace))
            )
            if not may_create or (namespace not in self.state.orgs and namespace not in self.state.users):
                raise self.unauthorized(request, viewer)
            if (namespace, name) in self.state.repos:
                raise self.fail(request, 400, "Repository already exists")
            if not isinstance(name, str) or not _REPOSITORY_RE.match(name):
                raise self.fail(request, 400, "Invalid repository name")
            self.state._create_repo_locked(
                namespace, name, str(body["description"]), visibility == "public", viewer.username
            )
        return JSONResponse({"namespace": namespace, "name": name, "kind": "image"}, status_code=201)

    async def list_repos(self, request: Request) -> Response:
        viewer = self.check_anonymous(request)
        params = request.query_params
        namespace = params.get("namespace")
        starred, public = _truthy(params.get("starred"), False), _truthy(params.get("public"), False)
        if not namespace and not starred and not public:
            raise self.fail(request, 400, "namespace, starred or public are required for this API call")
        offset = _decode_page(params.get("next_page"))
        with self.state.lock:
            visible = [
                r
                for r in sorted(self.state.repos.values(), key=lambda r: (r.namespace, r.name))
                if (not namespace or r.namespace == namespace)
                and not starred  # the emulator has no stars
                and (self.repo_role(viewer, r) is not None or (public and r.is_public))
            ]
            page = visible[offset : offset + self.state.repos_per_page]
            views = [self.repo_list_view(r, params) for r in page]
        result: dict[str, Any] = {"repositories": views}
        if offset + self.state.repos_per_page < len(visible):
            result["next_page"] = _encode_page(offset + self.state.repos_per_page)
        return JSONResponse(result)

    @staticmethod
    def repo_list_view(repository: Repository, params: Any) -> dict[str, Any]:
        view: dict[str, Any] = {
            "namespace": repository.namespace,
            "name": repository.name,
            "description": repository.description,
            "is_public": repository.is_public,
            "kind": "image",
            "state": "NORMAL",
            "quota": None,
        }
        if _truthy(params.get("last_modified"), False):
            view["last_modified"] = max((t.start_ts for t in repository.tags), default=None)
        if _truthy(params.get("popularity"), False):
            view["popularity"] = 0.0
        return view

    async def get_repo(self, request: Request) -> Response:
        viewer = self.check_anonymous(request)
        include_tags = _truthy(request.query_params.get("includeTags"), True)
        with self.state.lock:
            repository = self.require_repo(request, viewer, "read")
            role = self.repo_role(viewer, repository)
            view: dict[str, Any] = {
                "namespace": repository.namespace,
                "name": repository.name,
                "kind": "image",
                "description": repository.description,
                "is_public": repository.is_public,
                "is_organization": repository.namespace in self.state.orgs,
                "is_starred": False,
                "status_token": "" if repository.is_public else repository.badge_token,
                "trust_enabled": False,
                "tag_expiration_s": _DEFAULT_TAG_EXPIRATION_S,
                "is_free_account": True,
                "state": "NORMAL",
                "can_write": role in ("write", "admin"),
                "can_admin": role == "admin",
            }
            if include_tags:
                view["tags"] = {t.name: self.short_tag_view(repository, t) for t in repository.active_tags()[:500]}
        return JSONResponse(view)

    @staticmethod
    def short_tag_view(repository: Repository, tag: Tag) -> dict[str, Any]:
        return {
            "name": tag.name,
            "size": repository.manifests[tag.manifest_digest].size,
            "last_modified": _rfc2822(tag.start_ts),
            "manifest_digest": tag.manifest_digest,
        }

    async def update_repo(self, request: Request) -> Response:
        viewer = self.require_user(request)
        body = await self.json_body(request)
        if "description" not in body:
            raise self.fail(request, 400, "'description' is a required property")
        with self.state.lock:
            repository = self.require_repo(request, viewer, "write")
            repository.description = str(body["description"])
        return JSONResponse({"success": True})

    async def delete_repo(self, request: Request) -> Response:
        viewer = self.require_user(request)
        with self.state.lock:
            repository = self.require_repo(request, viewer, "admin")
            del self.state.repos[(repository.namespace, repository.name)]
        return Response(status_code=204)

    # --- repository permissions -----------------------------------------------------------------

    def permission_view(self, repository: Repository, username: str, role: str) -> dict[str, Any]:
        is_robot = "+" in username
        view: dict[str, Any] = {
            "role": role,
            "name": username,
            "is_robot": is_robot,
            "avatar": _avatar(username, "robot" if is_robot else "user"),
        }
        org = self.state.orgs.get(repository.namespace)
        if org is not None:
            view["is_org_member"] = is_robot or username in org.owners
        return view

    async def list_user_permissions(self, request: Request) -> Response:
        viewer = self.require_user(request)
        with self.state.lock:
            repository = self.require_repo(request, viewer, "admin")
            views = {u: self.permission_view(repository, u, r) for u, r in repository.permissions.items()}
        return JSONResponse({"permissions": views})

    async def get_user_permission(self, request: Request) -> Response:
        viewer = self.require_user(request)
        username = request.path_params["username"]
        with self.state.lock:
            repository = self.require_repo(request, viewer, "admin")
            role = repository.permissions.get(username)
            if role is None:
                raise QuayError(400, {"message": "User does not have permission for repo."})
            return JSONResponse(self.permission_view(repository, username, role))

    async def set_user_permission(self, request: Request) -> Response:
        viewer = self.require_user(request)
        username = request.path_params["username"]
        body = await self.json_body(request)
        role = body.get("role")
        if role not in _ROLES:
            raise self.fail(request, 400, f"{json.dumps(role)} is not one of {list(_ROLES)}")
        with self.state.lock:
            repository = self.require_repo(request, viewer, "admin")
            namespace = repository.namespace
            if username == namespace:
                raise self.fail(request, 400, "Namespace owner must always be admin.")
            if not self.state._user_exists_locked(username):
                raise self.fail(request, 400, f"Invalid username: {username}")
            if "+" in username and username.partition("+")[0] != namespace:
                raise self.fail(request, 400, f"Cannot add robot {username} under namespace {namespace}")
            repository.permissions[username] = role
            return JSONResponse(self.permission_view(repository, username, role))

    async def delete_user_permission(self, request: Request) -> Response:
        viewer = self.require_user(request)
        username = request.path_params["username"]
        with self.state.lock:
            repository = self.require_repo(request, viewer, "admin")
            if username == repository.namespace:
                raise self.fail(request, 400, "Namespace owner must always be admin.")
            if repository.permissions.pop(username, None) is None:
                raise self.fail(request, 400, "User does not have permission for repo.")
        return Response(status_code=204)

    # --- tags & manifests -----------------------------------------------------------------------

    async def list_tags(self, request: Request) -> Response:
        viewer = self.check_anonymous(request)
        params = request.query_params
        page = max(1, _int_or_none(params.get("page")) or 1)
        limit = min(100, max(1, _int_or_none(params.get("limit")) or 50))
        specific = params.get("specificTag") or None
        only_active = _truthy(params.get("onlyActiveTags"), False)
        name_filter = _tag_filter(params.get("filter_tag_name") or "")
        if name_filter is None:
            raise QuayError(400, {"error": "Invalid filter_tag_name format, expected <op>:<name>"})
        with self.state.lock:
            repository = self.require_repo(request, viewer, "read")
            history = sorted(repository.tags, key=lambda t: (t.start_ts, t.seq), reverse=True)
            history = [
                t
                for t in history
                if (specific is None or t.name == specific)
                and (not only_active or t.alive(time.time()))
                and name_filter(t.name)
            ]
            chunk = history[(page - 1) * limit : page * limit]
            views = [self.tag_view(repository, t) for t in chunk]
        return JSONResponse({"tags": views, "page": page, "has_additional": len(history) > page * limit})

    @staticmethod
    def tag_view(repository: Repository, tag: Tag) -> dict[str, Any]:
        manifest = repository.manifests[tag.manifest_digest]
        view: dict[str, Any] = {"name": tag.name, "reversion": False, "start_ts": tag.start_ts}
        if tag.end_ts:
            view["end_ts"] = tag.end_ts
        view.update(
            manifest_digest=tag.manifest_digest,
            is_manifest_list=manifest.is_manifest_list,
            size=manifest.size,
            last_modified=_rfc2822(tag.start_ts),
        )
        if tag.end_ts is not None:
            view["expiration"] = _rfc2822(tag.end_ts)
        return view

    async def get_manifest(self, request: Request) -> Response:
        viewer = self.check_anonymous(request)
        digest = request.path_params["digest"]
        with self.state.lock:
            repository = self.require_repo(request, viewer, "read")
            manifest = repository.manifests.get(digest)
            if manifest is None:
                raise self.fail(request, 404)
            return JSONResponse(
                {
                    "digest": manifest.digest,
                    "is_manifest_list": manifest.is_manifest_list,
                    "manifest_data": manifest.manifest_data,
                    "config_media_type": None if manifest.is_manifest_list else _SCHEMA2_CONFIG,
                    "layers": None if manifest.is_manifest_list else manifest.layers,
                }
            )

    # --- health ---------------------------------------------------------------------------------

    def health(self, services: tuple[str, ...]) -> Response:
        with self.state.lock:
            statuses = {name: name not in self.state.unhealthy for name in services}
        code = 200 if all(statuses.values()) else 503
        return JSONResponse({"data": {"services": statuses}, "status_code": code}, status_code=code)

    async def health_instance(self, request: Request) -> Response:
        return self.health(_INSTANCE_SERVICES)

    async def health_endtoend(self, request: Request) -> Response:
        return self.health(_ENDTOEND_SERVICES)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def _truthy(value: str | None, default: bool) -> bool:
    """util.parsing.truthy_bool."""
    if value is None:
        return default
    return value.lower() not in ("false", "0", "no", "")


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _encode_page(offset: int) -> str:
    # Real Quay encrypts its page token; an opaque base64 blob behaves the same for clients.
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _decode_page(token: str | None) -> int:
    if not token:
        return 0
    try:
        return int(json.loads(base64.urlsafe_b64decode(token.encode()))["offset"])
    except (ValueError, KeyError, TypeError):
        return 0


def _tag_filter(spec: str) -> Callable[[str], bool] | None:
    """``filter_tag_name=<op>:<name>`` with op ``like`` (substring) or ``eq``."""
    if not spec:
        return lambda _name: True
    op, sep, value = spec.partition(":")
    if not sep or op not in ("like", "eq"):
        return None
    if op == "eq":
        return lambda name: name == value
    return lambda name: value in name


def _wrap(handler: Handler) -> Handler:
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except QuayError as err:
            return JSONResponse(err.body, status_code=err.status)

    return run


def create_app(state: State) -> ASGIApp:
    api = _Api(state)
    repo = "/api/v1/repository/{namespace}/{repository}"
    org = "/api/v1/organization/{org}"
    routes = [
        Route("/health/instance", _wrap(api.health_instance), methods=["GET"]),
        Route("/health/endtoend", _wrap(api.health_endtoend), methods=["GET"]),
        Route("/api/v1/user/", _wrap(api.current_user), methods=["GET"]),
        Route("/api/v1/organization/", _wrap(api.create_org), methods=["POST"]),
        Route(org, _wrap(api.get_org), methods=["GET"]),
        Route(org, _wrap(api.delete_org), methods=["DELETE"]),
        Route(org + "/robots", _wrap(api.list_robots), methods=["GET"]),
        Route(org + "/robots/{short}", _wrap(api.get_robot), methods=["GET"]),
        Route(org + "/robots/{short}", _wrap(api.create_robot), methods=["PUT"]),
        Route(org + "/robots/{short}", _wrap(api.delete_robot), methods=["DELETE"]),
        Route(org + "/robots/{short}/regenerate", _wrap(api.regenerate_robot), methods=["POST"]),
        Route(org + "/prototypes", _wrap(api.list_prototypes), methods=["GET"]),
        Route(org + "/prototypes", _wrap(api.create_prototype), methods=["POST"]),
        Route(org + "/prototypes/{uuid}", _wrap(api.delete_prototype), methods=["DELETE"]),
        Route("/api/v1/repository", _wrap(api.create_repo), methods=["POST"]),
        Route("/api/v1/repository", _wrap(api.list_repos), methods=["GET"]),
        Route(repo, _wrap(api.get_repo), methods=["GET"]),
        Route(repo, _wrap(api.update_repo), methods=["PUT"]),
        Route(repo, _wrap(api.delete_repo), methods=["DELETE"]),
        Route(repo + "/permissions/user/", _wrap(api.list_user_permissions), methods=["GET"]),
        Route(repo + "/permissions/user/{username}", _wrap(api.get_user_permission), methods=["GET"]),
        Route(repo + "/permissions/user/{username}", _wrap(api.set_user_permission), methods=["PUT"]),
        Route(repo + "/permissions/user/{username}", _wrap(api.delete_user_permission), methods=["DELETE"]),
        Route(repo + "/tag/", _wrap(api.list_tags), methods=["GET"]),
        Route(repo + "/manifest/{digest}", _wrap(api.get_manifest), methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    return FaultMiddleware(app, state.faults, error_body)


__all__ = ["Account", "Organization", "QuayError", "Repository", "Robot", "State", "create_app", "error_body"]
