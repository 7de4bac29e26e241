"""The Cloud π Native console (cloud-pi-native/console v9) as the bot drives it.

Contract: ``console-api.md`` (built from ``cloud-pi-native/console`` at ``71632fed``). In short:

- Every call carries ``x-dso-token`` (``cloud-pi-native/console:packages/shared/src/utils/
  const.ts`` ``tokenHeaderName``): the bot's admin token, or a person's personal access token
  (PAT) through :meth:`Console.acting_as`. A token is a :class:`Token`, hidden in every ``repr``.
- Errors of both backends, the legacy 200-wrapped ``{"status": 401, …}`` included, become
  :class:`~services.console_errors.ConsoleError` subclasses with a locale ``reason``.
- Writes are synchronous: a created project is re-read with its last log to tell per-plugin
  results (:class:`~services.console_models.Provisioning`). A project POST that timed out is
  never sent again (a second POST makes ``name-1``, §3.1): the new project is found by name.
- Repository writes and syncs through v2 refuse admin tokens (``@RequireUserType('human')``,
  ``cloud-pi-native/console:apps/server-nestjs/src/modules/repository/repository.controller.ts``):
  with the admin token the legacy v1 routes are used while the console has them.
- Versions (``GET /api/v1/version``) pick the routes: environments v2 from 9.20, repositories
  v2 from 9.24 (§6).
"""

from __future__ import annotations

import asyncio
import builtins
import re
from typing import Any, Literal

import httpx

from services.base import HttpService
from services.console_errors import (
    SERVICE,
    ConsoleError,
    ConsoleForbidden,
    ConsoleNotFound,
    ConsoleProvisioningError,
    ConsoleUnavailable,
    error_status,
    to_error,
)
from services.console_models import (
    AdminRole,
    Cluster,
    Deployment,
    Environment,
    Member,
    Person,
    Project,
    Provisioning,
    Repository,
    RepositorySpec,
    Role,
    ServiceHealth,
    Stage,
    TokenInfo,
    Zone,
    plugin_results,
)

Json = dict[str, Any]
TOKEN_HEADER = "x-dso-token"  # noqa: S105 - a header name
TokenKind = Literal["admin", "pat"]
LATEST = (999, 0, 0)  # "unknown" / "dev" builds: assume the newest routes
ENVIRONMENTS_V2 = (9, 20, 0)
REPOSITORIES_V2 = (9, 24, 0)
# A gateway timeout or a dropped answer does not stop the backend (§3.1): re-read, never re-POST.
_MAYBE_DONE = (502, 503, 504)


class Token:
    """A console credential; its value shows only through :meth:`reveal`."""

    __slots__ = ("_value", "kind")

    def __init__(self, value: str, kind: TokenKind) -> None:
        self._value = value
        self.kind: TokenKind = kind

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Token(kind={self.kind!r}, value=<hidden>)"

    __str__ = __repr__

    def __reduce__(self) -> Any:  # never pickled into a queue or a cache file
        raise TypeError("a console token cannot be pickled")


def parse_version(text: str) -> tuple[int, int, int]:
    """``"9.24.0"`` → (9, 24, 0); ``unknown``/``dev`` (APP_VERSION unset, §2.10) → newest."""
    found = re.match(r"v?(\d+)\.(\d+)\.(\d+)", text.strip())
    if not found:
        return LATEST
    return int(found[1]), int(found[2]), int(found[3])


