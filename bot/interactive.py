"""Buttons and dialogs: signed, expiring contexts bound to the one user allowed to use them.

Mattermost does not sign the requests it sends when a button is pressed or a dialog submitted, and
any user can craft a post with buttons pointing at the bot. So the bot signs every context it
hands out (HMAC-SHA256 with its signing key) and checks, on the way back, the signature, the expiry
and that the presser is the user the button was made for.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.outbox import Post

if TYPE_CHECKING:
    from bot.runtime import Bot

Json = dict[str, Any]
ANY_USER = "*"


class Refused(Exception):
    """A press or submission the bot will not act on; ``key`` is the catalog entry saying why."""

    def __init__(self, key: str, forged: bool = False) -> None:
        super().__init__(key)
        self.key = key
        self.forged = forged


@dataclass(frozen=True)
class Signed:
    action: str
    data: Json
    user_id: str
    expires: int
    ephemeral: bool = False  # the button sits on an ephemeral post, which older servers cannot update


class Signer:
    def __init__(self, key: bytes, ttl: int = 300) -> None:
        self._key = key
        self.ttl = ttl

    def _mac(self, payload: list[Any]) -> str:
        raw = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        return hmac.new(self._key, raw, hashlib.sha256).hexdigest()

    def sign(self, action: str, data: Json, user_id: str, ttl: int | None = None, ephemeral: bool = False) -> Json:
        expires = int(time.time()) + (ttl or self.ttl)
        nonce = secrets.token_hex(8)
        context = {
            "action": action,
            "data": data,
            "user": user_id,
            "exp": expires,
            "nonce": nonce,
            "sig": self._mac([action, data, user_id, expires, nonce]),
        }
        if ephemeral:
            context["eph"] = True
            context["sig"] = self._mac([action, data, user_id, expires, nonce, True])
        return context

    def verify(self, context: Any, presser_id: str) -> Signed:
        if not isinstance(context, dict):
            raise Refused("actions.forged", forged=True)
        try:
            action, data, user, expires, nonce, sig = (
                context["action"],
                context["data"],
                context["user"],
                int(context["exp"]),
                context["nonce"],
                str(context["sig"]),
            )
        except (KeyError, TypeError, ValueError):
            raise Refused("actions.forged", forged=True) from None
        ephemeral = context.get("eph") is True
        expected = self._mac([action, data, user, expires, nonce] + ([True] if ephemeral else []))
        if not hmac.compare_digest(expected, sig):
            raise Refused("actions.forged", forged=True)
        if expires < time.time():
            raise Refused("actions.expired")
        if user != ANY_USER and user != presser_id:
            raise Refused("actions.not_yours")
        return Signed(str(action), dict(data), str(user), expires, ephemeral)


@dataclass
class Press:
    """A button press or a dialog submission, once its context is verified."""

    action: str
    data: Json
    user_id: str
    user_name: str
    channel_id: str
    team_id: str
    post_id: str
    trigger_id: str
    submission: Json = field(default_factory=dict)  # dialogs only; may hold secrets: never log it


@dataclass
class PressResult:
    """``update`` replaces the post carrying the button; ``ephemeral`` is shown to the presser only;
    ``errors`` (dialogs) are shown next to the fields."""

    update: Post | None = None
    ephemeral: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    def action_body(self) -> Json:
        body: Json = {}
        if self.update is not None:
            body["update"] = self.update.body()
        if self.ephemeral:
            body["ephemeral_text"] = self.ephemeral
        return body

    def dialog_body(self) -> Json:
        body: Json = {}
        if self.errors:
            body["errors"] = self.errors
        if self.ephemeral:
            body["error"] = self.ephemeral  # shown at the bottom of the dialog
        return body


PressHandler = Callable[[Press, "Bot"], Awaitable[PressResult]]
ACTIONS: dict[str, PressHandler] = {}


def action(name: str) -> Callable[[PressHandler], PressHandler]:
    """Register what a button (or a dialog with this callback) does."""

    def decorate(handler: PressHandler) -> PressHandler:
        ACTIONS[name] = handler
        return handler

    return decorate


def button(
    bot_url: str,
    signer: Signer,
    *,
    name: str,
    label: str,
    user_id: str,
    data: Json,
    style: str = "default",
    ttl: int | None = None,
    ephemeral: bool = False,
) -> Json:
    """An interactive message action whose context only ``user_id`` can use, until it expires.

    ``ephemeral``: the button goes on an ephemeral post (a command's answer).
    """
    context = signer.sign(name, data, user_id, ttl, ephemeral)
    return {
        "id": action_id(name, label, str(context["nonce"])),
        "name": label,
        "type": "button",
        "style": style,
        "integration": {"url": f"{bot_url}/mattermost/actions", "context": context},
    }


# mattermost/mattermost:server/channels/api4/integration_action.go InitAction routes presses to
# "/actions/{action_id:[A-Za-z0-9]+}": any other character (é, ç, _, -) is the router's 404.
_NOT_ID = re.compile(r"[^A-Za-z0-9]")


def action_id(name: str, label: str, nonce: str) -> str:
    """An id the press route accepts: ASCII letters and digits only (accents folded: ``Résolu`` →
    ``Resolu``), ending with the context's nonce so that two buttons of one post never share one
    (the server presses the first action with the id, model.Post.GetAction)."""
    folded = unicodedata.normalize("NFKD", f"{name}{label}").encode("ascii", "ignore").decode("ascii")
    return _NOT_ID.sub("", folded)[:24] + _NOT_ID.sub("", nonce)[:16]
