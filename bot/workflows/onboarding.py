"""A project's provisioning across the platform, as one idempotent reconciliation.

Each service is one step made of "ensure" calls that change nothing already right. The whole
reconciliation runs when a project is created, when anything of it changes (a repository, an
environment, a member) and on ``/cpn project replay``; it is safe to run again after a crash or
an outage, and what it changed is reported.

Secrets the steps create (trigger token, group token, robot tokens, Nexus password, Sonar token)
go straight to Vault; nothing secret is kept by the bot. Webhook secrets are derived from the
service's master webhook secret (:meth:`bot.runtime.Bot.webhook_secret`), so they are never stored.

Order matters: Vault first (the other steps store their secrets there), then GitLab, the
registry, Nexus, SonarQube and ArgoCD. SonarQube and Nexus are not critical: their failure leaves
the project ``warning`` (usable), any other failure ``failed``.
"""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.logs import log
from bot.model import Environment, Member, Project, Repository
from bot.rights import GITLAB_ACCESS
from bot.workflows import mirror_files
from bot.workflows.naming import CI_CONFIG_PATH, MIRROR_REPO, MIRROR_TRIGGER, Names
from bot.workflows.platform import Platform
from bot.workflows.rules import without_scheme
from services.base import Ensured
from services.console_errors import ConsoleError, reader_reason
from services.errors import Failure, ServiceError
from services.gitlab import Group
from services.gitlab import Project as GitLabProject
from services.registry import RobotCredentials, robot_secret

if TYPE_CHECKING:
    from bot.runtime import Bot

logger = logging.getLogger("cpn.onboarding")

SERVICES = ("vault", "gitlab", "registry", "nexus", "sonarqube", "argocd")
NON_CRITICAL = ("nexus", "sonarqube")
NEEDS_VAULT = ("gitlab", "registry", "nexus", "sonarqube")


@dataclass
class Step:
    """One service's part of the reconciliation, as the checklist shows it."""

    service: str
    state: str = "pending"  # pending | running | ok | warning | failed | skipped
    reason: str = ""  # catalog key explaining a failure
    params: dict[str, str] = field(default_factory=dict)
    changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # non-fatal remarks (a member GitLab does not know)
    label: str = ""  # the service's name when it depends on the platform (the registry: Quay, Harbor)

    def record(self, ensured: Ensured[Any]) -> Any:
        if ensured.changed:
            self.changes.append(ensured.what)
        return ensured.value

    def as_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "reason": self.reason,
            "params": self.params,
            "changes": self.changes,
            "notes": self.notes,
        } | ({"label": self.label} if self.label else {})


Progress = Callable[[list[Step]], Awaitable[None]]


def overall_status(steps: list[Step]) -> str:
    failed = [s.service for s in steps if s.state == "failed"]
    if any(service not in NON_CRITICAL for service in failed):
        return "failed"
    if failed or any(s.state == "warning" for s in steps):
        return "warning"
    return "created"


@dataclass
class Context:
    bot: Bot
    platform: Platform
    project: Project
    names: Names
    members: list[Member]
    repositories: list[Repository]
    environments: list[Environment]


def context(bot: Bot, project: Project) -> Context:
    """What the steps read of a project, taken once at the start of a reconciliation."""
    projects = bot.projects
    return Context(
        bot=bot,
        platform=bot.platform,
        project=project,
        names=Names(bot.config.platform.root_group, project.slug),
        members=projects.members(project.id),
        repositories=projects.repositories(project.id),
        environments=projects.environments(project.id),
    )


def service_steps(bot: Bot) -> list[Step]:
    """The checklist's lines, one per service, in the order of :data:`SERVICES` (both controls)."""
    registry = bot.platform.registry
    return [
        Step(service, label=registry.name if service == "registry" and registry is not None else "")
        for service in SERVICES
    ]


def finish(ctx: Context, steps: list[Step]) -> str:
    """The project's status from its steps, stored with them; new repositories and environments are ready."""
    status = overall_status(steps)
    ctx.bot.projects.set_status(ctx.project.id, status, {s.service: s.as_json() for s in steps})
    for repo in ctx.repositories:
        if repo.status == "initializing":
            ctx.bot.projects.set_repository_status(ctx.project.id, repo.name, "created")
    for env in ctx.environments:
        if env.status == "initializing":
            ctx.bot.projects.set_environment_status(ctx.project.id, env.name, "created")
    return status


def failure_reason(exc: ServiceError) -> tuple[str, dict[str, str]]:
    """The catalog key and parameters telling why a service refused: the console's own reasons
    (``[console_error]``, both of its error shapes already parsed), else the failure's kind."""
    if isinstance(exc, ConsoleError):
        return f"console_error.{reader_reason(exc)}", {"service": exc.service, "message": exc.console_message}
    return f"onboarding.reason.{exc.failure.value}", {"service": exc.service, "detail": exc.detail}


