"""Trivy reports: read, counted, judged against a policy, compared, rendered — and never a leak."""

from __future__ import annotations

import copy
import csv
import io
import json
import re
from datetime import date
from typing import Any

import pytest

from bot.i18n import Translator
from bot.render.scans import full_csv, full_list, safe_url, scan_card, unreadable
from bot.workflows.scans import (
    REASONS,
    Breach,
    Policy,
    ReportUnreadable,
    ScanReport,
    active_waivers,
    diff,
    harbor_report,
    image_reference,
    parse_report,
    summarize,
)
from services.emulators.fixtures import fixtures_dir
from tests.support.mattermost import live_mentions

FIXTURES = fixtures_dir()
FR, EN = Translator("fr"), Translator("en")
TOKEN = "ghp_R3alL00kingT0kenABCDEFGHIJKLMNOPQRST"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_bytes())
    return data


def dump(report: dict[str, Any]) -> bytes:
    return json.dumps(report, indent=2, ensure_ascii=False).encode()


def image() -> dict[str, Any]:
    return load("trivy_image_report.json")


def vulns(report: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = report["Results"][0]["Vulnerabilities"]
    return found


def card_text(card: dict[str, Any]) -> str:
    return json.dumps(card, ensure_ascii=False)


def minimal(**extra: Any) -> dict[str, Any]:
    report: dict[str, Any] = {
        "SchemaVersion": 2,
        "ArtifactName": "registry.example/app:1.0",
        "ArtifactType": "container_image",
        "Results": [],
    }
    report.update(extra)
    return report


# -- the fixtures ---------------------------------------------------------------------------------


def test_the_alpine_image_report_is_read_and_counted() -> None:
    report = parse_report((FIXTURES / "trivy_image_report.json").read_bytes())
    assert report.artifact_type == "container_image" and report.kind == "image"
    # The image as people pull it (Metadata.RepoTags), not the archive trivy read.
    assert report.artifact_name == "ghcr.io/aquasecurity/trivy-test-images:alpine-39"
    assert (report.os, report.os_eosl) == ("alpine 3.9.4", True)
    assert len(report.findings) == 6
    first = report.findings[0]
    assert (first.id, first.pkg, first.installed, first.fixed, first.status) == (
        "CVE-2019-1549",
        "libcrypto1.1",
        "1.1.1b-r1",
        "1.1.1d-r0",
        "fixed",
    )
    assert first.url == "https://avd.aquasec.com/nvd/cve-2019-1549"
    assert first.target == "testdata/fixtures/images/alpine-39.tar.gz (alpine 3.9.4)"
    assert first.klass == "os-pkgs"
    assert first.title == "openssl: information disclosure in fork()"
    musl = next(f for f in report.findings if f.pkg == "musl")
    assert musl.title.startswith("musl libc through 1.1.23")  # no Title: the description's start

    summary = summarize(report, set())
    assert dict(summary.counts) == {"CRITICAL": 2, "HIGH": 0, "MEDIUM": 4, "LOW": 0, "UNKNOWN": 0}
    assert (summary.total, summary.fixable, summary.waived, summary.unfixed_ignored) == (6, 6, 0, 0)
    assert [f.severity for f in summary.top] == ["CRITICAL", "CRITICAL", "MEDIUM", "MEDIUM", "MEDIUM", "MEDIUM"]
    assert {f.pkg for f in summary.top[:2]} == {"musl", "musl-utils"}
    assert summary.verdict == "warn" and not summary.breached
    target = "testdata/fixtures/images/alpine-39.tar.gz (alpine 3.9.4)"
    assert summary.keys == {
        f"{vuln}|{pkg}|{target}"
        for vuln, pkg in [
            ("CVE-2019-1549", "libcrypto1.1"),
            ("CVE-2019-1551", "libcrypto1.1"),
            ("CVE-2019-1549", "libssl1.1"),
            ("CVE-2019-1551", "libssl1.1"),
            ("CVE-2019-14697", "musl"),
            ("CVE-2019-14697", "musl-utils"),
        ]
    }
    assert summary.misconfigs == () and summary.secrets == ()


def test_the_filesystem_report_is_read_and_counted() -> None:
    report = parse_report((FIXTURES / "trivy_fs_report.json").read_bytes())
    assert report.artifact_type == "filesystem" and report.kind == "repository"
    assert report.os == ""
    summary = summarize(report, set())
    assert dict(summary.counts) == {"CRITICAL": 0, "HIGH": 1, "MEDIUM": 1, "LOW": 0, "UNKNOWN": 0}
    assert summary.fixable == 2
    top = summary.top[0]
    assert (top.id, top.pkg, top.installed, top.fixed, top.target) == (
        "CVE-2019-14806",
        "Werkzeug",
        "0.11",
        "0.15.3",
        "requirements.txt",
    )
    assert summary.verdict == "warn"


def test_a_repository_report_is_accepted_too() -> None:
    report = load("trivy_fs_report.json")
    report["ArtifactType"] = "repository"
    assert parse_report(dump(report)).kind == "repository"


# -- policy, waivers, unfixed ---------------------------------------------------------------------


def test_policy_limits_give_a_verdict_with_its_reasons() -> None:
    report = parse_report(dump(image()))
    breached = summarize(report, set(), Policy(max_critical=0, max_high=0))
    assert breached.verdict == "fail"
    assert breached.breaches == (Breach("CRITICAL", 2, 0),)  # HIGH: 0 found, within its limit
    within = summarize(report, set(), Policy(max_critical=2))
    assert within.verdict == "warn" and within.breaches == ()
    fs = parse_report((FIXTURES / "trivy_fs_report.json").read_bytes())
    assert summarize(fs, set(), Policy(max_high=0)).breaches == (Breach("HIGH", 1, 0),)
    with pytest.raises(ValueError):
        Policy(max_critical=-1)


def test_ignore_unfixed_changes_the_counts_and_the_verdict() -> None:
    data = image()
    for vuln in vulns(data):
        if vuln["PkgName"].startswith("musl"):
            vuln.pop("FixedVersion")
            vuln["Status"] = "affected"
    report = parse_report(dump(data))
    policy = Policy(max_critical=0)
    shown = summarize(report, set(), policy)
    assert shown.counts["CRITICAL"] == 2 and shown.fixable == 4 and shown.total == 6
    assert shown.verdict == "fail"
    assert [f.fixable for f in shown.top[:2]] == [False, False]

    hidden = summarize(report, set(), Policy(max_critical=0, ignore_unfixed=True))
    assert hidden.counts["CRITICAL"] == 0 and hidden.counts["MEDIUM"] == 4
    assert (hidden.total, hidden.fixable, hidden.unfixed_ignored) == (4, 4, 2)
    assert hidden.verdict == "ok" and hidden.breaches == ()
    musl = next(f.key for f in report.findings if f.pkg == "musl")
    assert musl in hidden.keys and musl not in hidden.visible_keys
    text = card_text(scan_card(hidden, None, "alpine", FR))
    assert "--ignore-unfixed" in text and ": 2" in text


def test_fixable_findings_come_first_within_a_severity() -> None:
    data = image()
    for vuln in vulns(data):
        if vuln["PkgName"] == "libcrypto1.1":
            vuln.pop("FixedVersion")
            vuln["Status"] = "will_not_fix"
    summary = summarize(parse_report(dump(data)), set())
    medium = [f for f in summary.top if f.severity == "MEDIUM"]
    assert [f.fixable for f in medium] == [True, True, False, False]
    assert summary.fixable == 4


def test_waivers_are_by_id_until_their_date_and_leave_the_counts() -> None:
    waivers = {
        "cve-2019-14697": date(2030, 1, 1),
        "CVE-2019-1551": date(2024, 6, 30),  # expired
        "CVE-2001-0001": date(2030, 1, 1),  # in no report
    }
    active = active_waivers(waivers, today=date(2025, 1, 1))
    assert active == {"CVE-2019-14697", "CVE-2001-0001"}
    assert active_waivers({"CVE-1": date(2025, 1, 1)}, today=date(2025, 1, 1)) == {"CVE-1"}  # last day counts

    summary = summarize(parse_report(dump(image())), active, Policy(max_critical=0))
    assert summary.counts["CRITICAL"] == 0 and summary.total == 4
    assert summary.waived == 2 and {f.pkg for f in summary.waived_findings} == {"musl", "musl-utils"}
    assert summary.verdict == "ok"
    assert summary.unused_waivers == {"CVE-2001-0001"}
    text = card_text(scan_card(summary, None, "alpine", FR))
    assert "Dérogations appliquées : 2" in text and "CVE-2001-0001" in text
    assert "CVE-2019-14697" in full_list(summary)  # listed as waived
    assert "CVE-2019-14697,musl,1.1.20-r4,1.1.20-r5,fixed" in full_csv(summary)


# -- diff between two scans -----------------------------------------------------------------------


def test_diff_between_two_scans_of_the_same_image() -> None:
    before = summarize(parse_report(dump(image())), set())
    data = image()
    kept = [v for v in vulns(data) if v["VulnerabilityID"] != "CVE-2019-1551"]  # fixed by an upgrade
    newcomer = copy.deepcopy(kept[-1])
    newcomer.update(VulnerabilityID="CVE-2099-0001", Severity="HIGH", Title="musl: something new")
    waived_newcomer = copy.deepcopy(kept[0])
    waived_newcomer.update(VulnerabilityID="CVE-2099-0002")
    data["Results"][0]["Vulnerabilities"] = [*kept, newcomer, waived_newcomer]
    after = summarize(parse_report(dump(data)), {"CVE-2099-0002"})

    change = diff(set(before.keys), after)
    target = "|testdata/fixtures/images/alpine-39.tar.gz (alpine 3.9.4)"
    assert change.new == ("CVE-2099-0001|musl-utils" + target,)  # the waived newcomer is no news
    assert change.fixed == ("CVE-2019-1551|libcrypto1.1" + target, "CVE-2019-1551|libssl1.1" + target)
    assert (change.new_count, change.fixed_count, change.first) == (1, 2, False)

    card = scan_card(after, change, "registry.example/app:2", FR)
    assert "**+1**" in card["text"] and "**−2**" in card["text"]
    new_line = next(line for line in card["text"].splitlines() if "CVE-2099-0001" in line)
    assert "🆕" in new_line
    assert "Rien de nouveau" in scan_card(after, diff(set(after.keys), after), "x", FR)["text"]
    first = diff(None, after)
    assert first.first and first.new == () and "Première analyse" in scan_card(after, first, "x", FR)["text"]


# -- unreadable reports ---------------------------------------------------------------------------


def reason(raw: bytes) -> str:
    with pytest.raises(ReportUnreadable) as caught:
        parse_report(raw)
    assert caught.value.reason in REASONS
    assert str(caught.value) == caught.value.reason  # no piece of the report in the message
    return caught.value.reason


@pytest.mark.parametrize("share", [0.01, 0.3, 0.5, 0.77, 0.99])
def test_a_truncated_report_is_unreadable(share: float) -> None:
    raw = (FIXTURES / "trivy_image_report.json").read_bytes()
    assert reason(raw[: int(len(raw) * share)]) == "truncated"


def test_truncated_in_a_literal_or_right_after_a_value() -> None:
    raw = dump(minimal(Results=[{"Target": "x", "Vulnerabilities": [{"VulnerabilityID": "CVE-1", "X": True}]}]))
    cut = raw.index(b"true") + 2
    assert reason(raw[:cut]) == "truncated"
    assert reason(raw.rstrip()[:-1]) == "truncated"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", "empty"),
        (b"  \n", "empty"),
        (b"<html><body>502 Bad Gateway</body></html>", "not_json"),
        (b"Trivy failed: no space left on device", "not_json"),
        (b'{"SchemaVersion": 2,, }', "not_json"),
        (b'"just a string"', "not_trivy"),
        (b"[]", "schema"),
        ("{}".encode("utf-16"), "encoding"),
    ],
)
def test_garbage_is_unreadable(raw: bytes, expected: str) -> None:
    assert reason(raw) == expected


