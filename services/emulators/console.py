"""Cloud π Native console emulator: the HTTP surface the bot drives, as ``console-api.md`` tells it.

- Two backends behind one proxy (§0): ``/api/v1/projects…`` and ``/api/v2/…`` answer like NestJS
  (from 9.23; the legacy server before), the rest like the legacy Fastify server. Each has its own
  error bodies (§0.1); the legacy server answers a refused ``x-dso-token`` with HTTP **200**
  ``{"status": 401, "body": {"message": …}}``.
- Auth: ``x-dso-token`` = sha256 lookup of a PAT or an admin token (§1.2); expired, revoked and
  inactive tokens are refused with each backend's message.
- Project routes go through the NestJS ``ProjectGuard`` order (§2): 401 → 404 ``Projet
  introuvable`` → 403 user type → 403 status → 403 lock → 403 permissions.
- Writes are synchronous: every plugin runs on ``project.upsert`` and one log per write records
  per-plugin results (§3). Plugins are recorded steps; ``State.plugins[name]`` takes a hook that
  provisions another emulator.
- ``State.faults``: the shared fault switch (down, latency, per-route failures).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from services.emulators.base import FaultMiddleware
from services.emulators.console_state import (
    A_LIST_SYSTEM,
    A_MANAGE,
    A_MANAGE_PROJECTS,
    PLUGINS,
    RESERVED_REPOSITORIES,
    WRITE_STATUSES,
    Caller,
    EnvironmentRow,
    MemberRow,
    ProjectRow,
    ProvisionEvent,
    RepositoryRow,
    State,
    now_iso,
    sha256,
)

Json = dict[str, Any]
_PROJECT_NAME = re.compile(r"^[a-z0-9]+$")
_REPO_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*[a-z0-9]$")
_DEPLOYMENT_NAME = re.compile(r"^[a-z0-9]{2,11}$")  # schemas/deployment.ts: longestEnvironmentName = 11
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_PHRASES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 422: "Unprocessable Entity"}
_BUDGETS = ("hprodCpu", "hprodGpu", "hprodMemory", "prodCpu", "prodGpu", "prodMemory")


class ConsoleHttpError(Exception):
    def __init__(self, status: int, body: Any, http_status: int | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.http_status = http_status if http_status is not None else status


def nest_error(status: int, message: str | None = None) -> ConsoleHttpError:
    """NestJS ``HttpException`` bodies; ``ForbiddenException()`` without a message has no ``error``."""
    if status >= 500:
        return ConsoleHttpError(status, {"statusCode": status, "message": "Internal server error"})
    if message is None:
        return ConsoleHttpError(status, {"message": _PHRASES.get(status, "Error"), "statusCode": status})
    return ConsoleHttpError(status, {"message": message, "error": _PHRASES.get(status, "Error"), "statusCode": status})


def nest_zod(field_errors: dict[str, list[str]]) -> ConsoleHttpError:
    """``ZodValidationPipe`` (…/infrastructure/pipe/zod-validation.pipe.ts): no ``message`` key."""
    return ConsoleHttpError(400, {"formErrors": [], "fieldErrors": field_errors})


def legacy_error(status: int, message: str | None = None) -> ConsoleHttpError:
    """``cloud-pi-native/console:apps/server/src/utils/errors.ts``: ``{"message"}``."""
    if status >= 500:
        return ConsoleHttpError(status, {"status": status, "error": message or "Internal error", "stack": "Error"})
    return ConsoleHttpError(status, {"message": message or _PHRASES.get(status, "Error")})


def legacy_zod(field_errors: dict[str, list[str]]) -> ConsoleHttpError:
    """ts-rest request validation on the legacy server: a ZodError under ``bodyErrors``."""
    issues = [{"code": "custom", "path": [name], "message": m} for name, ms in field_errors.items() for m in ms]
    return ConsoleHttpError(
        400,
        {
            "pathParameterErrors": None,
            "headerErrors": None,
            "queryParameterErrors": None,
            "bodyErrors": {"issues": issues, "name": "ZodError"},
        },
    )


def error_body(status: int) -> dict[str, Any]:
    """Bodies of the fault switch (the proxy in front answers in Nest's shape)."""
    body: dict[str, Any] = nest_error(status, _PHRASES.get(status, "Service Unavailable")).body
    return body


class _Api:
    def __init__(self, state: State) -> None:
        self.state = state

    # --- auth (§1.2) -----------------------------------------------------------------------------

    def caller(self, request: Request, nest: bool) -> Caller:
        raw = request.headers.get("x-dso-token")
        if not raw:  # legacy: the Keycloak adapter's 401 (console-api.md §1.2, UNVERIFIED for v3)
            raise nest_error(401, "Not authenticated") if nest else legacy_error(401, "Unauthorized")
        with self.state.lock:
            token = self.state.tokens.get(sha256(raw))
            reason = None
            if token is None:
                reason = "Not authenticated"
            elif nest:
                if token.status == "revoked" or (token.status == "inactive" and not self.state.quirks):
                    reason = "Token revoked" if token.status == "revoked" else "Not active"
                elif token.expiration is not None and token.expiration < datetime.now(UTC):
                    reason = "Token expired: " + format_datetime(token.expiration)
            elif token.status != "active":
                reason = "Not active"
            elif token.expiration is not None and token.expiration < datetime.now(UTC):
                reason = "Expired"
            if reason is not None or token is None:
                if nest:
                    raise nest_error(401, reason)
                # The legacy server throws a plain object that ts-rest sends as an HTTP 200 payload
                # (cloud-pi-native/console:apps/server/src/utils/controller.ts authUser).
                raise ConsoleHttpError(401, {"status": 401, "body": {"message": reason}}, http_status=200)
            user = self.state.users[token.owner_id]
            stamp = now_iso()
            token.last_use = stamp
            user.last_login = stamp
            self.state.requests.append((request.method, request.url.path, token.kind))
            return Caller(user, token.kind, self.state.admin_perms_of(user, token))

    # --- the project guard (§2) ----------------------------------------------------------------

    def guard(
        self,
        request: Request,
        rule: str,
        *,
        write: bool = False,
        lock: bool = False,
        human: bool = False,
        read_archived: bool = False,
        nest: bool | None = None,
        project_id: str | None = None,
    ) -> tuple[Caller, ProjectRow]:
        nest = self.state.nest_projects if nest is None else nest
        err = nest_error if nest else legacy_error
        caller = self.caller(request, nest)
        key = project_id if project_id is not None else request.path_params["projectId"]
        with self.state.lock:
            project = self.state.projects.get(key)
            if project is None and nest:  # NestJS also takes a slug (project-loader.service.ts)
                project = self.state.project_by_slug(key)
        if project is None or (project.status == "archived" and not write and not read_archived):
            raise err(404, "Projet introuvable")
        if human and caller.user.type != "human":
            raise nest_error(403, "Cannot find requestor in request context")
        if write and project.status not in WRITE_STATUSES:
            raise err(403, "Statut de projet invalide" if nest else "Le projet est archivé")
        if lock and project.locked:
            raise err(403, "État de verrouillage invalide" if nest else "Le projet est verrouillé")
        if not self.state.allowed(caller, rule, project):
            raise err(403, "Permissions insuffisantes pour ce projet" if nest else None)
        return caller, project

    # --- views ---------------------------------------------------------------------------------

    def project_view(self, project: ProjectRow) -> Json:
        users = self.state.users
        owner = users.get(project.owner_id)
        prefix = f"/{project.slug}"
        return {
            "id": project.id,
            "name": project.name,
            "slug": project.slug,
            "description": project.description,
            "status": project.status,
            "locked": project.locked,
            "limitless": project.limitless,
            **{k: project.budgets.get(k, 0) for k in _BUDGETS},
            "everyonePerms": str(project.everyone_perms),
            "ownerId": project.owner_id,
            "owner": {k: v for k, v in owner.view().items() if k != "adminRoleIds"} if owner else None,
            "members": [self.member_view(m) for m in project.members if m.user_id in users],
            "roles": [
                {
                    "id": r.id,
                    "name": r.name,
                    "permissions": str(r.permissions),
                    "position": r.position,
                    "projectId": project.id,
                    "oidcGroup": r.oidc_group.removeprefix(prefix),
                    "type": r.type,
                }
                for r in project.roles
            ],
            "clusterIds": list(project.cluster_ids),
            "lastSuccessProvisionningVersion": project.last_success_version,
            "createdAt": project.created_at,
            "updatedAt": project.updated_at,
        }

    def member_view(self, member: MemberRow) -> Json:
        user = self.state.users[member.user_id]
        view: Json = {
            "userId": user.id,
            "email": user.email,
            "firstName": user.first_name,
            "lastName": user.last_name,
            "roleIds": list(member.role_ids),
        }
        if not self.state.nest_projects:  # legacy ≤ 9.22 added these (§2.2)
            view.update(type=user.type, createdAt=user.created_at, updatedAt=user.created_at, lastLogin=user.last_login)
        return view

    def members_view(self, project: ProjectRow) -> list[Json]:
        return [self.member_view(m) for m in project.members]

    # --- projects (§2.1) -----------------------------------------------------------------------

    async def list_projects(self, request: Request) -> Response:
        nest = self.state.nest_projects
        caller = self.caller(request, nest)
        q = request.query_params
        scope = q.get("filter", "member")
        if scope == "all" and not caller.admin_perms & A_MANAGE:
            raise (nest_error if nest else legacy_error)(
                403, "Seuls les admins avec les droits de visionnage des projets peuvent utiliser le filtre 'all'"
            )
        with self.state.lock:
            found = []
            for project in self.state.projects.values():
                uid = caller.user.id
                if scope == "owned" and project.owner_id != uid:
                    continue
                if scope == "member" and project.owner_id != uid and all(m.user_id != uid for m in project.members):
                    continue
                if q.get("name") is not None and project.name != q["name"]:
                    continue
                if q.get("id") and project.id != q["id"]:
                    continue
                if q.get("status") and project.status != q["status"]:
                    continue
                if q.get("statusIn") and project.status not in q["statusIn"].split(","):
                    continue
                if q.get("statusNotIn") and project.status in q["statusNotIn"].split(","):
                    continue
                if q.get("locked") in ("true", "false") and project.locked != (q["locked"] == "true"):
                    continue
                if q.get("search"):
                    owner = self.state.users.get(project.owner_id)
                    if q["search"] not in project.name and (owner is None or q["search"] not in owner.email):
                        continue
                found.append(self.project_view(project))
        return JSONResponse(found)

    async def create_project(self, request: Request) -> Response:
        nest = self.state.nest_projects
        caller = self.caller(request, nest)
        if not caller.admin_perms & (A_MANAGE_PROJECTS | A_MANAGE):
            raise (nest_error if nest else legacy_error)(403, "Permissions administrateur insuffisantes")
        if not nest and caller.user.type != "human":
            raise legacy_error(401, "Cannot find requestor in database")
        body = await _json(request, nest)
        errors: dict[str, list[str]] = {}
        name = body.get("name")
        if not isinstance(name, str) or not (2 <= len(name) <= 20) or not _PROJECT_NAME.match(name):
            errors["name"] = ["Le nom du projet ne doit contenir que des minuscules et des chiffres (2 à 20)"]
        if not isinstance(body.get("limitless"), bool):
            errors["limitless"] = ["Required"]
        for key in _BUDGETS:
            value = body.get(key)
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                errors[key] = ["Required"]
        description = body.get("description", "")
        if not isinstance(description, str) or len(description) > 280:
            errors["description"] = ["String must contain at most 280 character(s)"]
        if errors:
            raise (nest_zod if nest else legacy_zod)(errors)
        with self.state.lock:
            slug = self.state.generate_slug(str(name))
            project = ProjectRow(
                str(uuid.uuid4()),
                str(name),
                slug,
                str(description),
                caller.user.id,
                limitless=bool(body["limitless"]),
                budgets={k: float(body[k]) for k in _BUDGETS},
            )
            project.roles = self.state.system_roles(slug)
            self.state.projects[project.id] = project
            snapshot = self.project_view(project)  # the 201 body: taken before provisioning (§3.1)
        await self._provision_delay()
        log = await asyncio.to_thread(self.state.provision, "project.upsert", project, "Create Project", caller.user.id)
        self._settle(project, log.data["failed"])
        if nest:
            return JSONResponse(snapshot, status_code=201)
        if project.status == "failed":
            raise legacy_error(422, "Echec des services à la création du projet")
        return JSONResponse(self.project_view(project), status_code=201)

    async def _upsert(
        self, caller: Caller, project: ProjectRow, action: str, nest: bool, status: int, failure: str
    ) -> None:
        """``project.upsert`` after a row changed; a plugin KO answers ``status`` with ``failure``."""
        log = await asyncio.to_thread(self.state.provision, "project.upsert", project, action, caller.user.id)
        self._settle(project, log.data["failed"])
        if log.data["failed"]:
            raise (nest_error if nest else legacy_error)(status, failure)

    async def _provision_delay(self) -> None:
        if self.state.provision_delay:
            await asyncio.sleep(self.state.provision_delay)

    def _settle(self, project: ProjectRow, failed: list[str]) -> None:
        with self.state.lock:
            project.updated_at = now_iso()
            if failed:
                project.status = "failed" if self.state.nest_projects else "warning" if len(failed) < 2 else "failed"
            else:
                project.status = "created"
                project.last_success_version = self.state.version

    async def get_project(self, request: Request) -> Response:
        _, project = self.guard(request, "Access")
        return JSONResponse(self.project_view(project))

    async def update_project(self, request: Request) -> Response:
        caller, project = self.guard(request, "Manage", write=True)
        nest = self.state.nest_projects
        body = await _json(request, nest)
        is_admin = bool(caller.admin_perms & A_MANAGE)
        if project.locked and body.get("locked") is not False:
            raise (nest_error if nest else legacy_error)(403, "Veuillez déverrouiller le projet pour le mettre à jour")
        with self.state.lock:
            if "locked" in body and is_admin:  # silently dropped for the others
                project.locked = bool(body["locked"])
            if "description" in body:
                project.description = str(body["description"])
            if "everyonePerms" in body:
                project.everyone_perms = int(str(body["everyonePerms"]))
            if "ownerId" in body and body["ownerId"] != project.owner_id:
                # console:apps/server-nestjs/src/modules/project/project.service.ts
                # updateProjectOwnerIfNeeded: a member first, then a human; the old owner stays a member.
                new_id = str(body["ownerId"])
                if all(m.user_id != new_id for m in project.members):
                    raise nest_error(400, "Le nouveau propriétaire doit faire partie des membres actuels du projet")
                new = self.state.users.get(new_id)
                if new is None or new.type != "human":
                    raise nest_error(400, "Seuls les comptes humains peuvent être propriétaire de projets")
                project.members = [m for m in project.members if m.user_id != new.id]
                if all(m.user_id != project.owner_id for m in project.members):
                    project.members.append(MemberRow(project.owner_id))
                project.owner_id = new.id
        log = await asyncio.to_thread(self.state.provision, "project.upsert", project, "Update Project", caller.user.id)
        self._settle(project, log.data["failed"])
        return JSONResponse(self.project_view(project))

    async def delete_project(self, request: Request) -> Response:
        caller, project = self.guard(request, "Manage", read_archived=True)
        if project.status == "archived":
            raise nest_error(404, "Projet introuvable")
        stamp = int(time.time() * 1000)
        with self.state.lock:
            # The listeners clean what is named after the old slug: they get the pre-archive rows.
            before = ProvisionEvent(
                "project.delete",
                dataclasses.replace(project, members=list(project.members), roles=list(project.roles)),
                [r for r in self.state.repositories.values() if r.project_id == project.id],
                [e for e in self.state.environments.values() if e.project_id == project.id],
            )
            project.name = f"{project.name}_{stamp}_archived"
            project.slug = f"{project.slug}_{stamp}_archived"
            project.status = "archived"
            project.locked = True
            for table in (self.state.repositories, self.state.environments, self.state.deployments):
                for key in [k for k, row in table.items() if _project_of(row) == project.id]:
                    del table[key]
            project.cluster_ids = []
        log = await asyncio.to_thread(
            self.state.provision,
            "project.delete",
            project,
            "Delete all project resources",
            caller.user.id,
            snapshot=before,
        )
        if log.data["failed"]:
            with self.state.lock:
                project.status = "failed"
        return Response(status_code=204)

    async def replay_hooks(self, request: Request) -> Response:
        caller, project = self.guard(request, "ReplayHooks", write=True, lock=True)
        await self._provision_delay()
        log = await asyncio.to_thread(
            self.state.provision, "project.upsert", project, "Replay hooks for Project", caller.user.id
        )
        self._settle(project, log.data["failed"])
        if log.data["failed"] and not self.state.nest_projects:
            raise legacy_error(422, "Echec des services au reprovisionnement du projet")
        return Response(status_code=204)

    async def project_secrets(self, request: Request) -> Response:
        _, project = self.guard(request, "SeeSecrets")
        if self.state.secrets_of is not None:
            return JSONResponse(await asyncio.to_thread(self.state.secrets_of, project))
        return JSONResponse(
            {
                "GITLAB": {
                    "PROJECT_SLUG": project.slug,
                    "GIT_MIRROR_PROJECT_ID": "1",
                    "GIT_MIRROR_TOKEN": "glpat-emulated",
                },
                "VAULT": {".spec.mount": project.slug, ".spec.vaultAuthRef": "vault-auth"},
            }
        )

    async def project_services(self, request: Request) -> Response:
        caller, project = self.guard(request, "ListEnvironments")
        if request.query_params.get("permissionTarget") == "admin" and not caller.admin_perms & A_MANAGE:
            raise nest_error(403)
        return JSONResponse(
            [
                {
                    "name": name,
                    "title": title,
                    "urls": [{"to": f"https://{name}.example/{project.slug}", "name": title}],
                    "manifest": {},
                }
                for name, title in PLUGINS.items()
            ]
        )

    # --- members (§2.2) ------------------------------------------------------------------------

    async def list_members(self, request: Request) -> Response:
        _, project = self.guard(request, "ListMembers")
        return JSONResponse(self.members_view(project))

    async def add_member(self, request: Request) -> Response:
        _, project = self.guard(request, "ManageMembers", write=True, lock=True)
        nest = self.state.nest_projects
        body = await _json(request, nest)
        with self.state.lock:
            user = None
            if isinstance(body.get("userId"), str):
                user = self.state.users.get(body["userId"])
            elif isinstance(body.get("email"), str):
                user = self.state.user_by_email(body["email"])
            else:
                raise (nest_zod if nest else legacy_zod)({"email": ["Required"]})
            if user is None or user.type != "human":
                raise (nest_error if nest else legacy_error)(404, "Utilisateur introuvable")
            if user.id == project.owner_id:
                raise (nest_error if nest else legacy_error)(400, "Le owner ne peut pas être ajouté à cette liste")
            if all(m.user_id != user.id for m in project.members):
                project.members.append(MemberRow(user.id))
            return JSONResponse(self.members_view(project), status_code=201)

    async def patch_members(self, request: Request) -> Response:
        _, project = self.guard(request, "ManageMembers", write=True, lock=True)
        body = await _json(request, self.state.nest_projects, expect=list)
        with self.state.lock:
            for item in body:
                if not isinstance(item, dict) or not isinstance(item.get("roles"), list):
                    raise nest_zod({"roles": ["Required"]})
                member = next((m for m in project.members if m.user_id == item.get("userId")), None)
                if member is None:
                    if str(item.get("userId")) not in self.state.users:
                        raise nest_error(404, "Utilisateur introuvable")
                    member = MemberRow(str(item["userId"]))
                    project.members.append(member)
                member.role_ids = [str(r) for r in item["roles"]]
            return JSONResponse(self.members_view(project))

    async def remove_member(self, request: Request) -> Response:
        _, project = self.guard(request, "ManageMembers", write=True, lock=True)
        user_id = request.path_params["userId"]
        with self.state.lock:
            project.members = [m for m in project.members if m.user_id != user_id]
            return JSONResponse(self.members_view(project))  # 200 with the list (§2.2)

    async def list_roles(self, request: Request) -> Response:
        _, project = self.guard(request, "ListRoles")
        nest = self.state.nest_projects
        prefix = f"/{project.slug}"
        roles = []
        for role in sorted(project.roles, key=lambda r: r.position):
            view: Json = {
                "id": role.id,
                "name": role.name,
                "oidcGroup": role.oidc_group.removeprefix(prefix),
                "type": role.type,
                "permissions": str(role.permissions),
                "userCount": len(project.members),
            }
            if not nest:
                view.update(position=role.position, projectId=project.id)
            roles.append(view)
        return JSONResponse(roles)

    # --- deployments (§2.8: NestJS only, v9.18+) ----------------------------------------------
    # cloud-pi-native/console:packages/shared/src/schemas/deployment.ts (CreateDeploymentSchema)
    # and apps/server-nestjs/src/modules/deployment/deployment.{controller,service}.ts.

    async def list_deployments(self, request: Request) -> Response:
        _, project = self.guard(request, "ListDeployments", nest=True)
        with self.state.lock:
            rows = [d for d in self.state.deployments.values() if d["projectId"] == project.id]
        return JSONResponse(sorted(rows, key=lambda d: str(d["createdAt"])))

    async def create_deployment(self, request: Request) -> Response:
        """No status or lock check (§2.8); the ArgoCD reconciliation is fire-and-forget."""
        _, project = self.guard(request, "ManageDeployments", nest=True, read_archived=True)
        body = await _json(request, True)
        errors: dict[str, list[str]] = {}
        name = body.get("name")
        if not isinstance(name, str) or not _DEPLOYMENT_NAME.match(name):
            errors["name"] = ["Invalid"]
        for key in ("projectId", "environmentId"):
            if not isinstance(body.get(key), str) or not _UUID.match(body[key]):
                errors[key] = ["Invalid uuid"]
        if not isinstance(body.get("autosync"), bool):
            errors["autosync"] = ["Required"]
        sources = body.get("deploymentSources")
        if not isinstance(sources, list) or not sources:
            errors["deploymentSources"] = ["Au moins une source de déploiement est requise"]
        elif not all(
            isinstance(s, dict)
            and s.get("type") in ("git", "oci")
            and isinstance(s.get("repositoryId"), str)
            and _UUID.match(s["repositoryId"])
            for s in sources
        ):
            errors["deploymentSources"] = ["Invalid"]
        if errors:
            raise nest_zod(errors)
        with self.state.lock:
            env = self.state.environments.get(body["environmentId"])
            repos = [self.state.repositories.get(s["repositoryId"]) for s in sources]
            if env is None or any(r is None for r in repos):
                raise nest_error(500)  # a Prisma foreign-key error, not a 4xx (code-derived)
            deployment_id, stamp = str(uuid.uuid4()), now_iso()
            row: Json = {
                "id": deployment_id,
                "name": name,
                "projectId": project.id,
                "environmentId": env.id,
                "autosync": body["autosync"],
                "createdAt": stamp,
                "updatedAt": stamp,
                "environment": env.view(),
                "deploymentSources": [
                    {
                        "id": str(uuid.uuid4()),
                        "deploymentId": deployment_id,
                        "repositoryId": repo.id,
                        "type": source["type"],
                        "targetRevision": str(source.get("targetRevision") or ""),
                        "path": str(source.get("path") or ""),
                        "helmValuesFiles": str(source.get("helmValuesFiles") or ""),
                        "createdAt": stamp,
                        "updatedAt": stamp,
                        "repository": repo.view(),
                        "valueSources": [],
                    }
                    for source, repo in zip(sources, repos, strict=True)
                    if repo is not None
                ],
            }
            self.state.deployments[deployment_id] = row
        return JSONResponse(row, status_code=201)

    async def delete_deployment(self, request: Request) -> Response:
        """PUT/DELETE do not check that the deployment belongs to ``:projectId``; unknown id → 500 (§2.8)."""
        self.guard(request, "ManageDeployments", nest=True, read_archived=True)
        with self.state.lock:
            if self.state.deployments.pop(request.path_params["deploymentId"], None) is None:
                raise nest_error(500)
        return Response(status_code=204)

    # --- repositories (§2.4 v2, §2.5 v1) -------------------------------------------------------

    def _require_v2_repositories(self, request: Request) -> None:
        if not self.state.at_least("9.24.0"):
            raise nest_error(404, f"Cannot {request.method} {request.url.path}")

    def _require_v1_repositories(self, request: Request) -> None:
        if not self.state.v1_repositories:
            # fastify's default 404 for an unknown route.
            raise ConsoleHttpError(
                404,
                {
                    "message": f"Route {request.method}:{request.url.path} not found",
                    "error": "Not Found",
                    "statusCode": 404,
                },
            )

    async def list_repositories_v2(self, request: Request) -> Response:
        self._require_v2_repositories(request)
        _, project = self.guard(request, "ListRepositories", nest=True)
        return JSONResponse(self._repositories_of(project.id))

    def _repositories_of(self, project_id: str) -> list[Json]:
        with self.state.lock:
            rows = [r for r in self.state.repositories.values() if r.project_id == project_id]
        return [r.view() for r in sorted(rows, key=lambda r: r.created_at)]

    def _validate_repository(self, body: Json, nest: bool, v2: bool) -> None:
        errors: dict[str, list[str]] = {}
        name = body.get("internalRepoName")
        if not isinstance(name, str) or not (2 <= len(name) <= 20) or not _REPO_NAME.match(name):
            errors["internalRepoName"] = ["Nom de dépôt interne invalide"]
        elif name in RESERVED_REPOSITORIES:
            errors["internalRepoName"] = [f"Le nom {name} est réservé"]
        url = body.get("externalRepoUrl", "")
        if url not in ("", None) and (
            not isinstance(url, str) or not re.match(r"^https://.*\.git$", url) or not urlsplit(url).netloc
        ):
            errors["externalRepoUrl"] = ["L'adresse doit commencer par https et se terminer par .git"]
        for key in ("isInfra", "isPrivate"):
            if not isinstance(body.get(key), bool):
                errors[key] = ["Required"]
        if v2 and body.get("isPrivate") is True and not (body.get("externalUserName") or body.get("externalToken")):
            errors["externalUserName"] = [
                "Si le dépôt est privé, vous devez renseigner au moins le nom d'utilisateur ou le token"
            ]
        if errors:
            raise (nest_zod if nest else legacy_zod)(errors)

    async def _create_repository(
        self, caller: Caller, project: ProjectRow, body: Json, nest: bool, v2: bool
    ) -> Response:
        err = nest_error if nest else legacy_error
        name = str(body["internalRepoName"])
        with self.state.lock:
            if any(r.project_id == project.id and r.internal_name == name for r in self.state.repositories.values()):
                raise err(400, f"Le nom du dépôt interne {name} existe déjà en base pour ce projet")
            private = bool(body["isPrivate"])
            row = RepositoryRow(
                str(uuid.uuid4()),
                project.id,
                name,
                str(body.get("externalRepoUrl") or ""),
                bool(body["isInfra"]),
                private,
                external_user=str(body.get("externalUserName") or "") if private else "",
                deploy_revision=str(body.get("deployRevision") or ("HEAD" if v2 else "")),
                deploy_path=str(body.get("deployPath") or ("." if v2 else "")),
                helm_values_files=str(body.get("helmValuesFiles") or ""),
            )
            self.state.repositories[row.id] = row
        log = await asyncio.to_thread(
            self.state.provision, "project.upsert", project, "Create Repository", caller.user.id, {"repository": name}
        )
        self._settle(project, log.data["failed"])
        if log.data["failed"]:
            raise err(422, "Echec des services lors de la création du dépôt")  # the row is kept (§3.2)
        if row.external_url:
            # A full sync follows, awaited; its failure is only logged (…/repository/repository.service.ts).
            await asyncio.to_thread(
                self.state.provision,
                "repository.sync",
                project,
                "Sync Repository",
                caller.user.id,
                {"repository": name, "syncAllBranches": True},
            )
            self._record_sync(caller, project, row, None)
        return JSONResponse(row.view(), status_code=201)

    def _record_sync(self, caller: Caller, project: ProjectRow, row: RepositoryRow, branch: str | None) -> None:
        with self.state.lock:
            self.state.syncs.append(
                {"project": project.slug, "repository": row.internal_name, "branch": branch, "by": caller.user.email}
            )

    async def create_repository_v2(self, request: Request) -> Response:
        self._require_v2_repositories(request)
        caller, project = self.guard(request, "ManageRepositories", write=True, lock=True, human=True, nest=True)
        body = await _json(request, True)
        self._validate_repository(body, True, True)
        return await self._create_repository(caller, project, body, True, True)

    def _repository(self, request: Request, project: ProjectRow | None, nest: bool) -> RepositoryRow:
        rid = request.path_params["repositoryId"]
        if nest and not _UUID.match(rid):
            raise nest_error(400, "Validation failed (uuid is expected)")
        with self.state.lock:
            row = self.state.repositories.get(rid)
        if row is None:
            raise nest_error(500) if nest else legacy_error(404, "Dépôt introuvable")
        if project is not None and row.project_id != project.id:
            raise nest_error(404, "Dépôt introuvable")
        return row

    async def update_repository_v2(self, request: Request) -> Response:
        self._require_v2_repositories(request)
        caller, project = self.guard(request, "ManageRepositories", write=True, lock=True, human=True, nest=True)
        row = self._repository(request, project, True)
        body = await _json(request, True)
        return await self._update_repository(caller, project, row, body, True)

    async def _update_repository(
        self, caller: Caller, project: ProjectRow, row: RepositoryRow, body: Json, nest: bool
    ) -> Response:
        with self.state.lock:
            if "externalRepoUrl" in body:
                row.external_url = str(body["externalRepoUrl"] or "")
            if "isPrivate" in body:
                row.is_private = bool(body["isPrivate"])
                if not row.is_private:
                    row.external_user = ""
            if "externalUserName" in body and row.is_private:
                row.external_user = str(body["externalUserName"] or "")
            for key, attr in (
                ("isInfra", "is_infra"),
                ("deployRevision", "deploy_revision"),
                ("deployPath", "deploy_path"),
            ):
                if key in body:
                    setattr(row, attr, body[key])
            row.updated_at = now_iso()
        await self._upsert(
            caller, project, "Update Repository", nest, 422, "Echec des services à la mise à jour du dépôt"
        )
        return JSONResponse(row.view())

    async def sync_repository_v2(self, request: Request) -> Response:
        self._require_v2_repositories(request)
        caller, project = self.guard(request, "ManageRepositories", write=True, lock=True, human=True, nest=True)
        row = self._repository(request, project, True)
        return await self._sync(caller, project, row, await _json(request, True), True)

    async def _sync(self, caller: Caller, project: ProjectRow, row: RepositoryRow, body: Json, nest: bool) -> Response:
        everything = body.get("syncAllBranches")
        branch = body.get("branchName")
        if not isinstance(everything, bool) or (not everything and (not isinstance(branch, str) or not branch)):
            raise (nest_zod if nest else legacy_zod)({"branchName": ["Required"]})
        log = await asyncio.to_thread(
            self.state.provision,
            "repository.sync",
            project,
            "Sync Repository",
            caller.user.id,
            # RepositorySyncEventPayload (…/events/app-events.service.ts)
            {"repository": row.internal_name, "syncAllBranches": everything, "branchName": branch},
        )
        if "gitlab" in log.data["failed"]:
            raise (nest_error if nest else legacy_error)(422, "Echec des services à la synchronisation du dépôt")
        self._record_sync(caller, project, row, None if everything else str(branch))
        return Response(status_code=204)

    async def delete_repository_v2(self, request: Request) -> Response:
        self._require_v2_repositories(request)
        caller, project = self.guard(request, "ManageRepositories", write=True, lock=True, human=True, nest=True)
        row = self._repository(request, project, True)
        return await self._delete_repository(caller, project, row, True)

    async def _delete_repository(self, caller: Caller, project: ProjectRow, row: RepositoryRow, nest: bool) -> Response:
        with self.state.lock:
            # DeploymentSource.repository has no onDelete: Cascade (prisma/schema/project.prisma).
            if any(
                row.id in {src["repositoryId"] for src in d["deploymentSources"]}
                for d in self.state.deployments.values()
            ):
                raise (nest_error if nest else legacy_error)(500)
            self.state.repositories.pop(row.id, None)
        await self._upsert(
            caller, project, "Delete Repository", nest, 422, "Echec des services à la suppression du dépôt"
        )
        return Response(status_code=204)

    def _legacy_project(self, request: Request, project_id: str, rule: str, write: bool) -> tuple[Caller, ProjectRow]:
        if not _UUID.match(project_id):
            raise legacy_zod({"projectId": ["Invalid uuid"]})
        return self.guard(request, rule, write=write, lock=write, nest=False, project_id=project_id)

    async def list_repositories_v1(self, request: Request) -> Response:
        self._require_v1_repositories(request)
        _, project = self._legacy_project(request, request.query_params.get("projectId", ""), "ListRepositories", False)
        return JSONResponse(self._repositories_of(project.id))

    async def create_repository_v1(self, request: Request) -> Response:
        self._require_v1_repositories(request)
        body = await _json(request, False)
        caller, project = self._legacy_project(request, str(body.get("projectId") or ""), "ManageRepositories", True)
        self._validate_repository(body, False, False)
        return await self._create_repository(caller, project, body, False, False)

    def _v1_repository(self, request: Request, rule: str) -> tuple[Caller, ProjectRow, RepositoryRow]:
        self._require_v1_repositories(request)
        caller = self.caller(request, False)
        row = self._repository(request, None, False)
        _, project = self._legacy_project(request, row.project_id, rule, True)
        return caller, project, row

    async def update_repository_v1(self, request: Request) -> Response:
        caller, project, row = self._v1_repository(request, "ManageRepositories")
        return await self._update_repository(caller, project, row, await _json(request, False), False)

    async def sync_repository_v1(self, request: Request) -> Response:
        caller, project, row = self._v1_repository(request, "ManageRepositories")
        return await self._sync(caller, project, row, await _json(request, False), False)

    async def delete_repository_v1(self, request: Request) -> Response:
        caller, project, row = self._v1_repository(request, "ManageRepositories")
        return await self._delete_repository(caller, project, row, False)

    # --- environments (§2.6) -------------------------------------------------------------------

    def _require_v2_environments(self, request: Request) -> None:
        if not self.state.at_least("9.20.0"):
            raise nest_error(404, f"Cannot {request.method} {request.url.path}")

    def _environments_of(self, project_id: str, with_stage: bool) -> list[Json]:
        stages = {s["id"]: s for s in self.state.stages}
        with self.state.lock:
            rows = [e for e in self.state.environments.values() if e.project_id == project_id]
        views = []
        for row in sorted(rows, key=lambda e: e.created_at):
            view = row.view()
            if with_stage and row.stage_id in stages:
                view["stage"] = {"id": row.stage_id, "name": stages[row.stage_id]["name"]}
            views.append(view)
        return views

    async def list_environments_v2(self, request: Request) -> Response:
        self._require_v2_environments(request)
        _, project = self.guard(request, "ListEnvironments", nest=True)
        return JSONResponse(self._environments_of(project.id, True))

    async def list_environments_v1(self, request: Request) -> Response:
        _, project = self._legacy_project(request, request.query_params.get("projectId", ""), "ListEnvironments", False)
        return JSONResponse(self._environments_of(project.id, False))

    async def _create_environment(self, caller: Caller, project: ProjectRow, body: Json, nest: bool) -> Response:
        errors: dict[str, list[str]] = {}
        name = body.get("name")
        if not isinstance(name, str) or not (2 <= len(name) <= 11) or not _PROJECT_NAME.match(name):
            errors["name"] = ["Nom d'environnement invalide"]
        for key in ("stageId", "clusterId"):
            if not isinstance(body.get(key), str) or not _UUID.match(body[key]):
                errors[key] = ["Invalid uuid"]
        for key in ("cpu", "gpu", "memory"):
            value = body.get(key)
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                errors[key] = ["Required"]
        if not isinstance(body.get("autosync"), bool):
            errors["autosync"] = ["Required"]
        if errors:
            raise (nest_zod if nest else legacy_zod)(errors)
        problems = []
        with self.state.lock:
            if any(e.project_id == project.id and e.name == name for e in self.state.environments.values()):
                problems.append("Ce nom d'environnement est déjà pris.")
            if not any(s["id"] == body["stageId"] for s in self.state.stages):
                problems.append("Type d'environnement invalide." if nest else "Type d'environnment invalide.")
            cluster = next((c for c in self.state.clusters if c["id"] == body["clusterId"]), None)
            if cluster is None or (cluster["privacy"] != "public" and cluster["id"] not in project.cluster_ids):
                problems.append("Cluster invalide.")
            else:
                problems.extend(self._quota_problems(project, cluster, body))
        if problems:
            raise (nest_error if nest else legacy_error)(400, "\n".join(problems))
        row = EnvironmentRow(
            str(uuid.uuid4()),
            str(name),
            project.id,
            str(body["stageId"]),
            str(body["clusterId"]),
            float(body["cpu"]),
            float(body["gpu"]),
            float(body["memory"]),
            bool(body["autosync"]),
        )
        with self.state.lock:
            self.state.environments[row.id] = row
        log = await asyncio.to_thread(
            self.state.provision, "project.upsert", project, "Create Environment", caller.user.id
        )
        self._settle(project, log.data["failed"])
        if log.data["failed"]:
            raise ConsoleHttpError(
                500,
                {"message": "Echec des services à la création de l'environnement"}
                | ({"error": "Internal Server Error", "statusCode": 500} if nest else {}),
            )
        return JSONResponse(row.view(), status_code=201)

    def _quota_problems(self, project: ProjectRow, cluster: Json, body: Json) -> list[str]:
        """Cluster capacity, then the project's budget unless ``limitless`` (§2.6): a stage named
        ``prod`` uses ``prod*``, the others ``hprod*``; cpu = memory = 0 means "no limit set"
        (cloud-pi-native/console:apps/server-nestjs/src/modules/environment/environment-validation.service.ts)."""
        wanted = {"cpu": float(body["cpu"]), "gpu": float(body["gpu"]), "memory": float(body["memory"])}
        labels = {"cpu": "CPU", "gpu": "GPU", "memory": "Mémoire"}
        problems = []

        def lacking(limit: dict[str, float], used: dict[str, float]) -> list[str]:
            if not limit["cpu"] and not limit["memory"]:
                return []
            return [labels[k] for k in ("cpu", "gpu", "memory") if used[k] + wanted[k] > limit[k]]

        def used_by(rows: list[EnvironmentRow]) -> dict[str, float]:
            return {k: sum(float(getattr(e, k)) for e in rows) for k in ("cpu", "gpu", "memory")}

        in_cluster = [e for e in self.state.environments.values() if e.cluster_id == cluster["id"]]
        short = lacking({k: float(cluster[k]) for k in ("cpu", "gpu", "memory")}, used_by(in_cluster))
        if short:
            problems.append("Le cluster ne dispose pas de suffisamment de ressources : " + ", ".join(short) + ".")
        if not project.limitless:
            prod_ids = {st["id"] for st in self.state.stages if st["name"] == "prod"}
            prod = body["stageId"] in prod_ids
            prefix = "prod" if prod else "hprod"
            limit = {k: project.budgets.get(prefix + k.title(), 0.0) for k in ("cpu", "gpu", "memory")}
            mine = [
                e
                for e in self.state.environments.values()
                if e.project_id == project.id and (e.stage_id in prod_ids) == prod
            ]
            short = lacking(limit, used_by(mine))
            if short:
                problems.append("Le projet ne dispose pas de suffisamment de ressources : " + ", ".join(short) + ".")
        return problems

    async def create_environment_v2(self, request: Request) -> Response:
        self._require_v2_environments(request)
        caller, project = self.guard(request, "ManageEnvironments", write=True, lock=True, nest=True)
        return await self._create_environment(caller, project, await _json(request, True), True)

    async def create_environment_v1(self, request: Request) -> Response:
        body = await _json(request, False)
        caller, project = self._legacy_project(request, str(body.get("projectId") or ""), "ManageEnvironments", True)
        return await self._create_environment(caller, project, body, False)

    async def _update_environment(self, request: Request, caller: Caller, project: ProjectRow, nest: bool) -> Response:
        """``{cpu, gpu, memory, autosync}`` all required; quotas checked again, the environment's own
        current use included (``validateUpdate`` sums every environment of the cluster/project)."""
        eid = request.path_params["environmentId"]
        if nest and not _UUID.match(eid):
            raise nest_error(400, "Validation failed (uuid is expected)")
        body = await _json(request, nest)
        errors = {k: ["Required"] for k in ("cpu", "gpu", "memory") if not _quantity(body.get(k))}
        if not isinstance(body.get("autosync"), bool):
            errors["autosync"] = ["Required"]
        if errors:
            raise (nest_zod if nest else legacy_zod)(errors)
        with self.state.lock:
            row = self.state.environments.get(eid)
            if row is None or row.project_id != project.id:
                raise (nest_error if nest else legacy_error)(404, "Environnement introuvable")
            cluster = next((c for c in self.state.clusters if c["id"] == row.cluster_id), None)
            problems = self._quota_problems(project, cluster, {**body, "stageId": row.stage_id}) if cluster else []
            if problems:
                raise (nest_error if nest else legacy_error)(400, "\n".join(problems))
            row.cpu, row.gpu, row.memory = float(body["cpu"]), float(body["gpu"]), float(body["memory"])
            row.autosync = bool(body["autosync"])
        await self._upsert(
            caller, project, "Update Environment", nest, 500, "Echec des services à la mise à jour de l'environnement"
        )
        return JSONResponse(row.view())

    async def update_environment_v2(self, request: Request) -> Response:
        self._require_v2_environments(request)
        caller, project = self.guard(request, "ManageEnvironments", write=True, lock=True, nest=True)
        return await self._update_environment(request, caller, project, True)

    def _v1_environment_project(self, request: Request) -> tuple[Caller, ProjectRow]:
        with self.state.lock:
            row = self.state.environments.get(request.path_params["environmentId"])
        if row is None:
            self.caller(request, False)
            raise legacy_error(404, "Environnement introuvable")
        return self._legacy_project(request, row.project_id, "ManageEnvironments", True)

    async def update_environment_v1(self, request: Request) -> Response:
        caller, project = self._v1_environment_project(request)
        return await self._update_environment(request, caller, project, False)

    async def _delete_environment(self, request: Request, caller: Caller, project: ProjectRow, nest: bool) -> Response:
        eid = request.path_params["environmentId"]
        if nest and not _UUID.match(eid):
            raise nest_error(400, "Validation failed (uuid is expected)")
        with self.state.lock:
            row = self.state.environments.get(eid)
            if row is None or row.project_id != project.id:
                raise (nest_error if nest else legacy_error)(404, "Environnement introuvable")
            # Deployment.environment has no onDelete: Cascade (console:apps/server-nestjs/src/prisma/
            # schema/project.prisma): PostgreSQL refuses the delete, the server answers a 500.
            if any(d["environmentId"] == eid for d in self.state.deployments.values()):
                raise (nest_error if nest else legacy_error)(500)
            del self.state.environments[eid]
        await self._upsert(
            caller, project, "Delete Environment", nest, 500, "Echec des services à la suppression de l'environnement"
        )
        return Response(status_code=204)

    async def delete_environment_v2(self, request: Request) -> Response:
        self._require_v2_environments(request)
        caller, project = self.guard(request, "ManageEnvironments", write=True, lock=True, nest=True)
        return await self._delete_environment(request, caller, project, True)

    async def delete_environment_v1(self, request: Request) -> Response:
        caller, project = self._v1_environment_project(request)
        return await self._delete_environment(request, caller, project, False)

    # --- legacy server: topology, users, tokens, logs, health (§2.7, §2.9, §2.10) ---------------

    async def list_stages(self, request: Request) -> Response:
        return JSONResponse(self.state.stages)  # no authUser call

    async def list_zones(self, request: Request) -> Response:
        return JSONResponse(self.state.zones)

    async def list_clusters(self, request: Request) -> Response:
        caller = self.caller(request, False)
        if caller.admin_perms & (4096 | 32 | 1 | 2):
            return JSONResponse(self.state.clusters)
        mine = {
            c
            for p in self.state.projects.values()
            if self.state.project_perms(caller.user.id, p)
            for c in p.cluster_ids
        }
        return JSONResponse([c for c in self.state.clusters if c["privacy"] == "public" or c["id"] in mine])

    async def users_matching(self, request: Request) -> Response:
        letters = request.query_params.get("letters", "").lower()
        not_in = request.query_params.get("notInProjectId")
        excluded: set[str] = set()
        with self.state.lock:
            if not_in and not_in in self.state.projects:
                project = self.state.projects[not_in]
                excluded = {m.user_id for m in project.members} | {project.owner_id}
            found = [
                u.view()
                for u in self.state.users.values()
                if u.id not in excluded
                and (
                    not letters
                    or (u.type == "human" and any(letters in f.lower() for f in (u.email, u.first_name, u.last_name)))
                )
            ]
        return JSONResponse(found[:5])

    async def list_admin_roles(self, request: Request) -> Response:
        # No authUser call in the legacy handler (cloud-pi-native/console:apps/server/src/resources/
        # admin-role/router.ts listAdminRoles); masks as strings, type defaulting to "managed"
        # (…/admin-role/business.ts listRoles), ordered by position (…/admin-role/queries.ts).
        with self.state.lock:
            roles = [
                {
                    "id": r.id,
                    "name": r.name,
                    "permissions": str(r.permissions),
                    "position": position,
                    "oidcGroup": r.oidc_group,
                    "type": r.type or "managed",
                }
                for position, r in enumerate(self.state.admin_roles)
            ]
        return JSONResponse(roles)

    async def list_user_tokens(self, request: Request) -> Response:
        caller = self.caller(request, False)
        if caller.user.type != "human":
            raise legacy_error(403)
        with self.state.lock:
            mine = [
                t.view(caller.user)
                for t in self.state.tokens.values()
                if t.kind == "pat" and t.owner_id == caller.user.id
            ]
        return JSONResponse(mine)

    async def list_logs(self, request: Request) -> Response:
        caller = self.caller(request, False)
        q = request.query_params
        try:
            offset, limit = int(q["offset"]), int(q["limit"])
        except (KeyError, ValueError):
            raise ConsoleHttpError(
                400,
                {
                    "pathParameterErrors": None,
                    "headerErrors": None,
                    "queryParameterErrors": {
                        "issues": [{"path": ["limit"], "message": "Required"}],
                        "name": "ZodError",
                    },
                    "bodyErrors": None,
                },
            ) from None
        admin = bool(caller.admin_perms & (A_LIST_SYSTEM | 256 | 1 | 2))
        project_id = q.get("projectId")
        if not admin:
            project = self.state.projects.get(project_id or "")
            if project is None or not self.state.project_perms(caller.user.id, project):
                raise legacy_error(403)
        clean = not admin or q.get("clean", "true") != "false"
        with self.state.lock:
            logs = [log for log in reversed(self.state.logs) if project_id is None or log.project_id == project_id]
            page = [log.view(clean) for log in logs[offset : offset + limit]]
        return JSONResponse({"total": len(logs), "logs": page})

    async def health_services(self, request: Request) -> Response:
        with self.state.lock:
            entries = [
                {
                    "name": title,
                    "status": status,
                    "interval": 300000,
                    "lastUpdateTimestamp": int(time.time() * 1000),
                    "message": message,
                }
                for title, (status, message) in self.state.health.items()
            ]
        return JSONResponse(entries)

    async def version(self, request: Request) -> Response:
        return JSONResponse({"version": self.state.version})

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "OK"})


