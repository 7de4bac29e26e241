"""Members and webhooks, shared by groups (``/groups/:id/…``) and projects (``/projects/:id/…``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from starlette.responses import Response

from services.emulators.gitlab_http import (
    ApiError,
    Ctx,
    Handler,
    Router,
    as_bool,
    as_int,
    conflict,
    forbidden,
    json_response,
    no_content,
    not_found,
    paged_response,
    param_error,
    require,
)
from services.emulators.gitlab_state import (
    ACCESS_LEVELS,
    HOOK_EVENTS,
    MAINTAINER,
    OWNER,
    Hook,
    Member,
    Namespace,
    Project,
)
from services.emulators.gitlab_views import hook_json, member_json

if TYPE_CHECKING:
    from services.emulators.gitlab_state import State

router = Router()
Source = Namespace | Project


def _source(ctx: Ctx, state: State, kind: str) -> Source:
    if kind == "groups":
        return state.visible_group(ctx.path["id"], ctx.user_id)
    return state.visible_project(ctx.path["id"], ctx.user_id)


def _access(state: State, user_id: int | None, source: Source) -> int:
    if isinstance(source, Project):
        return state.project_access(user_id, source)
    return state.group_access(user_id, source)


def _manage_level(source: Source) -> int:
    # Group membership is managed by owners, project membership by maintainers.
    return MAINTAINER if isinstance(source, Project) else OWNER


def _inherited(state: State, source: Source) -> list[Member]:
    """Direct and inherited members; the highest level wins for a user."""
    chain: list[dict[int, Member]] = [source.members]
    namespace = state.namespaces[source.namespace_id] if isinstance(source, Project) else source
    if namespace.kind == "group":
        chain.extend(ns.members for ns in state.ancestors(namespace) if ns is not source)
    best: dict[int, Member] = {}
    for members in chain:
        for member in members.values():
            if member.user_id not in best or member.access_level > best[member.user_id].access_level:
                best[member.user_id] = member
    return list(best.values())


def _filter_members(ctx: Ctx, state: State, members: list[Member]) -> list[Member]:
    query = str(ctx.arg("query", "")).lower()
    if query:
        members = [
            m
            for m in members
            if query in state.users[m.user_id].username.lower() or query in state.users[m.user_id].name.lower()
        ]
    ids = ctx.arg("user_ids")
    if ids:
        wanted = {int(i) for i in (ids if isinstance(ids, list) else str(ids).split(","))}
        members = [m for m in members if m.user_id in wanted]
    return sorted((m for m in members if m.user_id in state.users), key=lambda m: m.user_id)


def _level(ctx: Ctx) -> int:
    require(ctx.params, "access_level")
    try:
        level = int(ctx.params["access_level"])
    except (TypeError, ValueError) as exc:
        raise param_error("access_level is invalid") from exc
    if level not in ACCESS_LEVELS:
        raise param_error("access_level does not have a valid value")
    return level


def _check_grant(state: State, ctx: Ctx, source: Source, level: int) -> None:
    # Managers cannot grant more than they hold (a maintainer cannot make an owner).
    own = _access(state, ctx.user_id, source)
    if own < _manage_level(source) or level > own:
        raise forbidden()


# Gitlab::Access.human_access (lib/gitlab/access.rb options_with_owner / options_with_none).
HUMAN_ACCESS = {5: "Minimal Access", 10: "Guest", 20: "Reporter", 30: "Developer", 40: "Maintainer", 50: "Owner"}


def _check_inherited(state: State, source: Source, user_id: int, level: int) -> None:
    """A direct member may not sit below what the user inherits from a group above.

    gitlabhq/gitlabhq:app/models/member.rb ``higher_access_level_than_group`` (a validation, on
    create and update): the highest membership in the source's ancestor groups; the API answers
    400 with the model's errors (spec/requests/api/members_spec.rb "group level is higher").
    """
    namespace = state.namespaces[source.namespace_id] if isinstance(source, Project) else source
    if namespace.kind != "group":
        return
    groups = [ns for ns in state.ancestors(namespace) if ns is not source]
    found = [(ns.members[user_id].access_level, ns) for ns in groups if user_id in ns.members]
    if not found:
        return
    highest, group = max(found, key=lambda item: item[0])
    if highest > level:
        message = (
            f"should be greater than or equal to {HUMAN_ACCESS.get(highest, str(highest))} "
            f"inherited membership from group {group.name}"
        )
        raise ApiError(400, {"message": {"access_level": [message]}})


def _member_routes(kind: str) -> None:
    base = f"/api/v4/{kind}/{{id}}/members"

    @router.route("GET", f"{base}/all")
    async def list_all(ctx: Ctx, state: State) -> Response:
        with state.lock:
            source = _source(ctx, state, kind)
            members = _filter_members(ctx, state, _inherited(state, source))
            return paged_response(ctx.request, [member_json(state, m) for m in members])

    @router.route("GET", f"{base}/all/{{user_id}}")
    async def get_any(ctx: Ctx, state: State) -> Response:
        with state.lock:
            source = _source(ctx, state, kind)
            user_id = as_int(ctx.path["user_id"], "user_id")
            for member in _inherited(state, source):
                if member.user_id == user_id:
                    return json_response(member_json(state, member))
            raise not_found()

    @router.route("GET", base)
    async def list_direct(ctx: Ctx, state: State) -> Response:
        with state.lock:
            source = _source(ctx, state, kind)
            members = _filter_members(ctx, state, list(source.members.values()))
            return paged_response(ctx.request, [member_json(state, m) for m in members])

    @router.route("GET", f"{base}/{{user_id}}")
    async def get_direct(ctx: Ctx, state: State) -> Response:
        with state.lock:
            source = _source(ctx, state, kind)
            member = source.members.get(as_int(ctx.path["user_id"], "user_id"))
            if member is None:
                raise not_found()
            return json_response(member_json(state, member))

    @router.route("POST", base)
    async def add(ctx: Ctx, state: State) -> Response:
        level = _level(ctx)
        if ctx.arg("user_id") in (None, "") and not ctx.arg("username"):
            raise param_error("user_id, username are missing, exactly one parameter must be provided")
        with state.lock:
            source = _source(ctx, state, kind)
            _check_grant(state, ctx, source, level)
            user = _target_user(ctx, state)
            if user.id in source.members:
                raise conflict("Member already exists")
            _check_inherited(state, source, user.id, level)
            member = Member(user.id, level, ctx.user_id, expires_at=ctx.arg("expires_at"))
            source.members[user.id] = member
            return json_response(member_json(state, member), status=201)

    @router.route("PUT", f"{base}/{{user_id}}")
    async def update(ctx: Ctx, state: State) -> Response:
        level = _level(ctx)
        with state.lock:
            source = _source(ctx, state, kind)
            _check_grant(state, ctx, source, level)
            member = source.members.get(as_int(ctx.path["user_id"], "user_id"))
            if member is None:
                raise not_found()
            _check_inherited(state, source, member.user_id, level)
            member.access_level = level
            if "expires_at" in ctx.params:
                member.expires_at = ctx.params["expires_at"] or None
            return json_response(member_json(state, member))

    @router.route("DELETE", f"{base}/{{user_id}}")
    async def remove(ctx: Ctx, state: State) -> Response:
        with state.lock:
            source = _source(ctx, state, kind)
            user_id = as_int(ctx.path["user_id"], "user_id")
            if user_id != ctx.user_id and _access(state, ctx.user_id, source) < _manage_level(source):
                raise forbidden()
            if user_id not in source.members:
                raise not_found()
            del source.members[user_id]
            return no_content()


def _target_user(ctx: Ctx, state: State) -> Any:
    if ctx.arg("username"):
        name = str(ctx.params["username"]).lower()
        for user in state.users.values():
            if user.username.lower() == name:
                return user
        raise not_found("User")
    return state.user(str(ctx.params["user_id"]))


# --- webhooks --------------------------------------------------------------------------------


def _hooks_of(state: State, source: Source) -> list[Hook]:
    if isinstance(source, Project):
        return [h for h in state.hooks.values() if h.project_id == source.id]
    return [h for h in state.hooks.values() if h.group_id == source.id]


def _hook(state: State, source: Source, hook_id: str) -> Hook:
    for hook in _hooks_of(state, source):
        if str(hook.id) == hook_id:
            return hook
    raise not_found()


def _check_url(url: str) -> None:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ApiError(422, {"error": "Invalid url given"})


def _apply_hook_params(ctx: Ctx, hook: Hook) -> None:
    for event in HOOK_EVENTS:
        if event in ctx.params:
            hook.events[event] = as_bool(ctx.params[event])
    if "enable_ssl_verification" in ctx.params:
        hook.enable_ssl_verification = as_bool(ctx.params["enable_ssl_verification"])
    if "token" in ctx.params:
        hook.token = str(ctx.params["token"] or "")
    for text in ("name", "description", "push_events_branch_filter"):
        if text in ctx.params:
            setattr(hook, text, str(ctx.params[text] or ""))


def _hook_routes(kind: str) -> None:
    base = f"/api/v4/{kind}/{{id}}/hooks"
    # Group hooks are EE: CE's lib/api/api.rb mounts ::API::ProjectHooks but no GroupHooks (that
    # is ee/lib/api/group_hooks.rb), so a Free instance answers its catch-all
    # ``route :any, '*path'`` → error!('404 Not Found', 404).
    premium = kind == "groups"

    def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
        return router.route(method, pattern, premium=premium)

    def manageable(ctx: Ctx, state: State) -> Source:
        source = _source(ctx, state, kind)
        if _access(state, ctx.user_id, source) < _manage_level(source):
            raise forbidden()
        return source

    @route("GET", base)
    async def list_hooks(ctx: Ctx, state: State) -> Response:
        with state.lock:
            source = manageable(ctx, state)
            return paged_response(ctx.request, [hook_json(h) for h in _hooks_of(state, source)])

    @route("GET", f"{base}/{{hook_id}}")
    async def get_hook(ctx: Ctx, state: State) -> Response:
        with state.lock:
            source = manageable(ctx, state)
            return json_response(hook_json(_hook(state, source, ctx.path["hook_id"])))

    @route("POST", base)
    async def add_hook(ctx: Ctx, state: State) -> Response:
        require(ctx.params, "url")
        _check_url(str(ctx.params["url"]))
        with state.lock:
            source = manageable(ctx, state)
            # GitLab subscribes new hooks to push events unless told otherwise.
            hook = Hook(state.next_id("hook"), str(ctx.params["url"]), "", {"push_events": True})
            if isinstance(source, Project):
                hook.project_id = source.id
            else:
                hook.group_id = source.id
            _apply_hook_params(ctx, hook)
            state.hooks[hook.id] = hook
            return json_response(hook_json(hook), status=201)

    @route("PUT", f"{base}/{{hook_id}}")
    async def edit_hook(ctx: Ctx, state: State) -> Response:
        if ctx.arg("url"):
            _check_url(str(ctx.params["url"]))
        with state.lock:
            source = manageable(ctx, state)
            hook = _hook(state, source, ctx.path["hook_id"])
            if ctx.arg("url"):
                hook.url = str(ctx.params["url"])
            _apply_hook_params(ctx, hook)
            return json_response(hook_json(hook))

    @route("DELETE", f"{base}/{{hook_id}}")
    async def delete_hook(ctx: Ctx, state: State) -> Response:
        with state.lock:
            source = manageable(ctx, state)
            hook = _hook(state, source, ctx.path["hook_id"])
            del state.hooks[hook.id]
            return no_content()


for _kind in ("groups", "projects"):
    _member_routes(_kind)
    _hook_routes(_kind)
