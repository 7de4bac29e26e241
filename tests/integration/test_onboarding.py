"""Onboarding from chat: a project provisioned on every service, checked with the services' own clients."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import gitlab
import pytest

from bot.sandbox.world import Timings, World
from tests.conftest import CONTROLS, vault_world_options, wait_for
from tests.support import platform as svc
from tests.support.mattermost import User, channel_posts, text_of

PRIVATE_TOKEN = "ghp_privateRepoToken0123456789abcdef"
ROOT = "forge/projects"


def cards(world: World, channel: str = "equipe-alpha") -> list[dict[str, Any]]:
    found = []
    for post in channel_posts(world, channel):
        for attachment in (post.get("props") or {}).get("attachments") or []:
            found.append(attachment)
    return found


def last_card(world: World, title_start: str) -> dict[str, Any]:
    return [c for c in cards(world) if c.get("title", "").startswith(title_start)][-1]


def onboard(world: World) -> None:
    """The tour of the issue: a project, a member, two repositories (one private), two environments."""
    bob = User(world, "bob")
    assert (
        "Création du projet `alpha` lancée"
        in bob.run("/cpn project create alpha --description 'Gestion des titres'")["text"]
    )
    world.wait_idle(30)
    assert "carol" in bob.run("/cpn member add alpha @carol --role devops")["text"]
    bob.run("/cpn repo add alpha api --url https://github.com/ministere/api.git")
    assert (
        "fenêtre"
        in bob.run("/cpn repo add alpha deploy --url https://gitlab.com/ministere/deploy.git --private --infra")["text"]
    )
    svc.submit_dialog(world, "bob", {"username": "deployer", "token": PRIVATE_TOKEN})
    bob.run("/cpn env add alpha dev --stage dev --cpu 2 --memory 4")
    bob.run("/cpn env add alpha prod --stage prod")
    world.wait_idle(30)


# GitLab Premium (group webhooks) and Free (404 on /groups/:id/hooks: a hook on every repository).
TIERS = ("premium", "free")
ONBOARDINGS = [
    pytest.param(("emulator", "premium", "direct"), id="emulator-premium"),
    pytest.param(("openbao", "premium", "direct"), id="openbao-premium", marks=pytest.mark.real_server),
    pytest.param(("emulator", "free", "direct"), id="emulator-free"),
    pytest.param(("emulator", "premium", "console"), id="console"),
]


@pytest.fixture(scope="module", params=ONBOARDINGS)
def onboarded(request: pytest.FixtureRequest) -> Iterator[World]:
    """One full onboarding per Vault backend (emulator | openbao), GitLab tier and control mode, shared
    by the checks."""
    backend, tier, control = request.param
    options = vault_world_options(request, backend)
    world = World.create(timings=Timings.fast(), gitlab_tier=tier, control=control, **options).start()
    if options:
        # The real server is shared by the session: the next test to claim it stops this world first.
        request.getfixturevalue("openbao_server").hold(world.stop)
    try:
        onboard(world)
        yield world
    finally:
        world.stop()


def test_the_checklist_ends_ready_and_the_project_page_shows_everything(onboarded: World) -> None:
    card = last_card(onboarded, "Création du projet alpha")
    assert card["text"].count("✅") == 7  # six services and the final status
    assert "Projet prêt" in card["text"]
    page = text_of(User(onboarded, "carol").run("/cpn project show alpha"))
    for expected in (
        "succès",
        "@bob (propriétaire)",
        "@carol (devops)",
        "`api`",
        "`deploy`",
        "🔒",
        "`dev` (dev)",
        "`prod` (prod)",
        "[ouvrir](",
        "Webhooks GitLab",
        "sur le groupe" if onboarded.gitlab_tier == "premium" else "sur chaque dépôt",
        "`api` ← `https://github.com/ministere/api.git`",  # copyable: no word joiner inside the URL
    ):
        assert expected in page
    listing = User(onboarded, "carol").run("/cpn repo list alpha")["text"]
    assert "`https://github.com/ministere/api.git`" in listing and "\u2060" not in listing


def direct_layout(world: World) -> None:
    """The services' layout the bot provisions itself; in console mode it is the console's plugins'
    (tests/emulators/test_console_plugins.py), and only the bot's own webhooks are checked here."""
    if world.control != "direct":
        pytest.skip("provisioned by the console's plugins")


def test_gitlab_has_the_group_the_mirror_the_repositories_and_the_token(onboarded: World) -> None:
    direct_layout(onboarded)
    gl = svc.gitlab_client(onboarded)
    group = gl.groups.get(f"{ROOT}/alpha")
    projects = {p.path: gl.projects.get(p.id) for p in group.projects.list(get_all=True)}
    assert set(projects) == {"mirror", "api", "deploy"}
    assert projects["api"].ci_config_path == ".gitlab-ci-dso.yml"
    mirror = projects["mirror"]
    ci = mirror.files.get(".gitlab-ci.yml", ref="main").decode().decode()
    for variable in ("PROJECT_NAME", "GIT_BRANCH_DEPLOY", "SYNC_ALL"):
        assert variable in ci
    assert "Dépôt interne à synchroniser" in ci  # what GitLab's "Run pipeline" form shows, in French
    titles = [c.title for c in mirror.commits.list(ref_name="main", get_all=True)]
    assert "cpn-bot : .gitlab-ci.yml du dépôt mirror, géré par le bot" in titles, titles
    assert [t.description for t in mirror.triggers.list(get_all=True)] == ["mirroring-from-external-repo"]
    assert [t.name for t in group.access_tokens.list(get_all=True) if t.active] == ["alpha-bot"]


