"""Strings from SonarQube and Argo CD bodies reach posts inert; links only to the configured servers."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from bot.i18n import Translator
from bot.render.deploys import deploy_card, drift_line, external_line
from bot.render.quality import gate_card
from bot.workflows.deploy import Progress
from bot.workflows.quality import parse_webhook
from services.emulators.fixtures import fixtures_dir
from tests.integration.test_webhooks_escaping import HOSTILE, live_markup

FR = Translator("fr")
SONAR = "https://sonar.platform.example"


def sonar_body(kind: str) -> dict[str, Any]:
    body: dict[str, Any] = copy.deepcopy(json.loads((fixtures_dir() / "sonarqube_webhook.json").read_text())[kind])
    return body


@pytest.mark.parametrize("kind", ["ok", "error"])
def test_a_gate_card_links_only_to_the_configured_sonarqube_whatever_the_body_says(kind: str) -> None:
    body = sonar_body(kind)
    body["serverUrl"] = "javascript:alert(1)//"
    body["project"]["url"] = "https://evil.example/dashboard?id=aws"
    body["branch"]["url"] = "https://evil.example/dashboard?id=aws"
    result = parse_webhook(body, SONAR)
    card = gate_card(result, "demo", "api", FR)
    expected = f"{SONAR}/dashboard?id=aws" + ("" if kind == "ok" else "&branch=feature%2Fpayments-refactor")
    assert card["title_link"] == expected


def test_sonarqube_strings_in_a_gate_card_are_inert() -> None:
    body = sonar_body("error")
    body["branch"]["name"] = HOSTILE
    body["qualityGate"]["conditions"][0]["metric"] = HOSTILE
    body["qualityGate"]["conditions"][0]["value"] = HOSTILE
    card = gate_card(parse_webhook(body, SONAR), "demo", "api", FR)
    for part in ("title", "text", "fallback"):
        assert live_markup(str(card.get(part, "")), SONAR) == [], card[part]


def test_argocd_strings_in_deploy_posts_are_inert() -> None:
    line = external_line("on-deployed", HOSTILE, HOSTILE, HOSTILE, FR)
    assert live_markup(line, "https://argocd.example") == [], line
    progress = Progress(phase=HOSTILE, sync=HOSTILE, health=HOSTILE, outcome="failed", message=HOSTILE)
    card = deploy_card("deploy", "demo", "dev", "api", "@bob", "demo-dev", "", progress, FR)
    assert live_markup(card["text"], "https://argocd.example") == [], card["text"]
    drift = drift_line(HOSTILE, HOSTILE, 5, "https://argocd.example/applications/x", FR)
    assert live_markup(drift, "https://argocd.example") == [], drift


def test_a_pushed_reports_finding_links_only_to_trivys_advisories() -> None:
    from bot.render.scans import finding_url
    from bot.workflows.scans import parse_report

    report = json.loads((fixtures_dir() / "trivy_image_report.json").read_text())
    found = report["Results"][0]["Vulnerabilities"]
    found[0]["PrimaryURL"] = "https://evil.example/nvd/cve-2019-14697"
    found[1].update({"VulnerabilityID": "GHSA-xxxx-yyyy-zzzz", "PrimaryURL": "https://evil.example/ghsa"})
    parsed = parse_report(json.dumps(report).encode())
    urls = {f.id: finding_url(f) for f in parsed.findings}
    assert urls[found[0]["VulnerabilityID"]] == f"https://avd.aquasec.com/nvd/{found[0]['VulnerabilityID'].lower()}"
    assert urls["GHSA-xxxx-yyyy-zzzz"] == ""
    assert all(u == "" or u.startswith("https://avd.aquasec.com/") for u in urls.values())
