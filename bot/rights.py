"""Who may do what: project roles and platform access, checked in one place.

Project roles follow the platform (platform-facts §1.5): owner ⊃ admin ⊃ devops ⊃ developer ⊃
readonly. Owner and admin manage members, tokens and deletion; devops also manages environments and
secrets; developer manages repositories; readonly lists. Platform admins (from the config) may do
everything.

Where the rights come from is a :class:`Rights`: :class:`DirectRights` reads the bot's own members
table (``platform.control = "direct"``); ``bot.console_access.ConsoleRights`` reads the console's
roles and permission bits (``"console"``). A command declares a :class:`Role` (and, where the
console has a finer rule, a :class:`ConsoleRule`); both implementations read that one declaration.
"""

from __future__ import annotations

import unicodedata
from abc import ABC, abstractmethod
from enum import Enum, IntEnum, StrEnum
from typing import TYPE_CHECKING

from bot.i18n import Text

if TYPE_CHECKING:
    from bot.context import CommandContext
    from bot.runtime import Bot
    from bot.spec import CommandSpec


class Role(IntEnum):
    READONLY = 1
    DEVELOPER = 2
    DEVOPS = 3
    ADMIN = 4
    OWNER = 5

    @classmethod
    def parse(cls, value: str) -> Role:
        """A stored or API role label (``developer``): the English enum name."""
        return cls[value.upper()]

    @classmethod
    def from_typed(cls, value: str) -> Role | None:
        """The role a person typed, in French or English, accents, case and separators optional
        (``développeur``, ``Developpeur``, ``developer``, ``lecture-seule``); None if none matches."""
        return _TYPED_ROLES.get(_fold(value))

    @property
    def label(self) -> str:
        return self.name.lower()


ROLE_NAMES = {
    Role.READONLY: Text("lecture seule", "read-only"),
    Role.DEVELOPER: Text("développeur", "developer"),
    Role.DEVOPS: Text("devops", "devops"),
    Role.ADMIN: Text("administrateur", "admin"),
    Role.OWNER: Text("propriétaire", "owner"),
}


def _fold(word: str) -> str:
    """``Lecture-Seule`` → ``lectureseule``: what is left once accents, case and separators go."""
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(ch for ch in decomposed if ch.isalnum())


_TYPED_ROLES = {_fold(name): role for role, text in ROLE_NAMES.items() for name in (role.label, text.fr, text.en)}

# GitLab access levels per role (platform-facts §1.5: admin → Maintainer, devops/developer →
# Developer, readonly → Reporter, owner → Owner).
GITLAB_ACCESS = {Role.OWNER: 50, Role.ADMIN: 40, Role.DEVOPS: 30, Role.DEVELOPER: 30, Role.READONLY: 20}


class Access(Enum):
    """Requirements that are not a project role."""

    ANYONE = "anyone"
    CREATOR = "creator"  # may create projects (config.platform.project_creators, empty = anyone)
    PLATFORM_ADMIN = "platform_admin"


Requirement = Role | Access


ACCESS_NAMES = {
    Access.ANYONE: Text("tout le monde", "anyone"),
    Access.CREATOR: Text("créateurs de projets", "project creators"),
    Access.PLATFORM_ADMIN: Text("administrateurs de la plateforme", "platform admins"),
}


def requirement_label(requirement: Requirement, lang: str) -> str:
    if isinstance(requirement, Role):
        return ROLE_NAMES[requirement](lang)
    return ACCESS_NAMES[requirement](lang)


def allows(
    requirement: Requirement,
    *,
    is_platform_admin: bool,
    is_creator: bool,
    role: Role | None,
) -> bool:
    """Whether a caller with these attributes meets ``requirement``.

    ``role`` is the caller's role in the project the command targets (None: not a member).
    """
    if is_platform_admin:
        return True
    if requirement is Access.ANYONE:
        return True
    if requirement is Access.CREATOR:
        return is_creator
    if requirement is Access.PLATFORM_ADMIN:
        return False
    return role is not None and role >= requirement


