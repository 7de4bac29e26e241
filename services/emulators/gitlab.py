"""GitLab emulator: the REST API v4 subset cpn-bot drives with python-gitlab, plus CI pipelines.

``State`` holds the instance (seed it with ``add_user``/``add_group``/``add_project``) and
``create_app(state)`` returns the ASGI app to run with ``EmulatorServer``. This module has the
dispatcher (raw-path routing, token auth, errors), health, version, users, groups and group access
tokens; members and hooks are in ``gitlab_members``, projects and repositories in
``gitlab_projects``, pipelines, jobs and webhook deliveries in ``gitlab_pipelines``.
"""

from __future__ import annotations

import logging
import secrets
from datetime import date, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from services.emulators.base import FaultMiddleware, bearer_token
from services.emulators.gitlab_http import (
    ApiError,
    Ctx,
    Router,
    accepted,
    as_bool,
    as_int,
    bad_request,
    error_body,
    forbidden,
    json_response,
    no_content,
    not_found,
    paged_response,
    param_error,
    read_params,
    require,
    unauthorized,
    validate_path,
)
from services.emulators.gitlab_members import router as members_router
from services.emulators.gitlab_pipelines import Engine
from services.emulators.gitlab_pipelines import router as pipelines_router
from services.emulators.gitlab_projects import router as projects_router
from services.emulators.gitlab_repo import now_iso
from services.emulators.gitlab_state import (
    ACCESS_LEVELS,
    GITLAB_REVISION,
    GITLAB_VERSION,
    MAINTAINER,
    OWNER,
    TOKEN_SCOPES,
    VISIBILITIES,
    Member,
    Namespace,
    State,
    default_expiry,
)
from services.emulators.gitlab_views import group_json, token_json, user_json

__all__ = ["State", "create_app"]

log = logging.getLogger(__name__)

READ_SCOPES = ("api", "read_api")

router = Router()


# --- health and version ----------------------------------------------------------------------


@router.route("GET", "/-/readiness", public=True)
async def readiness(ctx: Ctx, state: State) -> Response:
    with state.lock:
        status, body = state.readiness()
    if not as_bool(ctx.arg("all")):
        # Without ?all=1 GitLab only reports the master (Puma) check.
        body = {"status": body["status"], "master_check": body["master_check"]}
    return json_response(body, status=status)


@router.route("GET", "/-/liveness", public=True)
async def liveness(ctx: Ctx, state: State) -> Response:
    return json_response({"status": "ok"})


@router.route("GET", "/-/health", public=True)
async def health(ctx: Ctx, state: State) -> Response:
    return Response("GitLab OK", media_type="text/plain")


@router.route("GET", "/api/v4/version")
async def version(ctx: Ctx, state: State) -> Response:
    return json_response(
        {
            "version": GITLAB_VERSION,
            "revision": GITLAB_REVISION,
            "kas": {"enabled": False, "externalUrl": None, "externalK8sProxyUrl": None, "version": None},
            "enterprise": False,
        }
    )


# --- users -----------------------------------------------------------------------------------


@router.route("GET", "/api/v4/user")
async def current_user(ctx: Ctx, state: State) -> Response:
    with state.lock:
        return json_response(user_json(state, state.users[ctx.user_id or 0], full=True))


@router.route("GET", "/api/v4/users")
async def list_users(ctx: Ctx, state: State) -> Response:
    with state.lock:
        admin = state.is_admin(ctx.user_id)
        users = sorted(state.users.values(), key=lambda u: u.id, reverse=True)
        username = str(ctx.arg("username", "")).lower()
        if username:
            users = [u for u in users if u.username.lower() == username]
        search = str(ctx.arg("search", "")).lower()
        if search:
            # Only admins may find users by (private) e-mail address.
            users = [
                u
                for u in users
                if search in u.username.lower() or search in u.name.lower() or (admin and search in u.email.lower())
            ]
        if as_bool(ctx.arg("humans")) or as_bool(ctx.arg("without_project_bots")):
            users = [u for u in users if not u.bot]
        return paged_response(ctx.request, [user_json(state, u, full=admin) for u in users])


