"""SonarQube quality gates: signatures, the fixture's deliveries replayed, trends and the cards."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from bot.i18n import Translator
from bot.render.quality import gate_card, quality_card, value_text
from bot.workflows.naming import console_sonar_key
from bot.workflows.quality import (
    KEY_MEASURES,
    Condition,
    GateResult,
    UnreadablePayload,
    delivery_id,
    from_project_status,
    owner_of,
    parse_webhook,
    signature_ok,
    status_of,
    trend,
)
from services.emulators.fixtures import fixtures_dir
from tests.support.mattermost import assert_inert

FIXTURES = fixtures_dir()
FIXTURE: dict[str, Any] = json.loads((FIXTURES / "sonarqube_webhook.json").read_text())
FR, EN = Translator("fr"), Translator("en")
SECRET = "s3cr3t-webhook"


def body(name: str) -> dict[str, Any]:
    return json.loads(json.dumps(FIXTURE[name]))  # a copy the test may change


def raw(name: str) -> bytes:
    return json.dumps(FIXTURE[name], separators=(",", ":")).encode()


def sign(data: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------- signature


def test_a_good_signature_is_accepted() -> None:
    data = raw("error")
    assert signature_ok(SECRET, data, sign(data))


def test_uppercase_hex_and_surrounding_blanks_are_accepted() -> None:
    data = raw("ok")
    assert signature_ok(SECRET, data, sign(data).upper())
    assert signature_ok(SECRET, data, f" {sign(data)} ")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        sign(b"another body"),
        sign(b"", "other-secret"),
        "zz" * 32,
        "é" * 64,
        "not hex",
    ],
)
def test_missing_or_bad_signatures_are_refused(header: str | None) -> None:
    assert not signature_ok(SECRET, raw("ok"), header)


def test_a_signature_under_another_secret_or_over_a_changed_body_is_refused() -> None:
    data = raw("ok")
    assert not signature_ok("other-secret", data, sign(data))
    assert not signature_ok(SECRET, data + b" ", sign(data))
    assert not signature_ok("", data, sign(data, ""))  # no secret configured: nothing can be checked


def test_the_inbox_key_is_the_task_id_or_the_body_hash() -> None:
    assert delivery_id(raw("error")) == "task:AZTxWb3iRYC9Ho0n5Xkq"
    ok = raw("ok")
    assert delivery_id(ok) == "sha256:" + hashlib.sha256(ok).hexdigest()
    assert delivery_id(b"not json").startswith("sha256:")


# --------------------------------------------------------------------------- webhook bodies


def test_the_ok_body_without_task_id_is_read() -> None:
    result = parse_webhook(body("ok"))
    assert result.status == "OK" and result.passed
    assert result.task_id is None
    assert result.project_key == "aws" and result.project_name == "aws"
    assert (result.branch, result.branch_type, result.is_main) == ("main", "BRANCH", True)
    assert result.revision == "c8e602a6c822d8bd2fbec3f622303836d5631879"
    assert result.analysed_at == "2025-02-10T10:51:17+0100"
    assert result.gate_name == "Sonar way"
    assert result.dashboard_url == "http://localhost:9000/dashboard?id=aws"
    assert len(result.conditions) == 4 and result.failed == ()
    hotspots = result.conditions[2]
    assert hotspots.metric == "new_security_hotspots_reviewed" and hotspots.value is None


def test_the_error_body_gives_exactly_its_three_failed_conditions() -> None:
    result = parse_webhook(body("error"))
    assert result.status == "ERROR" and not result.passed
    assert result.task_id == "AZTxWb3iRYC9Ho0n5Xkq"
    assert (result.branch, result.is_main) == ("feature/payments-refactor", False)
    assert result.dashboard_url == "http://localhost:9000/dashboard?id=aws&branch=feature%2Fpayments-refactor"
    assert [(c.metric, c.operator, c.value, c.threshold) for c in result.failed] == [
        ("new_coverage", "LT", "42.5", "80"),
        ("new_security_hotspots_reviewed", "LT", "50.0", "100"),
        ("new_violations", "GT", "7", "0"),
    ]
    assert len(result.conditions) == 4


def test_optional_fields_may_be_missing() -> None:
    minimal = {"project": {"key": "demo-api"}, "qualityGate": {"status": "ERROR"}}
    result = parse_webhook(minimal)
    assert result.status == "ERROR" and result.conditions == () and result.task_id is None
    assert result.project_name == "demo-api" and result.is_main and result.dashboard_url == ""
    built = parse_webhook({**minimal, "serverUrl": "https://sonar.example/", "branch": {"name": "dev"}})
    assert built.dashboard_url == "https://sonar.example/dashboard?id=demo-api&branch=dev"


def test_a_failed_background_task_has_no_gate() -> None:
    result = parse_webhook({"status": "FAILED", "taskId": "AX1", "project": {"key": "demo-api"}})
    assert result.status == "NONE" and result.task_status == "FAILED"
    assert "⚠️" in gate_card(result, "demo", "api", FR)["text"]


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {},
        {"object_kind": "pipeline", "project": {"id": 3}},
        {"project": {"key": "demo-api"}},
        {"project": "demo-api", "qualityGate": {"status": "OK"}},
        {"project": {"key": "demo-api"}, "qualityGate": "OK"},
        {"project": {"key": "demo-api"}, "qualityGate": {"status": "MAYBE"}},
        {"project": {"key": "demo-api"}, "qualityGate": {"status": "OK", "conditions": "all"}},
    ],
)
def test_a_body_that_is_no_quality_gate_is_unreadable(payload: Any) -> None:
    with pytest.raises(UnreadablePayload):
        parse_webhook(payload)
    assert issubclass(UnreadablePayload, ValueError)


def test_a_dashboard_link_that_is_not_http_is_dropped() -> None:
    payload = body("error")
    payload["branch"]["url"] = "javascript:alert(1)"
    payload["serverUrl"] = "javascript:alert(1)"
    payload["project"]["url"] = "data:text/html,x"
    result = parse_webhook(payload)
    assert result.dashboard_url == ""
    assert "title_link" not in gate_card(result, "demo", "api", FR)


# --------------------------------------------------------------------------- Web API shape


def test_project_status_conditions() -> None:
    status = {
        "status": "ERROR",
        "conditions": [
            {"status": "ERROR", "metricKey": "new_coverage", "comparator": "LT", "errorThreshold": "80",
             "actualValue": "42.5"},
            {"status": "OK", "metricKey": "new_duplicated_lines_density", "comparator": "GT",
             "errorThreshold": "3", "actualValue": "1.2"},
            {"status": "NONE", "metricKey": "new_security_hotspots_reviewed", "comparator": "LT",
             "errorThreshold": "100"},
        ],
        "ignoredConditions": False,
    }  # fmt: skip
    conditions = from_project_status(status)
    assert conditions[0] == Condition("new_coverage", "LT", "42.5", "80", "ERROR")
    assert [c.metric for c in conditions if c.failed] == ["new_coverage"]
    assert conditions[2].value is None
    assert status_of(status) == "ERROR"
    assert from_project_status({"status": "NONE", "conditions": []}) == []
    assert status_of({}) == "NONE"


# --------------------------------------------------------------------------- trends


def test_coverage_up_is_better_and_bugs_up_is_worse() -> None:
    before = {"coverage": "61.0", "bugs": "0", "duplicated_lines_density": "2.1", "code_smells": "12"}
    now = {"coverage": "82.3", "bugs": "3", "duplicated_lines_density": "1.1", "code_smells": "12", "ncloc": "9"}
    trends = trend(before, now)
    assert trends["coverage"].direction == "better" and trends["coverage"].delta == pytest.approx(21.3)
    assert trends["bugs"].direction == "worse" and trends["bugs"].delta == 3
    assert trends["duplicated_lines_density"].direction == "better"
    assert trends["code_smells"].direction == "same" and trends["code_smells"].delta == 0
    assert "ncloc" not in trends  # neither better nor worse
    assert trend(None, now) == {}
    assert trend({"coverage": "n/a"}, {"coverage": "80"}) == {}


def test_hotspots_reviewed_down_and_rating_up_are_worse() -> None:
    trends = trend(
        {"security_hotspots_reviewed": "100.0", "reliability_rating": "1.0"},
        {"security_hotspots_reviewed": "50.0", "reliability_rating": "3.0"},
    )
    assert trends["security_hotspots_reviewed"].direction == "worse"
    assert trends["reliability_rating"].direction == "worse"


# --------------------------------------------------------------------------- naming


@pytest.mark.parametrize(
    ("key", "projects", "owner"),
    [
        # The bot's own keys (direct mode): <slug>-<repo>, a slug without dashes.
        ("demo-front-end", {"demo"}, ("demo", "front-end")),
        ("other-api", {"demo"}, None),
        ("demo-", {"demo"}, None),
        ("demo", {"demo"}, None),
        ("aws", {"aws"}, None),
        # The console's keys: <slug>-<repo>-<4 hex of the repository's name>; its slugs may be name-N.
        (console_sonar_key("demo", "api"), {"demo"}, ("demo", "api")),
        (console_sonar_key("demo", "front-end"), {"demo"}, ("demo", "front-end")),
        (console_sonar_key("demo-1", "api"), {"demo", "demo-1"}, ("demo-1", "api")),
        (console_sonar_key("demo-1", "api"), {"demo"}, None),
        (console_sonar_key("a-b-2", "x-y"), {"a", "a-b", "a-b-2"}, ("a-b-2", "x-y")),
        ("x" * 300, {"x"}, None),
    ],
)
def test_the_project_and_repository_of_a_sonar_key(key: str, projects: set[str], owner: tuple[str, str] | None) -> None:
    assert owner_of(key, projects.__contains__) == owner


# --------------------------------------------------------------------------- cards


def test_the_error_card_shows_only_the_three_failed_conditions() -> None:
    card = gate_card(parse_webhook(body("error")), "demo", "api", FR)
    assert card["title"].startswith("❌ demo / api") and "en échec" in card["title"]
    assert card["color"] == "#CE0500"
    assert card["title_link"] == "http://localhost:9000/dashboard?id=aws&branch=feature%2Fpayments-refactor"
    text = card["text"]
    assert "feature/payments-refactor" in text and "`7f3a1c9d`" in text
    conditions = [line for line in text.splitlines() if line.startswith("- ")]
    assert conditions == [
        "- Couverture du nouveau code : 42,5\u00a0% (seuil : 80,0\u00a0%)",
        "- Points sensibles de sécurité revus (nouveau code) : 50,0\u00a0% (seuil : 100,0\u00a0%)",
        "- Nouveaux problèmes : 7 (seuil : 0)",
    ]
    assert "Duplication" not in text


def test_the_ok_card_is_green_with_no_condition() -> None:
    card = gate_card(parse_webhook(body("ok")), "demo", "api", FR)
    assert card["title"] == "✅ demo / api — quality gate réussie"
    assert card["color"] == "#18753C"
    assert card["title_link"] == "http://localhost:9000/dashboard?id=aws"
    assert "- " not in card["text"] and "`c8e602a6`" in card["text"]


def test_the_english_card() -> None:
    card = gate_card(parse_webhook(body("error")), "demo", "api", EN)
    assert card["title"] == "❌ demo / api — quality gate failed"
    assert "- Coverage on new code: 42.5% (threshold: 80.0%)" in card["text"]
    assert "- New issues: 7 (threshold: 0)" in card["text"]


def test_ratings_are_letters_and_unknown_metrics_show_their_key() -> None:
    payload = body("error")
    payload["qualityGate"]["conditions"] = [
        {"metric": "new_reliability_rating", "operator": "GREATER_THAN", "value": "3", "status": "ERROR",
         "errorThreshold": "1"},
        {"metric": "custom_*metric*", "operator": "GREATER_THAN", "value": "n/a", "status": "ERROR",
         "errorThreshold": "0"},
    ]  # fmt: skip
    text = gate_card(parse_webhook(payload), "demo", "api", FR)["text"]
    assert "- Fiabilité (nouveau code) : C (seuil : A)" in text
    assert "custom\\_\\*metric\\* : n/a (seuil : 0)" in text
    assert [value_text("sqale_rating", v, FR) for v in ("1.0", "2", "5.0", "9")] == ["A", "B", "E", "9"]


def test_a_malicious_branch_name_is_inert() -> None:
    payload = body("error")
    payload["branch"]["name"] = "@channel [clique](https://evil.example) **x**"
    payload["revision"] = "`@all`"
    text = gate_card(parse_webhook(payload), "demo", "api", FR)["text"]
    assert_inert(text)  # no live mention, no link: the address is shown in a code span, as typed


def test_a_pull_request_analysis() -> None:
    payload = body("error")
    payload["branch"] = {"name": "42", "type": "PULL_REQUEST", "isMain": False}
    result = parse_webhook(payload)
    assert result.is_pull_request
    assert result.dashboard_url == "http://localhost:9000/dashboard?id=aws&pullRequest=42"
    assert "merge request !42" in gate_card(result, "demo", "api", FR)["text"]


def test_the_quality_card_shows_measures_and_trends() -> None:
    before = {
        "bugs": "0",
        "vulnerabilities": "0",
        "code_smells": "14",
        "coverage": "61.0",
        "duplicated_lines_density": "2.1",
        "security_hotspots_reviewed": "100.0",
    }
    now = {"bugs": "3", "vulnerabilities": "0", "code_smells": "12", "coverage": "82.3",
           "duplicated_lines_density": "2.1", "security_hotspots_reviewed": "50.0", "new_coverage": "42.5"}  # fmt: skip
    card = quality_card(
        "demo", "api", "main", "ERROR", now, trend(before, now), FR, "http://sonar/dashboard?id=demo-api"
    )
    assert card["title"] == "❌ demo / api — quality gate en échec"
    assert card["title_link"] == "http://sonar/dashboard?id=demo-api"
    lines = card["text"].splitlines()
    assert "- Bugs : 3 ↗ +3 ⚠️" in lines
    assert "- Couverture : 82,3\u00a0% ↗ +21,3\u00a0pts ✅" in lines
    assert "- Mauvaises pratiques : 12 ↘ -2 ✅" in lines
    assert "- Points sensibles de sécurité revus : 50,0\u00a0% ↘ -50,0\u00a0pts ⚠️" in lines
    assert "- Duplication : 2,1\u00a0% →" in lines
    assert "- Vulnérabilités : 0 →" in lines
    assert "- Couverture du nouveau code : 42,5\u00a0%" in lines
    assert len([line for line in lines if line.startswith("- ")]) == len(KEY_MEASURES) + 1


def test_the_quality_card_without_analysis_or_history() -> None:
    card = quality_card("demo", "api", None, "NONE", {}, {}, EN)
    assert card["title"] == "❔ demo / api — quality gate not computed"
    assert "title_link" not in card
    assert "not been analysed" in card["text"]
    fresh = quality_card("demo", "api", "dev", "OK", {"bugs": "0"}, {}, EN)
    assert "- Bugs: 0" in fresh["text"].splitlines() and "- Coverage: —" in fresh["text"].splitlines()


def test_the_quality_card_lists_the_failed_conditions_it_is_given() -> None:
    failed = [Condition("new_coverage", "LT", "42.5", "80", "ERROR"), Condition("bugs", "GT", "0", "0", "OK")]
    text = quality_card("demo", "api", "main", "ERROR", {"bugs": "0"}, {}, EN, failed=failed)["text"]
    assert "- Coverage on new code: 42.5% (threshold: 80.0%)" in text
    assert "(threshold: 0)" not in text


@pytest.mark.parametrize(
    ("tr", "line"),
    [
        (FR, "Couverture du nouveau code : 85,0\u00a0% · Nouveaux problèmes : 0"),
        (EN, "Coverage on new code: 85.0% · New issues: 0"),
    ],
    ids=["fr", "en"],
)
def test_a_passed_gate_says_its_key_measures_on_one_line(tr: Translator, line: str) -> None:
    conditions = (
        Condition("new_violations", "GT", "0", "0", "OK"),
        Condition("new_coverage", "LT", "85.0", "80", "OK"),
    )
    passed = GateResult("demo-api", "demo-api", "OK", conditions)
    assert gate_card(passed, "demo", "api", tr)["text"].splitlines()[1] == line
    failed = GateResult(
        "demo-api", "demo-api", "ERROR", (*conditions[:1], Condition("new_coverage", "LT", "42.5", "80", "ERROR"))
    )
    assert "·" not in gate_card(failed, "demo", "api", tr)["text"]  # a failed gate lists only what failed
