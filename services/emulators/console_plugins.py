"""The console emulator's plugins: they provision the other emulators over their HTTP APIs, the way
the real console's NestJS listeners do (``cloud-pi-native/console`` at ``71632fed``, cited per hook).

One entry point::

    install(state, gitlab=Service(url, root_token), vault=Service(url, root_token),
            harbor=Service(url, admin_password, user="admin"), sonarqube=Service(url, admin_token),
            argocd=Service(url, admin_password, user="admin"), root_group="forge/projects",
            kv_mount="forge-dso")

sets ``state.plugins[name]`` for each service given (a service left out keeps the recorded step
that answers "Up to date"). Each hook handles ``project.upsert``, ``project.delete`` and (GitLab)
``repository.sync``; it returns its message or raises :class:`PluginError`, which
``State.provision`` records as that plugin's KO with the error's message, as ``capturePluginResult``
does (``apps/server-nestjs/src/modules/plugin/plugin.utils.ts``). A target emulator that is down or
refuses (its fault switch) thus shows as its plugin's KO in the log and the project ``failed``.

HTTP on loopback, not the emulators' State objects: the fault switches, validations and
shown-once secrets (Harbor robots, GitLab tokens) then apply to the console as to any client.
Nothing here imports from the bot.

What the real listeners do that the emulators cannot take is left out and said where: Keycloak
(no emulator), Vault identity groups and AppRoles, SonarQube groups, GitLab CI variables, Harbor
quotas and retention policies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import string
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from services.emulators.console_state import (
    EnvironmentRow,
    ProjectRow,
    ProvisionEvent,
    RepositoryRow,
    State,
)

Json = dict[str, Any]

# apps/server-nestjs/src/modules/gitlab/gitlab.constants.ts
MIRROR_REPO = "mirror"
INFRA_APPS_REPO = "infra-apps"
SPECIAL_REPOS = (INFRA_APPS_REPO, MIRROR_REPO)
CI_CONFIG_PATH = ".gitlab-ci-dso.yml"
TOPIC_PLUGIN_MANAGED = "plugin-managed"
TRIGGER_DESCRIPTION = "mirroring-from-external-repo"
INFRA_GROUP = "infra"
# GitLab access levels (gitbeaker AccessLevel) and the default role group suffixes.
GUEST, REPORTER, DEVELOPER, MAINTAINER, OWNER = 10, 20, 30, 40, 50
MAINTAINER_SUFFIXES = ("/console/admin", "/console/devops")
DEVELOPER_SUFFIXES = ("/console/developer",)
REPORTER_SUFFIXES = ("/console/readonly", "/console/security")
MIRROR_TOKEN_DAYS = 365  # gitlab config mirrorTokenExpirationDays default (platform-facts §2.2)

# apps/server-nestjs/src/modules/registry/registry-client.service.ts roAccess / rwAccess
RO_ACCESS = [("repository", "pull"), ("artifact", "read")]
RW_ACCESS = [
    *RO_ACCESS,
    ("repository", "list"),
    ("tag", "list"),
    ("artifact", "list"),
    ("scan", "create"),
    ("scan", "stop"),
    ("repository", "push"),
    ("artifact-label", "create"),
    ("artifact-label", "delete"),
    ("tag", "create"),
    ("tag", "delete"),
]
ROBOTS = {"ro-robot": RO_ACCESS, "rw-robot": RW_ACCESS}

# apps/server-nestjs/src/modules/sonarqube/sonarqube.constants.ts ROBOT_PROJECT_PERMISSIONS
SONAR_ROBOT_PERMISSIONS = ("scan", "user", "codeviewer")


@dataclass(frozen=True)
class Service:
    """Where a target emulator listens and the admin credential the console holds for it:
    a token (GitLab, Vault, SonarQube), or a user and its password (Harbor, ArgoCD)."""

    url: str
    token: str
    user: str = ""


class PluginError(Exception):
    """A plugin's failure; its text is the message the console logs (no secret in it)."""


class _Client:
    """One target's HTTP client. A refusal raises :class:`PluginError` with ``what`` and the
    status, as the console's clients throw (gitbeaker's ``statusText``, Harbor's ``… failed (n)``)."""

    def __init__(self, name: str, base: str, **options: Any) -> None:
        self.name = name
        self.http = httpx.Client(base_url=base.rstrip("/"), timeout=5.0, **options)
        self.lock = threading.Lock()  # one console request at a time per target, like a pool of 1

    def call(
        self,
        method: str,
        path: str,
        *,
        what: str = "",
        allow: tuple[int, ...] = (),
        **options: Any,
    ) -> httpx.Response:
        try:
            with self.lock:
                response = self.http.request(method, path, **options)
        except httpx.HTTPError as exc:
            # undici's message when the server does not answer (Node's fetch), never the URL's secrets.
            raise PluginError(f"{what or self.name}: fetch failed") from exc
        if response.status_code >= 400 and response.status_code not in allow:
            phrase = _phrase(response.status_code)
            raise PluginError(f"{what} failed ({response.status_code})" if what else phrase)
        return response

    def json(self, method: str, path: str, **options: Any) -> Any:
        response = self.call(method, path, **options)
        return response.json() if response.content else None

    def close(self) -> None:
        self.http.close()


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _path(value: str) -> str:
    return quote(value, safe="")


# --- GitLab: apps/server-nestjs/src/modules/gitlab/{gitlab.service,gitlab-client.service}.ts ----


