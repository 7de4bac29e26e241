"""Mattermost emulator: the REST API v4 and websocket the bot uses, on loopback.

Driven in tests by the real client, ``mattermostautodriver`` (httpx, and aiohttp for the websocket).
Seed a :class:`State`, then ``EmulatorServer(create_app(state)).start()``; set ``state.site_url`` to
the server URL so slash commands get a usable ``response_url``.

Behaviour taken from the real server (mattermost/mattermost, server/channels/api4 and app):
- every answer is JSON with ``Content-Type: application/json`` and errors are AppErrors;
- ``/system/ping``, ``/hooks/commands/{id}`` and ``/actions/dialogs/open`` need no session (the
  signed trigger id authorises a dialog), everything else answers 401 without a valid token;
- e-mail addresses of other users are shown, as with ``PrivacySettings.ShowEmailAddress = true``
  (what an on-premise ministry instance sets);
- posts sent to clients never carry the ``integration`` (URL, context) of their buttons; the
  buttons of ephemeral posts carry a signed ``cookie`` instead, to send back when pressed;
- ``pending_post_id`` de-duplicates post creation for ``State.pending_post_ttl`` seconds;
- ``POST /posts/ephemeral`` needs the system_admin role (PermissionCreatePostEphemeral): a plain bot
  account gets 403 like anyone else;
- a message over 16 383 runes or props over 800 000 are refused with Post.IsValid's 400;
- ``since=`` answers at most 1 000 posts, deleted ones included, like the SQL store.

Routes of slash commands, buttons and dialogs are in ``mattermost_integrations``; the websocket
is in ``mattermost_ws``; the sandbox's web view (off unless enabled) in ``mattermost_web``.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import ASGIApp

from services.emulators.base import FaultMiddleware
from services.emulators.mattermost_http import (
    app_error,
    authed,
    check_ids,
    error_body,
    forbidden,
    invalid_param,
    invalid_url_param,
    ok,
    public,
    read_json,
    status_ok,
)
from services.emulators.mattermost_integrations import IntegrationRoutes
from services.emulators.mattermost_state import (
    JsonDict,
    State,
    is_valid_id,
    strip_action_integrations,
)
from services.emulators.mattermost_web import WebRoutes
from services.emulators.mattermost_ws import websocket_endpoint

__all__ = ["State", "create_app"]

# server/public/model/post.go: Post.IsValid counts runes (Python str length) of the message and
# of the props' JSON; api4/post.go createPost → App.CreatePost → store save → IsValid.
_MAX_MESSAGE_RUNES = 16383  # model.PostMessageMaxRunesV2
_MAX_PROPS_RUNES = 800000  # model.PostPropsMaxRunes
_SINCE_LIMIT = 1000  # SqlPostStore.GetPostsSince: "UpdateAt > ? AND ChannelId = ? LIMIT 1000"
_DEFAULT_PER_PAGE = 60
_MAX_PER_PAGE = 200
_PRIVATE_USER_KEYS = ("notify_props", "last_password_update", "auth_data")


def user_json(user: JsonDict, viewer: JsonDict | None) -> JsonDict:
    """The user as ``viewer`` sees it: other users' profiles are sanitized (User.SanitizeProfile)."""
    shown = dict(user)
    if viewer is None or viewer["id"] != user["id"]:
        for key in _PRIVATE_USER_KEYS:
            shown.pop(key, None)
    return shown


