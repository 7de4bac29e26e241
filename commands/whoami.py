"""``/cpn whoami``: who the caller is for the bot, and their projects with their role."""

from __future__ import annotations

from bot.context import CommandContext, Reply
from bot.i18n import Text
from bot.render.identity import whoami_card
from bot.spec import command


@command("whoami", summary=Text("Montre qui vous êtes pour le bot", "Shows who you are for the bot"))
async def whoami(ctx: CommandContext) -> Reply:
    identity = await ctx.identity()
    memberships = ctx.bot.memberships(ctx.user_id)
    return Reply(attachments=[whoami_card(identity, memberships, ctx.tr)])
