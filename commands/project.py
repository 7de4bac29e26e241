"""``/cpn project …``: create, list, show, link, replay and delete projects."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.context import CommandContext, Reply
from bot.i18n import Text
from bot.interactive import Press, PressResult, action
from bot.model import Project
from bot.netpolicy import AddressRefused
from bot.notifications import start_sync
from bot.operations import Operation, operation
from bot.outbox import Post
from bot.refusal import forbidden
from bot.render import projects as render
from bot.render.safe import code, escape
from bot.rights import Access, ConsoleRule, Role
from bot.spec import Arg, Flag, command, free_text
from bot.workflows.contextual import project_links
from bot.workflows.rules import DESCRIPTION_MAX, PROJECT_NAME
from commands.address import address_refusal
from commands.common import confirmation, operator, presser_has, progress_card, submit_from_press
from services.errors import ServiceError

if TYPE_CHECKING:
    from bot.runtime import Bot

PROJECT = Arg("project", Text("nom du projet", "project name"), PROJECT_NAME)


def _audit(bot: Bot, ctx: CommandContext, action_name: str, target: str, outcome: str = "ok", **detail: Any) -> None:
    bot.store.audit(ctx.user_id, ctx.user_name, action_name, target, outcome, detail)


@command(
    "project create",
    summary=Text("Crée un projet sur toute la plateforme", "Creates a project across the platform"),
    description=Text(
        "Crée le groupe GitLab et le dépôt mirror, les secrets Vault, l'organisation Quay, les dépôts Nexus, "
        "l'utilisateur SonarQube et le projet ArgoCD. Vous en devenez propriétaire et ce canal y est lié.",
        "Creates the GitLab group and mirror repository, Vault secrets, Quay organization, Nexus repositories, "
        "SonarQube user and ArgoCD project. You become its owner and this channel is linked to it.",
    ),
    args=[
        Arg(
            "name",
            Text(
                "nom du projet : 2 à 20 minuscules ou chiffres",
                "project name: 2-20 lowercase letters or digits",
            ),
            PROJECT_NAME,
        )
    ],
    flags=[
        Flag(
            "private",
            Text(
                "projet privé : ses notifications restent hors des canaux publics",
                "private project: its notifications stay out of public channels",
            ),
        ),
        Flag(
            "description",
            Text("description (280 caractères au plus)", "description (280 characters max)"),
            free_text(DESCRIPTION_MAX),
        ),
    ],
    requires=Access.CREATOR,
    examples=['project create alpha --description "Application de gestion des titres"'],
)
async def create(ctx: CommandContext) -> Reply:
    bot, name = ctx.bot, ctx.args["name"]
    if bot.projects.get(name) is not None:
        return Reply(ctx.tr("project.taken", project=code(name)))
    identity = await ctx.identity()
    project = bot.projects.create(name, ctx.args["description"] or "", ctx.user_id, private=bool(ctx.args["private"]))
    bot.projects.set_member(project.id, ctx.user_id, identity.username, identity.email, Role.OWNER, ctx.user_id)
    # Provisioning starts now; the channel is read meanwhile, to know whether to link it.
    ctx.submit("project.reconcile", {"project": name, "mode": "create"})
    try:
        channel = await bot.mm.get_channel(ctx.channel_id)
    except ServiceError:
        channel = {}
    channel_type = str(channel.get("type", "O"))
    _audit(bot, ctx, "project.create", name)
    reasons = await _link_doubts(ctx, channel)
    if reasons:
        question = "\n".join([ctx.tr("project.link_ask", project=code(name)), *reasons])
        card = confirmation(ctx, "project.link_created", {"project": name}, question, danger=False)
        return Reply(ctx.tr("project.creating_unlinked", project=code(name)), attachments=[card])
    bot.projects.link(project.id, ctx.channel_id, ctx.team_id, channel_type, ctx.user_id)
    return Reply(ctx.tr("project.creating", project=code(name)))


async def _link_doubts(ctx: CommandContext, channel: dict[str, Any]) -> list[str]:
    """Why linking the channel to a new project needs its creator's yes: the channel already shows
    another project's notifications, or it is someone else's (its ``creator_id``, mattermost/mattermost:
    server/public/model/channel.go; none for channels made by the system, never asked about)."""
    bot, reasons = ctx.bot, []
    others = [code(p.name) for p in bot.projects.linked_to(ctx.channel_id) if p.name != ctx.args["name"]]
    if others:
        reasons.append(ctx.tr("project.link_ask_linked", projects=", ".join(others)))
    creator = str(channel.get("creator_id") or "")
    if creator and creator != ctx.user_id and channel.get("type") in ("O", "P"):
        try:
            owner = escape("@" + str((await bot.mm.get_user(creator)).get("username") or "?"), 80)
        except ServiceError:
            owner = "?"
        reasons.append(ctx.tr("project.link_ask_foreign", creator=owner))
    return reasons


@action("project.link_created")
async def link_created(press: Press, bot: Bot) -> PressResult:
    name = str(press.data.get("project", ""))
    project = bot.projects.get(name)
    if project is None:
        return PressResult(ephemeral=bot.tr("errors.unknown_project", project=code(name)))
    if not await presser_has(bot, press, name, Role.ADMIN):  # project link's requirement, checked again
        return PressResult(ephemeral=forbidden(bot, bot.tr, "project link", Role.ADMIN, press.user_id, name))
    try:
        channel_type = str((await bot.mm.get_channel(press.channel_id)).get("type", "O"))
    except ServiceError:
        channel_type = "O"
    bot.projects.link(project.id, press.channel_id, press.team_id, channel_type, press.user_id)
    bot.store.audit(press.user_id, press.user_name, "project.link", name, "confirmed", {"channel": press.channel_id})
    return PressResult(update=Post(bot.tr("project.linked", project=code(name))))


@command("project list", summary=Text("Liste vos projets", "Lists your projects"), project_arg=None)
async def list_projects(ctx: CommandContext) -> Reply:
    entries = await ctx.bot.control.listed_projects(await ctx.identity())
    return Reply(render.project_list(entries, ctx.tr))


@command(
    "project show",
    summary=Text("Montre l'état d'un projet", "Shows a project's state"),
    args=[PROJECT],
    requires=Role.READONLY,
    examples=["project show alpha"],
)
async def show(ctx: CommandContext) -> Reply:
    bot = ctx.bot
    project = ctx.project()
    card = render.project_page(
        project,
        project_links(bot, project),
        bot.projects.members(project.id),
        bot.projects.repositories(project.id),
        bot.projects.environments(project.id),
        ctx.tr,
    )
    return Reply(attachments=[card])


@command(
    "project link",
    summary=Text("Lie ce canal au projet", "Links this channel to the project"),
    args=[PROJECT],
    requires=Role.ADMIN,
)
async def link(ctx: CommandContext) -> Reply:
    bot = ctx.bot
    project = ctx.project()
    try:
        channel = await bot.mm.get_channel(ctx.channel_id)
        channel_type = str(channel.get("type", "O"))
    except Exception:
        channel_type = "O"
    if not bot.projects.link(project.id, ctx.channel_id, ctx.team_id, channel_type, ctx.user_id):
        return Reply(ctx.tr("project.already_linked", project=code(project.name)))
    _audit(bot, ctx, "project.link", project.name, channel=ctx.channel_id)
    return Reply(ctx.tr("project.linked", project=code(project.name)), in_channel=True)


@command(
    "project replay",
    summary=Text("Relance le provisionnement et répare les écarts", "Runs the provisioning again and repairs drift"),
    args=[PROJECT],
    requires=Role.READONLY,
    console_rule=ConsoleRule.REPLAY_HOOKS,
)
async def replay(ctx: CommandContext) -> Reply:
    ctx.submit("project.reconcile", {"project": ctx.args["project"], "mode": "replay"})
    _audit(ctx.bot, ctx, "project.replay", ctx.args["project"])
    return Reply(ctx.tr("project.replaying", project=code(ctx.args["project"])))


@command(
    "project delete",
    summary=Text("Supprime un projet de toute la plateforme", "Deletes a project from the whole platform"),
    description=Text(
        "Irréversible : dépôts, images, artefacts, secrets et applications sont détruits.",
        "Irreversible: repositories, images, artifacts, secrets and applications are destroyed.",
    ),
    args=[PROJECT],
    requires=Role.OWNER,
)
async def delete(ctx: CommandContext) -> Reply:
    name = ctx.args["project"]
    question = ctx.tr("project.delete_confirm", project=code(name))
    return Reply(attachments=[confirmation(ctx, "project.delete", {"project": name}, question)])


@action("project.delete")
async def delete_confirmed(press: Press, bot: Bot) -> PressResult:
    name = str(press.data.get("project", ""))
    if not await bot.rights.may(press.user_id, name, Role.OWNER):
        return PressResult(ephemeral=forbidden(bot, bot.tr, "project delete", Role.OWNER, press.user_id, name))
    submit_from_press(bot, press, "project.delete", {"project": name})
    bot.store.audit(press.user_id, press.user_name, "project.delete", name, "confirmed")
    return PressResult(update=Post(bot.tr("project.deleting", project=code(name))))


# -- operations ---------------------------------------------------------------------------------


@operation("project.reconcile")
async def reconcile(op: Operation, bot: Bot) -> dict[str, Any]:
    project = bot.projects.get(op.params["project"])
    if project is None:
        return {"status": "gone"}
    mode = op.params.get("mode", "update")
    done = op.params.get("done")
    status = await bot.control.reconcile(
        project, mode, progress_card(bot, op, project, mode, (done[0], done[1]) if done else None), op.user_id
    )
    bot.store.audit(op.user_id, "", f"project.{mode}", project.name, status)
    first_sync = op.params.get("first_sync")
    if first_sync and status != "failed":
        await announce_first_sync(bot, op, project, first_sync)
    return {"status": status}


async def announce_first_sync(bot: Bot, op: Operation, project: Project, repo: str) -> None:
    """A repository created from an external URL is synchronised at once, all branches.

    The sync card ``start_sync`` publishes is the announcement: only a refusal gets a line of its own."""
    key = op.root_key or f"op:{op.id}"
    try:
        await start_sync(bot, project, repo, None, True, await operator(bot, op), op.user_id, first=True)
    except ServiceError as exc:
        bot.outbox.enqueue(op.channel_id, Post(bot.tr("errors.service", service=exc.service)), root_key=key)
    except AddressRefused as refused:
        bot.outbox.enqueue(op.channel_id, Post(address_refusal(bot.tr, refused.verdict)), root_key=key)


@operation("project.delete")
async def delete_project(op: Operation, bot: Bot) -> dict[str, Any]:
    project = bot.projects.get(op.params["project"])
    if project is None:
        return {"status": "gone"}
    complete = await bot.control.delete_project(project, progress_card(bot, op, project, "delete"), op.user_id)
    bot.store.audit(op.user_id, "", "project.delete", project.name, "archived" if complete else "incomplete")
    return {"complete": complete}
