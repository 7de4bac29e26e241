"""What onboarding commands need of whoever provisions the platform, in one interface.

Two implementations: :mod:`bot.control.direct` (the bot drives every service, the beta's
platform) and :mod:`bot.control.console` (through the Cloud π Native console). Both keep the
bot's own rows (projects, members, repositories, environments) for channels, notifications and
cards, report their work as the same :class:`~bot.workflows.onboarding.Step` checklist, and
raise :class:`~services.errors.ServiceError` (for the console, ``ConsoleError`` with a locale
reason) when a service refuses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from bot.context import Identity
from bot.model import DeclaredDeployment, Project
from bot.rights import Role
from bot.workflows.onboarding import Progress
from services.gitlab import Pipeline

if TYPE_CHECKING:
    from bot.runtime import Bot


@dataclass(frozen=True)
class Placement:
    """Where a new environment goes: its stage and, in console mode, its cluster's label."""

    stage: str
    cluster: str = ""


@dataclass(frozen=True)
class PlacementChoice:
    """No single placement fits: the caller must choose (``--cluster``) among ``clusters``,
    or the asked cluster/stage is not one the platform allows (``refused``)."""

    stage: str
    clusters: tuple[str, ...]
    refused: str = ""  # "" (several fit), "stage" (unknown stage), "cluster" (not allowed for the stage)


class Control(ABC):
    """One bot, two ways of provisioning. ``user_id`` is the Mattermost user who asked."""

    name: ClassVar[str]

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    @abstractmethod
    async def reconcile(self, project: Project, mode: str, progress: Progress, user_id: str) -> str:
        """Provision ``project`` as its rows say (``mode``: create, replay, update); its status."""

    @abstractmethod
    async def delete_project(self, project: Project, progress: Progress, user_id: str) -> bool:
        """Remove it from the platform; True when everything is gone (the row is then archived)."""

    @abstractmethod
    async def remove_repository(self, project: Project, repo: str, progress: Progress, user_id: str) -> bool: ...

    @abstractmethod
    async def remove_environment(self, project: Project, env: str, progress: Progress, user_id: str) -> bool: ...

    @abstractmethod
    async def apply_member(self, project: Project, username: str, email: str, role: Role | None, user_id: str) -> bool:
        """Give ``email`` the ``role`` in the project (None: remove them). False when the person
        is unknown where it matters (GitLab in direct mode); the console's refusals raise."""

    @abstractmethod
    async def save_credentials(self, project: Project, repo: str, username: str, token: str, user_id: str) -> None:
        """A private repository's credentials, written where the mirror reads them (never SQLite)."""

    @abstractmethod
    async def trigger_sync(
        self, project: Project, repo: str, branch: str | None, all_branches: bool, user_id: str
    ) -> Pipeline:
        """Start the ``mirror`` pipeline of ``repo``; the GitLab pipeline to follow."""

    @abstractmethod
    async def first_sync(self, project: Project, repo: str, user_id: str) -> Pipeline:
        """The first synchronisation of a repository created from an external URL (all branches)."""

    @abstractmethod
    async def placement(self, stage: str, cluster: str | None) -> Placement | PlacementChoice:
        """Where an environment of ``stage`` goes, or the choice the caller has to make."""

    async def listed_projects(self, identity: Identity) -> list[tuple[Project, Role | None]]:
        """``/cpn project list``: the person's projects with their role (every project for a
        platform admin, with the role they hold where they hold one)."""
        projects = self.bot.projects
        mine = projects.of_user(identity.user_id)
        if not identity.is_platform_admin:
            return list(mine)
        roles = {p.id: r for p, r in mine}
        return [(p, roles.get(p.id)) for p in projects.all()]

    async def adopt(self, name: str, user_id: str) -> Project | None:
        """A project the provisioner has but the bot has never seen (made elsewhere), brought into
        the bot's store so that commands and notifications work on it; None when there is none.
        The bot is the only provisioner in direct mode: nothing to adopt."""
        return None

    async def declared_deployments(self, project: Project) -> list[DeclaredDeployment] | None:
        """The deployments the provisioner declares for ``project``; None when it has no such
        notion (direct mode: the infra repositories' ArgoCD applications are the deployments)."""
        return None

    async def refresh(self, project: Project) -> bool:
        """Bring in what changed on the provisioner's side outside the bot; True when something
        new needs the bot's hooks. Nothing changes behind the bot's back in direct mode."""
        return False

    @abstractmethod
    def sonar_key(self, slug: str, repo: str) -> str:
        """The SonarQube project key of a repository, as the provisioner named it."""

    @abstractmethod
    async def close(self) -> None:
        """Release the connections it holds of its own."""
