"""Nexus Repository 3 emulator: the REST v1 surface the bot drives under ``/service/rest/v1``
(repositories, maven/npm hosted and group repositories, users, roles, privileges) and the
``/status`` probes the platform monitors.

Shapes follow sonatype/nexus-public (``RepositoriesApiResource``, ``UserApiResource``,
``RoleApiResource``, ``PrivilegeApiResourceSupport``) and the Sonatype REST API docs:

- HTTP Basic auth; no or bad credentials answer 401 with an empty body and
  ``WWW-Authenticate: BASIC realm="Sonatype Nexus Repository Manager"``; an authenticated user
  lacking the permission gets 403 with an empty body.
- Bean-validation failures answer 400 ``[{"id": "PARAMETER name", "message": …}]``; resource
  errors answer a JSON *string* such as ``"Role 'x' not found."`` (``WebApplicationMessageException``).
- Creating a repository answers 201 with no body, updating 204, deleting 204 / 404 (no body).
- Passwords are stored but never returned.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import json
import re
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from services.emulators.base import FaultMiddleware, Faults

REALM = 'BASIC realm="Sonatype Nexus Repository Manager"'
_API = "/service/rest/v1"
_FORMATS = {"maven": "maven2", "npm": "npm"}  # URL segment -> repository format
_TYPES = ("hosted", "group")
_WRITE_POLICIES = ("ALLOW", "ALLOW_ONCE", "DENY")
_VERSION_POLICIES = ("RELEASE", "SNAPSHOT", "MIXED")
_LAYOUT_POLICIES = ("STRICT", "PERMISSIVE")
_CONTENT_DISPOSITIONS = ("INLINE", "ATTACHMENT")
_ACTIONS = ("BROWSE", "READ", "EDIT", "ADD", "DELETE", "ALL")
# Repository names: RepositoryXO's @Pattern.
_NAME_RE = re.compile(r"^[a-zA-Z0-9\-][a-zA-Z0-9_\-.]*$")
_NAME_PATTERN_MESSAGE = (
    "Only letters, digits, underscores(_), hyphens(-), and dots(.) are allowed"
    " and may not start with underscore or dot."
)
# What /status/check reports (plugins/nexus/src/monitor.ts reads several of these by name).
STATUS_CHECKS = (
    "Available CPUs",
    "Blob Stores Quota",
    "Blob Stores Ready",
    "Coordinate Content Selectors",
    "Default Admin Credentials",
    "DefaultRoleRealm",
    "File Blob Stores Path",
    "File Descriptors",
    "Lifecycle Phase",
    "NuGet V2 repositories",
    "Read-Only Detector",
    "Scheduler",
    "Thread Deadlock Detector",
    "Transactions",
)
# The per-repository privileges Nexus generates: (suffix, actions, description template).
_VIEW_PRIVILEGES = (
    ("*", ["ALL"], "All permissions for Repository '{repo}'"),
    ("add", ["ADD"], "Add permission for Repository '{repo}'"),
    ("browse", ["BROWSE"], "Browse permission for Repository '{repo}'"),
    ("delete", ["DELETE"], "Delete permission for Repository '{repo}'"),
    ("edit", ["EDIT"], "Edit permission for Repository '{repo}'"),
    ("read", ["READ"], "Read permission for Repository '{repo}'"),
)


class NexusError(Exception):
    """An error answer; ``body`` None means an empty body."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def error_body(status: int) -> dict[str, Any]:
    """Nexus answers most errors with no body; the fault middleware needs a JSON object."""
    return {}


def _validation(field_name: str, message: str) -> NexusError:
    return NexusError(400, [{"id": f"PARAMETER {field_name}", "message": message}])


def _message(status: int, message: str) -> NexusError:
    # WebApplicationMessageException(status, "\"" + message + "\"", APPLICATION_JSON)
    return NexusError(status, message)


@dataclass
class User:
    user_id: str
    first_name: str
    last_name: str
    email: str
    password: str
    status: str = "active"
    roles: list[str] = field(default_factory=list)
    source: str = "default"  # "LDAP" for a user of the remote realm

    def view(self) -> dict[str, Any]:
        return {
            "userId": self.user_id,
            "firstName": self.first_name,
            "lastName": self.last_name,
            "emailAddress": self.email,
            "source": self.source,
            "status": self.status,
            "readOnly": self.source != "default",
            "roles": sorted(self.roles),
            "externalRoles": [],
        }


