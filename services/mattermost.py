"""Mattermost, as the bot account sees it: a thin typed layer over mattermostautodriver.

The driver's own retries are switched off (``max_retries=0``): the outbox decides when to retry and
honours ``Retry-After`` itself, so a slow Mattermost never blocks a request handler.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from mattermostautodriver import AsyncTypedDriver
from mattermostautodriver.exceptions import InvalidMattermostError, MattermostError, TooManyRequests

from bot.ids import is_mattermost_id
from services.base import ssl_context
from services.errors import Failure, ServiceError, failure_for_status

SERVICE = "Mattermost"
Json = dict[str, Any]
SINCE_LIMIT = 1000  # rows of a since= answer (SqlPostStore.GetPostsSince)
PAGE_SIZE = 200  # the most per_page allows (api4 params: PerPageMaximum)
MAX_PAGES = 50


# mattermost/mattermost:server/public/model/user.go (ValidUsernameChars ``^[a-z0-9\.\-_]+$``) and
# model/channel.go (IsValidChannelIdentifier): letters, digits, ``.``, ``-``, ``_``. A name never
# starts with a dot here, so no segment can be ``.`` or ``..``.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,63}")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
# An e-mail address as a path segment (model/user.go IsValidEmail: one "@", no spaces or slashes);
# quoted, it can never be "." or "..".
_EMAIL = re.compile(r"[^@\s/\\]{1,64}@[A-Za-z0-9.\-]{1,190}")


class InvalidPathSegment(ServiceError):
    """A value that is not an id (or a name) where the API path expects one: no request is sent."""

    def __init__(self, what: str) -> None:
        super().__init__(SERVICE, Failure.INVALID, 400, detail=f"invalid {what}")


def _segment(key: str, value: object) -> str:
    """One path segment from a value: ``*name`` keys take a name, ``user`` also ``me``, the others an id."""
    text = value if isinstance(value, str) else ""
    if key.endswith("name"):
        ok = _NAME.fullmatch(text) is not None
    elif key == "email":
        ok = _EMAIL.fullmatch(text) is not None
    else:
        ok = is_mattermost_id(text) or (key == "user" and text == "me")
    if not ok:
        raise InvalidPathSegment(key)
    return quote(text, safe="")


def api_path(template: str, **values: object) -> str:
    """``/api/v4/<template>`` with each ``{key}`` checked by :func:`_segment` and quoted.

    The one place where a Mattermost API path is built: a ``user_id`` of ``../../system/ping`` from
    a slash form or a stored row raises :class:`InvalidPathSegment` here, before any request.
    """
    path = _PLACEHOLDER.sub(lambda m: _segment(m.group(1), values[m.group(1)]), template)
    return f"/api/v4/{path}"


def _check_ids(**values: str) -> None:
    """Ids sent in a request body are checked as path ids are (empty means absent)."""
    for key, value in values.items():
        if value and not is_mattermost_id(value):
            raise InvalidPathSegment(key)


def driver_options(url: str, token: str, timeout: float) -> dict[str, Any]:
    parts = urlsplit(url)
    scheme = parts.scheme or "https"
    return {
        "url": parts.hostname or "localhost",
        "port": parts.port or (443 if scheme == "https" else 80),
        "scheme": scheme,
        "token": token,
        "timeout": timeout,
        "request_timeout": timeout,
        "max_retries": 0,
        "keepalive": True,
        "keepalive_delay": 2,
    }


def _status_of(exc: MattermostError) -> int:
    for attr in ("status_code",):
        value = getattr(exc, attr, None)
        if isinstance(value, int):
            return value
    names = {
        "InvalidOrMissingParameters": 400,
        "NoAccessTokenProvided": 401,
        "NotEnoughPermissions": 403,
        "ResourceNotFound": 404,
        "MethodNotAllowed": 405,
        "ContentTooLarge": 413,
        "FeatureDisabled": 501,
    }
    return names.get(type(exc).__name__, 500)


def _ordered(result: Any) -> list[Json]:
    """The posts of a PostList (``{order, posts}``), in its order (newest first)."""
    posts = result.get("posts", {}) if isinstance(result, dict) else {}
    order = result.get("order", []) if isinstance(result, dict) else []
    return [posts[pid] for pid in order if pid in posts]


class Mattermost:
    def __init__(self, url: str, token: str, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.driver = AsyncTypedDriver(driver_options(url, token, timeout))
        self.driver.client.token = token
        self.bot_user_id = ""
        self.bot_username = ""

    async def close(self) -> None:
        await self.driver.close()

    async def _get(self, template: str, params: Json | None = None, **ids: object) -> Any:
        return await self._call(self.driver.client.get(api_path(template, **ids), params=params))

    async def _post(self, template: str, body: Any, **ids: object) -> Any:
        return await self._call(self.driver.client.post(api_path(template, **ids), options=body))

    async def _put(self, template: str, body: Any, **ids: object) -> Any:
        return await self._call(self.driver.client.put(api_path(template, **ids), options=body))

    async def _call(self, coro: Any) -> Any:
        try:
            return await coro
        except TooManyRequests as exc:
            raise ServiceError(SERVICE, Failure.RATE_LIMITED, 429, retry_after=exc.retry_after) from None
        except InvalidMattermostError as exc:
            raise ServiceError(SERVICE, failure_for_status(exc.status_code), exc.status_code) from None
        except MattermostError as exc:
            status = _status_of(exc)
            raise ServiceError(SERVICE, failure_for_status(status), status) from None
        except httpx.HTTPError:
            raise ServiceError(SERVICE, Failure.UNAVAILABLE) from None

    # -- identity -------------------------------------------------------------------------------

    async def login(self) -> Json:
        """Who the bot is; remembers its id (it authors the posts)."""
        me: Json = await self._get("users/{user}", user="me")
        self.bot_user_id = me["id"]
        self.bot_username = me.get("username", "")
        self.driver.client.userid = me["id"]
        return me

    async def ping(self) -> bool:
        result = await self._get("system/ping")
        return isinstance(result, dict) and result.get("status") == "OK"

    async def get_user(self, user_id: str) -> Json:
        result: Json = await self._get("users/{user}", user=user_id)
        return result

    async def get_user_by_username(self, username: str) -> Json:
        result: Json = await self._get("users/username/{username}", username=username)
        return result

    async def get_user_by_email(self, email: str) -> Json:
        """``GET /users/email/{email}`` (mattermost/mattermost:server/channels/api4/user.go
        ``getUserByEmail``): 403 unless the bot may see e-mails (``PrivacySettings.ShowEmailAddress``
        or system admin), 404 for an unknown address."""
        result: Json = await self._get("users/email/{email}", email=email)
        return result

    async def get_channel(self, channel_id: str) -> Json:
        result: Json = await self._get("channels/{channel}", channel=channel_id)
        return result

    async def teams_of(self, user_id: str) -> list[Json]:
        result = await self._get("users/{user}/teams", user=user_id)
        return list(result) if isinstance(result, list) else []

    async def channel_by_name(self, team_id: str, name: str) -> Json | None:
        try:
            result: Json = await self._get("teams/{team}/channels/name/{channel_name}", team=team_id, channel_name=name)
        except ServiceError as exc:
            if exc.status in (403, 404):
                return None
            raise
        return result

    async def is_member(self, channel_id: str, user_id: str) -> bool:
        try:
            await self._get("channels/{channel}/members/{user}", channel=channel_id, user=user_id)
        except ServiceError as exc:
            if exc.status in (403, 404):
                return False
            raise
        return True

    # -- posts ----------------------------------------------------------------------------------

    async def create_post(
        self,
        channel_id: str,
        message: str,
        props: Json | None = None,
        root_id: str = "",
        pending_post_id: str = "",
    ) -> Json:
        _check_ids(channel_id=channel_id or "-", root_id=root_id)
        body: Json = {"channel_id": channel_id, "message": message, "props": props or {}}
        if root_id:
            body["root_id"] = root_id
        if pending_post_id:
            # The server returns the already-created post for a pending id it has seen recently.
            body["pending_post_id"] = pending_post_id
        result: Json = await self._post("posts", body)
        return result

    async def patch_post(self, post_id: str, message: str, props: Json | None = None) -> Json:
        result: Json = await self._put("posts/{post}/patch", {"message": message, "props": props}, post=post_id)
        return result

    async def get_post(self, post_id: str) -> Json:
        result: Json = await self._get("posts/{post}", post=post_id)
        return result

    async def create_ephemeral(
        self, user_id: str, channel_id: str, message: str, props: Json | None = None, root_id: str = ""
    ) -> Json:
        _check_ids(user_id=user_id or "-", channel_id=channel_id or "-", root_id=root_id)
        post: Json = {"channel_id": channel_id, "message": message, "props": props or {}}
        if root_id:
            post["root_id"] = root_id
        result: Json = await self._post("posts/ephemeral", {"user_id": user_id, "post": post})
        return result

    async def channel_posts_since(self, channel_id: str, since_ms: int) -> list[Json]:
        """Live posts of a channel created or edited since ``since_ms``, oldest first.

        ``GET /channels/{id}/posts?since=`` returns at most 1 000 posts, in no order before its
        limit, deleted ones included (mattermost/mattermost server/channels/store/sqlstore/
        post_store.go GetPostsSince). A full answer may have left some out: then the channel's
        pages (newest first, live posts only) are read back to ``since_ms`` instead, which finds
        every post created since then (edits of older posts are not needed by the callers).
        """
        result = await self._get("channels/{channel}/posts", {"since": since_ms}, channel=channel_id)
        posts = _ordered(result)
        if len(posts) >= SINCE_LIMIT:
            posts = await self._posts_created_since(channel_id, since_ms)
        live = [p for p in posts if not p.get("delete_at")]
        return sorted(live, key=lambda p: int(p.get("create_at") or 0))

    async def _posts_created_since(self, channel_id: str, since_ms: int) -> list[Json]:
        found: list[Json] = []
        for page in range(MAX_PAGES):
            result = await self._get(
                "channels/{channel}/posts", {"page": page, "per_page": PAGE_SIZE}, channel=channel_id
            )
            batch = _ordered(result)
            found += [p for p in batch if int(p.get("create_at") or 0) > since_ms]
            if len(batch) < PAGE_SIZE or int(batch[-1].get("create_at") or 0) <= since_ms:
                break
        return found

    async def channels_of(self, user_id: str, team_id: str) -> list[Json]:
        """The user's channels in a team and their direct messages (api4/channel.go
        getChannelsForTeamForUser, ``GET /users/{user_id}/teams/{team_id}/channels``)."""
        result = await self._get("users/{user}/teams/{team}/channels", user=user_id, team=team_id)
        return list(result) if isinstance(result, list) else []

    async def direct_channel(self, user_a: str, user_b: str) -> Json:
        """The DM channel of two users, created if needed (``POST /channels/direct``)."""
        _check_ids(user_a=user_a or "-", user_b=user_b or "-")
        result: Json = await self._post("channels/direct", [user_a, user_b])
        return result

    async def open_dialog(self, trigger_id: str, url: str, dialog: Json) -> None:
        await self._post("actions/dialogs/open", {"trigger_id": trigger_id, "url": url, "dialog": dialog})

    async def post_to_response_url(self, response_url: str, body: Json, timeout: float = 5.0) -> None:
        """The slash command's own reply channel: no token, valid 30 min, at most 5 uses."""
        try:
            async with httpx.AsyncClient(timeout=timeout, verify=ssl_context()) as client:
                response = await client.post(response_url, json=body)
        except httpx.HTTPError:
            raise ServiceError(SERVICE, Failure.UNAVAILABLE) from None
        if response.status_code >= 400:
            retry = response.headers.get("Retry-After")
            raise ServiceError(
                SERVICE,
                failure_for_status(response.status_code),
                response.status_code,
                retry_after=float(retry) if retry and retry.isdigit() else None,
            )