def test_the_bots_gitlab_webhooks_and_the_members_are_on_the_group(onboarded: World) -> None:
    """In both modes: the bot wires its own webhook with its own token; members follow their roles."""
    gl = svc.gitlab_client(onboarded)
    group = gl.groups.get(f"{ROOT}/alpha")
    projects = {p.path: gl.projects.get(p.id) for p in group.projects.list(get_all=True)}
    url = f"{onboarded.bot_url}/hooks/gitlab?project=alpha"
    hooks: list[Any]
    if onboarded.gitlab_tier == "premium":
        hooks = list(group.hooks.list(get_all=True))
        assert all(p.hooks.list(get_all=True) == [] for p in projects.values())
    else:
        with pytest.raises(gitlab.exceptions.GitlabListError) as free:
            group.hooks.list(get_all=True)
        assert free.value.response_code == 404
        hooks = [h for p in projects.values() for h in p.hooks.list(get_all=True)]
        assert len(hooks) == len(projects)  # one on every repository, mirror included
    assert {h.url for h in hooks} == {url}
    assert all(h.pipeline_events and h.job_events and h.push_events for h in hooks)
    levels = {gl.users.get(m.id).username: m.access_level for m in group.members.list(get_all=True)}
    assert levels["bob"] == gitlab.const.AccessLevel.OWNER
    # The console's GitLab plugin makes its DevOps role Maintainer (console_plugins MAINTAINER_SUFFIXES).
    levels_of = {"direct": gitlab.const.AccessLevel.DEVELOPER, "console": gitlab.const.AccessLevel.MAINTAINER}
    devops = levels_of[onboarded.control]
    assert levels["carol"] == devops


def test_the_bots_sonarqube_and_registry_webhooks(onboarded: World) -> None:
    """The quality-gate webhook on each repository's Sonar project (the console's keys in console
    mode), and the registry's scan webhook when it has one (Harbor)."""
    with svc.sonar(onboarded) as sonar:
        keys = {c["key"] for c in sonar.get("/api/projects/search", params={"q": "alpha"}).json()["components"]}
        assert len(keys) == 2
        for key in keys:
            hooks = sonar.get("/api/webhooks/list", params={"project": key}).json()["webhooks"]
            assert [(h["url"], h["hasSecret"]) for h in hooks] == [(f"{onboarded.bot_url}/hooks/sonarqube", True)]
    if onboarded.registry_kind == "harbor":
        project = onboarded.states["harbor"].project("alpha")
        assert [p.targets[0]["address"] for p in project.webhooks] == [f"{onboarded.bot_url}/hooks/harbor"]


def test_vault_holds_every_secret_where_the_platform_expects_it(onboarded: World) -> None:
    direct_layout(onboarded)
    gl = svc.gitlab_client(onboarded)
    mirror = gl.projects.get(f"{ROOT}/alpha/mirror")
    base = f"{ROOT}/alpha"
    gitlab_secret = svc.vault_secret(onboarded, f"{base}/GITLAB")
    assert gitlab_secret is not None
    assert gitlab_secret["GIT_MIRROR_PROJECT_ID"] == str(mirror.id) and gitlab_secret["GIT_MIRROR_TOKEN"]
    assert svc.vault_secret(onboarded, f"{base}/tech/GITLAB_MIRROR")["MIRROR_USER"] == "alpha-bot"  # type: ignore[index]
    for robot in ("ro-robot", "rw-robot"):
        assert set(svc.vault_secret(onboarded, f"{base}/REGISTRY/{robot}") or {}) == {
            "DOCKER_CONFIG",
            "HOST",
            "TOKEN",
            "USERNAME",
        }
    assert svc.vault_secret(onboarded, f"{base}/NEXUS")["NEXUS_USERNAME"] == "alpha"  # type: ignore[index]
    assert svc.vault_secret(onboarded, f"{base}/SONAR")["SONAR_TOKEN"]  # type: ignore[index]
    deploy = svc.vault_secret(onboarded, f"{base}/deploy-mirror") or {}
    assert deploy["GIT_INPUT_URL"] == "gitlab.com/ministere/deploy.git"
    assert deploy["GIT_INPUT_USER"] == "deployer" and deploy["GIT_INPUT_PASSWORD"] == PRIVATE_TOKEN
    assert deploy["GIT_OUTPUT_USER"] == "alpha-bot" and deploy["GIT_OUTPUT_PASSWORD"]
    api = svc.vault_secret(onboarded, f"{base}/api-mirror") or {}
    assert api["GIT_INPUT_URL"] == "github.com/ministere/api.git" and "GIT_INPUT_PASSWORD" not in api
    client = svc.vault_client(onboarded)
    assert "alpha/" in client.sys.list_mounted_secrets_engines()["data"]
    assert {"app--alpha--admin", "tech--alpha--ro"} <= set(client.sys.list_acl_policies()["data"]["keys"])


