"""In-memory data of the Mattermost emulator: users, teams, channels, posts, commands.

Everything lives in :class:`State`, guarded by one re-entrant lock because tests and the sandbox read
it from another thread than the emulator's event loop. JSON shapes follow Mattermost's model package
(``server/public/model``): user, team, channel, channel member, post and command objects carry the
same keys as the real server's answers.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from services.emulators.base import Faults
from services.emulators.mattermost_hub import Connection, Hub

JsonDict = dict[str, Any]

# Mattermost's model.NewId(): 16 random bytes in base32 with this alphabet, padding dropped -> 26 chars.
_MM_ALPHABET = "ybndrfg8ejkmcpqxot1uwisza345h769"
_STD_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_TO_MM = str.maketrans(_STD_ALPHABET, _MM_ALPHABET)
_ID_RE = re.compile(r"^[a-z0-9]{26}$")
_HASHTAG_RE = re.compile(r"(?<![\w#])#([A-Za-z][\w\-.]{2,})")
_AT_MENTION_RE = re.compile(r"\B@([A-Za-z0-9][A-Za-z0-9.\-_:]*)")
_CHANNEL_MENTION_RE = re.compile(r"\B~([A-Za-z0-9\-_]+)")

# Props a post action keeps from the original post when the integration replaces the props
# (model.PostActionRetainPropKeys).
RETAINED_PROP_KEYS = ("from_webhook", "override_username", "override_icon_url")
_MAC_SIZE = hashlib.sha256().digest_size


def new_id() -> str:
    """A fresh id in Mattermost's format (26 chars of ``[a-z0-9]``)."""
    return base64.b32encode(os.urandom(16)).decode().translate(_TO_MM).rstrip("=").lower()[:26]


def is_valid_id(value: str) -> bool:
    return bool(_ID_RE.match(value))


def now_ms() -> int:
    return int(time.time() * 1000)


def parse_hashtags(message: str) -> str:
    return " ".join(f"#{tag}" for tag in _HASHTAG_RE.findall(message))


def possible_at_mentions(text: str) -> list[str]:
    """Lower-cased @names in order of appearance, without duplicates (app.possibleAtMentions)."""
    seen: list[str] = []
    for name in _AT_MENTION_RE.findall(text):
        lowered = name.lower()
        if lowered not in seen:
            seen.append(lowered)
    return seen


def channel_mentions(text: str) -> list[str]:
    seen: list[str] = []
    for name in _CHANNEL_MENTION_RE.findall(text):
        if name not in seen:
            seen.append(name)
    return seen


@dataclass
class CommandHook:
    """The ``response_url`` of one slash-command execution (model.CommandWebhook)."""

    id: str
    command_id: str
    user_id: str
    channel_id: str
    root_id: str
    created: float  # time.monotonic()
    use_count: int = 0


@dataclass
class RecordedRequest:
    method: str
    path: str
    auth_ok: bool | None  # None: route without authentication
    user_id: str = ""


@dataclass
class _Pending:
    post_id: str
    expires: float  # time.monotonic()


@dataclass
class _Store:
    users: dict[str, JsonDict] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # token -> user id
    teams: dict[str, JsonDict] = field(default_factory=dict)
    team_members: dict[str, set[str]] = field(default_factory=dict)
    channels: dict[str, JsonDict] = field(default_factory=dict)
    channel_members: dict[str, set[str]] = field(default_factory=dict)
    commands: dict[str, JsonDict] = field(default_factory=dict)
    hooks: dict[str, CommandHook] = field(default_factory=dict)
    pending: dict[str, _Pending] = field(default_factory=dict)


