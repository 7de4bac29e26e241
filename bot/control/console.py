"""Console mode: projects, members, repositories and environments go through the Cloud π Native
console (``services/console.py``, contract ``console-api.md``); its plugins provision the services.

The bot's own rows stay the record of what was asked (channels, notifications and cards read
them); here they are mirrored into the console and hold its ids (``console_id``) and the
console's slug, which names the project on every service. Console writes are synchronous
(§3): after each, the project and its last log are re-read for per-plugin results, shown as the
same checklist as in direct mode. Then the bot wires its own webhooks with its own service tokens
(:data:`bot.workflows.onboarding.NOTIFICATIONS`): the console does not.

Every console call goes out with :meth:`ConsoleControl.credential`.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, ClassVar

from bot.console_access import ConsoleRights
from bot.context import Identity
from bot.control.base import Control, Placement, PlacementChoice
from bot.model import DeclaredDeployment, Project
from bot.rights import Role
from bot.workflows import onboarding, sync
from bot.workflows.naming import MIRROR_REPO, Names, console_sonar_key
from bot.workflows.onboarding import Progress, Step, failure_reason, finish, hook_url, run_step
from services.console import Console
from services.console_errors import ConsoleError, ConsoleProvisioningError
from services.console_models import Cluster, Provisioning, RepositorySpec, Stage
from services.console_models import Project as ConsoleProject
from services.errors import Failure, ServiceError
from services.gitlab import Pipeline

if TYPE_CHECKING:
    from bot.runtime import Bot

# Console plugin (its logs' names, console-api.md §2.10) → the checklist's service.
PLUGIN_SERVICES = {
    "vault": "vault",
    "gitlab": "gitlab",
    "harbor": "registry",
    "registry": "registry",
    "nexus": "nexus",
    "sonarqube": "sonarqube",
    "argocd": "argocd",
}
# The bot's roles → the console's system roles, by their OIDC group suffix (§4.3).
# How long the checklist waits for the bot's webhooks before showing the console's results alone.
QUIET_SECONDS = 0.5
ROLE_GROUPS = {Role.ADMIN: "admin", Role.DEVOPS: "devops", Role.DEVELOPER: "developer", Role.READONLY: "readonly"}


class ConsoleControl(Control):
    name: ClassVar[str] = "console"

    def __init__(self, bot: Bot, console: Console) -> None:
        super().__init__(bot)
        self.console = console
        self._refreshed: dict[int, float] = {}  # project id → monotonic time of its last refresh

    @classmethod
    def from_config(cls, bot: Bot) -> ConsoleControl:
        # The platform's console adapter (bot.workflows.platform), shared with rights and
        # ``bot.credentials``: one connection pool, closed with the platform.
        assert bot.platform.console is not None  # Config refuses control = "console" without [console]
        return cls(bot, bot.platform.console)

    async def credential(self, user_id: str) -> Console:
        """The one place a console credential is chosen: the person's own token when they linked
        one (``/cpn connect``), so that the console's logs name them; else the bot's admin token,
        whose use the bot's rights check (``bot.rights``) has already allowed."""
        return await self.bot.credentials.credential_for(user_id)

    async def close(self) -> None:
        """Its console adapter is the platform's (``bot.platform.console``), closed with it."""

    def sonar_key(self, slug: str, repo: str) -> str:
        return console_sonar_key(slug, repo)

    def _names(self, project: Project) -> Names:
        return Names(self.bot.config.platform.root_group, project.slug)

    # -- provisioning ---------------------------------------------------------------------------

    async def reconcile(self, project: Project, mode: str, progress: Progress, user_id: str) -> str:
        steps = onboarding.service_steps(self.bot)
        await progress(steps)
        console = await self.credential(user_id)
        try:
            if mode == "adopt":  # a project made in the console: read it, write nothing
                provisioning = await self.console.projects.provisioning(project.console_id)
            else:
                provisioning = await self._write(console, project, mode)
        except ConsoleError as exc:
            return await self._refused(project, steps, exc, progress)
        project = self.bot.projects.by_id(project.id)  # the console's slug, now known
        self.bot.rights.forget(project.slug)  # its members and owner are the console's now
        ctx = onboarding.context(self.bot, project)
        _report(steps, provisioning, project.slug)
        wiring = asyncio.ensure_future(self._wire_hooks(ctx, steps))
        try:
            # The console's results and the bot's webhooks mostly come together: the card is
            # edited once for both, and shows the console's results alone only if hooks are slow.
            done, _ = await asyncio.wait({wiring}, timeout=QUIET_SECONDS)
            if not done:
                await progress(steps)
            await wiring
        finally:
            wiring.cancel()  # the operation was cancelled meanwhile: so are its hooks
        status = finish(ctx, steps)
        await progress(steps)
        return status

    async def _wire_hooks(self, ctx: onboarding.Context, steps: list[Step]) -> None:
        """The bot's own webhooks on what the console provisioned (it wires none), one service
        each: independent, so wired at the same time."""
        await asyncio.gather(
            *(
                run_step(step, functools.partial(hooks, ctx))
                for step in steps
                if (hooks := onboarding.NOTIFICATIONS.get(step.service)) is not None
                and step.state != "failed"
                and getattr(self.bot.platform, step.service) is not None
            )
        )

    # -- projects made in the console ---------------------------------------------------------------

    async def listed_projects(self, identity: Identity) -> list[tuple[Project, Role | None]]:
        """The bot's projects, and the console's live ones the person owns or is a member of (or
        all, for a platform admin) that the bot has not seen yet: the console owns projects."""
        listed = await super().listed_projects(identity)
        known = {p.slug for p, _ in listed} | {p.slug for p in self.bot.projects.all()}
        rights = self.bot.rights
        access = rights.access if isinstance(rights, ConsoleRights) else None
        person = await access.person(identity.email) if access else None
        if access is None or person is None:
            return listed
        for found in await access.projects():
            if found.slug in known or found.status == "archived":
                continue
            role = _role_of(found, person.id)
            if role is None and not identity.is_platform_admin:
                continue
            listed.append((_unseen(found), role))
        return sorted(listed, key=lambda entry: entry[0].name)

    async def adopt(self, name: str, user_id: str) -> Project | None:
        """A live console project the bot has never seen (made in the console's UI): its row, its
        repositories, environments and members (those Mattermost knows by e-mail) read from the
        console with the bot's token; rights stay the console's. The bot's own hooks are wired by
        the ``adopt`` reconcile the dispatcher queues next (nothing is written to the console)."""
        found = await self.console.projects.by_slug(name)
        if found is None or found.status == "archived":
            return None
        projects = self.bot.projects
        project = projects.create(found.slug, found.description, "console")
        projects.set_console(project.id, found.id, found.slug)
        projects.set_status(project.id, "initializing")
        await self._import_rows(projects.by_id(project.id))
        await self._adopt_members(project, found)
        self.bot.rights.forget(found.slug)
        return projects.by_id(project.id)

    async def declared_deployments(self, project: Project) -> list[DeclaredDeployment] | None:
        """The console's deployments (v9.18+, §2.8), read with the bot's admin token: listing them
        takes ``LIST_DEPLOYMENTS``, which no system role but the administrator's holds, and the
        reader's right to see the project was checked before. None when the console has no such
        route (older than v9.18) or does not answer: ``/cpn status`` then shows ArgoCD alone."""
        if not project.console_id:
            return None
        try:
            found = await self.console.deployments.list(project.console_id)
        except (ConsoleError, ServiceError):
            return None
        names = {r.console_id: r.name for r in self.bot.projects.repositories(project.id) if r.console_id}
        return [
            DeclaredDeployment(
                name=d.name,
                environment=d.environment_name,
                sources=tuple(
                    (s.repository_name or names.get(s.repository_id, "?"), s.target_revision) for s in d.sources
                ),
                autosync=d.autosync,
            )
            for d in found
        ]

    async def refresh(self, project: Project) -> bool:
        """What was changed in the console's UI since the bot last looked: repositories and
        environments made there are added to the bot, those deleted there marked removed. True
        when something was added (its hooks are then wired by an ``adopt`` reconcile)."""
        if not project.console_id:
            return False
        # As fresh as the rights read from the console: two reads per command would double its cost.
        ttl = self.bot.config.console.rights_cache_seconds if self.bot.config.console else 0.0
        now = time.monotonic()
        if now - self._refreshed.get(project.id, -ttl - 1) < ttl:
            return False
        added, found = await asyncio.gather(self._import_rows(project), self.console.projects.get(project.console_id))
        await self._adopt_members(project, found)
        self.bot.rights.forget(project.slug)  # the console's roles may have changed with its members
        self._refreshed[project.id] = now
        return added

    async def _import_rows(self, project: Project) -> bool:
        projects, added = self.bot.projects, False
        repos, envs = await asyncio.gather(
            self.console.repositories.list(project.console_id), self.console.environments.list(project.console_id)
        )
        known_repos = {r.name: r for r in projects.repositories(project.id)}
        for repo in repos:
            if repo.internal_name not in known_repos:
                url, private, infra = repo.external_url, repo.is_private, repo.is_infra
                projects.add_repository(project.id, repo.internal_name, url, private, infra, "console")
                projects.set_repository_console_id(project.id, repo.internal_name, repo.id)
                added = True
        live = {r.id for r in repos}
        for row in known_repos.values():
            if row.console_id and row.console_id not in live:
                projects.set_repository_status(project.id, row.name, "removed")
        known_envs = {e.name: e for e in projects.environments(project.id)}
        new_envs = [e for e in envs if e.name not in known_envs]
        if new_envs:
            stages = {s.id: s.name for s in await self.console.stages()}
            clusters = {c.id: c.label for c in await self.console.clusters()}
            for env in new_envs:
                stage, cluster = stages.get(env.stage_id, env.stage_name), clusters.get(env.cluster_id, "")
                projects.add_environment(project.id, env.name, stage, env.cpu, env.memory, "console", cluster)
                projects.set_environment_console_id(project.id, env.name, env.id)
            added = True
        live = {e.id for e in envs}
        for env_row in known_envs.values():
            if env_row.console_id and env_row.console_id not in live:
                projects.set_environment_status(project.id, env_row.name, "removed")
        return added

    async def _adopt_members(self, project: Project, found: ConsoleProject) -> None:
        """The console's owner and members as the bot's, for the project page and the refusals'
        "who can grant it"; a person Mattermost does not show by e-mail is left out (the console
        still decides their rights). Those the bot holds and the console no longer has are
        removed; a known person only changes role (no Mattermost lookup again)."""
        people = [(found.owner.email, Role.OWNER)] if found.owner else []
        people += [(m.email, _role_of(found, m.user_id) or Role.READONLY) for m in found.members]
        wanted = {
            email.lower(): role
            for email, role in people
            if email and (role is Role.OWNER or not found.owner or email != found.owner.email)
        }
        known = {m.email.lower(): m for m in self.bot.projects.members(project.id) if m.email}
        for email, gone in known.items():
            if email not in wanted:
                self.bot.projects.remove_member(project.id, gone.user_id)
        for email, role in wanted.items():
            member = known.get(email)
            if member is not None:
                if member.role is not role:
                    self.bot.projects.set_member(project.id, member.user_id, member.username, email, role, "console")
                continue
            try:
                user = await self.bot.mm.get_user_by_email(email)
            except ServiceError:
                continue
            self.bot.projects.set_member(
                project.id, str(user["id"]), str(user.get("username") or ""), email, role, "console"
            )

    async def _write(self, console: Console, project: Project, mode: str) -> Provisioning:
        """Mirror the bot's rows into the console, then its report of the last provisioning."""
        created: Provisioning | None = None
        if not project.console_id:
            created = await console.projects.create(project.name, project.description)
            self.bot.projects.set_console(project.id, created.project.id, created.project.slug)
            project = self.bot.projects.by_id(project.id)
            current = created.project
        else:
            current = await console.projects.get(project.console_id)
        members_wrote, memberships_pending = await self._mirror_members(console, project, current)
        repositories_wrote = await self._mirror_repositories(console, project)
        environments_wrote = await self._mirror_environments(console, project)
        if mode == "replay" or memberships_pending:
            return await console.projects.replay(project.console_id)
        if created is not None and not (members_wrote or repositories_wrote or environments_wrote):
            return created  # read again after the POST already (§3.1)
        # Each write provisioned synchronously: its outcome is the last log (§3).
        return await console.projects.provisioning(project.console_id)

    async def _mirror_members(self, console: Console, project: Project, current: ConsoleProject) -> tuple[bool, bool]:
        """The bot's members become the console's, with their roles, then its owner the console's owner.

        Whether it wrote anything, and whether memberships changed after the console's last
        ``project.upsert``: they reach GitLab and Keycloak only at the next one (§2.2). An owner
        transfer is a project update, whose upsert is awaited
        (console:apps/server-nestjs/src/modules/project/project.service.ts ``update``), so it is made
        last and provisions every membership written before it: no replay after it.
        """
        wrote = pending = False
        by_email = {m.email.lower(): m for m in current.members}
        role_ids = _role_ids(current)
        owner_email = current.owner.email.lower() if current.owner else ""
        new_owner: str | None = None
        for member in self.bot.projects.members(project.id):
            email = member.email.lower()
            if not email or email == owner_email:
                continue
            if member.role is Role.OWNER:
                new_owner = member.email
                continue
            wanted = [role_ids[ROLE_GROUPS[member.role]]] if ROLE_GROUPS[member.role] in role_ids else []
            known = by_email.get(email)
            if known is None:
                added = await console.members.add(project.console_id, member.email)
                known = next((m for m in added if m.email.lower() == email), None)
                pending = True
            if known is not None and sorted(known.role_ids) != sorted(wanted):
                await console.members.set_roles(project.console_id, known.user_id, wanted)
                pending = True
        if new_owner is not None:
            # The new owner must be a member first (400 otherwise); the add answers the whole list.
            known = by_email.get(new_owner.lower())
            if known is None:
                added = await console.members.add(project.console_id, new_owner)
                known = next((m for m in added if m.email.lower() == new_owner.lower()), None)
                wrote = True
            if known is not None:
                await console.projects.update(project.console_id, ownerId=known.user_id)
                wrote, pending = True, False
        return wrote or pending, pending

    async def _mirror_repositories(self, console: Console, project: Project) -> bool:
        names, wrote = self._names(project), False
        vault = self.bot.platform.vault
        for repo in self.bot.projects.repositories(project.id):
            if repo.console_id:
                continue
            stored = (await vault.read(names.mirror_secret(repo.name)) or {}) if repo.is_private and vault else {}
            spec = RepositorySpec(
                repo.name,
                repo.external_url,
                is_infra=repo.is_infra,
                is_private=repo.is_private,
                external_user=str(stored.get("GIT_INPUT_USER") or ""),
                external_token=str(stored.get("GIT_INPUT_PASSWORD") or ""),
            )
            try:
                created = await console.repositories.create(project.console_id, spec)
                repo_id = created.id
            except ConsoleProvisioningError:
                # 422: the row is kept, a plugin failed (§2.4); the log read next says which.
                found = [r for r in await console.repositories.list(project.console_id) if r.internal_name == repo.name]
                if not found:
                    raise
                repo_id = found[0].id
            self.bot.projects.set_repository_console_id(project.id, repo.name, repo_id)
            wrote = True
        return wrote

    async def _mirror_environments(self, console: Console, project: Project) -> bool:
        wrote = False
        pending = [e for e in self.bot.projects.environments(project.id) if not e.console_id]
        if not pending:
            return False
        stages, clusters = await console.stages(), await console.clusters()
        for env in pending:
            placed = _place(stages, clusters, env.stage, env.cluster or None)
            if isinstance(placed, PlacementChoice):
                raise ConsoleError("invalid", 400, f"{env.name}: {placed.refused or 'cluster'}")
            stage, cluster = placed
            try:
                created = await console.environments.create(
                    project.console_id, env.name, stage.id, cluster.id, cpu=env.cpu, memory=env.memory
                )
                env_id = created.id
            except ConsoleProvisioningError:
                found = [e for e in await console.environments.list(project.console_id) if e.name == env.name]
                if not found:
                    raise
                env_id = found[0].id
            self.bot.projects.set_environment_console_id(project.id, env.name, env_id)
            wrote = True
        return wrote

    async def _refused(self, project: Project, steps: list[Step], exc: ConsoleError, progress: Progress) -> str:
        """The console refused the write: one line saying why, in the reader's words; nothing else ran."""
        refusal = Step("console", label="Console", state="failed")
        refusal.reason, refusal.params = failure_reason(exc)
        shown = [refusal] + [s for s in steps if s.state != "pending"]
        # A project the console already had keeps its state; the operation itself failed (nothing
        # after it runs: no first sync of a repository the console did not take).
        status = "failed" if not project.console_id or project.status == "initializing" else project.status
        self.bot.projects.set_status(project.id, status, {s.service: s.as_json() for s in shown})
        await progress(shown)
        return "failed"

    # -- removals -------------------------------------------------------------------------------

    async def _one_step(self, progress: Progress, action: Callable[[], Awaitable[object]]) -> bool:
        """A removal is one console write: one line on the card, the console's refusal in words."""
        step = Step("console", label="Console")
        await progress([step])

        async def run(_: Step) -> None:
            await action()

        await run_step(step, run)
        await progress([step])
        return step.state == "ok"

    async def delete_project(self, project: Project, progress: Progress, user_id: str) -> bool:
        console = await self.credential(user_id)
        if not project.console_id:  # never reached the console
            self.bot.projects.set_status(project.id, "archived")
            await progress([Step("console", state="ok", label="Console")])
            return True
        complete = await self._one_step(progress, functools.partial(console.projects.delete, project.console_id))
        if complete:
            self.bot.projects.set_gitlab_hooks(project.id, "")
            self.bot.projects.set_status(project.id, "archived")
        return complete

    async def remove_repository(self, project: Project, repo: str, progress: Progress, user_id: str) -> bool:
        console = await self.credential(user_id)
        row = self.bot.projects.repository(project.id, repo)
        complete = True
        if row is not None and row.console_id:
            console_id = row.console_id

            async def remove() -> None:
                # The bot's own webhook first (Free tier: one per repository), as in direct mode:
                # no event of a repository being deleted still reaches the bot.
                gitlab = self.bot.platform.gitlab
                if gitlab is not None and project.gitlab_hooks == "project":
                    found = await gitlab.find_project(self._names(project).repo(repo))
                    if found is not None:
                        await gitlab.remove_project_hook(found.id, hook_url(self.bot, self._names(project)))
                await console.repositories.delete(project.console_id, console_id)

            complete = await self._one_step(progress, remove)
        else:
            await progress([Step("console", state="ok", label="Console")])
        if complete:
            self.bot.projects.set_repository_status(project.id, repo, "removed")
        return complete

    async def remove_environment(self, project: Project, env: str, progress: Progress, user_id: str) -> bool:
        console = await self.credential(user_id)
        row = self.bot.projects.environment(project.id, env)
        complete = True
        if row is not None and row.console_id:
            complete = await self._one_step(
                progress, functools.partial(console.environments.delete, project.console_id, row.console_id)
            )
        else:
            await progress([Step("console", state="ok", label="Console")])
        if complete:
            self.bot.projects.set_environment_status(project.id, env, "removed")
        return complete

    # -- immediate changes ----------------------------------------------------------------------

    async def apply_member(self, project: Project, username: str, email: str, role: Role | None, user_id: str) -> bool:
        """Console membership at once, then a hooks replay: the console propagates memberships to
        GitLab and Keycloak only on the next reprovisioning (§2.2)."""
        if not project.console_id:
            return True  # mirrored when the project reaches the console
        console = await self.credential(user_id)
        current = await console.projects.get(project.console_id)
        known = next((m for m in current.members if m.email.lower() == email.lower()), None)
        if role is None:
            if known is None:
                return True
            await console.members.remove(project.console_id, known.user_id)
        else:
            if known is None:
                added = await console.members.add(project.console_id, email)
                known = next((m for m in added if m.email.lower() == email.lower()), None)
            role_ids = _role_ids(current)
            wanted = [role_ids[ROLE_GROUPS[role]]] if ROLE_GROUPS.get(role) in role_ids else []
            if known is not None and sorted(known.role_ids) != sorted(wanted):
                await console.members.set_roles(project.console_id, known.user_id, wanted)
        await console.projects.replay(project.console_id)
        self.bot.rights.forget(project.slug)  # the cached bits predate this change
        return True

    async def save_credentials(self, project: Project, repo: str, username: str, token: str, user_id: str) -> None:
        """To the console (which keeps the token in its Vault, never in its database, §2.4); a
        repository not yet in the console keeps them in the bot's Vault until it is created."""
        row = self.bot.projects.repository(project.id, repo)
        if row is not None and row.console_id:
            fields: dict[str, object] = {"isPrivate": True, "externalUserName": username}
            if token:
                fields["externalToken"] = token
            await (await self.credential(user_id)).repositories.update(project.console_id, row.console_id, **fields)
            return
        vault = self.bot.platform.vault
        if vault is None:
            raise ServiceError("Vault", Failure.UNAVAILABLE, detail="not configured")
        secret = {"GIT_INPUT_USER": username} | ({"GIT_INPUT_PASSWORD": token} if token else {})
        await vault.merge(self._names(project).mirror_secret(repo), secret)

    async def trigger_sync(
        self, project: Project, repo: str, branch: str | None, all_branches: bool, user_id: str
    ) -> Pipeline:
        """The console starts the mirror pipeline (§2.4 ``…/sync``: 204 once it is created); the
        bot follows it in GitLab, found by the console's slug."""
        await sync.check_source(self.bot, project, repo, branch)
        row = self.bot.projects.repository(project.id, repo)
        if row is None or not row.console_id:
            raise ConsoleError("not_found", 404)
        await (await self.credential(user_id)).repositories.sync(
            project.console_id, row.console_id, None if all_branches else (branch or "main")
        )
        return await self._last_mirror_pipeline(project)

    async def first_sync(self, project: Project, repo: str, user_id: str) -> Pipeline:
        """The console already started it: creating a repository with an external URL runs its
        mirror (§3.2); asking again would run it twice."""
        await sync.check_source(self.bot, project, repo, None)
        return await self._last_mirror_pipeline(project)

    async def _last_mirror_pipeline(self, project: Project) -> Pipeline:
        gitlab = self.bot.platform.gitlab
        if gitlab is None:
            raise ServiceError("GitLab", Failure.UNAVAILABLE, detail="not configured")
        mirror = await gitlab.find_project(self._names(project).repo(MIRROR_REPO))
        pipelines = await gitlab.pipelines(mirror.id, per_page=1) if mirror is not None else []
        if not pipelines:
            raise ServiceError("GitLab", Failure.NOT_FOUND, detail="mirror pipeline")
        return pipelines[0]

    async def placement(self, stage: str, cluster: str | None) -> Placement | PlacementChoice:
        """As the console's environment form: the stage, then the clusters serving it (§2.6-2.7)."""
        console = self.console
        placed = _place(await console.stages(), await console.clusters(), stage, cluster)
        if isinstance(placed, PlacementChoice):
            return placed
        return Placement(placed[0].name, placed[1].label)