def test_wrong_schemas_are_unreadable() -> None:
    old = image()
    old["SchemaVersion"] = 1
    assert reason(dump(old)) == "schema"
    missing_version = image()
    del missing_version["SchemaVersion"]
    assert reason(dump(missing_version)) == "schema"
    assert reason(dump(minimal(Results={"Target": "x"}))) == "not_trivy"
    assert reason(dump(minimal(Results=["x"]))) == "not_trivy"
    assert reason(dump(minimal(Results=[{"Target": "x", "Vulnerabilities": {"a": 1}}]))) == "not_trivy"
    assert reason(dump(minimal(Results=[{"Target": "x", "Vulnerabilities": [1]}]))) == "not_trivy"
    assert reason(dump(minimal(Results=[{"Target": "x", "Vulnerabilities": [{"PkgName": "a"}]}]))) == "not_trivy"
    assert reason(dump(minimal(ArtifactName=None))) == "not_trivy"
    assert reason(dump(minimal(ArtifactType="vm"))) == "artifact"
    assert reason(dump(minimal(ArtifactType="aws_account"))) == "artifact"
    assert reason(dump(minimal()) + b" trailing") == "not_json"
    assert reason(b'{"SchemaVersion": 2, "N": ' + b"9" * 5000 + b"}") == "not_json"
    assert reason(b"[" * 100_000) in ("truncated", "schema")