@router.route("GET", "/api/v4/users/{user_id}")
async def get_user(ctx: Ctx, state: State) -> Response:
    with state.lock:
        user = state.user(ctx.path["user_id"])
        return json_response(user_json(state, user, full=state.is_admin(ctx.user_id)))


@router.route("POST", "/api/v4/users")
async def create_user(ctx: Ctx, state: State) -> Response:
    if not state.is_admin(ctx.user_id):
        raise forbidden()
    require(ctx.params, "email", "name", "username")
    if not any(ctx.params.get(k) for k in ("password", "reset_password", "force_random_password")):
        raise param_error(
            "password, reset_password, force_random_password are missing, at least one parameter must be provided"
        )
    with state.lock:
        user = state.create_user(
            str(ctx.params["username"]),
            str(ctx.params["email"]),
            str(ctx.params["name"]),
            admin=as_bool(ctx.arg("admin")),
        )
        return json_response(user_json(state, user, full=True), status=201)


# --- groups ----------------------------------------------------------------------------------


def _visibility(ctx: Ctx, default: str) -> str:
    value = str(ctx.arg("visibility", default))
    if value not in VISIBILITIES:
        raise param_error("visibility does not have a valid value")
    return value


GROUP_SETTINGS = ("project_creation_level", "subgroup_creation_level", "default_branch_protection")


@router.route("GET", "/api/v4/groups")
async def list_groups(ctx: Ctx, state: State) -> Response:
    with state.lock:
        groups = [ns for ns in state.namespaces.values() if ns.kind == "group"]
        if not state.is_admin(ctx.user_id):
            if as_bool(ctx.arg("all_available")):
                groups = [g for g in groups if state.can_see_group(ctx.user_id, g)]
            else:
                groups = [g for g in groups if state.group_access(ctx.user_id, g) > 0]
        groups = _filter_groups(ctx, state, groups)
        return paged_response(ctx.request, [group_json(state, g) for g in groups])


def _filter_groups(ctx: Ctx, state: State, groups: list[Namespace]) -> list[Namespace]:
    search = str(ctx.arg("search", "")).lower()
    if search:
        groups = [g for g in groups if search in g.name.lower() or search in g.path.lower()]
    if as_bool(ctx.arg("top_level_only")):
        groups = [g for g in groups if g.parent_id is None]
    if as_bool(ctx.arg("owned")):
        groups = [g for g in groups if state.group_access(ctx.user_id, g) >= OWNER]
    if ctx.arg("min_access_level"):
        level = as_int(ctx.arg("min_access_level"), "min_access_level")
        groups = [g for g in groups if state.group_access(ctx.user_id, g) >= level]
    order = str(ctx.arg("order_by", "name"))
    keys: dict[str, Any] = {
        "name": lambda g: g.name.lower(),
        "path": lambda g: state.full_path(g).lower(),
        "id": lambda g: g.id,
    }
    groups.sort(key=keys.get(order, keys["name"]), reverse=str(ctx.arg("sort", "asc")) == "desc")
    return groups


@router.route("POST", "/api/v4/groups")
async def create_group(ctx: Ctx, state: State) -> Response:
    require(ctx.params, "name", "path")
    path = str(ctx.params["path"])
    validate_path(path)
    visibility = _visibility(ctx, "private")
    parent_ref = ctx.arg("parent_id")
    with state.lock:
        parent_id = None
        if parent_ref not in (None, ""):
            parent = state.visible_group(parent_ref, ctx.user_id)
            state.require_group_access(ctx.user_id, parent, MAINTAINER)
            parent_id = parent.id
        group = state.create_group(str(ctx.params["name"]), path, parent_id, visibility, ctx.user_id)
        group.description = str(ctx.arg("description", ""))
        for setting in GROUP_SETTINGS:
            if setting in ctx.params:
                group.extra[setting] = ctx.params[setting]
        return json_response(group_json(state, group), status=201)