def test_quay_nexus_sonarqube_and_argocd(onboarded: World) -> None:
    direct_layout(onboarded)
    with svc.quay(onboarded) as quay:
        assert quay.get("/api/v1/organization/alpha").status_code == 200
        robots = {r["name"] for r in quay.get("/api/v1/organization/alpha/robots").json()["robots"]}
        assert robots == {"alpha+ro", "alpha+rw"}
    with svc.nexus(onboarded) as nexus:
        names = {r["name"] for r in nexus.get("/service/rest/v1/repositories").json()}
        assert {
            "alpha-repository-release",
            "alpha-repository-snapshot",
            "alpha-repository-group",
            "alpha-npm",
            "alpha-npm-group",
        } <= names
        assert [
            u["userId"] for u in nexus.get("/service/rest/v1/security/users", params={"userId": "alpha"}).json()
        ] == ["alpha"]
    with svc.sonar(onboarded) as sonar:
        keys = {c["key"] for c in sonar.get("/api/projects/search", params={"q": "alpha"}).json()["components"]}
        assert keys == {"alpha-api", "alpha-deploy"}
        hooks = sonar.get("/api/webhooks/list", params={"project": "alpha-api"}).json()["webhooks"]
        assert [(h["url"], h["hasSecret"]) for h in hooks] == [(f"{onboarded.bot_url}/hooks/sonarqube", True)]
    with svc.argocd(onboarded) as argocd:
        project = argocd.get("/api/v1/projects/alpha").json()
        assert all(
            repo.startswith(f"{onboarded.servers['gitlab'].url}/{ROOT}/alpha/")
            for repo in project["spec"]["sourceRepos"]
        )
        apps = {
            a["metadata"]["name"]: a
            for a in argocd.get("/api/v1/applications", params={"projects": "alpha"}).json()["items"]
        }
        assert set(apps) == {"alpha-dev-deploy", "alpha-prod-deploy"}  # infra repositories only
        assert apps["alpha-prod-deploy"]["spec"]["destination"]["namespace"] == "alpha-prod"


def test_replay_twice_changes_nothing(make_world: Callable[..., World], control: str) -> None:
    world = make_world(control=control)
    onboard(world)
    bob = User(world, "bob")
    for _ in range(2):
        bob.run("/cpn project replay alpha")
        world.wait_idle(30)
        card = last_card(world, "Reprovisionnement du projet alpha")
        assert "Rien à réparer" in card["text"], card["text"]


def test_replay_repairs_drift_and_says_what_it_changed(
    make_world: Callable[..., World], vault_options: dict[str, Any]
) -> None:
    world = make_world(**vault_options)
    User(world, "bob").run("/cpn project create alpha")
    world.wait_idle(30)
    gl = svc.gitlab_client(world)
    gl.projects.get(f"{ROOT}/alpha/mirror").files.delete(file_path="mirror.sh", branch="main", commit_message="oops")
    svc.vault_client(world).secrets.kv.v2.delete_metadata_and_all_versions(
        path=f"{ROOT}/alpha/NEXUS", mount_point="forge-dso"
    )
    User(world, "bob").run("/cpn project replay alpha")
    world.wait_idle(30)
    text = last_card(world, "Reprovisionnement du projet alpha")["text"]
    assert "Réparations effectuées" in text and "mirror.sh" in text and "NEXUS" in text
    # each repair said in French, as the rest of the card (bot/render/changes.py)
    assert "fichier mirror.sh créé dans le projet" in text, text
    assert "/NEXUS créé" in text, text
    assert not re.search(r"\b(created|updated|fixed)\b", text), text
    assert svc.vault_secret(world, f"{ROOT}/alpha/NEXUS")


def test_delete_needs_the_owner_and_leaves_nothing_behind(
    make_world: Callable[..., World], vault_options: dict[str, Any]
) -> None:
    world = make_world(**vault_options)
    onboard(world)
    carol = User(world, "carol")
    assert "réservé" in carol.run("/cpn project delete alpha")["text"]
    User(world, "bob").run("/cpn project delete alpha")
    svc.press_ephemeral(world, "bob", "Confirmer")
    world.wait_idle(30)
    assert "archivé" in last_card(world, "Suppression du projet alpha")["text"]
    gl = svc.gitlab_client(world)
    with pytest.raises(gitlab.exceptions.GitlabGetError):
        gl.groups.get(f"{ROOT}/alpha")
    assert (
        svc.vault_client(world).secrets.kv.v2.list_secrets(path=ROOT, mount_point="forge-dso")["data"]["keys"] == []
        if _has_keys(world)
        else True
    )
    assert "alpha/" not in svc.vault_client(world).sys.list_mounted_secrets_engines()["data"]
    with svc.quay(world) as quay:
        assert quay.get("/api/v1/organization/alpha").status_code == 404
    with svc.nexus(world) as nexus:
        assert not [r for r in nexus.get("/service/rest/v1/repositories").json() if r["name"].startswith("alpha")]
        assert nexus.get("/service/rest/v1/security/users", params={"userId": "alpha"}).json() == []
    with svc.sonar(world) as sonar:
        assert sonar.get("/api/projects/search", params={"q": "alpha"}).json()["components"] == []
    with svc.argocd(world) as argocd:
        assert argocd.get("/api/v1/applications", params={"projects": "alpha"}).json()["items"] in ([], None)
        assert argocd.get("/api/v1/projects/alpha").status_code == 404
    assert "Aucun projet" in User(world, "bob").run("/cpn project list")["text"]
    # The name can be used again, for a new project.
    assert "lancée" in User(world, "bob").run("/cpn project create alpha")["text"]