class Console(HttpService):
    """One console, one credential. ``acting_as(pat)`` gives a view sharing the connection pool."""

    service = SERVICE

    def __init__(
        self,
        url: str,
        admin_token: str,
        timeout: float = 10.0,
        write_timeout: float = 120.0,
        *,
        reread_attempts: int = 5,
        reread_delay: float = 1.0,
        _shared: Console | None = None,
        _token: Token | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.write_timeout = write_timeout
        self.reread_attempts = reread_attempts
        self.reread_delay = reread_delay
        if _shared is None:
            super().__init__(self.url, timeout)  # one httpx.AsyncClient, no default credential
            self._version: tuple[int, int, int] | None = None
            self._root = self
        else:
            self.base_url = _shared.base_url
            self.client = _shared.client
            self._root = _shared._root
        self.token = _token or Token(admin_token, "admin")
        self.projects = _Projects(self)
        self.members = _Members(self)
        self.roles = _Roles(self)
        self.repositories = _Repositories(self)
        self.environments = _Environments(self)
        self.deployments = _Deployments(self)
        self.logs = _Logs(self)
        self.tokens = _Tokens(self)
        self.users = _Users(self)

    def __repr__(self) -> str:
        return f"Console(url={self.url!r}, token={self.token!r})"

    def acting_as(self, pat: str) -> Console:
        """The same console, each call authenticated with a person's PAT (their name in the logs)."""
        return Console(
            self.url,
            "",
            self.timeout,
            self.write_timeout,
            reread_attempts=self.reread_attempts,
            reread_delay=self.reread_delay,
            _shared=self,
            _token=Token(pat, "pat"),
        )

    async def close(self) -> None:
        if self._root is self:
            await self.client.aclose()

    # -- transport ------------------------------------------------------------------------------

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        timeout: float | None = None,
        auth: bool = True,
    ) -> Any:
        """Send one request; the decoded JSON (None when empty) or a :class:`ConsoleError`."""
        headers = {TOKEN_HEADER: self.token.reveal()} if auth else {}
        try:
            # Bodiless writes carry no Content-Type: fastify refuses an empty JSON body (§0).
            response = await self.client.request(
                method,
                path,
                json=json,
                params=params,
                headers=headers,
                timeout=timeout if timeout is not None else self.timeout,
            )
        except httpx.TimeoutException:
            raise ConsoleUnavailable("timeout") from None
        except httpx.HTTPError:
            raise ConsoleUnavailable("unreachable") from None
        body: Any = None
        if response.content:
            try:
                body = response.json()
            except ValueError:
                body = response.text
        status = error_status(response.status_code, body)
        if status is not None:
            error = to_error(status, body)
            error.bot_token = self.token.kind == "admin"  # whose token to renew is not the same person
            raise error
        return body

    async def version(self) -> tuple[int, int, int]:
        """The console's version, read once (``GET /api/v1/version``, no auth, legacy server)."""
        root = self._root
        if root._version is None:
            body = await self.call("GET", "/api/v1/version", auth=False)
            root._version = parse_version(str((body or {}).get("version") or ""))
        return root._version

    async def version_text(self) -> str:
        body = await self.call("GET", "/api/v1/version", auth=False)
        return str((body or {}).get("version") or "")

    async def health_services(self) -> list[ServiceHealth]:
        """``GET /api/v1/health-services`` (no auth): the console's own view of each plugin's service."""
        body = await self.call("GET", "/api/v1/health-services", auth=False)
        return [ServiceHealth.parse(item) for item in body or []]

    async def healthz(self) -> bool:
        body = await self.call("GET", "/api/v1/healthz", auth=False)
        return isinstance(body, dict) and str(body.get("status", "")).lower() == "ok"

    async def admin_roles(self) -> list[AdminRole]:
        """The platform roles and their masks, ordered by position. The legacy handler reads no
        credential (``cloud-pi-native/console:apps/server/src/resources/admin-role/router.ts``
        ``listAdminRoles``); the token is sent anyway, as a later console may ask for one."""
        return [AdminRole.parse(r) for r in await self.call("GET", "/api/v1/admin/roles") or [] if isinstance(r, dict)]

    async def stages(self) -> list[Stage]:
        return [Stage.parse(s) for s in await self.call("GET", "/api/v1/stages") or []]

    async def zones(self) -> list[Zone]:
        return [Zone.parse(z) for z in await self.call("GET", "/api/v1/zones") or []]

    async def clusters(self) -> list[Cluster]:
        return [Cluster.parse(c) for c in await self.call("GET", "/api/v1/clusters") or []]


class _Manager:
    def __init__(self, console: Console) -> None:
        self.console = console


