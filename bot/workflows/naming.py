"""Where each project's objects live on each service (platform-facts §2–§3), in one place."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

MIRROR_REPO = "mirror"
MIRROR_TRIGGER = "mirroring-from-external-repo"
CI_CONFIG_PATH = ".gitlab-ci-dso.yml"


def console_sonar_key(slug: str, repo: str) -> str:
    """The SonarQube key the console's plugin gives a repository: ``<slug>-<repo>-`` and 4 hex of
    HMAC-SHA256 (empty key) of the repository's name (``cloud-pi-native/console:apps/server-nestjs/
    src/modules/sonarqube/sonarqube.utils.ts`` ``generateProjectKey``)."""
    return f"{slug}-{repo}-{hmac.new(b'', repo.encode(), hashlib.sha256).hexdigest()[:4]}"


@dataclass(frozen=True)
class Names:
    root: str  # the GitLab root group, also the Vault subtree: "forge/projects"
    slug: str

    @property
    def group(self) -> str:
        return f"{self.root}/{self.slug}"

    @property
    def mirror(self) -> str:
        return f"{self.group}/{MIRROR_REPO}"

    def repo(self, name: str) -> str:
        return f"{self.group}/{name}"

    def vault(self, key: str) -> str:
        """A key of the project's subtree in the platform's KV mount (``GITLAB``, ``NEXUS``…)."""
        return f"{self.root}/{self.slug}/{key}"

    def mirror_secret(self, repo: str) -> str:
        return self.vault(f"{repo}-mirror")

    @property
    def bot_token(self) -> str:
        return f"{self.slug}-bot"

    @property
    def app_mount(self) -> str:
        """The project's own KV v2 mount, for the team's application secrets."""
        return self.slug

    @property
    def admin_policy(self) -> str:
        return f"app--{self.slug}--admin"

    @property
    def ro_policy(self) -> str:
        return f"tech--{self.slug}--ro"

    def sonar_key(self, repo: str) -> str:
        return f"{self.slug}-{repo}"

    @property
    def argocd_project(self) -> str:
        return self.slug

    def argocd_app(self, env: str, repo: str) -> str:
        return f"{self.slug}-{env}-{repo}"

    def namespace(self, env: str) -> str:
        return f"{self.slug}-{env}"


def derive(key: bytes, purpose: str, slug: str) -> str:
    """A per-project secret derived from a master secret (webhook secrets).

    Nothing to store: the bot recomputes it to check a delivery, and a new master secret rotates
    them all at the next replay. It is ``hex(HMAC-SHA256(master, "<purpose>:<slug>"))[:48]``.
    """
    return hmac.new(key, f"{purpose}:{slug}".encode(), hashlib.sha256).hexdigest()[:48]