def _bot_hooks(world: World) -> dict[str, str]:
    """Where the bot's GitLab webhooks are: repository path (or group path) → "project"/"group"."""
    gl = world.states["gitlab"]
    with gl.lock:
        found = {}
        for hook in gl.hooks.values():
            if hook.project_id is not None and hook.project_id in gl.projects:
                found[gl.project_path(gl.projects[hook.project_id])] = "project"
            elif hook.group_id is not None and hook.group_id in gl.namespaces:
                found[gl.full_path(gl.namespaces[hook.group_id])] = "group"
        return found


@pytest.mark.parametrize("tier", TIERS)
def test_a_repository_added_later_gets_the_hook_a_pipeline_reaches_the_channel_and_removal_takes_it_away(
    make_world: Callable[..., World], tier: str, control: str
) -> None:
    world = make_world(gitlab_tier=tier, control=control)
    bob = User(world, "bob")
    bob.run("/cpn project create alpha")
    world.wait_idle(30)
    bob.run("/cpn repo add alpha api --url https://github.com/ministere/api.git")
    final = "✅ test → ✅ sonar → ✅ build → ✅ trivy → ✅ push"
    wait_for(lambda: any(final in str(card) for card in cards(world)), timeout=30, what="the first build's card")
    world.wait_idle()
    expected = (
        {f"{ROOT}/alpha": "group"}
        if tier == "premium"
        else {f"{ROOT}/alpha/mirror": "project", f"{ROOT}/alpha/api": "project"}
        # The console's GitLab plugin also makes infra-apps: every repository of the group gets the hook.
        | ({f"{ROOT}/alpha/infra-apps": "project"} if control == "console" else {})
    )
    assert _bot_hooks(world) == expected
    # The card came through the webhook of the tier (not the polling fallback).
    scope = "group" if tier == "premium" else "project"
    assert any(
        d["scope"] == scope and 200 <= (d["status"] or 0) < 300 and d["event"] == "Pipeline Hook"
        for d in world.states["gitlab"].deliveries()
    )

    bob.run("/cpn repo remove alpha api")
    svc.press_ephemeral(world, "bob", "Confirmer")
    world.wait_idle(30)
    assert _bot_hooks(world) == {k: v for k, v in expected.items() if not k.endswith("/api")}
    bob.run("/cpn project delete alpha")
    svc.press_ephemeral(world, "bob", "Confirmer")
    world.wait_idle(30)
    assert _bot_hooks(world) == {}


def test_an_instance_upgraded_to_premium_moves_the_hooks_to_the_group_at_replay(
    make_world: Callable[..., World],
) -> None:
    world = make_world(gitlab_tier="free")
    bob = User(world, "bob")
    bob.run("/cpn project create alpha")
    world.wait_idle(30)
    assert _bot_hooks(world) == {f"{ROOT}/alpha/mirror": "project"}
    assert "sur chaque dépôt" in text_of(bob.run("/cpn project show alpha"))
    world.states["gitlab"].tier = "premium"
    bob.run("/cpn project replay alpha")
    world.wait_idle(30)
    # Both kinds at once would deliver every event twice.
    assert _bot_hooks(world) == {f"{ROOT}/alpha": "group"}
    assert "sur le groupe" in text_of(bob.run("/cpn project show alpha"))


def _has_keys(world: World) -> bool:
    import hvac

    try:
        svc.vault_client(world).secrets.kv.v2.list_secrets(path=ROOT, mount_point="forge-dso")
    except hvac.exceptions.InvalidPath:
        return False
    return True


def test_a_service_down_in_the_middle_is_named_and_replay_completes(make_world: Callable[..., World]) -> None:
    world = make_world()
    world.states["argocd"].faults.down = True
    world.states["sonarqube"].faults.down = True
    User(world, "bob").run("/cpn project create alpha")
    world.wait_idle(30)
    text = last_card(world, "Création du projet alpha")["text"]
    assert "❌ **ArgoCD** — ArgoCD ne répond pas" in text
    assert "❌ **SonarQube** — SonarQube ne répond pas" in text
    assert "✅ **GitLab**" in text and "Des opérations ont échoué" in text
    assert "échouées" in User(world, "bob").run("/cpn project list")["text"]
    world.states["argocd"].faults.down = False
    User(world, "bob").run("/cpn project replay alpha")
    world.wait_idle(30)
    assert "partiellement dégradé" in last_card(world, "Reprovisionnement du projet alpha")["text"]  # Sonar: warning
    world.states["sonarqube"].faults.down = False
    User(world, "bob").run("/cpn project replay alpha")
    world.wait_idle(30)
    assert "Projet prêt" in last_card(world, "Reprovisionnement du projet alpha")["text"]


