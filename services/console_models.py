"""The console's objects as the bot reads them (console-api.md §2 and §5 for the shapes).

Parsers are lenient on extra keys (NestJS returns Prisma rows as they are) and strict on the
few keys the bot relies on. Permission masks travel as decimal strings and are read as ints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Json = dict[str, Any]


def _mask(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


@dataclass(frozen=True)
class Person:
    id: str
    email: str
    first_name: str = ""
    last_name: str = ""
    type: str = "human"
    # Only where the console sends them (users routes, UserSchema); a project's owner has none.
    admin_role_ids: tuple[str, ...] = ()

    @classmethod
    def parse(cls, data: Json) -> Person:
        return cls(
            id=str(data.get("id") or data.get("userId") or ""),
            email=str(data.get("email") or ""),
            first_name=str(data.get("firstName") or ""),
            last_name=str(data.get("lastName") or ""),
            type=str(data.get("type") or "human"),
            admin_role_ids=tuple(str(r) for r in data.get("adminRoleIds") or []),
        )


@dataclass(frozen=True)
class Member:
    user_id: str
    email: str
    first_name: str
    last_name: str
    role_ids: tuple[str, ...]

    @classmethod
    def parse(cls, data: Json) -> Member:
        return cls(
            user_id=str(data["userId"]),
            email=str(data.get("email") or ""),
            first_name=str(data.get("firstName") or ""),
            last_name=str(data.get("lastName") or ""),
            role_ids=tuple(str(r) for r in data.get("roleIds") or []),
        )


@dataclass(frozen=True)
class Role:
    id: str
    name: str
    permissions: int
    oidc_group: str = ""
    type: str = "managed"

    @property
    def system(self) -> bool:
        # cloud-pi-native/console:packages/shared/src/utils/roles.ts — system ⇔ type "system:…".
        return self.type.startswith("system:")

    @classmethod
    def parse(cls, data: Json) -> Role:
        return cls(
            id=str(data["id"]),
            name=str(data.get("name") or ""),
            permissions=_mask(data.get("permissions")),
            oidc_group=str(data.get("oidcGroup") or ""),
            type=str(data.get("type") or "managed"),
        )


@dataclass(frozen=True)
class AdminRole:
    """A platform role (``GET /api/v1/admin/roles``): ``global`` ones apply to every caller."""

    id: str
    name: str
    permissions: int
    oidc_group: str = ""
    type: str = "managed"

    @classmethod
    def parse(cls, data: Json) -> AdminRole:
        return cls(
            id=str(data["id"]),
            name=str(data.get("name") or ""),
            permissions=_mask(data.get("permissions")),
            oidc_group=str(data.get("oidcGroup") or ""),
            type=str(data.get("type") or "managed"),
        )


@dataclass(frozen=True)
class Project:
    id: str
    name: str
    slug: str
    description: str
    status: str  # initializing | created | failed | archived | warning
    locked: bool
    owner_id: str
    owner: Person | None
    everyone_perms: int
    members: tuple[Member, ...] = ()
    roles: tuple[Role, ...] = ()
    last_success_version: str | None = None
    created_at: str = ""

    @property
    def provisioned(self) -> bool:
        """console-api.md §3.1: created **and** a successful provisioning version."""
        return self.status == "created" and self.last_success_version is not None

    @classmethod
    def parse(cls, data: Json) -> Project:
        owner = data.get("owner")
        return cls(
            id=str(data["id"]),
            name=str(data.get("name") or ""),
            slug=str(data.get("slug") or data.get("name") or ""),
            description=str(data.get("description") or ""),
            status=str(data.get("status") or ""),
            locked=bool(data.get("locked")),
            owner_id=str(data.get("ownerId") or ""),
            owner=Person.parse(owner) if isinstance(owner, dict) else None,
            everyone_perms=_mask(data.get("everyonePerms")),
            members=tuple(Member.parse(m) for m in data.get("members") or []),
            roles=tuple(Role.parse(r) for r in data.get("roles") or []),
            last_success_version=data.get("lastSuccessProvisionningVersion"),
            created_at=str(data.get("createdAt") or ""),
        )


@dataclass(frozen=True)
class Repository:
    id: str
    project_id: str
    internal_name: str
    external_url: str
    is_infra: bool
    is_private: bool
    external_user: str = ""
    deploy_revision: str = ""
    deploy_path: str = ""

    @classmethod
    def parse(cls, data: Json) -> Repository:
        return cls(
            id=str(data["id"]),
            project_id=str(data.get("projectId") or ""),
            internal_name=str(data.get("internalRepoName") or ""),
            external_url=str(data.get("externalRepoUrl") or ""),
            is_infra=bool(data.get("isInfra")),
            is_private=bool(data.get("isPrivate")),
            external_user=str(data.get("externalUserName") or ""),
            deploy_revision=str(data.get("deployRevision") or ""),
            deploy_path=str(data.get("deployPath") or ""),
        )


@dataclass(frozen=True)
class RepositorySpec:
    """What ``repo add`` asks for; ``external_token`` is a secret (hidden in ``repr``)."""

    internal_name: str
    external_url: str = ""
    is_infra: bool = False
    is_private: bool = False
    external_user: str = ""
    external_token: str = field(default="", repr=False)

    def body(self) -> Json:
        body: Json = {
            "internalRepoName": self.internal_name,
            "externalRepoUrl": self.external_url,
            "isInfra": self.is_infra,
            "isPrivate": self.is_private,
        }
        if self.is_private:
            body["externalUserName"] = self.external_user
            body["externalToken"] = self.external_token
        return body


@dataclass(frozen=True)
class Environment:
    id: str
    name: str
    project_id: str
    stage_id: str
    cluster_id: str
    cpu: float
    gpu: float
    memory: float
    autosync: bool
    stage_name: str = ""

    @classmethod
    def parse(cls, data: Json) -> Environment:
        stage = data["stage"] if isinstance(data.get("stage"), dict) else {}
        return cls(
            id=str(data["id"]),
            name=str(data.get("name") or ""),
            project_id=str(data.get("projectId") or ""),
            stage_id=str(data.get("stageId") or ""),
            cluster_id=str(data.get("clusterId") or ""),
            cpu=float(data.get("cpu") or 0),
            gpu=float(data.get("gpu") or 0),
            memory=float(data.get("memory") or 0),
            autosync=bool(data.get("autosync")),
            stage_name=str(stage.get("name") or ""),
        )


@dataclass(frozen=True)
class Stage:
    id: str
    name: str
    cluster_ids: tuple[str, ...]

    @classmethod
    def parse(cls, data: Json) -> Stage:
        return cls(str(data["id"]), str(data.get("name") or ""), tuple(str(c) for c in data.get("clusterIds") or []))


@dataclass(frozen=True)
class Cluster:
    id: str
    label: str
    privacy: str
    zone_id: str
    stage_ids: tuple[str, ...]

    @classmethod
    def parse(cls, data: Json) -> Cluster:
        return cls(
            id=str(data["id"]),
            label=str(data.get("label") or ""),
            privacy=str(data.get("privacy") or ""),
            zone_id=str(data.get("zoneId") or ""),
            stage_ids=tuple(str(s) for s in data.get("stageIds") or []),
        )


@dataclass(frozen=True)
class Zone:
    id: str
    slug: str
    label: str
    argocd_url: str

    @classmethod
    def parse(cls, data: Json) -> Zone:
        return cls(
            str(data["id"]), str(data.get("slug") or ""), str(data.get("label") or ""), str(data.get("argocdUrl") or "")
        )


@dataclass(frozen=True)
class DeploymentSource:
    """One ``deploymentSources`` item (schemas/deployment.ts): what a deployment takes from where."""

    repository_id: str
    repository_name: str
    type: str  # git | oci
    target_revision: str  # "" → the repository's own deployRevision (HEAD when empty)
    path: str


@dataclass(frozen=True)
class Deployment:
    """``GET /api/v1/projects/:id/deployments`` item (§2.8)."""

    id: str
    name: str
    environment_id: str
    environment_name: str
    autosync: bool
    sources: tuple[DeploymentSource, ...]

    @property
    def repository_ids(self) -> tuple[str, ...]:
        return tuple(s.repository_id for s in self.sources)

    @classmethod
    def parse(cls, data: Json) -> Deployment:
        env = data["environment"] if isinstance(data.get("environment"), dict) else {}
        sources = []
        for item in data.get("deploymentSources") or []:
            if not isinstance(item, dict):
                continue
            repo = item["repository"] if isinstance(item.get("repository"), dict) else {}
            sources.append(
                DeploymentSource(
                    repository_id=str(item.get("repositoryId") or ""),
                    repository_name=str(repo.get("internalRepoName") or ""),
                    type=str(item.get("type") or "git"),
                    target_revision=str(item.get("targetRevision") or ""),
                    path=str(item.get("path") or ""),
                )
            )
        return cls(
            id=str(data["id"]),
            name=str(data.get("name") or ""),
            environment_id=str(data.get("environmentId") or ""),
            environment_name=str(env.get("name") or ""),
            autosync=bool(data.get("autosync")),
            sources=tuple(sources),
        )


@dataclass(frozen=True)
class ServiceHealth:
    """One ``GET /api/v1/health-services`` entry; status ``OK|Dégradé|En échec|Inconnu``."""

    name: str
    status: str
    message: str

    @property
    def ok(self) -> bool:
        return self.status == "OK"

    @classmethod
    def parse(cls, data: Json) -> ServiceHealth:
        return cls(str(data.get("name") or ""), str(data.get("status") or "Inconnu"), str(data.get("message") or ""))


@dataclass(frozen=True)
class PluginResult:
    """One plugin's outcome in a provisioning log (``data.results`` or ``data.failed``)."""

    plugin: str
    ok: bool
    message: str = ""