async def run_step(step: Step, action: Callable[[Step], Awaitable[None]]) -> None:
    """One step's action; its outcome (ok, warning with notes, failed with a reason) goes on the step."""
    step.state = "running"
    try:
        await action(step)
        step.state = "warning" if step.notes else "ok"
    except ServiceError as exc:
        step.state = "failed"
        step.reason, step.params = failure_reason(exc)
    except Exception as exc:  # a bug in one step must not hide the others' outcome
        log(logger, logging.ERROR, "onboarding step crashed", service=step.service, error=type(exc).__name__)
        logger.debug("step crash", exc_info=True)
        step.state, step.reason = "failed", "onboarding.reason.internal"


class Reconciliation:
    """Runs every step for one project and reports each one's outcome through ``progress``."""

    def __init__(self, bot: Bot, project: Project) -> None:
        self.ctx = context(bot, project)
        self.steps = service_steps(bot)

    async def run(self, progress: Progress) -> str:
        await progress(self.steps)
        for step in self.steps:
            runner = STEPS[step.service]
            if not _configured(self.ctx.platform, step.service):
                step.state = "skipped"
                continue
            vault = self.steps[0]
            if step.service in NEEDS_VAULT and vault.state == "failed":
                step.state, step.reason = "failed", "onboarding.reason.needs_vault"
                await progress(self.steps)
                continue
            step.state = "running"
            await progress(self.steps)
            await run_step(step, functools.partial(runner, self.ctx))
            await progress(self.steps)
        status = finish(self.ctx, self.steps)
        await progress(self.steps)  # the card shows the final status
        return status


def _configured(platform: Platform, service: str) -> bool:
    return getattr(platform, service) is not None


# -- the steps ------------------------------------------------------------------------------------


async def vault_step(ctx: Context, step: Step) -> None:
    vault = ctx.platform.vault
    assert vault is not None
    names = ctx.names
    step.record(await vault.ensure_kv2_mount(names.app_mount, f"Application secrets of {names.slug}"))
    step.record(
        await vault.ensure_policy(
            names.admin_policy,
            f'path "{names.app_mount}/*" {{\n  capabilities = ["create", "read", "update", "delete", "list"]\n}}\n',
        )
    )
    step.record(
        await vault.ensure_policy(
            names.ro_policy,
            f'path "{vault.kv_mount}/data/{names.vault("REGISTRY/ro-robot")}" {{\n  capabilities = ["read"]\n}}\n',
        )
    )


async def gitlab_step(ctx: Context, step: Step) -> None:
    gitlab, vault = ctx.platform.gitlab, ctx.platform.vault
    assert gitlab is not None and vault is not None
    names = ctx.names
    group = step.record(await gitlab.ensure_group(names.group, names.slug, ctx.project.description))
    mirror = step.record(await gitlab.ensure_project(group, MIRROR_REPO, description="Synchronisation des dépôts"))
    for path, content in mirror_files.FILES.items():
        message = f"cpn-bot : {path} du dépôt mirror, géré par le bot"
        step.record(await gitlab.ensure_file(mirror.id, path, content, message))

    stored = await vault.read(names.vault("GITLAB")) or {}
    trigger = step.record(await gitlab.ensure_trigger(mirror.id, MIRROR_TRIGGER))
    if trigger is None and not stored.get("GIT_MIRROR_TOKEN"):
        trigger = await gitlab.rotate_trigger(mirror.id, MIRROR_TRIGGER)
        step.changes.append("rotated the mirror trigger token")
    step.record(
        await vault.merge(
            names.vault("GITLAB"),
            {"GIT_MIRROR_PROJECT_ID": str(mirror.id), "PROJECT_SLUG": names.slug}
            | ({"GIT_MIRROR_TOKEN": trigger} if trigger else {}),
        )
    )

    mirror_secret = await vault.read(names.vault("tech/GITLAB_MIRROR")) or {}
    token = step.record(
        await gitlab.ensure_group_access_token(
            group.id, names.bot_token, ["write_repository", "read_repository", "read_api"], 40
        )
    )
    if token is None and not mirror_secret.get("MIRROR_TOKEN"):
        token = await gitlab.rotate_group_access_token(
            group.id, names.bot_token, ["write_repository", "read_repository", "read_api"], 40
        )
        step.changes.append(f"rotated the group token {names.bot_token}")
    if token:
        step.record(
            await vault.ensure(
                names.vault("tech/GITLAB_MIRROR"), {"MIRROR_USER": names.bot_token, "MIRROR_TOKEN": token}
            )
        )
        mirror_secret = {"MIRROR_USER": names.bot_token, "MIRROR_TOKEN": token}

    for member in ctx.members:
        user = await gitlab.find_user_by_email(member.email) if member.email else None
        if user is None:
            step.notes.append(f"@{member.username}")
            continue
        step.record(await gitlab.ensure_group_member(group.id, user.id, GITLAB_ACCESS[member.role]))

    repositories = [mirror]
    for repo in ctx.repositories:
        internal = step.record(
            await gitlab.ensure_project(group, repo.name, ci_config_path=CI_CONFIG_PATH if repo.external_url else None)
        )
        repositories.append(internal)
        if repo.external_url:
            step.record(
                await vault.merge(
                    names.mirror_secret(repo.name),
                    {
                        "GIT_INPUT_URL": without_scheme(repo.external_url),
                        "GIT_OUTPUT_URL": without_scheme(internal.http_url_to_repo),
                        "GIT_OUTPUT_USER": mirror_secret.get("MIRROR_USER", names.bot_token),
                        "GIT_OUTPUT_PASSWORD": mirror_secret.get("MIRROR_TOKEN", ""),
                    },
                )
            )
    await _ensure_hooks(ctx, step, group, repositories)


