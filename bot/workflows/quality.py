"""SonarQube quality gates as the bot reports them: webhook deliveries checked and read, the Web
API's gate conditions, and how a project's key measures moved since the previous analysis.

A SonarQube webhook is signed, when the webhook has a secret, with ``X-Sonar-Webhook-HMAC-SHA256``:
the hex HMAC-SHA256 of the raw body. SonarQube waits 10 s for an answer and never retries, so the
handler checks the signature, puts the raw body in the inbox and answers at once; this module reads
it later. A delivery triggered by an issue status change (rather than an analysis) has no
``taskId``; a failed background task has no ``qualityGate``.

Pure domain code: no I/O, no chat text.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from bot.workflows.naming import console_sonar_key
from bot.workflows.rules import REPO_NAME_PATTERN

GateStatus = Literal["OK", "ERROR", "WARN", "NONE"]
GATE_STATUSES: tuple[GateStatus, ...] = ("OK", "ERROR", "WARN", "NONE")
Direction = Literal["better", "worse", "same"]
MetricKind = Literal["PERCENT", "RATING", "INT", "WORK_DUR", "FLOAT"]

# What ``/cpn quality`` shows: the overall measures, then the new-code ones (all known to every
# SonarQube ≥ 10, so api/measures/component never refuses the list).
KEY_MEASURES = (
    "bugs",
    "vulnerabilities",
    "security_hotspots_reviewed",
    "code_smells",
    "coverage",
    "duplicated_lines_density",
)
NEW_KEY_MEASURES = (
    "new_violations",
    "new_security_hotspots_reviewed",
    "new_coverage",
    "new_duplicated_lines_density",
)

# Metrics where a higher value is better; the other known ones are better lower.
HIGHER_IS_BETTER = frozenset(
    {
        "coverage",
        "line_coverage",
        "branch_coverage",
        "security_hotspots_reviewed",
        "new_coverage",
        "new_line_coverage",
        "new_branch_coverage",
        "new_security_hotspots_reviewed",
    }
)
LOWER_IS_BETTER = frozenset(
    {
        "bugs",
        "vulnerabilities",
        "code_smells",
        "violations",
        "security_hotspots",
        "duplicated_lines",
        "duplicated_lines_density",
        "duplicated_blocks",
        "sqale_index",
        "sqale_debt_ratio",
        "new_bugs",
        "new_vulnerabilities",
        "new_code_smells",
        "new_violations",
        "new_security_hotspots",
        "new_duplicated_lines",
        "new_duplicated_lines_density",
        "new_technical_debt",
        "new_sqale_debt_ratio",
    }
)
PERCENT_METRICS = frozenset(
    {
        "coverage",
        "line_coverage",
        "branch_coverage",
        "duplicated_lines_density",
        "security_hotspots_reviewed",
        "sqale_debt_ratio",
        "new_coverage",
        "new_line_coverage",
        "new_branch_coverage",
        "new_duplicated_lines_density",
        "new_security_hotspots_reviewed",
        "new_sqale_debt_ratio",
    }
)
WORK_DUR_METRICS = frozenset({"sqale_index", "new_technical_debt", "effort_to_reach_maintainability_rating_a"})
OPERATORS = {
    "LESS_THAN": "LT",
    "GREATER_THAN": "GT",
    "EQUALS": "EQ",
    "NOT_EQUALS": "NE",
    "LT": "LT",
    "GT": "GT",
    "EQ": "EQ",
    "NE": "NE",
}
_REPO = re.compile(REPO_NAME_PATTERN)
_SLUG = re.compile(r"[a-z0-9]{2,20}")


class UnreadablePayload(ValueError):
    """A body that is not a SonarQube quality-gate delivery (the reason is safe to log)."""


def kind_of(metric: str) -> MetricKind:
    """How a metric's value reads: a percentage, a rating (1..5 = A..E), a count, minutes…"""
    if metric in PERCENT_METRICS:
        return "PERCENT"
    if metric.endswith("_rating"):
        return "RATING"
    if metric in WORK_DUR_METRICS:
        return "WORK_DUR"
    if metric in LOWER_IS_BETTER or metric in ("ncloc", "lines", "statements", "functions", "classes", "files"):
        return "INT"
    return "FLOAT"


def higher_is_better(metric: str) -> bool | None:
    """True when a rise is an improvement, False when it is a regression, None when neither."""
    if metric in HIGHER_IS_BETTER:
        return True
    if metric in LOWER_IS_BETTER or metric.endswith("_rating"):  # ratings: 1 (A) is best
        return False
    return None


# --------------------------------------------------------------------------- signature


def signature_ok(secret: str, raw: bytes, header: str | None) -> bool:
    """Whether ``header`` is the hex HMAC-SHA256 of ``raw`` under ``secret`` (constant time).

    Hex digits may be upper or lower case; a missing header, or no secret to check it with, is a no.
    """
    if not secret or not header:
        return False
    expected = hmac.new(secret.encode("utf-8"), raw, hashlib.sha256).hexdigest().encode("ascii")
    given = header.strip().lower().encode("utf-8", "replace")
    return hmac.compare_digest(expected, given)