@router.route("GET", "/api/v4/groups/{id}")
async def get_group(ctx: Ctx, state: State) -> Response:
    with state.lock:
        group = state.visible_group(ctx.path["id"], ctx.user_id)
        with_projects = as_bool(ctx.arg("with_projects"), default=True)
        return json_response(group_json(state, group, with_projects=with_projects))


@router.route("PUT", "/api/v4/groups/{id}")
async def update_group(ctx: Ctx, state: State) -> Response:
    with state.lock:
        group = state.visible_group(ctx.path["id"], ctx.user_id)
        state.require_group_access(ctx.user_id, group, OWNER)
        if "path" in ctx.params and ctx.params["path"] != group.path:
            path = str(ctx.params["path"])
            validate_path(path)
            if any(
                ns.parent_id == group.parent_id and ns.path.lower() == path.lower() and ns.id != group.id
                for ns in state.namespaces.values()
            ):
                raise bad_request('Failed to save group {:path=>["has already been taken"]}')
            group.path = path
        if "name" in ctx.params:
            group.name = str(ctx.params["name"])
        if "description" in ctx.params:
            group.description = str(ctx.params["description"])
        if "visibility" in ctx.params:
            group.visibility = _visibility(ctx, group.visibility)
        for setting in GROUP_SETTINGS:
            if setting in ctx.params:
                group.extra[setting] = ctx.params[setting]
        return json_response(group_json(state, group, with_projects=True))


@router.route("DELETE", "/api/v4/groups/{id}")
async def delete_group(ctx: Ctx, state: State) -> Response:
    with state.lock:
        group = state.visible_group(ctx.path["id"], ctx.user_id)
        state.require_group_access(ctx.user_id, group, OWNER)
        if group.marked_for_deletion_on and as_bool(ctx.arg("permanently_remove")):
            if ctx.arg("full_path") != state.full_path(group):
                raise bad_request("`full_path` is incorrect. You must enter the complete path for the group.")
            state.remove_group(group.id)
            return accepted()
        if group.marked_for_deletion_on:
            raise bad_request("Group has been already marked for deletion")
    state.mark_group_for_deletion(group)
    return accepted()


@router.route("GET", "/api/v4/groups/{id}/subgroups")
async def list_subgroups(ctx: Ctx, state: State) -> Response:
    with state.lock:
        group = state.visible_group(ctx.path["id"], ctx.user_id)
        children = [
            ns for ns in state.namespaces.values() if ns.parent_id == group.id and state.can_see_group(ctx.user_id, ns)
        ]
        children = _filter_groups(ctx, state, children)
        return paged_response(ctx.request, [group_json(state, g) for g in children])


@router.route("GET", "/api/v4/groups/{id}/descendant_groups")
async def list_descendants(ctx: Ctx, state: State) -> Response:
    with state.lock:
        group = state.visible_group(ctx.path["id"], ctx.user_id)
        found = [ns for ns in state.descendants(group) if state.can_see_group(ctx.user_id, ns)]
        found = _filter_groups(ctx, state, found)
        return paged_response(ctx.request, [group_json(state, g) for g in found])


# --- group access tokens ---------------------------------------------------------------------


def _group_token(state: State, group: Namespace, token_id: str) -> Any:
    for token in state.tokens.values():
        if token.kind == "group" and token.group_id == group.id and str(token.id) == token_id:
            return token
    raise not_found("Group Access Token")


def _expiry(ctx: Ctx, state: State) -> str:
    """``expires_at`` checked like GitLab, against its own ``Date.current`` (its time zone).

    The maximum is gitlabhq/gitlabhq:app/models/personal_access_token.rb
    ``expires_at_before_instance_max_expiry_date``: ``Date.current.advance(days: 365)`` (400 with the
    ``buffered_token_expiration_limit`` flag), "must be before %{expiry_date}"; the service's error
    becomes ``bad_request!`` in lib/api/resource_access_tokens.rb ("400 Bad request - …").
    """
    value = ctx.arg("expires_at")
    today = state.today()
    if not value:
        return default_expiry(today)
    try:
        expires = date.fromisoformat(str(value))
    except ValueError as exc:
        raise param_error("expires_at is invalid") from exc
    if expires <= today:
        raise bad_request({"expires_at": ["must be in the future"]})
    latest = today + timedelta(days=state.token_max_lifetime_days)
    if expires > latest:
        raise bad_request(f"400 Bad request - Expires at must be before {latest.isoformat()}")
    return expires.isoformat()