def test_vault_down_fails_every_step_that_needs_it(make_world: Callable[..., World]) -> None:
    world = make_world()
    world.states["vault"].faults.down = True
    User(world, "bob").run("/cpn project create alpha")
    world.wait_idle(30)
    text = last_card(world, "Création du projet alpha")["text"]
    assert "❌ **Vault** — Vault ne répond pas" in text
    assert "❌ **GitLab** — en attente de Vault" in text


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("/cpn project create Alpha", "2 à 20 caractères, lettres minuscules et chiffres"),
        ("/cpn project create a", "2 à 20 caractères"),
        ("/cpn project create mon-projet", "ni tiret"),
        ("/cpn project create abcdefghijklmnopqrstu", "2 à 20"),
        ("/cpn repo add beta mirror", "réservé"),
        ("/cpn repo add beta infra-apps", "réservé"),
        ("/cpn repo add beta -api", "commençant et finissant"),
        ("/cpn repo add beta api --url http://github.com/x/y.git", "https://"),
        ("/cpn repo add beta api --url https://github.com/x/y", ".git"),
        ("/cpn repo add beta api --url https://user:pw@github.com/x/y.git", "aucun identifiant"),
        ("/cpn repo add beta api --url https://127.0.0.1/x/y.git", "adresse interne"),
        ("/cpn repo add beta api --url https://localhost/x/y.git", "adresse interne"),
        ("/cpn repo add beta api --url https://10.1.2.3/x/y.git", "adresse interne"),
        ("/cpn repo add beta api --url https://169.254.169.254/latest.git", "adresse interne"),
        ("/cpn repo add beta api --private", "--private s'utilise avec --url"),
        ("/cpn env add beta developpement --stage dev", "2 à 11 caractères"),
        ("/cpn env add beta dev", "Option requise manquante : `--stage`"),
        ("/cpn env add beta dev --stage qa", "dev, staging, integration, prod"),
        ("/cpn project create beta", "déjà pris"),
    ],
)
def test_each_rule_is_explained(validation_world: World, command: str, expected: str) -> None:
    answer = User(validation_world, "bob").run(command)["text"]
    assert expected in answer, answer


@pytest.fixture(scope="module")
def validation_world() -> Iterator[World]:
    world = World.create(timings=Timings.fast()).start()
    try:
        User(world, "bob").run("/cpn project create beta")
        world.wait_idle(30)
        yield world
    finally:
        world.stop()


def test_member_changes_follow_in_gitlab_and_unknown_people_are_explained(
    make_world: Callable[..., World], control: str
) -> None:
    world = make_world(control=control)
    bob = User(world, "bob")
    bob.run("/cpn project create alpha")
    world.wait_idle(30)
    gl = svc.gitlab_client(world)
    group = gl.groups.get(f"{ROOT}/alpha")
    carol_id = gl.users.list(username="carol")[0].id
    bob.run("/cpn member add alpha @carol")
    assert group.members.get(carol_id).access_level == gitlab.const.AccessLevel.DEVELOPER
    bob.run("/cpn member role alpha @carol admin")
    assert group.members.get(carol_id).access_level == gitlab.const.AccessLevel.MAINTAINER
    assert "lecture seule" in bob.run("/cpn member role alpha @carol readonly")["text"]
    assert group.members.get(carol_id).access_level == gitlab.const.AccessLevel.REPORTER
    bob.run("/cpn member remove alpha @carol")
    if control == "direct":
        with pytest.raises(gitlab.exceptions.GitlabGetError):
            group.members.get(carol_id)
    else:  # the console's membership is gone (its GitLab plugin leaves GitLab's to the next reconciliation)
        console, email = world.states["console"], world.users["carol"].email
        carol = console.user_by_email(email)
        assert all(m.user_id != carol.id for p in console.projects.values() for m in p.members)
    assert "propriétaire" in bob.run("/cpn member remove alpha @bob")["text"]
    assert "Utilisateur inconnu" in bob.run("/cpn member add alpha @nobody")["text"]
    world.states["mattermost"].add_user("eve", email="eve@interieur.gouv.fr")
    world.states["mattermost"].add_team_member(world.team_id, world.states["mattermost"].find_user("eve")["id"])
    # Direct: added, GitLab will know her later. Console: the console must know her first (§2.2).
    unknown = {"direct": "pas encore de compte GitLab", "console": "n'a pas de compte dans la console"}[control]
    assert unknown in bob.run("/cpn member add alpha @eve")["text"]
    members = bob.run("/cpn member list alpha")["text"]
    assert ("@eve" in members) is (control == "direct") and "@bob — propriétaire" in members


