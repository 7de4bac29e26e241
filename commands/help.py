"""``/cpn help`` and ``/cpn help <command>``, generated from the declarations."""

from __future__ import annotations

from bot.context import CommandContext, Reply
from bot.i18n import Text
from bot.render import help as render
from bot.render.safe import code
from bot.spec import Arg, command


@command(
    "help",
    summary=Text("Affiche l'aide des commandes", "Shows the commands' help"),
    args=[
        Arg(
            "command",
            Text("une commande, ex. « project create »", "a command, e.g. 'project create'"),
            required=False,
            greedy=True,
        )
    ],
    examples=["help", "help project create"],
)
async def help_command(ctx: CommandContext) -> Reply:
    dispatcher = ctx.bot.dispatcher
    trigger = dispatcher.trigger
    wanted = ctx.args.get("command")
    if not wanted:
        return Reply(render.command_list(await dispatcher.visible(ctx), ctx.tr, trigger))
    words = wanted.removeprefix(f"/{trigger}").split()
    spec, used = dispatcher.registry.match(words)
    if spec is None or used != len(words):
        group = [s for s in await dispatcher.visible(ctx) if s.group == (words[0].lower() if words else "")]
        if group:
            return Reply(render.command_list(group, ctx.tr, trigger))
        return Reply(ctx.tr("help.no_such_command", typed=code(wanted), trigger=trigger))
    return Reply(render.command_help(spec, ctx.tr, trigger))
