"""Quality-gate cards (SonarQube webhook) and the ``/cpn quality`` card (pure functions).

Everything read from a SonarQube payload is untrusted: the branch name, the commit and an unknown
metric's key are escaped; values are shown only once read as numbers, else escaped as text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from bot.i18n import Translator
from bot.render.safe import code, escape
from bot.workflows.quality import (
    KEY_MEASURES,
    NEW_KEY_MEASURES,
    Condition,
    GateResult,
    Trend,
    kind_of,
    parse_number,
)

ICONS = {"OK": "✅", "ERROR": "❌", "WARN": "⚠️", "NONE": "❔"}
COLORS = {"OK": "#18753C", "ERROR": "#CE0500", "WARN": "#B34000", "NONE": "#666666"}
RATINGS = "ABCDE"
TREND_ICONS = {"better": "✅", "worse": "⚠️", "same": ""}
_SHA = re.compile(r"[0-9a-fA-F]{7,64}")


def metric_name(metric: str, tr: Translator) -> str:
    """A metric in words; an unknown one shows as its (escaped) key."""
    key = f"quality.metric.{metric}"
    words = tr(key)
    return escape(metric, 60) if words == key else words


def status_name(status: str, tr: Translator) -> str:
    return tr(f"quality.status.{status}") if status in ICONS else escape(status, 20)


def _decimal(value: float, tr: Translator, places: int = 1) -> str:
    return f"{value:.{places}f}".replace(".", tr("quality.decimal_separator"))


def _plain(value: float, tr: Translator) -> str:
    """A count as an integer, anything else with as few decimals as it needs."""
    if value.is_integer():
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".").replace(".", tr("quality.decimal_separator"))


def _minutes(value: float, tr: Translator) -> str:
    total = round(value)
    if abs(total) < 60:
        return tr("quality.unit.minutes", m=total)
    return tr("quality.unit.hours", h=abs(total) // 60, m=abs(total) % 60)


def rating(value: float) -> str | None:
    """A rating's letter: 1 → A … 5 → E; None when out of range."""
    rounded = round(value)
    return RATINGS[rounded - 1] if 1 <= rounded <= 5 and abs(value - rounded) < 0.01 else None


def value_text(metric: str, raw: str | None, tr: Translator) -> str:
    """A measure or threshold with its unit: ``42,5 %``, ``C``, ``7``, ``2 h 5 min``; — if none."""
    if raw is None or raw == "":
        return "—"
    number = parse_number(raw)
    if number is None:
        return escape(raw, 40)
    kind = kind_of(metric)
    if kind == "PERCENT":
        return tr("quality.unit.percent", value=_decimal(number, tr))
    if kind == "RATING":
        return rating(number) or _plain(number, tr)
    if kind == "WORK_DUR":
        return _minutes(number, tr)
    return _plain(number, tr)


def delta_text(metric: str, delta: float, tr: Translator) -> str:
    sign = "+" if delta > 0 else "-"
    size = abs(delta)
    kind = kind_of(metric)
    if kind == "PERCENT":
        return sign + tr("quality.unit.points", value=_decimal(size, tr))
    if kind == "WORK_DUR":
        return sign + _minutes(size, tr)
    return sign + _plain(size, tr)


def trend_text(change: Trend | None, tr: Translator) -> str:
    """``↗ +5,2 pts ✅``, ``↘ -2 ✅``, ``C → A ✅`` for a rating, ``→`` when unchanged."""
    if change is None:
        return ""
    if change.direction == "same":
        return "→"
    icon = TREND_ICONS[change.direction]
    if kind_of(change.metric) == "RATING":
        before, now = rating(change.previous), rating(change.current)
        if before and now:
            return f"{before} → {now} {icon}"
    arrow = "↗" if change.delta > 0 else "↘"
    return f"{arrow} {delta_text(change.metric, change.delta, tr)} {icon}"


def condition_line(condition: Condition, tr: Translator) -> str:
    """``Couverture du nouveau code : 42,5 % (seuil : 80,0 %)``."""
    return tr(
        "quality.condition",
        metric=metric_name(condition.metric, tr),
        value=value_text(condition.metric, condition.value, tr),
        threshold=value_text(condition.metric, condition.threshold, tr),
    )


def _title(status: str, project: str, repo: str, tr: Translator) -> str:
    return tr(
        "quality.title",
        icon=ICONS.get(status, "❔"),
        project=escape(project, 40),
        repo=escape(repo, 60),
        status=status_name(status, tr),
    )