def test_unreadable_messages_are_clear_in_both_languages() -> None:
    for key in REASONS:
        for tr in (FR, EN):
            text = unreadable(key, tr)
            assert "scan." not in text and "{" not in text
    assert unreadable("truncated", FR).startswith("⚠️ Rapport Trivy illisible : le fichier est tronqué")
    assert "Unreadable Trivy report" in unreadable("schema", EN)
    assert unreadable("no-such-reason <@all>", FR) == unreadable("other", FR)


# -- reading details ------------------------------------------------------------------------------


def test_nulls_key_order_bom_and_non_ascii_text() -> None:
    data = minimal(
        Results=[
            {
                "Vulnerabilities": [
                    {
                        "VulnerabilityID": "GHSA-abcd-1234",
                        "PkgName": "café-lib",
                        "InstalledVersion": "1.0",
                        "Severity": "weird",
                        "Title": "l’attaquant «distant» 🔥",
                    }
                ],
                "Target": "srv/package-lock.json",  # after its vulnerabilities
                "Class": "lang-pkgs",
            },
            {"Target": "x", "Vulnerabilities": None, "Misconfigurations": None, "Secrets": None},
        ]
    )
    report = parse_report(b"\xef\xbb\xbf" + dump(data))
    (finding,) = report.findings
    assert finding.title == "l’attaquant «distant» 🔥" and finding.pkg == "café-lib"
    assert finding.target == "srv/package-lock.json" and finding.severity == "UNKNOWN"
    assert not finding.fixable
    escaped = parse_report(json.dumps(data).encode())  # \u escapes instead of raw UTF-8
    assert escaped.findings == report.findings