def delivery_id(raw: bytes) -> str:
    """The inbox key of a delivery: its ``taskId`` when it has one, else the hash of the body."""
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        payload = None
    task = payload.get("taskId") if isinstance(payload, dict) else None
    if isinstance(task, str) and task.strip():
        return f"task:{task.strip()[:100]}"
    return f"sha256:{hashlib.sha256(raw).hexdigest()}"


# --------------------------------------------------------------------------- gate results


@dataclass(frozen=True)
class Condition:
    """One condition of a quality gate; ``operator`` is ``LT`` or ``GT`` (``EQ``/``NE`` on old servers)."""

    metric: str
    operator: str
    value: str | None
    threshold: str
    status: str  # OK, ERROR, WARN (before SonarQube 7.6), NONE / NO_VALUE

    @property
    def failed(self) -> bool:
        return self.status == "ERROR"


@dataclass(frozen=True)
class GateResult:
    """What a SonarQube webhook delivery says about one analysis of a project's branch."""

    project_key: str
    project_name: str
    status: GateStatus
    conditions: tuple[Condition, ...] = ()
    branch: str = ""
    branch_type: str = "BRANCH"  # or PULL_REQUEST
    is_main: bool = True
    revision: str = ""
    analysed_at: str = ""
    task_id: str | None = None
    task_status: str = "SUCCESS"  # the background task: SUCCESS, FAILED, CANCELED
    gate_name: str = ""
    server_url: str = ""
    dashboard_url: str = ""
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> tuple[Condition, ...]:
        """The conditions that broke the gate, in the gate's order."""
        return tuple(c for c in self.conditions if c.failed)

    @property
    def passed(self) -> bool:
        return self.status == "OK"

    @property
    def is_pull_request(self) -> bool:
        return self.branch_type == "PULL_REQUEST"


def _text(value: Any) -> str | None:
    """A scalar from the payload as text; None for a missing or structured value."""
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _web_url(value: Any) -> str:
    """An http(s) URL from the payload, or "" (a link in a card must not be ``javascript:``…)."""
    text = _text(value) or ""
    try:
        parts = urlsplit(text)
    except ValueError:
        return ""
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or any(c in text for c in " \n\r\t<>"):
        return ""
    return text


def _gate_status(value: Any) -> GateStatus:
    status = (_text(value) or "NONE").upper()
    for known in GATE_STATUSES:
        if status == known:
            return known
    raise UnreadablePayload(f"unknown quality gate status {status[:20]!r}")


def _condition(item: Any, metric_key: str, op_key: str, value_key: str) -> Condition | None:
    if not isinstance(item, dict):
        return None
    metric = _text(item.get(metric_key))
    if not metric:
        return None
    operator = (_text(item.get(op_key)) or "").upper()
    return Condition(
        metric=metric,
        operator=OPERATORS.get(operator, operator),
        value=_text(item.get(value_key)),
        threshold=_text(item.get("errorThreshold")) or "",
        status=(_text(item.get("status")) or "NONE").upper(),
    )


def parse_webhook(payload: dict[str, Any], server_url: str | None = None) -> GateResult:
    """A webhook body read into a :class:`GateResult`; :class:`UnreadablePayload` if it is none.

    ``server_url``: the SonarQube the bot is configured with. Given, the dashboard link is rebuilt
    from it and the project key (the body's ``serverUrl`` and ``url`` fields are ignored: a card
    links only to the platform's own SonarQube).
    """
    if not isinstance(payload, dict):
        raise UnreadablePayload("the body is not a JSON object")
    project = payload.get("project")
    if not isinstance(project, dict) or not _text(project.get("key")):
        raise UnreadablePayload("no project.key")
    gate = payload.get("qualityGate")
    task_status = (_text(payload.get("status")) or "").upper()
    if gate is None and not task_status:
        raise UnreadablePayload("neither qualityGate nor a task status")
    if gate is not None and not isinstance(gate, dict):
        raise UnreadablePayload("qualityGate is not an object")
    gate = gate or {}
    raw_conditions = gate.get("conditions") or []
    if not isinstance(raw_conditions, list):
        raise UnreadablePayload("qualityGate.conditions is not a list")
    conditions = tuple(
        c for c in (_condition(i, "metric", "operator", "value") for i in raw_conditions) if c is not None
    )

    key = str(_text(project.get("key")))
    trusted = server_url is not None
    server_url = (server_url or "" if trusted else _web_url(payload.get("serverUrl"))).rstrip("/")
    branch = payload.get("branch")
    if isinstance(branch, dict):
        branch_name = _text(branch.get("name")) or ""
        branch_type = (_text(branch.get("type")) or "BRANCH").upper()
        is_main = branch.get("isMain") is True
        branch_url = "" if trusted else _web_url(branch.get("url"))
    else:  # servers without branch support: the main branch only
        branch_name, branch_type, is_main, branch_url = "", "BRANCH", True, ""
    dashboard = branch_url or (_web_url(project.get("url")) if is_main and not trusted else "")
    if not dashboard and server_url:
        dashboard = f"{server_url}/dashboard?id={quote(key, safe='')}"
        if branch_name and not is_main:
            param = "pullRequest" if branch_type == "PULL_REQUEST" else "branch"
            dashboard += f"&{param}={quote(branch_name, safe='')}"
    task_id = _text(payload.get("taskId"))
    properties = payload.get("properties")
    return GateResult(
        project_key=key,
        project_name=_text(project.get("name")) or key,
        status=_gate_status(gate.get("status")),
        conditions=conditions,
        branch=branch_name,
        branch_type=branch_type,
        is_main=is_main,
        revision=_text(payload.get("revision")) or "",
        analysed_at=_text(payload.get("analysedAt")) or "",
        task_id=task_id or None,
        task_status=task_status or "SUCCESS",
        gate_name=_text(gate.get("name")) or "",
        server_url=server_url,
        dashboard_url=dashboard,
        properties={str(k): str(v) for k, v in properties.items()} if isinstance(properties, dict) else {},
    )


