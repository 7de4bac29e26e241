"""Why someone may not run a command, and what to do about it: pure, from the facts the rights
check gathered (their role, the role needed, who in the project can grant it)."""

from __future__ import annotations

from collections.abc import Sequence

from bot.i18n import Translator
from bot.model import Member
from bot.render.safe import code, escape
from bot.rights import ROLE_NAMES, Access, Requirement, Role, requirement_label

# Admins and owners manage members (``member add``/``member role`` need admin), up to admin: the
# owner role is never granted, so for an owner-only command the answer names the owners.
GRANTING = Role.ADMIN


def person(member: Member, tr: Translator, with_role: bool = True) -> str:
    """``@bob (propriétaire)``: a name one can copy, that notifies no one where it is echoed."""
    name = escape("@" + member.username, 80)
    return f"{name} ({ROLE_NAMES[member.role](tr.lang)})" if with_role else name


def forbidden(
    command: str,
    requirement: Requirement,
    tr: Translator,
    *,
    project: str | None = None,
    role: Role | None = None,
    members: Sequence[Member] = (),
    caller: str = "",
) -> str:
    """The refusal: the requirement, the caller's standing and who can change it.

    ``project`` is the project the rights were checked on (None for a platform-wide requirement),
    ``role`` the caller's role in it (None: not a member), ``members`` its members and ``caller``
    the caller's user id (left out of the people to ask)."""
    shown = code(command)
    if isinstance(requirement, Access):
        key = "platform_admin" if requirement is Access.PLATFORM_ADMIN else "creator"
        label = requirement_label(requirement, tr.lang)
        return "\n".join([tr("refusal.access", command=shown, required=label), tr(f"refusal.ask_{key}")])
    required = ROLE_NAMES[requirement](tr.lang)
    if project is None:
        return tr("refusal.role_anywhere", command=shown, required=required)
    owner_only = requirement is Role.OWNER
    people = [
        m for m in members if m.user_id != caller and (m.role is Role.OWNER if owner_only else m.role >= GRANTING)
    ]
    return "\n".join(
        [
            tr(
                "refusal.role_owner" if owner_only else "refusal.role",
                command=shown,
                required=required,
                project=code(project),
            ),
            tr("refusal.yours", role=ROLE_NAMES[role](tr.lang)) if role else tr("refusal.not_member"),
            tr(
                "refusal.owners" if owner_only else "refusal.granters",
                people=", ".join(person(m, tr, not owner_only) for m in people),
            )
            if people
            else tr("refusal.ask_platform"),
        ]
    )