class State:
    """All the emulator's data. Seed it with the ``add_*`` helpers before (or while) serving.

    Timings are attributes so tests can shrink them: ``trigger_ttl`` (seconds a trigger id stays
    valid, the real server uses OutgoingIntegrationRequestsTimeout = 30 s), ``pending_post_ttl``
    (de-duplication window of ``pending_post_id``, 30 s in app/post.go), ``integration_timeout``
    (outgoing requests to slash commands, buttons and dialogs, 30 s), ``response_url_ttl`` and
    ``response_url_max_uses`` (30 min and 5 uses, model.CommandWebhook), ``action_cookie_ttl``
    (seconds the button cookie of an ephemeral post stays valid; None, the default, is the real
    server's behaviour: its cookies never expire).
    """

    server_version = "10.11.0"

    def __init__(self, site_url: str = "") -> None:
        self.site_url = site_url
        self.lock = threading.RLock()
        self.faults = Faults()
        self.trigger_ttl = 30.0
        self.pending_post_ttl = 30.0
        self.integration_timeout = 30.0
        self.response_url_ttl = 30 * 60.0
        self.response_url_max_uses = 5
        self.action_cookie_ttl: float | None = None
        self.posts: dict[str, JsonDict] = {}
        # {"user_id": target, "post": post as the client sees it}; an update replaces its post.
        self.ephemeral: list[JsonDict] = []
        self.dialogs_opened: list[JsonDict] = []  # {"user_id": target, "request": open request}
        self.requests: list[RecordedRequest] = []
        self.db = _Store()
        self.hub = Hub(new_id)
        self.web: Any = None  # mattermost_web.WebView once the sandbox turns its web view on
        # How ``sender_name`` of ``posted`` events names people (TeammateNameDisplay): "username"
        # gives "@username", "full_name" the first and last names (GetDisplayNameWithPrefix).
        self.teammate_name_display = "username"
        # Signs trigger ids; the real server signs them with its asymmetric key (ECDSA).
        self._signing_key = secrets.token_bytes(32)
        # Signs button cookies; the real server encrypts them with AES-GCM (PostActionCookieSecret).
        self._cookie_key = secrets.token_bytes(32)

    # ----------------------------------------------------------------- seeding
    def add_user(
        self,
        username: str,
        email: str | None = None,
        first_name: str = "",
        last_name: str = "",
        admin: bool = False,
        is_bot: bool = False,
        locale: str = "fr",
    ) -> tuple[JsonDict, str]:
        """Create a user and a personal access token for it; returns (user JSON, token)."""
        stamp = now_ms()
        user: JsonDict = {
            "id": new_id(),
            "create_at": stamp,
            "update_at": stamp,
            "delete_at": 0,
            "username": username.lower(),
            "auth_data": "",
            "auth_service": "",
            "email": (email or f"{username.lower()}@interieur.gouv.fr").lower(),
            "email_verified": True,
            "nickname": "",
            "first_name": first_name,
            "last_name": last_name,
            "position": "",
            "roles": "system_user system_admin" if admin else "system_user",
            "notify_props": {"channel": "true", "desktop": "mention", "email": "true", "push": "mention"},
            "last_password_update": stamp,
            "locale": locale,
            "timezone": {
                "automaticTimezone": "Europe/Paris",
                "manualTimezone": "",
                "useAutomaticTimezone": "true",
            },
            "is_bot": is_bot,
            "disable_welcome_email": False,
            "props": {},
        }
        if is_bot:
            user["bot_description"] = ""
        token = new_id()
        with self.lock:
            self.db.users[user["id"]] = user
            self.db.tokens[token] = user["id"]
        return copy.deepcopy(user), token

    def add_token(self, user_id: str) -> str:
        """Another personal access token for an existing user."""
        token = new_id()
        with self.lock:
            self.db.tokens[token] = user_id
        return token

    def revoke_token(self, token: str) -> None:
        with self.lock:
            self.db.tokens.pop(token, None)

    def add_team(self, name: str, display_name: str) -> JsonDict:
        stamp = now_ms()
        team: JsonDict = {
            "id": new_id(),
            "create_at": stamp,
            "update_at": stamp,
            "delete_at": 0,
            "display_name": display_name,
            "name": name,
            "description": "",
            "email": "",
            "type": "O",
            "company_name": "",
            "allowed_domains": "",
            "invite_id": new_id(),
            "allow_open_invite": False,
            "scheme_id": None,
            "group_constrained": None,
            "policy_id": None,
            "cloud_limits_archived": False,
        }
        with self.lock:
            self.db.teams[team["id"]] = team
            self.db.team_members[team["id"]] = set()
        return copy.deepcopy(team)

    def add_team_member(self, team_id: str, user_id: str) -> None:
        with self.lock:
            self.db.team_members[team_id].add(user_id)

    def add_channel(
        self, team_id: str, name: str, display_name: str, type: str = "O", creator_id: str = ""
    ) -> JsonDict:
        """A team channel; ``creator_id`` is who made it ("" for one the system seeded)."""
        if type not in ("O", "P"):
            raise ValueError("type must be 'O' (public) or 'P' (private)")
        return self._new_channel(team_id, name, display_name, type, creator_id=creator_id)

    def add_member(self, channel_id: str, user_id: str) -> None:
        """Make ``user_id`` a member of the channel (and of its team, as Mattermost requires)."""
        with self.lock:
            channel = self.db.channels[channel_id]
            if channel["team_id"]:
                self.db.team_members[channel["team_id"]].add(user_id)
            self.db.channel_members[channel_id].add(user_id)

    def remove_member(self, channel_id: str, user_id: str) -> None:
        with self.lock:
            self.db.channel_members[channel_id].discard(user_id)

    def register_command(
        self,
        team_id: str,
        trigger: str,
        url: str,
        token: str | None = None,
        method: str = "P",
        creator_id: str = "",
        **extra: Any,
    ) -> JsonDict:
        """A custom slash command, as ``POST /api/v4/commands`` creates it (token generated if None)."""
        stamp = now_ms()
        command: JsonDict = {
            "id": new_id(),
            "token": token or new_id(),
            "create_at": stamp,
            "update_at": stamp,
            "delete_at": 0,
            "creator_id": creator_id,
            "team_id": team_id,
            "trigger": trigger.lower().lstrip("/"),
            "method": method,
            "username": "",
            "icon_url": "",
            "auto_complete": False,
            "auto_complete_desc": "",
            "auto_complete_hint": "",
            "display_name": "",
            "description": "",
            "url": url,
            "plugin_id": "",
        }
        command.update({k: v for k, v in extra.items() if k in command and k not in ("id", "token")})
        with self.lock:
            self.db.commands[command["id"]] = command
        return copy.deepcopy(command)

    def create_post(
        self,
        user_id: str,
        channel_id: str,
        message: str,
        root_id: str = "",
        props: JsonDict | None = None,
        file_ids: list[str] | None = None,
    ) -> JsonDict:
        """Store a post and push ``posted`` to the channel's connected members (no permission check).

        The REST route checks permissions first; the sandbox uses this to make users "type".
        """
        stamp = now_ms()
        post: JsonDict = {
            "id": new_id(),
            "create_at": stamp,
            "update_at": stamp,
            "edit_at": 0,
            "delete_at": 0,
            "is_pinned": False,
            "user_id": user_id,
            "channel_id": channel_id,
            "root_id": root_id,
            "original_id": "",
            "message": message,
            "type": "",
            "props": dict(props or {}),
            "hashtags": parse_hashtags(message),
            "pending_post_id": "",
            "reply_count": 0,
            "last_reply_at": 0,
            "participants": None,
            "metadata": {},
        }
        if file_ids:
            post["file_ids"] = list(file_ids)
        with self.lock:
            user = self.db.users.get(user_id)
            if user is not None and user["is_bot"]:
                post["props"]["from_bot"] = "true"
            generate_action_ids(post)
            self.posts[post["id"]] = post
            self._count_reply(post, stamp)
            channel = self.db.channels[channel_id]
            channel["last_post_at"] = stamp
            channel["total_msg_count"] += 1
            if not root_id:
                channel["last_root_post_at"] = stamp
                channel["total_msg_count_root"] += 1
            self._broadcast_posted(post, channel)
            return copy.deepcopy(post)

    def send_ephemeral(self, user_id: str, post: JsonDict) -> JsonDict:
        """Deliver an ephemeral post to one user (App.SendEphemeralPost): recorded, pushed, not stored.

        Actions get ids and a signed ``cookie`` replacing their ``integration``
        (model.AddPostActionCookies): the server keeps nothing, the client sends the cookie back
        when a button is pressed. Returns the post as the client sees it.
        """
        stamp = now_ms()
        eph = _ephemeral_json(post)
        eph["create_at"] = eph["create_at"] or stamp
        eph["update_at"] = stamp
        return self._deliver_ephemeral(user_id, eph, "ephemeral_message")

    def update_ephemeral(self, user_id: str, post: JsonDict) -> JsonDict:
        """Replace an ephemeral post for its user (App.UpdateEphemeralPost): ``post_edited`` to them only."""
        eph = _ephemeral_json(post)
        eph["type"] = "system_ephemeral"
        eph["update_at"] = now_ms()
        return self._deliver_ephemeral(user_id, eph, "post_edited")

    def _deliver_ephemeral(self, user_id: str, eph: JsonDict, event: str) -> JsonDict:
        generate_action_ids(eph)
        shown = strip_action_integrations(self.add_action_cookies(eph))
        with self.lock:
            records = [r for r in self.ephemeral if r["user_id"] == user_id and r["post"]["id"] == shown["id"]]
            if records:
                records[0]["post"] = copy.deepcopy(shown)
            else:
                self.ephemeral.append({"user_id": user_id, "post": copy.deepcopy(shown)})
        data = {"post": post_to_client_json(shown)}
        self.publish(event, data, {"channel_id": shown["channel_id"], "user_id": user_id}, {user_id})
        return shown

    def add_action_cookies(self, post: JsonDict) -> JsonDict:
        """A copy whose actions carry a ``cookie`` (model.AddPostActionCookies, PostActionCookie)."""
        marked = copy.deepcopy(post)
        props = marked.get("props") or {}
        retain = {key: props[key] for key in RETAINED_PROP_KEYS if key in props}
        remove = [key for key in RETAINED_PROP_KEYS if key not in props]
        for action in iter_actions(marked):
            cookie = {
                "type": action.get("type") or "",
                "post_id": marked["id"],
                "root_post_id": marked.get("root_id") or marked["id"],
                "channel_id": marked.get("channel_id") or "",
                "data_source": action.get("data_source") or "",
                "integration": action.get("integration"),
                "retain_props": retain,
                "remove_props": remove,
                "iat": now_ms(),  # emulator only: lets action_cookie_ttl expire it
            }
            action["cookie"] = self._seal({key: value for key, value in cookie.items() if value})
        return marked

    def open_action_cookie(self, cookie: str) -> JsonDict | None:
        """The PostActionCookie of a cookie this server signed and not expired, else None."""
        try:
            raw = base64.b64decode(cookie, validate=True)
        except ValueError:
            return None
        body, tag = raw[:-_MAC_SIZE], raw[-_MAC_SIZE:]
        if not body or not hmac.compare_digest(tag, self._cookie_mac(body)):
            return None
        try:
            payload = json.loads(body)
        except ValueError:
            return None
        if not isinstance(payload, dict):
            return None
        issued = payload.get("iat")
        if self.action_cookie_ttl is not None and (
            not isinstance(issued, int) or now_ms() - issued > self.action_cookie_ttl * 1000
        ):
            return None
        return payload

    def _seal(self, payload: JsonDict) -> str:
        body = json.dumps(payload, separators=(",", ":")).encode()
        return base64.b64encode(body + self._cookie_mac(body)).decode()

    def _cookie_mac(self, body: bytes) -> bytes:
        return hmac.new(self._cookie_key, body, hashlib.sha256).digest()

    def update_post(self, post_id: str, message: str, props: JsonDict | None, **fields: Any) -> JsonDict:
        """Replace message/props of a stored post, set edit_at, push ``post_edited``."""
        with self.lock:
            post = self.posts[post_id]
            stamp = now_ms()
            post["message"] = message
            post["hashtags"] = parse_hashtags(message)
            if props is not None:
                post["props"] = props
            post.update(fields)
            generate_action_ids(post)
            post["edit_at"] = stamp
            post["update_at"] = stamp
            self._push_post_event("post_edited", post, {})
            return copy.deepcopy(post)

    def delete_post(self, post_id: str, deleted_by: str) -> None:
        """Soft-delete a post and, for a root post, its replies; push ``post_deleted`` for each."""
        with self.lock:
            stamp = now_ms()
            victims = [p for p in self.posts.values() if p["id"] == post_id or p["root_id"] == post_id]
            for post in victims:
                post["delete_at"] = stamp
                post["update_at"] = stamp
                self._push_post_event("post_deleted", post, {"delete_by": deleted_by})

    def _push_post_event(self, event: str, post: JsonDict, extra: JsonDict) -> None:
        members = set(self.db.channel_members.get(post["channel_id"], set()))
        data = {"post": post_to_client_json(post), **extra}
        self.publish(event, data, {"channel_id": post["channel_id"]}, members)

    def remember_pending(self, pending_post_id: str, post_id: str) -> None:
        with self.lock:
            self.db.pending[pending_post_id] = _Pending(post_id, time.monotonic() + self.pending_post_ttl)

    def pending_post(self, pending_post_id: str) -> JsonDict | None:
        """The post already created with this pending_post_id within the TTL (seenPendingPostIdsCache)."""
        with self.lock:
            entry = self.db.pending.get(pending_post_id)
            if entry is None or entry.expires < time.monotonic():
                self.db.pending.pop(pending_post_id, None)
                return None
            post = self.posts.get(entry.post_id)
            return copy.deepcopy(post) if post is not None else None

    def new_trigger_id(self, user_id: str) -> tuple[str, str]:
        """(client trigger id, signed trigger id) like model.GenerateTriggerId.

        The signed id is base64("<client id>:<user id>:<ms>:<signature>"); it authorises one user
        to open a dialog for ``trigger_ttl`` seconds.
        """
        client_id = new_id()
        payload = f"{client_id}:{user_id}:{now_ms()}"
        signature = base64.b64encode(self._sign(payload)).decode()
        return client_id, base64.b64encode(f"{payload}:{signature}".encode()).decode()

    def decode_trigger_id(self, trigger_id: str) -> tuple[str, str] | str:
        """(client id, user id) of a valid trigger id, or the AppError id explaining the refusal."""
        try:
            decoded = base64.b64decode(trigger_id, validate=True).decode()
        except ValueError:
            return "interactive_message.decode_trigger_id.base64_decode_failed"
        parts = decoded.split(":")
        if len(parts) != 4:
            return "interactive_message.decode_trigger_id.missing_data"
        client_id, user_id, stamp, signature = parts
        payload = f"{client_id}:{user_id}:{stamp}"
        try:
            expected = base64.b64decode(signature, validate=True)
        except ValueError:
            return "interactive_message.decode_trigger_id.base64_decode_failed_signature"
        if not hmac.compare_digest(expected, self._sign(payload)):
            return "interactive_message.decode_trigger_id.verify_signature_failed"
        if not stamp.isdigit() or now_ms() - int(stamp) > self.trigger_ttl * 1000:
            return "interactive_message.decode_trigger_id.expired"
        return client_id, user_id

    def _sign(self, payload: str) -> bytes:
        return hmac.new(self._signing_key, payload.encode(), hashlib.sha256).digest()

    # ----------------------------------------------------------------- queries
    def channel_posts(self, channel_id: str, include_deleted: bool = False) -> list[JsonDict]:
        """Posts of a channel, oldest first (deep copies); live ones only unless ``include_deleted``."""
        with self.lock:
            return [
                copy.deepcopy(p)
                for p in self.posts.values()
                if p["channel_id"] == channel_id and (include_deleted or not p["delete_at"])
            ]

    def thread(self, root_id: str) -> list[JsonDict]:
        """The root post and its live replies, oldest first."""
        with self.lock:
            return [
                copy.deepcopy(p)
                for p in self.posts.values()
                if (p["id"] == root_id or p["root_id"] == root_id) and not p["delete_at"]
            ]

    def find_channel(self, name: str, team_id: str | None = None) -> JsonDict | None:
        with self.lock:
            for channel in self.db.channels.values():
                if channel["name"] == name and (team_id is None or channel["team_id"] == team_id):
                    return copy.deepcopy(channel)
        return None

    def find_user(self, username: str) -> JsonDict | None:
        with self.lock:
            for user in self.db.users.values():
                if user["username"] == username.lower().lstrip("@"):
                    return copy.deepcopy(user)
        return None

    def ephemeral_for(self, user_id: str) -> list[JsonDict]:
        """Ephemeral posts delivered to one user as the client sees them, oldest first."""
        with self.lock:
            return [copy.deepcopy(e["post"]) for e in self.ephemeral if e["user_id"] == user_id]

    def ephemeral_actions(self, user_id: str) -> list[tuple[str, str, str, str]]:
        """(post id, action id, cookie, name) of the buttons of the user's ephemeral posts, oldest first.

        Press one with ``POST /api/v4/posts/{post id}/actions/{action id}`` and ``{"cookie": …}``.
        """
        return [
            (post["id"], str(action.get("id") or ""), str(action.get("cookie") or ""), str(action.get("name") or ""))
            for post in self.ephemeral_for(user_id)
            for action in iter_actions(post)
        ]

    # ----------------------------------------------------------------- internals used by the app
    def user_for_token(self, token: str | None) -> JsonDict | None:
        if not token:
            return None
        with self.lock:
            user_id = self.db.tokens.get(token)
            user = self.db.users.get(user_id or "")
            return None if user is None or user["delete_at"] else user

    def is_admin(self, user: JsonDict) -> bool:
        return "system_admin" in user["roles"].split()

    def is_channel_member(self, channel_id: str, user_id: str) -> bool:
        with self.lock:
            return user_id in self.db.channel_members.get(channel_id, set())

    def is_team_member(self, team_id: str, user_id: str) -> bool:
        with self.lock:
            return user_id in self.db.team_members.get(team_id, set())

    def can_read_channel(self, user: JsonDict, channel: JsonDict) -> bool:
        """Members read any channel; team members also read public ones; admins read all."""
        if self.is_admin(user) or self.is_channel_member(channel["id"], user["id"]):
            return True
        return channel["type"] == "O" and self.is_team_member(channel["team_id"], user["id"])

    def direct_channel(self, user_a: str, user_b: str) -> tuple[JsonDict, bool]:
        """The DM channel of two users, created if needed; (channel, created)."""
        name = "__".join(sorted((user_a, user_b)))
        with self.lock:
            existing = self.find_channel(name, team_id="")
            if existing is not None:
                return existing, False
            channel = self._new_channel("", name, "", "D", creator_id=user_a)
            self.db.channel_members[channel["id"]].update({user_a, user_b})
            return channel, True

    def _new_channel(self, team_id: str, name: str, display_name: str, type_: str, creator_id: str) -> JsonDict:
        stamp = now_ms()
        channel: JsonDict = {
            "id": new_id(),
            "create_at": stamp,
            "update_at": stamp,
            "delete_at": 0,
            "team_id": team_id,
            "type": type_,
            "display_name": display_name,
            "name": name,
            "header": "",
            "purpose": "",
            "last_post_at": 0,
            "total_msg_count": 0,
            "extra_update_at": 0,
            "creator_id": creator_id,
            "scheme_id": None,
            "props": None,
            "group_constrained": None,
            "shared": None,
            "total_msg_count_root": 0,
            "policy_id": None,
            "last_root_post_at": 0,
        }
        with self.lock:
            self.db.channels[channel["id"]] = channel
            self.db.channel_members[channel["id"]] = set()
        return copy.deepcopy(channel)

    def _count_reply(self, post: JsonDict, stamp: int) -> None:
        root = self.posts.get(post["root_id"]) if post["root_id"] else None
        if root is None:
            return
        for item in self.posts.values():
            if item["id"] == root["id"] or item["root_id"] == root["id"]:
                item["reply_count"] += 1
        root["last_reply_at"] = stamp

    def channel_member_json(self, channel_id: str, user_id: str) -> JsonDict:
        with self.lock:
            channel = self.db.channels[channel_id]
            return {
                "channel_id": channel_id,
                "user_id": user_id,
                "roles": "channel_user",
                "last_viewed_at": 0,
                "msg_count": 0,
                "mention_count": 0,
                "mention_count_root": 0,
                "urgent_mention_count": 0,
                "msg_count_root": 0,
                "notify_props": {
                    "desktop": "default",
                    "email": "default",
                    "ignore_channel_mentions": "default",
                    "mark_unread": "all",
                    "push": "default",
                },
                "last_update_at": channel["update_at"],
                "scheme_guest": False,
                "scheme_user": True,
                "scheme_admin": False,
                "explicit_roles": "",
            }

    # ----------------------------------------------------------------- websocket fan-out
    @property
    def _sockets(self) -> list[Connection]:
        """The connections with a socket attached now."""
        return self.hub.active()

    def publish(self, event: str, data: JsonDict, broadcast: JsonDict, user_ids: set[str]) -> None:
        """Queue an event for every connection of ``user_ids``, attached or away (thread-safe)."""
        self.hub.publish({"event": event, "data": data, "broadcast": broadcast_shape(broadcast)}, user_ids)

    def _broadcast_posted(self, post: JsonDict, channel: JsonDict) -> None:
        sender = self.db.users.get(post["user_id"], {"username": ""})
        members = set(self.db.channel_members.get(channel["id"], set()))
        data: JsonDict = {
            "channel_display_name": self._display_name_for(channel, post["user_id"]),
            "channel_name": channel["name"],
            "channel_type": channel["type"],
            "post": post_to_client_json(post),
            "sender_name": self._sender_name(sender),
            "set_online": True,
            "team_id": channel["team_id"],
        }
        mentioned = self._mentioned_members(post["message"], members - {post["user_id"]})
        if mentioned:
            data["mentions"] = json.dumps(mentioned)
        self.publish("posted", data, {"channel_id": channel["id"]}, members)

    def _sender_name(self, sender: JsonDict) -> str:
        """model.User.GetDisplayNameWithPrefix: a full name when configured and set, else @username."""
        if self.teammate_name_display == "full_name":
            full = f"{sender.get('first_name', '')} {sender.get('last_name', '')}".strip()
            if full:
                return full
        return f"@{sender['username']}"

    def _display_name_for(self, channel: JsonDict, sender_id: str) -> str:
        if channel["type"] != "D":
            return str(channel["display_name"])
        sender = self.db.users.get(sender_id)
        return f"@{sender['username']}" if sender else ""

    def _mentioned_members(self, message: str, candidates: set[str]) -> list[str]:
        names = possible_at_mentions(message)
        mentioned = [
            uid for name in names for uid in candidates if self.db.users[uid]["username"] == name.rstrip(".-_")
        ]
        if {"channel", "all", "here"} & set(names):
            mentioned += [uid for uid in candidates if uid not in mentioned]
        return mentioned


