"""The console emulator's plugins provision the other emulators as the real console's listeners do
(``services/emulators/console_plugins.py``; ``cloud-pi-native/console`` ``apps/server-nestjs/src/
modules/{gitlab,vault,registry,sonarqube,argocd}``): driven through the console's HTTP API, checked
on each emulator's state."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from services.emulators import argocd, gitlab, harbor, sonarqube, vault
from services.emulators.base import EmulatorServer
from services.emulators.console import create_app
from services.emulators.console_plugins import Installed, PluginError, Service, install, namespace_name, sonar_key
from services.emulators.console_state import ProvisionEvent, State

BUDGETS = {"hprodCpu": 0, "hprodGpu": 0, "hprodMemory": 0, "prodCpu": 0, "prodGpu": 0, "prodMemory": 0}
ROOT = "forge/projects"
KV = "forge-dso"


@dataclass
class Platform:
    console: State
    gitlab: Any
    vault: Any
    harbor: Any
    sonar: Any
    argocd: Any
    url: str
    installed: Installed
    admin_token: str = ""
    vault_token: str = ""
    installed_urls: dict[str, str] = field(default_factory=dict)
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, token: str) -> httpx.Client:
        client = httpx.Client(base_url=self.url, headers={"x-dso-token": token}, timeout=10)
        self.clients.append(client)
        return client

    @property
    def admin(self) -> httpx.Client:
        return self.client(self.admin_token)

    def create(self, name: str = "alpha") -> dict[str, Any]:
        response = self.admin.post("/api/v1/projects", json={"name": name, "limitless": True, **BUDGETS})
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def last_log(self) -> dict[str, Any]:
        data: dict[str, Any] = self.console.logs[-1].data
        return data

    def secret(self, slug: str, key: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.vault.read_secret(KV, f"{ROOT}/{slug}/{key}")
        return found

    def add_repository(self, pid: str, name: str, url: str = "", infra: bool = False) -> httpx.Response:
        # v1 with the admin token: the v2 routes refuse admin tokens (console-api §1.4).
        body = {
            "projectId": pid,
            "internalRepoName": name,
            "externalRepoUrl": url,
            "isInfra": infra,
            "isPrivate": False,
        }
        return self.admin.post("/api/v1/repositories", json=body)


@pytest.fixture(scope="module")
def services() -> Iterator[Platform]:
    """One set of emulators for the module (each test names its own projects); ms timings."""
    gl = gitlab.State()
    gl.timings.job_seconds = 0.001
    root = gl.add_group("forge")
    gl.add_group("projects", parent_id=root["id"])
    vault_token = secrets.token_hex(8)
    vs = vault.State(root_token=vault_token)
    vs.enable_kv2(KV)
    hs = harbor.State(admin="admin", admin_password="Hb1secret")
    sonar_token = "squ_" + secrets.token_hex(8)
    ss = sonarqube.State(admin_token=sonar_token)
    ar = argocd.State(admin_password="argo-secret")
    ar.timings.cascade_delete_seconds = 0.001
    console = State()
    servers = [
        EmulatorServer(gitlab.create_app(gl), name="gitlab").start(),
        EmulatorServer(vault.create_app(vs), name="vault").start(),
        EmulatorServer(harbor.create_app(hs), name="harbor").start(),
        EmulatorServer(sonarqube.create_app(ss), name="sonarqube").start(),
        EmulatorServer(argocd.create_app(ar), name="argocd").start(),
        EmulatorServer(create_app(console), name="console").start(),
    ]
    gl.base_url = servers[0].url
    hs.host = servers[2].url.removeprefix("http://")
    installed = install(
        console,
        gitlab=Service(servers[0].url, gl.root_token),
        vault=Service(servers[1].url, vault_token),
        harbor=Service(servers[2].url, "Hb1secret", user="admin"),
        sonarqube=Service(servers[3].url, sonar_token),
        argocd=Service(servers[4].url, "argo-secret", user="admin"),
        root_group=ROOT,
        kv_mount=KV,
    )
    p = Platform(console, gl, vs, hs, ss, ar, servers[-1].url, installed, console.add_admin_token("cpn-bot"))
    p.vault_token = vault_token
    p.installed_urls = {"vault": servers[1].url}
    yield p
    for client in p.clients:
        client.close()
    installed.close()
    for server in servers:
        server.stop()


@pytest.fixture
def platform(services: Platform) -> Iterator[Platform]:
    yield services
    for state in (services.gitlab, services.vault, services.harbor, services.sonar, services.argocd):
        state.faults.clear()


def results(log: dict[str, Any]) -> dict[str, str]:
    return {name: r["status"]["result"] for name, r in log["results"].items()}


def test_a_created_project_gets_its_group_mirror_infra_apps_secrets_registry_and_sonar_user(platform: Platform) -> None:
    project = platform.create()
    slug = project["slug"]
    assert results(platform.last_log()) == dict.fromkeys(results(platform.last_log()), "OK")
    assert platform.admin.get(f"/api/v1/projects/{project['id']}").json()["lastSuccessProvisionningVersion"]

    group = platform.gitlab.group_by_path(f"{ROOT}/{slug}")
    assert group is not None
    mirror = platform.gitlab.project_by_path(f"{ROOT}/{slug}/mirror")
    assert mirror is not None and platform.gitlab.project_by_path(f"{ROOT}/{slug}/infra-apps") is not None
    assert "repo_pull_sync" in (platform.gitlab.file_content(mirror["id"], ".gitlab-ci.yml") or "")
    assert platform.gitlab.file_content(mirror["id"], "mirror.sh")
    # Vault GITLAB carries the mirror trigger, tech/GITLAB_MIRROR the <slug>-bot group token.
    stored = platform.secret(slug, "GITLAB")
    assert stored is not None and stored["GIT_MIRROR_PROJECT_ID"] == mirror["id"] and stored["PROJECT_SLUG"] == slug
    assert (platform.secret(slug, "tech/GITLAB_MIRROR") or {}) == {}  # created with the first mirrored repository
    # Vault: the project's own mount and its policies.
    assert f"{slug}/" in platform.vault.mount_paths()
    assert f'path "{KV}/data/{ROOT}/{slug}/REGISTRY/ro-robot"' in platform.vault.policies[f"tech--{slug}--ro"].text
    # Harbor: the project, scanned on push, and two robots whose Vault secret logs in.
    assert platform.harbor.project(slug).metadata["auto_scan"] == "true"
    for robot in ("ro-robot", "rw-robot"):
        creds = platform.secret(slug, f"REGISTRY/{robot}")
        assert creds is not None and creds["USERNAME"] == f"robot${slug}+{robot}"
        assert platform.harbor.login_ok(creds["USERNAME"], creds["TOKEN"])
    # SonarQube: the technical user <slug>, its token in Vault SONAR.
    sonar = platform.secret(slug, "SONAR")
    assert platform.sonar.user(slug) is not None and sonar is not None
    assert platform.sonar.login_for_token(sonar["SONAR_TOKEN"]) == slug


def test_the_secrets_route_shows_the_mirror_trigger_kept_in_vault(platform: Platform) -> None:
    project = platform.create()
    shown = platform.admin.get(f"/api/v1/projects/{project['id']}/secrets").json()
    stored = platform.secret(project["slug"], "GITLAB") or {}
    assert shown["GITLAB"]["GIT_MIRROR_TOKEN"] == stored["GIT_MIRROR_TOKEN"]
    assert shown["GITLAB"]["GIT_MIRROR_PROJECT_ID"] == str(stored["GIT_MIRROR_PROJECT_ID"])
    assert shown["REGISTRY"]["Registry base path"] == f"{platform.harbor.host}/{project['slug']}/"


def test_a_repository_added_appears_in_gitlab_with_its_mirror_secret_sonar_project_and_first_sync(
    platform: Platform,
) -> None:
    project = platform.create()
    slug = project["slug"]
    response = platform.add_repository(project["id"], "api", "https://github.com/dnum-mi/api.git")
    assert response.status_code == 201, response.text
    internal = platform.gitlab.project_by_path(f"{ROOT}/{slug}/api")
    assert internal is not None and internal["ci_config_path"] == ".gitlab-ci-dso.yml"
    assert "plugin-managed" in internal["topics"]
    mirror_creds = platform.secret(slug, "tech/GITLAB_MIRROR") or {}
    assert mirror_creds["MIRROR_USER"] == f"{slug}-bot"
    secret = platform.secret(slug, "api-mirror") or {}
    assert secret["GIT_INPUT_URL"] == "github.com/dnum-mi/api.git"
    assert secret["GIT_OUTPUT_URL"].endswith(f"{ROOT}/{slug}/api.git")
    assert secret["GIT_OUTPUT_PASSWORD"] == mirror_creds["MIRROR_TOKEN"]
    assert platform.sonar.project(sonar_key(slug, "api")) is not None
    assert platform.sonar.project_permissions(sonar_key(slug, "api"), slug) >= {"scan", "user", "codeviewer"}
    # The full sync that follows a creation with an external URL: a mirror pipeline for PROJECT_NAME=api.
    (pipeline,) = platform.gitlab.pipelines_of(f"{ROOT}/{slug}/mirror")
    assert (pipeline.variable("PROJECT_NAME"), pipeline.variable("SYNC_ALL")) == ("api", "true")


def test_a_standalone_repository_has_no_mirror_secret_and_sync_names_its_branch(platform: Platform) -> None:
    project = platform.create()
    slug = project["slug"]
    assert platform.add_repository(project["id"], "front").status_code == 201
    internal = platform.gitlab.project_by_path(f"{ROOT}/{slug}/front")
    assert internal is not None and not internal["ci_config_path"]
    assert platform.secret(slug, "front-mirror") is None
    rid = platform.admin.get("/api/v1/repositories", params={"projectId": project["id"]}).json()[0]["id"]
    synced = platform.admin.post(
        f"/api/v1/repositories/{rid}/sync", json={"syncAllBranches": False, "branchName": "dev"}
    )
    assert synced.status_code == 204
    (pipeline,) = platform.gitlab.pipelines_of(f"{ROOT}/{slug}/mirror")
    variables = [pipeline.variable(k) for k in ("PROJECT_NAME", "SYNC_ALL", "GIT_BRANCH_DEPLOY")]
    assert variables == ["front", "false", "dev"]
    # Only GitLab listens to repository.sync: the log has its result alone.
    assert platform.console.logs[-1].action == "Sync Repository"
    assert list(platform.last_log()["results"]) == ["gitlab"]


def test_a_sync_gitlab_refuses_is_a_422_and_the_consoles_repositories_cannot_be_synced(platform: Platform) -> None:
    project = platform.create()
    assert platform.add_repository(project["id"], "front").status_code == 201
    rid = platform.admin.get("/api/v1/repositories", params={"projectId": project["id"]}).json()[0]["id"]
    platform.gitlab.faults.fail("POST /api/v4/projects/*/pipeline", 500, times=1)
    refused = platform.admin.post(f"/api/v1/repositories/{rid}/sync", json={"syncAllBranches": True})
    assert refused.status_code == 422
    assert refused.json() == {"message": "Echec des services à la synchronisation du dépôt"}
    assert platform.last_log()["results"]["gitlab"]["status"] == {"result": "KO", "message": "Internal Server Error"}
    # triggerMirror refuses the plumbing repositories (no console row can carry those names anyway).
    hook = platform.installed.hooks["gitlab"]
    row = platform.console.projects[project["id"]]
    with pytest.raises(PluginError, match="User requested for invalid mirroring"):
        hook(ProvisionEvent("repository.sync", row, [], [], {"repository": "mirror", "syncAllBranches": True}))


def test_members_get_the_gitlab_level_of_their_role_at_the_next_provisioning(platform: Platform) -> None:
    claire = platform.console.add_user("claire.nollet@test.com", "Claire", "NOLLET")
    project = platform.create()
    pid = project["id"]
    assert platform.admin.post(f"/api/v1/projects/{pid}/members", json={"email": claire.email}).status_code == 201
    devops = next(r["id"] for r in platform.admin.get(f"/api/v1/projects/{pid}/roles").json() if r["name"] == "DevOps")
    platform.admin.patch(f"/api/v1/projects/{pid}/members", json=[{"userId": claire.id, "roles": [devops]}])
    group = platform.gitlab.group_by_path(f"{ROOT}/{project['slug']}")
    assert group is not None and not group_levels(platform, group["id"])  # members do not provision (§2.2)
    assert platform.admin.put(f"/api/v1/projects/{pid}/hooks").status_code == 204
    # DevOps → maintainer; the username is the e-mail's local part without its dots (generateUsername).
    assert group_levels(platform, group["id"]) == {"clairenollet": 40}


def group_levels(platform: Platform, group_id: int) -> dict[str, int]:
    namespace = platform.gitlab.namespaces[group_id]
    return {
        platform.gitlab.users[uid].username: m.access_level
        for uid, m in namespace.members.items()
        if not platform.gitlab.users[uid].bot and uid != 1  # root created the group: its owner
    }


def test_an_environment_and_an_infra_repository_make_the_argocd_project_and_application(platform: Platform) -> None:
    project = platform.create()
    pid, slug = project["id"], project["slug"]
    assert platform.add_repository(pid, "deploy", infra=True).status_code == 201
    stage = next(s for s in platform.admin.get("/api/v1/stages").json() if s["name"] == "dev")
    body = {"name": "dev", "stageId": stage["id"], "clusterId": stage["clusterIds"][0], "cpu": 1, "gpu": 0}
    created = platform.admin.post(f"/api/v2/projects/{pid}/environments", json={**body, "memory": 1, "autosync": True})
    assert created.status_code == 201, created.text
    env_id = created.json()["id"]
    (appproject,) = [p for p in platform.argocd.projects if p.startswith(f"{slug}-dev-")]
    app = platform.argocd.apps[f"{slug}-dev-deploy"].data
    assert app["spec"]["project"] == appproject
    assert app["spec"]["destination"]["namespace"] == namespace_name(pid, env_id)
    assert app["spec"]["source"]["repoURL"].endswith(f"{ROOT}/{slug}/deploy.git")
    values = platform.gitlab.file_content(f"{ROOT}/infra/pub", f"{project['name']}/public1/dev/values.yaml")
    assert values is not None and env_id in values
    # The environment removed: its values file, application and project go.
    assert platform.admin.delete(f"/api/v2/projects/{pid}/environments/{env_id}").status_code == 204
    gone = platform.argocd.apps.get(f"{slug}-dev-deploy")
    assert gone is None or "deletionTimestamp" in gone.data["metadata"]
    assert platform.gitlab.file_content(f"{ROOT}/infra/pub", f"{project['name']}/public1/dev/values.yaml") is None


@pytest.mark.parametrize(
    ("service", "plugin"),
    [("gitlab", "gitlab"), ("vault", "vault"), ("harbor", "harbor"), ("sonar", "sonarqube"), ("argocd", "argocd")],
)
def test_a_service_down_is_its_plugins_ko_and_a_replay_repairs(platform: Platform, service: str, plugin: str) -> None:
    target = getattr(platform, service)
    target.faults.down = True
    project = platform.create()
    log = platform.last_log()
    assert plugin in log["failed"] and results(log)[plugin] == "KO"
    assert log["results"][plugin]["status"]["message"]  # the client's error, as capturePluginResult logs it
    assert platform.admin.get(f"/api/v1/projects/{project['id']}").json()["status"] == "failed"
    target.faults.down = False
    assert platform.admin.put(f"/api/v1/projects/{project['id']}/hooks").status_code == 204
    assert platform.last_log()["failed"] == []
    assert platform.admin.get(f"/api/v1/projects/{project['id']}").json()["status"] == "created"


def test_a_refused_route_reads_like_the_console_client_error(platform: Platform) -> None:
    platform.harbor.faults.fail("POST /api/v2.0/robots", 500, times=1)
    platform.create()
    assert platform.last_log()["results"]["harbor"]["status"]["message"] == "Harbor create robot failed (500)"
    platform.gitlab.faults.fail("GET /api/v4/groups/forge/projects/beta", 503, times=1)
    platform.create("beta")
    assert platform.last_log()["results"]["gitlab"]["status"]["message"] == "Service Unavailable"
    assert "Errors:\ngitlab: Service Unavailable;" in platform.last_log()["messageResume"]


def test_replays_keep_the_robot_secrets_harbor_shows_once(platform: Platform) -> None:
    project = platform.create()
    before = platform.secret(project["slug"], "REGISTRY/rw-robot")
    assert platform.admin.put(f"/api/v1/projects/{project['id']}/hooks").status_code == 204
    assert platform.secret(project["slug"], "REGISTRY/rw-robot") == before
    robots = [r for r in platform.harbor.robots.values() if r.name.startswith(f"{project['slug']}+")]
    assert len(robots) == 2


def test_a_lost_robot_secret_makes_a_new_robot(platform: Platform) -> None:
    project = platform.create()
    slug = project["slug"]
    old = platform.secret(slug, "REGISTRY/ro-robot") or {}
    lost = httpx.delete(
        f"{platform.installed_urls['vault']}/v1/{KV}/metadata/{ROOT}/{slug}/REGISTRY/ro-robot",
        headers={"X-Vault-Token": platform.vault_token},
    )
    assert lost.status_code == 204
    assert platform.admin.put(f"/api/v1/projects/{project['id']}/hooks").status_code == 204
    new = platform.secret(slug, "REGISTRY/ro-robot") or {}
    assert new["TOKEN"] != old["TOKEN"] and platform.harbor.login_ok(new["USERNAME"], new["TOKEN"])
    assert not platform.harbor.login_ok(old["USERNAME"], old["TOKEN"])


def test_delete_archives_the_project_and_removes_what_the_plugins_made(platform: Platform) -> None:
    project = platform.create()
    slug = project["slug"]
    assert platform.add_repository(project["id"], "api", "https://github.com/dnum-mi/api.git").status_code == 201
    assert platform.admin.delete(f"/api/v1/projects/{project['id']}").status_code == 204
    log = platform.last_log()
    assert log["failed"] == [] and platform.console.logs[-1].action == "Delete all project resources"
    group = platform.gitlab.group_by_path(f"{ROOT}/{slug}")
    assert group is None or group.get("marked_for_deletion_on")
    assert platform.harbor.project(slug) is None
    assert f"{slug}/" not in platform.vault.mount_paths()
    assert not [p for p in platform.vault.list_paths(KV) if p.startswith(f"{ROOT}/{slug}/")]
    assert platform.sonar.project(sonar_key(slug, "api")) is None
    user = platform.sonar.user(slug)  # deactivated and anonymised: its login is gone
    assert user is None or not user.active