class GitLabPlugin:
    def __init__(self, state: State, service: Service, vault: VaultStore, root: str) -> None:
        self.state = state
        self.api = _Client("gitlab", f"{service.url}/api/v4", headers={"PRIVATE-TOKEN": service.token})
        self.url = service.url.rstrip("/")
        self.vault = vault
        self.root = root

    def __call__(self, event: ProvisionEvent) -> str | None:
        if event.event == "project.upsert":
            self.upsert(event)
            return None
        if event.event == "project.delete":
            group = self.group(f"{self.root}/{event.project.slug}")
            if group is not None:
                self.api.call("DELETE", f"/groups/{group['id']}")  # cleanupProject
            return None
        if event.event == "repository.sync":
            self.trigger_mirror(event)
            return None
        return None

    # -- groups and repositories ------------------------------------------------------------

    def group(self, full_path: str) -> Json | None:
        response = self.api.call("GET", f"/groups/{_path(full_path)}", allow=(404,))
        return None if response.status_code == 404 else dict(response.json())

    def ensure_group(self, full_path: str) -> Json:
        """``getOrCreateGroupByPath``: each missing level is created under its parent."""
        found = self.group(full_path)
        if found is not None:
            return found
        parent_path, _, name = full_path.rpartition("/")
        body: Json = {"name": name, "path": name}
        if parent_path:
            body["parent_id"] = self.ensure_group(parent_path)["id"]
        return dict(self.api.json("POST", "/groups", json=body))

    def project(self, full_path: str) -> Json | None:
        response = self.api.call("GET", f"/projects/{_path(full_path)}", allow=(404,))
        return None if response.status_code == 404 else dict(response.json())

    def ensure_repo(self, group_path: str, name: str, ci_config_path: str | None = None) -> Json:
        """``upsertProjectGroupRepo``: created with ``main`` as default branch, then edited to carry
        the ``plugin-managed`` topic and the CI config path (empty for a standalone repository)."""
        repo = self.project(f"{group_path}/{name}")
        if repo is None:
            body: Json = {
                "name": name,
                "path": name,
                "namespace_id": self.ensure_group(group_path)["id"],
                "default_branch": "main",
            }
            if ci_config_path:
                body["ci_config_path"] = ci_config_path
            repo = dict(self.api.json("POST", "/projects", json=body))
        edit = {"topics": [TOPIC_PLUGIN_MANAGED], "ci_config_path": ci_config_path or ""}
        return dict(self.api.json("PUT", f"/projects/{repo['id']}", json=edit))

    # -- project.upsert ---------------------------------------------------------------------

    def upsert(self, event: ProvisionEvent) -> None:
        """``ensureProjectGroup``: group, members, repositories, then the system repositories."""
        project = event.project
        group_path = f"{self.root}/{project.slug}"
        group = self.ensure_group(group_path)
        self.ensure_members(project, group)
        mirror_creds: Json | None = None
        for repo in event.repositories:
            internal = self.ensure_repo(group_path, repo.internal_name, CI_CONFIG_PATH if repo.external_url else None)
            key = self.vault.project_key(project.slug, f"{repo.internal_name}-mirror")
            if not repo.external_url:
                self.vault.delete(key)
                continue
            mirror_creds = mirror_creds or self.mirror_creds(project, group)
            current = self.vault.read(key) or {}
            secret = {
                "GIT_INPUT_URL": repo.external_url.split("://", 1)[-1],
                "GIT_INPUT_USER": repo.external_user if repo.is_private else None,
                # Not in the DB: the password typed in the console only lives in Vault (§2.4).
                "GIT_INPUT_PASSWORD": current.get("GIT_INPUT_PASSWORD"),
                "GIT_OUTPUT_URL": str(internal["http_url_to_repo"]).split("://", 1)[-1],
                "GIT_OUTPUT_USER": mirror_creds["MIRROR_USER"],
                "GIT_OUTPUT_PASSWORD": mirror_creds["MIRROR_TOKEN"],
            }
            self.vault.write(key, {k: v for k, v in secret.items() if v is not None})
        # Orphan repositories are only warned about: the ``purge`` option is off by default.
        self.ensure_repo(group_path, INFRA_APPS_REPO)
        mirror = self.ensure_repo(group_path, MIRROR_REPO)
        if mirror.get("empty_repo"):
            self.commit_mirror(int(mirror["id"]))
        token = self.trigger_token(int(mirror["id"]))
        self.vault.write(
            self.vault.project_key(project.slug, "GITLAB"),
            {"PROJECT_SLUG": project.slug, "GIT_MIRROR_PROJECT_ID": mirror["id"], "GIT_MIRROR_TOKEN": token},
        )

    def ensure_members(self, project: ProjectRow, group: Json) -> None:
        """``ensureProjectGroupMembers``: each member at the level of its highest role's OIDC group
        (``generateAccessLevelMapping``), the owner as OWNER. Orphans stay (purge off by default)."""
        members = {m["id"]: m for m in self.api.json("GET", f"/groups/{group['id']}/members")}
        maintainer = {f"/{project.slug}{s}" for s in MAINTAINER_SUFFIXES}
        developer = {f"/{project.slug}{s}" for s in DEVELOPER_SUFFIXES}
        reporter = {f"/{project.slug}{s}" for s in REPORTER_SUFFIXES}

        def level_of(oidc_group: str) -> int | None:
            for groups, level in ((maintainer, MAINTAINER), (developer, DEVELOPER), (reporter, REPORTER)):
                if oidc_group in groups:
                    return level
            return None

        by_role = {r.id: level_of(r.oidc_group) for r in project.roles}
        wanted: list[tuple[str, int]] = []
        for member in project.members:
            levels = [lv for rid in member.role_ids if (lv := by_role.get(rid)) is not None]
            wanted.append((member.user_id, max(levels, default=GUEST)))
        wanted.append((project.owner_id, OWNER))
        for user_id, level in wanted:
            user = self.state.users.get(user_id)
            if user is None or user.type != "human":
                continue  # the bot user of an admin token has no GitLab account to give
            gitlab_user = self.upsert_user(user.email, user.first_name, user.last_name)
            existing = members.get(gitlab_user["id"])
            if existing is None:
                self.api.call(
                    "POST",
                    f"/groups/{group['id']}/members",
                    json={"user_id": gitlab_user["id"], "access_level": level},
                )
            elif existing.get("access_level") != level:
                self.api.call("PUT", f"/groups/{group['id']}/members/{gitlab_user['id']}", json={"access_level": level})

    def upsert_user(self, email: str, first: str, last: str) -> Json:
        """``upsertUser``: found by e-mail, else created with the e-mail's local part as username."""
        found = self.api.json("GET", "/users", params={"search": email})
        for user in found:
            if str(user.get("email", "")).lower() == email.lower():
                return dict(user)
        username = "".join(c for c in email.split("@")[0] if c.isalnum() or c in "_-")
        name = " ".join(p for p in (first, last) if p) or "User"
        body = {"email": email, "username": username, "name": name, "force_random_password": True}
        return dict(self.api.json("POST", "/users", json=body))

    def mirror_creds(self, project: ProjectRow, group: Json) -> Json:
        """``getOrRotateMirrorCreds``: the ``<slug>-bot`` group token kept in Vault
        ``tech/GITLAB_MIRROR`` while it works, else revoked and created again."""
        name = f"{project.slug}-bot"
        key = self.vault.project_key(project.slug, "tech/GITLAB_MIRROR")
        tokens = self.api.json("GET", f"/groups/{group['id']}/access_tokens")
        current = next((t for t in tokens if t.get("name") == name and t.get("active", True)), None)
        if current is not None:
            stored = self.vault.read(key) or {}
            if stored.get("MIRROR_TOKEN") and self.token_works(str(stored["MIRROR_TOKEN"])):
                return stored
            self.api.call("DELETE", f"/groups/{group['id']}/access_tokens/{current['id']}", allow=(404,))
        expires = (datetime.now(UTC) + timedelta(days=MIRROR_TOKEN_DAYS)).date().isoformat()
        created = self.api.json(
            "POST",
            f"/groups/{group['id']}/access_tokens",
            json={"name": name, "scopes": ["write_repository", "read_repository", "read_api"], "expires_at": expires},
        )
        creds = {"MIRROR_USER": created["name"], "MIRROR_TOKEN": created["token"]}
        self.vault.write(key, creds)
        return creds

    def token_works(self, token: str) -> bool:
        # The console asks /personal_access_tokens/self; the GitLab emulator has /user, which
        # answers 401 to the same dead tokens.
        response = self.api.call("GET", "/user", headers={"PRIVATE-TOKEN": token}, allow=(401, 403))
        return response.status_code == 200

    def commit_mirror(self, repo_id: int) -> None:
        """``commitMirror``: the mirror's CI file and its trigger script, on ``main``."""
        actions = [
            {"action": "create", "file_path": ".gitlab-ci.yml", "content": MIRROR_CI},
            {"action": "create", "file_path": "mirror.sh", "content": MIRROR_SCRIPT, "execute_filemode": True},
        ]
        body = {"branch": "main", "commit_message": "ci: :construction_worker: first mirror", "actions": actions}
        self.api.call("POST", f"/projects/{repo_id}/repository/commits", json=body)

    def trigger_token(self, repo_id: int) -> str:
        """``getOrCreateMirrorPipelineTriggerToken``: the one described ``mirroring-from-external-repo``."""
        for trigger in self.api.json("GET", f"/projects/{repo_id}/triggers"):
            if trigger.get("description") == TRIGGER_DESCRIPTION:
                return str(trigger["token"])
        created = self.api.json("POST", f"/projects/{repo_id}/triggers", json={"description": TRIGGER_DESCRIPTION})
        return str(created["token"])

    # -- repository.sync --------------------------------------------------------------------

    def trigger_mirror(self, event: ProvisionEvent) -> None:
        """``triggerMirror``: a pipeline of ``mirror`` on ``main`` with SYNC_ALL, GIT_BRANCH_DEPLOY
        (empty for a full sync) and PROJECT_NAME; the console's own repositories are refused."""
        target = str(event.args.get("repository", ""))
        if target in SPECIAL_REPOS:
            raise PluginError("User requested for invalid mirroring")
        group = self.group(f"{self.root}/{event.project.slug}")
        repos = self.api.json("GET", f"/groups/{group['id']}/projects") if group else []
        mirror = next((r for r in repos if r["name"] == MIRROR_REPO), None)
        if mirror is None:
            raise PluginError("Unable to find mirror repository")
        if not any(r["name"] == target for r in repos):
            raise PluginError("Unable to find target repository")
        everything = bool(event.args.get("syncAllBranches"))
        branch = "" if everything else str(event.args.get("branchName") or "")
        variables = [
            {"key": "SYNC_ALL", "value": "true" if everything else "false"},
            {"key": "GIT_BRANCH_DEPLOY", "value": branch},
            {"key": "PROJECT_NAME", "value": target},
        ]
        self.api.call("POST", f"/projects/{mirror['id']}/pipeline", json={"ref": "main", "variables": variables})

    def close(self) -> None:
        self.api.close()


