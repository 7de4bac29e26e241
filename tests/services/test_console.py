"""The console adapter against the console emulator on loopback."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from bot.config import parse_config
from services.console import Console, Token, parse_version
from services.console_errors import (
    ConsoleAuthError,
    ConsoleForbidden,
    ConsoleInvalid,
    ConsoleNotFound,
    ConsoleProvisioningError,
    ConsoleUnavailable,
    error_status,
    to_error,
)
from services.console_models import RepositorySpec
from services.emulators.base import EmulatorServer
from services.emulators.console import create_app
from services.emulators.console_state import State, User
from services.errors import Failure, ServiceError
from services.health import Health, check_all, console_probe, probes, run_probe
from tests.unit.test_config import minimal

PUBLIC = RepositorySpec("front", "https://github.com/dnum-mi/beta-front.git")


@dataclass
class Env:
    state: State
    url: str
    admin_token: str
    claire: User
    claire_pat: str
    thibault: User
    thibault_pat: str


def _env(version: str = "9.24.0", **options: bool) -> Iterator[Env]:
    state = State(version, **options)
    claire = state.add_user("claire.nollet@test.com", "Claire", "NOLLET")
    thibault = state.add_user("thibault.colin@test.com", "Thibault", "COLIN")
    with EmulatorServer(create_app(state), name="console") as server:
        yield Env(
            state,
            server.url,
            state.add_admin_token("cpn-bot"),
            claire,
            state.add_pat(claire),
            thibault,
            state.add_pat(thibault),
        )


@pytest.fixture
def env() -> Iterator[Env]:
    yield from _env()


@pytest.fixture
async def console(env: Env) -> AsyncIterator[Console]:
    client = Console(env.url, env.admin_token, timeout=5.0, reread_delay=0.05)
    yield client
    await client.close()


@pytest.fixture
def claire(console: Console, env: Env) -> Console:
    return console.acting_as(env.claire_pat)


# --- identity, version, health -----------------------------------------------------------------


async def test_version_picks_the_routes_and_is_read_once(console: Console, env: Env) -> None:
    assert await console.version() == (9, 24, 0)
    env.state.version = "9.19.0"
    assert await console.acting_as("x").version() == (9, 24, 0)  # cached on the shared console
    assert parse_version("dev") == parse_version("unknown") == (999, 0, 0)
    assert parse_version("v9.22.1") == (9, 22, 1)


async def test_health_services_and_topology(console: Console, env: Env) -> None:
    env.state.set_health("Vault", "En échec", "Le Vault est scellé")
    health = {h.name: h for h in await console.health_services()}
    assert not health["Vault"].ok and health["Vault"].message == "Le Vault est scellé" and health["Gitlab"].ok
    assert await console.healthz()
    assert [s.name for s in await console.stages()] == ["dev", "staging", "integration", "prod"]
    [zone] = await console.zones()
    [cluster] = await console.clusters()
    assert cluster.zone_id == zone.id and cluster.privacy == "public" and len(cluster.stage_ids) == 4


async def test_a_pat_tells_whose_it_is_and_when_it_expires(claire: Console, env: Env) -> None:
    info = await claire.tokens.current()
    assert info.owner is not None and info.owner.email == env.claire.email
    assert info.status == "active" and info.expiration


async def test_users_are_found_by_exact_email_only(console: Console, env: Env) -> None:
    found = await console.users.by_email("CLAIRE.NOLLET@test.com")
    assert found is not None and found.id == env.claire.id
    assert await console.users.by_email("claire@test.com") is None


async def test_a_persons_admin_roles_come_with_their_masks(console: Console, env: Env) -> None:
    admin = env.state.add_user("alice@test.com", "Alice", admin=True)
    roles = {r.id: r for r in await console.admin_roles()}
    found = await console.users.by_email("alice@test.com")
    assert found is not None and found.admin_role_ids == tuple(admin.admin_role_ids)
    assert [roles[i].permissions for i in found.admin_role_ids] == [3]
    assert {r.permissions for r in roles.values() if r.type == "global"} == {25608}


# --- tokens refused: both backends' shapes -------------------------------------------------------


@pytest.mark.parametrize("route", ["nest", "legacy"])
@pytest.mark.parametrize(("spoil", "reason"), [("expire", "token_expired"), ("revoke", "token_revoked")])
async def test_an_expired_or_revoked_pat_is_a_console_auth_error(
    console: Console, env: Env, route: str, spoil: str, reason: str
) -> None:
    getattr(env.state, spoil)(env.claire_pat)
    claire = console.acting_as(env.claire_pat)
    with pytest.raises(ConsoleAuthError) as err:
        if route == "nest":
            await claire.projects.list()
        else:  # the legacy server answers HTTP 200 {"status": 401, "body": {"message": "Expired"|"Not active"}}
            await claire.tokens.current()
    legacy_reason = {"token_expired": "token_expired", "token_revoked": "token_inactive"}[reason]
    assert err.value.reason == (reason if route == "nest" else legacy_reason)
    assert err.value.failure is Failure.UNAUTHORIZED and err.value.status == 401


async def test_an_unknown_token_on_a_legacy_route_is_not_taken_for_a_success(console: Console) -> None:
    with pytest.raises(ConsoleAuthError) as err:
        await console.acting_as("nope").clusters()
    assert err.value.reason == "not_authenticated"


def test_every_error_shape_of_the_reference_is_parsed() -> None:
    """console-api.md §0.1, row by row."""
    cases = [
        (404, {"message": "Projet introuvable", "error": "Not Found", "statusCode": 404}, "project_not_found"),
        (403, {"message": "Forbidden", "statusCode": 403}, "forbidden"),
        (400, {"formErrors": [], "fieldErrors": {"name": ["trop court"]}}, "invalid"),
        (
            400,
            {"message": "Validation failed (uuid is expected)", "error": "Bad Request", "statusCode": 400},
            "invalid",
        ),
        (500, {"statusCode": 500, "message": "Internal server error"}, "server_error"),
        (403, {"message": "Le projet est verrouillé"}, "locked"),
        (
            400,
            {
                "pathParameterErrors": None,
                "bodyErrors": {"issues": [{"path": ["name"], "message": "x"}], "name": "ZodError"},
            },
            "invalid",
        ),
        (500, {"status": 500, "error": "boom", "stack": "…"}, "server_error"),
        (422, {"message": "Echec des services à la création du projet"}, "provisioning_failed"),
        (500, {"message": "Echec des services à la création de l'environnement"}, "provisioning_failed"),
        (400, {"message": "Le nom du dépôt interne front existe déjà en base pour ce projet"}, "duplicate"),
    ]
    for status, body, reason in cases:
        assert error_status(status, body) == status
        assert to_error(status, body).reason == reason, body
    wrapped = {"status": 401, "body": {"message": "Not active"}}
    assert error_status(200, wrapped) == 401 and to_error(401, wrapped).reason == "token_inactive"
    assert error_status(200, {"status": "created", "body": {}}) is None  # a project's own "status" key
    fields = to_error(400, {"formErrors": [], "fieldErrors": {"name": ["trop court"]}})
    assert isinstance(fields, ConsoleInvalid) and fields.field_errors == {"name": ["trop court"]}


# --- projects -------------------------------------------------------------------------------------


async def test_a_created_project_is_re_read_with_its_per_plugin_results(claire: Console, env: Env) -> None:
    done = await claire.projects.create("betaapp", "Beta")
    assert done.state == "ok" and done.project.slug == "betaapp" and done.project.provisioned
    assert done.project.owner_id == env.claire.id and done.action == "Create Project"
    assert [r.name for r in done.project.roles] == ["Administrateur", "DevOps", "Développeur", "Lecture seule"]


@pytest.mark.parametrize("who", ["admin", "pat"])
async def test_a_failed_provisioning_names_the_failed_plugins(console: Console, env: Env, who: str) -> None:
    env.state.fail_plugin("gitlab", "gitlab injoignable", times=1)
    actor = console if who == "admin" else console.acting_as(env.claire_pat)
    done = await actor.projects.create("betaapp")
    assert done.state == "failed" and done.failed_plugins == ["gitlab"]
    assert next(p for p in done.plugins if p.plugin == "gitlab").message == "gitlab injoignable"
    if who == "admin":  # full logs: every plugin's result
        assert {p.plugin for p in done.plugins if p.ok} >= {"vault", "harbor"}
    replayed = await actor.projects.replay(done.project.id)
    assert replayed.state == "ok" and replayed.action == "Replay hooks for Project"


async def test_a_create_that_times_out_is_found_by_name_and_never_re_posted(env: Env) -> None:
    env.state.provision_delay = 0.6
    slow = Console(env.url, env.admin_token, timeout=5.0, write_timeout=0.2, reread_delay=0.05).acting_as(
        env.claire_pat
    )
    try:
        done = await slow.projects.create("betaapp")
    finally:
        await slow._root.close()
    assert [p.slug for p in env.state.projects_named("betaapp")] == ["betaapp"]  # no betaapp-1
    assert [r for r in env.state.requests if r[:2] == ("POST", "/api/v1/projects")] == [
        ("POST", "/api/v1/projects", "pat")
    ]
    assert done.project.slug == "betaapp" and done.state in ("pending", "ok")


async def test_a_gateway_error_on_create_is_unconfirmed_not_retried(claire: Console, env: Env) -> None:
    env.state.faults.fail("POST /api/v1/projects", 504, times=2)  # the proxy answers, nothing created
    with pytest.raises(ConsoleUnavailable) as err:
        await claire.projects.create("betaapp")
    assert err.value.reason == "create_unconfirmed"
    assert env.state.projects_named("betaapp") == []
    assert len(env.state.faults.rules) == 1  # one POST reached the proxy, the second fault is unused


async def test_a_create_beside_a_homonym_finds_its_own_name_1(claire: Console, env: Env) -> None:
    first = await claire.projects.create("betaapp")
    env.state.provision_delay = 0.6
    claire.write_timeout = 0.2
    second = await claire.projects.create("betaapp")
    assert (first.project.slug, second.project.slug) == ("betaapp", "betaapp-1")
    found = await claire.projects.by_slug("betaapp-1")
    assert found is not None and found.id == second.project.id


async def test_legacy_422_on_create_reads_the_failed_project() -> None:
    for env in _env("9.22.0"):
        env.state.fail_plugin("vault")
        env.state.fail_plugin("gitlab")
        with_console = Console(env.url, env.admin_token, reread_delay=0.01)
        try:
            done = await with_console.acting_as(env.claire_pat).projects.create("alpha")
        finally:
            await with_console.close()
        assert done.state == "failed" and sorted(done.failed_plugins) == ["gitlab", "vault"]
        assert len(env.state.projects_named("alpha")) == 1


async def test_a_locked_project_refuses_writes_with_reason_locked(console: Console, claire: Console, env: Env) -> None:
    project = (await claire.projects.create("betaapp")).project
    assert (await console.projects.update(project.id, locked=True)).locked
    with pytest.raises(ConsoleForbidden) as err:
        await claire.members.add(project.id, env.thibault.email)
    assert err.value.reason == "locked" and err.value.failure is Failure.FORBIDDEN
    with pytest.raises(ConsoleForbidden) as err:
        await claire.projects.replay(project.id)
    assert err.value.reason == "locked"
    assert not (await console.projects.update(project.id, locked=False)).locked


async def test_an_archived_project_is_not_found_on_read_and_refused_on_write(claire: Console) -> None:
    project = (await claire.projects.create("betaapp")).project
    await claire.projects.delete(project.id)
    with pytest.raises(ConsoleNotFound) as missing:
        await claire.projects.get(project.id)
    assert missing.value.reason == "project_not_found"
    with pytest.raises(ConsoleForbidden) as refused:
        await claire.projects.replay(project.id)
    assert refused.value.reason == "archived"
    assert await claire.projects.list() == []  # archived ones are filtered out


async def test_project_listing_secrets_and_services(console: Console, claire: Console, env: Env) -> None:
    project = (await claire.projects.create("betaapp")).project
    assert [p.slug for p in await console.projects.list(filter="all")] == ["betaapp"]
    assert await console.acting_as(env.thibault_pat).projects.list() == []
    secrets = await claire.projects.secrets(project.id)
    assert secrets.groups == ["GITLAB", "VAULT"] and "glpat" not in repr(secrets)
    assert {s["name"] for s in await claire.projects.services(project.id)} >= {"gitlab", "vault"}
    with pytest.raises(ConsoleForbidden) as err:
        await console.acting_as(env.thibault_pat).projects.get(project.id)
    assert err.value.reason == "forbidden"


# --- members and roles ------------------------------------------------------------------------------


async def test_members_add_role_and_remove(claire: Console, env: Env) -> None:
    project = (await claire.projects.create("betaapp")).project
    [member] = await claire.members.add(project.id, env.thibault.email)
    assert member.user_id == env.thibault.id and member.role_ids == ()
    devops = next(r for r in await claire.roles.list(project.id) if r.name == "DevOps")
    assert devops.permissions == 984 and devops.system
    [member] = await claire.members.set_roles(project.id, env.thibault.id, [devops.id])
    assert member.role_ids == (devops.id,)
    assert [m.email for m in await claire.members.list(project.id)] == [env.thibault.email]
    assert await claire.members.remove(project.id, env.thibault.id) == []
    with pytest.raises(ConsoleNotFound) as err:
        await claire.members.add(project.id, "nobody@test.com")
    assert err.value.reason == "user_not_found"


# --- repositories: v2 with a PAT, v1 with the admin token ------------------------------------------


async def test_repository_writes_with_a_pat_go_through_v2(claire: Console, env: Env) -> None:
    project = (await claire.projects.create("betaapp")).project
    repo = await claire.repositories.create(project.id, PUBLIC)
    assert repo.internal_name == "front" and repo.deploy_revision == "HEAD"
    await claire.repositories.sync(project.id, repo.id, branch="main")
    assert env.state.syncs[-1]["branch"] == "main" and env.state.syncs[-1]["by"] == env.claire.email
    updated = await claire.repositories.update(project.id, repo.id, deployPath="helm")
    assert updated.deploy_path == "helm"
    await claire.repositories.delete(project.id, repo.id)
    assert await claire.repositories.list(project.id) == []
    paths = {path for method, path, kind in env.state.requests if "repositories" in path}
    assert all(path.startswith("/api/v2/") for path in paths)


async def test_repository_writes_with_the_admin_token_fall_back_to_v1(console: Console, env: Env) -> None:
    project = (await console.acting_as(env.claire_pat).projects.create("betaapp")).project
    repo = await console.repositories.create(project.id, PUBLIC)
    await console.repositories.sync(project.id, repo.id)
    await console.repositories.update(project.id, repo.id, deployRevision="v1")
    assert [r.internal_name for r in await console.repositories.list(project.id)] == ["front"]
    await console.repositories.delete(project.id, repo.id)
    writes = [(m, p) for m, p, kind in env.state.requests if kind == "admin" and "repositories" in p and m != "GET"]
    assert writes and all(p.startswith("/api/v1/repositories") for _, p in writes)
    assert env.state.syncs[-1]["repository"] == "front"


async def test_without_v1_routes_an_admin_write_asks_for_a_pat() -> None:
    for env in _env(v1_repositories=False):
        console = Console(env.url, env.admin_token)
        try:
            project = (await console.acting_as(env.claire_pat).projects.create("betaapp")).project
            with pytest.raises(ConsoleForbidden) as err:
                await console.repositories.create(project.id, PUBLIC)
            assert err.value.reason == "pat_required"
        finally:
            await console.close()


async def test_before_9_24_repositories_and_before_9_20_environments_use_v1() -> None:
    for env in _env("9.19.0"):
        console = Console(env.url, env.admin_token)
        try:
            claire = console.acting_as(env.claire_pat)
            project = (await claire.projects.create("betaapp")).project
            repo = await claire.repositories.create(project.id, PUBLIC)
            assert [r.id for r in await claire.repositories.list(project.id)] == [repo.id]
            stage, cluster = env.state.stages[0]["id"], env.state.clusters[0]["id"]
            created = await claire.environments.create(project.id, "dev", stage, cluster, cpu=1, memory=2)
            assert [e.name for e in await claire.environments.list(project.id)] == ["dev"]
            await claire.environments.delete(project.id, created.id)
            assert not any(path.startswith("/api/v2/") for _, path, _ in env.state.requests)
        finally:
            await console.close()


async def test_repository_refusals_keep_their_reason(claire: Console) -> None:
    project = (await claire.projects.create("betaapp")).project
    await claire.repositories.create(project.id, PUBLIC)
    with pytest.raises(ConsoleInvalid) as dup:
        await claire.repositories.create(project.id, PUBLIC)
    assert dup.value.reason == "duplicate"
    with pytest.raises(ConsoleInvalid) as bad:
        await claire.repositories.create(project.id, RepositorySpec("secret", PUBLIC.external_url, is_private=True))
    assert "externalUserName" in bad.value.field_errors


async def test_a_failed_repository_provisioning_is_a_provisioning_error(claire: Console, env: Env) -> None:
    project = (await claire.projects.create("betaapp")).project
    env.state.fail_plugin("gitlab", times=1)
    with pytest.raises(ConsoleProvisioningError) as err:
        await claire.repositories.create(project.id, PUBLIC)
    assert err.value.reason == "provisioning_failed" and err.value.status == 422


# --- environments, deployments ------------------------------------------------------------------------


async def test_environments_v2_and_deployments(claire: Console, env: Env) -> None:
    project = (await claire.projects.create("betaapp")).project
    stage, cluster = env.state.stages[0]["id"], env.state.clusters[0]["id"]
    created = await claire.environments.create(project.id, "dev", stage, cluster, cpu=1, memory=2)
    [listed] = await claire.environments.list(project.id)
    assert listed.id == created.id and listed.stage_name == "dev"
    with pytest.raises(ConsoleInvalid) as err:
        await claire.environments.create(project.id, "dev", stage, cluster)
    assert err.value.reason == "duplicate"
    assert await claire.deployments.list(project.id) == []
    updated = await claire.environments.update(project.id, created.id, cpu=2, gpu=0, memory=4, autosync=False)
    assert (updated.cpu, updated.autosync) == (2, False)
    await claire.environments.delete(project.id, created.id)
    assert await claire.environments.list(project.id) == []


# --- transport failures and secrets -----------------------------------------------------------------


async def test_a_console_down_is_unavailable_within_the_timeout(console: Console, env: Env) -> None:
    env.state.faults.down = True
    with pytest.raises(ConsoleUnavailable) as err:
        await console.projects.list()
    assert err.value.transient and err.value.status == 503
    env.state.faults.clear()
    env.state.faults.latency = 1.0
    quick = Console(env.url, env.admin_token, timeout=0.1)
    try:
        with pytest.raises(ConsoleUnavailable) as slow:
            await quick.stages()
        assert slow.value.reason == "timeout"
    finally:
        await quick.close()
        env.state.faults.clear()


async def test_a_pat_never_shows_in_reprs_exceptions_or_logs(
    console: Console, env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    claire = console.acting_as(env.claire_pat)
    assert env.claire_pat not in repr(claire) and env.claire_pat not in repr(claire.token)
    assert env.admin_token not in repr(console) and env.admin_token not in str(Token(env.admin_token, "admin"))
    project = (await claire.projects.create("betaapp")).project
    private = RepositorySpec("secret", PUBLIC.external_url, is_private=True, external_token="ghp-external-secret")
    assert "ghp-external-secret" not in repr(private)
    await claire.repositories.create(project.id, private)
    assert "ghp-external-secret" not in str(env.state.repositories) + caplog.text  # Vault only, never the DB
    env.state.revoke(env.claire_pat)
    with pytest.raises(ServiceError) as err:
        await claire.projects.list()
    text = " ".join([str(err.value), repr(err.value), err.value.detail, getattr(err.value, "console_message", "")])
    assert env.claire_pat not in text and err.value.__cause__ is None
    for secret in (env.claire_pat, env.admin_token):
        assert secret not in caplog.text
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(claire.token)


# --- check-config's probe ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["9.24.0", "9.22.0"])  # NestJS 401, legacy HTTP 200 {"status": 401}
async def test_the_check_config_probe_reads_version_health_and_the_admin_token(version: str) -> None:
    for env in _env(version):
        good = await run_probe("Console", console_probe(env.url, env.admin_token), timeout=2.0)
        assert good.health is Health.OK and good.detail == f"version {version}"
        bad = await run_probe("Console", console_probe(env.url, "not-a-token"), timeout=2.0)
        assert bad.health is Health.FAILING and "admin token refused (401 not_authenticated)" in bad.detail
        weak = env.state.add_admin_token("weak", permissions=1)  # LIST only: filter=all refused
        refused = await run_probe("Console", console_probe(env.url, weak), timeout=2.0)
        assert refused.health is Health.FAILING and "403 admin_only" in refused.detail
        env.state.set_health("Vault", "En échec", "Le Vault est scellé")
        degraded = await run_probe("Console", console_probe(env.url, env.admin_token), timeout=2.0)
        assert degraded.health is Health.DEGRADED and "Vault En échec" in degraded.detail
        assert env.admin_token not in bad.detail + refused.detail + degraded.detail


async def test_check_config_reaches_the_configured_console(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CPN_TEST_KEY", "k" * 32)
    monkeypatch.setenv("CONSOLE_TOKEN", env.admin_token)
    config = parse_config(minimal(console={"url": env.url, "token": "env:CONSOLE_TOKEN"}))
    checks = {c.service: c for c in await check_all(config, timeout=2.0)}
    assert checks["Console"].ok and checks["Console"].detail == "version 9.24.0"
    assert env.admin_token not in checks["Console"].line()
    assert "Console" not in probes(parse_config(minimal()))