@dataclass
class Role:
    id: str
    name: str
    description: str
    privileges: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    read_only: bool = False

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": "default",
            "name": self.name,
            "description": self.description,
            "readOnly": self.read_only,
            "privileges": sorted(self.privileges),
            "roles": sorted(self.roles),
        }


@dataclass
class Repository:
    name: str
    format: str  # "maven2" | "npm"
    type: str  # "hosted" | "group" | "proxy"
    online: bool = True
    blob_store: str = "default"
    strict_content_type: bool = True
    write_policy: str | None = "ALLOW"
    members: list[str] = field(default_factory=list)
    maven: dict[str, str] | None = None
    cleanup: dict[str, Any] | None = None
    component: dict[str, Any] | None = None
    remote_url: str | None = None


class State:
    """Everything the emulated Nexus knows; thread-safe (tests read it from another thread)."""

    def __init__(self, admin_password: str, seed_defaults: bool = True) -> None:
        self.lock = threading.Lock()
        self.faults = Faults()
        self.available = True  # /status
        self.writable = True  # /status/writable
        self.failing_checks: dict[str, str] = {}  # /status/check name -> message
        self.users: dict[str, User] = {}
        self.roles: dict[str, Role] = {
            "nx-admin": Role("nx-admin", "nx-admin", "Administrator Role", ["nx-all"], read_only=True),
            "nx-anonymous": Role(
                "nx-anonymous",
                "nx-anonymous",
                "Anonymous Role",
                [
                    "nx-healthcheck-read",
                    "nx-search-read",
                    "nx-repository-view-*-*-read",
                    "nx-repository-view-*-*-browse",
                ],
                read_only=True,
            ),
        }
        self.privileges: dict[str, dict[str, Any]] = {}  # custom (non read-only) privileges
        self.repositories: dict[str, Repository] = {}
        # Blob stores a repository may name (AbstractRepositoriesApiResource.validateBlobStoreName).
        self.blob_stores: set[str] = {"default"}
        # A remote realm (LDAP): searched, with its latency, by a user search naming no ``source``
        # (DefaultSecuritySystem.searchUsers asks every user manager then).
        self.remote_users: dict[str, User] = {}
        self.remote_delay_seconds = 0.0
        self.add_user("admin", admin_password, roles=["nx-admin"], first_name="Administrator", last_name="User")
        self.add_user("anonymous", "anonymous", roles=["nx-anonymous"], first_name="Anonymous", last_name="User")
        if seed_defaults:
            self._seed_default_repositories()

    # --- seeding -------------------------------------------------------------------------------

    def add_user(
        self,
        user_id: str,
        password: str,
        roles: list[str] | None = None,
        first_name: str = "First",
        last_name: str = "Last",
        email: str = "",
        status: str = "active",
    ) -> None:
        with self.lock:
            self.users[user_id] = User(
                user_id,
                first_name,
                last_name,
                email or f"{user_id}@example.org",
                password,
                status,
                list(roles or []),
            )

    def add_repository(self, repository: Repository) -> None:
        with self.lock:
            self.repositories[repository.name] = repository

    def set_check(self, name: str, healthy: bool, message: str = "") -> None:
        """Make one ``/status/check`` component unhealthy (or healthy again)."""
        with self.lock:
            if healthy:
                self.failing_checks.pop(name, None)
            else:
                self.failing_checks[name] = message or f"{name} is unhealthy"

    def _seed_default_repositories(self) -> None:
        maven = {"versionPolicy": "RELEASE", "layoutPolicy": "STRICT", "contentDisposition": "INLINE"}
        self.repositories["maven-central"] = Repository(
            "maven-central",
            "maven2",
            "proxy",
            write_policy=None,
            maven=dict(maven),
            remote_url="https://repo1.maven.org/maven2/",
        )
        self.repositories["maven-releases"] = Repository(
            "maven-releases", "maven2", "hosted", write_policy="ALLOW_ONCE", maven=dict(maven)
        )
        self.repositories["maven-snapshots"] = Repository(
            "maven-snapshots", "maven2", "hosted", maven={**maven, "versionPolicy": "SNAPSHOT"}
        )
        self.repositories["maven-public"] = Repository(
            "maven-public",
            "maven2",
            "group",
            write_policy=None,
            members=["maven-releases", "maven-snapshots", "maven-central"],
            maven=dict(maven),
        )

    # --- read helpers (for tests) --------------------------------------------------------------

    def repository(self, name: str) -> Repository | None:
        with self.lock:
            return copy.deepcopy(self.repositories.get(name))

    def user(self, user_id: str) -> User | None:
        with self.lock:
            return copy.deepcopy(self.users.get(user_id))

    def role(self, role_id: str) -> Role | None:
        with self.lock:
            return copy.deepcopy(self.roles.get(role_id))

    def check_password(self, user_id: str, password: str) -> bool:
        with self.lock:
            found = self.users.get(user_id)
            return found is not None and found.password == password


