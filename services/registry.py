"""The container registry behind one small interface.

The platform's registry is Quay (:mod:`services.quay`, the beta's) or Harbor (:mod:`services.harbor`,
what the platform uses today); ``platform.registry`` chooses, and the onboarding workflow only sees
:class:`ContainerRegistry`.

A project ``<slug>`` owns one namespace (a Quay organization, a Harbor project) and two robots:
a read robot (pull only, for the clusters' pull secret) and a write robot (push and pull on every
repository of the namespace, present and future, for the CI). Their credentials go to Vault under
``REGISTRY/<robot>`` with the keys of :func:`robot_secret` (platform-facts §3.3).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from services.base import Ensured


@dataclass(frozen=True)
class RobotCredentials:
    """A robot account's login; ``token`` is a secret: it never shows in ``repr``."""

    username: str
    token: str = field(repr=False)

    def __repr__(self) -> str:
        return f"RobotCredentials(username={self.username!r}, token=<hidden>)"

    __str__ = __repr__


@dataclass(frozen=True)
class Tag:
    """One active tag of an image repository."""

    name: str
    digest: str
    size: int | None
    last_modified: datetime | None


@runtime_checkable
class ContainerRegistry(Protocol):
    name: str  # shown to users, e.g. "Quay"
    host: str  # registry host (and port) used in image paths: <host>/<slug>/<image>:<tag>
    # The bot's webhook (``/hooks/<hook_source>``) the registry posts its scans to; "" when it
    # scans nothing itself (the CI's Trivy reports come to /hooks/trivy).
    hook_source: str

    async def ensure_namespace(self, slug: str) -> Ensured[str]:
        """The project's namespace exists; its value is the namespace name."""
        ...

    async def ensure_robot(
        self, slug: str, short: str, write: bool, known: RobotCredentials | None = None
    ) -> Ensured[RobotCredentials]:
        """Robot ``short`` of the namespace exists with pull (or push+pull when ``write``) rights on
        every repository of the namespace, present and future; returns its current credentials.

        ``known`` is what Vault holds for this robot. A registry that shows a secret only once
        (Harbor) returns it unchanged when the robot already exists, and gives the robot a new
        secret only when ``known`` is missing; one that can read the secret back (Quay) ignores it.
        """
        ...

    async def delete_namespace(self, slug: str) -> bool:
        """Delete the namespace and its repositories; False when it did not exist."""
        ...

    async def ensure_scan_hook(self, slug: str, url: str, secret: str) -> Ensured[str]:
        """The namespace posts its image scans to ``url``, authenticated with ``secret``
        (unchanged, reported so, when the registry has no :attr:`hook_source`)."""
        ...

    async def tags(self, slug: str, repository: str) -> list[Tag]:
        """Active tags of ``<slug>/<repository>``, most recent first."""
        ...

    async def close(self) -> None: ...

    def ui_url(self, slug: str, repository: str | None = None) -> str:
        """Link to the namespace (or one of its repositories) in the registry's web UI."""
        ...

    def docker_config(self, creds: RobotCredentials) -> str:
        """The JSON of a ``~/.docker/config.json`` logging ``creds`` in to :attr:`host`."""
        ...


def docker_config_json(host: str, creds: RobotCredentials) -> str:
    """``{"auths": {host: {"auth": base64(user:token)}}}``, shared by the implementations."""
    auth = base64.b64encode(f"{creds.username}:{creds.token}".encode()).decode()
    return json.dumps({"auths": {host: {"auth": auth}}}, separators=(",", ":"))


def robot_secret(registry: ContainerRegistry, creds: RobotCredentials) -> dict[str, str]:
    """The Vault payload of a robot (``REGISTRY/<robot>``): DOCKER_CONFIG, HOST, TOKEN, USERNAME."""
    return {
        "DOCKER_CONFIG": registry.docker_config(creds),
        "HOST": registry.host,
        "TOKEN": creds.token,
        "USERNAME": creds.username,
    }


__all__ = ["ContainerRegistry", "RobotCredentials", "Tag", "docker_config_json", "robot_secret"]