async def gitlab_hooks(ctx: Context, step: Step) -> None:
    """The bot's GitLab webhooks on a group someone else provisioned (the console's GitLab plugin),
    found by the project's slug, with every repository in it."""
    gitlab = ctx.platform.gitlab
    assert gitlab is not None
    path = ctx.names.group
    # The hook goes on the group named by its path: no read of the group first, unless GitLab
    # answers 404 (no group hooks on Free, or no such group) or its repositories are needed.
    kind = await _group_hook(ctx, step, path)
    if kind == "project" or ctx.project.gitlab_hooks == "project":
        group = await gitlab.find_group(path)
        if group is None:
            raise ServiceError("GitLab", Failure.NOT_FOUND, detail=path)
        await _project_hooks(ctx, step, kind, await gitlab.list_group_projects(group.id))
    elif ctx.project.gitlab_hooks != kind:
        ctx.bot.projects.set_gitlab_hooks(ctx.project.id, kind)


async def _ensure_hooks(ctx: Context, step: Step, group: Group, repositories: list[GitLabProject]) -> None:
    """The bot's GitLab webhook: on the group (Premium), else on every repository (Free).

    Group webhooks are an EE feature: a Free/CE instance answers 404 on ``/groups/:id/hooks``
    (CE's lib/api/api.rb mounts no GroupHooks). The project hooks then go on the mirror and on
    every repository, including those added later (each change runs this reconciliation again).
    Going back to a group hook removes the project hooks, or every event would come twice.
    """
    await _project_hooks(ctx, step, await _group_hook(ctx, step, group.id), repositories)


async def _group_hook(ctx: Context, step: Step, group: int | str) -> str:
    """``group`` when the group (its id or path) has the bot's webhook, ``project`` when GitLab
    answered 404: no group hooks on this tier (or, by path, no such group)."""
    gitlab = ctx.platform.gitlab
    assert gitlab is not None
    try:
        step.record(
            await gitlab.ensure_group_hook(
                group, hook_url(ctx.bot, ctx.names), ctx.bot.webhook_secret("gitlab", ctx.names.slug)
            )
        )
        return "group"
    except ServiceError as exc:
        if exc.failure is not Failure.NOT_FOUND:
            raise
        return "project"


async def _project_hooks(ctx: Context, step: Step, kind: str, repositories: list[GitLabProject]) -> None:
    """Each repository's webhook when GitLab has no group hooks; removed when the group has one."""
    gitlab = ctx.platform.gitlab
    assert gitlab is not None
    url = hook_url(ctx.bot, ctx.names)
    secret = ctx.bot.webhook_secret("gitlab", ctx.names.slug)
    for project in repositories:
        if kind == "project":
            step.record(await gitlab.ensure_project_hook(project.id, url, secret))
        elif ctx.project.gitlab_hooks == "project" and await gitlab.remove_project_hook(project.id, url):
            step.changes.append(f"removed webhook of project {project.id} (the group has one)")
    if ctx.project.gitlab_hooks != kind:
        ctx.bot.projects.set_gitlab_hooks(ctx.project.id, kind)


def hook_url(bot: Bot, names: Names) -> str:
    return f"{bot.public_url}/hooks/gitlab?project={names.slug}"


async def registry_step(ctx: Context, step: Step) -> None:
    registry, vault = ctx.platform.registry, ctx.platform.vault
    assert registry is not None and vault is not None
    names = ctx.names
    step.record(await registry.ensure_namespace(names.slug))
    for short, write in (("ro", False), ("rw", True)):
        path = names.vault(f"REGISTRY/{short}-robot")
        # Harbor shows a robot's secret only once: Vault's copy is the one kept across replays.
        stored = await vault.read(path) or {}
        known = (
            RobotCredentials(stored["USERNAME"], stored["TOKEN"])
            if stored.get("USERNAME") and stored.get("TOKEN")
            else None
        )
        creds = step.record(await registry.ensure_robot(names.slug, short, write, known=known))
        step.record(await vault.ensure(path, robot_secret(registry, creds)))
    await registry_hook(ctx, step)