def test_only_failed_misconfigurations_are_kept_and_shown() -> None:
    data = minimal(
        ArtifactType="filesystem",
        ArtifactName="https://gitlab.example/team/app",
        Results=[
            {
                "Target": "Dockerfile",
                "Class": "config",
                "MisconfSummary": {"Successes": 1, "Failures": 1},
                "Misconfigurations": [
                    {
                        "ID": "DS002",
                        "Title": "Image user should not be 'root'",
                        "Severity": "HIGH",
                        "Status": "FAIL",
                        "PrimaryURL": "https://avd.aquasec.com/misconfig/ds002",
                        "CauseMetadata": {"Code": {"Lines": []}},
                    },
                    {"ID": "DS001", "Title": "':latest' tag used", "Severity": "MEDIUM", "Status": "PASS"},
                ],
            }
        ],
    )
    summary = summarize(parse_report(dump(data)), set())
    assert [(m.id, m.severity, m.target) for m in summary.misconfigs] == [("DS002", "HIGH", "Dockerfile")]
    assert summary.verdict == "warn" and summary.total == 0
    card = scan_card(summary, None, "team/app", EN)
    assert "**Misconfigurations**: 1" in card["text"] and "DS002" in card["text"] and "DS001" not in card["text"]
    assert "No vulnerabilities." in card["text"]
    assert "DS002" in full_list(summary, EN) and "misconfiguration,HIGH,DS002" in full_csv(summary)


# -- what must never show -------------------------------------------------------------------------