# apps/server-nestjs/src/modules/gitlab/gitlab.utils.ts generateGitlabCIConfigContent, in YAML.
MIRROR_CI = """variables:
  PROJECT_NAME:
    description: Nom du dépôt (dans ce Gitlab) à synchroniser.
  GIT_BRANCH_DEPLOY:
    description: Nom de la branche à synchroniser.
    value: main
  SYNC_ALL:
    description: Synchroniser toutes les branches.
    value: "false"
include:
  - project: $CATALOG_PATH
    file: mirror.yml
    ref: main
repo_pull_sync:
  extends: .repo_pull_sync
  only:
    - api
    - triggers
    - web
    - schedules
"""
# generateMirrorScriptContent: the trigger call a developer's CI makes (platform-facts §2.5).
MIRROR_SCRIPT = """#!/bin/bash
# Asks the platform to synchronise a repository: mirror.sh -a GITLAB_URL -g TOKEN -i MIRROR_ID -r REPO [-b BRANCH]
set -e
BRANCH_TO_SYNC=main
while getopts a:b:g:i:r: flag; do
  case "${flag}" in
    a) API_URL=${OPTARG};; b) BRANCH_TO_SYNC=${OPTARG};; g) GITLAB_TRIGGER_TOKEN=${OPTARG};;
    i) GITLAB_MIRROR_PROJECT_ID=${OPTARG};; r) REPOSITORY_NAME=${OPTARG};;
  esac
done
curl -X POST --fail -F token="$GITLAB_TRIGGER_TOKEN" -F ref=main \\
  -F "variables[GIT_BRANCH_DEPLOY]=$BRANCH_TO_SYNC" -F "variables[PROJECT_NAME]=$REPOSITORY_NAME" \\
  "$API_URL/api/v4/projects/$GITLAB_MIRROR_PROJECT_ID/trigger/pipeline"
"""