@pytest.mark.parametrize(
    ("language", "names", "accepted"),
    [
        ("fr", ["développeur", "lecture seule", "devops"], "administrateur, devops, développeur, lecture seule"),
        ("en", ["developer", "read-only", "devops"], "admin, devops, developer, read-only"),
    ],
)
def test_roles_are_typed_in_french_or_english_and_a_bad_one_lists_the_names_in_the_readers_language(
    make_world: Callable[..., World], language: str, names: list[str], accepted: str
) -> None:
    world = make_world(language=language)
    bob = User(world, "bob")
    bob.run("/cpn project create alpha")
    world.wait_idle(30)
    bob.run("/cpn member add alpha @carol --role Développeur")
    assert f"@carol — {names[0]}" in bob.run("/cpn member list alpha")["text"]
    for typed, name in zip(["lecture-seule", "DEVOPS", "developpeur"], names[1:] + names[:1], strict=True):
        assert name in bob.run(f"/cpn member role alpha @carol {typed}")["text"]
        assert f"@carol — {name}" in bob.run("/cpn member list alpha")["text"]
    for refused in ["propriétaire", "chef"]:  # owner is not given by a command; chef is no role
        text = bob.run(f"/cpn member role alpha @carol {refused}")["text"]
        assert accepted in text and refused in text
    assert f"@carol — {names[0]}" in bob.run("/cpn member list alpha")["text"]


def test_secrets_are_typed_in_a_dialog_listed_without_values_and_deleted_with_confirmation(
    make_world: Callable[..., World], vault_options: dict[str, Any]
) -> None:
    world = make_world(**vault_options)
    bob = User(world, "bob")
    bob.run("/cpn project create alpha")
    world.wait_idle(30)
    assert "fenêtre" in bob.run("/cpn secret set alpha DB_PASSWORD")["text"]
    opened = world.states["mattermost"].dialogs_opened[-1]["dialog"]
    assert opened["elements"][0]["subtype"] == "password"
    assert svc.submit_dialog(world, "bob", {"value": ""})["errors"]["value"]
    svc.submit_dialog(world, "bob", {"value": "s3cr3t-db-pass"})
    assert "déjà été envoyé" in svc.submit_dialog(world, "bob", {"value": "rejoué"})["error"]  # single use
    bob.run("/cpn secret set alpha DB_PASSWORD")  # a new version: a new dialog
    svc.submit_dialog(world, "bob", {"value": "s3cr3t-db-pass-2"})
    assert svc.vault_secret(world, "DB_PASSWORD", mount="alpha") == {"value": "s3cr3t-db-pass-2"}
    listing = bob.run("/cpn secret list alpha")["text"]
    assert "`DB_PASSWORD` — v2" in listing and "s3cr3t" not in listing
    bob.run("/cpn secret delete alpha DB_PASSWORD")
    svc.press_ephemeral(world, "bob", "Confirmer")
    assert svc.vault_secret(world, "DB_PASSWORD", mount="alpha") is None
    assert "Aucun secret" in bob.run("/cpn secret list alpha")["text"]


def test_sync_api_tokens_are_shown_once_and_kept_only_as_a_hash(make_world: Callable[..., World]) -> None:
    world = make_world()
    bob = User(world, "bob")
    bob.run("/cpn project create alpha")
    world.wait_idle(30)
    shown = bob.run("/cpn token create alpha --name ci-github")["text"]
    token = next(line for line in shown.splitlines() if line.startswith("cpn_"))
    assert "GitLab CI" in shown and "GitHub Actions" in shown and "/api/v1/projects/alpha/repositories/" in shown
    rows = list(world.store().db.table("api_tokens").rows)
    assert len(rows) == 1 and token not in str(rows) and rows[0]["token_hash"] != token
    listing = bob.run("/cpn token list alpha")["text"]
    assert "`ci-github`" in listing and token not in listing
    assert "révoqué" in bob.run(f"/cpn token revoke alpha {rows[0]['id']}")["text"]
    assert "Aucun jeton" in bob.run("/cpn token list alpha")["text"]


ROLE_MATRIX = {
    # command: the lowest project role allowed to run it
    "/cpn project show alpha": "readonly",
    "/cpn project replay alpha": "readonly",
    "/cpn member list alpha": "readonly",
    "/cpn repo list alpha": "readonly",
    "/cpn env list alpha": "readonly",
    "/cpn repo add alpha zzz": "developer",
    "/cpn repo remove alpha zzz": "developer",
    "/cpn env add alpha zz --stage dev": "devops",
    "/cpn env remove alpha zz": "devops",
    "/cpn secret list alpha": "devops",
    "/cpn secret delete alpha KEY": "devops",
    "/cpn member add alpha @dave": "admin",
    "/cpn member role alpha @dave readonly": "admin",
    "/cpn token create alpha": "admin",
    "/cpn token list alpha": "admin",
    "/cpn project link alpha": "admin",
    "/cpn project delete alpha": "owner",
}
# Where the console's rules differ: deleting a project needs its Manage bit, which the
# Administrateur role has (console-api.md §2, DELETE /api/v1/projects/:projectId).
CONSOLE_MATRIX = {**ROLE_MATRIX, "/cpn project delete alpha": "admin"}
ORDER = ["readonly", "developer", "devops", "admin", "owner"]


