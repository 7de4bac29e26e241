"""``/cpn help`` (overview by section), ``/cpn help <group>`` and ``/cpn help <command>``, from the declarations."""

from __future__ import annotations

from bot.context import CommandContext, Reply
from bot.i18n import Text
from bot.render import help as render
from bot.render.safe import code
from bot.spec import Arg, command

# The overview's sections: which command groups each gathers (descriptions: ``help.sections.<key>``).
# One line per group would be 26 lines for an admin; a group named here by no section still gets its own line.
SECTIONS: dict[str, tuple[str, ...]] = {
    "projects": ("project", "member", "token"),
    "code": ("repo", "sync", "pipeline", "quality", "scan", "policy"),
    "deploy": ("env", "deploy", "promote", "rollback", "secret", "status"),
    "notifications": ("subscribe", "subscriptions", "unsubscribe"),
    "support": ("ask", "faq", "support", "ticket", "kb", "services"),
    "bot": ("help", "whoami", "connect", "disconnect"),
}


@command(
    "help",
    summary=Text("Affiche l'aide des commandes", "Shows the commands' help"),
    args=[
        Arg(
            "command",
            Text(
                "un groupe ou une commande, ex. « project » ou « project create »",
                "a group or a command, e.g. 'project' or 'project create'",
            ),
            required=False,
            greedy=True,
        )
    ],
    examples=["help", "help project", "help project create"],
)
async def help_command(ctx: CommandContext) -> Reply:
    dispatcher = ctx.bot.dispatcher
    trigger = dispatcher.trigger
    wanted = ctx.args.get("command")
    if not wanted:
        overview = render.overview(SECTIONS, await dispatcher.visible(ctx), ctx.tr, trigger)
        return Reply(f"{overview}\n{ctx.tr(f'help.control_{ctx.bot.control.name}')}")
    words = wanted.removeprefix(f"/{trigger}").split()
    spec, used = dispatcher.registry.match(words)
    if spec is None or used != len(words):
        group = [s for s in await dispatcher.visible(ctx) if s.group == (words[0].lower() if words else "")]
        if group:
            return Reply(render.command_list(group, ctx.tr, trigger))
        return Reply(ctx.tr("help.no_such_command", typed=code(wanted), trigger=trigger))
    return Reply(render.command_help(spec, ctx.tr, trigger))