class _CoreRoutes:
    """Users, teams, channels and posts."""

    def __init__(self, state: State) -> None:
        self.state = state

    def routes(self) -> list[BaseRoute]:
        s, a = self.state, self._authed
        return [
            Route("/api/v4/system/ping", public(s, self.ping), methods=["GET"]),
            Route("/api/v4/users/ids", a(self.users_by_ids), methods=["POST"]),
            Route("/api/v4/users/username/{username}", a(self.user_by_username), methods=["GET"]),
            Route("/api/v4/users/email/{email}", a(self.user_by_email), methods=["GET"]),
            Route("/api/v4/users/{user_id}/teams/{team_id}/channels", a(self.user_channels), methods=["GET"]),
            Route("/api/v4/users/{user_id}/teams", a(self.user_teams), methods=["GET"]),
            Route("/api/v4/users/{user_id}", a(self.get_user), methods=["GET"]),
            Route("/api/v4/teams/name/{team_name}/channels/name/{channel_name}", a(self.channel_by_names)),
            Route("/api/v4/teams/name/{team_name}", a(self.team_by_name), methods=["GET"]),
            Route("/api/v4/teams/{team_id}/channels/name/{channel_name}", a(self.channel_by_name)),
            Route("/api/v4/teams/{team_id}", a(self.get_team), methods=["GET"]),
            Route("/api/v4/channels/direct", a(self.direct_channel), methods=["POST"]),
            Route("/api/v4/channels/{channel_id}/posts", a(self.channel_posts), methods=["GET"]),
            Route("/api/v4/channels/{channel_id}/members", a(self.add_channel_member), methods=["POST"]),
            Route("/api/v4/channels/{channel_id}/members/{user_id}", a(self.channel_member), methods=["GET"]),
            Route("/api/v4/channels/{channel_id}", a(self.get_channel), methods=["GET"]),
            Route("/api/v4/posts", a(self.create_post), methods=["POST"]),
            Route("/api/v4/posts/ephemeral", a(self.create_ephemeral), methods=["POST"]),
            Route("/api/v4/posts/{post_id}/thread", a(self.post_thread), methods=["GET"]),
            Route("/api/v4/posts/{post_id}/patch", a(self.patch_post), methods=["PUT"]),
            Route("/api/v4/posts/{post_id}", a(self.get_post), methods=["GET"]),
            Route("/api/v4/posts/{post_id}", a(self.update_post), methods=["PUT"]),
            Route("/api/v4/posts/{post_id}", a(self.delete_post), methods=["DELETE"]),
        ]

    def _authed(self, handler: Any) -> Any:
        return authed(self.state, handler)

    # ------------------------------------------------------------------ system
    async def ping(self, request: Request) -> Response:
        body: JsonDict = {
            "ActiveSearchBackend": "database",
            "AndroidLatestVersion": "",
            "AndroidMinVersion": "",
            "IosLatestVersion": "",
            "IosMinVersion": "",
            "status": "OK",
        }
        if request.query_params.get("get_server_status", "").lower() == "true":
            body.update({"database_status": "OK", "filestore_status": "OK"})
        return ok(body)

    # ------------------------------------------------------------------ users
    def _find_user(self, key: str, value: str) -> JsonDict | None:
        with self.state.lock:
            for user in self.state.db.users.values():
                if user[key] == value:
                    return user
        return None

    async def get_user(self, request: Request, me: JsonDict) -> Response:
        if bad := check_ids(request, "user_id"):
            return bad
        user_id = request.path_params["user_id"]
        user = me if user_id == "me" else self._find_user("id", user_id)
        if user is None:
            return app_error(404, "app.user.missing_account.const")
        return ok(user_json(user, me))

    async def user_by_username(self, request: Request, me: JsonDict) -> Response:
        user = self._find_user("username", request.path_params["username"].lower())
        if user is None:
            return app_error(404, "app.user.missing_account.const")
        return ok(user_json(user, me))

    async def user_by_email(self, request: Request, me: JsonDict) -> Response:
        user = self._find_user("email", request.path_params["email"].lower())
        if user is None:
            return app_error(404, "app.user.missing_account.const")
        return ok(user_json(user, me))

    async def users_by_ids(self, request: Request, me: JsonDict) -> Response:
        ids, bad = await read_json(request, "user_ids")
        if bad:
            return bad
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            return invalid_param("user_ids")
        with self.state.lock:
            found = [self.state.db.users[i] for i in dict.fromkeys(ids) if i in self.state.db.users]
            return ok([user_json(u, me) for u in found])

    async def user_teams(self, request: Request, me: JsonDict) -> Response:
        if bad := check_ids(request, "user_id"):
            return bad
        user_id = me["id"] if request.path_params["user_id"] == "me" else request.path_params["user_id"]
        if user_id != me["id"] and not self.state.is_admin(me):
            return forbidden()
        with self.state.lock:
            teams = [
                dict(self.state.db.teams[tid])
                for tid, members in self.state.db.team_members.items()
                if user_id in members
            ]
        return ok(teams)

    async def user_channels(self, request: Request, me: JsonDict) -> Response:
        """api4/channel.go getChannelsForTeamForUser: the user's channels of the team, and their
        direct messages (the store query takes TeamId = '' too)."""
        if bad := check_ids(request, "user_id", "team_id"):
            return bad
        user_id = me["id"] if request.path_params["user_id"] == "me" else request.path_params["user_id"]
        team_id = request.path_params["team_id"]
        if user_id != me["id"] and not self.state.is_admin(me):
            return forbidden()
        if not (self.state.is_admin(me) or self.state.is_team_member(team_id, me["id"])):
            return forbidden()
        with self.state.lock:
            found = [
                dict(c)
                for cid, c in self.state.db.channels.items()
                if c["team_id"] in (team_id, "") and user_id in self.state.db.channel_members.get(cid, set())
            ]
        return ok(found)

    # ------------------------------------------------------------------ teams
    def _team_visible(self, team: JsonDict, me: JsonDict) -> bool:
        return self.state.is_admin(me) or self.state.is_team_member(team["id"], me["id"])

    async def get_team(self, request: Request, me: JsonDict) -> Response:
        if bad := check_ids(request, "team_id"):
            return bad
        with self.state.lock:
            team = self.state.db.teams.get(request.path_params["team_id"])
            team = dict(team) if team else None
        if team is None:
            return app_error(404, "app.team.get.find.app_error")
        return ok(team) if self._team_visible(team, me) else forbidden()

    def _team_named(self, name: str) -> JsonDict | None:
        with self.state.lock:
            for team in self.state.db.teams.values():
                if team["name"] == name:
                    return dict(team)
        return None

    async def team_by_name(self, request: Request, me: JsonDict) -> Response:
        team = self._team_named(request.path_params["team_name"])
        if team is None:
            return app_error(404, "app.team.get_by_name.missing.app_error")
        return ok(team) if self._team_visible(team, me) else forbidden()

    # ------------------------------------------------------------------ channels
    def _channel(self, channel_id: str) -> JsonDict | None:
        with self.state.lock:
            channel = self.state.db.channels.get(channel_id)
            return dict(channel) if channel else None

    async def get_channel(self, request: Request, me: JsonDict) -> Response:
        if bad := check_ids(request, "channel_id"):
            return bad
        channel = self._channel(request.path_params["channel_id"])
        if channel is None:
            return app_error(404, "app.channel.get.existing.app_error")
        return ok(channel) if self.state.can_read_channel(me, channel) else forbidden()

    def _channel_in_team(self, team_id: str, name: str, me: JsonDict) -> Response:
        if not (self.state.is_admin(me) or self.state.is_team_member(team_id, me["id"])):
            return forbidden()
        channel = self.state.find_channel(name, team_id=team_id)
        # A private channel the caller cannot read is reported missing, not forbidden.
        if channel is None or not self.state.can_read_channel(me, channel):
            return app_error(404, "app.channel.get_by_name.missing.app_error")
        return ok(channel)

    async def channel_by_name(self, request: Request, me: JsonDict) -> Response:
        if bad := check_ids(request, "team_id"):
            return bad
        return self._channel_in_team(request.path_params["team_id"], request.path_params["channel_name"], me)

    async def channel_by_names(self, request: Request, me: JsonDict) -> Response:
        team = self._team_named(request.path_params["team_name"])
        if team is None:
            return app_error(404, "app.team.get_by_name.missing.app_error")
        return self._channel_in_team(team["id"], request.path_params["channel_name"], me)

    async def channel_member(self, request: Request, me: JsonDict) -> Response:
        if bad := check_ids(request, "channel_id", "user_id"):
            return bad
        channel = self._channel(request.path_params["channel_id"])
        if channel is None:
            return app_error(404, "app.channel.get.existing.app_error")
        if not self.state.can_read_channel(me, channel):
            return forbidden()
        user_id = me["id"] if request.path_params["user_id"] == "me" else request.path_params["user_id"]
        if not self.state.is_channel_member(channel["id"], user_id):
            return app_error(404, "app.channel.get_member.missing.app_error")
        return ok(self.state.channel_member_json(channel["id"], user_id))

    async def add_channel_member(self, request: Request, me: JsonDict) -> Response:
        if bad := check_ids(request, "channel_id"):
            return bad
        body, bad = await read_json(request, "user_id")
        if bad:
            return bad
        user_id = body.get("user_id", "") if isinstance(body, dict) else ""
        if not is_valid_id(user_id):
            return invalid_param("user_id")
        channel = self._channel(request.path_params["channel_id"])
        if channel is None or channel["type"] == "D":
            return app_error(404, "app.channel.get.existing.app_error")
        if not self._may_add_member(channel, me, user_id):
            return forbidden()
        self.state.add_member(channel["id"], user_id)
        return ok(self.state.channel_member_json(channel["id"], user_id), status=201)

    def _may_add_member(self, channel: JsonDict, me: JsonDict, user_id: str) -> bool:
        if self.state.is_admin(me):
            return True
        if not self.state.is_team_member(channel["team_id"], user_id):
            return False
        joining_public = channel["type"] == "O" and user_id == me["id"]
        return joining_public or self.state.is_channel_member(channel["id"], me["id"])

    async def direct_channel(self, request: Request, me: JsonDict) -> Response:
        ids, bad = await read_json(request, "user_ids")
        if bad:
            return bad
        if not isinstance(ids, list) or len(ids) != 2 or not all(isinstance(i, str) and is_valid_id(i) for i in ids):
            return invalid_param("user_ids")
        if me["id"] not in ids and not self.state.is_admin(me):
            return forbidden()
        with self.state.lock:
            if any(i not in self.state.db.users for i in ids):
                return invalid_param("user_id")
        channel, _ = self.state.direct_channel(ids[0], ids[1])
        return ok(channel, status=201)

    # ------------------------------------------------------------------ posts
    def _live_post(self, post_id: str) -> JsonDict | None:
        with self.state.lock:
            post = self.state.posts.get(post_id)
            return dict(post) if post and not post["delete_at"] else None

    def _readable_post(self, request: Request, me: JsonDict) -> JsonDict | Response:
        """The live post of the path, or the AppError the real server answers."""
        if bad := check_ids(request, "post_id"):
            return bad
        post = self._live_post(request.path_params["post_id"])
        if post is None:
            return app_error(404, "app.post.get.app_error")
        channel = self._channel(post["channel_id"])
        if channel is None or not self.state.can_read_channel(me, channel):
            return forbidden()
        return post

    def _may_post(self, me: JsonDict, channel_id: str) -> bool:
        return self.state.is_admin(me) or self.state.is_channel_member(channel_id, me["id"])

    async def create_post(self, request: Request, me: JsonDict) -> Response:
        body, bad = await read_json(request, "post")
        if bad:
            return bad
        if not isinstance(body, dict) or not isinstance(body.get("props", {}) or {}, dict):
            return invalid_param("post")
        channel_id = str(body.get("channel_id") or "")
        # The permission check runs before the channel lookup: a non-member gets 403, not 404.
        if not self._may_post(me, channel_id):
            return forbidden()
        channel = self._channel(channel_id)
        if channel is None or channel["delete_at"]:
            return invalid_param("post.channel_id")
        message = str(body.get("message") or "")
        if bad := _invalid_post(message, body.get("props") or {}):
            return bad
        root_id = str(body.get("root_id") or "")
        if root_id and (bad := self._check_root(root_id, channel_id)):
            return bad
        pending_id = str(body.get("pending_post_id") or "")
        if pending_id and (dup := self.state.pending_post(pending_id)) is not None:
            dup_channel = self._channel(dup["channel_id"])
            if dup_channel is not None and self.state.can_read_channel(me, dup_channel):
                return ok(strip_action_integrations(dup), status=201)
        post = self.state.create_post(
            me["id"], channel_id, message, root_id, body.get("props") or {}, body.get("file_ids") or None
        )
        if pending_id:
            self.state.remember_pending(pending_id, post["id"])
            post["pending_post_id"] = pending_id
        return ok(strip_action_integrations(post), status=201)

    def _check_root(self, root_id: str, channel_id: str) -> Response | None:
        root = self._live_post(root_id)
        if root is None or root["root_id"]:
            return app_error(400, "api.post.create_post.root_id.app_error")
        if root["channel_id"] != channel_id:
            return app_error(400, "api.post.create_post.channel_root_id.app_error")
        return None

    async def get_post(self, request: Request, me: JsonDict) -> Response:
        post = self._readable_post(request, me)
        return post if isinstance(post, Response) else ok(strip_action_integrations(post))

    def _editable_post(self, request: Request, me: JsonDict) -> JsonDict | Response:
        post = self._readable_post(request, me)
        if isinstance(post, Response):
            return post
        if post["user_id"] != me["id"] and not self.state.is_admin(me):
            return forbidden()
        return post

    async def update_post(self, request: Request, me: JsonDict) -> Response:
        post = self._editable_post(request, me)
        if isinstance(post, Response):
            return post
        body, bad = await read_json(request, "post")
        if bad:
            return bad
        if not isinstance(body, dict) or body.get("id") != post["id"]:
            return invalid_param("id")
        props = body.get("props") or {}
        if not isinstance(props, dict):
            return invalid_param("post")
        # A full update: message and props are replaced by what the client sent.
        message = str(body.get("message") or "")
        if bad := _invalid_post(message, props):
            return bad
        updated = self.state.update_post(post["id"], message, props, is_pinned=bool(body.get("is_pinned")))
        return ok(strip_action_integrations(updated))

    async def patch_post(self, request: Request, me: JsonDict) -> Response:
        post = self._editable_post(request, me)
        if isinstance(post, Response):
            return post
        body, bad = await read_json(request, "post")
        if bad:
            return bad
        if not isinstance(body, dict) or not isinstance(body.get("props", {}), dict | None):
            return invalid_param("post")
        fields = {"is_pinned": bool(body["is_pinned"])} if body.get("is_pinned") is not None else {}
        message = body["message"] if isinstance(body.get("message"), str) else post["message"]
        if bad := _invalid_post(message, body.get("props") or post["props"]):
            return bad
        updated = self.state.update_post(post["id"], message, body.get("props"), **fields)
        return ok(strip_action_integrations(updated))

    async def delete_post(self, request: Request, me: JsonDict) -> Response:
        post = self._editable_post(request, me)
        if isinstance(post, Response):
            return post
        self.state.delete_post(post["id"], me["id"])
        return status_ok()

    async def post_thread(self, request: Request, me: JsonDict) -> Response:
        post = self._readable_post(request, me)
        if isinstance(post, Response):
            return post
        posts = self.state.thread(post["root_id"] or post["id"])
        return ok(_post_list(list(reversed(posts)), extra=[]))

    async def create_ephemeral(self, request: Request, me: JsonDict) -> Response:
        body, bad = await read_json(request, "body")
        if bad:
            return bad
        if not isinstance(body, dict) or not body.get("user_id"):
            return invalid_param("user_id")
        if not isinstance(body.get("post"), dict):
            return invalid_param("post")
        # api4/post.go createEphemeralPost: SessionHasPermissionTo(PermissionCreatePostEphemeral), a
        # system-scope permission that only the system_admin role holds (a bot account is not enough).
        if not self.state.is_admin(me):
            return forbidden()
        post = dict(body["post"], user_id=me["id"], type="")
        sent = self.state.send_ephemeral(str(body["user_id"]), post)
        return ok(sent, status=201)

    async def channel_posts(self, request: Request, me: JsonDict) -> Response:
        if bad := check_ids(request, "channel_id"):
            return bad
        channel = self._channel(request.path_params["channel_id"])
        if channel is None:
            return app_error(404, "app.channel.get.existing.app_error")
        if not self.state.can_read_channel(me, channel):
            return forbidden()
        query = _PostQuery.parse(request)
        if isinstance(query, Response):
            return query
        if query.since:
            return ok(query.run_since(self.state.channel_posts(channel["id"], include_deleted=True)))
        return ok(query.run(self.state.channel_posts(channel["id"])))


