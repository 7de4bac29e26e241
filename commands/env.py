"""``/cpn env …``: the project's environments (an ArgoCD application per infra repository)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.context import CommandContext, Reply
from bot.control import PlacementChoice
from bot.i18n import Text
from bot.interactive import Press, PressResult, action
from bot.operations import Operation, operation
from bot.render.safe import code
from bot.rights import Role
from bot.spec import Arg, Flag, choice, command, integer, named
from bot.workflows.rules import ENV_NAME, STAGES
from commands.common import confirmation, confirmed_removal, progress_card
from commands.project import PROJECT

if TYPE_CHECKING:
    from bot.runtime import Bot

CLUSTER = named(r"[A-Za-z0-9][A-Za-z0-9._-]*", 1, 50, "rules.cluster", "cluster")
ENV = Arg("env", Text("nom de l'environnement", "environment name"), ENV_NAME)


@command(
    "env add",
    summary=Text("Ajoute un environnement", "Adds an environment"),
    args=[PROJECT, ENV],
    flags=[
        Flag("stage", Text("type d'environnement", "environment type"), choice(*STAGES), required=True),
        Flag("cpu", Text("cœurs de CPU", "CPU cores"), integer(0, 256)),
        Flag("memory", Text("mémoire en Gio", "memory in GiB"), integer(0, 1024)),
        Flag(
            "cluster",
            Text(
                "cluster (mode console), à choisir quand plusieurs servent ce type",
                "cluster (console mode), to choose when several serve this type",
            ),
            CLUSTER,
        ),
    ],
    requires=Role.DEVOPS,
    examples=["env add alpha dev --stage dev --cpu 2 --memory 4", "env add alpha prod --stage prod"],
)
async def add(ctx: CommandContext) -> Reply:
    bot, name = ctx.bot, ctx.args["env"]
    project = ctx.project()
    if bot.projects.environment(project.id, name) is not None:
        return Reply(ctx.tr("env.taken", env=code(name)))
    placed = await bot.control.placement(ctx.args["stage"], ctx.args["cluster"])
    if isinstance(placed, PlacementChoice):
        return Reply(_no_placement(ctx, placed, project.name, name))
    bot.projects.add_environment(
        project.id,
        name,
        placed.stage,
        float(ctx.args["cpu"] or 0),
        float(ctx.args["memory"] or 0),
        ctx.user_id,
        cluster=placed.cluster,
    )
    ctx.submit(
        "project.reconcile", {"project": project.name, "mode": "update", "done": ["env.added", {"env": code(name)}]}
    )
    bot.store.audit(ctx.user_id, ctx.user_name, "env.add", f"{project.name}/{name}", "ok", {"stage": ctx.args["stage"]})
    return Reply(ctx.tr("env.adding", env=code(name), project=code(project.name)))


def _no_placement(ctx: CommandContext, choice: PlacementChoice, project: str, env: str) -> str:
    """Why no cluster was taken: the choice to make, or what the platform allows instead."""
    listed = ", ".join(code(c) for c in choice.clusters)
    if choice.refused == "stage":
        return ctx.tr("env.stage_refused", stage=code(choice.stage), stages=listed or "—")
    if not choice.clusters:
        return ctx.tr("env.no_cluster", stage=code(choice.stage))
    if choice.refused == "cluster":
        return ctx.tr(
            "env.cluster_refused", cluster=code(ctx.args["cluster"]), stage=code(choice.stage), clusters=listed
        )
    return ctx.tr("env.choose_cluster", stage=choice.stage, clusters=listed, project=project, env=env)


@command(
    "env list",
    summary=Text("Liste les environnements", "Lists the environments"),
    args=[PROJECT],
    requires=Role.READONLY,
)
async def list_environments(ctx: CommandContext) -> Reply:
    bot = ctx.bot
    project = ctx.project()
    environments = bot.projects.environments(project.id)
    if not environments:
        return Reply(ctx.tr("project.no_environments", name=project.name))
    lines = [f"#### {ctx.tr('env.list_title', project=project.name)}"]
    for env in environments:
        quota = ctx.tr("env.quota", cpu=f"{env.cpu:g}", memory=f"{env.memory:g}") if env.cpu or env.memory else ""
        protected = " 🔒" if env.name in bot.config.platform.protected_environments or env.stage == "prod" else ""
        lines.append(f"- {code(env.name)} ({env.stage}){protected} {quota}".rstrip())
    return Reply("\n".join(lines))


@command(
    "env remove",
    summary=Text("Supprime un environnement", "Removes an environment"),
    args=[PROJECT, ENV],
    requires=Role.DEVOPS,
)
async def remove(ctx: CommandContext) -> Reply:
    bot = ctx.bot
    project = ctx.project()
    if bot.projects.environment(project.id, ctx.args["env"]) is None:
        return Reply(
            ctx.tr(
                "env.unknown",
                env=code(ctx.args["env"]),
                known=", ".join(code(e.name) for e in bot.projects.environments(project.id)) or "—",
            )
        )
    question = ctx.tr("env.remove_confirm", env=code(ctx.args["env"]), project=code(project.name))
    return Reply(
        attachments=[confirmation(ctx, "env.remove", {"project": project.name, "env": ctx.args["env"]}, question)]
    )


@action("env.remove")
async def remove_confirmed(press: Press, bot: Bot) -> PressResult:
    return await confirmed_removal(press, bot, "env", Role.DEVOPS)


@operation("env.remove")
async def remove_environment(op: Operation, bot: Bot) -> dict[str, Any]:
    project = bot.projects.get(op.params["project"])
    if project is None:
        return {"status": "gone"}
    complete = await bot.control.remove_environment(
        project,
        op.params["env"],
        progress_card(bot, op, project, "remove", ("env.removed", {"env": code(op.params["env"])})),
        op.user_id,
    )
    return {"complete": complete}
