"""Removing what the bot created: a whole project, one repository, one environment.

Each removal is a step per service, like the provisioning, so that a service down in the middle
is named and the removal can simply be run again: removing what is already gone is not an error.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from bot.logs import log
from bot.model import Project
from bot.workflows.naming import Names
from bot.workflows.onboarding import Progress, Step, hook_url
from services.errors import ServiceError

if TYPE_CHECKING:
    from bot.runtime import Bot

logger = logging.getLogger("cpn.teardown")

Action = Callable[[Step], Awaitable[None]]


async def _run(steps: list[tuple[Step, Action]], progress: Progress) -> bool:
    shown = [step for step, _ in steps]
    await progress(shown)
    for step, action in steps:
        step.state = "running"
        await progress(shown)
        try:
            await action(step)
            step.state = "ok"
        except ServiceError as exc:
            step.state = "failed"
            step.reason = f"onboarding.reason.{exc.failure.value}"
            step.params = {"service": exc.service, "detail": exc.detail}
        except Exception as exc:
            log(logger, logging.ERROR, "teardown step crashed", service=step.service, error=type(exc).__name__)
            step.state, step.reason = "failed", "onboarding.reason.internal"
        await progress(shown)
    return all(step.state == "ok" for step in shown)


def _names(bot: Bot, project: Project) -> Names:
    return Names(bot.config.platform.root_group, project.slug)


async def delete_project(bot: Bot, project: Project, progress: Progress) -> bool:
    """Everything of the project on every service; the row becomes ``archived`` when all is gone."""
    platform, names = bot.platform, _names(bot, project)
    repositories = bot.projects.repositories(project.id)
    steps: list[tuple[Step, Action]] = []

    if platform.argocd is not None:
        argocd = platform.argocd

        async def argocd_action(step: Step) -> None:
            deleted = []
            for app in await argocd.list_applications(names.argocd_project):
                if await argocd.delete_application(app["metadata"]["name"]):
                    deleted.append(app["metadata"]["name"])
                    step.changes.append(f"deleted application {app['metadata']['name']}")
            # A cascade delete only marks each application; the AppProject refuses deletion while
            # one is still there (server/project/project.go Delete: "project is referenced by …").
            config = bot.config.argocd
            await argocd.wait_deleted(
                deleted,
                timeout=config.delete_timeout_seconds if config else 300.0,
                interval=config.poll_seconds if config else 1.0,
            )
            if await argocd.delete_project(names.argocd_project):
                step.changes.append(f"deleted AppProject {names.argocd_project}")

        steps.append((Step("argocd"), argocd_action))
    if platform.sonarqube is not None:
        sonar = platform.sonarqube

        async def sonar_action(step: Step) -> None:
            for repo in repositories:
                if await sonar.delete_project(names.sonar_key(repo.name)):
                    step.changes.append(f"deleted Sonar project {names.sonar_key(repo.name)}")
            if await sonar.deactivate_user(names.slug):
                step.changes.append(f"deactivated user {names.slug}")

        steps.append((Step("sonarqube"), sonar_action))
    if platform.nexus is not None:
        nexus = platform.nexus

        async def nexus_action(step: Step) -> None:
            removed = await nexus.delete_project(names.slug)
            if removed:
                step.changes.append(f"removed {removed} Nexus objects")

        steps.append((Step("nexus"), nexus_action))
    if platform.registry is not None:
        registry = platform.registry

        async def registry_action(step: Step) -> None:
            if await registry.delete_namespace(names.slug):
                step.changes.append(f"deleted {registry.name} namespace {names.slug}")

        steps.append((Step("registry", label=registry.name), registry_action))
    if platform.gitlab is not None:
        gitlab = platform.gitlab

        async def gitlab_action(step: Step) -> None:
            if project.gitlab_hooks == "project":
                group = await gitlab.find_group(names.group)
                for repository in await gitlab.list_group_projects(group.id) if group else []:
                    if await gitlab.remove_project_hook(repository.id, hook_url(bot, names)):
                        step.changes.append(f"removed webhook of {repository.path_with_namespace}")
            if await gitlab.delete_group(names.group):
                step.changes.append(f"deleted group {names.group}")
            bot.projects.set_gitlab_hooks(project.id, "")

        steps.append((Step("gitlab"), gitlab_action))
    if platform.vault is not None:
        vault = platform.vault

        async def vault_action(step: Step) -> None:
            removed = await vault.delete_tree(f"{names.root}/{names.slug}")
            if removed:
                step.changes.append(f"destroyed {removed} secrets")
            if await vault.delete_mount(names.app_mount):
                step.changes.append(f"removed mount {names.app_mount}")
            for policy in (names.admin_policy, names.ro_policy):
                if await vault.delete_policy(policy):
                    step.changes.append(f"removed policy {policy}")

        steps.append((Step("vault"), vault_action))

    complete = await _run(steps, progress)
    if complete:
        bot.projects.set_status(project.id, "archived")
    return complete


async def remove_repository(bot: Bot, project: Project, repo: str, progress: Progress) -> bool:
    platform, names = bot.platform, _names(bot, project)
    environments = bot.projects.environments(project.id)
    steps: list[tuple[Step, Action]] = []
    if platform.argocd is not None:
        argocd = platform.argocd

        async def argocd_action(step: Step) -> None:
            for env in environments:
                if await argocd.delete_application(names.argocd_app(env.name, repo)):
                    step.changes.append(f"deleted application {names.argocd_app(env.name, repo)}")

        steps.append((Step("argocd"), argocd_action))
    if platform.sonarqube is not None:
        sonar = platform.sonarqube

        async def sonar_action(step: Step) -> None:
            if await sonar.delete_project(names.sonar_key(repo)):
                step.changes.append(f"deleted Sonar project {names.sonar_key(repo)}")

        steps.append((Step("sonarqube"), sonar_action))
    if platform.gitlab is not None:
        gitlab = platform.gitlab

        async def gitlab_action(step: Step) -> None:
            found = await gitlab.find_project(names.repo(repo))
            # Free tier: the repository's own webhook goes first, so that no event of a project
            # GitLab only marks for deletion still reaches the bot.
            if found is not None and project.gitlab_hooks == "project":
                if await gitlab.remove_project_hook(found.id, hook_url(bot, names)):
                    step.changes.append(f"removed webhook of {names.repo(repo)}")
            if found is not None and await gitlab.delete_project(found.id):
                step.changes.append(f"deleted repository {names.repo(repo)}")

        steps.append((Step("gitlab"), gitlab_action))
    if platform.vault is not None:
        vault = platform.vault

        async def vault_action(step: Step) -> None:
            if await vault.delete(names.mirror_secret(repo)):
                step.changes.append(f"destroyed secret {repo}-mirror")

        steps.append((Step("vault"), vault_action))
    complete = await _run(steps, progress)
    if complete:
        bot.projects.set_repository_status(project.id, repo, "removed")
    return complete


async def remove_environment(bot: Bot, project: Project, env: str, progress: Progress) -> bool:
    platform, names = bot.platform, _names(bot, project)
    steps: list[tuple[Step, Action]] = []
    if platform.argocd is not None:
        argocd = platform.argocd
        repositories = bot.projects.repositories(project.id)

        async def argocd_action(step: Step) -> None:
            for repo in repositories:
                if await argocd.delete_application(names.argocd_app(env, repo.name)):
                    step.changes.append(f"deleted application {names.argocd_app(env, repo.name)}")

        steps.append((Step("argocd"), argocd_action))
    complete = await _run(steps, progress)
    if complete:
        bot.projects.set_environment_status(project.id, env, "removed")
    return complete