def _role_of(project: ConsoleProject, person_id: str) -> Role | None:
    """The bot's role matching what a person holds in a console project (owner, or the highest of
    their system roles by OIDC suffix); None when they are not in it."""
    if project.owner_id == person_id:
        return Role.OWNER
    member = next((m for m in project.members if m.user_id == person_id), None)
    if member is None:
        return None
    suffixes = {role_id: suffix for suffix, role_id in _role_ids(project).items()}
    by_suffix = {suffix: role for role, suffix in ROLE_GROUPS.items()}
    held = [by_suffix[suffixes[r]] for r in member.role_ids if suffixes.get(r) in by_suffix]
    return max(held) if held else Role.READONLY


def _unseen(found: ConsoleProject) -> Project:
    """A console project as ``project list`` shows it before the bot adopts it (no row yet)."""
    status = found.status if found.status in ("created", "failed", "warning") else "initializing"
    return Project(0, found.slug, found.slug, found.description, status, "console", 0.0, console_id=found.id)


def _role_ids(project: ConsoleProject) -> dict[str, str]:
    """The project's system roles by OIDC suffix (``/console/devops`` → ``devops``)."""
    found: dict[str, str] = {}
    for role in project.roles:
        suffix = role.oidc_group.rstrip("/").rsplit("/", 1)[-1]
        if suffix:
            found.setdefault(suffix, role.id)
    return found


