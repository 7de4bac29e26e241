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
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.outbox import Post

if TYPE_CHECKING:
    from bot.runtime import Bot

Json = dict[str, Any]
ANY_USER = "*"
_HEX_NONCE = re.compile(r"[0-9a-f]{16}")
_HEX_SIG = re.compile(r"[0-9a-f]{64}")


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
    nonce: str = ""  # shared by the buttons of one card: whichever is used first, the others are too
    label: str = ""  # the button's text, to say on the card what was chosen


class _Context(BaseModel):
    """The shape of a signed context, checked before its signature is computed."""

    model_config = ConfigDict(strict=True, extra="ignore")

    action: str = Field(max_length=64)
    data: dict[str, Any]
    user: str = Field(max_length=64)
    exp: int = Field(ge=0, lt=2**53)
    nonce: str = Field(pattern=_HEX_NONCE.pattern)
    sig: str = Field(pattern=_HEX_SIG.pattern)
    eph: bool = False
    label: str = Field(default="", max_length=200)


class Signer:
    def __init__(self, key: bytes, ttl: int = 300) -> None:
        self._key = key
        self.ttl = ttl

    def _mac(self, payload: list[Any]) -> str:
        raw = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        return hmac.new(self._key, raw, hashlib.sha256).hexdigest()

    @staticmethod
    def _payload(action: str, data: Json, user: str, expires: int, nonce: str, eph: bool, label: str) -> list[Any]:
        # Older contexts had neither ``eph`` nor ``label``: they are appended only when set.
        return [action, data, user, expires, nonce] + ([True] if eph else []) + ([label] if label else [])

    @staticmethod
    def new_nonce() -> str:
        return secrets.token_hex(8)

    def sign(
        self,
        action: str,
        data: Json,
        user_id: str,
        ttl: int | None = None,
        ephemeral: bool = False,
        *,
        nonce: str | None = None,
        label: str = "",
    ) -> Json:
        expires = int(time.time()) + (ttl or self.ttl)
        nonce = nonce or self.new_nonce()
        context: Json = {"action": action, "data": data, "user": user_id, "exp": expires, "nonce": nonce}
        if ephemeral:
            context["eph"] = True
        if label:
            context["label"] = label
        context["sig"] = self._mac(self._payload(action, data, user_id, expires, nonce, ephemeral, label))
        return context

    def verify(self, context: Any, presser_id: str) -> Signed:
        """The signed context, or ``Refused``: whatever ``context`` is, nothing else comes out."""
        try:
            shape = _Context.model_validate(context)
            payload = self._payload(
                shape.action, shape.data, shape.user, shape.exp, shape.nonce, shape.eph, shape.label
            )
            expected = self._mac(payload)
        except (ValidationError, ValueError, TypeError, RecursionError):  # incl. lone surrogates (UnicodeError)
            raise Refused("actions.forged", forged=True) from None
        # Both are 64 ASCII hex digits here: compare_digest never sees anything else.
        if not hmac.compare_digest(expected.encode("ascii"), shape.sig.encode("ascii")):
            raise Refused("actions.forged", forged=True)
        if shape.exp < time.time():
            raise Refused("actions.expired")
        if shape.user != ANY_USER and shape.user != presser_id:
            raise Refused("actions.not_yours")
        return Signed(shape.action, dict(shape.data), shape.user, shape.exp, shape.eph, shape.nonce, shape.label)


class AlreadyUsed(Exception):
    """The context's nonce was used by an earlier press or submission (``use`` says whose)."""

    def __init__(self, use: NonceUse | None) -> None:
        super().__init__("already used")
        self.use = use


@dataclass(frozen=True)
class NonceUse:
    user_id: str
    action: str
    label: str
    used_at: float


class Once(Protocol):
    """What a press uses its nonce with (bot/nonces.py)."""

    claimed: bool

    def claim(self) -> None: ...

    def effect(self) -> AbstractContextManager[None]: ...


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
    once: Once | None = None

    def claim(self) -> None:
        """Just before an effect outside SQLite (Vault, GitLab…): the context is used from now on,
        so that a concurrent second press loses even if the call then fails (claim-then-act).
        ``AlreadyUsed`` if another press got there first."""
        if self.once is not None:
            self.once.claim()

    def effect(self) -> AbstractContextManager[None]:
        """``with press.effect(): …`` — the press's SQLite effects and the use of its context in
        one transaction: either both or neither. ``AlreadyUsed`` (nothing written) if another
        press got there first."""
        if self.once is None:
            return nullcontext()
        return self.once.effect()


