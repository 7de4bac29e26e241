"""What the emulated Cloud π Native console knows: users, tokens, projects and their rows, and the
rules that do not depend on HTTP (slugs, permissions, provisioning through plugins).

Follows ``console-api.md`` (from ``cloud-pi-native/console`` at ``71632fed``); sections cited.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from services.emulators.base import Faults

Json = dict[str, Any]

# §4.1 PROJECT_PERMS, cloud-pi-native/console:packages/shared/src/utils/permissions.ts
GUEST, MANAGE, MANAGE_MEMBERS, MANAGE_ENVIRONMENTS, MANAGE_REPOSITORIES = 1, 2, 4, 8, 16
MANAGE_ROLES, SEE_SECRETS, REPLAY_HOOKS, LIST_ENVIRONMENTS, LIST_REPOSITORIES = 32, 64, 128, 256, 512
LIST_MEMBERS, LIST_ROLES, MANAGE_DEPLOYMENTS, LIST_DEPLOYMENTS = 1024, 2048, 4096, 8192
# §4.2 ADMIN_PERMS
A_LIST, A_MANAGE, A_MANAGE_PROJECTS, A_LIST_PROJECTS, A_LIST_SYSTEM = 1, 2, 8, 1024, 32768
A_MANAGE_ADMIN_TOKEN = 65536
EVERYONE_GLOBAL = 25608  # "Tout le monde": MANAGE_PROJECTS|LIST_PROJECTS|LIST_ZONES|LIST_STAGES
WRITE_STATUSES = ("initializing", "created", "failed", "warning")  # the "W" guard, §2

# §4.4 ProjectAuthorized.*: (admin mask, project mask) -> allowed
RULES: dict[str, Callable[[int, int], bool]] = {
    "ListEnvironments": lambda a, p: bool(a & (1024 | 8 | 1 | 2) or p & (256 | 8 | 2)),
    "ListRepositories": lambda a, p: bool(a & (1024 | 8 | 1 | 2) or p & (512 | 16 | 2)),
    "ListMembers": lambda a, p: bool(a & (1024 | 8 | 1 | 2) or p & (1024 | 4 | 2)),
    "ListRoles": lambda a, p: bool(a & (1024 | 8 | 1 | 2) or p & (2048 | 32 | 2)),
    "ManageEnvironments": lambda a, p: bool(a & 2 or p & (8 | 2)),
    "ManageRepositories": lambda a, p: bool(a & 2 or p & (16 | 2)),
    "ManageMembers": lambda a, p: bool(a & 2 or p & (4 | 2)),
    "ManageRoles": lambda a, p: bool(a & 2 or p & (32 | 2)),
    "ReplayHooks": lambda a, p: bool(a & 2 or p & (128 | 2)),
    "SeeSecrets": lambda a, p: bool(a & 2 or p & (64 | 2)),
    "ManageDeployments": lambda a, p: bool(a & 2 or p & (4096 | 2)),
    "ListDeployments": lambda a, p: bool(a & 2 or p & (8192 | 2)),
    "Manage": lambda a, p: bool(a & 2 or p & 2),
    "Access": lambda a, p: bool(a & 2 or p != 0),
}

# §4.3 system roles: (name, mask ≥ 9.23, mask ≤ 9.22, oidc suffix); None = not created.
SYSTEM_ROLES: tuple[tuple[str, int | None, int, str], ...] = (
    ("Administrateur", 2, 2, "admin"),
    ("DevOps", 984, 984, "devops"),
    ("Développeur", 784, 976, "developer"),
    ("Sécurité", None, 768, "security"),
    ("Lecture seule", 768, 768, "readonly"),
)

# Plugin names as in logs, and their titles as in health-services (§2.10).
PLUGINS = {
    "argocd": "ArgoCD",
    "gitlab": "Gitlab",
    "harbor": "Harbor",
    "keycloak": "Keycloak",
    "nexus": "Nexus",
    "sonarqube": "SonarQube",
    "vault": "Vault",
}
RESERVED_REPOSITORIES = ("mirror", "infra-apps", "infra-observability")
# Who listens to what (the @OnEvent handlers of apps/server-nestjs/src/modules/*): every plugin to
# project.upsert and project.delete, only GitLab to repository.sync; a log has only their results.
LISTENERS: dict[str, tuple[str, ...]] = {"repository.sync": ("gitlab",)}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def version_tuple(text: str) -> tuple[int, ...]:
    found = re.match(r"(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(p) for p in found.groups()) if found else (999, 0, 0)


@dataclass
class User:
    id: str
    email: str
    first_name: str
    last_name: str
    type: str = "human"  # human | bot
    admin_role_ids: list[str] = field(default_factory=list)
    last_login: str | None = None
    created_at: str = field(default_factory=now_iso)

    def view(self) -> Json:
        return {
            "id": self.id,
            "email": self.email,
            "firstName": self.first_name,
            "lastName": self.last_name,
            "type": self.type,
            "adminRoleIds": list(self.admin_role_ids),
            "lastLogin": self.last_login,
            "createdAt": self.created_at,
            "updatedAt": self.created_at,
        }

    def short(self) -> Json:
        return {k: v for k, v in self.view().items() if k in ("id", "email", "firstName", "lastName", "type")}


@dataclass
class AdminRole:
    id: str
    name: str
    permissions: int
    oidc_group: str = ""
    type: str = "managed"  # "global" roles apply to every caller


@dataclass
class TokenRow:
    id: str
    name: str
    kind: str  # pat | admin
    owner_id: str
    hash: str
    status: str = "active"  # active | revoked | inactive
    expiration: datetime | None = None
    permissions: int = 0  # admin tokens only
    last_use: str | None = None
    created_at: str = field(default_factory=now_iso)

    def view(self, owner: User | None) -> Json:
        return {
            "id": self.id,
            "name": self.name,
            "lastUse": self.last_use,
            "expirationDate": self.expiration.isoformat().replace("+00:00", "Z") if self.expiration else None,
            "createdAt": self.created_at,
            "owner": owner.short() if owner else None,
            "status": self.status,
        }


@dataclass
class RoleRow:
    id: str
    name: str
    permissions: int
    position: int
    oidc_group: str  # stored with the /<slug> prefix
    type: str = "system:managed"


@dataclass
class MemberRow:
    user_id: str
    role_ids: list[str] = field(default_factory=list)


@dataclass
class ProjectRow:
    id: str
    name: str
    slug: str
    description: str
    owner_id: str
    limitless: bool = False
    budgets: dict[str, float] = field(default_factory=dict)
    status: str = "created"
    locked: bool = False
    everyone_perms: int = 896
    members: list[MemberRow] = field(default_factory=list)
    roles: list[RoleRow] = field(default_factory=list)
    cluster_ids: list[str] = field(default_factory=list)
    last_success_version: str | None = None
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)


@dataclass
class RepositoryRow:
    id: str
    project_id: str
    internal_name: str
    external_url: str
    is_infra: bool
    is_private: bool
    external_user: str = ""
    deploy_revision: str = ""
    deploy_path: str = ""
    helm_values_files: str = ""
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)

    def view(self) -> Json:
        # The token is never stored in the DB (§2.4): no key for it here.
        return {
            "id": self.id,
            "projectId": self.project_id,
            "internalRepoName": self.internal_name,
            "externalRepoUrl": self.external_url,
            "externalUserName": self.external_user,
            "isInfra": self.is_infra,
            "isPrivate": self.is_private,
            "deployRevision": self.deploy_revision,
            "deployPath": self.deploy_path,
            "helmValuesFiles": self.helm_values_files,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }


@dataclass
class EnvironmentRow:
    id: str
    name: str
    project_id: str
    stage_id: str
    cluster_id: str
    cpu: float
    gpu: float
    memory: float
    autosync: bool
    created_at: str = field(default_factory=now_iso)

    def view(self) -> Json:
        return {
            "id": self.id,
            "name": self.name,
            "projectId": self.project_id,
            "cpu": self.cpu,
            "gpu": self.gpu,
            "memory": self.memory,
            "autosync": self.autosync,
            "clusterId": self.cluster_id,
            "stageId": self.stage_id,
            "createdAt": self.created_at,
            "updatedAt": self.created_at,
        }


@dataclass
class LogRow:
    id: str
    action: str
    user_id: str
    project_id: str | None
    data: Json
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: str = field(default_factory=now_iso)

    def view(self, clean: bool) -> Json:
        data = self.data
        if clean:
            data = {k: v for k, v in data.items() if k in ("failed", "warning", "totalExecutionTime", "messageResume")}
        view: Json = {
            "id": self.id,
            "action": self.action,
            "userId": self.user_id,
            "createdAt": self.created_at,
            "updatedAt": self.created_at,
            "data": data,
        }
        if not clean:
            view.update(requestId=self.request_id, projectId=self.project_id)
        return view


@dataclass
class ProvisionEvent:
    """What a plugin hook receives: the event (``project.upsert`` / ``project.delete`` /
    ``repository.sync``), the project's slug and rows. A hook raising fails its plugin."""

    event: str
    project: ProjectRow
    repositories: list[RepositoryRow]
    environments: list[EnvironmentRow]
    args: Json = field(default_factory=dict)