async def _json(request: Request, nest: bool, expect: type = dict) -> Any:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else ({} if expect is dict else [])
    except ValueError:
        raise (
            nest_error(400, "Unexpected token in JSON") if nest else legacy_error(400, "Body is not valid JSON")
        ) from None
    if not isinstance(body, expect):
        raise (nest_zod if nest else legacy_zod)({"(body)": [f"Expected {expect.__name__}"]})
    return body


def _quantity(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _project_of(row: Any) -> str:
    return str(row["projectId"] if isinstance(row, dict) else row.project_id)


Handler = Callable[[Request], Awaitable[Response]]


def _wrap(handler: Handler) -> Handler:
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except ConsoleHttpError as err:
            return JSONResponse(err.body, status_code=err.http_status)

    return run


def create_app(state: State) -> ASGIApp:
    api = _Api(state)
    p = "/api/v1/projects/{projectId}"
    r2 = "/api/v2/projects/{projectId}/repositories"
    e2 = "/api/v2/projects/{projectId}/environments"
    table: list[tuple[str, str, Handler]] = [
        ("GET", "/api/v1/version", api.version),
        ("GET", "/api/v1/healthz", api.healthz),
        ("GET", "/api/v1/health-services", api.health_services),
        ("GET", "/api/v1/stages", api.list_stages),
        ("GET", "/api/v1/zones", api.list_zones),
        ("GET", "/api/v1/clusters", api.list_clusters),
        ("GET", "/api/v1/users/matching", api.users_matching),
        ("GET", "/api/v1/user/tokens", api.list_user_tokens),
        ("GET", "/api/v1/admin/roles", api.list_admin_roles),
        ("GET", "/api/v1/logs", api.list_logs),
        ("GET", "/api/v1/projects", api.list_projects),
        ("POST", "/api/v1/projects", api.create_project),
        ("GET", p, api.get_project),
        ("PUT", p, api.update_project),
        ("DELETE", p, api.delete_project),
        ("PUT", p + "/hooks", api.replay_hooks),
        ("GET", p + "/secrets", api.project_secrets),
        ("GET", p + "/services", api.project_services),
        ("GET", p + "/members", api.list_members),
        ("POST", p + "/members", api.add_member),
        ("PATCH", p + "/members", api.patch_members),
        ("DELETE", p + "/members/{userId}", api.remove_member),
        ("GET", p + "/roles", api.list_roles),
        ("GET", p + "/deployments", api.list_deployments),
        ("POST", p + "/deployments", api.create_deployment),
        ("DELETE", p + "/deployments/{deploymentId}", api.delete_deployment),
        ("GET", r2, api.list_repositories_v2),
        ("POST", r2, api.create_repository_v2),
        ("PUT", r2 + "/{repositoryId}", api.update_repository_v2),
        ("POST", r2 + "/{repositoryId}/sync", api.sync_repository_v2),
        ("DELETE", r2 + "/{repositoryId}", api.delete_repository_v2),
        ("GET", "/api/v1/repositories", api.list_repositories_v1),
        ("POST", "/api/v1/repositories", api.create_repository_v1),
        ("PUT", "/api/v1/repositories/{repositoryId}", api.update_repository_v1),
        ("POST", "/api/v1/repositories/{repositoryId}/sync", api.sync_repository_v1),
        ("DELETE", "/api/v1/repositories/{repositoryId}", api.delete_repository_v1),
        ("GET", e2, api.list_environments_v2),
        ("POST", e2, api.create_environment_v2),
        ("PUT", e2 + "/{environmentId}", api.update_environment_v2),
        ("DELETE", e2 + "/{environmentId}", api.delete_environment_v2),
        ("GET", "/api/v1/environments", api.list_environments_v1),
        ("POST", "/api/v1/environments", api.create_environment_v1),
        ("PUT", "/api/v1/environments/{environmentId}", api.update_environment_v1),
        ("DELETE", "/api/v1/environments/{environmentId}", api.delete_environment_v1),
    ]
    routes = [Route(path, _wrap(handler), methods=[method]) for method, path, handler in table]
    app = Starlette(routes=routes)
    return FaultMiddleware(app, state.faults, error_body)


__all__ = ["ConsoleHttpError", "State", "create_app", "error_body", "legacy_error", "nest_error"]
