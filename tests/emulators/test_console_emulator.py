"""The console emulator, driven with plain httpx: one test per rule of ``console-api.md`` (section cited)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from services.emulators.base import EmulatorServer
from services.emulators.console import create_app
from services.emulators.console_state import State

BUDGETS = {"hprodCpu": 0, "hprodGpu": 0, "hprodMemory": 0, "prodCpu": 0, "prodGpu": 0, "prodMemory": 0}


class World:
    def __init__(self, state: State, url: str) -> None:
        self.state = state
        self.url = url
        self.claire = state.add_user("claire.nollet@test.com", "Claire", "NOLLET")
        self.thibault = state.add_user("thibault.colin@test.com", "Thibault", "COLIN")
        self.claire_pat = state.add_pat(self.claire)
        self.thibault_pat = state.add_pat(self.thibault)
        self.admin_token = state.add_admin_token("cpn-bot")
        self._clients: list[httpx.Client] = []

    def client(self, token: str | None) -> httpx.Client:
        headers = {"x-dso-token": token} if token else {}
        client = httpx.Client(base_url=self.url, headers=headers, timeout=5)
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()

    def project(self, token: str, name: str = "betaapp") -> dict[str, Any]:
        response = self.client(token).post("/api/v1/projects", json={"name": name, "limitless": False, **BUDGETS})
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body


def make_world(version: str = "9.24.0", **options: Any) -> Iterator[World]:
    state = State(version, **options)
    with EmulatorServer(create_app(state), name="console") as server:
        world = World(state, server.url)
        yield world
        world.close()


@pytest.fixture
def w() -> Iterator[World]:
    yield from make_world()


@pytest.fixture
def legacy() -> Iterator[World]:
    yield from make_world("9.22.0")


# --- §0.1 error shapes and §1.2 token checks --------------------------------------------------


def test_legacy_routes_answer_a_refused_token_with_http_200_and_a_401_body(w: World) -> None:
    """§0.1 last row: ``authUser`` throws an object that ts-rest sends as an HTTP 200 payload."""
    unknown = w.client("x" * 48).get("/api/v1/clusters")
    assert unknown.status_code == 200
    assert unknown.json() == {"status": 401, "body": {"message": "Not authenticated"}}
    w.state.expire(w.claire_pat)
    assert w.client(w.claire_pat).get("/api/v1/clusters").json() == {"status": 401, "body": {"message": "Expired"}}
    w.state.revoke(w.thibault_pat)
    assert w.client(w.thibault_pat).get("/api/v1/user/tokens").json()["body"]["message"] == "Not active"


def test_nest_routes_refuse_tokens_with_a_real_401_in_nest_shape(w: World) -> None:
    """§1.2 NestJS column: unknown → ``Not authenticated``, revoked → ``Token revoked``,
    expired → ``Token expired: …``."""
    none = w.client(None).get("/api/v1/projects")
    assert none.status_code == 401
    assert none.json() == {"message": "Not authenticated", "error": "Unauthorized", "statusCode": 401}
    w.state.revoke(w.thibault_pat)
    assert w.client(w.thibault_pat).get("/api/v1/projects").json()["message"] == "Token revoked"
    w.state.expire(w.claire_pat)
    expired = w.client(w.claire_pat).get("/api/v1/projects")
    assert expired.status_code == 401 and expired.json()["message"].startswith("Token expired: ")


def test_an_inactive_token_passes_nest_only_with_the_quirks_flag() -> None:
    """§1.2 / §7: NestJS refuses only ``revoked``; copied behind ``quirks``."""
    for quirks, status in ((False, 401), (True, 200)):
        for world in make_world(quirks=quirks):
            raw = world.state.add_pat(world.claire, "old", status="inactive")
            assert world.client(raw).get("/api/v1/projects").status_code == status


def test_nest_validation_errors_have_field_errors_and_no_message(w: World) -> None:
    """§0.1 ``ZodValidationPipe``: ``{"formErrors", "fieldErrors"}``."""
    response = w.client(w.claire_pat).post("/api/v1/projects", json={"name": "Bad-Name"})
    assert response.status_code == 400
    body = response.json()
    assert "message" not in body and "name" in body["fieldErrors"] and body["fieldErrors"]["limitless"] == ["Required"]


def test_legacy_validation_errors_are_zod_issues_under_body_errors(legacy: World) -> None:
    """§0.1 ts-rest request validation on the legacy server."""
    response = legacy.client(legacy.claire_pat).post("/api/v1/projects", json={"name": "x"})
    assert response.status_code == 400
    body = response.json()
    assert body["bodyErrors"]["name"] == "ZodError" and body["bodyErrors"]["issues"]
    assert set(body) == {"pathParameterErrors", "headerErrors", "queryParameterErrors", "bodyErrors"}


def test_the_fault_switch_makes_the_console_unavailable(w: World) -> None:
    w.state.faults.fail("GET /api/v1/version", 502, times=1)
    assert w.client(None).get("/api/v1/version").status_code == 502
    assert w.client(None).get("/api/v1/version").json() == {"version": "9.24.0"}
    w.state.faults.down = True
    assert w.client(None).get("/api/v1/healthz").status_code == 503


# --- §2.1 projects and §3.1 lifecycle ---------------------------------------------------------


def test_create_answers_the_snapshot_taken_before_provisioning(w: World) -> None:
    """§3.1 step 5: 201 with ``status created`` and no provisioning version, even on failure."""
    w.state.fail_plugin("gitlab", "gitlab injoignable")
    body = w.project(w.claire_pat)
    assert body["status"] == "created" and body["lastSuccessProvisionningVersion"] is None
    again = w.client(w.claire_pat).get(f"/api/v1/projects/{body['id']}").json()
    assert again["status"] == "failed"
    log = w.client(w.claire_pat).get("/api/v1/logs", params={"offset": 0, "limit": 1, "projectId": body["id"]}).json()
    assert log["logs"][0]["action"] == "Create Project"
    assert log["logs"][0]["data"]["failed"] == ["gitlab"]
    assert "results" not in log["logs"][0]["data"]  # a person is forced clean=true (§2.10)
    assert log["logs"][0]["data"]["messageResume"] == "Errors:\ngitlab: gitlab injoignable;"


def test_a_successful_create_records_the_console_version_and_four_system_roles(w: World) -> None:
    """§3.1 step 4 and §4.3 (≥ 9.23: 4 system roles, oidcGroup returned without the slug)."""
    body = w.project(w.claire_pat)
    project = w.client(w.claire_pat).get(f"/api/v1/projects/{body['id']}").json()
    assert project["status"] == "created" and project["lastSuccessProvisionningVersion"] == "9.24.0"
    assert [(r["name"], r["permissions"], r["oidcGroup"]) for r in project["roles"]] == [
        ("Administrateur", "2", "/console/admin"),
        ("DevOps", "984", "/console/devops"),
        ("Développeur", "784", "/console/developer"),
        ("Lecture seule", "768", "/console/readonly"),
    ]
    assert project["ownerId"] == w.claire.id and project["members"] == [] and project["everyonePerms"] == "896"


def test_legacy_create_fails_with_422_but_the_project_exists(legacy: World) -> None:
    """§3.1 legacy (≤ 9.22): 422 ``Echec des services à la création du projet``; 5 system roles."""
    legacy.state.fail_plugin("vault")
    legacy.state.fail_plugin("gitlab")
    body = {"name": "alpha", "limitless": True, **BUDGETS}
    response = legacy.client(legacy.claire_pat).post("/api/v1/projects", json=body)
    assert response.status_code == 422
    assert response.json() == {"message": "Echec des services à la création du projet"}
    [project] = legacy.state.projects_named("alpha")
    assert project.status == "failed" and len(project.roles) == 5


def test_slugs_are_name_then_name_1_on_duplicate(w: World) -> None:
    """§3.1 ``generateSlug``: names are not unique, slugs are."""
    assert [w.project(w.claire_pat, "alpha")["slug"] for _ in range(3)] == ["alpha", "alpha-1", "alpha-2"]


def test_admin_tokens_create_projects_owned_by_their_bot_user(w: World) -> None:
    """§1.4: ≥ 9.23 an admin token may create; the bot (``Bot Admin``, ``@bot.io``) owns it."""
    body = w.project(w.admin_token)
    assert body["owner"]["firstName"] == "Bot Admin" and body["owner"]["email"].endswith("@bot.io")


def test_listing_defaults_to_member_and_all_needs_admin_manage(w: World) -> None:
    """§2.1 ``filter``."""
    w.project(w.claire_pat, "alpha")
    assert w.client(w.thibault_pat).get("/api/v1/projects").json() == []
    refused = w.client(w.thibault_pat).get("/api/v1/projects", params={"filter": "all"})
    assert refused.status_code == 403 and refused.json()["message"].startswith("Seuls les admins")
    everything = w.client(w.admin_token).get("/api/v1/projects", params={"filter": "all"}).json()
    assert [p["name"] for p in everything] == ["alpha"]


def test_the_project_guard_answers_404_then_403_in_order(w: World) -> None:
    """§2 ``ProjectGuard``: 404 ``Projet introuvable`` → … → 403 ``Permissions insuffisantes pour ce projet``."""
    pid = w.project(w.claire_pat)["id"]
    missing = w.client(w.claire_pat).get("/api/v1/projects/00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404 and missing.json()["message"] == "Projet introuvable"
    stranger = w.client(w.thibault_pat).get(f"/api/v1/projects/{pid}")
    assert stranger.status_code == 403 and stranger.json()["message"] == "Permissions insuffisantes pour ce projet"
    assert w.client(w.claire_pat).get("/api/v1/projects/betaapp").status_code == 200  # NestJS takes a slug


def test_a_locked_project_refuses_writes_and_only_an_admin_unlocks_it(w: World) -> None:
    """§3.1 locking: every write 403; ``PUT {locked:false}`` by an admin."""
    pid = w.project(w.claire_pat)["id"]
    assert w.client(w.admin_token).put(f"/api/v1/projects/{pid}", json={"locked": True}).json()["locked"] is True
    claire = w.client(w.claire_pat)
    hooks = claire.put(f"/api/v1/projects/{pid}/hooks")
    assert hooks.status_code == 403 and hooks.json()["message"] == "État de verrouillage invalide"
    update = claire.put(f"/api/v1/projects/{pid}", json={"description": "x"})
    assert update.json()["message"] == "Veuillez déverrouiller le projet pour le mettre à jour"
    member = claire.post(f"/api/v1/projects/{pid}/members", json={"email": w.thibault.email})
    assert member.status_code == 403
    assert claire.put(f"/api/v1/projects/{pid}", json={"locked": False}).json()["locked"] is True  # dropped for her
    assert w.client(w.admin_token).put(f"/api/v1/projects/{pid}", json={"locked": False}).json()["locked"] is False


def test_an_archived_project_is_renamed_locked_404_on_read_and_403_on_write(w: World) -> None:
    """§3.1 archive: ``<x>_<ms>_archived``, rows deleted; GET → 404, writes → 403."""
    pid = w.project(w.claire_pat)["id"]
    claire = w.client(w.claire_pat)
    assert claire.delete(f"/api/v1/projects/{pid}").status_code == 204
    row = w.state.projects[pid]
    assert row.status == "archived" and row.locked and row.slug.endswith("_archived")
    assert claire.get(f"/api/v1/projects/{pid}").status_code == 404
    hooks = claire.put(f"/api/v1/projects/{pid}/hooks")
    assert hooks.status_code == 403 and hooks.json()["message"] == "Statut de projet invalide"
    assert w.project(w.claire_pat)["slug"] == "betaapp"  # the slug is free again


# --- §2.2 members, §2.3 roles, §4 permissions ---------------------------------------------------


def test_members_are_added_by_email_and_get_everyone_perms_then_their_roles(w: World) -> None:
    """§2.2 and §4.4: a new member has ``roleIds: []`` → ``everyonePerms``; PATCH replaces roles."""
    project = w.project(w.claire_pat)
    pid = project["id"]
    claire = w.client(w.claire_pat)
    added = claire.post(f"/api/v1/projects/{pid}/members", json={"email": w.thibault.email})
    assert added.status_code == 201 and added.json()[0]["roleIds"] == []
    thibault = w.client(w.thibault_pat)
    assert thibault.get(f"/api/v1/projects/{pid}/roles").status_code == 200
    assert thibault.put(f"/api/v1/projects/{pid}/hooks").status_code == 204  # REPLAY_HOOKS in 896
    assert thibault.post(f"/api/v1/projects/{pid}/members", json={"email": "x@y.z"}).status_code == 403
    admin_role = next(r["id"] for r in project["roles"] if r["name"] == "Administrateur")
    patched = claire.patch(f"/api/v1/projects/{pid}/members", json=[{"userId": w.thibault.id, "roles": [admin_role]}])
    assert patched.json()[0]["roleIds"] == [admin_role]
    assert thibault.post(f"/api/v1/projects/{pid}/members", json={"email": w.claire.email}).json() == {
        "message": "Le owner ne peut pas être ajouté à cette liste",
        "error": "Bad Request",
        "statusCode": 400,
    }
    unknown = claire.post(f"/api/v1/projects/{pid}/members", json={"email": "nobody@test.com"})
    assert unknown.status_code == 404 and unknown.json()["message"] == "Utilisateur introuvable"
    removed = claire.delete(f"/api/v1/projects/{pid}/members/{w.thibault.id}")
    assert removed.status_code == 200 and removed.json() == []  # 200 with the list, not 204


def test_roles_list_omits_position_and_project_id_on_nest(w: World) -> None:
    """§2.3: NestJS omits ``position``, ``projectId``; ``userCount`` = project members."""
    pid = w.project(w.claire_pat)["id"]
    role = w.client(w.claire_pat).get(f"/api/v1/projects/{pid}/roles").json()[0]
    assert set(role) == {"id", "name", "oidcGroup", "type", "permissions", "userCount"}
    assert role["type"] == "system:managed"


# --- §2.4 / §2.5 repositories ------------------------------------------------------------------


def test_v2_repository_writes_refuse_admin_tokens_and_v1_accepts_them(w: World) -> None:
    """§1.4: ``@RequireUserType('human')`` on v2; v1 = admin MANAGE or the project bit."""
    pid = w.project(w.claire_pat)["id"]
    body = {"internalRepoName": "front", "externalRepoUrl": "", "isInfra": False, "isPrivate": False}
    refused = w.client(w.admin_token).post(f"/api/v2/projects/{pid}/repositories", json=body)
    assert refused.status_code == 403
    assert refused.json() == {
        "message": "Cannot find requestor in request context",
        "error": "Forbidden",
        "statusCode": 403,
    }
    assert w.client(w.admin_token).get(f"/api/v2/projects/{pid}/repositories").status_code == 200
    v1 = w.client(w.admin_token).post("/api/v1/repositories", json={**body, "projectId": pid})
    assert v1.status_code == 201 and v1.json()["deployRevision"] == ""  # v1: no deploy defaults
    v2 = w.client(w.claire_pat).post(f"/api/v2/projects/{pid}/repositories", json={**body, "internalRepoName": "back"})
    assert v2.status_code == 201 and (v2.json()["deployRevision"], v2.json()["deployPath"]) == ("HEAD", ".")


def test_repository_rules_of_v2(w: World) -> None:
    """§2.4: reserved names, private credentials, duplicates, a 422 keeps the row, UUID pipe."""
    pid = w.project(w.claire_pat)["id"]
    claire = w.client(w.claire_pat)
    path = f"/api/v2/projects/{pid}/repositories"
    base = {"externalRepoUrl": "https://github.com/a/b.git", "isInfra": False, "isPrivate": False}
    assert claire.post(path, json={**base, "internalRepoName": "mirror"}).status_code == 400
    private = claire.post(path, json={**base, "internalRepoName": "secret", "isPrivate": True})
    assert "Si le dépôt est privé" in private.json()["fieldErrors"]["externalUserName"][0]
    assert claire.post(path, json={**base, "internalRepoName": "front"}).status_code == 201
    assert w.state.syncs[-1] == {"project": "betaapp", "repository": "front", "branch": None, "by": w.claire.email}
    dup = claire.post(path, json={**base, "internalRepoName": "front"})
    assert dup.json()["message"] == "Le nom du dépôt interne front existe déjà en base pour ce projet"
    w.state.fail_plugin("gitlab", times=1)
    failed = claire.post(path, json={**base, "internalRepoName": "api"})
    assert failed.status_code == 422 and failed.json()["message"] == "Echec des services lors de la création du dépôt"
    assert [r["internalRepoName"] for r in claire.get(path).json()] == ["front", "api"]
    assert claire.post(f"{path}/not-a-uuid/sync", json={"syncAllBranches": True}).json()["message"] == (
        "Validation failed (uuid is expected)"
    )


def test_repositories_v2_do_not_exist_before_9_24_nor_v1_when_removed() -> None:
    """§6: repositories v2 from 9.24; the v1 routes may be removed (fastify's 404)."""
    for world in make_world("9.23.0"):
        pid = world.project(world.claire_pat)["id"]
        assert world.client(world.claire_pat).get(f"/api/v2/projects/{pid}/repositories").status_code == 404
    for world in make_world(v1_repositories=False):
        gone = world.client(world.admin_token).post("/api/v1/repositories", json={})
        assert gone.status_code == 404 and gone.json()["message"].startswith("Route POST:")


# --- §2.6 environments, §2.7 topology, §2.9 users, §2.10 health ---------------------------------


def test_environment_checks_join_their_messages(w: World) -> None:
    """§2.6: 400 with ``\\n``-joined messages; name taken, stage invalid."""
    pid = w.project(w.claire_pat)["id"]
    claire = w.client(w.claire_pat)
    stage = w.state.stages[0]["id"]
    cluster = w.state.clusters[0]["id"]
    body = {"name": "dev", "stageId": stage, "clusterId": cluster, "cpu": 1, "gpu": 0, "memory": 2, "autosync": True}
    created = claire.post(f"/api/v2/projects/{pid}/environments", json=body)
    assert created.status_code == 201
    listed = claire.get(f"/api/v2/projects/{pid}/environments").json()
    assert listed[0]["stage"] == {"id": stage, "name": "dev"}
    again = claire.post(f"/api/v2/projects/{pid}/environments", json={**body, "stageId": cluster})
    assert again.json()["message"] == "Ce nom d'environnement est déjà pris.\nType d'environnement invalide."


def test_public_routes_need_no_token(w: World) -> None:
    """§2.7, §2.9, §2.10: stages, zones, users/matching, health-services, version need no auth."""
    anon = w.client(None)
    assert [s["name"] for s in anon.get("/api/v1/stages").json()] == ["dev", "staging", "integration", "prod"]
    assert anon.get("/api/v1/zones").json()[0]["slug"] == "pub"
    assert [u["email"] for u in anon.get("/api/v1/users/matching", params={"letters": "CLAIRE"}).json()] == [
        w.claire.email
    ]
    w.state.set_health("Vault", "En échec", "Le Vault est scellé")
    health = {h["name"]: h for h in anon.get("/api/v1/health-services").json()}
    assert health["Vault"]["status"] == "En échec" and health["Gitlab"]["interval"] == 300000
    assert anon.get("/api/v1/version").json() == {"version": "9.24.0"}


def test_admin_roles_are_listed_without_a_token_masks_as_strings(w: World) -> None:
    """§4.3 (legacy ``listAdminRoles``: no authUser call; ``type`` defaults to ``managed``)."""
    roles = w.client(None).get("/api/v1/admin/roles")
    assert roles.status_code == 200
    by_name = {r["name"]: r for r in roles.json()}
    assert by_name["Administrateur Plateforme"]["permissions"] == "3"
    assert by_name["Tout le monde"] == {**by_name["Tout le monde"], "type": "global", "permissions": "25608"}
    assert [r["position"] for r in roles.json()] == sorted(r["position"] for r in roles.json())
    admin = w.state.add_user("alice@test.com", admin=True)
    matched = w.client(None).get("/api/v1/users/matching", params={"letters": "alice@"}).json()
    assert matched[0]["adminRoleIds"] == [by_name["Administrateur Plateforme"]["id"]] == admin.admin_role_ids


def test_user_tokens_list_is_for_humans_and_never_shows_a_value(w: World) -> None:
    """§1.3 / §1.5: ``GET /api/v1/user/tokens`` lists the caller's tokens with their owner."""
    tokens = w.client(w.claire_pat).get("/api/v1/user/tokens").json()
    assert [t["owner"]["email"] for t in tokens] == [w.claire.email]
    assert w.claire_pat not in str(tokens) and tokens[0]["expirationDate"] and tokens[0]["lastUse"]
    assert w.client(w.admin_token).get("/api/v1/user/tokens").status_code == 403


def test_admin_logs_have_per_plugin_results(w: World) -> None:
    """§5 full log (admin, ``clean=false``): ``results.<plugin>.status``."""
    pid = w.project(w.claire_pat)["id"]
    params = {"offset": 0, "limit": 1, "projectId": pid, "clean": "false"}
    log = w.client(w.admin_token).get("/api/v1/logs", params=params).json()["logs"][0]
    assert log["data"]["results"]["vault"]["status"] == {"result": "OK", "message": "Up to date"}
    assert log["projectId"] == pid
    missing = w.client(w.claire_pat).get("/api/v1/logs")
    assert missing.status_code == 400 and "queryParameterErrors" in missing.json()


def test_a_plugin_hook_provisions_and_its_exception_is_the_plugin_failure(w: World) -> None:
    """§3.1 step 2: each listener runs on ``project.upsert``; hooks stand for the other emulators."""
    seen: list[str] = []

    def gitlab(event: Any) -> str:
        seen.append(f"{event.event} {event.project.slug}")
        return "group created"

    def harbor(event: Any) -> str:
        raise RuntimeError("harbor refused")

    w.state.plugins["gitlab"] = gitlab
    w.state.plugins["harbor"] = harbor
    pid = w.project(w.claire_pat)["id"]
    assert seen == ["project.upsert betaapp"]
    assert w.state.projects[pid].status == "failed"
    assert w.state.logs[-1].data["results"]["harbor"]["status"] == {"result": "KO", "message": "harbor refused"}


def test_tokens_expire_relative_to_now(w: World) -> None:
    raw = w.state.add_pat(w.claire, "soon", expires_in=timedelta(seconds=-1))
    assert w.client(raw).get("/api/v1/projects").json()["message"].startswith("Token expired")


def test_environment_quotas_of_cluster_and_project_budget(w: World) -> None:
    """§2.6 quotas (``environment-validation.service.ts``): cluster capacity; the project's
    ``hprod*`` budget for non-prod stages unless ``limitless``; cpu = memory = 0 = no limit."""
    claire = w.client(w.claire_pat)
    budgets = {**BUDGETS, "hprodCpu": 2, "hprodGpu": 0, "hprodMemory": 4}
    pid = claire.post("/api/v1/projects", json={"name": "alpha", "limitless": False, **budgets}).json()["id"]
    dev = w.state.stages[0]["id"]
    prod = next(s["id"] for s in w.state.stages if s["name"] == "prod")
    cluster = w.state.clusters[0]["id"]
    path = f"/api/v2/projects/{pid}/environments"
    body = {"name": "dev", "stageId": dev, "clusterId": cluster, "cpu": 2, "gpu": 0, "memory": 4, "autosync": True}
    assert claire.post(path, json=body).status_code == 201
    over = claire.post(path, json={**body, "name": "int", "cpu": 1, "gpu": 1, "memory": 0})
    assert over.status_code == 400
    assert over.json()["message"] == (
        "Le cluster ne dispose pas de suffisamment de ressources : GPU.\n"
        "Le projet ne dispose pas de suffisamment de ressources : CPU, GPU."
    )
    assert claire.post(path, json={**body, "name": "prod", "stageId": prod, "cpu": 50}).status_code == 201  # prod* = 0
    env_id = claire.get(path).json()[0]["id"]
    bigger = claire.put(f"{path}/{env_id}", json={"cpu": 1, "gpu": 0, "memory": 1, "autosync": False})
    assert bigger.status_code == 400  # its own current use counts (the sum covers every environment)
    assert (
        claire.put(f"{path}/{env_id}", json={"cpu": 0, "gpu": 0, "memory": 0, "autosync": False}).json()["autosync"]
        is False
    )


def test_deployments_take_a_short_name_and_a_source_and_hold_their_environment_and_repository(w: World) -> None:
    """§2.8 (schemas/deployment.ts): name ``^[a-z0-9]+$`` 2–11, ≥ 1 source of type git|oci; the
    list carries the environment and each source's repository; an environment or a repository a
    deployment uses cannot be deleted (no cascade in prisma/schema/project.prisma: a 500)."""
    pid = w.project(w.claire_pat)["id"]
    claire = w.client(w.claire_pat)
    env = {"name": "dev", "stageId": w.state.stages[0]["id"], "clusterId": w.state.clusters[0]["id"]}
    env_id = claire.post(
        f"/api/v2/projects/{pid}/environments", json={**env, "cpu": 1, "gpu": 0, "memory": 2, "autosync": True}
    ).json()["id"]
    repo = {"internalRepoName": "deploy", "externalRepoUrl": "", "isInfra": True, "isPrivate": False}
    repo_id = claire.post(f"/api/v2/projects/{pid}/repositories", json=repo).json()["id"]
    path = f"/api/v1/projects/{pid}/deployments"
    body = {
        "name": "web",
        "projectId": pid,
        "environmentId": env_id,
        "autosync": True,
        "deploymentSources": [{"type": "git", "repositoryId": repo_id, "targetRevision": "main"}],
    }
    for bad, field in (
        ({"name": "Web-1"}, "name"),
        ({"name": "a"}, "name"),
        ({"deploymentSources": []}, "deploymentSources"),
    ):
        refused = claire.post(path, json={**body, **bad})
        assert refused.status_code == 400 and field in refused.json()["fieldErrors"], refused.text
        assert "message" not in refused.json()
    assert (
        claire.post(path, json={**body, "deploymentSources": [{"type": "svn", "repositoryId": repo_id}]}).status_code
        == 400
    )
    created = claire.post(path, json=body)
    assert created.status_code == 201, created.text
    (listed,) = claire.get(path).json()
    assert listed["environment"]["name"] == "dev" and listed["autosync"] is True
    (source,) = listed["deploymentSources"]
    assert source["repository"]["internalRepoName"] == "deploy" and source["targetRevision"] == "main"
    assert claire.delete(f"/api/v2/projects/{pid}/environments/{env_id}").status_code == 500
    assert claire.delete(f"/api/v2/projects/{pid}/repositories/{repo_id}").status_code == 500
    assert claire.delete(f"{path}/{created.json()['id']}").status_code == 204
    assert claire.delete(f"{path}/{created.json()['id']}").status_code == 500  # unknown id (§2.8)
    assert claire.delete(f"/api/v2/projects/{pid}/environments/{env_id}").status_code == 204
    assert w.client(w.thibault_pat).get(path).status_code == 403  # not a member: no ListDeployments