class _Projects(_Manager):
    """``/api/v1/projects`` (NestJS ≥ 9.23), ``cloud-pi-native/console:packages/shared/src/contracts/project.ts``."""

    async def list(
        self, *, name: str | None = None, filter: str | None = None, include_archived: bool = False
    ) -> builtins.list[Project]:
        params: dict[str, str] = {}
        if name is not None:
            params["name"] = name
        if filter is not None:
            params["filter"] = filter
        if not include_archived:
            params["statusNotIn"] = "archived"
        body = await self.console.call("GET", "/api/v1/projects", params=params)
        return [Project.parse(p) for p in body or []]

    async def get(self, project_id: str) -> Project:
        return Project.parse(await self.console.call("GET", f"/api/v1/projects/{project_id}"))

    async def by_slug(self, slug: str) -> Project | None:
        # The slug is name or name-N (generateSlug): list by the name part, keep the exact slug.
        base = re.sub(r"-\d+$", "", slug)
        for project in await self.list(name=base, filter=self._all_filter()):
            if project.slug == slug:
                return project
        return None

    def _all_filter(self) -> str:
        # filter=all needs admin MANAGE; a person sees what they own or are member of (§2.1).
        return "all" if self.console.token.kind == "admin" else "member"

    async def create(
        self, name: str, description: str = "", *, limitless: bool = False, budgets: dict[str, float] | None = None
    ) -> Provisioning:
        """POST once, then re-read the project and its logs (§3.1).

        On a timeout or a gateway error the POST may have gone through: the new project is found
        among the projects named ``name`` that were not there before. It is never re-POSTed.
        """
        body: Json = {"name": name, "description": description, "limitless": limitless}
        for key in ("hprodCpu", "hprodGpu", "hprodMemory", "prodCpu", "prodGpu", "prodMemory"):
            body[key] = (budgets or {}).get(key, 0)  # all required; the UI sends 0
        before = {p.id for p in await self.list(name=name, filter="owned", include_archived=True)}
        try:
            created = await self.console.call("POST", "/api/v1/projects", json=body, timeout=self.console.write_timeout)
            project_id = str(created["id"])
        except ConsoleProvisioningError:
            # Legacy ≤ 9.22: 422 "Echec des services à la création du projet", the project exists.
            project_id = await self._find_new(name, before)
        except ConsoleUnavailable as err:
            if err.reason not in ("timeout",) and err.status not in _MAYBE_DONE:
                raise
            project_id = await self._find_new(name, before)
        return await self.provisioning(project_id, "Create Project")

    async def _find_new(self, name: str, before: builtins.set[str]) -> str:
        for attempt in range(self.console.reread_attempts):
            if attempt:
                await asyncio.sleep(self.console.reread_delay)
            try:
                found = await self.list(name=name, filter="owned", include_archived=True)
            except ConsoleUnavailable:
                continue
            new = [p for p in found if p.id not in before]
            if new:
                return max(new, key=lambda p: p.created_at).id
        raise ConsoleUnavailable("create_unconfirmed")

    async def provisioning(self, project_id: str, action: str = "") -> Provisioning:
        """The project as it is now, with the per-plugin results of its last log."""
        project = await self.get(project_id)
        log = await self.console.logs.last(project_id, action or None)
        plugins = plugin_results(log.get("data") or {}) if log else ()
        if project.status in ("failed", "warning"):  # warning: legacy partial failure
            state = "failed"
        elif project.provisioned:
            state = "ok"
        elif any(not p.ok for p in plugins):  # the log is written before the status (§3.1)
            state = "failed"
        else:
            state = "pending"
        return Provisioning(project, state, plugins, str((log or {}).get("action") or ""))

    async def update(self, project_id: str, **fields: Any) -> Project:
        return Project.parse(
            await self.console.call(
                "PUT", f"/api/v1/projects/{project_id}", json=fields, timeout=self.console.write_timeout
            )
        )

    async def delete(self, project_id: str) -> None:
        """Archive (§3.1): renamed ``<x>_<ms>_archived``, locked, services cleaned."""
        await self.console.call("DELETE", f"/api/v1/projects/{project_id}", timeout=self.console.write_timeout)

    async def replay(self, project_id: str) -> Provisioning:
        """``PUT …/hooks`` (ReplayHooks): reprovision, then read the outcome."""
        try:
            await self.console.call("PUT", f"/api/v1/projects/{project_id}/hooks", timeout=self.console.write_timeout)
        except ConsoleProvisioningError:
            pass  # the outcome is read below
        except ConsoleUnavailable as err:
            if err.reason != "timeout" and err.status not in _MAYBE_DONE:
                raise
        return await self.provisioning(project_id, "Replay hooks for Project")

    async def secrets(self, project_id: str) -> ProjectSecrets:
        """``GET …/secrets`` (SeeSecrets). Values are secrets: never posted, never logged."""
        body = await self.console.call("GET", f"/api/v1/projects/{project_id}/secrets")
        return ProjectSecrets(body or {})

    async def services(self, project_id: str) -> builtins.list[Json]:
        """``GET …/services?permissionTarget=user``: each service's name, title and URLs."""
        body = await self.console.call(
            "GET", f"/api/v1/projects/{project_id}/services", params={"permissionTarget": "user"}
        )
        return [s for s in body or [] if isinstance(s, dict)]


class ProjectSecrets:
    """``{GITLAB: {…}, VAULT: {…}, …}``; shown only through :meth:`reveal`."""

    def __init__(self, groups: Json) -> None:
        self._groups = groups

    @property
    def groups(self) -> builtins.list[str]:
        return sorted(self._groups)

    def reveal(self) -> Json:
        return self._groups

    def __repr__(self) -> str:
        return f"ProjectSecrets(groups={self.groups!r})"