PluginHook = Callable[[ProvisionEvent], str | None]


@dataclass
class Caller:
    user: User
    kind: str  # pat | admin | none
    admin_perms: int


class State:
    """The console's data; thread-safe (tests read it from another thread)."""

    def __init__(self, version: str = "9.24.0", *, v1_repositories: bool = True, quirks: bool = False) -> None:
        self.lock = threading.RLock()
        self.faults = Faults()
        self.version = version
        self.v1_repositories = v1_repositories  # the legacy /api/v1/repositories routes still served
        self.quirks = quirks  # copy code-derived oddities (§7): NestJS accepts "inactive" tokens
        self.provision_delay = 0.0  # seconds each project.upsert takes (a slow console)
        self.users: dict[str, User] = {}
        self.admin_roles: list[AdminRole] = [
            AdminRole(str(uuid.uuid4()), "Administrateur Plateforme", A_LIST | A_MANAGE, "/admin", "system"),
            AdminRole(str(uuid.uuid4()), "Lecture Seule Plateforme", A_LIST, "/readonly", "system"),
            AdminRole(str(uuid.uuid4()), "Tout le monde", EVERYONE_GLOBAL, "", "global"),
        ]
        self.tokens: dict[str, TokenRow] = {}  # by sha256 hash
        self.projects: dict[str, ProjectRow] = {}
        self.repositories: dict[str, RepositoryRow] = {}
        self.environments: dict[str, EnvironmentRow] = {}
        self.deployments: dict[str, Json] = {}
        self.logs: list[LogRow] = []
        self.syncs: list[Json] = []  # each sync: project slug, repository, branch, by whom
        self.stages: list[Json] = []
        self.zones: list[Json] = []
        self.clusters: list[Json] = []
        self.plugins: dict[str, PluginHook | None] = dict.fromkeys(PLUGINS)
        self.plugin_failures: dict[str, tuple[str, int | None]] = {}
        # What GET …/secrets shows; None: placeholders. console_plugins.install reads them from Vault.
        self.secrets_of: Callable[[ProjectRow], Json] | None = None
        self.health: dict[str, tuple[str, str]] = {title: ("OK", "OK") for title in PLUGINS.values()}
        self.requests: list[tuple[str, str, str]] = []  # (method, path, token kind)
        self._seed_topology()

    # --- versions --------------------------------------------------------------------------------

    def at_least(self, version: str) -> bool:
        return version_tuple(self.version) >= version_tuple(version)

    @property
    def nest_projects(self) -> bool:
        """Projects, members, roles served by NestJS from 9.23 (§0); the legacy server before."""
        return self.at_least("9.23.0")

    # --- seeding ---------------------------------------------------------------------------------

    def _seed_topology(self) -> None:
        zone = {
            "id": str(uuid.uuid4()),
            "slug": "pub",
            "label": "publique",
            "argocdUrl": "https://argocd.public-zone.fr",
            "description": "Zone de diffusion ouverte.",
        }
        self.zones.append(zone)
        stages: list[Json] = [
            {"id": str(uuid.uuid4()), "name": n, "clusterIds": []} for n in ("dev", "staging", "integration", "prod")
        ]
        cluster: Json = {
            "id": str(uuid.uuid4()),
            "label": "public1",
            "infos": "Cluster public",
            "clusterResources": False,
            "privacy": "public",
            "zoneId": zone["id"],
            "stageIds": [s["id"] for s in stages],
            "cpu": 100,
            "gpu": 0,
            "memory": 256,
        }
        for stage in stages:
            stage["clusterIds"] = [cluster["id"]]
        self.stages.extend(stages)
        self.clusters.append(cluster)

    def add_user(self, email: str, first_name: str = "", last_name: str = "", *, admin: bool = False) -> User:
        with self.lock:
            user = User(str(uuid.uuid4()), email, first_name or email.split("@")[0].title(), last_name)
            if admin:
                user.admin_role_ids.append(self.admin_roles[0].id)
            self.users[user.id] = user
            return user

    def user_by_email(self, email: str) -> User | None:
        return next((u for u in self.users.values() if u.email.lower() == email.lower()), None)

    def add_pat(
        self, user: User, name: str = "cpn-bot", *, expires_in: timedelta = timedelta(days=30), status: str = "active"
    ) -> str:
        """A personal access token of ``user`` (§1.3); returns its value, shown once."""
        raw = _token_value()
        with self.lock:
            self.tokens[sha256(raw)] = TokenRow(
                str(uuid.uuid4()), name, "pat", user.id, sha256(raw), status, datetime.now(UTC) + expires_in
            )
        return raw

    def add_admin_token(self, name: str = "cpn-bot", permissions: int = A_MANAGE, raw: str | None = None) -> str:
        """An admin token and its dedicated bot user (``Bot Admin <name>``, ``<uuid>@bot.io``, §1.3)."""
        raw = raw or _token_value()
        with self.lock:
            bot_id = str(uuid.uuid4())
            self.users[bot_id] = User(bot_id, f"{bot_id}@bot.io", "Bot Admin", name, "bot")
            self.tokens[sha256(raw)] = TokenRow(
                str(uuid.uuid4()), name, "admin", bot_id, sha256(raw), permissions=permissions
            )
        return raw

    def token(self, raw: str) -> TokenRow | None:
        return self.tokens.get(sha256(raw))

    def revoke(self, raw: str) -> None:
        row = self.token(raw)
        if row is not None:
            row.status = "revoked"

    def expire(self, raw: str) -> None:
        row = self.token(raw)
        if row is not None:
            row.expiration = datetime.now(UTC) - timedelta(days=1)

    def fail_plugin(self, plugin: str, message: str = "Erreur du service", times: int | None = None) -> None:
        """The next provisionings (all, or ``times`` of them) see ``plugin`` KO."""
        with self.lock:
            self.plugin_failures[plugin] = (message, times)

    def set_health(self, title: str, status: str, message: str) -> None:
        with self.lock:
            self.health[title] = (status, message)

    def project_by_slug(self, slug: str) -> ProjectRow | None:
        return next((p for p in self.projects.values() if p.slug == slug), None)

    def projects_named(self, name: str) -> list[ProjectRow]:
        return [p for p in self.projects.values() if p.name == name]

    # --- rules -----------------------------------------------------------------------------------

    def admin_perms_of(self, user: User, token: TokenRow | None) -> int:
        mask = 0
        for role in self.admin_roles:
            if role.type == "global" or (role.id in user.admin_role_ids and (token is None or token.kind == "pat")):
                mask |= role.permissions
        if token is not None and token.kind == "admin":
            mask |= token.permissions
        return mask

    def project_perms(self, user_id: str, project: ProjectRow) -> int:
        """§4.4: owner = MANAGE; member = everyonePerms | GUEST | its roles; else nothing."""
        if project.owner_id == user_id:
            return MANAGE
        member = next((m for m in project.members if m.user_id == user_id), None)
        if member is None:
            return 0
        mask = project.everyone_perms | GUEST
        by_id = {r.id: r.permissions for r in project.roles}
        for role_id in member.role_ids:
            mask |= by_id.get(role_id, 0)
        return mask

    def allowed(self, caller: Caller, rule: str, project: ProjectRow) -> bool:
        return RULES[rule](caller.admin_perms, self.project_perms(caller.user.id, project))

    def generate_slug(self, name: str) -> str:
        """``generateSlug``: ``name`` if free, else the first free ``name-N`` (§3.1)."""
        taken = {p.slug for p in self.projects.values()}
        if name not in taken:
            return name
        n = 1
        while f"{name}-{n}" in taken:
            n += 1
        return f"{name}-{n}"

    def system_roles(self, slug: str) -> list[RoleRow]:
        roles: list[RoleRow] = []
        for name, nest_mask, legacy_mask, suffix in SYSTEM_ROLES:
            mask = nest_mask if self.nest_projects else legacy_mask
            if mask is None:
                continue
            roles.append(RoleRow(str(uuid.uuid4()), name, mask, len(roles), f"/{slug}/console/{suffix}"))
        return roles

    # --- provisioning ----------------------------------------------------------------------------

    def provision(
        self,
        event: str,
        project: ProjectRow,
        action: str,
        user_id: str,
        args: Json | None = None,
        snapshot: ProvisionEvent | None = None,
    ) -> LogRow:
        """Run every plugin on ``event`` synchronously and write one log with per-plugin results
        (``cloud-pi-native/console:apps/server-nestjs/src/modules/events/app-events.service.ts``).
        ``snapshot``: the rows the hooks see in place of the current ones (an archive passes the
        project as it was before renaming, ``…/project/project.service.ts`` archive)."""
        started = time.perf_counter()
        results: Json = {}
        failed: list[str] = []
        with self.lock:
            rows = snapshot or ProvisionEvent(
                event,
                project,
                [r for r in self.repositories.values() if r.project_id == project.id],
                [e for e in self.environments.values() if e.project_id == project.id],
                args or {},
            )
        listening = LISTENERS.get(event)
        for plugin, hook in list(self.plugins.items()):
            if listening is not None and plugin not in listening:
                continue
            begun = time.perf_counter()
            message = "Up to date"
            ok = True
            with self.lock:
                failure = self.plugin_failures.get(plugin)
                if failure is not None:
                    text, times = failure
                    if times is not None:
                        if times <= 1:
                            del self.plugin_failures[plugin]
                        else:
                            self.plugin_failures[plugin] = (text, times - 1)
            if failure is not None:
                ok, message = False, failure[0]
            elif hook is not None:
                try:
                    message = hook(rows) or message
                except Exception as exc:  # a hook's failure is the plugin's KO, as on the real console
                    ok, message = False, str(exc)[:200] or type(exc).__name__
            results[plugin] = {
                "status": {"result": "OK" if ok else "KO", "message": message},
                "executionTime": {"main": round((time.perf_counter() - begun) * 1000)},
            }
            if not ok:
                failed.append(plugin)
                results[plugin]["error"] = '{"message": "' + message.replace('"', "'") + '"}'
        resume = (
            "Success"
            if not failed
            else "Errors:\n" + "\n".join(f"{p}: {results[p]['status']['message']};" for p in failed)
        )
        log = LogRow(
            str(uuid.uuid4()),
            action,
            user_id,
            project.id,
            {
                "args": args or {},
                "failed": failed,
                "results": results,
                "totalExecutionTime": round((time.perf_counter() - started) * 1000),
                "messageResume": resume,
            },
        )
        with self.lock:
            self.logs.append(log)
        return log


def _token_value() -> str:
    # generateRandomPassword(48, …): 48 characters of [A-Za-z0-9-] (§1.2).
    alphabet = string.ascii_letters + string.digits + "-"
    return "".join(secrets.choice(alphabet) for _ in range(48))


__all__ = [
    "PLUGINS",
    "RULES",
    "Caller",
    "EnvironmentRow",
    "LogRow",
    "MemberRow",
    "ProjectRow",
    "ProvisionEvent",
    "RepositoryRow",
    "RoleRow",
    "State",
    "TokenRow",
    "User",
]
