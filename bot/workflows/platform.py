"""The platform's services as the bot reaches them: one adapter each, built from the config."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from bot.config import Config
from services.argocd import ArgoCD
from services.console import Console
from services.gitlab import GitLab
from services.harbor import Harbor
from services.nexus import Nexus
from services.quay import Quay
from services.registry import ContainerRegistry
from services.sonarqube import SonarQube
from services.vault import Vault


def _quay(config: Config) -> ContainerRegistry | None:
    if config.quay is None:
        return None
    return Quay(str(config.quay.url).rstrip("/"), config.quay.token.get_secret_value(), config.quay.timeout_seconds)


def _harbor(config: Config) -> ContainerRegistry | None:
    if config.harbor is None:
        return None
    return Harbor(
        str(config.harbor.url).rstrip("/"),
        config.harbor.username,
        config.harbor.password.get_secret_value(),
        config.harbor.timeout_seconds,
        host=config.harbor.host or None,
        robot_prefix=config.harbor.robot_prefix,
    )


# ``platform.registry`` → the registry behind :class:`ContainerRegistry`; nothing else asks which.
REGISTRIES: dict[str, Callable[[Config], ContainerRegistry | None]] = {"quay": _quay, "harbor": _harbor}


@dataclass
class Platform:
    gitlab: GitLab | None = None
    vault: Vault | None = None
    registry: ContainerRegistry | None = None
    nexus: Nexus | None = None
    sonarqube: SonarQube | None = None
    argocd: ArgoCD | None = None
    console: Console | None = None  # with the bot's admin token; a person's view: acting_as(pat)
    gitlab_url: str = ""

    @classmethod
    def from_config(cls, config: Config) -> Platform:
        platform = cls()
        if config.gitlab:
            url = str(config.gitlab.url).rstrip("/")
            platform.gitlab = GitLab(url, config.gitlab.token.get_secret_value(), config.gitlab.timeout_seconds)
            platform.gitlab_url = url
        if config.vault:
            platform.vault = Vault(
                str(config.vault.url).rstrip("/"),
                config.vault.token.get_secret_value(),
                config.vault.kv_mount,
                config.vault.timeout_seconds,
            )
        platform.registry = REGISTRIES[config.platform.registry](config)
        if config.nexus:
            platform.nexus = Nexus(
                str(config.nexus.url).rstrip("/"),
                config.nexus.username,
                config.nexus.password.get_secret_value(),
                config.nexus.timeout_seconds,
                blob_store=config.nexus.blob_store,
            )
        if config.sonarqube:
            platform.sonarqube = SonarQube(
                str(config.sonarqube.url).rstrip("/"),
                config.sonarqube.token.get_secret_value(),
                config.sonarqube.timeout_seconds,
            )
        if config.argocd:
            platform.argocd = ArgoCD(
                str(config.argocd.url).rstrip("/"),
                config.argocd.username,
                config.argocd.password.get_secret_value(),
                config.argocd.timeout_seconds,
                refresh_timeout=config.argocd.refresh_timeout_seconds,
            )
        if config.console:
            platform.console = Console(
                str(config.console.url).rstrip("/"),
                config.console.token.get_secret_value(),
                config.console.timeout_seconds,
                config.console.write_timeout_seconds,
                reread_attempts=config.console.reread_attempts,
                reread_delay=config.console.reread_delay_seconds,
            )
        return platform

    async def close(self) -> None:
        for client in (self.registry, self.nexus, self.sonarqube, self.argocd, self.console):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.close()