def broadcast_shape(partial: JsonDict) -> JsonDict:
    """A full websocket ``broadcast`` object (model.WebsocketBroadcast) from the keys that matter."""
    shape: JsonDict = {
        "omit_users": None,
        "user_id": "",
        "channel_id": "",
        "team_id": "",
        "connection_id": "",
        "omit_connection_id": "",
    }
    shape.update(partial)
    return shape


def iter_actions(post: JsonDict) -> Iterator[JsonDict]:
    """The attachment actions of a post (model.Post.Attachments()[*].Actions), in order."""
    attachments = (post.get("props") or {}).get("attachments")
    for attachment in attachments if isinstance(attachments, list) else []:
        actions = attachment.get("actions") if isinstance(attachment, dict) else None
        for action in actions if isinstance(actions, list) else []:
            if isinstance(action, dict):
                yield action


def strip_action_integrations(post: JsonDict) -> JsonDict:
    """A copy without ``integration`` in attachment actions: the server never shows them to clients."""
    clean = copy.deepcopy(post)
    for action in iter_actions(clean):
        action.pop("integration", None)
    return clean


def post_to_client_json(post: JsonDict) -> str:
    """The post as the string the websocket events carry (Post.ToJSON)."""
    return json.dumps(strip_action_integrations(post), separators=(",", ":"))