class _PostQuery:
    """page/per_page/since/before/after of ``GET /channels/{id}/posts``."""

    def __init__(self, page: int, per_page: int, since: int, before: str, after: str) -> None:
        self.page, self.per_page, self.since = page, per_page, since
        self.before, self.after = before, after

    @classmethod
    def parse(cls, request: Request) -> _PostQuery | Response:
        q = request.query_params
        numbers: dict[str, int] = {}
        for name, default in (("page", 0), ("per_page", _DEFAULT_PER_PAGE), ("since", 0)):
            raw = q.get(name, "")
            if raw and not raw.isdigit():
                return invalid_url_param(name)
            numbers[name] = int(raw) if raw else default
        for name in ("before", "after"):
            if q.get(name) and not is_valid_id(q[name]):
                return invalid_param(name)
        per_page = min(numbers["per_page"], _MAX_PER_PAGE)
        return cls(numbers["page"], per_page, numbers["since"], q.get("before", ""), q.get("after", ""))

    def run_since(self, chrono: list[JsonDict]) -> JsonDict:
        """Posts changed after ``since``, deleted ones included, at most 1000 of them (in storage
        order: the real query has no ORDER BY before its LIMIT), and their roots; newest first."""
        changed = [p for p in chrono if p["update_at"] > self.since][:_SINCE_LIMIT]
        changed.sort(key=lambda p: p["create_at"], reverse=True)
        return _post_list(changed, extra=_missing_roots(changed, chrono))

    def run(self, chrono: list[JsonDict]) -> JsonDict:
        """``chrono`` is the channel's live posts, oldest first."""
        ids = [p["id"] for p in chrono]
        if self.after:
            start = ids.index(self.after) + 1 if self.after in ids else len(ids)
            lo = start + self.page * self.per_page
            window, has_more = chrono[lo : lo + self.per_page], lo + self.per_page < len(chrono)
        else:
            end = ids.index(self.before) if self.before in ids else (0 if self.before else len(ids))
            hi = end - self.page * self.per_page
            window, has_more = chrono[max(hi - self.per_page, 0) : max(hi, 0)], hi - self.per_page > 0
        result = _post_list(list(reversed(window)), extra=_missing_roots(window, chrono))
        result["has_next"] = has_more
        if window:
            first, last = ids.index(window[0]["id"]), ids.index(window[-1]["id"])
            result["prev_post_id"] = ids[first - 1] if first > 0 else ""
            result["next_post_id"] = ids[last + 1] if last + 1 < len(ids) else ""
        return result