class ConsoleRule(StrEnum):
    """The console's ``ProjectAuthorized`` checks (console-api.md §4.4,
    ``cloud-pi-native/console:packages/shared/src/utils/permissions.ts``)."""

    ACCESS = "Access"
    LIST_ENVIRONMENTS = "ListEnvironments"
    LIST_REPOSITORIES = "ListRepositories"
    LIST_MEMBERS = "ListMembers"
    MANAGE = "Manage"
    MANAGE_MEMBERS = "ManageMembers"
    MANAGE_ENVIRONMENTS = "ManageEnvironments"
    MANAGE_REPOSITORIES = "ManageRepositories"
    MANAGE_ROLES = "ManageRoles"
    REPLAY_HOOKS = "ReplayHooks"
    SEE_SECRETS = "SeeSecrets"
    MANAGE_DEPLOYMENTS = "ManageDeployments"
    LIST_DEPLOYMENTS = "ListDeployments"


# The console rule a bot role stands for, where a command names none of its own. READONLY is the
# console's membership test (``Access``: any project bit): its ``List*`` rules pass for anyone,
# the global role granting LIST_PROJECTS (§4.4 note 2).
ROLE_RULES = {
    Role.READONLY: ConsoleRule.ACCESS,
    Role.DEVELOPER: ConsoleRule.MANAGE_REPOSITORIES,
    Role.DEVOPS: ConsoleRule.MANAGE_ENVIRONMENTS,
    Role.ADMIN: ConsoleRule.MANAGE_MEMBERS,
    Role.OWNER: ConsoleRule.MANAGE,
}


def console_rule(role: Role, declared: ConsoleRule | None = None) -> ConsoleRule:
    return declared if declared is not None else ROLE_RULES[role]


class Rights(ABC):
    """Where rights come from: one implementation per ``platform.control``."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    @abstractmethod
    async def refusal(self, spec: CommandSpec, ctx: CommandContext) -> str | None:
        """Why the caller may not run ``spec`` on these arguments (a text for them), or None."""

    @abstractmethod
    async def visible(self, ctx: CommandContext, specs: list[CommandSpec]) -> list[CommandSpec]:
        """Those of ``specs`` the caller may run somewhere (what ``/cpn help`` lists)."""

    @abstractmethod
    async def may(self, user_id: str, project: str, role: Role, rule: ConsoleRule | None = None) -> bool:
        """Whether ``user_id`` still holds ``role`` (or ``rule``) on ``project``: a button pressed later."""

    @abstractmethod
    def forget(self, project: str | None = None) -> None:
        """The bot changed ``project``'s members (None: anything): what was read of it is stale."""


class DirectRights(Rights):
    """The bot's own members table and the config's platform admins and project creators."""

    async def refusal(self, spec: CommandSpec, ctx: CommandContext) -> str | None:
        from bot.refusal import forbidden, unknown_project  # its renderer reads this module's roles

        if spec.requires is Access.ANYONE:
            return None
        identity = await ctx.identity()
        bot = self.bot
        role: Role | None = None
        project: str | None = None
        if spec.scoped and isinstance(spec.requires, Role):
            project = str(ctx.args.get(spec.project_arg or "", "") or "")
            if not bot.project_exists(project):
                return unknown_project(bot, ctx.tr, project, ctx.user_id, identity.is_platform_admin)
            role = bot.projects_roles(project, ctx.user_id)
        elif isinstance(spec.requires, Role):
            role = bot.best_role(ctx.user_id)
        if allows(
            spec.requires,
            is_platform_admin=identity.is_platform_admin,
            is_creator=bot.is_creator(identity),
            role=role,
        ):
            return None
        return forbidden(bot, ctx.tr, spec.name, spec.requires, ctx.user_id, project, role)

    async def visible(self, ctx: CommandContext, specs: list[CommandSpec]) -> list[CommandSpec]:
        identity = await ctx.identity()
        best = self.bot.best_role(ctx.user_id)
        creator = self.bot.is_creator(identity)
        return [
            spec
            for spec in specs
            if allows(spec.requires, is_platform_admin=identity.is_platform_admin, is_creator=creator, role=best)
        ]

    async def may(self, user_id: str, project: str, role: Role, rule: ConsoleRule | None = None) -> bool:
        identity = await self.bot.identities.get(user_id)
        current = self.bot.projects_roles(project, user_id)
        return identity.is_platform_admin or (current is not None and current >= role)

    def forget(self, project: str | None = None) -> None:
        """Nothing to forget: the members table is read at each check."""
