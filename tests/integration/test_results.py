"""Quality gates and vulnerability scans in the channel: signed, counted, compared, ruled."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from bot.sandbox.world import World
from bot.workflows.naming import derive
from services.emulators.fixtures import fixtures_dir
from tests.conftest import wait_for
from tests.support.mattermost import User, channel_posts, text_of
from tests.support.worlds import alpha_with_api

FIXTURES = fixtures_dir()


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def attachments(world: World, channel: str = "equipe-alpha") -> list[dict[str, Any]]:
    return [a for p in channel_posts(world, channel) for a in (p.get("props") or {}).get("attachments") or []]


@pytest.fixture(scope="module")
def alpha() -> Iterator[World]:
    with alpha_with_api() as world:
        yield world


# -- SonarQube ------------------------------------------------------------------------------------


def sonar_body(kind: str, branch: str = "main") -> bytes:
    body = copy.deepcopy(fixture("sonarqube_webhook.json")[kind])
    body["project"] = {"key": "alpha-api", "name": "alpha-api", "url": "http://sonar.example/dashboard?id=alpha-api"}
    if "branch" in body:
        body["branch"]["name"] = branch
        body["branch"]["url"] = f"http://sonar.example/dashboard?id=alpha-api&branch={branch}"
    return json.dumps(body).encode()


def send_sonar(world: World, body: bytes, secret: str | None = None, signature: str | None = None) -> httpx.Response:
    secret = secret if secret is not None else derive(world.webhook_secrets["sonarqube"].encode(), "sonarqube", "alpha")
    headers = {"Content-Type": "application/json; charset=utf-8", "X-SonarQube-Project": "alpha-api"}
    headers["X-Sonar-Webhook-HMAC-SHA256"] = (
        signature if signature is not None else hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    )
    return httpx.post(f"{world.bot_url}/hooks/sonarqube", content=body, headers=headers)


def test_the_fixture_gate_error_shows_only_its_failed_conditions(alpha: World) -> None:
    assert send_sonar(alpha, sonar_body("error", "feature/x")).status_code == 202
    alpha.wait_idle()
    card = [a for a in attachments(alpha) if "quality gate" in a.get("title", "")][-1]
    assert card["title"] == "❌ alpha / api — quality gate en échec"
    text = card["text"]
    assert "Couverture du nouveau code : 42,5" in text and "(seuil : 80,0" in text
    assert "Points sensibles de sécurité revus (nouveau code) : 50,0" in text
    assert "Nouveaux problèmes : 7" in text
    assert "Duplication du nouveau code" not in text  # that condition passed
    # Rebuilt from the configured SonarQube, not the body's branch.url (http://sonar.example/…).
    assert alpha.bot is not None and alpha.bot.config.sonarqube is not None
    sonar = str(alpha.bot.config.sonarqube.url).rstrip("/")
    assert card["title_link"] == f"{sonar}/dashboard?id=alpha-api&branch=feature%2Fx"


def test_the_fixture_gate_ok_without_task_id_is_quiet_on_a_branch_and_posted_on_main(alpha: World) -> None:
    before = len(attachments(alpha))
    assert send_sonar(alpha, sonar_body("ok", "feature/y")).status_code == 202
    alpha.wait_idle()
    assert len(attachments(alpha)) == before  # a success on a branch: quiet by default
    ok_main = json.loads(sonar_body("ok"))
    ok_main.pop("branch", None)
    assert send_sonar(alpha, json.dumps(ok_main).encode()).status_code == 202
    alpha.wait_idle()
    assert attachments(alpha)[-1]["title"] == "✅ alpha / api — quality gate réussie"


def test_a_wrong_or_missing_signature_is_refused_and_nothing_is_stored(alpha: World) -> None:
    before = alpha.store().count("inbox", "source = 'sonarqube'")
    body = sonar_body("error")
    assert send_sonar(alpha, body, secret="not-the-secret").status_code == 401
    assert send_sonar(alpha, body, signature="").status_code == 401
    tampered = body.replace(b"42.5", b"99.9")
    assert send_sonar(alpha, tampered, signature=hmac.new(b"x", body, hashlib.sha256).hexdigest()).status_code == 401
    assert alpha.store().count("inbox", "source = 'sonarqube'") == before


# -- Trivy ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def token(alpha: World) -> str:
    shown = User(alpha, "bob").run("/cpn token create alpha")["text"]
    return next(line for line in shown.splitlines() if line.startswith("cpn_"))


def push_report(world: World, token: str, raw: bytes, **params: str) -> httpx.Response:
    query = {"project": "alpha", "repo": "api", **params}
    return httpx.post(
        f"{world.bot_url}/hooks/trivy",
        params=query,
        content=raw,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )


def scan_cards(world: World) -> list[dict[str, Any]]:
    return [a for a in attachments(world) if a.get("title", "").startswith(("✅ Trivy", "⚠️ Trivy", "❌ Trivy"))]


def test_the_alpine_image_report_is_counted_exactly(alpha: World, token: str) -> None:
    raw = (FIXTURES / "trivy_image_report.json").read_bytes()
    assert push_report(alpha, token, raw, ref="main").status_code == 202
    alpha.wait_idle()
    card = scan_cards(alpha)[-1]
    assert "alpine-39" in card["title"]
    assert "Critique **2**" in card["text"] and "Moyenne **4**" in card["text"] and "Haute **0**" in card["text"]
    assert "Corrigeables : 6 sur 6" in card["text"]
    assert "CVE-2019-14697" in card["text"]


def test_the_filesystem_report_is_counted_exactly(alpha: World, token: str) -> None:
    raw = (FIXTURES / "trivy_fs_report.json").read_bytes()
    assert push_report(alpha, token, raw, ref="main").status_code == 202
    alpha.wait_idle()
    card = scan_cards(alpha)[-1]
    assert "Haute **1**" in card["text"] and "Moyenne **1**" in card["text"] and "Critique **0**" in card["text"]


def test_a_second_scan_says_what_is_new_and_what_was_fixed(alpha: World, token: str) -> None:
    report = fixture("trivy_image_report.json")
    report["ArtifactName"] = "registry.example/alpha/api:diff"
    push_report(alpha, token, json.dumps(report).encode(), ref="main")
    vulnerabilities = report["Results"][0]["Vulnerabilities"]
    removed = vulnerabilities.pop(0)
    added = copy.deepcopy(vulnerabilities[0])
    added.update({"VulnerabilityID": "CVE-2026-0001", "PkgName": "zlib", "Severity": "HIGH"})
    vulnerabilities.append(added)
    push_report(alpha, token, json.dumps(report).encode(), ref="main")
    alpha.wait_idle()
    text = scan_cards(alpha)[-1]["text"]
    assert "**+1** nouvelle, **−1** corrigée" in text
    assert removed["VulnerabilityID"] in json.dumps(fixture("trivy_image_report.json"))


def test_a_rescan_that_finds_nothing_new_is_one_line_without_its_table(alpha: World, token: str) -> None:
    report = fixture("trivy_image_report.json")
    report["ArtifactName"] = "registry.example/alpha/api:same"
    push_report(alpha, token, json.dumps(report).encode(), ref="main")
    alpha.wait_idle()
    cards = len(scan_cards(alpha))
    posts = len(channel_posts(alpha, "equipe-alpha"))
    push_report(alpha, token, json.dumps(report).encode(), ref="main")
    alpha.wait_idle()
    assert len(scan_cards(alpha)) == cards  # no second card, no table
    new = channel_posts(alpha, "equipe-alpha")[posts:]
    assert [p["message"] for p in new] == [
        "⚠️ Trivy — image registry.example/alpha/api:same : à corriger, rien de nouveau depuis l'analyse "
        "précédente (🔴 Critique **2** · 🟠 Haute **0** · 🟡 Moyenne **4** · 🔵 Basse **0**)."
    ]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"SchemaVersion": 2, "ArtifactName": "x", "Results": [', "tronqu"),
        (b"not json at all", "JSON"),
        (json.dumps({"SchemaVersion": 1, "ArtifactName": "x", "Results": []}).encode(), "version"),
    ],
)
def test_an_unreadable_report_gives_a_clear_message_and_nothing_crashes(
    alpha: World, token: str, raw: bytes, reason: str
) -> None:
    assert push_report(alpha, token, raw, ref="main").status_code == 202
    alpha.wait_idle()
    last = channel_posts(alpha, "equipe-alpha")[-1]["message"]
    assert "Rapport Trivy illisible" in last
    assert alpha.store().count("inbox", "source = 'trivy' AND status = 'failed'") == 0


def test_a_report_without_a_valid_token_or_for_another_project_is_refused(alpha: World, token: str) -> None:
    raw = (FIXTURES / "trivy_image_report.json").read_bytes()
    assert httpx.post(f"{alpha.bot_url}/hooks/trivy", content=raw).status_code == 401
    assert push_report(alpha, "cpn_not-a-token", raw).status_code == 401
    assert (
        httpx.post(
            f"{alpha.bot_url}/hooks/trivy",
            params={"project": "beta"},
            content=raw,
            headers={"Authorization": f"Bearer {token}"},
        ).status_code
        == 403
    )
    assert push_report(alpha, token, raw, repo="nope").status_code == 404


def test_a_scan_breaking_the_policy_is_flagged_and_mentions_the_owners(alpha: World, token: str) -> None:
    bob = User(alpha, "bob")
    bob.run("/cpn member add alpha @dave --role devops")
    refused = User(alpha, "dave").run("/cpn policy alpha --max-critical 0")["text"]
    assert refused.startswith("⛔ `policy` est réservé au rôle administrateur (ou plus) sur le projet `alpha`.")
    shown = bob.run("/cpn policy alpha --max-critical 0")["text"]
    assert "Critique tolérées : 0" in shown and "CRITICAL" not in shown
    push_report(alpha, token, (FIXTURES / "trivy_image_report.json").read_bytes(), ref="main")
    alpha.wait_idle()
    posts = channel_posts(alpha, "equipe-alpha")
    post = [p for p in posts if p["message"].startswith("❌ Ce scan dépasse")][-1]
    assert "@bob" in post["message"]
    assert "Critique : 2 (maximum 0)" in post["props"]["attachments"][0]["text"]
    bob.run("/cpn policy alpha --reset")


def test_a_waiver_is_honoured_until_it_expires_then_the_owners_are_told(alpha: World, token: str) -> None:
    bob = User(alpha, "bob")
    until = (date.today() + timedelta(days=30)).isoformat()
    answer = bob.run(f"/cpn scan waive alpha CVE-2019-14697 --until {until} --reason 'non exploitable ici'")
    assert "Dérogation enregistrée" in answer["text"]
    assert (
        "réservé" in User(alpha, "carol").run(f"/cpn scan waive alpha CVE-2019-1549 --until {until} --reason x")["text"]
    )
    push_report(alpha, token, (FIXTURES / "trivy_image_report.json").read_bytes(), ref="main")
    alpha.wait_idle()
    text = scan_cards(alpha)[-1]["text"]
    assert "Critique **0**" in text and "Dérogations appliquées : 2" in text  # one CVE, two packages
    assert "active" in bob.run("/cpn scan waivers alpha")["text"]
    # The waiver's date passes.

    async def expire() -> None:
        from bot.scans import expire_waivers

        assert alpha.bot is not None
        alpha.bot.store.db.execute("UPDATE waivers SET until = '2000-01-01'")
        await expire_waivers(alpha.bot)
        await expire_waivers(alpha.bot)

    alpha.run(expire())
    alpha.wait_idle()
    expired = [p for p in channel_posts(alpha, "equipe-alpha") if "a expiré" in p["message"]]
    assert len(expired) == 1 and "@bob" in expired[0]["message"] and "CVE-2019-14697" in expired[0]["message"]
    push_report(alpha, token, (FIXTURES / "trivy_image_report.json").read_bytes(), ref="main")
    alpha.wait_idle()
    assert "Critique **2**" in scan_cards(alpha)[-1]["text"]
    audit = [r["action"] for r in alpha.store().db.table("audit").rows]
    assert "scan.waive" in audit


def test_the_scan_command_shows_the_latest_per_image_and_the_history(alpha: World, token: str) -> None:
    # Its own scans (pytest-xdist may run it before, or apart from, the tests above).
    report = fixture("trivy_image_report.json")
    push_report(alpha, token, json.dumps(report).encode(), ref="main")
    for tag in ("diff", "history"):
        report["ArtifactName"] = f"registry.example/alpha/api:{tag}"
        push_report(alpha, token, json.dumps(report).encode(), ref="main")
    alpha.wait_idle()
    text = User(alpha, "bob").run("/cpn scan alpha")["text"]
    assert "Scans de vulnérabilités du projet alpha" in text and "historique" in text
    assert "ghcr.io/aquasecurity/trivy-test-images" in text and ".tar.gz" not in text  # the image, not the file
    assert "Critique : " in text and "CRITICAL" not in text  # severities in the reader's language
    # One history per image, whatever its tag: the latest (api:history) stands for the image.
    assert "registry.example/alpha/api" in text and "api:diff" not in text
    # One line per image, its trend oldest first, and the notation explained once.
    (api,) = [line for line in text.splitlines() if "registry.example/alpha/api" in line]
    assert re.search(r"historique : \d+( → \d+)+ \(\+\d+/−\d+\)", api), api
    assert text.splitlines()[-1].startswith("_Historique : le total des vulnérabilités des 5 derniers scans")


# -- from the pipeline itself -----------------------------------------------------------------------


def test_a_pipeline_posts_its_quality_gate_and_its_scan_in_its_thread(make_world: Callable[..., World]) -> None:
    world = make_world()
    bob = User(world, "bob")
    bob.run("/cpn project create alpha")
    world.wait_idle(30)
    world.scenario("forge/projects/alpha/api", quality="failed")
    bob.run("/cpn repo add alpha api --url https://github.com/ministere/api.git")
    wait_for(
        lambda: (
            world.states["gitlab"].quiet and len(world.states["gitlab"].pipelines_of("forge/projects/alpha/api")) >= 1
        ),
        timeout=20,
        what="the build",
    )
    wait_for(lambda: any("Trivy" in a.get("title", "") for a in attachments(world)), timeout=10, what="the scan")
    world.wait_idle()
    posts = channel_posts(world, "equipe-alpha")
    build = next(p for p in posts if "pipeline #" in json.dumps(p))
    thread = [p for p in posts if p["root_id"] and p["root_id"] == build["root_id"]]
    titles = [a.get("title", "") for p in thread for a in (p.get("props") or {}).get("attachments") or []]
    assert any("quality gate en échec" in t for t in titles)
    assert any("Trivy" in t for t in titles)
    assert any("Vulnérabilités" in p["message"] for p in thread)  # the full list, in the thread
    text = text_of(bob.run("/cpn quality alpha api"))
    assert "quality gate en échec" in text
    world.states["sonarqube"].run_analysis("alpha-api", "main", "a" * 40, "passed")
    text = text_of(bob.run("/cpn quality alpha api"))
    assert "Couverture" in text and ("↗" in text or "↘" in text)