def generate_action_ids(post: JsonDict) -> None:
    """Give every attachment action an id, as Post.GenerateActionIds does before saving."""
    for action in iter_actions(post):
        if not action.get("id"):
            action["id"] = new_id()


def find_action(post: JsonDict, action_id: str) -> JsonDict | None:
    return next((a for a in iter_actions(post) if a.get("id") == action_id), None)


def _ephemeral_json(post: JsonDict) -> JsonDict:
    """A model.Post of type system_ephemeral from the fields given (missing ones zero, like Go)."""
    return {
        "id": str(post.get("id") or "") or new_id(),
        "create_at": _int(post.get("create_at")),
        "update_at": _int(post.get("update_at")),
        "edit_at": _int(post.get("edit_at")),
        "delete_at": 0,
        "is_pinned": bool(post.get("is_pinned")),
        "user_id": str(post.get("user_id") or ""),
        "channel_id": str(post.get("channel_id") or ""),
        "root_id": str(post.get("root_id") or ""),
        "original_id": "",
        "message": str(post.get("message") or ""),
        "type": str(post.get("type") or "") or "system_ephemeral",
        "props": copy.deepcopy(post["props"]) if isinstance(post.get("props"), dict) else {},
        "hashtags": "",
        "pending_post_id": "",
        "reply_count": 0,
        "last_reply_at": 0,
        "participants": None,
        "metadata": {},
    }


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