@router.route("GET", "/api/v4/groups/{id}/access_tokens")
async def list_group_tokens(ctx: Ctx, state: State) -> Response:
    with state.lock:
        group = state.visible_group(ctx.path["id"], ctx.user_id)
        state.require_group_access(ctx.user_id, group, OWNER)
        tokens = [t for t in state.tokens.values() if t.kind == "group" and t.group_id == group.id]
        wanted = ctx.arg("state")
        if wanted:
            tokens = [t for t in tokens if (t.active and wanted == "active") or (not t.active and wanted == "inactive")]
        return paged_response(ctx.request, [token_json(t) for t in tokens])


@router.route("GET", "/api/v4/groups/{id}/access_tokens/{token_id}")
async def get_group_token(ctx: Ctx, state: State) -> Response:
    with state.lock:
        group = state.visible_group(ctx.path["id"], ctx.user_id)
        state.require_group_access(ctx.user_id, group, OWNER)
        return json_response(token_json(_group_token(state, group, ctx.path["token_id"])))


@router.route("POST", "/api/v4/groups/{id}/access_tokens")
async def create_group_token(ctx: Ctx, state: State) -> Response:
    require(ctx.params, "name", "scopes")
    scopes = ctx.params["scopes"]
    scopes = [scopes] if isinstance(scopes, str) else list(scopes)
    if not scopes or any(scope not in TOKEN_SCOPES for scope in scopes):
        raise param_error("scopes does not have a valid value")
    level = as_int(ctx.arg("access_level", MAINTAINER), "access_level")
    if level not in ACCESS_LEVELS[1:]:
        raise param_error("access_level does not have a valid value")
    expires_at = _expiry(ctx, state)
    with state.lock:
        group = state.visible_group(ctx.path["id"], ctx.user_id)
        state.require_group_access(ctx.user_id, group, OWNER)
        token = _issue_group_token(state, group, str(ctx.params["name"]), scopes, level, expires_at)
        token.description = str(ctx.arg("description", ""))
        return json_response(token_json(token, reveal=True), status=201)


def _issue_group_token(
    state: State, group: Namespace, name: str, scopes: list[str], level: int, expires_at: str
) -> Any:
    """Like GitLab: a bot user is created for the token and made a member of the group."""
    suffix = secrets.token_hex(16)
    host = state.url().split("://", 1)[-1].split(":")[0]
    bot = state.create_user(
        f"group_{group.id}_bot_{suffix}", f"group_{group.id}_bot_{suffix}@noreply.{host}", name, bot=True
    )
    group.members[bot.id] = Member(bot.id, level, None, expires_at=expires_at)
    return state.create_token(bot.id, name, scopes, expires_at, kind="group", group_id=group.id, access_level=level)


@router.route("POST", "/api/v4/groups/{id}/access_tokens/{token_id}/rotate")
async def rotate_group_token(ctx: Ctx, state: State) -> Response:
    expires_at = _expiry(ctx, state)
    with state.lock:
        group = state.visible_group(ctx.path["id"], ctx.user_id)
        state.require_group_access(ctx.user_id, group, OWNER)
        old = _group_token(state, group, ctx.path["token_id"])
        if not old.active:
            raise bad_request("token is not active")
        old.revoked = True
        new = state.create_token(
            old.user_id, old.name, list(old.scopes), expires_at, "group", group.id, old.access_level
        )
        new.description = old.description
        if old.user_id in group.members:
            group.members[old.user_id].expires_at = expires_at
        return json_response(token_json(new, reveal=True))


