"""The facts behind a refusal, gathered for its renderer (``bot.render.refusals``): who asks, their
role on the project, who there can grant the one needed, and the nearest project name to a typo.
Shared by both rights implementations (``bot.rights``) and by the checks made later (a button, a flag)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.render import refusals
from bot.render.safe import code
from bot.suggest import closest

if TYPE_CHECKING:
    from bot.i18n import Translator
    from bot.model import Member
    from bot.rights import Requirement, Role
    from bot.runtime import Bot


def forbidden(
    bot: Bot,
    tr: Translator,
    command: str,
    requirement: Requirement,
    user_id: str,
    project: str | None = None,
    role: Role | None = None,
) -> str:
    """The refusal of ``command`` to ``user_id``: with a project, their role in it and the people
    there who can grant the one needed."""
    members: list[Member] = []
    if project is not None:
        found = bot.projects.get(project)
        members = bot.projects.members(found.id) if found else []
        if role is None:
            role = bot.projects_roles(project, user_id)
    return refusals.forbidden(command, requirement, tr, project=project, role=role, members=members, caller=user_id)


def unknown_project(bot: Bot, tr: Translator, project: str, user_id: str, everything: bool) -> str:
    """An unknown project, with the nearest among those the caller can see (all for a platform admin)."""
    seen = [p.name for p in bot.projects.all()] if everything else [name for name, _ in bot.memberships(user_id)]
    near = closest(project, seen)
    if near is None:
        return tr("errors.unknown_project", project=code(project))
    return tr("errors.unknown_project_suggest", project=code(project), suggestion=code(near))