@pytest.fixture(scope="module", params=CONTROLS)
def rights_world(request: pytest.FixtureRequest) -> Iterator[World]:
    """A project alpha made by alice (a platform admin), in each control mode: in console mode the
    console's roles and permission bits decide (console-api.md §4), through the same commands."""
    world = World.create(timings=Timings.fast(), control=request.param).start()
    try:
        alice = User(world, "alice")  # platform admin: creates the project, then hands roles out
        alice.run("/cpn project create alpha")
        world.wait_idle(30)
        yield world
    finally:
        world.stop()


@pytest.mark.parametrize("role", ORDER[:-1])
def test_the_rights_matrix(rights_world: World, role: str) -> None:
    world = rights_world
    # Roles are handed out as people do, so that in console mode the console holds them.
    alice = User(world, "alice")
    changed = alice.run(f"/cpn member role alpha @carol {role}")["text"]
    if "@carol" not in changed or "n'est pas membre" in changed:
        changed = alice.run(f"/cpn member add alpha @carol --role {role}")["text"]
    world.wait_idle(30)
    members = alice.run("/cpn member list alpha")["text"]
    assert "@carol" in members, changed
    user = User(world, "carol")
    for command, lowest in (CONSOLE_MATRIX if world.control == "console" else ROLE_MATRIX).items():
        answer = user.run(command)["text"]
        allowed = ORDER.index(role) >= ORDER.index(lowest)
        assert refused(answer) != allowed, f"{role} running {command!r}: {answer}"


def refused(answer: str) -> bool:
    """A refusal for want of a role (direct mode) or of a console permission (console mode)."""
    return "réservé" in answer or "demande, dans la console, la permission" in answer


def test_someone_outside_the_project_may_not_even_look(rights_world: World) -> None:
    mm = rights_world.states["mattermost"]
    user, token = mm.add_user("outsider")
    mm.add_team_member(rights_world.team_id, user["id"])
    mm.add_member(rights_world.channels["equipe-alpha"], user["id"])
    if rights_world.control == "console":  # known to the console, but not a member of alpha
        rights_world.states["console"].add_user(user["email"], "Outsider")
    answer = mm_run(rights_world, token, "/cpn project show alpha")
    assert refused(answer), answer


def mm_run(world: World, token: str, command: str) -> str:
    import httpx

    answer = httpx.post(
        f"{world.servers['mattermost'].url}/api/v4/commands/execute",
        json={"channel_id": world.channels["equipe-alpha"], "command": command},
        headers={"Authorization": f"Bearer {token}"},
    )
    return str(answer.json().get("text", ""))


def test_the_owner_may_delete_and_a_platform_admin_may_do_everything(rights_world: World) -> None:
    alice = User(rights_world, "alice")
    for command in ("/cpn project show alpha", "/cpn token list alpha", "/cpn project delete alpha"):
        assert not refused(alice.run(command)["text"])


def test_creating_projects_can_be_restricted(make_world: Callable[..., World]) -> None:
    world = make_world(config_overrides={"platform": {"project_creators": ["carol"]}})
    assert "réservé" in User(world, "bob").run("/cpn project create alpha")["text"]
    assert "lancée" in User(world, "carol").run("/cpn project create alpha")["text"]
    wait_for(lambda: cards(world), what="the checklist")


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("revoked", "Vault refuse les identifiants du bot"),
        ("without rights", "Vault refuse l'opération : droits insuffisants du bot"),
    ],
)
def test_vault_refusing_the_bots_token_is_told_from_the_bot_lacking_rights(
    make_world: Callable[..., World], vault_options: dict[str, Any], token: str, expected: str
) -> None:
    world = make_world(**vault_options)
    admin = svc.vault_client(world)
    weak = admin.auth.token.create(policies=["default"], ttl="1h")["auth"]["client_token"]
    if token == "revoked":
        admin.auth.token.revoke(weak)
    assert world.bot is not None and world.bot.platform.vault is not None
    world.bot.platform.vault.client.token = weak  # as if the operator had configured that token
    User(world, "bob").run("/cpn project create alpha")
    world.wait_idle(30)
    text = last_card(world, "Création du projet alpha")["text"]
    vault_line = next(line for line in text.splitlines() if "Vault" in line)
    assert expected in vault_line, text
    assert weak not in text


# --- the registry: Quay or Harbor behind the same steps --------------------------------------------


def _robot_logs_in(world: World, secret: dict[str, Any]) -> bool:
    """Whether the registry accepts the robot login Vault holds (what ``docker login`` would do)."""
    if world.registry_kind == "harbor":
        return bool(world.states["harbor"].login_ok(secret["USERNAME"], secret["TOKEN"]))
    org, _, short = str(secret["USERNAME"]).partition("+")
    return bool(world.states["quay"].robot_token(org, short) == secret["TOKEN"])


def _registry_secrets(world: World) -> dict[str, dict[str, Any]]:
    return {r: svc.vault_secret(world, f"{ROOT}/alpha/REGISTRY/{r}") or {} for r in ("ro-robot", "rw-robot")}