def _place(
    stages: list[Stage], clusters: list[Cluster], stage_name: str, cluster_label: str | None
) -> tuple[Stage, Cluster] | PlacementChoice:
    """The console UI's rule (``apps/client/src/components/EnvironmentForm.vue``): the clusters
    whose ``stageIds`` hold the stage; the server does not check it (console-api.md §2.6)."""
    stage = next((s for s in stages if s.name == stage_name), None)
    if stage is None:
        return PlacementChoice(stage_name, tuple(s.name for s in stages), refused="stage")
    fitting = [c for c in clusters if stage.id in c.stage_ids]
    labels = tuple(sorted(c.label for c in fitting))
    if cluster_label:
        chosen = next((c for c in fitting if c.label == cluster_label), None)
        return (stage, chosen) if chosen is not None else PlacementChoice(stage.name, labels, refused="cluster")
    if len(fitting) == 1:
        return stage, fitting[0]
    return PlacementChoice(stage.name, labels)


def _report(steps: list[Step], provisioning: Provisioning, slug: str) -> None:
    """The console's per-plugin results on the checklist's steps; a plugin of no step (Keycloak)
    gets a line of its own when it failed."""
    full = any(p.ok for p in provisioning.plugins)  # clean logs list only the failures
    by_service = {s.service: s for s in steps}
    for result in provisioning.plugins:
        service = PLUGIN_SERVICES.get(result.plugin)
        step = by_service.get(service) if service else None
        if step is None:
            if result.ok:
                continue
            step = Step(result.plugin, label=result.plugin.title())
            steps.append(step)
            by_service[result.plugin] = step
        if result.ok and step.state != "failed":
            step.state = "ok"
        elif not result.ok:
            step.state = "failed"
            step.reason = "onboarding.reason.console_plugin"
            step.params = {"detail": result.message, "project": slug}  # the service: the line's name
    for step in steps:
        if step.state != "pending":
            continue
        if provisioning.state == "pending":
            step.state, step.reason, step.params = "failed", "console_error.timeout", {}
        elif provisioning.state == "failed" and not provisioning.plugins:
            step.state, step.reason, step.params = "failed", "console_error.provisioning_failed", {}
        else:
            step.state = "skipped" if full else "ok"
