"""``/mattermost/actions`` and ``/mattermost/dialogs``: a press or a submission, from body to effect.

These routes are unauthenticated (Mattermost signs nothing it sends there): the body is parsed
with bounds (bot/bounded_json.py) and validated against the real server's request models, strictly,
before anything reads it, so a hostile body gets a 400 with a reason or a 401, never a 500. Then
the signed context is verified, used at most once (bot/nonces.py), and the presser named by the
Mattermost API from ``user_id``: a dialog submission carries no ``user_name``, and an action's
could only be trusted as far as the client that sent it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.bounded_json import BadBody, loads_object
from bot.ids import is_mattermost_id
from bot.interactive import ACTIONS, ONCE, USES, AlreadyUsed, NonceUse, Press, PressResult, Refused, Signed
from bot.logs import log, request_id_var
from bot.nonces import Nonces, PressOnce
from bot.outbox import Post
from bot.runtime import Bot
from services.errors import ServiceError

logger = logging.getLogger("cpn.http")

Id = Annotated[str, Field(max_length=26)]  # empty, or checked by is_mattermost_id after the model
Name = Annotated[str, Field(max_length=256)]
# A dialog's values: text up to DialogElementTextareaMaxLength (3000) or an element's max_length
# (the bot asks for at most 4000); bool elements give booleans; number subtypes may give numbers.
MAX_VALUE_CHARS = 10_000
MAX_FIELDS = 50


class ActionRequest(BaseModel):
    """model.PostActionIntegrationRequest (mattermost/mattermost:server/public/model/integration_action.go)."""

    model_config = ConfigDict(strict=True, extra="ignore")

    user_id: Id
    user_name: Name = ""  # not trusted: the username is asked of Mattermost
    channel_id: Id = ""
    channel_name: Name = ""
    team_id: Id = ""
    team_domain: Name = ""
    post_id: Id = ""
    trigger_id: str = Field(default="", max_length=2048)
    type: str = Field(default="", max_length=16)
    data_source: str = Field(default="", max_length=16)
    context: Any = None  # checked by Signer.verify: anything but a signed context is a 401


class DialogRequest(BaseModel):
    """model.SubmitDialogRequest, as the server posts it to the dialog's URL."""

    model_config = ConfigDict(strict=True, extra="ignore")

    type: str = Field(default="", max_length=32)
    callback_id: str = Field(default="", max_length=256)
    state: str = Field(default="", max_length=8192)
    user_id: Id
    channel_id: Id = ""
    team_id: Id = ""
    submission: dict[str, str | bool | int | float | None] = Field(default_factory=dict, max_length=MAX_FIELDS)
    cancelled: bool = False


class BadPress(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _reason(exc: ValidationError) -> str:
    """The first problem, by field and kind: never the value (a submission may hold a secret)."""
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}"[:160]


def _check_ids(request: ActionRequest | DialogRequest) -> None:
    """Ids reach Mattermost API paths (``/users/<id>``): the real shape, or a 400, before any use."""
    if not is_mattermost_id(request.user_id):
        raise BadPress("user_id: not a Mattermost id")
    for name in ("channel_id", "team_id", "post_id"):
        value = getattr(request, name, "")
        if value and not is_mattermost_id(value):
            raise BadPress(f"{name}: not a Mattermost id")


def parse_action(raw: bytes) -> ActionRequest:
    try:
        request = ActionRequest.model_validate(loads_object(raw))
    except BadBody as exc:
        raise BadPress(exc.reason) from None
    except ValidationError as exc:
        raise BadPress(_reason(exc)) from None
    _check_ids(request)
    return request


def parse_dialog(raw: bytes) -> tuple[DialogRequest, Any]:
    """The submission and its state, parsed from its JSON string (a 400 if it is not JSON)."""
    try:
        request = DialogRequest.model_validate(loads_object(raw))
    except BadBody as exc:
        raise BadPress(exc.reason) from None
    except ValidationError as exc:
        raise BadPress(_reason(exc)) from None
    _check_ids(request)
    for key, value in request.submission.items():
        if len(key) > 300 or (isinstance(value, str) and len(value) > MAX_VALUE_CHARS):
            raise BadPress("submission: value too long")
    try:
        state = loads_object(request.state, max_depth=8) if request.state else None
    except BadBody as exc:
        raise BadPress(f"state: {exc.reason}") from None
    return request, state


def _bad(reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=400)


async def action_request(bot: Bot, raw: bytes) -> Response:
    try:
        request = parse_action(raw)
    except BadPress as exc:
        bot.metrics.inc("cpn_actions_refused_total", reason="malformed")
        return _bad(exc.reason)
    fields = request.model_dump(exclude={"context", "user_name", "channel_name", "team_domain", "type", "data_source"})
    return await run_press(bot, request.context, fields, {}, dialog=False)