@pytest.mark.parametrize(("registry", "name"), [("quay", "Quay"), ("harbor", "Harbor")])
def test_the_registry_gets_two_robots_whose_credentials_vault_keeps_across_replays(
    make_world: Callable[..., World], registry: str, name: str
) -> None:
    world = make_world(config_overrides={"platform": {"registry": registry}})
    bob = User(world, "bob")
    bob.run("/cpn project create alpha")
    world.wait_idle(30)
    assert f"✅ **{name}**" in last_card(world, "Création du projet alpha")["text"]
    stored = _registry_secrets(world)
    host = world.servers[registry].url.removeprefix("http://")
    for robot, secret in stored.items():
        assert secret["HOST"] == host and _robot_logs_in(world, secret), robot
    for _ in range(2):
        bob.run("/cpn project replay alpha")
        world.wait_idle(30)
        assert "Rien à réparer" in last_card(world, "Reprovisionnement du projet alpha")["text"]
    assert _registry_secrets(world) == stored  # the secrets Harbor shows once were not regenerated
    assert all(_robot_logs_in(world, secret) for secret in stored.values())


@pytest.mark.parametrize("registry", ["quay", "harbor"])
def test_a_robot_secret_vault_lost_is_given_back_by_replay(make_world: Callable[..., World], registry: str) -> None:
    world = make_world(config_overrides={"platform": {"registry": registry}})
    bob = User(world, "bob")
    bob.run("/cpn project create alpha")
    world.wait_idle(30)
    kept = _registry_secrets(world)["ro-robot"]
    svc.vault_client(world).secrets.kv.v2.delete_metadata_and_all_versions(
        path=f"{ROOT}/alpha/REGISTRY/rw-robot", mount_point="forge-dso"
    )
    bob.run("/cpn project replay alpha")
    world.wait_idle(30)
    assert "Réparations effectuées" in last_card(world, "Reprovisionnement du projet alpha")["text"]
    again = _registry_secrets(world)
    assert _robot_logs_in(world, again["rw-robot"])
    assert again["ro-robot"] == kept  # the other robot is left alone


@pytest.mark.parametrize("registry", ["quay", "harbor"])
def test_deleting_a_project_empties_its_registry_namespace_even_with_images(
    make_world: Callable[..., World], registry: str
) -> None:
    world = make_world(config_overrides={"platform": {"registry": registry}})
    bob = User(world, "bob")
    bob.run("/cpn project create alpha")
    world.wait_idle(30)
    # Images pushed by the CI, one with a nested name: Harbor refuses to delete a project holding any.
    world.states[registry].push_image("alpha", "api", "1.0")
    world.states[registry].push_image("alpha", "team/web", "1.0")
    bob.run("/cpn project delete alpha")
    svc.press_ephemeral(world, "bob", "Confirmer")
    world.wait_idle(30)
    assert "archivé" in last_card(world, "Suppression du projet alpha")["text"]
    if registry == "harbor":
        assert world.states["harbor"].project("alpha") is None
    else:
        assert world.states["quay"].organization("alpha") is None


def test_adding_and_removing_say_what_changed_in_one_line_and_the_first_sync_is_announced_once(
    make_world: Callable[..., World], control: str
) -> None:
    world = make_world(control=control)
    bob = User(world, "bob")
    bob.run("/cpn project create alpha")
    world.wait_idle(30)
    before = len(channel_posts(world, "equipe-alpha"))
    bob.run("/cpn repo add alpha api --url https://github.com/ministere/api.git")
    bob.run("/cpn env add alpha dev --stage dev")
    world.wait_idle(30)
    bob.run("/cpn env remove alpha dev")
    svc.press_ephemeral(world, "bob", "Confirmer")
    world.wait_idle(30)
    # A post is read as a person reads it: its message, then its attachments.
    posts = ["\n".join(filter(None, (p["message"], text_of(p)))) for p in channel_posts(world, "equipe-alpha")[before:]]
    assert not [p for p in posts if "Mise à jour du projet" in p or "Suppression dans le projet" in p]
    for line in (
        "Dépôt `api` ajouté par @bob.",
        "Environnement `dev` ajouté par @bob.",
        "Environnement `dev` supprimé par @bob.",
    ):
        assert [p for p in posts if line in p] == [line], posts
    # The sync card is the announcement: no second post saying the same.
    announced = [p for p in posts if "ynchronisation de api" in p or "ynchronisation de `api`" in p]
    assert len(announced) == 1, announced


def test_a_change_that_failed_shows_the_checklist(make_world: Callable[..., World], control: str) -> None:
    world = make_world(control=control)
    bob = User(world, "bob")
    bob.run("/cpn project create alpha")
    world.wait_idle(30)
    world.states["argocd"].faults.down = True
    bob.run("/cpn env add alpha dev --stage dev")
    world.wait_idle(30)
    card = last_card(world, "Mise à jour du projet alpha")
    reason = {"direct": "ArgoCD ne répond pas", "console": "la console signale un échec de ArgoCD"}[control]
    assert f"❌ **ArgoCD** — {reason}" in card["text"]
    assert not [p for p in channel_posts(world, "equipe-alpha") if "ajouté par" in (p.get("message") or "")]