class _Members(_Manager):
    """``/api/v1/projects/:id/members`` (§2.2). Membership is only propagated to GitLab and
    Keycloak on the next reprovisioning: callers replay hooks after a change."""

    async def list(self, project_id: str) -> builtins.list[Member]:
        body = await self.console.call("GET", f"/api/v1/projects/{project_id}/members")
        return [Member.parse(m) for m in body or []]

    async def add(self, project_id: str, email: str) -> builtins.list[Member]:
        body = await self.console.call("POST", f"/api/v1/projects/{project_id}/members", json={"email": email})
        return [Member.parse(m) for m in body or []]

    async def set_roles(self, project_id: str, user_id: str, role_ids: builtins.list[str]) -> builtins.list[Member]:
        """PATCH replaces the member's ``roleIds``."""
        body = await self.console.call(
            "PATCH", f"/api/v1/projects/{project_id}/members", json=[{"userId": user_id, "roles": role_ids}]
        )
        return [Member.parse(m) for m in body or []]

    async def remove(self, project_id: str, user_id: str) -> builtins.list[Member]:
        """Both backends answer 200 with the list (the contract says 204): read either."""
        body = await self.console.call("DELETE", f"/api/v1/projects/{project_id}/members/{user_id}")
        return [Member.parse(m) for m in body or []]


class _Roles(_Manager):
    async def list(self, project_id: str) -> builtins.list[Role]:
        body = await self.console.call("GET", f"/api/v1/projects/{project_id}/roles")
        return [Role.parse(r) for r in body or []]


