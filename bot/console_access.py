"""Rights and credentials from the Cloud π Native console (``platform.control = "console"``).

Rights (:class:`ConsoleRights`, the console implementation of :class:`bot.rights.Rights`): the
Mattermost user is the console user with the same e-mail; their permission bits on a project are
computed as the console computes them (console-api.md §4.4, ``cloud-pi-native/console:apps/
server-nestjs/src/modules/infrastructure/permission/project/project-loader.utils.ts``
``resolveProjectPermissions``): the owner has MANAGE only, a non-member nothing, a member
``everyonePerms | GUEST`` and the masks of their roles, read from the API. Admin bits are the
person's admin roles plus every ``global`` one (``cloud-pi-native/console:apps/server/src/
resources/user/business.ts`` ``logViaToken``). Writes also need the project neither archived nor
locked (the ``ProjectGuard`` order, §2). What is read is reused ``[console] rights_cache_seconds``.

Credentials (:class:`Credentials`): a person's personal access token, linked with ``/cpn connect``,
lives in Vault under the bot's own path ``cpn-bot/console-tokens/<mattermost user id>`` of the
platform's KV mount, never in SQLite, a log or a post. :meth:`Credentials.credential_for` gives the
console as that person when they have a valid one, else as the bot (whose caller checked rights).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

from bot.logs import log
from bot.outbox import Post
from bot.refusal import forbidden
from bot.render.safe import code
from bot.rights import Access, ConsoleRule, Rights, Role, console_rule
from bot.scheduler import every
from services.console import Console
from services.console_errors import ConsoleError
from services.console_models import AdminRole, Person, Project, TokenInfo
from services.console_models import Role as ProjectRole
from services.errors import Failure, ServiceError

if TYPE_CHECKING:
    from bot.context import CommandContext, Identity
    from bot.runtime import Bot
    from bot.spec import CommandSpec
    from services.vault import Vault

logger = logging.getLogger("cpn.console_access")
T = TypeVar("T")

# §4.1 / §4.2 bits the rules below name.
GUEST, MANAGE = 1, 2
A_LIST, A_MANAGE, A_MANAGE_PROJECTS, A_LIST_PROJECTS = 1, 2, 8, 1024
ANY_BIT = (1 << 64) - 1  # "any project bit": the Access rule (p != 0)
WRITE_STATUSES = ("initializing", "created", "failed", "warning")  # the "W" guard, §2

# ProjectAuthorized.* (§4.4): admin bits, project bits (either grants), and whether the route
# also needs a writable project (status in W and not locked).
RULES: dict[ConsoleRule, tuple[int, int, bool]] = {
    ConsoleRule.ACCESS: (A_MANAGE, ANY_BIT, False),
    ConsoleRule.LIST_ENVIRONMENTS: (A_LIST_PROJECTS | A_MANAGE_PROJECTS | A_LIST | A_MANAGE, 256 | 8 | 2, False),
    ConsoleRule.LIST_REPOSITORIES: (A_LIST_PROJECTS | A_MANAGE_PROJECTS | A_LIST | A_MANAGE, 512 | 16 | 2, False),
    ConsoleRule.LIST_MEMBERS: (A_LIST_PROJECTS | A_MANAGE_PROJECTS | A_LIST | A_MANAGE, 1024 | 4 | 2, False),
    ConsoleRule.MANAGE: (A_MANAGE, 2, True),
    ConsoleRule.MANAGE_MEMBERS: (A_MANAGE, 4 | 2, True),
    ConsoleRule.MANAGE_ENVIRONMENTS: (A_MANAGE, 8 | 2, True),
    ConsoleRule.MANAGE_REPOSITORIES: (A_MANAGE, 16 | 2, True),
    ConsoleRule.MANAGE_ROLES: (A_MANAGE, 32 | 2, True),
    ConsoleRule.REPLAY_HOOKS: (A_MANAGE, 128 | 2, True),
    ConsoleRule.SEE_SECRETS: (A_MANAGE, 64 | 2, False),
    # Deployments have no status or lock check (§2.8).
    ConsoleRule.MANAGE_DEPLOYMENTS: (A_MANAGE, 4096 | 2, False),
    ConsoleRule.LIST_DEPLOYMENTS: (A_MANAGE, 8192 | 2, False),
}


def project_perms(user_id: str, project: Project, roles: Sequence[ProjectRole] = ()) -> int:
    """§4.4: owner = MANAGE only; non-member = 0 (``everyonePerms`` not applied); member =
    ``everyonePerms | GUEST`` | the masks of their roles (unknown role ids ignored); ``roles``
    default to the project's own."""
    if project.owner_id == user_id:
        return MANAGE
    member = next((m for m in project.members if m.user_id == user_id), None)
    if member is None:
        return 0
    by_id = {r.id: r.permissions for r in (roles or project.roles)}
    mask = project.everyone_perms | GUEST
    for role_id in member.role_ids:
        mask |= by_id.get(role_id, 0)
    return mask