async def dialog_request(bot: Bot, raw: bytes) -> Response:
    try:
        request, state = parse_dialog(raw)
    except BadPress as exc:
        bot.metrics.inc("cpn_actions_refused_total", reason="malformed")
        return _bad(exc.reason)
    fields = {"user_id": request.user_id, "channel_id": request.channel_id, "team_id": request.team_id}
    return await run_press(bot, state, fields, dict(request.submission), dialog=True)


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%H:%M")


async def _refusal_of_use(bot: Bot, use: NonceUse | None, dialog: bool) -> str:
    if use is None:  # claimed and released meanwhile: nothing to name
        return bot.tr("presses.used_dialog" if dialog else "presses.used", choice="—", user="—", time="—")
    who = (await bot.identities.get(use.user_id)).username or "—"
    if dialog or not use.label:
        return bot.tr("presses.used_dialog", user=who, time=_clock(use.used_at))
    return bot.tr("presses.used", choice=use.label, user=who, time=_clock(use.used_at))


def _answer(result: PressResult, dialog: bool) -> JSONResponse:
    return JSONResponse(result.dialog_body() if dialog else result.action_body())


async def run_press(
    bot: Bot, context: Any, fields: dict[str, str], submission: dict[str, Any], dialog: bool
) -> Response:
    """Verify the context, use it up once, run its action, answer as Mattermost expects."""
    tr = bot.tr
    user_id = fields["user_id"]
    try:
        signed = bot.signer.verify(context, user_id)
    except Refused as exc:
        bot.metrics.inc("cpn_actions_refused_total", reason=exc.key)
        if exc.forged:
            return JSONResponse({"error": "invalid action context"}, status_code=401)
        return _answer(PressResult(error=tr(exc.key)) if dialog else PressResult(ephemeral=tr(exc.key)), dialog)
    handler = ACTIONS.get(signed.action)
    if handler is None:
        return _answer(PressResult(error=tr("actions.unknown"), ephemeral=tr("actions.unknown")), dialog)
    nonces = Nonces(bot.store)
    use = USES.get(signed.action, ONCE)
    if use != "reusable" and (earlier := nonces.use_of(signed.nonce)) is not None:
        return await _refused_again(bot, signed, earlier, dialog)
    identity = await bot.identities.get(user_id)
    once = PressOnce(nonces, signed, user_id) if use != "reusable" else None
    press = Press(
        action=signed.action,
        data=signed.data,
        user_id=user_id,
        user_name=identity.username,
        channel_id=fields.get("channel_id", ""),
        team_id=fields.get("team_id", ""),
        post_id=fields.get("post_id", ""),
        trigger_id=fields.get("trigger_id", ""),
        submission=submission if dialog else {},
        once=once,
    )
    try:
        if once is not None and use == ONCE:
            once.claim()  # claim-then-act: a concurrent second press loses here
        result = await handler(press, bot)
    except AlreadyUsed as exc:
        return await _refused_again(bot, signed, exc.use, dialog)
    except ServiceError as exc:
        result = PressResult(ephemeral=tr("errors.service", service=exc.service))
    except Exception as exc:
        log(logger, logging.ERROR, "action crashed", action=signed.action, error=type(exc).__name__)
        logger.debug("action crash", exc_info=True)
        result = PressResult(ephemeral=tr("errors.internal", ref=request_id_var.get()))
    bot.metrics.inc("cpn_actions_total", action=signed.action)
    if once is not None and use == ONCE and result.errors:
        nonces.release(signed, user_id)  # field errors: nothing was done, the dialog stays open
    if once is not None and once.claimed and not dialog:
        result = _chosen(bot, signed, press.user_name, result)
    if dialog:
        if result.ephemeral:
            bot.outbox.enqueue(press.channel_id, Post(result.ephemeral), ephemeral_to=user_id)
        return _answer(result, dialog)
    if signed.ephemeral and result.update is not None:
        # Only recent servers can update an ephemeral post; every server shows a new ephemeral one.
        text = "\n".join(t for t in (result.update.message, result.ephemeral) if t)
        result = PressResult(ephemeral=text, errors=result.errors)
    return _answer(result, dialog)


def _chosen(bot: Bot, signed: Signed, username: str, result: PressResult) -> PressResult:
    """The card the handler replaces says who chose what and when (its buttons go with the old
    card unless the handler gives new ones). A handler that leaves its card alone keeps it."""
    if result.update is None:
        return result
    now = datetime.now().timestamp()
    line = bot.tr("presses.chosen", choice=signed.label or signed.action, user=username or "—", time=_clock(now))
    update = result.update
    message = "\n".join(t for t in (line, update.message) if t)
    return PressResult(Post(message, update.attachments, update.props), result.ephemeral, result.errors, result.error)


async def _refused_again(bot: Bot, signed: Signed, use: NonceUse | None, dialog: bool) -> Response:
    bot.metrics.inc("cpn_actions_refused_total", reason="already_used")
    text = await _refusal_of_use(bot, use, dialog)
    return _answer(PressResult(error=text) if dialog else PressResult(ephemeral=text), dialog)
