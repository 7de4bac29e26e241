"""Trivy scan cards, the full list for the thread (or an attached file) and the unreadable message.

Pure functions. Every piece of text read from a report — titles, package names, versions,
targets, ids, URLs — comes from the scanned software and its advisories: it is untrusted and is
escaped (a title may hold markdown, a link or an ``@channel``), a URL is linked only when it is a
plain ``http(s)`` one. Secrets are shown by rule, category and place, never by content: the
domain objects do not even hold it.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from typing import Any

from bot.i18n import Translator
from bot.render.safe import code, escape
from bot.workflows.scans import SEVERITIES, Finding, ScanDiff, ScanSummary

VERDICT_ICONS = {"ok": "✅", "warn": "⚠️", "fail": "❌"}
COLORS = {"ok": "#18753C", "warn": "#B34000", "fail": "#CE0500"}
SEVERITY_ICONS = {"CRITICAL": "🔴", "HIGH": "🟠", "MEDIUM": "🟡", "LOW": "🔵", "UNKNOWN": "⚪"}
CARD_FINDINGS = 5
CARD_SECTION_LINES = 3
FULL_LIST_CHARS = 15_000  # a Mattermost post holds 16 383 characters
SECTION_ROWS = 50  # misconfigurations and secrets in the full list
CSV_ROWS = 100_000

_SAFE_URL = re.compile(r"https?://[^\s()<>\[\]{}\\\"'`|]+", re.ASCII)
_CVE = re.compile(r"CVE-\d{4}-\d{4,}", re.ASCII)
_CSV_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def safe_url(url: str) -> str:
    """``url`` when it is a plain http(s) URL that cannot break out of ``[text](url)``, else ''."""
    return url if len(url) <= 500 and _SAFE_URL.fullmatch(url) else ""


# Trivy's own advisory pages: Trivy sets a finding's PrimaryURL there (avd.aquasec.com/nvd/<cve>,
# /misconfig/<id>). A pushed report is the team's text, so a link to any other host is dropped.
_ADVISORIES = "https://avd.aquasec.com/"


def finding_url(finding: Finding) -> str:
    url = safe_url(finding.url)
    if not url.startswith(_ADVISORIES):
        url = ""
    if not url and _CVE.fullmatch(finding.id):
        url = f"https://avd.aquasec.com/nvd/{finding.id.lower()}"
    return url


def _code(text: str, max_len: int) -> str:
    """Report text in a code span, with ``@`` broken too (``@all`` as a package name stays inert)."""
    return code(text.replace("@", "@\u2060"), max_len)


def _link(text: str, url: str) -> str:
    return f"[{text}]({url})" if url else text


def counts_line(counts: Mapping[str, int], tr: Translator) -> str:
    """``🔴 Critique 2 · 🟠 Haute 0 · …`` (Unknown only when there are some)."""
    parts = [
        f"{SEVERITY_ICONS[sev]} {tr(f'scan.severity.{sev}')} **{counts.get(sev, 0)}**"
        for sev in SEVERITIES
        if sev != "UNKNOWN" or counts.get(sev, 0)
    ]
    return " · ".join(parts)


def _short_counts(counts: Mapping[str, int]) -> str:
    return " · ".join(f"{SEVERITY_ICONS[sev]} {n}" for sev, n in counts.items() if n)


def finding_line(finding: Finding, tr: Translator, new: bool = False) -> str:
    """``- 🔴 [CVE-…](url) 🆕 `pkg` `1.0` → `1.1` — title``."""
    fixed = _code(finding.fixed, 40) if finding.fixed else f"_{tr('scan.no_fix')}_"
    line = f"- {SEVERITY_ICONS[finding.severity]} {_link(escape(finding.id, 60), finding_url(finding))}"
    if new:
        line += f" {tr('scan.new_mark')}"
    line += f" {_code(finding.pkg, 60)} {_code(finding.installed, 40)} → {fixed}"
    if finding.title:
        line += f" — {escape(finding.title, 100)}"
    return line


def _names(ids: Iterable[str], limit: int = 5) -> str:
    ordered = sorted(ids)
    shown = ", ".join(_code(i, 40) for i in ordered[:limit])
    return shown + (f" (+{len(ordered) - limit})" if len(ordered) > limit else "")


def scan_unchanged(summary: ScanSummary, subject: str, tr: Translator) -> str:
    """One line for a rescan that found exactly what the previous scan of the same image did."""
    return tr(
        "scan.unchanged",
        icon=VERDICT_ICONS[summary.verdict],
        kind=tr(f"scan.kind.{summary.kind}"),
        subject=escape(subject or summary.artifact_name, 150),
        verdict=tr(f"scan.verdict.{summary.verdict}"),
        counts=counts_line(summary.counts, tr) if summary.total else tr("scan.no_findings"),
    )


def scan_card(
    summary: ScanSummary,
    diff: ScanDiff | None,
    subject: str,
    tr: Translator,
    dashboard_url: str | None = None,
) -> dict[str, Any]:
    """The Mattermost attachment of one scan: verdict, counts, news, top findings, sections."""
    icon = VERDICT_ICONS[summary.verdict]
    title = tr(
        "scan.title",
        icon=icon,
        kind=tr(f"scan.kind.{summary.kind}"),
        subject=escape(subject or summary.artifact_name, 150),
        verdict=tr(f"scan.verdict.{summary.verdict}"),
    )
    lines = [counts_line(summary.counts, tr) if summary.total else tr("scan.no_findings")]
    extras = []
    if summary.total:
        extras.append(tr("scan.fixable", fixable=summary.fixable, total=summary.total))
    if summary.waived:
        extras.append(tr("scan.waived", count=summary.waived))
    if summary.unfixed_ignored:
        extras.append(tr("scan.unfixed_ignored", count=summary.unfixed_ignored))
    if extras:
        lines.append(" · ".join(extras))
    if diff is not None:
        if diff.first:
            lines.append(tr("scan.first_scan"))
        elif diff.new or diff.fixed:
            lines.append(
                tr(
                    "scan.new_since",
                    new=tr.plural("scan.new_count", diff.new_count),
                    fixed=tr.plural("scan.fixed_count", diff.fixed_count),
                )
            )
        else:
            lines.append(tr("scan.no_change"))
    if summary.os_eosl and summary.os:
        lines.append(tr("scan.os_eosl", os=escape(summary.os, 80)))
    if summary.breaches:
        reasons = " · ".join(
            tr("scan.breach", severity=tr(f"scan.severity.{b.severity}"), count=b.count, limit=b.limit)
            for b in summary.breaches
        )
        lines.append(f"{VERDICT_ICONS['fail']} {tr('scan.breach_title')} {reasons}")
    if summary.secrets:
        lines.append("")
        lines.append(tr("scan.secret_title", count=len(summary.secrets)))
        for s in summary.secrets[:CARD_SECTION_LINES]:
            place = f"{s.target}:{s.start_line}" if s.start_line else s.target
            category = f" ({escape(s.category, 40)})" if s.category else ""
            rule = f"{SEVERITY_ICONS[s.severity]} {_code(s.rule_id, 40)}{category}"
            lines.append(f"- {rule} {escape(s.title, 80)} — {_code(place, 80)}")
        if len(summary.secrets) > CARD_SECTION_LINES:
            lines.append(tr.plural("scan.more_short", len(summary.secrets) - CARD_SECTION_LINES))
    if summary.top:
        new_keys = set(diff.new) if diff is not None else set()
        lines.append("")
        lines.append(tr("scan.top_title"))
        lines.extend(finding_line(f, tr, new=f.key in new_keys) for f in summary.top[:CARD_FINDINGS])
        if summary.total > CARD_FINDINGS:
            lines.append(tr.plural("scan.more", summary.total - CARD_FINDINGS))
    if summary.misconfigs:
        lines.append("")
        head = tr("scan.misconfig_title", count=len(summary.misconfigs))
        lines.append(f"{head} ({_short_counts(summary.misconfig_counts)})")
        for m in summary.misconfigs[:CARD_SECTION_LINES]:
            ident = _link(escape(m.id, 40), safe_url(m.url))
            lines.append(f"- {SEVERITY_ICONS[m.severity]} {ident} {escape(m.title, 100)} — {_code(m.target, 80)}")
        if len(summary.misconfigs) > CARD_SECTION_LINES:
            lines.append(tr.plural("scan.more_short", len(summary.misconfigs) - CARD_SECTION_LINES))
    if summary.licenses:
        lines.append("")
        head = tr("scan.license_title", count=len(summary.licenses))
        lines.append(f"{head} ({_short_counts(summary.license_counts)})")
        for lic in summary.licenses[:CARD_SECTION_LINES]:
            category = f" ({escape(lic.category, 40)})" if lic.category else ""
            lines.append(f"- {SEVERITY_ICONS[lic.severity]} {_code(lic.name, 60)}{category} — {_code(lic.where, 80)}")
        if len(summary.licenses) > CARD_SECTION_LINES:
            lines.append(tr.plural("scan.more_short", len(summary.licenses) - CARD_SECTION_LINES))
    if summary.unused_waivers:
        lines.append(tr("scan.unused_waivers", ids=_names(summary.unused_waivers)))
    url = safe_url(dashboard_url or "")
    if url:
        lines.append(tr("scan.dashboard", url=url))
    card: dict[str, Any] = {
        "fallback": title,
        "color": COLORS[summary.verdict],
        "title": title,
        "text": "\n".join(lines),
    }
    if url:
        card["title_link"] = url
    return card


def _row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(headers: list[str]) -> list[str]:
    return [_row(headers), _row(["---"] * len(headers))]


def full_list(
    summary: ScanSummary,
    tr: Translator | None = None,
    *,
    subject: str = "",
    max_chars: int = FULL_LIST_CHARS,
) -> str:
    """Every finding as markdown tables, for a thread reply; cut at ``max_chars`` with a note.

    Secrets (the most urgent) come first, then the vulnerabilities, most severe first, then the
    misconfigurations and the licenses. Secrets, misconfigurations and licenses are few and capped
    at :data:`SECTION_ROWS` rows each, and always fit; the vulnerabilities fill what is left.
    :func:`full_csv` has them all.
    """
    tr = tr or Translator()
    secrets = misconfigs = licenses = ""
    hidden = 0
    if summary.secrets:
        rows = [f"**{tr('scan.secret_list')}** ({len(summary.secrets)})"]
        rows += _table(
            [
                tr("scan.col_severity"),
                tr("scan.col_rule"),
                tr("scan.col_category"),
                tr("scan.col_title"),
                tr("scan.col_target"),
                tr("scan.col_line"),
            ]
        )
        for s in summary.secrets[:SECTION_ROWS]:
            rows.append(
                _row(
                    [
                        f"{SEVERITY_ICONS[s.severity]} {tr(f'scan.severity.{s.severity}')}",
                        escape(s.rule_id, 60),
                        escape(s.category, 40),
                        escape(s.title, 100),
                        escape(s.target, 120),
                        str(s.start_line or ""),
                    ]
                )
            )
        hidden += max(0, len(summary.secrets) - SECTION_ROWS)
        secrets = "\n".join(rows)
    if summary.misconfigs:
        rows = [f"**{tr('scan.misconfig_list')}** ({len(summary.misconfigs)})"]
        rows += _table([tr("scan.col_severity"), tr("scan.col_id"), tr("scan.col_title"), tr("scan.col_target")])
        for m in summary.misconfigs[:SECTION_ROWS]:
            rows.append(
                _row(
                    [
                        f"{SEVERITY_ICONS[m.severity]} {tr(f'scan.severity.{m.severity}')}",
                        _link(escape(m.id, 40), safe_url(m.url)),
                        escape(m.title, 120),
                        escape(m.target, 120),
                    ]
                )
            )
        hidden += max(0, len(summary.misconfigs) - SECTION_ROWS)
        misconfigs = "\n".join(rows)
    if summary.licenses:
        rows = [f"**{tr('scan.license_list')}** ({len(summary.licenses)})"]
        columns = ("scan.col_severity", "scan.col_license", "scan.col_category", "scan.col_package", "scan.col_target")
        rows += _table([tr(column) for column in columns])
        for lic in summary.licenses[:SECTION_ROWS]:
            cells = [
                f"{SEVERITY_ICONS[lic.severity]} {tr(f'scan.severity.{lic.severity}')}",
                escape(lic.name, 60),
                escape(lic.category, 40),
            ]
            rows.append(_row([*cells, escape(lic.where, 80), escape(lic.target, 120)]))
        hidden += max(0, len(summary.licenses) - SECTION_ROWS)
        licenses = "\n".join(rows)
    head = tr.plural("scan.full_title", summary.total, subject=escape(subject or summary.artifact_name, 150))
    if summary.waived_findings:
        head += "\n" + tr("scan.waived_list", ids=_names({f.id for f in summary.waived_findings}, 20))
    used = len(head) + len(secrets) + len(misconfigs) + len(licenses) + 200  # 200: room for separators and the cut note
    rows = [f"**{tr('scan.vuln_list')}** ({summary.total})"]
    rows += _table(
        [
            tr("scan.col_severity"),
            tr("scan.col_id"),
            tr("scan.col_package"),
            tr("scan.col_installed"),
            tr("scan.col_fixed"),
            tr("scan.col_target"),
            tr("scan.col_title"),
        ]
    )
    used += sum(len(r) + 1 for r in rows)
    shown = 0
    for finding in summary.findings:
        row = _row(
            [
                f"{SEVERITY_ICONS[finding.severity]} {tr(f'scan.severity.{finding.severity}')}",
                _link(escape(finding.id, 60), finding_url(finding)),
                escape(finding.pkg, 60),
                escape(finding.installed, 40),
                escape(finding.fixed, 40) if finding.fixed else f"_{tr('scan.no_fix')}_",
                escape(finding.target, 80),
                escape(finding.title, 100),
            ]
        )
        if used + len(row) + 1 > max_chars:
            break
        rows.append(row)
        used += len(row) + 1
        shown += 1
    hidden += summary.total - shown
    parts = [head, secrets, "\n".join(rows) if summary.findings else "", misconfigs, licenses]
    parts = [part for part in parts if part]
    if hidden:
        parts.append(tr.plural("scan.cut", hidden))
    return "\n\n".join(parts)


def _cell(text: str) -> str:
    """A CSV cell that a spreadsheet will not run as a formula."""
    return "'" + text if text.startswith(_CSV_FORMULA) else text


def full_csv(summary: ScanSummary, max_rows: int = CSV_ROWS) -> str:
    """Every finding (waived ones included, marked) as CSV text, for an attached file."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["kind", "severity", "id", "package", "installed", "fixed", "status", "target", "title", "url", "waived"]
    )
    rows = 0
    for waived, findings in ((False, summary.findings), (True, summary.waived_findings)):
        for f in findings:
            if rows >= max_rows:
                break
            writer.writerow(
                [
                    _cell(v)
                    for v in (
                        "vulnerability",
                        f.severity,
                        f.id,
                        f.pkg,
                        f.installed,
                        f.fixed,
                        f.status,
                        f.target,
                        f.title,
                        f.url,
                        "yes" if waived else "",
                    )
                ]
            )
            rows += 1
    for m in summary.misconfigs:
        writer.writerow(
            [
                _cell(v)
                for v in ("misconfiguration", m.severity, m.id, "", "", "", m.status, m.target, m.title, m.url, "")
            ]
        )
    for s in summary.secrets:
        place = f"{s.target}:{s.start_line}" if s.start_line else s.target
        writer.writerow(
            [_cell(v) for v in ("secret", s.severity, s.rule_id, s.category, "", "", "", place, s.title, "", "")]
        )
    return out.getvalue()


def unreadable(reason: str, tr: Translator) -> str:
    """A clear message for a report the bot could not read (``reason`` from ``ReportUnreadable``)."""
    key = f"scan.reason.{reason}"
    text = tr(key)
    if text == key:
        text = tr("scan.reason.other")
    return f"{tr('scan.unreadable', reason=text)}\n{tr('scan.hint')}"