# --- Vault: apps/server-nestjs/src/modules/vault/{vault.service,vault-client.service,vault.utils}.ts


class VaultStore:
    """The console's Vault client: KV v2 ``<kv_mount>/data/<root>/<slug>/<key>`` (``vault.utils.ts``
    ``generateProjectPath``), shared by every plugin that keeps a secret there."""

    def __init__(self, service: Service, kv_mount: str, root: str) -> None:
        self.api = _Client("vault", f"{service.url}/v1", headers={"X-Vault-Token": service.token})
        self.kv = kv_mount
        self.root = root

    def project_key(self, slug: str, key: str = "") -> str:
        return f"{self.root}/{slug}/{key}".rstrip("/")

    def read(self, key: str) -> Json | None:
        response = self.api.call("GET", f"/{self.kv}/data/{key}", what="vault read", allow=(404,))
        if response.status_code == 404:
            return None
        return dict((response.json().get("data") or {}).get("data") or {})

    def write(self, key: str, data: Json) -> None:
        self.api.call("POST", f"/{self.kv}/data/{key}", what="vault write", json={"data": data})

    def delete(self, key: str) -> None:
        """``deleteKvMetadata``: every version and the key itself; absent is fine."""
        self.api.call("DELETE", f"/{self.kv}/metadata/{key}", what="vault delete", allow=(404,))

    def keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix``, recursively (``listProjectSecrets``)."""
        response = self.api.call("LIST", f"/{self.kv}/metadata/{prefix}", what="vault list", allow=(404,))
        if response.status_code == 404:
            return []
        found: list[str] = []
        for key in response.json().get("data", {}).get("keys", []):
            if key.endswith("/"):
                found.extend(f"{key}{sub}" for sub in self.keys(f"{prefix}/{key.rstrip('/')}"))
            else:
                found.append(key)
        return found

    def close(self) -> None:
        self.api.close()


class VaultPlugin:
    """``VaultService.upsertProject``: the project's own KV v2 mount ``<slug>`` and its policies;
    on delete the mount, the policies and every secret under ``<root>/<slug>``. Identity groups and
    the AppRole are left out: the Vault emulator has neither."""

    def __init__(self, store: VaultStore) -> None:
        self.store = store
        self.api = store.api

    def policies(self, slug: str) -> dict[str, str]:
        ro_robot = self.store.project_key(slug, "REGISTRY/ro-robot")
        rw = '["create", "read", "update", "delete", "list"]'
        return {
            f"app--{slug}--admin": f'path "{slug}/*" {{ capabilities = {rw} }}',
            f"tech--{slug}--ro": f'path "{self.store.kv}/data/{ro_robot}" {{ capabilities = ["read"] }}',
            f"project--{slug}--devops": "\n".join(
                [
                    f'path "{slug}/data/*" {{ capabilities = {rw} }}',
                    f'path "{slug}/metadata/*" {{ capabilities = ["read", "list"] }}',
                    *(
                        f'path "{slug}/{op}/*" {{ capabilities = ["update"] }}'
                        for op in ("delete", "undelete", "destroy")
                    ),
                ]
            ),
            f"project--{slug}--developer": f'path "{slug}/data/*" {{ capabilities = ["list"] }}',
            f"project--{slug}--readonly": f'path "{slug}/data/*" {{ capabilities = ["list"] }}',
            f"project--{slug}--security": "\n".join(
                [
                    f'path "{slug}/metadata/*" {{ capabilities = ["list"] }}',
                    f'path "transit/keys/{slug}/*" {{ capabilities = ["list"] }}',
                ]
            ),
        }

    def __call__(self, event: ProvisionEvent) -> str | None:
        slug = event.project.slug
        if event.event == "project.upsert":
            # upsertMount: create, or tune an existing one (400 "path is already in use").
            body = {"type": "kv", "config": {"force_no_cache": True}, "options": {"version": 2}}
            created = self.api.call("POST", f"/sys/mounts/{slug}", what="vault mount", json=body, allow=(400,))
            if created.status_code == 400:
                self.api.call("POST", f"/sys/mounts/{slug}/tune", what="vault tune", json={"options": {"version": 2}})
            for name, policy in self.policies(slug).items():
                self.api.call("PUT", f"/sys/policies/acl/{name}", what="vault policy", json={"policy": policy})
        elif event.event == "project.delete":
            self.api.call("DELETE", f"/sys/mounts/{slug}", what="vault unmount")
            for name in self.policies(slug):
                self.api.call("DELETE", f"/sys/policies/acl/{name}", what="vault policy", allow=(404,))
            prefix = self.store.project_key(slug)
            for key in self.store.keys(prefix):
                self.store.delete(f"{prefix}/{key}")
        return None


# --- Harbor: apps/server-nestjs/src/modules/registry/{registry.service,registry-client.service}.ts


class HarborPlugin:
    """Project ``<slug>`` (``auto_scan``), robots ``robot$<slug>+ro-robot``/``rw-robot`` whose
    secrets go to Vault ``REGISTRY/<robot>`` (a robot is created again only when Vault lost it or the
    host changed: Harbor shows a secret once), the project's OIDC groups as members."""

    def __init__(self, service: Service, store: VaultStore) -> None:
        self.api = _Client("harbor", f"{service.url}/api/v2.0", auth=(service.user or "admin", service.token))
        self.host = urlsplit(service.url).netloc
        self.store = store

    def __call__(self, event: ProvisionEvent) -> str | None:
        slug = event.project.slug
        by_name = {"X-Is-Resource-Name": "true"}
        if event.event == "project.delete":
            # deleteProject: absent is done; Harbor refuses a project that still has repositories.
            found = self.api.call(
                "GET", f"/projects/{_path(slug)}", headers=by_name, what="Harbor get project", allow=(404,)
            )
            if found.status_code != 404:
                self.api.call(
                    "DELETE", f"/projects/{_path(slug)}", headers=by_name, what="Harbor delete project", allow=(404,)
                )
            return None
        if event.event != "project.upsert":
            return None
        found = self.api.call(
            "GET", f"/projects/{_path(slug)}", headers=by_name, what="Harbor get project", allow=(404,)
        )
        if found.status_code == 404:
            # Quotas and retention policies are left out: the Harbor emulator has no such routes.
            body = {"project_name": slug, "metadata": {"auto_scan": "true"}, "storage_limit": -1}
            self.api.call("POST", "/projects", json=body, what="Harbor create project")
            found = self.api.call("GET", f"/projects/{_path(slug)}", headers=by_name, what="Harbor get project")
        project_id = int(found.json()["project_id"])
        for robot, access in ROBOTS.items():
            self.ensure_robot(event.project, project_id, robot, access)
        self.ensure_members(event.project)
        return None

    def ensure_robot(self, project: ProjectRow, project_id: int, robot: str, access: list[tuple[str, str]]) -> None:
        """``ensureRobotSecret``: Vault's copy is kept while its HOST is this registry's."""
        key = self.store.project_key(project.slug, f"REGISTRY/{robot}")
        stored = self.store.read(key) or {}
        if stored.get("HOST") == self.host and stored.get("TOKEN"):
            return
        full_name = f"robot${project.slug}+{robot}"
        robots = self.api.json(
            "GET",
            "/robots",
            params={"q": f"Level=project,ProjectID={project_id}", "page_size": 100},
            what="Harbor list robots",
        )
        existing = next((r for r in robots if r.get("name") == full_name), None)
        if existing is not None:
            self.api.call("DELETE", f"/robots/{existing['id']}", what="Harbor delete robot")
        body = {
            "name": robot,
            "duration": -1,
            "description": "robot for ci builds",
            "disable": False,
            "level": "project",
            "permissions": [
                {
                    "namespace": project.slug,
                    "kind": "project",
                    "access": [{"resource": res, "action": act} for res, act in access],
                }
            ],
        }
        created = self.api.json("POST", "/robots", json=body, what="Harbor create robot")
        secret = str(created["secret"])
        auth = base64.b64encode(f"{full_name}:{secret}".encode()).decode()
        self.store.write(
            key,
            {
                "DOCKER_CONFIG": json.dumps({"auths": {self.host: {"auth": auth, "email": ""}}}),
                "HOST": self.host,
                "TOKEN": secret,
                "USERNAME": full_name,
            },
        )

    def ensure_members(self, project: ProjectRow) -> None:
        """``ensureProjectGroupMembers``: ``/<slug>`` limited guest (5), the project's role groups
        (admin developer 2, the others guest 3), the platform's admins project admin (1).
        Harbor's OIDC groups are ``group_type`` 3 (``generateAccessLevelMapping``)."""
        slug = project.slug
        wanted = {f"/{slug}": 5}
        for suffix in ("/console/security", "/console/readonly", "/console/developer", "/console/devops"):
            wanted[f"/{slug}{suffix}"] = 3
        wanted[f"/{slug}/console/admin"] = 2
        wanted["/console/admin"] = 1
        wanted["/console/security"] = wanted["/console/readonly"] = 3
        by_name = {"X-Is-Resource-Name": "true"}
        members = self.api.json("GET", f"/projects/{_path(slug)}/members", headers=by_name, what="Harbor list members")
        current = {m.get("entity_name"): m for m in members}
        for group, role in wanted.items():
            existing = current.get(group)
            if existing is not None and existing.get("role_id") == role and existing.get("entity_type") == "g":
                continue
            if existing is not None:
                self.api.call(
                    "DELETE",
                    f"/projects/{_path(slug)}/members/{existing['id']}",
                    headers=by_name,
                    what="Harbor remove member",
                )
            body = {"role_id": role, "member_group": {"group_name": group, "group_type": 3}}
            self.api.call(
                "POST", f"/projects/{_path(slug)}/members", headers=by_name, json=body, what="Harbor create member"
            )


