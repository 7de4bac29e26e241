"""``/cpn subscribe``, ``unsubscribe``, ``subscriptions``: what this channel hears about."""

from __future__ import annotations

from bot.context import CommandContext, Reply
from bot.i18n import Text
from bot.render.safe import code
from bot.rights import Role
from bot.spec import Flag, command, csv_list, named
from bot.workflows.routing import EVENTS, Subscriptions
from commands.project import PROJECT


def _event(value: str) -> str:
    from bot.spec import ArgError

    if value not in EVENTS:
        raise ArgError("rules.choice", value=value, choices=", ".join(EVENTS))
    return value


EVENT_LIST = csv_list(named(r"[a-z]+", 2, 10, "rules.event", "event"), "pipeline,sync,…")
BRANCH_GLOBS = csv_list(named(r"[A-Za-z0-9._/*\-]+", 1, 100, "rules.branch", "branch"), "main,release/*")


async def _channel_type(ctx: CommandContext) -> str:
    try:
        return str((await ctx.bot.mm.get_channel(ctx.channel_id)).get("type", "O"))
    except Exception:
        return "O"


@command(
    "subscribe",
    summary=Text("Choisit les notifications du projet dans ce canal", "Chooses the project's notifications here"),
    description=Text(
        "Sans option, un canal lié reçoit les échecs de toutes les branches et les réussites de la branche "
        "par défaut. Événements : pipeline, sync, push, mr, quality, scan, deploy.",
        "Without options, a linked channel gets failures on every branch and successes on the default branch. "
        "Events: pipeline, sync, push, mr, quality, scan, deploy.",
    ),
    args=[PROJECT],
    flags=[
        Flag("events", Text("événements, séparés par des virgules", "events, comma-separated"), EVENT_LIST),
        Flag(
            "branches",
            Text("branches (motifs acceptés : release/*)", "branches (globs allowed: release/*)"),
            BRANCH_GLOBS,
        ),
        Flag("failures-only", Text("seulement les échecs", "failures only")),
        Flag(
            "allow-public",
            Text(
                "projet privé : autoriser ce canal public (propriétaire)",
                "private project: allow this public channel (owner)",
            ),
        ),
    ],
    requires=Role.READONLY,
    examples=["subscribe alpha --events pipeline,sync --branches main,release/*", "subscribe alpha --failures-only"],
)
async def subscribe(ctx: CommandContext) -> Reply:
    bot = ctx.bot
    project = ctx.project()
    events = tuple(ctx.args["events"] or ())
    for event in events:
        _event(event)
    channel_type = await _channel_type(ctx)
    allow_public = bool(ctx.args["allow-public"])
    if allow_public and not await bot.rights.may(ctx.user_id, project.name, Role.OWNER):
        return Reply(ctx.tr("subscribe.owner_only"))
    bot.projects.link(project.id, ctx.channel_id, ctx.team_id, channel_type, ctx.user_id)
    Subscriptions(bot.store).subscribe(
        project,
        ctx.channel_id,
        events,
        tuple(ctx.args["branches"] or ()),
        bool(ctx.args["failures-only"]),
        allow_public,
        ctx.user_id,
    )
    bot.store.audit(
        ctx.user_id,
        ctx.user_name,
        "subscribe",
        project.name,
        "ok",
        {"channel": ctx.channel_id, "events": list(events), "allow_public": allow_public},
    )
    text = ctx.tr("subscribe.done", project=code(project.name))
    if not await bot.mm.is_member(ctx.channel_id, bot.mm.bot_user_id):
        text += "\n" + ctx.tr("subscribe.invite_bot", bot=f"@{bot.mm.bot_username or 'cpn-bot'}")
    if project.visibility == "private" and channel_type == "O" and not allow_public:
        text += "\n" + ctx.tr("subscribe.private_project")
    return Reply(text, in_channel=True)


@command(
    "unsubscribe",
    summary=Text("Plus aucune notification du projet ici", "No more notifications here"),
    args=[PROJECT],
    requires=Role.READONLY,
)
async def unsubscribe(ctx: CommandContext) -> Reply:
    bot = ctx.bot
    project = ctx.project()
    if not Subscriptions(bot.store).unsubscribe(project, ctx.channel_id):
        return Reply(ctx.tr("subscribe.none_here", project=code(project.name)))
    bot.store.audit(ctx.user_id, ctx.user_name, "unsubscribe", project.name, "ok", {"channel": ctx.channel_id})
    return Reply(ctx.tr("subscribe.removed", project=code(project.name)), in_channel=True)


@command("subscriptions", summary=Text("Ce que ce canal reçoit", "What this channel receives"), project_arg=None)
async def subscriptions(ctx: CommandContext) -> Reply:
    entries = Subscriptions(ctx.bot.store).of_channel(ctx.channel_id)
    if not entries:
        return Reply(ctx.tr("subscribe.nothing"))
    lines = [f"#### {ctx.tr('subscribe.title')}"]
    for name, sub in entries:
        what = ", ".join(sub.events)
        branches = ", ".join(code(b) for b in sub.branches) if sub.branches else ctx.tr("subscribe.default_branches")
        extra = (" — " + ctx.tr("subscribe.failures_only")) if sub.failures_only else ""
        kind = "" if sub.explicit else " " + ctx.tr("subscribe.default")
        lines.append(f"- **{name}**{kind} : {what} ; {branches}{extra}")
    return Reply("\n".join(lines))