@router.route("DELETE", "/api/v4/groups/{id}/access_tokens/{token_id}")
async def revoke_group_token(ctx: Ctx, state: State) -> Response:
    with state.lock:
        group = state.visible_group(ctx.path["id"], ctx.user_id)
        state.require_group_access(ctx.user_id, group, OWNER)
        token = _group_token(state, group, ctx.path["token_id"])
        token.revoked = True
        group.members.pop(token.user_id, None)
        return no_content()


# --- the application -------------------------------------------------------------------------

INSUFFICIENT_SCOPE = {
    "error": "insufficient_scope",
    "error_description": "The request requires higher privileges than provided by the access token.",
    "scope": "api",
}


class GitLabApp:
    """ASGI app: raw-path routing, token authentication, GitLab error answers, engine lifespan."""

    def __init__(self, state: State, routes: Router) -> None:
        self.state = state
        self.router = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        response = await self.dispatch(request)
        await response(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.state.engine.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def dispatch(self, request: Request) -> Response:
        state = self.state
        if not state.base_url:
            state.base_url = str(request.base_url).rstrip("/")
        raw = request.scope.get("raw_path") or request.scope["path"].encode()
        raw_path = raw.decode("latin-1").split("?", 1)[0]
        method = request.method
        # What was asked (no header, so no token): tests check the adapters' queries with it.
        state.request_log.append(f"{method} {raw_path}?{request.url.query}")
        premium = state.tier != "free"
        route, path_params, exists = self.router.match(method, raw_path, premium)
        if route is None and method == "HEAD":
            route, path_params, exists = self.router.match("GET", raw_path, premium)
        if route is None:
            status = 405 if exists else 404
            return json_response({"error": f"{status} {'Not Allowed' if exists else 'Not Found'}"}, status)
        ctx = Ctx(request, path_params, {})
        try:
            # Authenticate before reading the body, like GitLab's Grape stack.
            self.authenticate(ctx, optional=route.public)
            ctx.params = await read_params(request)
            response = await route.handler(ctx, state)
        except ApiError as exc:
            response = json_response(exc.body, status=exc.status)
        except Exception:
            # An emulator bug must look like GitLab's 500, never a traceback page.
            log.exception("GitLab emulator failed on %s %s", method, request.url.path)
            response = json_response(error_body(500), status=500)
        if method == "HEAD":
            response.body = b""
            response.headers["content-length"] = "0"
        return response

    def authenticate(self, ctx: Ctx, optional: bool = False) -> None:
        request = ctx.request
        value = request.headers.get("private-token") or bearer_token(request)
        value = value or request.query_params.get("private_token")
        if not value:
            if optional:
                return
            raise unauthorized()
        with self.state.lock:
            token = self.state.tokens.get(value)
            if token is None:
                if optional:
                    return
                raise unauthorized()
            if token.revoked:
                raise ApiError(
                    401,
                    {
                        "error": "invalid_token",
                        "error_description": "Token was revoked. You have to re-authorize from the user.",
                    },
                )
            if token.expired:
                raise ApiError(401, {"error": "invalid_token", "error_description": "Token has expired."})
            user = self.state.users.get(token.user_id)
            if user is None or user.state != "active":
                raise unauthorized()
            needed = READ_SCOPES if request.method in ("GET", "HEAD") else ("api",)
            if request.url.path.startswith("/api/v4/user") and request.method == "GET":
                needed = (*needed, "read_user")
            if not optional and not set(needed) & set(token.scopes):
                raise ApiError(403, INSUFFICIENT_SCOPE)
            token.last_used_at = now_iso()
            ctx.user_id = user.id
            ctx.scopes = tuple(token.scopes)


def build_router() -> Router:
    routes = Router()
    routes.include(router)
    routes.include(members_router)
    routes.include(projects_router)
    routes.include(pipelines_router)
    return routes


def create_app(state: State) -> ASGIApp:
    """The GitLab emulator app, wrapped in the fault switches."""
    state.engine = Engine(state)
    return FaultMiddleware(GitLabApp(state, build_router()), state.faults, error_body)