# --- SonarQube: apps/server-nestjs/src/modules/sonarqube/sonarqube.service.ts ------------------


def sonar_key(slug: str, repo: str) -> str:
    """``generateProjectKey``: ``<slug>-<repo>-`` + 4 hex of HMAC-SHA256(key "", repo)."""
    return f"{slug}-{repo}-{hmac.new(b'', repo.encode(), hashlib.sha256).hexdigest()[:4]}"


class SonarPlugin:
    """A local technical user ``<slug>`` and its token in Vault ``SONAR``; one private project per
    repository (key :func:`sonar_key`, name ``<slug>-<repo>``) with the user's scan rights; orphans
    deleted. Groups and GitLab CI variables are left out (no such routes in the emulators)."""

    def __init__(self, service: Service, store: VaultStore) -> None:
        self.api = _Client("sonarqube", f"{service.url}/api", headers={"Authorization": f"Bearer {service.token}"})
        self.store = store

    def __call__(self, event: ProvisionEvent) -> str | None:
        slug = event.project.slug
        if event.event == "project.upsert":
            self.ensure_user(slug)
            existing = self.projects_of(slug)
            wanted = {sonar_key(slug, r.internal_name): r for r in event.repositories}
            for key in set(existing) - set(wanted):
                self.api.call("POST", "/projects/delete", data={"project": key})
            for key, repo in wanted.items():
                if key not in existing:
                    form = {
                        "project": key,
                        "name": f"{slug}-{repo.internal_name}",
                        "visibility": "private",
                        "mainBranch": "main",
                    }
                    self.api.call("POST", "/projects/create", data=form)
                for permission in SONAR_ROBOT_PERMISSIONS:
                    form = {"projectKey": key, "permission": permission, "login": slug}
                    self.api.call("POST", "/permissions/add_user", data=form)
        elif event.event == "project.delete":
            for key in self.projects_of(slug):
                self.api.call("POST", "/projects/delete", data={"project": key})
            if self.user(slug) is not None:
                self.api.call("POST", "/users/deactivate", data={"login": slug, "anonymize": "true"})
            self.store.delete(self.store.project_key(slug, "SONAR"))
        return None

    def user(self, login: str) -> Json | None:
        users = self.api.json("GET", "/users/search", params={"q": login}).get("users", [])
        return next((u for u in users if u.get("login") == login), None)

    def projects_of(self, slug: str) -> set[str]:
        """``findProjectsForSlug``: the projects whose key is one this slug would generate."""
        found = self.api.json("GET", "/projects/search", params={"q": slug, "ps": 500}).get("components", [])
        return {str(c["key"]) for c in found if str(c["key"]).startswith(f"{slug}-") and _owned(slug, str(c["key"]))}

    def ensure_user(self, slug: str) -> None:
        """``ensureUser``: created with a random password and a token, both kept in Vault; an
        existing user whose secret Vault lost gets a new password and token."""
        key = self.store.project_key(slug, "SONAR")
        if self.user(slug) is None:
            password = _password(30)
            form = {
                "login": slug,
                "name": slug,
                "email": f"{slug}@cloud-pi-native.fr",
                "password": password,
                "local": "true",
            }
            self.api.call("POST", "/users/create", data=form)
        elif self.store.read(key):
            return
        else:
            password = _password(30)  # users/update is not emulated: the new password is only Vault's
        name = f"Sonar Token for {slug}"
        self.api.call("POST", "/user_tokens/revoke", data={"login": slug, "name": name}, allow=(400, 404))
        token = self.api.json("POST", "/user_tokens/generate", data={"login": slug, "name": name})["token"]
        self.store.write(key, {"SONAR_USERNAME": slug, "SONAR_PASSWORD": password, "SONAR_TOKEN": token})