# --- views ---------------------------------------------------------------------------------------


def _url(request: Request, name: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/repository/{name}"


def _repo_summary(request: Request, repo: Repository) -> dict[str, Any]:
    """RepositoryXO: the ``GET /repositories`` list entry."""
    attributes: dict[str, Any] = {}
    if repo.type == "proxy":
        attributes = {"proxy": {"remoteUrl": repo.remote_url}}
    return {
        "name": repo.name,
        "format": repo.format,
        "type": repo.type,
        "url": _url(request, repo.name),
        "attributes": attributes,
    }


def _repo_detail(request: Request, repo: Repository) -> dict[str, Any]:
    """The format-specific ``…/{format}/{type}/{name}`` representation."""
    storage: dict[str, Any] = {
        "blobStoreName": repo.blob_store,
        "strictContentTypeValidation": repo.strict_content_type,
    }
    view: dict[str, Any] = {
        "name": repo.name,
        "format": repo.format,
        "type": repo.type,
        "url": _url(request, repo.name),
        "online": repo.online,
        "storage": storage,
    }
    if repo.type == "hosted":
        storage["writePolicy"] = repo.write_policy
        view["cleanup"] = repo.cleanup
        view["component"] = repo.component or {"proprietaryComponents": False}
    if repo.type == "group":
        view["group"] = {"memberNames": list(repo.members)}
    if repo.format == "maven2" and repo.maven is not None:
        view["maven"] = dict(repo.maven)
    return view


def _builtin_privileges(repo: Repository) -> list[dict[str, Any]]:
    """``nx-repository-view-*`` and ``nx-repository-admin-*`` privileges Nexus derives per repository."""
    result = []
    for kind, ptype in (("view", "repository-view"), ("admin", "repository-admin")):
        for suffix, actions, template in _VIEW_PRIVILEGES:
            description = template.format(repo=repo.name)
            if kind == "admin":
                description = description.replace("Repository", "Repository Admin")
            result.append(
                {
                    "type": ptype,
                    "name": f"nx-repository-{kind}-{repo.format}-{repo.name}-{suffix}",
                    "description": description,
                    "readOnly": True,
                    "format": repo.format,
                    "repository": repo.name,
                    "actions": list(actions),
                }
            )
    return result


_STATIC_PRIVILEGES: list[dict[str, Any]] = [
    {
        "type": "wildcard",
        "name": "nx-all",
        "description": "All permissions",
        "readOnly": True,
        "pattern": "nexus:*",
    },
    {
        "type": "application",
        "name": "nx-healthcheck-read",
        "description": "Read health check component status",
        "readOnly": True,
        "domain": "healthcheck",
        "actions": ["READ"],
    },
    {
        "type": "application",
        "name": "nx-search-read",
        "description": "Search repositories",
        "readOnly": True,
        "domain": "search",
        "actions": ["READ"],
    },
    {
        "type": "repository-view",
        "name": "nx-repository-view-*-*-browse",
        "description": "Browse permission for all repository content",
        "readOnly": True,
        "format": "*",
        "repository": "*",
        "actions": ["BROWSE"],
    },
    {
        "type": "repository-view",
        "name": "nx-repository-view-*-*-read",
        "description": "Read permission for all repository content",
        "readOnly": True,
        "format": "*",
        "repository": "*",
        "actions": ["READ"],
    },
]


# --- request plumbing ----------------------------------------------------------------------------

Handler = Callable[[Request], Awaitable[Response]]


class _Api:
    def __init__(self, state: State) -> None:
        self.state = state

    # auth

    def authenticate(self, request: Request) -> User:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        user_id = password = None
        if scheme.lower() == "basic" and encoded:
            try:
                user_id, _, password = base64.b64decode(encoded.strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user_id = None
        with self.state.lock:
            user = self.state.users.get(user_id or "")
            if user is None or user.password != password or user.status != "active":
                raise NexusError(401, None, {"WWW-Authenticate": REALM})
            return user

    def privileges_of(self, user: User) -> set[str]:
        """All privilege ids granted through the user's roles (nested roles included)."""
        granted: set[str] = set()
        pending, seen = list(user.roles), set()
        while pending:
            role = self.state.roles.get(pending.pop())
            if role is None or role.id in seen:
                continue
            seen.add(role.id)
            granted.update(role.privileges)
            pending.extend(role.roles)
        return granted

    def require_admin(self, request: Request) -> User:
        user = self.authenticate(request)
        with self.state.lock:
            if "nx-all" not in self.privileges_of(user):
                raise NexusError(403)
        return user

    def can_browse(self, privileges: set[str], repo: Repository) -> bool:
        if "nx-all" in privileges:
            return True
        for name in privileges:
            for fmt in (repo.format, "*"):
                for target in (repo.name, "*"):
                    for suffix in ("*", "browse", "read"):
                        if name == f"nx-repository-view-{fmt}-{target}-{suffix}":
                            return True
            custom = self.state.privileges.get(name)
            if custom and custom.get("repository") in (repo.name, "*") and custom.get("format") in (repo.format, "*"):
                return True
        return False

    @staticmethod
    async def json_body(request: Request) -> Any:
        try:
            return json.loads(await request.body())
        except ValueError as err:
            raise NexusError(400, [{"id": "*", "message": "Unable to parse JSON"}]) from err

    # --- repositories ---------------------------------------------------------------------------

    async def list_repositories(self, request: Request) -> Response:
        user = self.authenticate(request)
        with self.state.lock:
            privileges = self.privileges_of(user)
            repos = [r for r in self.state.repositories.values() if self.can_browse(privileges, r)]
            return JSONResponse([_repo_summary(request, r) for r in sorted(repos, key=lambda r: r.name)])

    async def get_repository(self, request: Request) -> Response:
        user = self.authenticate(request)
        with self.state.lock:
            repo = self.state.repositories.get(request.path_params["name"])
            if repo is None or not self.can_browse(self.privileges_of(user), repo):
                raise NexusError(404)
            return JSONResponse(
                {
                    "name": repo.name,
                    "format": repo.format,
                    "type": repo.type,
                    "url": _url(request, repo.name),
                    "online": repo.online,
                }
            )

    async def delete_repository(self, request: Request) -> Response:
        self.require_admin(request)
        name = request.path_params["name"]
        with self.state.lock:
            if self.state.repositories.pop(name, None) is None:
                raise NexusError(404)
            for group in self.state.repositories.values():
                if name in group.members:
                    group.members.remove(name)
        return Response(status_code=204)

    def _kind(self, request: Request) -> tuple[str, str]:
        fmt, rtype = _FORMATS.get(request.path_params["format"]), request.path_params["type"]
        if fmt is None or rtype not in _TYPES:
            raise NexusError(404)
        return fmt, rtype

    async def create_repository(self, request: Request) -> Response:
        self.require_admin(request)
        fmt, rtype = self._kind(request)
        repo = _parse_repository(await self.json_body(request), fmt, rtype)
        with self.state.lock:
            if any(r.lower() == repo.name.lower() for r in self.state.repositories):
                raise _validation("name", "Name is already used, must be unique (ignoring case)")
            self._check_blob_store(repo, None)
            self.state.repositories[repo.name] = repo
        return Response(status_code=201)

    def _check_blob_store(self, repo: Repository, current: Repository | None) -> None:
        """AbstractRepositoriesApiResource.validateBlobStoreName (nexus-public
        components/nexus-repository-services/.../rest/api): an unknown store, or a change of store
        on update, is a ValidationErrorsException with id ``BlobStoreName``."""
        if repo.blob_store not in self.state.blob_stores:
            raise NexusError(400, [{"id": "BlobStoreName", "message": "Blob store not found"}])
        if current is not None and current.blob_store != repo.blob_store:
            message = "You cannot change a repository\u2019s blob store through the API"
            raise NexusError(400, [{"id": "BlobStoreName", "message": message}])

    async def get_typed_repository(self, request: Request) -> Response:
        self.require_admin(request)
        fmt, rtype = self._kind(request)
        with self.state.lock:
            repo = self.state.repositories.get(request.path_params["name"])
            if repo is None or (repo.format, repo.type) != (fmt, rtype):
                raise NexusError(404)
            return JSONResponse(_repo_detail(request, repo))

    async def update_repository(self, request: Request) -> Response:
        self.require_admin(request)
        fmt, rtype = self._kind(request)
        name = request.path_params["name"]
        updated = _parse_repository(await self.json_body(request), fmt, rtype)
        with self.state.lock:
            current = self.state.repositories.get(name)
            if current is None or (current.format, current.type) != (fmt, rtype):
                raise NexusError(404)
            if updated.name != name:
                raise _validation("name", "Renaming a repository is not supported")
            self._check_blob_store(updated, current)
            self.state.repositories[name] = updated
        return Response(status_code=204)

    # --- users ----------------------------------------------------------------------------------

    async def list_users(self, request: Request) -> Response:
        """sonatype/nexus-public components/nexus-security/.../rest/UserApiResource.getUsers and
        DefaultSecuritySystem.searchUsers: no ``source`` searches every realm (the remote one
        included, 100 users at most there), a named one only that realm; ``userId`` is a prefix
        (AbstractUserManager, case-insensitive)."""
        self.require_admin(request)
        prefix = (request.query_params.get("userId") or "").lower()
        source = request.query_params.get("source") or ""
        with self.state.lock:
            local = list(self.state.users.values()) if source in ("", "default") else []
            remote = list(self.state.remote_users.values()) if source in ("", "LDAP") else []
            delay = self.state.remote_delay_seconds if remote or source == "" else 0.0
        if delay:
            await asyncio.sleep(delay)
        found = [u for u in local if u.user_id.lower().startswith(prefix)]
        found += [u for u in remote if u.user_id.lower().startswith(prefix)][:100]
        return JSONResponse([u.view() for u in sorted(found, key=lambda u: (u.user_id, u.source))])

    async def create_user(self, request: Request) -> Response:
        self.require_admin(request)
        body = await self.json_body(request)
        if not isinstance(body, dict):
            raise _validation("arg0", "must not be null")
        for name, message in (
            ("userId", "must not be blank"),
            ("firstName", "must not be empty"),
            ("lastName", "must not be empty"),
            ("emailAddress", "must not be empty"),
            ("status", "must not be null"),
            ("roles", "must not be empty"),
        ):
            if not body.get(name):
                raise _validation(name, message)
        if "@" not in str(body["emailAddress"]):
            raise _validation("emailAddress", "must be a well-formed email address")
        if not str(body.get("password") or "").strip():
            raise _message(400, "A non-empty password is required.")
        status = str(body["status"])
        if status not in ("active", "locked", "disabled", "changepassword"):
            raise _validation("status", f"Invalid status: {status}")
        user = User(
            str(body["userId"]),
            str(body["firstName"]),
            str(body["lastName"]),
            str(body["emailAddress"]),
            str(body["password"]),
            status,
            [str(r) for r in body["roles"]],
        )
        with self.state.lock:
            self._validate_roles(user.roles)
            if user.user_id in self.state.users:
                # Approximation: the default realm refuses a duplicate id; the exact text is not documented.
                raise _message(400, f"User '{user.user_id}' already exists.")
            self.state.users[user.user_id] = user
            return JSONResponse(user.view())

    def _validate_roles(self, roles: list[str]) -> None:
        missing = [r for r in roles if r not in self.state.roles]
        if missing:
            raise NexusError(400, [{"id": "roles", "message": f"Unable to locate roleId: {r}"} for r in missing])

    async def update_user(self, request: Request) -> Response:
        self.require_admin(request)
        user_id = request.path_params["user_id"]
        body = await self.json_body(request)
        if not isinstance(body, dict) or body.get("userId") != user_id:
            raise _message(400, "The path's userId does not match the body")
        with self.state.lock:
            roles = [str(r) for r in body.get("roles") or []]
            self._validate_roles(roles)
            user = self.state.users.get(user_id)
            if user is None:
                raise _message(404, f"User '{user_id}' not found.")
            user.first_name = str(body.get("firstName", user.first_name))
            user.last_name = str(body.get("lastName", user.last_name))
            user.email = str(body.get("emailAddress", user.email))
            user.status = str(body.get("status", user.status))
            user.roles = roles
        return Response(status_code=204)

    async def delete_user(self, request: Request) -> Response:
        self.require_admin(request)
        user_id = request.path_params["user_id"]
        with self.state.lock:
            if self.state.users.pop(user_id, None) is None:
                raise _message(404, f"User '{user_id}' not found.")
        return Response(status_code=204)

    async def change_password(self, request: Request) -> Response:
        self.require_admin(request)  # @RequiresPermissions("nexus:*")
        user_id = request.path_params["user_id"]
        password = (await request.body()).decode(errors="replace")
        if not password.strip():
            raise _message(400, "Password must be supplied.")
        with self.state.lock:
            user = self.state.users.get(user_id)
            if user is None:
                raise _message(404, f"User '{user_id}' not found.")
            user.password = password
        return Response(status_code=204)

    # --- roles ----------------------------------------------------------------------------------

    def _role_from_body(self, body: Any) -> Role:
        if not isinstance(body, dict):
            raise _validation("arg0", "must not be null")
        for name in ("id", "name"):
            if not body.get(name):
                raise _validation(name, "must not be empty")
        return Role(
            str(body["id"]),
            str(body["name"]),
            # RoleXOResponse.fromRole: a role without description shows its id instead.
            str(body.get("description") or body["id"]),
            [str(p) for p in body.get("privileges") or []],
            [str(r) for r in body.get("roles") or []],
        )

    def _check_contents(self, role: Role) -> None:
        for privilege in role.privileges:
            if self._find_privilege(privilege) is None:
                raise _message(400, f"Privilege '{privilege}' contained in role '{role.id}' not found.")
        for child in role.roles:
            if child not in self.state.roles:
                raise _message(400, f"Role '{child}' contained in role '{role.id}' not found.")

    async def list_roles(self, request: Request) -> Response:
        self.require_admin(request)
        source = request.query_params.get("source")
        if source not in (None, "", "default"):
            raise _message(400, f"Source '{source}' not found.")
        with self.state.lock:
            return JSONResponse([r.view() for r in sorted(self.state.roles.values(), key=lambda r: r.id)])

    async def create_role(self, request: Request) -> Response:
        self.require_admin(request)
        role = self._role_from_body(await self.json_body(request))
        with self.state.lock:
            if role.id in self.state.roles:
                raise _message(400, f"Role '{role.id}' already exists, use a unique roleId.")
            self._check_contents(role)
            self.state.roles[role.id] = role
            return JSONResponse(role.view())

    async def get_role(self, request: Request) -> Response:
        self.require_admin(request)
        role_id = request.path_params["role_id"]
        with self.state.lock:
            role = self.state.roles.get(role_id)
            if role is None:
                raise _message(404, f"Role '{role_id}' not found.")
            return JSONResponse(role.view())

    async def update_role(self, request: Request) -> Response:
        self.require_admin(request)
        role_id = request.path_params["role_id"]
        role = self._role_from_body(await self.json_body(request))
        if role.id != role_id:
            raise _message(409, f"The Role id '{role.id}' does not match the id used in the path '{role_id}'.")
        with self.state.lock:
            current = self.state.roles.get(role_id)
            if current is None:
                raise _message(404, f"Role '{role_id}' not found.")
            if current.read_only:
                raise _message(400, f"Role '{role_id}' is internal and cannot be modified or deleted.")
            self._check_contents(role)
            self.state.roles[role_id] = role
        return Response(status_code=204)

    async def delete_role(self, request: Request) -> Response:
        self.require_admin(request)
        role_id = request.path_params["role_id"]
        with self.state.lock:
            role = self.state.roles.get(role_id)
            if role is None:
                raise _message(404, f"Role '{role_id}' not found.")
            if role.read_only:
                raise _message(400, f"Role '{role_id}' is internal and cannot be modified or deleted.")
            del self.state.roles[role_id]
        return Response(status_code=204)

    # --- privileges -----------------------------------------------------------------------------

    def _all_privileges(self) -> list[dict[str, Any]]:
        result = [dict(p) for p in _STATIC_PRIVILEGES]
        for repo in sorted(self.state.repositories.values(), key=lambda r: r.name):
            result.extend(_builtin_privileges(repo))
        result.extend(dict(p) for p in self.state.privileges.values())
        return result

    def _find_privilege(self, name: str) -> dict[str, Any] | None:
        """One privilege by name, without building the whole list (which grows with every repository)."""
        if name in self.state.privileges:
            return dict(self.state.privileges[name])
        for privilege in _STATIC_PRIVILEGES:
            if privilege["name"] == name:
                return dict(privilege)
        for repo in self.state.repositories.values():
            if repo.name in name:
                for privilege in _builtin_privileges(repo):
                    if privilege["name"] == name:
                        return privilege
        return None

    async def list_privileges(self, request: Request) -> Response:
        self.require_admin(request)
        with self.state.lock:
            return JSONResponse(self._all_privileges())

    async def get_privilege(self, request: Request) -> Response:
        self.require_admin(request)
        name = request.path_params["name"]
        with self.state.lock:
            privilege = self._find_privilege(name)
        if privilege is not None:
            return JSONResponse(privilege)
        raise _message(404, f"Privilege '{name}' not found.")

    async def create_repository_view_privilege(self, request: Request) -> Response:
        self.require_admin(request)
        body = await self.json_body(request)
        if not isinstance(body, dict):
            raise _validation("arg0", "must not be null")
        for name in ("name", "format", "repository", "actions"):
            if not body.get(name):
                raise _validation(name, "must not be empty")
        actions = [str(a).upper() for a in body["actions"]]
        bad = [a for a in actions if a not in _ACTIONS]
        if bad:
            raise _validation("actions", f"Invalid actions: {', '.join(bad)}")
        privilege: dict[str, Any] = {
            "type": "repository-view",
            "name": str(body["name"]),
            "description": str(body.get("description") or ""),
            "readOnly": False,
            "format": str(body["format"]),
            "repository": str(body["repository"]),
            "actions": actions,
        }
        with self.state.lock:
            if self._find_privilege(privilege["name"]) is not None:
                raise _message(400, f"Privilege '{privilege['name']}' already exists, use a unique name.")
            self.state.privileges[privilege["name"]] = privilege
        return Response(status_code=201)

    async def delete_privilege(self, request: Request) -> Response:
        self.require_admin(request)
        name = request.path_params["name"]
        with self.state.lock:
            if name in self.state.privileges:
                del self.state.privileges[name]
                return Response(status_code=204)
            if self._find_privilege(name) is not None:
                raise _message(400, f"Privilege '{name}' is internal and cannot be modified or deleted.")
        raise _message(404, f"Privilege '{name}' not found.")

    # --- status ---------------------------------------------------------------------------------

    async def status(self, request: Request) -> Response:
        with self.state.lock:
            ok = self.state.available
        return Response(status_code=200 if ok else 503)

    async def status_writable(self, request: Request) -> Response:
        with self.state.lock:
            ok = self.state.available and self.state.writable
        return Response(status_code=200 if ok else 503)

    async def status_check(self, request: Request) -> Response:
        self.require_admin(request)  # nexus:metrics:read
        now = int(time.time() * 1000)
        with self.state.lock:
            failing = dict(self.state.failing_checks)
        checks = {
            name: {
                "healthy": name not in failing,
                "message": failing.get(name),
                "error": None,
                "details": None,
                "time": now,
                "duration": 0,
                "timestamp": now,
            }
            for name in STATUS_CHECKS
        }
        return JSONResponse(checks)


def _require_choice(path: str, value: Any, choices: tuple[str, ...]) -> str:
    text = str(value).upper() if value is not None else ""
    if text not in choices:
        raise _validation(path, f"must be one of {', '.join(choices)}")
    return text


def _parse_repository(body: Any, fmt: str, rtype: str) -> Repository:
    """Validate a ``POST``/``PUT`` body the way the API's bean validation does."""
    if not isinstance(body, dict):
        raise _validation("arg0", "must not be null")
    name = body.get("name")
    if not name:
        raise _validation("name", "must not be empty")
    if not _NAME_RE.match(str(name)):
        raise _validation("name", _NAME_PATTERN_MESSAGE)
    if body.get("online") is None:
        raise _validation("online", "must not be null")
    storage = body.get("storage")
    if not isinstance(storage, dict) or not storage.get("blobStoreName"):
        raise _validation("storage", "must not be null")
    if storage.get("strictContentTypeValidation") is None:
        raise _validation("storage.strictContentTypeValidation", "must not be null")
    repo = Repository(
        str(name),
        fmt,
        rtype,
        bool(body["online"]),
        str(storage["blobStoreName"]),
        bool(storage["strictContentTypeValidation"]),
        None,
        cleanup=body.get("cleanup"),
        component=body.get("component"),
    )
    if rtype == "hosted":
        repo.write_policy = _require_choice("storage.writePolicy", storage.get("writePolicy"), _WRITE_POLICIES)
    if rtype == "group":
        group = body.get("group")
        if not isinstance(group, dict) or not group.get("memberNames"):
            raise _validation("group", "must not be null")
        repo.members = [str(m) for m in group["memberNames"]]
    if fmt == "maven2":
        repo.maven = _parse_maven(body, required=rtype == "hosted")
    return repo


def _parse_maven(body: dict[str, Any], required: bool) -> dict[str, str] | None:
    maven = body.get("maven")
    if maven is None and not required:
        return None
    if not isinstance(maven, dict):
        raise _validation("maven", "must not be null")
    return {
        "versionPolicy": _require_choice("maven.versionPolicy", maven.get("versionPolicy"), _VERSION_POLICIES),
        "layoutPolicy": _require_choice("maven.layoutPolicy", maven.get("layoutPolicy"), _LAYOUT_POLICIES),
        "contentDisposition": _require_choice(
            "maven.contentDisposition", maven.get("contentDisposition") or "INLINE", _CONTENT_DISPOSITIONS
        ),
    }


def _wrap(handler: Handler) -> Handler:
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except NexusError as err:
            if err.body is None:
                return Response(status_code=err.status, headers=err.headers)
            return JSONResponse(err.body, status_code=err.status, headers=err.headers)

    return run


def create_app(state: State) -> ASGIApp:
    api = _Api(state)
    typed = _API + "/repositories/{format}/{type}"
    security = _API + "/security"
    routes = [
        Route(_API + "/status", _wrap(api.status), methods=["GET"]),
        Route(_API + "/status/writable", _wrap(api.status_writable), methods=["GET"]),
        Route(_API + "/status/check", _wrap(api.status_check), methods=["GET"]),
        Route(_API + "/repositories", _wrap(api.list_repositories), methods=["GET"]),
        Route(typed, _wrap(api.create_repository), methods=["POST"]),
        Route(typed + "/{name}", _wrap(api.get_typed_repository), methods=["GET"]),
        Route(typed + "/{name}", _wrap(api.update_repository), methods=["PUT"]),
        Route(_API + "/repositories/{name}", _wrap(api.get_repository), methods=["GET"]),
        Route(_API + "/repositories/{name}", _wrap(api.delete_repository), methods=["DELETE"]),
        Route(security + "/users", _wrap(api.list_users), methods=["GET"]),
        Route(security + "/users", _wrap(api.create_user), methods=["POST"]),
        Route(security + "/users/{user_id}", _wrap(api.update_user), methods=["PUT"]),
        Route(security + "/users/{user_id}", _wrap(api.delete_user), methods=["DELETE"]),
        Route(security + "/users/{user_id}/change-password", _wrap(api.change_password), methods=["PUT"]),
        Route(security + "/roles", _wrap(api.list_roles), methods=["GET"]),
        Route(security + "/roles", _wrap(api.create_role), methods=["POST"]),
        Route(security + "/roles/{role_id}", _wrap(api.get_role), methods=["GET"]),
        Route(security + "/roles/{role_id}", _wrap(api.update_role), methods=["PUT"]),
        Route(security + "/roles/{role_id}", _wrap(api.delete_role), methods=["DELETE"]),
        Route(security + "/privileges", _wrap(api.list_privileges), methods=["GET"]),
        Route(
            security + "/privileges/repository-view",
            _wrap(api.create_repository_view_privilege),
            methods=["POST"],
        ),
        Route(security + "/privileges/{name}", _wrap(api.get_privilege), methods=["GET"]),
        Route(security + "/privileges/{name}", _wrap(api.delete_privilege), methods=["DELETE"]),
    ]
    return FaultMiddleware(Starlette(routes=routes), state.faults, error_body)


__all__ = [
    "REALM",
    "STATUS_CHECKS",
    "NexusError",
    "Repository",
    "Role",
    "State",
    "User",
    "create_app",
    "error_body",
]