def from_project_status(obj: Mapping[str, Any]) -> list[Condition]:
    """The conditions of api/qualitygates/project_status's ``projectStatus`` object."""
    items = obj.get("conditions") if isinstance(obj, Mapping) else None
    if not isinstance(items, list):
        return []
    found = (_condition(i, "metricKey", "comparator", "actualValue") for i in items)
    return [c for c in found if c is not None]


def status_of(obj: Mapping[str, Any]) -> GateStatus:
    """The gate status of a ``projectStatus`` object (NONE when never computed or unreadable)."""
    try:
        return _gate_status(obj.get("status") if isinstance(obj, Mapping) else None)
    except UnreadablePayload:
        return "NONE"


# --------------------------------------------------------------------------- trends


@dataclass(frozen=True)
class Trend:
    """How a measure moved since the previous analysis: ``delta`` is current − previous."""

    metric: str
    previous: float
    current: float
    delta: float
    direction: Direction


def parse_number(text: str | None) -> float | None:
    """A SonarQube measure's value as a finite number, or None."""
    if text is None:
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def trend(previous: dict[str, str] | None, current: dict[str, str]) -> dict[str, Trend]:
    """Per metric found (numeric) in both analyses and known to be better higher or lower."""
    if not previous:
        return {}
    trends: dict[str, Trend] = {}
    for metric, text in current.items():
        higher = higher_is_better(metric)
        now, before = parse_number(text), parse_number(previous.get(metric))
        if higher is None or now is None or before is None:
            continue
        delta = round(now - before, 6)
        if delta == 0:
            direction: Direction = "same"
        elif (delta > 0) == higher:
            direction = "better"
        else:
            direction = "worse"
        trends[metric] = Trend(metric, before, now, delta, direction)
    return trends


# --------------------------------------------------------------------------- naming


def owner_of(project_key: str, is_project: Callable[[str], bool]) -> tuple[str, str] | None:
    """The platform project (its slug) and repository a Sonar key belongs to, or None.

    Two keys exist: the console's ``<slug>-<repo>-<hash>`` (:func:`console_sonar_key`), whose 4-hex
    hash of the repository's name tells where the slug ends, so a console slug with dashes
    (``name-1``, ``generateSlug``) is found; and the bot's own ``<slug>-<repo>``, whose slug has no
    dash (direct mode's naming rule). ``is_project`` says whether a slug is one of the bot's projects.
    """
    if len(project_key) > 200:
        return None
    console_shaped = False
    for index, char in enumerate(project_key):
        if char != "-":
            continue
        slug, base = project_key[:index], project_key[index + 1 :].rpartition("-")[0]
        if base and _REPO.fullmatch(base) and console_sonar_key(slug, base) == project_key:
            if is_project(slug):
                return slug, base
            console_shaped = True  # another project's console key: never read as <slug>-<repo>
    slug, _, repo = project_key.partition("-")
    if not console_shaped and _SLUG.fullmatch(slug) and _REPO.fullmatch(repo) and is_project(slug):
        return slug, repo
    return None


__all__ = [
    "GATE_STATUSES",
    "HIGHER_IS_BETTER",
    "KEY_MEASURES",
    "LOWER_IS_BETTER",
    "NEW_KEY_MEASURES",
    "PERCENT_METRICS",
    "Condition",
    "Direction",
    "GateResult",
    "GateStatus",
    "Trend",
    "UnreadablePayload",
    "delivery_id",
    "from_project_status",
    "higher_is_better",
    "kind_of",
    "owner_of",
    "parse_webhook",
    "signature_ok",
    "status_of",
    "trend",
]