def _owned(slug: str, key: str) -> bool:
    repo = key[len(slug) + 1 :].rpartition("-")[0]
    return bool(repo) and sonar_key(slug, repo) == key


def _password(length: int) -> str:
    """``generateRandomPassword``'s alphabet (``crypto.utils.ts``), drawn again until SonarQube 10's
    policy (upper, lower, digit, special) holds: one draw in ~14 misses a class, which the real
    console would see as a ``users/create`` 400."""
    alphabet = string.ascii_letters + string.digits + "!@-_#*"
    while True:
        password = "".join(secrets.choice(alphabet) for _ in range(length))
        classes = (str.isupper, str.islower, str.isdigit, lambda c: not c.isalnum())
        if all(any(test(c) for c in password) for test in classes):
            return password


# --- ArgoCD: apps/server-nestjs/src/modules/argocd/argocd.service.ts ---------------------------


def compress_uuid(value: str) -> str:
    """``compressUUID`` (short-uuid ``uuid25Base36``, not padded): the UUID as a base-36 number."""
    number = uuid.UUID(value).int
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while number:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
    return out or "0"


def namespace_name(project_id: str, env_id: str) -> str:
    """``generateNamespaceName``: ``<compressed env id>--<compressed project id>``."""
    return f"{compress_uuid(env_id)}--{compress_uuid(project_id)}"


def app_project_name(slug: str, env: str) -> str:
    """``formatAppProjectName``: ``<slug>-<env>-`` + 4 hex of HMAC-SHA256(key "", env)."""
    return f"{slug}-{env}-{hmac.new(b'', env.encode(), hashlib.sha256).hexdigest()[:4]}"