def secret_report() -> bytes:
    data = image()
    data["Results"].append(
        {
            "Target": "app/settings.py",
            "Class": "secret",
            "Secrets": [
                {
                    "RuleID": "github-pat",
                    "Category": "GitHub",
                    "Severity": "CRITICAL",
                    "Title": "GitHub Personal Access Token",
                    "StartLine": 12,
                    "EndLine": 12,
                    "Code": {"Lines": [{"Number": 12, "Content": f"TOKEN = '{TOKEN}'", "IsCause": True}]},
                    "Match": f"TOKEN = '{TOKEN}'",
                    "Layer": {"DiffID": "sha256:abc", "CreatedBy": f"RUN echo {TOKEN}"},
                }
            ],
        }
    )
    return dump(data)


def test_a_secret_is_located_but_its_value_never_shown() -> None:
    report = parse_report(secret_report())
    assert TOKEN not in repr(report)
    (secret,) = report.secrets
    assert (secret.rule_id, secret.category, secret.severity, secret.target, secret.start_line) == (
        "github-pat",
        "GitHub",
        "CRITICAL",
        "app/settings.py",
        12,
    )
    summary = summarize(report, set(), Policy(max_critical=5))
    assert summary.verdict == "warn"  # a secret is never ✅
    assert TOKEN not in repr(summary)
    for tr in (FR, EN):
        card = scan_card(summary, diff(set(), summary), "alpine", tr)
        assert TOKEN not in card_text(card)
        assert "github-pat" in card["text"] and "app/settings.py:12" in card["text"]
        assert TOKEN not in full_list(summary, tr)
    assert TOKEN not in full_csv(summary)
    assert "secret,CRITICAL,github-pat,GitHub,,,,app/settings.py:12" in full_csv(summary)


def injected_report() -> bytes:
    data = image()
    vuln = vulns(data)[4]  # a CRITICAL one: it is in the card
    vuln["Title"] = "@channel see [the fix](https://evil.example/x) **now** ~town-square <!here>"
    vuln["PkgName"] = "musl`@all`"
    vuln["InstalledVersion"] = "1.0 [x](https://evil.example)"
    vuln["PrimaryURL"] = "javascript:alert(1)"
    vulns(data)[5]["PrimaryURL"] = "https://evil.example/a)[b](https://evil.example"
    vulns(data)[5]["VulnerabilityID"] = "CVE-2019-14697](https://evil.example)"
    vulns(data)[0]["Title"] = '=HYPERLINK("https://evil.example", "click")'
    data["ArtifactName"] = "@all/app"
    return dump(data)


def test_markdown_links_and_mentions_from_a_report_are_inert() -> None:
    summary = summarize(parse_report(injected_report()), set())
    card = scan_card(summary, None, "@here registry.example/app [x](https://evil.example)", FR)
    listing = full_list(summary, FR)
    for text in (card["text"], card["title"], listing):
        assert not live_mentions(text) & {"@all", "@channel", "@here"}, text
        outside_code = re.sub(r"`[^`]*`", "", text)  # markdown is not rendered in a code span
        assert "](https://evil" not in outside_code.replace("\\](", "")
        assert "javascript:" not in text
        assert "~town" not in re.sub(r"`[^`]*`", "", text)  # a channel link only outside code
    assert "**now**" not in card["text"]
    assert "`1.0 [x](https://evil.example)`" in card["text"]  # shown as typed, in code: inert
    csv_text = full_csv(summary)
    titles = [row["title"] for row in csv.DictReader(io.StringIO(csv_text))]
    assert '\'=HYPERLINK("https://evil.example", "click")' in titles  # else a spreadsheet runs it
    assert not any(t.startswith(("=", "+", "-", "@")) for t in titles)


def test_only_plain_http_urls_become_links() -> None:
    assert safe_url("https://avd.aquasec.com/nvd/cve-2019-1549") == "https://avd.aquasec.com/nvd/cve-2019-1549"
    for bad in ("javascript:alert(1)", "https://x/a)(b", "https://x/a b", "data:text/html,x", "https://x/<script>"):
        assert safe_url(bad) == ""


# -- the card and the full list -------------------------------------------------------------------