@dataclass
class PressResult:
    """``update`` replaces the post carrying the button; ``ephemeral`` is shown to the presser only
    (for a dialog: as an ephemeral post, the dialog closing); ``errors`` (dialogs) are shown next to
    the fields and ``error`` at the bottom of the dialog, which stays open."""

    update: Post | None = None
    ephemeral: str = ""
    errors: dict[str, str] = field(default_factory=dict)
    error: str = ""

    def action_body(self) -> Json:
        """A model.PostActionIntegrationResponse (mattermost/mattermost:server/public/model/
        integration_action.go): ``skip_slack_parsing`` keeps ``ephemeral_text`` as written, as the
        server otherwise turns Slack links into markdown (App.DoPostActionWithCookie)."""
        body: Json = {}
        if self.update is not None:
            body["update"] = self.update.body()
        if self.ephemeral:
            body["ephemeral_text"] = self.ephemeral
            body["skip_slack_parsing"] = True
        return body

    def dialog_body(self) -> Json:
        """A model.SubmitDialogResponse: only ``error`` and ``errors`` are shown (there is no
        ``ephemeral_text`` there); ``ephemeral`` is posted by the caller through the outbox."""
        body: Json = {}
        if self.errors:
            body["errors"] = self.errors
        if self.error:
            body["error"] = self.error
        return body


PressHandler = Callable[[Press, "Bot"], Awaitable[PressResult]]
ACTIONS: dict[str, PressHandler] = {}

# How an action uses its context's nonce (bot/presses.py applies it):
NonceUseMode = Literal["once", "in_handler", "reusable"]
# ONCE uses the context even when the handler then refuses (rights): a button any user may press
# (ANY_USER) must be IN_HANDLER, claiming after its rights check, or the first passer-by uses it up.
ONCE: NonceUseMode = "once"  # claimed by the framework before the handler runs (claim-then-act)
IN_HANDLER: NonceUseMode = "in_handler"  # the handler claims at its effect: press.effect() / press.claim()
REUSABLE: NonceUseMode = "reusable"  # navigation only, no effect: the same button may be pressed again
USES: dict[str, NonceUseMode] = {}


def action(name: str, use: NonceUseMode = ONCE) -> Callable[[PressHandler], PressHandler]:
    """Register what a button (or a dialog with this callback) does, and how its context is used up."""

    def decorate(handler: PressHandler) -> PressHandler:
        ACTIONS[name] = handler
        USES[name] = use
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
    nonce: str | None = None,
) -> Json:
    """An interactive message action whose context only ``user_id`` can use, once, until it expires.

    ``ephemeral``: the button goes on an ephemeral post (a command's answer). ``nonce``: shared by
    the buttons of one choice (Confirm / Cancel), so that using one uses them all.
    """
    context = signer.sign(name, data, user_id, ttl, ephemeral, nonce=nonce, label=label)
    return {
        "id": action_id(name, label, str(context["sig"])),
        "name": label,
        "type": "button",
        "style": style,
        "integration": {"url": f"{bot_url}/mattermost/actions", "context": context},
    }


# mattermost/mattermost:server/channels/api4/integration_action.go InitAction routes presses to
# "/actions/{action_id:[A-Za-z0-9]+}": any other character (é, ç, _, -) is the router's 404.
_NOT_ID = re.compile(r"[^A-Za-z0-9]")


def action_id(name: str, label: str, unique: str) -> str:
    """An id the press route accepts: ASCII letters and digits only (accents folded: ``Résolu`` →
    ``Resolu``), ending with the context's signature so that two buttons of one post never share
    one (the server presses the first action with the id, model.Post.GetAction)."""
    folded = unicodedata.normalize("NFKD", f"{name}{label}").encode("ascii", "ignore").decode("ascii")
    return _NOT_ID.sub("", folded)[:24] + _NOT_ID.sub("", unique)[:16]