class ArgoCDPlugin:
    """The console commits one ``<project name>/<cluster>/<env>/values.yaml`` per environment into the
    zone's infra repository ``<root>/infra/<zone>``; the zone's ApplicationSet (ArgoCD side) then makes
    the AppProject ``<slug>-<env>-<hash>`` and one Application per infra repository. The emulated
    ArgoCD has no ApplicationSet controller, so this plugin also does its part through the ArgoCD
    API: AppProject and ``<slug>-<env>-<repo>`` Applications into the environment's namespace
    (application naming of the chart not read: UNVERIFIED)."""

    def __init__(self, state: State, service: Service, gitlab: GitLabPlugin) -> None:
        self.state = state
        self.service = service
        self.api = _Client("argocd", f"{service.url}/api/v1")
        self.gitlab = gitlab
        self.token = ""

    def session(self) -> None:
        if not self.token:
            body = {"username": self.service.user or "admin", "password": self.service.token}
            self.token = str(self.api.json("POST", "/session", json=body, what="argocd session")["token"])
            self.api.http.headers["Authorization"] = f"Bearer {self.token}"

    def __call__(self, event: ProvisionEvent) -> str | None:
        if event.event not in ("project.upsert", "project.delete"):
            return None
        project = event.project
        environments = event.environments if event.event == "project.upsert" else []
        self.commit_values(project, event.repositories, environments)
        self.session()
        wanted_apps: set[str] = set()
        wanted_projects: set[str] = set()
        group_url = f"{self.gitlab.url}/{self.gitlab.root}/{project.slug}"
        for env in environments:
            appproject = app_project_name(project.slug, env.name)
            namespace = namespace_name(project.id, env.id)
            wanted_projects.add(appproject)
            spec = {
                "sourceRepos": [f"{group_url}/**"],
                "destinations": [{"server": "https://kubernetes.default.svc", "namespace": namespace}],
            }
            found = self.api.call("GET", f"/projects/{appproject}", what="argocd get project", allow=(403, 404))
            if found.status_code != 200:
                self.api.call(
                    "POST",
                    "/projects",
                    json={"project": {"metadata": {"name": appproject}, "spec": spec}},
                    what="argocd create project",
                )
            for repo in event.repositories:
                if not repo.is_infra:
                    continue
                name = f"{project.slug}-{env.name}-{repo.internal_name}"
                wanted_apps.add(name)
                source: Json = {
                    "repoURL": f"{group_url}/{repo.internal_name}.git",
                    "targetRevision": repo.deploy_revision or "HEAD",
                    "path": repo.deploy_path or ".",
                }
                files = [f.strip() for f in repo.helm_values_files.replace("<env>", env.name).split(",") if f.strip()]
                if files:
                    source["helm"] = {"valueFiles": files}
                app_spec: Json = {
                    "project": appproject,
                    "source": source,
                    "destination": {"server": "https://kubernetes.default.svc", "namespace": namespace},
                }
                if env.autosync:
                    app_spec["syncPolicy"] = {"automated": {"prune": True, "selfHeal": True}}
                labels = {"dso/project.slug": project.slug, "dso/environment": env.name}
                found = self.api.call("GET", f"/applications/{name}", what="argocd get application", allow=(403, 404))
                if found.status_code != 200:
                    body = {"metadata": {"name": name, "labels": labels}, "spec": app_spec}
                    self.api.call("POST", "/applications", json=body, what="argocd create application")
        self.prune(project.slug, wanted_apps, wanted_projects)
        return None

    def prune(self, slug: str, apps: set[str], projects: set[str]) -> None:
        """What the ApplicationSet removes when a values file goes: the apps, then their projects."""
        listed = self.api.json("GET", "/applications", what="argocd list applications").get("items") or []
        for app in listed:
            name = str(app["metadata"]["name"])
            if (app.get("metadata", {}).get("labels") or {}).get("dso/project.slug") == slug and name not in apps:
                self.api.call("DELETE", f"/applications/{name}", what="argocd delete application", allow=(404,))
        for item in self.api.json("GET", "/projects", what="argocd list projects").get("items") or []:
            name = str(item["metadata"]["name"])
            if name.startswith(f"{slug}-") and name not in projects and _is_app_project(slug, name):
                self.api.call("DELETE", f"/projects/{name}", what="argocd delete project", allow=(400, 404))

    def commit_values(self, project: ProjectRow, repos: list[RepositoryRow], envs: list[EnvironmentRow]) -> None:
        """``ensureZone`` / ``purgeZone``: values files written, those of gone environments deleted."""
        zones = {z["id"]: z["slug"] for z in self.state.zones}
        clusters = {c["id"]: c for c in self.state.clusters}
        for zone_id, zone in zones.items():
            infra = self.gitlab.ensure_repo(f"{self.gitlab.root}/{INFRA_GROUP}", zone)
            wanted: dict[str, str] = {}
            for env in envs:
                cluster = clusters.get(env.cluster_id)
                if cluster is None or cluster.get("zoneId") != zone_id:
                    continue
                path = f"{project.name}/{cluster['label']}/{env.name}/values.yaml"
                wanted[path] = self.values(project, env, cluster, repos)
            tree = self.gitlab.api.call(
                "GET",
                f"/projects/{infra['id']}/repository/tree",
                params={"path": project.name, "recursive": "true", "per_page": 100},
                allow=(404,),
            )
            existing = {
                t["path"] for t in (tree.json() if tree.status_code == 200 else []) if t.get("name") == "values.yaml"
            }
            actions: list[Json] = [
                {"action": "update" if path in existing else "create", "file_path": path, "content": content}
                for path, content in wanted.items()
            ]
            actions += [{"action": "delete", "file_path": path} for path in sorted(existing - set(wanted))]
            if actions:
                verb = "Sync" if envs else "Delete"
                body = {
                    "branch": "main",
                    "commit_message": f"ci: :robot_face: {verb} {project.slug}",
                    "actions": actions,
                }
                self.gitlab.api.call("POST", f"/projects/{infra['id']}/repository/commits", json=body)

    def values(self, project: ProjectRow, env: EnvironmentRow, cluster: Json, repos: list[RepositoryRow]) -> str:
        """``formatValues``, the keys the bot or a reader needs, as JSON (valid YAML)."""
        group_url = f"{self.gitlab.url}/{self.gitlab.root}/{project.slug}"
        values = {
            "common": {
                "dso/project": project.name,
                "dso/project.id": project.id,
                "dso/project.slug": project.slug,
                "dso/environment": env.name,
                "dso/environment.id": env.id,
            },
            "argocd": {"cluster": cluster["label"], "project": app_project_name(project.slug, env.name)},
            "application": {
                "quota": {"cpu": env.cpu, "gpu": env.gpu, "memory": f"{env.memory}Gi"},
                "sourceRepositories": [f"{group_url}/**"],
                "destination": {"namespace": namespace_name(project.id, env.id), "name": cluster["label"]},
                "autosync": env.autosync,
                "repositories": [
                    {
                        "id": r.id,
                        "name": r.internal_name,
                        "repoURL": f"{group_url}/{r.internal_name}.git",
                        "targetRevision": r.deploy_revision or "HEAD",
                        "path": r.deploy_path or ".",
                    }
                    for r in repos
                    if r.is_infra
                ],
            },
        }
        return json.dumps(values, indent=2) + "\n"