def test_the_card_shows_the_verdict_counts_and_at_most_five_findings() -> None:
    summary = summarize(parse_report(dump(image())), set(), Policy(max_critical=0))
    card = scan_card(summary, None, "ghcr.io/aquasecurity/trivy-test-images:alpine-39", FR, "https://dash.example/p")
    assert card["title"].startswith("❌ Trivy — image ghcr.io/aquasecurity/trivy-test-images:alpine-39")
    assert card["fallback"] == card["title"] and card["color"] == "#CE0500"
    assert card["title_link"] == "https://dash.example/p"
    text = card["text"]
    assert "🔴 Critique **2**" in text and "🟠 Haute **0**" in text and "🟡 Moyenne **4**" in text
    assert "Inconnue" not in text  # shown only when there are some
    assert "Corrigeables : 6 sur 6" in text
    assert "Critique : 2 (maximum 0)" in text
    assert "alpine 3.9.4 n'est plus maintenu" in text
    findings = [line for line in text.splitlines() if line.startswith("- ")]
    assert len(findings) == 5
    assert findings[0].startswith("- 🔴 [CVE-2019-14697](https://avd.aquasec.com/nvd/cve-2019-14697) `musl")
    assert "`1.1.20-r4` → `1.1.20-r5`" in findings[0]
    assert "1 autre :" in text
    assert "Mauvaises configurations" not in text and "Secrets" not in text

    en = scan_card(summary, None, "app", EN)
    assert en["title"] == "❌ Trivy — image app: policy breached" and "🔴 Critical **2**" in en["text"]
    fs = summarize(parse_report((FIXTURES / "trivy_fs_report.json").read_bytes()), set())
    assert scan_card(fs, None, "team/app", FR)["title"] == "⚠️ Trivy — dépôt team/app : à corriger"
    assert "title_link" not in scan_card(fs, None, "x", FR, "javascript:alert(1)")


def test_a_clean_report_is_green() -> None:
    summary = summarize(parse_report(dump(minimal(Results=[{"Target": "app (alpine 3.20)"}]))), set())
    assert summary.verdict == "ok" and summary.total == 0
    card = scan_card(summary, diff(set(), summary), "", FR)
    assert card["title"] == "✅ Trivy — image registry.example/app:1.0 : rien de critique"
    assert "Aucune vulnérabilité." in card["text"] and card["color"] == "#18753C"


def big_summary(count: int) -> Any:
    data = image()
    template = vulns(data)[0]
    many = []
    for n in range(count):
        vuln = dict(template)
        vuln.update(VulnerabilityID=f"CVE-2024-{n:05d}", Severity=("CRITICAL", "HIGH", "LOW")[n % 3])
        many.append(vuln)
    data["Results"][0]["Vulnerabilities"] = many
    report: ScanReport = parse_report(dump(data))
    return summarize(report, set())


def test_the_full_list_is_a_table_cut_at_a_sane_length() -> None:
    small = summarize(parse_report(dump(image())), set())
    listing = full_list(small, FR, subject="alpine:3.9")
    assert listing.startswith("**Trivy — alpine:3.9** : 6 vulnérabilités")
    assert listing.count("\n| 🟡 Moyenne |") == 4 and listing.count("\n| 🔴 Critique |") == 2
    assert "non affichée" not in listing

    big = big_summary(2000)
    listing = full_list(big, EN)
    assert len(listing) <= 15_000
    rows = listing.count("\n| 🔴 Critical |") + listing.count("\n| 🟠 High |") + listing.count("\n| 🔵 Low |")
    assert 10 < rows < 2000
    assert f"… {2000 - rows} lines not shown" in listing
    assert listing.count("\n| 🔴 Critical |") == rows  # the worst first: 667 critical ones fill the post
    assert len(full_list(big, EN, max_chars=3000)) <= 3000
    csv_text = full_csv(big)
    assert csv_text.count("\n") == 2001  # header + every finding: the attached file is complete


# -- Trivy's real shapes (aquasecurity/trivy pkg/types/report.go, license.go, fanal/artifact) ----


@pytest.mark.parametrize("fixture", ["trivy_image_report.json", "trivy_fs_report.json"])
@pytest.mark.parametrize("results", ["absent", "null"])
def test_a_report_with_nothing_found_is_clean_not_unreadable(fixture: str, results: str) -> None:
    # Trivy drops `Results` (omitempty) when it has nothing to report; the header is still whole.
    data = load(fixture)
    if results == "absent":
        del data["Results"]
    else:
        data["Results"] = None
    summary = summarize(parse_report(dump(data)), set())
    assert (summary.verdict, summary.total, summary.misconfigs, summary.secrets, summary.licenses) == (
        "ok",
        0,
        (),
        (),
        (),
    )
    assert "Aucune vulnérabilité." in scan_card(summary, None, "x", FR)["text"]