def branch_line(result: GateResult, tr: Translator) -> str:
    if result.is_pull_request:
        where = tr("quality.pull_request", id=escape(result.branch, 40))
    elif result.branch:
        where = f"**{escape(result.branch, 100)}**"
    else:
        where = tr("quality.main_branch")
    if _SHA.fullmatch(result.revision):
        where += f" · {code(result.revision[:8], 12)}"
    elif result.revision:  # not a commit id: shown inert, never in a code span that could hide a mention
        where += f" · {escape(result.revision, 20)}"
    return where


# The measures a gate is summed up by, in this order, when its conditions carry them.
GATE_SUMMARY = ("new_coverage", "new_violations", "new_bugs", "new_vulnerabilities", "new_duplicated_lines_density")


def key_measures_line(result: GateResult, tr: Translator) -> str:
    """``Couverture du nouveau code : 85,0 % · Nouveaux problèmes : 0``: the gate's key measures
    on one line, from its own conditions (what the gate judged); "" when it has none of them."""
    values = {c.metric: c.value for c in result.conditions if c.value not in (None, "")}
    return " · ".join(
        tr("quality.measure", metric=metric_name(m, tr), value=value_text(m, values[m], tr))
        for m in GATE_SUMMARY
        if m in values
    )


def gate_card(result: GateResult, project: str, repo: str, tr: Translator) -> dict[str, Any]:
    """The card of one quality-gate verdict: its key measures on one line when it passed, the
    conditions that failed when it did not, and a dashboard link."""
    title = _title(result.status, project, repo or result.project_key, tr)
    lines = [branch_line(result, tr)]
    # A passed gate says what it judged; a failed one lists only what failed (below).
    measures = "" if result.failed else key_measures_line(result, tr)
    if measures:
        lines.append(measures)
    if result.task_status not in ("", "SUCCESS"):
        lines.append(tr("quality.task_failed"))
    failed = result.failed
    if failed:
        lines.append(tr("quality.failed_conditions", count=len(failed)))
        lines += [f"- {condition_line(c, tr)}" for c in failed]
    card: dict[str, Any] = {
        "fallback": title,
        "color": COLORS.get(result.status, "#666666"),
        "title": title,
        "text": "\n".join(lines),
    }
    if result.dashboard_url:
        card["title_link"] = result.dashboard_url
    return card


def _measure_line(metric: str, measures: Mapping[str, str], trends: Mapping[str, Trend], tr: Translator) -> str:
    line = "- " + tr(
        "quality.measure", metric=metric_name(metric, tr), value=value_text(metric, measures.get(metric), tr)
    )
    change = trend_text(trends.get(metric), tr)
    return f"{line} {change}" if change else line


def quality_card(
    project: str,
    repo: str,
    branch: str | None,
    status: str,
    measures: Mapping[str, str],
    trends: Mapping[str, Trend],
    tr: Translator,
    dashboard_url: str = "",
    failed: Sequence[Condition] = (),
) -> dict[str, Any]:
    """``/cpn quality``: the gate status, the key measures with their trend, the failed conditions."""
    title = _title(status, project, repo, tr)
    lines = [f"**{escape(branch, 100)}**" if branch else tr("quality.main_branch")]
    if not measures:
        lines.append(tr("quality.no_measures"))
    else:
        lines.append(f"**{tr('quality.overall')}**")
        lines += [_measure_line(m, measures, trends, tr) for m in KEY_MEASURES]
        new_code = [m for m in NEW_KEY_MEASURES if m in measures]
        if new_code:
            lines.append(f"**{tr('quality.new_code')}**")
            lines += [_measure_line(m, measures, trends, tr) for m in new_code]
    broken = [c for c in failed if c.failed]
    if broken:
        lines.append(tr("quality.failed_conditions", count=len(broken)))
        lines += [f"- {condition_line(c, tr)}" for c in broken]
    card: dict[str, Any] = {
        "fallback": title,
        "color": COLORS.get(status, "#666666"),
        "title": title,
        "text": "\n".join(lines),
    }
    if dashboard_url:
        card["title_link"] = dashboard_url
    return card


__all__ = [
    "condition_line",
    "delta_text",
    "gate_card",
    "metric_name",
    "quality_card",
    "rating",
    "status_name",
    "trend_text",
    "value_text",
]
