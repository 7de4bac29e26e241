"""The bot provisions every service itself: today's workflows, unchanged behind :class:`Control`."""

from __future__ import annotations

from typing import ClassVar

from bot.control.base import Control, Placement, PlacementChoice
from bot.model import Project
from bot.rights import GITLAB_ACCESS, Role
from bot.workflows import sync, teardown
from bot.workflows.naming import Names
from bot.workflows.onboarding import Progress, Reconciliation
from bot.workflows.rules import STAGES
from services.errors import Failure, ServiceError
from services.gitlab import Pipeline


class DirectControl(Control):
    name: ClassVar[str] = "direct"

    def _names(self, project: Project) -> Names:
        return Names(self.bot.config.platform.root_group, project.slug)

    async def reconcile(self, project: Project, mode: str, progress: Progress, user_id: str) -> str:
        return await Reconciliation(self.bot, project).run(progress)

    async def delete_project(self, project: Project, progress: Progress, user_id: str) -> bool:
        return await teardown.delete_project(self.bot, project, progress)

    async def remove_repository(self, project: Project, repo: str, progress: Progress, user_id: str) -> bool:
        return await teardown.remove_repository(self.bot, project, repo, progress)

    async def remove_environment(self, project: Project, env: str, progress: Progress, user_id: str) -> bool:
        return await teardown.remove_environment(self.bot, project, env, progress)

    async def apply_member(self, project: Project, username: str, email: str, role: Role | None, user_id: str) -> bool:
        """The membership on the project's GitLab group, at once (the next replay repairs drift)."""
        gitlab = self.bot.platform.gitlab
        if gitlab is None:
            return True
        group = await gitlab.find_group(self._names(project).group)
        user = await gitlab.find_user_by_email(email) if email else None
        if user is None:
            return False
        if group is None:
            return True
        if role is None:
            await gitlab.remove_group_member(group.id, user.id)
        else:
            await gitlab.ensure_group_member(group.id, user.id, GITLAB_ACCESS[role])
        return True

    async def save_credentials(self, project: Project, repo: str, username: str, token: str, user_id: str) -> None:
        vault = self.bot.platform.vault
        if vault is None:
            raise ServiceError("Vault", Failure.UNAVAILABLE, detail="not configured")
        secret = {"GIT_INPUT_USER": username} | ({"GIT_INPUT_PASSWORD": token} if token else {})
        await vault.merge(self._names(project).mirror_secret(repo), secret)

    async def trigger_sync(
        self, project: Project, repo: str, branch: str | None, all_branches: bool, user_id: str
    ) -> Pipeline:
        return await sync.trigger(self.bot, project, repo, branch, all_branches)

    def sonar_key(self, slug: str, repo: str) -> str:
        return Names(self.bot.config.platform.root_group, slug).sonar_key(repo)

    async def first_sync(self, project: Project, repo: str, user_id: str) -> Pipeline:
        return await self.trigger_sync(project, repo, None, True, user_id)

    async def close(self) -> None:
        """Its services' clients are the platform's (``bot.platform``), closed with it."""

    async def placement(self, stage: str, cluster: str | None) -> Placement | PlacementChoice:
        # No clusters here: the namespace <slug>-<env> goes to ArgoCD's one destination.
        if stage not in STAGES:
            return PlacementChoice(stage, (), refused="stage")
        return Placement(stage)