def _invalid_post(message: str, props: object) -> Response | None:
    """The 400 of Post.IsValid for a message or props over their limits, else None."""
    if len(message) > _MAX_MESSAGE_RUNES:
        return app_error(
            400, "model.post.is_valid.message_length.app_error", Length=len(message), MaxLength=_MAX_MESSAGE_RUNES
        )
    if len(json.dumps(props, ensure_ascii=False, separators=(",", ":"))) > _MAX_PROPS_RUNES:
        return app_error(400, "model.post.is_valid.props.app_error")
    return None


def _missing_roots(window: list[JsonDict], chrono: list[JsonDict]) -> list[JsonDict]:
    """Root posts of replies in the page that are not in it: the real server sends them too."""
    in_window = {p["id"] for p in window}
    wanted = {p["root_id"] for p in window if p["root_id"] and p["root_id"] not in in_window}
    return [p for p in chrono if p["id"] in wanted]


def _post_list(newest_first: list[JsonDict], extra: list[JsonDict]) -> JsonDict:
    """A model.PostList: ``order`` newest first, ``posts`` by id (integrations stripped)."""
    posts = {p["id"]: strip_action_integrations(p) for p in [*newest_first, *extra]}
    return {
        "order": [p["id"] for p in newest_first],
        "posts": posts,
        "next_post_id": "",
        "prev_post_id": "",
        "has_next": False,
    }


async def _not_found(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    if status == 405:
        return app_error(405, "api.context.405.app_error")
    return app_error(404, "api.context.404.app_error")


def create_app(state: State) -> ASGIApp:
    """The emulator's ASGI app, faults applied before any route."""
    routes: list[BaseRoute] = [
        *_CoreRoutes(state).routes(),
        *IntegrationRoutes(state).routes(),
        *WebRoutes(state).routes(),
        WebSocketRoute("/api/v4/websocket", websocket_endpoint(state)),
    ]
    app = Starlette(routes=routes, exception_handlers={404: _not_found, 405: _not_found})
    return FaultMiddleware(app, state.faults, error_body)