@pytest.mark.parametrize("artifact_type", ["cyclonedx", "spdx"])
def test_sbom_reports_are_read(artifact_type: str) -> None:
    # `trivy sbom app.cdx.json`: the same report, with the SBOM's artifact type.
    data = image()
    data.update(ArtifactType=artifact_type, ArtifactName="app.cdx.json")
    summary = summarize(parse_report(dump(data)), set())
    assert summary.kind == "sbom" and summary.total == 6
    for tr, word in ((FR, "SBOM"), (EN, "SBOM")):
        assert word in scan_card(summary, None, "app.cdx.json", tr)["title"]


LICENSES = [
    {"Severity": "CRITICAL", "Category": "forbidden", "PkgName": "left-pad", "Name": "AGPL-3.0", "Confidence": 1},
    {"Severity": "HIGH", "Category": "restricted", "PkgName": "glibc", "Name": "GPL-2.0", "Confidence": 1},
    {"Severity": "LOW", "Category": "notice", "FilePath": "LICENSE", "Name": "MIT", "Confidence": 0.9},
]


def with_licenses(*licenses: dict[str, Any]) -> bytes:
    return dump(minimal(Results=[{"Target": "Loose File License(s)", "Class": "license-file", "Licenses": licenses}]))


def test_license_findings_are_counted_apart_from_vulnerabilities() -> None:
    summary = summarize(parse_report(with_licenses(*LICENSES)), set(), Policy(max_critical=0, max_high=0))
    assert [(x.name, x.category, x.severity, x.where) for x in summary.licenses] == [
        ("AGPL-3.0", "forbidden", "CRITICAL", "left-pad"),
        ("GPL-2.0", "restricted", "HIGH", "glibc"),
        ("MIT", "notice", "LOW", "LICENSE"),
    ]
    assert summary.license_counts["CRITICAL"] == 1 and summary.license_counts["LOW"] == 1
    # A forbidden or restricted license is to be looked at, never a breach of the vulnerability policy.
    assert summary.total == 0 and summary.breaches == () and summary.verdict == "warn"
    for tr, title in ((FR, "Licences"), (EN, "Licenses")):
        text = scan_card(summary, None, "app", tr)["text"]
        assert f"**{title}**" in text and "AGPL-3.0" in text and "left-pad" in text
    listing = full_list(summary, EN, subject="app")
    assert "**Licenses** (3)" in listing and "| 🔴 Critical | AGPL-3.0 | forbidden | left-pad |" in listing
    notice_only = summarize(parse_report(with_licenses(LICENSES[2])), set())
    assert notice_only.verdict == "ok" and len(notice_only.licenses) == 1


def test_the_same_cve_of_the_same_package_in_two_targets_is_two_findings() -> None:
    lock = {"Target": "a/package-lock.json", "Class": "lang-pkgs", "Type": "npm"}
    vuln = {"VulnerabilityID": "CVE-2024-0001", "PkgName": "lodash", "InstalledVersion": "4.17.0", "Severity": "HIGH"}
    both = minimal(
        Results=[
            {**lock, "Vulnerabilities": [vuln]},
            {**lock, "Target": "b/package-lock.json", "Vulnerabilities": [vuln]},
        ]
    )
    two = summarize(parse_report(dump(both)), set())
    assert two.total == 2 and len(two.keys) == 2
    only_a = summarize(parse_report(dump(minimal(Results=[{**lock, "Vulnerabilities": [vuln]}]))), set())
    change = diff(set(two.keys), only_a)
    assert change.fixed == ("CVE-2024-0001|lodash|b/package-lock.json",) and change.new == ()
    # Two jars of one image: the same target, told apart by PkgPath.
    jars = [{**vuln, "PkgPath": f"app/lib/{name}.jar"} for name in ("x", "y")]
    image_two = summarize(parse_report(dump(minimal(Results=[{"Target": "Java", "Vulnerabilities": jars}]))), set())
    assert image_two.keys == {"CVE-2024-0001|lodash|app/lib/x.jar", "CVE-2024-0001|lodash|app/lib/y.jar"}
    # An upgrade that still carries the CVE is the same finding, not one fixed and one new.
    upgraded = minimal(Results=[{**lock, "Vulnerabilities": [{**vuln, "InstalledVersion": "4.17.5"}]}])
    assert diff(set(only_a.keys), summarize(parse_report(dump(upgraded)), set())) == diff(set(only_a.keys), only_a)


