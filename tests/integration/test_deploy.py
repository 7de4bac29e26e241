"""GitOps deployments from chat: the values committed, ArgoCD synced and followed, every guard."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bot.sandbox.world import Timings, World
from tests.conftest import wait_for
from tests.support import platform as svc
from tests.support.mattermost import User, channel_posts, text_of

INFRA = "forge/projects/alpha/deploy"


def deploy_cards(world: World) -> list[dict[str, Any]]:
    return [
        a
        for p in channel_posts(world, "equipe-alpha")
        for a in (p.get("props") or {}).get("attachments") or []
        if any(word in a.get("title", "") for word in ("Déploiement de", "Promotion de", "Retour arrière"))
    ]


def settled(world: World) -> None:
    """Until the bot and the emulated ArgoCD have nothing left to do."""
    argocd = world.states["argocd"]
    for name in list(argocd.apps):
        argocd.wait_idle(name, timeout=10)
    world.wait_idle(20)


def make_project(make_world: Callable[..., World], **options: Any) -> World:
    world = make_world(timings=Timings(pipeline_step=0.005, argocd_step=0.02, reply_budget=2.5), **options)
    bob = User(world, "bob")
    bob.run("/cpn project create alpha")
    world.wait_idle(30)
    bob.run("/cpn member add alpha @carol --role developer")
    bob.run("/cpn member add alpha @dave --role devops")
    bob.run("/cpn repo add alpha api --url https://github.com/ministere/api.git")
    bob.run("/cpn repo add alpha deploy --url https://github.com/ministere/deploy.git --infra")
    bob.run("/cpn env add alpha dev --stage dev")
    bob.run("/cpn env add alpha prod --stage prod")
    wait_for(
        lambda: world.states["gitlab"].quiet and len(world.states["gitlab"].pipelines_of(INFRA)) >= 1,
        timeout=20,
        what="the first builds",
    )
    world.wait_idle(30)
    return world


@pytest.fixture
def world(make_world: Callable[..., World]) -> World:
    return make_project(make_world)


def values_file(world: World, env: str) -> str:
    gl = svc.gitlab_client(world)
    return gl.projects.get(INFRA).files.get(f"values-{env}.yaml", ref="main").decode().decode()


def commits(world: World) -> list[Any]:
    return svc.gitlab_client(world).projects.get(INFRA).commits.list(ref_name="main", get_all=True)


def test_a_deploy_to_dev_commits_the_values_syncs_and_ends_healthy(world: World) -> None:
    answer = User(world, "carol").run("/cpn deploy alpha dev --image-tag 1.4.2")
    assert "Déploiement sur `dev` lancé" in answer["text"]
    settled(world)
    (card,) = deploy_cards(world)
    assert card["title"] == "✅ Déploiement de 1.4.2 sur alpha / dev — réussi"
    assert "Demandé par @carol" in card["text"] and "synchronisation : synchronisé · santé : 💚 sain" in card["text"]
    assert card["title_link"].endswith("/applications/alpha-dev-deploy")
    assert 'tag: "1.4.2"' in values_file(world, "dev")
    last = commits(world)[0]
    assert "@carol" in last.message and "1.4.2" in last.message
    app = svc.argocd(world).get("/api/v1/applications/alpha-dev-deploy").json()
    assert app["status"]["sync"]["revision"] == last.id and app["status"]["health"]["status"] == "Healthy"
    audit = [r for r in world.store().db.table("audit").rows if r["action"] == "deploy.deploy"]
    assert audit and audit[-1]["outcome"] == "succeeded"


def test_without_a_tag_the_last_image_built_on_main_is_deployed(world: World) -> None:
    built = world.states["gitlab"].pipelines_of("forge/projects/alpha/api")[-1].sha[:8]
    User(world, "bob").run("/cpn deploy alpha dev")
    settled(world)
    assert f'tag: "{built}"' in values_file(world, "dev")


def test_prod_needs_a_confirmation_from_the_requester_with_the_right_role(world: World) -> None:
    assert "environnement protégé" in User(world, "carol").run("/cpn deploy alpha prod --image-tag 2.0.0")["text"]
    User(world, "dave").run("/cpn deploy alpha prod --image-tag 2.0.0")
    assert deploy_cards(world) == []  # nothing before the confirmation
    # bob may not press dave's button (and the real Mattermost would not even show it to him).
    actions = world.states["mattermost"].ephemeral_actions(world.users["dave"].id)
    post_id, action_id, cookie, _ = next(a for a in actions if a[3] == "Confirmer")
    httpx.post(
        f"{world.servers['mattermost'].url}/api/v4/posts/{post_id}/actions/{action_id}",
        json={"cookie": cookie},
        headers={"Authorization": f"Bearer {world.users['bob'].token}"},
    )
    world.wait_idle()
    assert deploy_cards(world) == []
    svc.press_ephemeral(world, "dave", "Confirmer")
    settled(world)
    (card,) = deploy_cards(world)
    assert "2.0.0" in card["title"] and "réussi" in card["title"]


@pytest.mark.parametrize("second", ["Confirmer", "Annuler"])
def test_a_confirmation_once_used_refuses_either_button_and_deploys_once(world: World, second: str) -> None:
    dave = world.users["dave"]
    mm = world.states["mattermost"]
    User(world, "dave").run("/cpn deploy alpha prod --image-tag 2.0.0")
    svc.press_ephemeral(world, "dave", "Confirmer")
    confirmed = wait_for(lambda: [e for e in mm.ephemeral_for(dave.id) if "Confirmer" in e["message"]], what="it")
    assert re.search(r"✅ « Confirmer » choisi par @dave à \d\d:\d\d", confirmed[-1]["message"])
    svc.press_ephemeral(world, "dave", second)  # the same card, pressed again
    settled(world)
    refusal = mm.ephemeral_for(dave.id)[-1]["message"]
    assert re.fullmatch(r"⛔ Ce choix a déjà été fait : « Confirmer » par @dave à \d\d:\d\d\.", refusal)
    assert not any(e["message"] == "Annulé." for e in mm.ephemeral_for(dave.id))
    (card,) = deploy_cards(world)
    assert "2.0.0" in card["title"] and "réussi" in card["title"]
    runs = world.store().db.execute("SELECT COUNT(*) FROM operations WHERE kind = 'deploy.run'").fetchone()[0]
    assert runs == 1


def test_a_confirmation_after_its_expiry_is_refused(world: World) -> None:
    User(world, "dave").run("/cpn deploy alpha prod --image-tag 2.0.0")
    mm = world.states["mattermost"]
    ephemeral = [e for e in mm.ephemeral if e["user_id"] == world.users["dave"].id][-1]["post"]
    assert ephemeral
    bot = world.bot
    assert bot is not None
    context = bot.signer.sign(
        "deploy.confirm",
        {
            "project": "alpha",
            "env": "prod",
            "repo": "deploy",
            "kind": "deploy",
            "user": "@dave",
            "image_tag": "2.0.0",
            "revision": "",
        },
        world.users["dave"].id,
        ephemeral=True,
    )
    context["exp"] = int(time.time()) - 1
    context["sig"] = bot.signer._mac(
        [context["action"], context["data"], context["user"], context["exp"], context["nonce"], True]
    )
    answer = httpx.post(
        f"{world.bot_url}/mattermost/actions", json={"user_id": world.users["dave"].id, "context": context}
    )
    assert "expiré" in answer.json()["ephemeral_text"]
    world.wait_idle()
    assert deploy_cards(world) == []


def test_promote_deploys_what_is_healthy_in_the_source(world: World) -> None:
    User(world, "bob").run("/cpn deploy alpha dev --image-tag 3.1.0")
    settled(world)
    User(world, "bob").run("/cpn promote alpha dev prod")
    svc.press_ephemeral(world, "bob", "Confirmer")
    settled(world)
    titles = [c["title"] for c in deploy_cards(world)]
    assert titles[-1] == "✅ Promotion de 3.1.0 vers alpha / prod — réussi"
    acknowledged = world.states["mattermost"].ephemeral_for(world.users["bob"].id)[-1]["message"]
    assert "\n🚀 Promotion vers `prod` lancée" in acknowledged, acknowledged
    assert 'tag: "3.1.0"' in values_file(world, "prod")


def test_rollback_goes_back_through_argocd_history_with_a_confirmation(world: World) -> None:
    bob = User(world, "bob")
    for tag in ("1.0.0", "1.1.0"):
        bob.run(f"/cpn deploy alpha dev --image-tag {tag}")
        settled(world)
    assert "n'est pas dans l'historique" in bob.run("/cpn rollback alpha dev --to 42")["text"]
    bob.run("/cpn rollback alpha dev")
    svc.press_ephemeral(world, "bob", "Confirmer")
    settled(world)
    card = deploy_cards(world)[-1]
    assert card["title"].startswith("✅ Retour arrière de alpha / dev au déploiement #0")
    app = svc.argocd(world).get("/api/v1/applications/alpha-dev-deploy").json()
    assert app["status"]["history"][-1]["revision"] == app["status"]["history"][0]["revision"]
    assert "réservé" in User(world, "carol").run("/cpn rollback alpha dev")["text"]


def test_rollback_skips_entries_of_the_running_revision_and_is_acknowledged_as_a_rollback(world: World) -> None:
    """A deploy of unchanged values resyncs: ArgoCD appends the running revision to its history again.
    "The previous deployment" is then the last entry with another revision, and the one running is refused."""
    bob = User(world, "bob")
    for tag in ("1.0.0", "1.1.0", "1.1.0"):
        bob.run(f"/cpn deploy alpha dev --image-tag {tag}")
        settled(world)
    history = svc.argocd(world).get("/api/v1/applications/alpha-dev-deploy").json()["status"]["history"]
    running = history[-1]
    assert history[-2]["revision"] == running["revision"]  # the resync of 1.1.0
    older = [h for h in history if h["revision"] != running["revision"]][-1]

    refused = bob.run(f"/cpn rollback alpha dev --to {history[-2]['id']}")["text"]
    assert refused.startswith(f"Le déploiement n°{history[-2]['id']} (révision `{running['revision'][:8]}`)")
    assert "celui qui tourne déjà sur `dev` : rien à revenir" in refused

    question = bob.run("/cpn rollback alpha dev")
    asked = text_of(question)
    assert f"au déploiement n°{older['id']} (révision `{older['revision'][:8]}`, du `" in asked
    assert f"à la place de la révision `{running['revision'][:8]}` qui tourne" in asked
    svc.press_ephemeral(world, "bob", "Confirmer")
    settled(world)
    acknowledged = world.states["mattermost"].ephemeral_for(world.users["bob"].id)[-1]["message"]
    assert "choisi par @bob" in acknowledged and "\n↩️ Retour arrière sur `dev` lancé" in acknowledged
    assert "Déploiement sur" not in acknowledged
    app = svc.argocd(world).get("/api/v1/applications/alpha-dev-deploy").json()
    assert app["status"]["history"][-1]["revision"] == older["revision"]


def test_a_degraded_rollout_is_reported_with_its_unhealthy_resources(world: World) -> None:
    world.states["argocd"].scenarios["alpha-dev-deploy"] = "degraded"
    User(world, "bob").run("/cpn deploy alpha dev --image-tag 9.9.9")
    settled(world)
    card = deploy_cards(world)[-1]
    assert card["title"] == "⚠️ Déploiement de 9.9.9 sur alpha / dev — dégradé"
    assert "Ressources en mauvaise santé" in card["text"] and "Deployment/" in card["text"]
    assert "exceeded its progress deadline" in card["text"]


def test_argocd_down_leaves_the_infra_repository_as_it_was(world: World) -> None:
    before = commits(world)[0].id
    world.states["argocd"].faults.down = True
    User(world, "bob").run("/cpn deploy alpha dev --image-tag 5.0.0")
    world.wait_idle(20)
    card = deploy_cards(world)[-1]
    assert "en échec" in card["title"] and "ArgoCD ne répond pas : rien n'a été commité" in card["text"]
    assert commits(world)[0].id == before


def test_a_sync_refused_after_the_commit_reverts_the_commit(world: World) -> None:
    before = commits(world)[0].id
    world.states["argocd"].faults.fail("POST /api/v1/applications/*/sync", 503, times=10)
    User(world, "bob").run("/cpn deploy alpha dev --image-tag 5.0.1")
    world.wait_idle(20)
    card = deploy_cards(world)[-1]
    assert "annulé" in card["title"] and "revert" in card["text"]
    history = commits(world)
    assert history[0].message.startswith("Revert") and history[1].id != before
    assert "5.0.1" not in values_file(world, "dev") if _has_values(world) else True


def _has_values(world: World) -> bool:
    try:
        values_file(world, "dev")
    except Exception:
        return False
    return True


def test_a_deploy_already_running_on_the_environment_is_refused_with_a_link(world: World) -> None:
    world.states["argocd"].timings.health_seconds = 1.5
    bob = User(world, "bob")
    bob.run("/cpn deploy alpha dev --image-tag 6.0.0")
    wait_for(lambda: deploy_cards(world), what="the first deploy's card")
    refused = bob.run("/cpn deploy alpha dev --image-tag 6.0.1")["text"]
    assert "déjà en cours sur `dev`" in refused and "voir la carte" in refused
    settled(world)


def test_an_unknown_environment_lists_the_projects_environments(world: World) -> None:
    text = User(world, "bob").run("/cpn deploy alpha staging")["text"]
    assert "Environnement inconnu" in text and "`dev`" in text and "`prod`" in text


def test_a_freeze_window_refuses_with_a_clear_message(make_world: Callable[..., World]) -> None:
    world = make_project(
        make_world,
        config_overrides={
            "platform": {
                "freeze_windows": [
                    {
                        "environments": ["dev"],
                        "start": "2000-01-01T00:00",
                        "end": "2999-01-01T00:00",
                        "reason": "gel de test",
                    }
                ]
            }
        },
    )
    text = User(world, "bob").run("/cpn deploy alpha dev --image-tag 1.0.0")["text"]
    assert "gelés" in text and "gel de test" in text


def test_a_deploy_made_outside_the_bot_is_announced(world: World) -> None:
    argocd = svc.argocd(world)
    argocd.post("/api/v1/applications/alpha-dev-deploy/sync", json={}).raise_for_status()
    wait_for(
        lambda: any("Déploiement fait hors du bot" in p["message"] for p in channel_posts(world, "equipe-alpha")),
        timeout=10,
        what="the announcement",
    )


def test_drift_is_posted_once_and_recovery_once(make_world: Callable[..., World]) -> None:
    world = make_project(make_world, config_overrides={"argocd": {"drift_poll_seconds": 0, "drift_grace_seconds": 0}})
    bob = User(world, "bob")
    bob.run("/cpn deploy alpha dev --image-tag 1.0.0")
    settled(world)

    async def watch() -> None:
        from bot.deployments import watch_drift

        assert world.bot is not None
        await watch_drift(world.bot)

    gl = svc.gitlab_client(world)
    gl.projects.get(INFRA).commits.create(
        {
            "branch": "main",
            "commit_message": "hand edit",
            "actions": [{"action": "create", "file_path": "hand.txt", "content": "x"}],
        }
    )
    for _ in range(3):
        world.run(watch())
    world.wait_idle()
    drift = [p["message"] for p in channel_posts(world, "equipe-alpha") if "désynchronisé depuis" in p["message"]]
    assert len([m for m in drift if "alpha-dev-deploy" in m]) == 1  # once, not at every poll
    assert not [m for m in drift if "alpha-prod-deploy" in m]  # never deployed: nothing has drifted
    bob.run("/cpn deploy alpha dev --image-tag 1.0.1")
    settled(world)
    for _ in range(3):
        world.run(watch())
    world.wait_idle()
    recovered = [
        p["message"] for p in channel_posts(world, "equipe-alpha") if "revenu dans l'état attendu" in p["message"]
    ]
    assert len([m for m in recovered if "alpha-dev-deploy" in m]) == 1
    assert not [m for m in recovered if "alpha-prod-deploy" in m]


def test_the_status_card_shows_repositories_and_environments(world: World) -> None:
    User(world, "bob").run("/cpn deploy alpha dev --image-tag 7.0.0")
    settled(world)
    text = text_of(User(world, "carol").run("/cpn status alpha"))
    assert "État du projet alpha" in text
    assert "**api** — ✅ pipeline" in text
    assert "**dev** (dev) — dernier déploiement `7.0.0`" in text and "🟢 synchronisé · 💚 sain" in text
    assert "alpha-prod-deploy" in text
    assert "console" not in text  # direct mode: the ArgoCD applications are the deployments
    assert json.dumps(text)


@pytest.mark.parametrize(
    ("language", "on_card", "on_status"),
    [
        ("fr", "opération : réussie · synchronisation : synchronisé · santé : 💚 sain", "🟢 synchronisé · 💚 sain"),
        ("en", "operation: succeeded · sync: synced · health: 💚 healthy", "🟢 synced · 💚 healthy"),
    ],
    ids=["fr", "en"],
)
def test_argocd_states_are_shown_in_the_readers_words(
    make_world: Callable[..., World], language: str, on_card: str, on_status: str
) -> None:
    world = make_project(make_world, language=language)
    User(world, "bob").run("/cpn deploy alpha dev --image-tag 7.0.0")
    settled(world)
    card = next(
        a
        for p in channel_posts(world, "equipe-alpha")
        for a in (p.get("props") or {}).get("attachments") or []
        if "7.0.0" in a.get("title", "") and "alpha / dev" in a.get("title", "")  # not the image's scan card
    )
    status = text_of(User(world, "carol").run("/cpn status alpha"))
    assert on_card in card["text"] and on_status in status
    for raw in ("Succeeded", "Synced", "Healthy"):
        assert raw not in card["text"] and raw not in status


def test_a_refresh_slower_than_its_timeout_does_not_undo_the_deploy(make_world: Callable[..., World]) -> None:
    world = make_project(make_world, config_overrides={"argocd": {"refresh_timeout_seconds": 0.1}})
    world.states["argocd"].timings.refresh_seconds = 0.6
    User(world, "bob").run("/cpn deploy alpha dev --image-tag 6.0.0")
    settled(world)
    card = deploy_cards(world)[-1]
    assert "réussi" in card["title"], card
    assert not commits(world)[0].message.startswith("Revert")
    assert "6.0.0" in values_file(world, "dev")


def deny_window(world: World) -> None:
    with world.states["argocd"].lock:
        spec = world.states["argocd"].projects["alpha"]["spec"]
        spec["syncWindows"] = [{"kind": "deny", "schedule": "* * * * *", "duration": "1h", "applications": ["*"]}]


def require_override(world: World) -> None:
    world.states["argocd"].require_override_for_revision_sync = True


@pytest.mark.parametrize(
    ("refuse", "said"),
    [
        (deny_window, "fenêtre de synchronisation ArgoCD interdit de synchroniser `alpha-dev-deploy`"),
        (require_override, "n'a pas le droit `override` sur `alpha-dev-deploy`"),
    ],
)
def test_a_refused_sync_says_why_and_reverts(world: World, refuse: Callable[[World], None], said: str) -> None:
    refuse(world)
    User(world, "bob").run("/cpn deploy alpha dev --image-tag 6.1.0")
    world.wait_idle(20)
    card = deploy_cards(world)[-1]
    assert "annulé" in card["title"] and said in card["text"], card
    assert commits(world)[0].message.startswith("Revert")


def test_under_automated_sync_the_deploy_names_no_revision(world: World) -> None:
    argocd = world.states["argocd"]
    with argocd.lock:
        argocd.apps["alpha-dev-deploy"].data["spec"]["syncPolicy"] = {"automated": {"prune": True, "selfHeal": True}}
    User(world, "bob").run("/cpn deploy alpha dev --image-tag 6.2.0")
    settled(world)
    card = deploy_cards(world)[-1]
    assert "réussi" in card["title"], card
    head = commits(world)[0]
    assert not head.message.startswith("Revert")
    app = argocd.app("alpha-dev-deploy")
    assert app is not None and app["status"]["history"][-1]["revision"] == head.id
    assert app["spec"]["syncPolicy"]["automated"]  # still on


def test_deleting_a_project_waits_for_its_applications_to_be_gone(world: World) -> None:
    argocd = world.states["argocd"]
    argocd.timings.cascade_delete_seconds = 0.5  # the controller prunes the resources meanwhile
    assert argocd.app("alpha-dev-deploy") is not None
    User(world, "bob").run("/cpn project delete alpha")
    svc.press_ephemeral(world, "bob", "Confirmer")
    world.wait_idle(30)
    assert argocd.project("alpha") is None and argocd.app("alpha-dev-deploy") is None
    assert argocd.deletions and all(cascade for _, cascade in argocd.deletions)


def test_a_prod_confirmation_says_what_runs_now_what_replaces_it_and_what_is_open(world: World) -> None:
    dave, mm = world.users["dave"], world.states["mattermost"]
    User(world, "dave").run("/cpn deploy alpha prod --image-tag 2.0.0")
    svc.press_ephemeral(world, "dave", "Confirmer")
    settled(world)
    bot = world.bot
    assert bot is not None
    project = bot.projects.get("alpha")
    assert project is not None
    counts = {"CRITICAL": 3, "HIGH": 0, "MEDIUM": 0, "LOW": 0}
    summary = {"counts": counts, "total": 3, "fixable": 3, "waived": 0, "verdict": "fail", "new": 3, "fixed": 0}
    bot.store.db.table("scans").insert(
        {
            "project_id": project.id,
            "repo": "api",
            "subject": "registry.example/alpha/api",
            "keys": "[]",
            "summary": json.dumps(summary),
            "created_at": time.time(),
        },
        alter=True,
    )
    bot.store.db.table("quality").insert(
        {"project_id": project.id, "repo": "api", "branch": "main", "status": "ERROR"}, alter=True
    )
    User(world, "dave").run("/cpn deploy alpha prod --image-tag 2.1.0")
    question = wait_for(
        lambda: [e["message"] + str(e.get("props")) for e in mm.ephemeral_for(dave.id) if "2.1.0" in str(e)],
        what="the confirmation",
    )[-1]
    assert "Sur `prod` maintenant : `2.0.0` → ensuite : `2.1.0` (dépôt `deploy`)" in question, question
    # Its 3, and the pipelines' own scans of other images: the latest of each image counts.
    found = re.search(
        r"⚠️ (\d+) vulnérabilités critiques ouvertes au dernier scan du projet \(`/cpn scan alpha`\)", question
    )
    assert found and int(found.group(1)) >= 3, question
    assert "⚠️ Quality gate en échec sur la branche principale de `api`" in question
