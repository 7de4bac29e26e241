"""``/cpn member …``: who is in a project, with which role (mapped to GitLab access levels)."""

from __future__ import annotations

from bot.context import CommandContext, Reply
from bot.i18n import Text
from bot.model import Project
from bot.render.safe import code
from bot.rights import ROLE_NAMES, Role
from bot.spec import Arg, Flag, command, mention, role_choice
from commands.common import Person, resolve_mention
from commands.project import PROJECT

ROLES = role_choice(Role.ADMIN, Role.DEVOPS, Role.DEVELOPER, Role.READONLY)
USER = Arg("user", Text("la personne, mentionnée avec @", "the person, mentioned with @"), mention())


async def _apply(ctx: CommandContext, person: Person, role: Role | None) -> str:
    """Apply the membership where the platform keeps it (``bot.control``); a note for the reply ('' if none)."""
    known = await ctx.bot.control.apply_member(ctx.project(), person.username, person.email, role, ctx.user_id)
    return "" if known else ctx.tr("member.unknown_in_gitlab", user=f"@{person.username}", name=ctx.project().name)


@command(
    "member add",
    summary=Text("Ajoute une personne au projet", "Adds a person to the project"),
    args=[PROJECT, USER],
    flags=[
        Flag(
            "role",
            Text("rôle (developer par défaut)", "role (developer by default)"),
            ROLES,
            default=Role.DEVELOPER,
        )
    ],
    requires=Role.ADMIN,
    examples=["member add alpha @bob --role devops"],
)
async def add(ctx: CommandContext) -> Reply:
    bot = ctx.bot
    person = await resolve_mention(ctx, ctx.args["user"])
    if person is None:
        return Reply(ctx.tr("member.unknown_user", user=code("@" + ctx.args["user"])))
    project = ctx.project()
    existing = bot.projects.member(project.id, person.user_id)
    if existing is not None and existing.role is Role.OWNER:
        return Reply(ctx.tr("member.owner_fixed"))
    role: Role = ctx.args["role"]
    note = await _apply(ctx, person, role)
    bot.projects.set_member(project.id, person.user_id, person.username, person.email, role, ctx.user_id)
    bot.store.audit(
        ctx.user_id,
        ctx.user_name,
        "member.add",
        project.name,
        "ok",
        {"user": person.username, "role": role.label},
    )
    text = ctx.tr(
        "member.added",
        user=f"@{person.username}",
        project=code(project.name),
        role=ROLE_NAMES[role](ctx.lang),
    )
    return Reply("\n".join(filter(None, [text, note])), in_channel=not note)


async def _changeable_member(ctx: CommandContext) -> tuple[Project, Person] | Reply:
    """The project and the mentioned member whose membership may change, or why it may not."""
    person = await resolve_mention(ctx, ctx.args["user"])
    project = ctx.project()
    member = ctx.bot.projects.member(project.id, person.user_id) if person else None
    if person is None or member is None:
        return Reply(ctx.tr("member.not_member", user=code("@" + ctx.args["user"]), project=code(project.name)))
    if member.role is Role.OWNER:
        return Reply(ctx.tr("member.owner_fixed"))
    return project, person


@command(
    "member remove",
    summary=Text("Retire une personne du projet", "Removes a person from the project"),
    args=[PROJECT, USER],
    requires=Role.ADMIN,
)
async def remove(ctx: CommandContext) -> Reply:
    bot = ctx.bot
    found = await _changeable_member(ctx)
    if isinstance(found, Reply):
        return found
    project, person = found
    await _apply(ctx, person, None)
    bot.projects.remove_member(project.id, person.user_id)
    bot.store.audit(ctx.user_id, ctx.user_name, "member.remove", project.name, "ok", {"user": person.username})
    return Reply(ctx.tr("member.removed", user=f"@{person.username}", project=code(project.name)), in_channel=True)


@command(
    "member role",
    summary=Text("Change le rôle d'une personne", "Changes a person's role"),
    args=[PROJECT, USER, Arg("role", Text("nouveau rôle", "new role"), ROLES)],
    requires=Role.ADMIN,
    examples=["member role alpha @bob readonly"],
)
async def set_role(ctx: CommandContext) -> Reply:
    bot = ctx.bot
    found = await _changeable_member(ctx)
    if isinstance(found, Reply):
        return found
    project, person = found
    role: Role = ctx.args["role"]
    note = await _apply(ctx, person, role)
    bot.projects.set_member(project.id, person.user_id, person.username, person.email, role, ctx.user_id)
    bot.store.audit(
        ctx.user_id,
        ctx.user_name,
        "member.role",
        project.name,
        "ok",
        {"user": person.username, "role": role.label},
    )
    text = ctx.tr("member.role_set", user=f"@{person.username}", role=ROLE_NAMES[role](ctx.lang))
    return Reply("\n".join(filter(None, [text, note])), in_channel=not note)


@command(
    "member list",
    summary=Text("Liste les membres du projet", "Lists the project's members"),
    args=[PROJECT],
    requires=Role.READONLY,
)
async def list_members(ctx: CommandContext) -> Reply:
    bot = ctx.bot
    project = ctx.project()
    lines = [f"#### {ctx.tr('member.list_title', project=project.name)}"]
    lines += [f"- @{m.username} — {ROLE_NAMES[m.role](ctx.lang)}" for m in bot.projects.members(project.id)]
    return Reply("\n".join(lines))