def test_keys_stored_before_the_target_was_in_them_still_compare() -> None:
    after = summarize(parse_report(dump(image())), set())
    stored = {"|".join(key.split("|")[:2]) for key in after.keys}  # what older scans rows hold
    change = diff(stored - {"CVE-2019-1551|libssl1.1"}, after)
    assert change.new == ("CVE-2019-1551|libssl1.1",) and change.fixed == ()


def test_the_emulators_own_clean_report_has_trivys_shape() -> None:
    from services.emulators.gitlab_pipelines import MINIMAL_TRIVY_REPORT

    # Trivy never writes `"Results": []`: an empty list is left out (omitempty).
    assert "Results" not in MINIMAL_TRIVY_REPORT
    summary = summarize(parse_report(dump(MINIMAL_TRIVY_REPORT)), set())
    assert summary.verdict == "ok" and summary.kind == "image" and summary.os == "alpine 3.20.3"


# -- Harbor's reports ---------------------------------------------------------------------------------

HARBOR_MIME = "application/vnd.security.vulnerability.report; version=1.1"


def harbor_answer(*items: dict[str, Any]) -> dict[str, Any]:
    return {HARBOR_MIME: {"generated_at": "2026-12-04T20:00:00Z", "severity": "High", "vulnerabilities": list(items)}}


def test_a_harbor_report_is_summarised_as_the_same_trivy_report_would_be() -> None:
    answer = harbor_answer(
        {"id": "CVE-1", "package": "openssl", "version": "3.0.1", "fix_version": "3.0.9", "severity": "Critical"},
        {"id": "CVE-2", "package": "musl", "version": "1.1", "fix_version": "", "severity": "High"},
        {"id": "CVE-3", "package": "zlib", "version": "1.2", "severity": "Negligible", "links": ["https://x/CVE-3"]},
        {"id": "CVE-4", "package": "tar", "version": "1.3", "severity": "None"},
    )
    report = harbor_report(answer, "alpha/team/web:1.0")
    assert report.kind == "image" and report.artifact_name == "alpha/team/web:1.0"
    summary = summarize(report, {"CVE-2"}, Policy(max_critical=0))
    assert dict(summary.counts) == {"CRITICAL": 1, "HIGH": 0, "MEDIUM": 0, "LOW": 0, "UNKNOWN": 2}
    assert summary.fixable == 1 and summary.waived == 1 and summary.verdict == "fail"
    assert next(f for f in report.findings if f.id == "CVE-3").url == "https://x/CVE-3"


@pytest.mark.parametrize("answer", [{}, {HARBOR_MIME: {"vulnerabilities": None}}, {"text/plain": {}}])
def test_an_artifact_harbor_has_no_report_for_is_unreadable(answer: dict[str, Any]) -> None:
    with pytest.raises(ReportUnreadable):
        harbor_report(answer, "alpha/api:1.0")


@pytest.mark.parametrize(
    ("name", "metadata", "shown"),
    [
        ("app.tar", {"RepoTags": ["harbor.example/alpha/api:1.4.2"]}, "harbor.example/alpha/api:1.4.2"),
        (
            "harbor.example/alpha/api:1.4.2",
            {"RepoDigests": ["harbor.example/alpha/api@sha256:0123456789abcdef0123"]},
            "harbor.example/alpha/api:1.4.2@sha256:0123456789ab",
        ),
        (
            "harbor.example/alpha/api@sha256:99",
            {"RepoDigests": ["x@sha256:0123"]},
            "harbor.example/alpha/api@sha256:99",
        ),
        ("/tmp/img.tar.gz", None, "/tmp/img.tar.gz"),  # nothing better to say
    ],
)
def test_a_scanned_image_is_named_as_a_registry_reference(name: str, metadata: object, shown: str) -> None:
    assert image_reference(name, metadata) == shown