def _is_app_project(slug: str, name: str) -> bool:
    env = name[len(slug) + 1 :].rpartition("-")[0]
    return bool(env) and app_project_name(slug, env) == name


# --- the entry point ---------------------------------------------------------------------------


@dataclass
class Installed:
    """What :func:`install` set up; ``close()`` releases the HTTP clients."""

    hooks: dict[str, Callable[[ProvisionEvent], str | None]]
    closers: list[Callable[[], None]]

    def close(self) -> None:
        for close in self.closers:
            close()


def install(
    state: State,
    *,
    gitlab: Service | None = None,
    vault: Service | None = None,
    harbor: Service | None = None,
    sonarqube: Service | None = None,
    argocd: Service | None = None,
    root_group: str = "forge/projects",
    kv_mount: str = "forge-dso",
) -> Installed:
    """Make ``state``'s plugins provision the given emulators (see the module's docstring).

    Vault is needed by GitLab, Harbor and SonarQube (their secrets live there), GitLab by ArgoCD
    (the values files): a plugin whose dependency is missing is not installed.
    """
    hooks: dict[str, Callable[[ProvisionEvent], str | None]] = {}
    closers: list[Callable[[], None]] = []
    root = root_group.strip("/")
    store = VaultStore(vault, kv_mount, root) if vault is not None else None
    if store is not None:
        hooks["vault"] = VaultPlugin(store)
        closers.append(store.close)
    gitlab_plugin = None
    if gitlab is not None and store is not None:
        gitlab_plugin = GitLabPlugin(state, gitlab, store, root)
        hooks["gitlab"] = gitlab_plugin
        closers.append(gitlab_plugin.close)
    if harbor is not None and store is not None:
        harbor_plugin = HarborPlugin(harbor, store)
        hooks["harbor"] = harbor_plugin
        closers.append(harbor_plugin.api.close)
    if sonarqube is not None and store is not None:
        sonar_plugin = SonarPlugin(sonarqube, store)
        hooks["sonarqube"] = sonar_plugin
        closers.append(sonar_plugin.api.close)
    if argocd is not None and gitlab_plugin is not None:
        argo_plugin = ArgoCDPlugin(state, argocd, gitlab_plugin)
        hooks["argocd"] = argo_plugin
        closers.append(argo_plugin.api.close)
    with state.lock:
        state.plugins.update(hooks)
        if store is not None:
            state.secrets_of = _secrets_reader(store, gitlab, harbor)
    return Installed(hooks, closers)


def _secrets_reader(store: VaultStore, gitlab: Service | None, harbor: Service | None) -> Callable[[ProjectRow], Json]:
    """``getProjectSecrets`` of each plugin: GitLab's trigger (``plugins/gitlab/src/functions.ts``
    ``getDsoProjectSecrets``, read from Vault ``GITLAB``), the registry's base path, Vault's mount."""

    def read(project: ProjectRow) -> Json:
        found: Json = {}
        stored = store.read(store.project_key(project.slug, "GITLAB")) if gitlab is not None else None
        if stored:
            mirror_id = str(stored.get("GIT_MIRROR_PROJECT_ID", ""))
            curl = " \\\n    ".join(
                [
                    "curl -X POST --fail",
                    "-F token=${GIT_MIRROR_TOKEN}",
                    "-F ref=main",
                    "-F variables[GIT_BRANCH_DEPLOY]=${BRANCH_TO_SYNC}",
                    "-F variables[PROJECT_NAME]=${REPOSITORY_NAME}",
                    f'"{gitlab.url.rstrip("/") if gitlab else ""}/api/v4/projects/{mirror_id}/trigger/pipeline"',
                ]
            )
            found["GITLAB"] = {
                "PROJECT_SLUG": project.slug,
                "GIT_MIRROR_PROJECT_ID": mirror_id,
                "GIT_MIRROR_TOKEN": str(stored.get("GIT_MIRROR_TOKEN", "")),
                "CURL COMMAND": curl,
            }
        if harbor is not None:
            found["REGISTRY"] = {"Registry base path": f"{urlsplit(harbor.url).netloc}/{project.slug}/"}
        found["VAULT"] = {".spec.mount": project.slug, ".spec.vaultAuthRef": "vault-auth"}
        return found

    return read


__all__ = ["Installed", "PluginError", "Service", "install", "namespace_name", "sonar_key"]