def admin_perms(person: Person, roles: Sequence[AdminRole]) -> int:
    """The person's admin roles ∪ every ``global`` role (the "Tout le monde" one grants project
    creation to everyone). Roles given through OIDC groups are not visible to the bot."""
    mask = 0
    for role in roles:
        if role.type == "global" or role.id in person.admin_role_ids:
            mask |= role.permissions
    return mask


@dataclass(frozen=True)
class Grant:
    """A person's bits on one project, and the project's state."""

    project: int
    admin: int
    status: str = "created"
    locked: bool = False

    def verdict(self, rule: ConsoleRule) -> str | None:
        """None if allowed; else why: ``archived``, ``locked`` or ``forbidden`` (the guard's order)."""
        admin_bits, project_bits, write = RULES[rule]
        if self.status == "archived" or (write and self.status not in WRITE_STATUSES):
            return "archived"
        if write and self.locked:
            return "locked"
        if self.admin & admin_bits or self.project & project_bits:
            return None
        return "forbidden"

    def holds(self, rule: ConsoleRule) -> bool:
        """The bits alone (the project's state aside): what ``/cpn help`` lists."""
        admin_bits, project_bits, _ = RULES[rule]
        return bool(self.admin & admin_bits or self.project & project_bits)


class _Cache:
    """Values read from the console, each reused for ``ttl`` seconds."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._entries: dict[str, tuple[float, object]] = {}

    async def get(self, key: str, load: Callable[[], Awaitable[T]], keep: Callable[[T], bool] = bool) -> T:
        found = self._entries.get(key)
        if found is not None and self.clock() - found[0] < self.ttl:
            return found[1]  # type: ignore[return-value]
        value = await load()
        if self.ttl > 0 and keep(value):
            self._entries[key] = (self.clock(), value)
        return value

    def drop(self, *keys: str) -> None:
        for key in keys:
            self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()


class ConsoleAccess:
    """What the rights need from the console, read with the bot's admin token and cached."""

    def __init__(self, console: Console, ttl: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self.cache = _Cache(ttl, clock)

    async def person(self, email: str) -> Person | None:
        """The console user with this e-mail; an unknown one is not cached (they may log in now)."""
        if not email:
            return None
        return await self.cache.get(
            f"person:{email.lower()}", lambda: self.console.users.by_email(email), keep=lambda p: p is not None
        )

    async def admin_roles(self) -> list[AdminRole]:
        return await self.cache.get("admin-roles", self.console.admin_roles, keep=lambda _: True)

    async def admin_perms(self, person: Person) -> int:
        return admin_perms(person, await self.admin_roles())

    async def project(self, slug: str) -> Project | None:
        """The project by slug, with its members and roles (an archived one is not found, §3.1)."""
        project = await self.cache.get(f"project:{slug}", lambda: self.console.projects.by_slug(slug))
        if project is not None and self._lacks_roles(project):
            project = await self._with_roles(project)
        return project

    async def projects(self) -> list[Project]:
        """Every live project (``filter=all``, admin MANAGE), for what a person may do somewhere."""
        return await self.cache.get("projects", lambda: self.console.projects.list(filter="all"), keep=lambda _: True)

    @staticmethod
    def _lacks_roles(project: Project) -> bool:
        known = {r.id for r in project.roles}
        return any(r not in known for m in project.members for r in m.role_ids)

    async def _with_roles(self, project: Project) -> Project:
        # A payload without its roles (an older backend): the role masks from ``GET …/roles``.
        roles = tuple(await self.console.roles.list(project.id))
        return replace(project, roles=roles)

    async def grant(self, person: Person, project: Project) -> Grant:
        return Grant(project_perms(person.id, project), await self.admin_perms(person), project.status, project.locked)

    def forget(self, slug: str | None = None) -> None:
        if slug is None:
            self.cache.clear()
        else:
            self.cache.drop(f"project:{slug}", "projects")


class ConsoleRights(Rights):
    """Rights as the console decides them (``platform.control = "console"``)."""

    def __init__(self, bot: Bot) -> None:
        super().__init__(bot)
        console = bot.platform.console
        if console is None:
            raise ValueError('platform.control is "console": the [console] section is missing')
        ttl = bot.config.console.rights_cache_seconds if bot.config.console else 60.0
        self.access = ConsoleAccess(console, ttl)

    def unknown_person(self, tr: Callable[..., str]) -> str:
        config = self.bot.config
        url = str(config.console.ui_url or config.console.url) if config.console else ""
        support = config.platform.support_channel
        return tr(
            "rights.console_unknown",
            console=url.rstrip("/"),
            support=f"~{support}" if support else tr("rights.console_admins"),
        )

    async def _person(self, identity: Identity) -> Person | None:
        return await self.access.person(identity.email)

    async def _somewhere(self, person: Person, admin: int, rule: ConsoleRule) -> bool:
        """Whether the person holds ``rule`` on some live project (or through their admin bits)."""
        if Grant(0, admin).holds(rule):
            return True
        for project in await self.access.projects():
            if Grant(project_perms(person.id, project), admin).holds(rule):
                return True
        return False

    async def _allowed_somewhere(self, spec: CommandSpec, identity: Identity, person: Person, admin: int) -> bool:
        requires = spec.requires
        if requires is Access.ANYONE:
            return True
        if requires is Access.PLATFORM_ADMIN:
            return bool(admin & A_MANAGE)
        if requires is Access.CREATOR:
            return bool(admin & (A_MANAGE_PROJECTS | A_MANAGE)) and self.bot.is_creator(identity)
        assert isinstance(requires, Role)
        return await self._somewhere(person, admin, console_rule(requires, spec.console_rule))

    async def refusal(self, spec: CommandSpec, ctx: CommandContext) -> str | None:
        if spec.requires is Access.ANYONE:
            return None
        tr = ctx.tr
        identity = await ctx.identity()
        try:
            person = await self._person(identity)
            if person is None:
                return self.unknown_person(tr)
            admin = await self.access.admin_perms(person)
            if not (spec.scoped and isinstance(spec.requires, Role)):
                if await self._allowed_somewhere(spec, identity, person, admin):
                    return None
                return self._forbidden(spec, ctx)
            name = str(ctx.args.get(spec.project_arg or "", "") or "")
            project = await self.access.project(name)
            if project is None:
                return tr("errors.unknown_project", project=code(name))
            verdict = (await self.access.grant(person, project)).verdict(console_rule(spec.requires, spec.console_rule))
        except ConsoleError:
            return tr("errors.service", service="Console")
        if verdict is None:
            return None
        if verdict in ("archived", "locked"):
            return tr(f"console_error.{verdict}")
        return self._forbidden(spec, ctx)

    def _forbidden(self, spec: CommandSpec, ctx: CommandContext) -> str:
        if isinstance(spec.requires, Role):
            rule = console_rule(spec.requires, spec.console_rule)
            return ctx.tr("rights.console_forbidden", command=spec.name, required=rule_label(rule, ctx.tr))
        return forbidden(self.bot, ctx.tr, spec.name, spec.requires, ctx.user_id)

    async def visible(self, ctx: CommandContext, specs: list[CommandSpec]) -> list[CommandSpec]:
        identity = await ctx.identity()
        anyone = [spec for spec in specs if spec.requires is Access.ANYONE]
        try:
            person = await self._person(identity)
            if person is None:
                return anyone
            admin = await self.access.admin_perms(person)
            return [spec for spec in specs if await self._allowed_somewhere(spec, identity, person, admin)]
        except ConsoleError:
            return anyone

    async def may(self, user_id: str, project: str, role: Role, rule: ConsoleRule | None = None) -> bool:
        identity = await self.bot.identities.get(user_id)
        try:
            person = await self._person(identity)
            found = await self.access.project(project) if person is not None else None
            if person is None or found is None:
                return False
            return (await self.access.grant(person, found)).verdict(console_rule(role, rule)) is None
        except ConsoleError:
            return False

    def forget(self, project: str | None = None) -> None:
        self.access.forget(project)


def rule_label(rule: ConsoleRule, tr: Callable[..., str]) -> str:
    return tr(f"rights.console_rules.{rule.value}")


# --- personal access tokens ------------------------------------------------------------------------

TOKENS_PATH = "cpn-bot/console-tokens"
_USER_ID = re.compile(r"[a-z0-9]{26}")  # a Mattermost id: nothing else ever becomes a Vault path


class WrongOwner(ConsoleError):
    """A working token of someone else: the console would log their name for this person's acts."""

    failure_kind = Failure.FORBIDDEN

    def __init__(self, owner_email: str) -> None:
        super().__init__("wrong_owner")
        self.owner_email = owner_email


def parse_expiry(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        found = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return found if found.tzinfo else found.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Link:
    """What Vault holds for one person; the token only through :meth:`reveal`."""

    user_id: str
    email: str
    expires: datetime | None
    reminded: str
    _token: str

    def reveal(self) -> str:
        return self._token

    def expired(self, at: datetime | None = None) -> bool:
        return self.expires is not None and self.expires <= (at or datetime.now(UTC))

    def __repr__(self) -> str:
        return f"Link(user_id={self.user_id!r}, expires={self.expires!r}, token=<hidden>)"


class Credentials:
    """Linked personal access tokens: checked against the console, kept in Vault."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    @property
    def console(self) -> Console:
        if self.bot.platform.console is None:
            raise ServiceError("Console", Failure.UNAVAILABLE, detail="not configured")
        return self.bot.platform.console

    @property
    def vault(self) -> Vault:
        if self.bot.platform.vault is None:
            raise ServiceError("Vault", Failure.UNAVAILABLE, detail="not configured")
        return self.bot.platform.vault

    @staticmethod
    def path(user_id: str) -> str:
        if not _USER_ID.fullmatch(user_id):
            raise ValueError("not a Mattermost user id")
        return f"{TOKENS_PATH}/{user_id}"

    async def check(self, pat: str, email: str) -> TokenInfo:
        """The token works and is ``email``'s own; raises a :class:`ConsoleError` saying why not
        (``token_expired``, ``token_revoked``, ``token_inactive``, ``not_authenticated``…)."""
        info = await self.console.acting_as(pat).tokens.current()
        owner = info.owner.email if info.owner else ""
        if not email or owner.lower() != email.lower():
            raise WrongOwner(owner)
        return info

    async def link(self, user_id: str, pat: str, info: TokenInfo) -> None:
        data = {"token": pat, "email": info.owner.email if info.owner else "", "expires": info.expiration or ""}
        await self.vault.write(self.path(user_id), data)

    async def unlink(self, user_id: str) -> bool:
        self.bot.rights.forget()
        return await self.vault.delete(self.path(user_id))

    async def read(self, user_id: str) -> Link | None:
        data = await self.vault.read(self.path(user_id))
        if not data or not data.get("token"):
            return None
        return Link(
            user_id, data.get("email", ""), parse_expiry(data.get("expires")), data.get("reminded", ""), data["token"]
        )

    async def mark_reminded(self, user_id: str, stage: str) -> None:
        await self.vault.merge(self.path(user_id), {"reminded": stage})

    async def linked(self) -> list[str]:
        return [key for key in await self.vault.list(TOKENS_PATH) if _USER_ID.fullmatch(key)]

    async def person_credential(self, user_id: str) -> Console | None:
        """The console as this person (their PAT) when they linked one that has not expired; None
        otherwise. Repository v2 writes and syncs need it (they refuse admin tokens)."""
        if self.bot.platform.console is None or self.bot.platform.vault is None:
            return None
        try:
            found = await self.read(user_id)
        except (ServiceError, ValueError):
            return None
        if found is None or found.expired():
            return None
        return self.console.acting_as(found.reveal())

    async def credential_for(self, user_id: str) -> Console:
        """The person's console when linked and valid, else the bot's admin one: the caller must
        then have checked the person's rights itself (the dispatcher's rights check does)."""
        return await self.person_credential(user_id) or self.console


@every(86400.0, "console.tokens")
async def remind_tokens(bot: Bot) -> None:
    """Once a day: a direct message ``token_reminder_days`` before a linked token expires, and one
    when it has (each once per linked token)."""
    if bot.platform.console is None or bot.platform.vault is None or bot.config.console is None:
        return
    credentials = bot.credentials
    days = bot.config.console.token_reminder_days
    now = datetime.now(UTC)
    for user_id in await credentials.linked():
        try:
            found = await credentials.read(user_id)
            if found is None or found.expires is None:
                continue
            left = (found.expires - now).total_seconds() / 86400
            when = found.expires.strftime("%Y-%m-%d")
            if found.expired(now):
                stage, text = "expired", bot.tr("connect.expired_dm", date=when)
            elif left <= days:
                stage, text = "soon", bot.tr.plural("connect.expiring_dm", max(1, math.ceil(left)), date=when)
            else:
                continue
            if found.reminded == stage:
                continue
            channel = await bot.mm.direct_channel(bot.mm.bot_user_id, user_id)
            bot.outbox.enqueue(str(channel["id"]), Post(text))
            await credentials.mark_reminded(user_id, stage)
        except ServiceError as exc:
            log(logger, logging.WARNING, "token reminder failed", service=exc.service)