@dataclass(frozen=True)
class Provisioning:
    """A project re-read after a write, with its last log's per-plugin results.

    ``state``: ``ok`` (created and provisioned), ``failed`` (replay it), ``pending`` (the console
    is still provisioning, e.g. after a proxy timeout: re-read later).
    """

    project: Project
    state: str
    plugins: tuple[PluginResult, ...] = ()
    action: str = ""

    @property
    def failed_plugins(self) -> list[str]:
        return [p.plugin for p in self.plugins if not p.ok]


@dataclass(frozen=True)
class TokenInfo:
    """A personal access token's metadata (never its value), and its owner."""

    id: str
    name: str
    status: str
    expiration: str | None
    last_use: str | None
    owner: Person | None

    @classmethod
    def parse(cls, data: Json) -> TokenInfo:
        owner = data.get("owner")
        return cls(
            id=str(data["id"]),
            name=str(data.get("name") or ""),
            status=str(data.get("status") or ""),
            expiration=data.get("expirationDate"),
            last_use=data.get("lastUse"),
            owner=Person.parse(owner) if isinstance(owner, dict) else None,
        )


def plugin_results(data: Json) -> tuple[PluginResult, ...]:
    """Per-plugin results of a log's ``data``: the full ``results`` when the caller may read them
    (admin, ``clean=false``), else the clean ``failed`` list and ``messageResume`` lines
    (``Errors:\\n<plugin>: <msg>;``, cloud-pi-native/console:apps/server-nestjs/src/modules/
    events/app-events.utils.ts)."""
    results = data.get("results")
    if isinstance(results, dict) and results:
        found = []
        for plugin, result in sorted(results.items()):
            status = result.get("status") if isinstance(result, dict) else None
            status = status if isinstance(status, dict) else {}
            found.append(PluginResult(str(plugin), status.get("result") != "KO", str(status.get("message") or "")))
        return tuple(found)
    failed = data.get("failed")
    if failed is True:
        return (PluginResult("console", False, str(data.get("messageResume") or "")),)
    if not isinstance(failed, list):
        return ()
    messages: dict[str, str] = {}
    for line in str(data.get("messageResume") or "").splitlines():
        plugin, sep, message = line.partition(":")
        if sep:
            messages[plugin.strip()] = message.strip().removesuffix(";")
    return tuple(PluginResult(str(p), False, messages.get(str(p), "")) for p in failed)


__all__ = [
    "AdminRole",
    "Cluster",
    "Deployment",
    "DeploymentSource",
    "Environment",
    "Member",
    "Person",
    "PluginResult",
    "Project",
    "Provisioning",
    "Repository",
    "RepositorySpec",
    "Role",
    "ServiceHealth",
    "Stage",
    "TokenInfo",
    "Zone",
    "plugin_results",
]
