"""``/cpn connect`` and ``/cpn disconnect``: acting in the console as oneself.

The personal access token is typed in a dialog's password field, checked against the console
(``GET /api/v1/user/tokens`` with it: expired, revoked or someone else's is refused in the dialog)
and kept in Vault under the bot's own path (bot.console_access.Credentials), never in SQLite, a
log or a post. The console's logs then name the person for what the bot does on their behalf.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from bot.console_access import WrongOwner, parse_expiry
from bot.context import CommandContext, Reply
from bot.i18n import Text
from bot.interactive import IN_HANDLER, Press, PressResult, action
from bot.logs import log
from bot.outbox import Post
from bot.render.safe import code
from bot.spec import command
from services.console_errors import ConsoleError

if TYPE_CHECKING:
    from bot.runtime import Bot

logger = logging.getLogger("cpn.connect")
_MAX_TOKEN = 200  # console tokens are 48 characters (console-api.md §1.2)


def _console_mode(bot: Bot) -> bool:
    return bot.config.platform.control == "console" and bot.platform.console is not None


@command(
    "connect",
    summary=Text(
        "Relie votre jeton d'accès personnel à la console (saisi dans une fenêtre)",
        "Links your console personal access token (typed in a dialog)",
    ),
    description=Text(
        "Le bot agit alors dans la console en votre nom : ses journaux vous nomment. Le jeton est gardé dans "
        "Vault, jamais affiché ; `disconnect` l'oublie.",
        "The bot then acts in the console on your behalf: its logs name you. The token is kept in Vault, "
        "never shown; `disconnect` forgets it.",
    ),
    project_arg=None,
)
async def connect(ctx: CommandContext) -> Reply:
    bot = ctx.bot
    if not _console_mode(bot):
        return Reply(ctx.tr("connect.no_console"))
    state = bot.signer.sign("console.connect", {}, ctx.user_id)
    await bot.mm.open_dialog(
        ctx.trigger_id,
        f"{bot.public_url}/mattermost/dialogs",
        {
            "callback_id": "console.connect",
            "title": ctx.tr("connect.dialog_title")[:24],
            "introduction_text": ctx.tr("connect.dialog_intro"),
            "submit_label": ctx.tr("common.save"),
            "state": json.dumps(state),
            "elements": [
                {
                    "display_name": ctx.tr("connect.field")[:24],
                    "name": "token",
                    "type": "text",
                    "subtype": "password",
                    "max_length": _MAX_TOKEN,
                }
            ],
        },
    )
    return Reply(ctx.tr("connect.fill_dialog"))


@action("console.connect", use=IN_HANDLER)
async def connect_submitted(press: Press, bot: Bot) -> PressResult:
    pat = str(press.submission.get("token") or "").strip()
    if not pat:
        return PressResult(errors={"token": bot.tr("connect.empty")})
    if not _console_mode(bot):
        return PressResult(error=bot.tr("connect.no_console"))
    identity = await bot.identities.get(press.user_id)
    try:
        info = await bot.credentials.check(pat, identity.email)
    except WrongOwner:
        return PressResult(errors={"token": bot.tr("connect.wrong_owner", email=identity.email or "?")})
    except ConsoleError as err:
        log(logger, logging.INFO, "personal access token refused", reason=err.reason)
        return PressResult(errors={"token": bot.tr(f"console_error.{err.reason}", message="")})
    press.claim()  # before Vault: a second submission of this dialog writes nothing
    await bot.credentials.link(press.user_id, pat, info)
    bot.rights.forget()
    bot.store.audit(press.user_id, press.user_name, "console.connect", info.name, "ok")
    expires = parse_expiry(info.expiration)
    text = bot.tr(
        "connect.linked",
        name=code(info.name),
        date=expires.strftime("%Y-%m-%d") if expires else bot.tr("connect.no_expiry"),
    )
    bot.outbox.enqueue(press.channel_id, Post(text), ephemeral_to=press.user_id)
    return PressResult()


@command(
    "disconnect",
    summary=Text(
        "Oublie votre jeton d'accès personnel à la console",
        "Forgets your console personal access token",
    ),
    project_arg=None,
)
async def disconnect(ctx: CommandContext) -> Reply:
    bot = ctx.bot
    if not _console_mode(bot):
        return Reply(ctx.tr("connect.no_console"))
    removed = await bot.credentials.unlink(ctx.user_id)
    bot.store.audit(ctx.user_id, ctx.user_name, "console.disconnect", "", "ok" if removed else "absent")
    return Reply(ctx.tr("connect.unlinked" if removed else "connect.not_linked"))