class _Repositories(_Manager):
    """v2 ``/api/v2/projects/:id/repositories`` (9.24+, writes human-only) or v1 ``/api/v1/repositories``."""

    async def _v2(self) -> bool:
        return await self.console.version() >= REPOSITORIES_V2

    async def _write_v2(self) -> bool:
        return await self._v2() and self.console.token.kind == "pat"

    async def list(self, project_id: str) -> builtins.list[Repository]:
        if await self._v2():
            body = await self.console.call("GET", f"/api/v2/projects/{project_id}/repositories")
        else:
            body = await self.console.call("GET", "/api/v1/repositories", params={"projectId": project_id})
        return [Repository.parse(r) for r in body or []]

    async def create(self, project_id: str, spec: RepositorySpec) -> Repository:
        """Synchronous (§3.2); a 422 means the row is kept and a replay is needed."""
        timeout = self.console.write_timeout
        if await self._write_v2():
            return Repository.parse(
                await self.console.call(
                    "POST", f"/api/v2/projects/{project_id}/repositories", json=spec.body(), timeout=timeout
                )
            )
        body = {**spec.body(), "projectId": project_id}
        return Repository.parse(await self._v1("POST", "/api/v1/repositories", json=body, timeout=timeout))

    async def update(self, project_id: str, repository_id: str, **fields: Any) -> Repository:
        timeout = self.console.write_timeout
        if await self._write_v2():
            path = f"/api/v2/projects/{project_id}/repositories/{repository_id}"
            return Repository.parse(await self.console.call("PUT", path, json=fields, timeout=timeout))
        path = f"/api/v1/repositories/{repository_id}"
        return Repository.parse(await self._v1("PUT", path, json=fields, timeout=timeout))

    async def delete(self, project_id: str, repository_id: str) -> None:
        timeout = self.console.write_timeout
        if await self._write_v2():
            await self.console.call(
                "DELETE", f"/api/v2/projects/{project_id}/repositories/{repository_id}", timeout=timeout
            )
            return
        await self._v1("DELETE", f"/api/v1/repositories/{repository_id}", timeout=timeout)

    async def sync(self, project_id: str, repository_id: str, branch: str | None = None) -> None:
        """204 = the ``mirror`` pipeline was created, not that the mirror is done (§3.2)."""
        body: Json = {"syncAllBranches": True} if branch is None else {"syncAllBranches": False, "branchName": branch}
        if await self._write_v2():
            await self.console.call(
                "POST", f"/api/v2/projects/{project_id}/repositories/{repository_id}/sync", json=body
            )
            return
        await self._v1("POST", f"/api/v1/repositories/{repository_id}/sync", json=body)

    async def _v1(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return await self.console.call(method, path, **kwargs)
        except ConsoleNotFound as err:
            # The route is gone (a console past 9.24 without the legacy routes): only a PAT helps.
            if err.reason == "not_found" and err.console_message.startswith("Route "):
                raise ConsoleForbidden("pat_required", 404, err.console_message) from None
            raise


class _Environments(_Manager):
    """v2 ``/api/v2/projects/:id/environments`` (9.20+) or v1 ``/api/v1/environments`` (§2.6)."""

    async def _v2(self) -> bool:
        return await self.console.version() >= ENVIRONMENTS_V2

    async def list(self, project_id: str) -> builtins.list[Environment]:
        if await self._v2():
            body = await self.console.call("GET", f"/api/v2/projects/{project_id}/environments")
        else:
            body = await self.console.call("GET", "/api/v1/environments", params={"projectId": project_id})
        return [Environment.parse(e) for e in body or []]

    async def create(
        self,
        project_id: str,
        name: str,
        stage_id: str,
        cluster_id: str,
        *,
        cpu: float = 0,
        gpu: float = 0,
        memory: float = 0,
        autosync: bool = True,
    ) -> Environment:
        body: Json = {
            "name": name,
            "stageId": stage_id,
            "clusterId": cluster_id,
            "cpu": cpu,
            "gpu": gpu,
            "memory": memory,
            "autosync": autosync,
        }
        timeout = self.console.write_timeout
        if await self._v2():
            path = f"/api/v2/projects/{project_id}/environments"
            return Environment.parse(await self.console.call("POST", path, json=body, timeout=timeout))
        body["projectId"] = project_id
        return Environment.parse(await self.console.call("POST", "/api/v1/environments", json=body, timeout=timeout))

    async def update(
        self, project_id: str, environment_id: str, *, cpu: float, gpu: float, memory: float, autosync: bool
    ) -> Environment:
        """``PUT`` takes all four fields (§2.6); the quotas are checked again."""
        body: Json = {"cpu": cpu, "gpu": gpu, "memory": memory, "autosync": autosync}
        if await self._v2():
            path = f"/api/v2/projects/{project_id}/environments/{environment_id}"
        else:
            path = f"/api/v1/environments/{environment_id}"
        return Environment.parse(await self.console.call("PUT", path, json=body, timeout=self.console.write_timeout))

    async def delete(self, project_id: str, environment_id: str) -> None:
        timeout = self.console.write_timeout
        if await self._v2():
            path = f"/api/v2/projects/{project_id}/environments/{environment_id}"
        else:
            path = f"/api/v1/environments/{environment_id}"
        await self.console.call("DELETE", path, timeout=timeout)


class _Deployments(_Manager):
    async def list(self, project_id: str) -> builtins.list[Deployment]:
        """``GET /api/v1/projects/:id/deployments`` (ListDeployments, §2.8)."""
        body = await self.console.call("GET", f"/api/v1/projects/{project_id}/deployments")
        return [Deployment.parse(d) for d in body or []]


class _Logs(_Manager):
    async def last(self, project_id: str, action: str | None = None) -> Json | None:
        """The project's newest log (of ``action`` when given), full when the caller may read it.

        ``clean=false`` needs admin ``ListSystem``; a person is forced ``clean=true`` (§2.10).
        """
        params = {"offset": "0", "limit": "5" if action else "1", "projectId": project_id}
        if self.console.token.kind == "admin":
            params["clean"] = "false"
        body = await self.console.call("GET", "/api/v1/logs", params=params)
        logs = [log for log in (body or {}).get("logs") or [] if isinstance(log, dict)]
        if action:
            logs = [log for log in logs if log.get("action") == action] or logs
        return logs[0] if logs else None


class _Tokens(_Manager):
    """A person's PATs (``/api/v1/user/tokens``, human callers only)."""

    async def list(self) -> builtins.list[TokenInfo]:
        return [TokenInfo.parse(t) for t in await self.console.call("GET", "/api/v1/user/tokens") or []]

    async def current(self) -> TokenInfo:
        """Which token this call was made with, and whose (no whoami exists, §1.5).

        The console writes ``lastUse`` on each successful use, this call's included: the token
        used most recently is the caller's.
        """
        tokens = await self.list()
        if not tokens:
            raise ConsoleError("token_unknown")
        return max(tokens, key=lambda t: t.last_use or "")

    async def check(self) -> TokenInfo:
        """The PAT works; raises ConsoleAuthError (expired, revoked…) or ConsoleForbidden."""
        return await self.current()


class _Users(_Manager):
    async def by_email(self, email: str) -> Person | None:
        """No exact lookup exists: ``matching?letters=`` then the exact, case-insensitive match (§2.9)."""
        body = await self.console.call("GET", "/api/v1/users/matching", params={"letters": email})
        for user in body or []:
            if isinstance(user, dict) and str(user.get("email", "")).lower() == email.lower():
                return Person.parse(user)
        return None


__all__ = ["TOKEN_HEADER", "Console", "ProjectSecrets", "Token", "parse_version"]