async def registry_hook(ctx: Context, step: Step) -> None:
    """The registry's scan webhook to the bot (Harbor; Quay has none), with the project's secret."""
    registry = ctx.platform.registry
    assert registry is not None
    if registry.hook_source:
        source, slug = registry.hook_source, ctx.names.slug
        # No ?project=: Harbor keeps only scheme://host/path of a target (handler/webhook.go
        # validateTargets, common/utils ParseEndpoint); the secret says which project it is.
        url = f"{ctx.bot.public_url}/hooks/{source}"
        step.record(await registry.ensure_scan_hook(slug, url, ctx.bot.webhook_secret(source, slug)))


async def nexus_step(ctx: Context, step: Step) -> None:
    nexus, vault = ctx.platform.nexus, ctx.platform.vault
    assert nexus is not None and vault is not None
    names = ctx.names
    step.record(await nexus.ensure_maven(names.slug))
    step.record(await nexus.ensure_npm(names.slug))
    stored = await vault.read(names.vault("NEXUS")) or {}
    password = stored.get("NEXUS_PASSWORD") or secrets.token_urlsafe(24)
    step.record(await nexus.ensure_access(names.slug, password, reset_password="NEXUS_PASSWORD" not in stored))
    step.record(await vault.ensure(names.vault("NEXUS"), {"NEXUS_USERNAME": names.slug, "NEXUS_PASSWORD": password}))


async def sonarqube_step(ctx: Context, step: Step) -> None:
    sonar, vault = ctx.platform.sonarqube, ctx.platform.vault
    assert sonar is not None and vault is not None
    names = ctx.names
    step.record(await sonar.ensure_user(names.slug, f"Projet {names.slug}"))
    stored = await vault.read(names.vault("SONAR")) or {}
    if not stored.get("SONAR_TOKEN"):
        token = await sonar.generate_token(names.slug, "cpn-bot")
        step.record(await vault.ensure(names.vault("SONAR"), {"SONAR_USERNAME": names.slug, "SONAR_TOKEN": token}))
    for repo in ctx.repositories:
        key = names.sonar_key(repo.name)
        step.record(await sonar.ensure_project(key, key))
        step.record(await sonar.ensure_user_permissions(names.slug, key))
    await sonarqube_hooks(ctx, step)


async def sonarqube_hooks(ctx: Context, step: Step) -> None:
    """The bot's quality-gate webhook on each repository's SonarQube project."""
    sonar = ctx.platform.sonarqube
    assert sonar is not None
    secret = ctx.bot.webhook_secret("sonarqube", ctx.names.slug)
    for repo in ctx.repositories:
        key = ctx.bot.control.sonar_key(ctx.names.slug, repo.name)
        step.record(await sonar.ensure_webhook(key, "cpn-bot", f"{ctx.bot.public_url}/hooks/sonarqube", secret))


async def argocd_step(ctx: Context, step: Step) -> None:
    argocd = ctx.platform.argocd
    assert argocd is not None
    names = ctx.names
    config = ctx.bot.config.argocd
    server = config.destination_server if config else "https://kubernetes.default.svc"
    group_url = f"{ctx.platform.gitlab_url}/{names.group}"
    step.record(
        await argocd.ensure_project(
            names.argocd_project,
            [f"{group_url}/*", f"{group_url}/*.git"],
            [(server, f"{names.slug}-*")],
            f"Cloud π Native project {names.slug}",
        )
    )
    for env in ctx.environments:
        for repo in ctx.repositories:
            if not repo.is_infra:
                continue
            step.record(
                await argocd.ensure_application(
                    names.argocd_app(env.name, repo.name),
                    names.argocd_project,
                    f"{group_url}/{repo.name}.git",
                    ".",
                    "HEAD",
                    names.namespace(env.name),
                    server=server,
                    value_files=[f"values-{env.name}.yaml"],
                )
            )


# What the bot wires itself when another provisions the services (console mode): its webhooks,
# with its own service tokens and secrets, the very code the direct steps end with.
NOTIFICATIONS: dict[str, Callable[[Context, Step], Awaitable[None]]] = {
    "gitlab": gitlab_hooks,
    "registry": registry_hook,
    "sonarqube": sonarqube_hooks,
}

STEPS: dict[str, Callable[[Context, Step], Awaitable[None]]] = {
    "vault": vault_step,
    "gitlab": gitlab_step,
    "registry": registry_step,
    "nexus": nexus_step,
    "sonarqube": sonarqube_step,
    "argocd": argocd_step,
}
