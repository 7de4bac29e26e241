"""``/cpn secret …``: the team's application secrets, in the project's own Vault mount.

Values are typed only in a dialog's password field and go straight to Vault; the bot lists keys
and versions, never values.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING

from bot.context import CommandContext, Reply
from bot.i18n import Text
from bot.interactive import IN_HANDLER, Press, PressResult, action
from bot.outbox import Post
from bot.render.safe import code
from bot.rights import ConsoleRule, Role
from bot.spec import Arg, command
from bot.workflows.naming import Names
from bot.workflows.rules import SECRET_KEY
from commands.common import confirmation, presser_has
from commands.project import PROJECT
from services.errors import Failure, ServiceError

if TYPE_CHECKING:
    from bot.runtime import Bot

KEY = Arg("key", Text("nom de la clé", "key name"), SECRET_KEY)


def _mount(bot: Bot, project_name: str) -> str:
    project = bot.projects.get(project_name)
    assert project is not None
    return Names(bot.config.platform.root_group, project.slug).app_mount


def _vault(bot: Bot):  # type: ignore[no-untyped-def]
    if bot.platform.vault is None:
        raise ServiceError("Vault", Failure.UNAVAILABLE, detail="not configured")
    return bot.platform.vault


@command(
    "secret set",
    summary=Text("Enregistre un secret (saisi dans une fenêtre)", "Stores a secret (typed in a dialog)"),
    args=[PROJECT, KEY],
    requires=Role.DEVOPS,
    console_rule=ConsoleRule.SEE_SECRETS,
    examples=["secret set alpha DATABASE_PASSWORD"],
)
async def set_secret(ctx: CommandContext) -> Reply:
    bot = ctx.bot
    _vault(bot)
    data = {"project": ctx.args["project"], "key": ctx.args["key"]}
    state = bot.signer.sign("secret.set", data, ctx.user_id)
    await bot.mm.open_dialog(
        ctx.trigger_id,
        f"{bot.public_url}/mattermost/dialogs",
        {
            "callback_id": "secret.set",
            "title": ctx.tr("secret.dialog_title")[:24],
            "introduction_text": ctx.tr("secret.dialog_intro", key=ctx.args["key"], project=ctx.args["project"]),
            "submit_label": ctx.tr("common.save"),
            "state": json.dumps(state),
            "elements": [
                {
                    "display_name": ctx.args["key"][:24],
                    "name": "value",
                    "type": "text",
                    "subtype": "password",
                    "max_length": 4000,
                }
            ],
        },
    )
    return Reply(ctx.tr("secret.fill_dialog"))


@action("secret.set", use=IN_HANDLER)
async def set_submitted(press: Press, bot: Bot) -> PressResult:
    value = str(press.submission.get("value") or "")
    if not value:
        return PressResult(errors={"value": bot.tr("secret.empty")})
    project, key = str(press.data["project"]), str(press.data["key"])
    if not await presser_has(bot, press, project, Role.DEVOPS, ConsoleRule.SEE_SECRETS):
        return PressResult(ephemeral=bot.tr("actions.not_yours"))
    press.claim()  # before Vault: a second or concurrent submission of this dialog writes nothing
    version = await _vault(bot).write(key, {"value": value}, mount=_mount(bot, project))
    bot.store.audit(press.user_id, press.user_name, "secret.set", f"{project}/{key}", "ok", {"version": version})
    bot.outbox.enqueue(
        press.channel_id,
        Post(bot.tr("secret.saved", key=code(key), version=version)),
        ephemeral_to=press.user_id,
    )
    return PressResult()


@command(
    "secret list",
    summary=Text("Liste les clés des secrets et leurs versions", "Lists the secrets' keys and versions"),
    args=[PROJECT],
    requires=Role.DEVOPS,
    console_rule=ConsoleRule.SEE_SECRETS,
)
async def list_secrets(ctx: CommandContext) -> Reply:
    entries = await _vault(ctx.bot).key_versions(_mount(ctx.bot, ctx.args["project"]))
    if not entries:
        return Reply(ctx.tr("secret.none", project=code(ctx.args["project"]), name=ctx.args["project"]))
    lines = [f"#### {ctx.tr('secret.list_title', project=ctx.args['project'])}"]
    for key, version, updated in entries:
        when = updated[:16].replace("T", " ") if updated else ""
        lines.append(f"- {code(key)} — v{version}" + (f" ({when})" if when else ""))
    return Reply("\n".join(lines))


@command(
    "secret delete",
    summary=Text("Supprime un secret (toutes ses versions)", "Deletes a secret (all its versions)"),
    args=[PROJECT, KEY],
    requires=Role.DEVOPS,
    console_rule=ConsoleRule.SEE_SECRETS,
)
async def delete(ctx: CommandContext) -> Reply:
    question = ctx.tr("secret.delete_confirm", key=code(ctx.args["key"]), project=code(ctx.args["project"]))
    return Reply(
        attachments=[
            confirmation(ctx, "secret.delete", {"project": ctx.args["project"], "key": ctx.args["key"]}, question)
        ]
    )


@action("secret.delete")
async def delete_confirmed(press: Press, bot: Bot) -> PressResult:
    project, key = str(press.data["project"]), str(press.data["key"])
    if not await presser_has(bot, press, project, Role.DEVOPS, ConsoleRule.SEE_SECRETS):
        return PressResult(ephemeral=bot.tr("actions.not_yours"))
    existed = await _vault(bot).delete(key, mount=_mount(bot, project))
    bot.store.audit(press.user_id, press.user_name, "secret.delete", f"{project}/{key}", "ok" if existed else "absent")
    return PressResult(update=Post(bot.tr("secret.deleted" if existed else "secret.absent", key=code(key))))


def _fmt(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")
