"""SonarQube emulator: the Web API subset the bot and the console's sonarqube plugin use.

Faithful to SonarQube Server 10.x (``SonarSource/sonarqube`` ``server/sonar-webserver-webapi`` ws
actions and their ``*-example.json`` files):

- Authentication: ``Authorization: Bearer <token>`` (10.0 and later: ``State(version="9.9…")``
  ignores it, as the 9.9 LTS does), or HTTP Basic with the token as login and an
  empty password, or Basic ``login:password`` for local users. "Force user authentication" is on
  (the default since 8.6): an anonymous call to a protected action answers 401, and so do bad
  credentials anywhere, with an EMPTY body. A logged-in user lacking a right gets 403
  ``{"errors":[{"msg":"Insufficient privileges"}]}``; bad input 400 and unknown objects 404 use the
  same ``{"errors":[{"msg": …}]}`` envelope.
- POST actions read form-encoded parameters (query-string parameters are accepted too, as
  SonarQube does); GET actions read the query string. Calling a POST action with GET answers 405.
- ``api/system/health`` takes the ``X-Sonar-Passcode`` header or a system administrator.

The seeded ``admin`` user is a system administrator whose token is ``State(admin_token=…)``.

Analyses (``State.run_analysis``) record measures per project and branch, evaluate the project's
quality gate (default "Sonar way") for ``api/qualitygates/project_status`` and
``api/measures/component``, and POST SonarQube's webhook payload to the matching webhooks, signed
with ``X-Sonar-Webhook-HMAC-SHA256`` when the webhook has a secret.
Everything lives in memory behind one lock, so tests may read the state from their own thread.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from services.base import ssl_context
from services.emulators.base import FaultMiddleware, Faults

# Project and global permissions, as ``api/permissions/add_user`` validates them.
PROJECT_PERMISSIONS = ("admin", "codeviewer", "issueadmin", "securityhotspotadmin", "scan", "user")
GLOBAL_PERMISSIONS = (
    "admin",
    "gateadmin",
    "profileadmin",
    "provisioning",
    "scan",
    "applicationcreator",
    "portfoliocreator",
)
# What the default permission template grants the creator of a project ("Project creator").
CREATOR_PERMISSIONS = frozenset({"admin", "user", "codeviewer", "issueadmin", "securityhotspotadmin"})
TOKEN_TYPES = {"USER_TOKEN": "squ_", "GLOBAL_ANALYSIS_TOKEN": "sqa_", "PROJECT_ANALYSIS_TOKEN": "sqp_"}
MAX_WEBHOOKS = 10
PROJECT_KEY_RE = re.compile(r"^[\w\-.:]*[a-zA-Z_\-.:]+[\w\-.:]*$")
LOGIN_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9.@_\-]*$")
DEFAULT_GATE = "Sonar way"

# Metrics the emulator knows: key -> (type, best value or None). Ratings are 1 (A) to 5 (E).
METRICS: dict[str, tuple[str, str | None]] = {
    "alert_status": ("LEVEL", None),
    "ncloc": ("INT", None),
    "coverage": ("PERCENT", "100.0"),
    "new_coverage": ("PERCENT", "100.0"),
    "duplicated_lines_density": ("PERCENT", "0.0"),
    "new_duplicated_lines_density": ("PERCENT", "0.0"),
    "security_hotspots_reviewed": ("PERCENT", "100.0"),
    "new_security_hotspots_reviewed": ("PERCENT", "100.0"),
    "bugs": ("INT", "0"),
    "vulnerabilities": ("INT", "0"),
    "code_smells": ("INT", "0"),
    "security_hotspots": ("INT", "0"),
    "violations": ("INT", "0"),
    "new_violations": ("INT", "0"),
    "reliability_rating": ("RATING", "1.0"),
    "security_rating": ("RATING", "1.0"),
    "sqale_rating": ("RATING", "1.0"),
    "new_reliability_rating": ("RATING", "1.0"),
    "new_security_rating": ("RATING", "1.0"),
    "new_maintainability_rating": ("RATING", "1.0"),
}
# What a scan "finds", by outcome. "passed" satisfies every Sonar way condition, "failed" breaks four.
PASSED_MEASURES = {
    "ncloc": "4210",
    "coverage": "82.3",
    "new_coverage": "87.5",
    "duplicated_lines_density": "2.1",
    "new_duplicated_lines_density": "1.2",
    "security_hotspots_reviewed": "100.0",
    "new_security_hotspots_reviewed": "100.0",
    "bugs": "0",
    "vulnerabilities": "0",
    "code_smells": "12",
    "security_hotspots": "0",
    "violations": "12",
    "new_violations": "0",
    "reliability_rating": "1",
    "security_rating": "1",
    "sqale_rating": "1",
    "new_reliability_rating": "1",
    "new_security_rating": "1",
    "new_maintainability_rating": "1",
}
FAILED_MEASURES = {
    **PASSED_MEASURES,
    "coverage": "61.0",
    "new_coverage": "42.5",
    "new_duplicated_lines_density": "4.8",
    "security_hotspots_reviewed": "50.0",
    "new_security_hotspots_reviewed": "50.0",
    "bugs": "3",
    "security_hotspots": "2",
    "violations": "19",
    "new_violations": "7",
    "reliability_rating": "3",
    "new_reliability_rating": "3",
}


def now_iso(moment: datetime | None = None) -> str:
    """SonarQube's date-time format, e.g. ``2025-02-14T16:02:41+0100``."""
    moment = moment or datetime.now(UTC).astimezone()
    return moment.strftime("%Y-%m-%dT%H:%M:%S%z")


def new_uuid() -> str:
    """A 20-character identifier shaped like SonarQube's UUIDs (``AZTxWb3iRYC9Ho0n5Xkq``)."""
    return "AZ" + base64.urlsafe_b64encode(secrets.token_bytes(14)).decode()[:18]


@dataclass
class Timings:
    """Durations in seconds; tests set them to milliseconds."""

    # Background-task processing between the end of a scan and the webhook deliveries.
    analysis_seconds: float = 0.0
    # SonarQube gives up on a webhook delivery after 10 s (connect and read).
    webhook_timeout: float = 10.0


@dataclass
class Token:
    name: str
    value: str
    type: str
    created_at: str
    project_key: str | None = None
    expiration_date: str | None = None
    last_used: str | None = None


@dataclass
class User:
    login: str
    name: str
    email: str | None = None
    local: bool = True
    active: bool = True
    password: str | None = None
    scm_accounts: list[str] = field(default_factory=list)
    tokens: dict[str, Token] = field(default_factory=dict)
    permissions: set[str] = field(default_factory=set)  # global permissions
    last_connection: str | None = None


@dataclass
class Project:
    key: str
    name: str
    visibility: str = "public"
    main_branch: str = "main"
    created_at: str = field(default_factory=now_iso)
    # login -> project permissions
    permissions: dict[str, set[str]] = field(default_factory=dict)


@dataclass
class Webhook:
    key: str
    name: str
    url: str
    secret: str | None = None
    project_key: str | None = None  # None: a global webhook
    latest_delivery: dict[str, Any] | None = None


@dataclass(frozen=True)
class Condition:
    """A quality gate condition: the gate fails when ``value <op> error`` (``LT`` or ``GT``)."""

    metric: str
    op: str
    error: str


SONAR_WAY = (
    Condition("new_coverage", "LT", "80"),
    Condition("new_duplicated_lines_density", "GT", "3"),
    Condition("new_security_hotspots_reviewed", "LT", "100"),
    Condition("new_reliability_rating", "GT", "1"),
    Condition("new_security_rating", "GT", "1"),
    Condition("new_maintainability_rating", "GT", "1"),
)


@dataclass
class EvaluatedCondition:
    condition: Condition
    value: str | None
    status: str  # OK, ERROR, or NO_VALUE


@dataclass
class Analysis:
    """One processed scan of a branch, with its measures and quality gate verdict."""

    key: str
    task_id: str
    project_key: str
    branch: str
    revision: str
    analysed_at: datetime
    measures: dict[str, str]
    gate: str
    status: str  # OK or ERROR
    conditions: list[EvaluatedCondition]
    properties: dict[str, str]


class SonarError(Exception):
    """An answer other than 2xx. Status 401 is sent with an empty body, as SonarQube does."""

    def __init__(self, status: int, msg: str = "") -> None:
        super().__init__(msg)
        self.status = status
        self.msg = msg


def bad_request(msg: str) -> SonarError:
    return SonarError(400, msg)


def not_found(msg: str) -> SonarError:
    return SonarError(404, msg)


def forbidden() -> SonarError:
    return SonarError(403, "Insufficient privileges")


def error_body(status: int) -> dict[str, Any]:
    """SonarQube's error envelope, for the fault switches."""
    reasons = {401: "Authentication required", 403: "Insufficient privileges", 404: "Not found"}
    return {"errors": [{"msg": reasons.get(status, f"HTTP {status}")}]}


class State:
    """All SonarQube data of the emulator, plus its fault switches and timings."""

    def __init__(
        self,
        admin_token: str,
        *,
        admin_login: str = "admin",
        admin_password: str | None = None,
        passcode: str = "emulator-passcode",
        server_url: str = "http://localhost:9000",
        version: str = "10.7.0.96327",
        validate_webhooks: bool = False,
    ) -> None:
        self.lock = threading.RLock()
        self.faults = Faults()
        self.timings = Timings()
        self.passcode = passcode
        # Public base URL written in webhook payloads (``serverUrl``, dashboard links).
        self.server_url = server_url
        self.version = version  # "9.9.x" switches to the LTS's Basic-only token authentication
        self.server_id = "243B8A4D-AZ" + secrets.token_hex(6).upper()
        # Like ``sonar.validateWebhooks``: real SonarQube refuses loopback webhook URLs unless it is
        # turned off. Off by default here, since the bot under test listens on loopback.
        self.validate_webhooks = validate_webhooks
        self.system_status = "UP"
        self.health = "GREEN"
        self.health_causes: list[str] = []
        self.users: dict[str, User] = {}
        self.projects: dict[str, Project] = {}
        self.webhooks: dict[str, Webhook] = {}
        self._token_index: dict[str, str] = {}  # token value -> login
        self.gates: dict[str, tuple[Condition, ...]] = {DEFAULT_GATE: SONAR_WAY}
        self.default_gate = DEFAULT_GATE
        self.project_gates: dict[str, str] = {}
        self.analyses: list[Analysis] = []
        # Every webhook delivery attempted: webhook key, url, headers, raw body, status or error.
        self.deliveries: list[dict[str, Any]] = []
        self.admin_login = admin_login
        admin = self.add_user(admin_login, "Administrator", password=admin_password, admin=True)
        self.add_token(admin.login, "emulator-admin", token=admin_token)

    # ----------------------------------------------------------------- seeding helpers

    @property
    def major_version(self) -> int:
        head = self.version.split(".", 1)[0]
        return int(head) if head.isdigit() else 10

    def add_user(
        self,
        login: str,
        name: str | None = None,
        *,
        password: str | None = None,
        email: str | None = None,
        local: bool = True,
        admin: bool = False,
    ) -> User:
        """Create (or replace) an active user; ``admin=True`` grants the global ``admin`` permission."""
        with self.lock:
            user = User(login=login, name=name or login, email=email, local=local, password=password)
            if admin:
                user.permissions.add("admin")
            self.users[login] = user
            return user

    def add_token(self, login: str, name: str, *, token: str | None = None, type: str = "USER_TOKEN") -> str:
        """Give ``login`` a token named ``name`` and return its value."""
        with self.lock:
            value = token or TOKEN_TYPES[type] + secrets.token_hex(20)
            self.users[login].tokens[name] = Token(name, value, type, now_iso())
            self._token_index[value] = login
            return value

    def add_project(
        self, key: str, name: str | None = None, *, visibility: str = "private", main_branch: str = "main"
    ) -> Project:
        with self.lock:
            project = Project(key=key, name=name or key, visibility=visibility, main_branch=main_branch)
            self.projects[key] = project
            return project

    def grant(self, login: str, permission: str, project_key: str | None = None) -> None:
        """Grant a global permission, or a project permission when ``project_key`` is given."""
        with self.lock:
            if project_key is None:
                self.users[login].permissions.add(permission)
            else:
                self.projects[project_key].permissions.setdefault(login, set()).add(permission)

    def add_webhook(self, name: str, url: str, *, project_key: str | None = None, secret: str | None = None) -> str:
        """Register a webhook (global when ``project_key`` is None) and return its key."""
        with self.lock:
            hook = Webhook(key=new_uuid(), name=name, url=url, secret=secret, project_key=project_key)
            self.webhooks[hook.key] = hook
            return hook.key

    def set_health(self, health: str, causes: list[str] | None = None) -> None:
        """``GREEN``, ``YELLOW`` or ``RED``, as ``api/system/health`` reports it."""
        with self.lock:
            self.health = health
            self.health_causes = list(causes or [])

    def add_quality_gate(self, name: str, conditions: list[tuple[str, str, str]], *, default: bool = False) -> None:
        """A gate from ``(metric, "LT"|"GT", error threshold)`` triples."""
        with self.lock:
            self.gates[name] = tuple(Condition(*c) for c in conditions)
            if default:
                self.default_gate = name

    def set_project_gate(self, project_key: str, gate: str) -> None:
        with self.lock:
            self.project_gates[project_key] = gate

    def run_analysis(
        self,
        project_key: str,
        branch: str | None = None,
        revision: str | None = None,
        outcome: str = "passed",
        *,
        measures: dict[str, str] | None = None,
        properties: dict[str, str] | None = None,
        wait: bool = True,
    ) -> Analysis:
        """A scanner run on ``branch`` (default: the main branch) at ``revision``.

        After ``timings.analysis_seconds`` (the background task), the analysis is recorded and its
        payload POSTed to every webhook of the project and every global webhook, as SonarQube's
        WebhookPayloadFactoryImpl shapes it. ``outcome`` picks the measures ("passed" or "failed");
        ``measures`` overrides some. With ``wait=False`` the processing runs in a thread.
        """
        if outcome not in ("passed", "failed"):
            raise ValueError(f"outcome must be 'passed' or 'failed', not {outcome!r}")
        with self.lock:
            project = self.projects.get(project_key)
            if project is None:
                raise KeyError(f"no SonarQube project {project_key!r}")
            found = dict(PASSED_MEASURES if outcome == "passed" else FAILED_MEASURES)
            found.update(measures or {})
            gate = self.project_gates.get(project_key, self.default_gate)
            conditions = [evaluate(c, found.get(c.metric)) for c in self.gates[gate]]
            status = "ERROR" if any(c.status == "ERROR" for c in conditions) else "OK"
            found["alert_status"] = status
            analysis = Analysis(
                key=new_uuid(),
                task_id=new_uuid(),
                project_key=project_key,
                branch=branch or project.main_branch,
                revision=revision or secrets.token_hex(20),
                analysed_at=datetime.now(UTC).astimezone(),
                measures=found,
                gate=gate,
                status=status,
                conditions=conditions,
                properties=dict(
                    properties or {"sonar.analysis.detectedscm": "git", "sonar.analysis.detectedci": "Gitlab CI"}
                ),
            )
        if wait:
            self._process(analysis)
        else:
            threading.Thread(target=self._process, args=(analysis,), daemon=True).start()
        return analysis

    # ----------------------------------------------------------------- read helpers

    def analyses_of(self, project_key: str, branch: str | None = None) -> list[Analysis]:
        with self.lock:
            return [a for a in self.analyses if a.project_key == project_key and (branch is None or a.branch == branch)]

    def latest_analysis(self, project_key: str, branch: str) -> Analysis | None:
        found = self.analyses_of(project_key, branch)
        return found[-1] if found else None

    def delivered(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(d) for d in self.deliveries]

    def user(self, login: str) -> User | None:
        with self.lock:
            return self.users.get(login)

    def token_names(self, login: str) -> list[str]:
        with self.lock:
            user = self.users.get(login)
            return sorted(user.tokens) if user else []

    def project(self, key: str) -> Project | None:
        with self.lock:
            return self.projects.get(key)

    def project_permissions(self, key: str, login: str) -> set[str]:
        with self.lock:
            project = self.projects.get(key)
            return set(project.permissions.get(login, set())) if project else set()

    def webhooks_of(self, project_key: str | None) -> list[Webhook]:
        with self.lock:
            return [h for h in self.webhooks.values() if h.project_key == project_key]

    # ----------------------------------------------------------------- internals

    def login_for_token(self, value: str) -> str | None:
        with self.lock:
            login = self._token_index.get(value)
            if login is None or login not in self.users:
                return None
            user = self.users[login]
            token = next((t for t in user.tokens.values() if t.value == value), None)
            if token is None or not user.active:
                return None
            if token.expiration_date and token.expiration_date < date.today().isoformat():
                return None
            token.last_used = now_iso()
            user.last_connection = token.last_used
            return login

    def _process(self, analysis: Analysis) -> None:
        time.sleep(self.timings.analysis_seconds)
        with self.lock:
            project = self.projects.get(analysis.project_key)
            if project is None:  # deleted while the background task ran
                return
            self.analyses.append(analysis)
            body = webhook_body(self, project, analysis)
            hooks = [h for h in self.webhooks.values() if h.project_key in (None, project.key)]
        # Deliver outside the lock: the receiver may well call back into this emulator.
        for hook in hooks:
            self._deliver(hook, project.key, body)

    def _deliver(self, hook: Webhook, project_key: str, body: bytes) -> None:
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": f"SonarQube/{self.version}",
            "X-SonarQube-Project": project_key,
        }
        if hook.secret:
            digest = hmac.new(hook.secret.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Sonar-Webhook-HMAC-SHA256"] = digest
        record: dict[str, Any] = {"webhook": hook.key, "url": hook.url, "headers": headers, "body": body}
        started = time.monotonic()
        try:
            # trust_env=False: a proxy from the environment must not swallow loopback deliveries.
            with httpx.Client(timeout=self.timings.webhook_timeout, trust_env=False, verify=ssl_context()) as client:
                record["status"] = client.post(hook.url, content=body, headers=headers).status_code
        except httpx.HTTPError as exc:
            record["status"] = None
            record["error"] = type(exc).__name__
        duration = int((time.monotonic() - started) * 1000)
        success = record["status"] is not None and 200 <= record["status"] < 300
        with self.lock:
            self.deliveries.append(record)
            hook.latest_delivery = {
                "id": new_uuid(),
                "at": now_iso(),
                "success": success,
                "httpStatus": record["status"] or 0,
                "durationMs": duration,
            }

    def drop_token(self, login: str, name: str) -> None:
        with self.lock:
            token = self.users[login].tokens.pop(name, None)
            if token is not None:
                self._token_index.pop(token.value, None)


# --------------------------------------------------------------------------- analyses


def evaluate(condition: Condition, value: str | None) -> EvaluatedCondition:
    if value is None:
        return EvaluatedCondition(condition, None, "NO_VALUE")
    actual, threshold = float(value), float(condition.error)
    failed = actual < threshold if condition.op == "LT" else actual > threshold
    return EvaluatedCondition(condition, format_value(condition.metric, value), "ERROR" if failed else "OK")


def format_value(metric: str, value: str) -> str:
    """Measures as SonarQube prints them: ``87.5`` for percents and ratings, ``7`` for counts."""
    kind = METRICS.get(metric, ("STRING", None))[0]
    if kind in ("PERCENT", "RATING", "FLOAT"):
        return f"{float(value):.1f}"
    if kind == "INT":
        return str(int(float(value)))
    return value


def webhook_body(state: State, project: Project, analysis: Analysis) -> bytes:
    """The raw body SonarQube POSTs (``sonarqube_webhook.json`` fixture, compact JSON in UTF-8)."""
    base = state.server_url.rstrip("/")
    project_url = f"{base}/dashboard?id={quote(project.key, safe='')}"
    is_main = analysis.branch == project.main_branch
    branch_url = project_url if is_main else f"{project_url}&branch={quote(analysis.branch, safe='')}"
    at = now_iso(analysis.analysed_at)
    conditions = []
    for evaluated in analysis.conditions:
        item: dict[str, Any] = {
            "metric": evaluated.condition.metric,
            "operator": "LESS_THAN" if evaluated.condition.op == "LT" else "GREATER_THAN",
        }
        if evaluated.value is not None:
            item["value"] = evaluated.value
        item.update({"status": evaluated.status, "errorThreshold": evaluated.condition.error})
        conditions.append(item)
    payload = {
        "serverUrl": base,
        "taskId": analysis.task_id,
        "status": "SUCCESS",
        "analysedAt": at,
        "revision": analysis.revision,
        "changedAt": at,
        "project": {"key": project.key, "name": project.name, "url": project_url},
        "branch": {"name": analysis.branch, "type": "BRANCH", "isMain": is_main, "url": branch_url},
        "qualityGate": {"name": analysis.gate, "status": analysis.status, "conditions": conditions},
        "properties": analysis.properties,
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# --------------------------------------------------------------------------- requests


@dataclass
class Call:
    """One Web API call: its parameters and who made it."""

    state: State
    params: dict[str, list[str]]
    user: User | None
    headers: dict[str, str]

    def opt(self, name: str) -> str | None:
        values = self.params.get(name)
        return values[-1] if values else None

    def required(self, name: str) -> str:
        value = self.opt(name)
        if value is None or value.strip() == "":
            raise bad_request(f"The '{name}' parameter is missing")
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self.opt(name)
        if value is None or value == "":
            return default
        if value.lower() in ("true", "yes"):
            return True
        if value.lower() in ("false", "no"):
            return False
        raise bad_request(f"Value of parameter '{name}' ({value}) must be one of: [true, false, yes, no]")

    def integer(self, name: str, default: int, maximum: int | None = None) -> int:
        value = self.opt(name)
        if value is None or value == "":
            return default
        try:
            number = int(value)
        except ValueError as exc:
            raise bad_request(f"'{value}' is not a valid integer") from exc
        if maximum is not None and number > maximum:
            raise bad_request(f"'{name}' value ({number}) must be less than {maximum}")
        return number

    def max_length(self, name: str, value: str, limit: int) -> None:
        if len(value) > limit:
            raise bad_request(f"'{name}' length ({len(value)}) is longer than the maximum authorized ({limit})")

    # Rights --------------------------------------------------------------

    @property
    def me(self) -> User:
        if self.user is None:  # protected actions never run anonymously
            raise SonarError(401)
        return self.user

    def is_admin(self) -> bool:
        return self.user is not None and "admin" in self.user.permissions

    def has_global(self, permission: str) -> bool:
        return self.is_admin() or (self.user is not None and permission in self.user.permissions)

    def has_project(self, project: Project, permission: str) -> bool:
        if self.is_admin():
            return True
        if permission in ("user", "codeviewer") and project.visibility == "public":
            return True
        return self.user is not None and permission in project.permissions.get(self.user.login, set())

    def check_admin(self) -> None:
        if not self.is_admin():
            raise forbidden()

    def check_project(self, project: Project, permission: str) -> None:
        if not self.has_project(project, permission):
            raise forbidden()

    def project(self, key: str) -> Project:
        project = self.state.projects.get(key)
        if project is None:
            raise not_found(f"Project '{key}' not found")
        return project


Action = Callable[[Call], "dict[str, Any] | Response | None"]


def authenticate(state: State, request: Request) -> tuple[bool, User | None]:
    """``(credentials_ok, user)``; no credentials at all is ``(True, None)`` (anonymous)."""
    header = request.headers.get("authorization", "")
    if not header:
        return True, None
    scheme, _, value = header.partition(" ")
    value = value.strip()
    login: str | None = None
    if scheme.lower() == "bearer" and state.major_version < 10:
        # 9.9 LTS reads tokens only from Basic (SonarSource/sonarqube 9.9
        # server/sonar-webserver-auth/.../authentication/BasicAuthentication.java): any other
        # scheme leaves the caller anonymous (UserSessionInitializer: 401 where login is forced).
        return True, None
    if scheme.lower() == "bearer" and value:
        # Bearer arrived in 10.0 (UserTokenAuthentication reads "Authorization: Bearer").
        login = state.login_for_token(value)
    elif scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value).decode()
        except (ValueError, UnicodeDecodeError):
            return False, None
        name, _, password = decoded.partition(":")
        if password == "":
            login = state.login_for_token(name)
        else:
            with state.lock:
                user = state.users.get(name)
                if user and user.active and user.local and user.password == password:
                    login = name
    if login is None:
        return False, None
    return True, state.users[login]


async def read_params(request: Request) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        params.setdefault(key, []).append(value)
    if request.method == "POST":
        body = (await request.body()).decode("utf-8", errors="replace")
        for key, value in parse_qsl(body, keep_blank_values=True):
            params.setdefault(key, []).append(value)
    return params


def error_response(error: SonarError) -> Response:
    if error.status == 401:
        return Response(status_code=401)
    return JSONResponse({"errors": [{"msg": error.msg}]}, status_code=error.status)


def ws(state: State, action: Action, *, post: bool, protected: bool = True) -> Callable[[Request], Awaitable[Response]]:
    """Wrap an action: method check, credentials, parameters, then errors into SonarQube's shapes."""

    async def endpoint(request: Request) -> Response:
        if post and request.method != "POST":
            return JSONResponse({"errors": [{"msg": "HTTP method POST is required"}]}, status_code=405)
        ok, user = authenticate(state, request)
        try:
            if not ok or (protected and user is None):
                raise SonarError(401)
            call = Call(state, await read_params(request), user, dict(request.headers))
            with state.lock:
                result = action(call)
        except SonarError as error:
            return error_response(error)
        if result is None:
            return Response(status_code=204)
        if isinstance(result, Response):
            return result
        return JSONResponse(result)

    return endpoint


# --------------------------------------------------------------------------- api/system


def system_status(call: Call) -> dict[str, Any]:
    state = call.state
    return {"id": state.server_id, "version": state.version, "status": state.system_status}


def system_health(call: Call) -> dict[str, Any]:
    # The passcode is checked before anything else: monitoring probes send it without logging in.
    passcode = call.headers.get("x-sonar-passcode")
    if passcode != call.state.passcode and not call.is_admin():
        raise forbidden()
    return {"health": call.state.health, "causes": [{"message": c} for c in call.state.health_causes]}


def server_version(call: Call) -> Response:
    return PlainTextResponse(call.state.version)


def authentication_validate(call: Call) -> dict[str, Any]:
    return {"valid": call.user is not None}


# --------------------------------------------------------------------------- api/users


def user_json(user: User, *, full: bool) -> dict[str, Any]:
    data: dict[str, Any] = {"login": user.login, "name": user.name, "active": user.active}
    if user.email and full:
        data["email"] = user.email
    if full:
        data["groups"] = ["sonar-users"] if user.active else []
        data["tokensCount"] = len(user.tokens)
        data["externalIdentity"] = user.login
        data["externalProvider"] = "sonarqube"
        data["scmAccounts"] = list(user.scm_accounts)
    data["local"] = user.local
    if user.email:
        data["avatar"] = hashlib.md5(user.email.strip().lower().encode(), usedforsecurity=False).hexdigest()
    if full and user.last_connection:
        data["lastConnectionDate"] = user.last_connection
    data["managed"] = False
    return data


def created_user_json(user: User) -> dict[str, Any]:
    data: dict[str, Any] = {"login": user.login, "name": user.name}
    if user.email:
        data["email"] = user.email
    data.update({"scmAccounts": list(user.scm_accounts), "active": user.active, "local": user.local})
    return {"user": data}


def check_login(login: str) -> None:
    if len(login) < 2:
        raise bad_request("Login should contain at least 2 characters")
    if len(login) > 100:
        raise bad_request("Login should not be longer than 100 characters")
    if not LOGIN_RE.match(login):
        raise bad_request("Login should contain only letters, numbers, and .@-_")


def check_password(password: str) -> None:
    """SonarQube 10 password policy for local users."""
    rules = [
        (len(password) >= 12, "Password must be at least 12 characters long"),
        (any(c.isupper() for c in password), "Password must contain at least one uppercase character"),
        (any(c.islower() for c in password), "Password must contain at least one lowercase character"),
        (any(c.isdigit() for c in password), "Password must contain at least one digit"),
        (any(not c.isalnum() for c in password), "Password must contain at least one special character"),
    ]
    for ok, message in rules:
        if not ok:
            raise bad_request(message)


def users_create(call: Call) -> dict[str, Any]:
    call.check_admin()
    login = call.required("login")
    name = call.required("name")
    call.max_length("name", name, 200)
    local = call.flag("local", True)
    password = call.opt("password")
    if local and not password:
        raise bad_request("Password is mandatory and must not be empty")
    if not local and password:
        raise bad_request("Password should only be set on local user")
    check_login(login)
    if password:
        check_password(password)
    existing = call.state.users.get(login)
    if existing is not None and existing.active:
        raise bad_request(f"An active user with login '{login}' already exists")
    # An inactive user with the same login is reactivated, keeping nothing of its past rights.
    user = User(
        login=login,
        name=name,
        email=call.opt("email"),
        local=local,
        password=password,
        scm_accounts=call.params.get("scmAccount", []),
    )
    call.state.users[login] = user
    return created_user_json(user)


def users_search(call: Call) -> dict[str, Any]:
    _ = call.me  # any logged-in user may search
    page = call.integer("p", 1)
    size = call.integer("ps", 50, maximum=500)
    query = (call.opt("q") or "").lower()
    deactivated = call.flag("deactivated", False)
    users = [
        u
        for u in call.state.users.values()
        if u.active != deactivated
        and (not query or any(query in (v or "").lower() for v in (u.login, u.name, u.email)))
    ]
    users.sort(key=lambda u: (u.name.lower(), u.login))
    chunk = users[(page - 1) * size : page * size]
    full = call.is_admin()
    return {
        "paging": {"pageIndex": page, "pageSize": size, "total": len(users)},
        "users": [user_json(u, full=full) for u in chunk],
    }


def users_deactivate(call: Call) -> dict[str, Any]:
    call.check_admin()
    login = call.required("login")
    state = call.state
    user = state.users.get(login)
    if user is None or not user.active:
        raise not_found(f"User '{login}' doesn't exist")
    if login == call.me.login:
        raise bad_request("Self-deactivation is not possible")
    if (
        "admin" in user.permissions
        and sum(1 for u in state.users.values() if u.active and "admin" in u.permissions) == 1
    ):
        raise bad_request("User is last administrator, and cannot be deactivated")
    # Deactivation revokes the tokens and every permission of the user.
    for name in list(user.tokens):
        state.drop_token(login, name)
    user.permissions.clear()
    for project in state.projects.values():
        project.permissions.pop(login, None)
    user.active = False
    if call.flag("anonymize", False):
        anonymous = f"sq-removed-{secrets.token_hex(8)}"
        del state.users[login]
        user.login, user.name, user.email = anonymous, anonymous, None
        state.users[anonymous] = user
    return created_user_json(user)


# --------------------------------------------------------------------------- api/user_tokens


def token_owner(call: Call) -> User:
    """The user a token action is about: the caller, or another user for an administrator."""
    login = call.opt("login") or call.me.login
    if login != call.me.login and not call.is_admin():
        raise forbidden()
    user = call.state.users.get(login)
    if user is None or not user.active:
        raise not_found(f"User with login '{login}' doesn't exist")
    return user


def user_tokens_generate(call: Call) -> dict[str, Any]:
    name = call.required("name").strip()
    call.max_length("name", name, 100)
    token_type = call.opt("type") or "USER_TOKEN"
    if token_type not in TOKEN_TYPES:
        raise bad_request(
            f"Value of parameter 'type' ({token_type}) must be one of: "
            "[USER_TOKEN, GLOBAL_ANALYSIS_TOKEN, PROJECT_ANALYSIS_TOKEN]"
        )
    owner = token_owner(call)
    project_key: str | None = None
    if token_type != "USER_TOKEN" and owner.login != call.me.login:
        kind = "Project" if token_type == "PROJECT_ANALYSIS_TOKEN" else "Global"
        raise bad_request(f"A {kind} Analysis Token cannot be generated for another user.")
    if token_type == "PROJECT_ANALYSIS_TOKEN":
        project_key = call.opt("projectKey")
        if not project_key:
            raise bad_request("A projectKey is needed when creating Project Analysis Token")
        project = call.state.projects.get(project_key)
        if project is None:
            raise not_found(f"Project key '{project_key}' not found")
        if not (call.has_project(project, "scan") or call.has_global("scan")):
            raise forbidden()
    elif token_type == "GLOBAL_ANALYSIS_TOKEN" and not call.has_global("scan"):
        raise forbidden()
    expiration = parse_expiration(call.opt("expirationDate"))
    if name in owner.tokens:
        raise bad_request(f"A user token for login '{owner.login}' and name '{name}' already exists")
    value = call.state.add_token(owner.login, name, type=token_type)
    token = owner.tokens[name]
    token.project_key = project_key
    token.expiration_date = expiration
    result: dict[str, Any] = {
        "login": owner.login,
        "name": name,
        "token": value,
        "createdAt": token.created_at,
        "type": token_type,
    }
    if project_key:
        result["projectKey"] = project_key
    if expiration:
        result["expirationDate"] = expiration + "T00:00:00+0000"
    return result


def parse_expiration(value: str | None) -> str | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        raise bad_request(
            "Supplied date format for parameter expirationDate is wrong. "
            "Please supply date in the ISO 8601 date format (YYYY-MM-DD)"
        ) from exc
    if day <= date.today():
        raise bad_request("The minimum value for parameter expirationDate is tomorrow.")
    return day.isoformat()


def user_tokens_revoke(call: Call) -> None:
    name = call.required("name")
    owner = token_owner(call)
    call.state.drop_token(owner.login, name)  # revoking an unknown name is not an error


def user_tokens_search(call: Call) -> dict[str, Any]:
    owner = token_owner(call)
    tokens = []
    for token in sorted(owner.tokens.values(), key=lambda t: t.created_at, reverse=True):
        item: dict[str, Any] = {"name": token.name, "createdAt": token.created_at, "type": token.type}
        if token.last_used:
            item["lastConnectionDate"] = token.last_used
        if token.project_key:
            project = call.state.projects.get(token.project_key)
            item["project"] = {"key": token.project_key, "name": project.name if project else ""}
        if token.expiration_date:
            item["expirationDate"] = token.expiration_date + "T00:00:00+0000"
        item["isExpired"] = bool(token.expiration_date and token.expiration_date < date.today().isoformat())
        tokens.append(item)
    return {"login": owner.login, "userTokens": tokens}


# --------------------------------------------------------------------------- api/projects


def project_json(project: Project) -> dict[str, Any]:
    return {"key": project.key, "name": project.name, "qualifier": "TRK", "visibility": project.visibility}


def projects_create(call: Call) -> dict[str, Any]:
    if not call.has_global("provisioning"):
        raise forbidden()
    key = call.required("project")
    name = call.required("name")
    call.max_length("project", key, 400)
    call.max_length("name", name, 500)
    visibility = call.opt("visibility") or "public"
    if visibility not in ("private", "public"):
        raise bad_request(f"Value of parameter 'visibility' ({visibility}) must be one of: [private, public]")
    if not PROJECT_KEY_RE.match(key):
        raise bad_request(
            f"Malformed key for Project: '{key}'. Allowed characters are alphanumeric, '-', '_', '.' "
            "and ':', with at least one non-digit."
        )
    clash = next((k for k in call.state.projects if k.lower() == key.lower()), None)
    if clash is not None:
        raise bad_request(f'Could not create Project with key: "{key}". A similar key already exists: "{clash}"')
    project = call.state.add_project(key, name, visibility=visibility, main_branch=call.opt("mainBranch") or "main")
    if not call.is_admin():
        project.permissions[call.me.login] = set(CREATOR_PERMISSIONS)
    return {"project": project_json(project)}


def projects_search(call: Call) -> dict[str, Any]:
    call.check_admin()
    page = call.integer("p", 1)
    size = call.integer("ps", 100, maximum=500)
    query = (call.opt("q") or "").lower()
    keys = {k for k in (call.opt("projects") or "").split(",") if k}
    projects = [
        p
        for p in call.state.projects.values()
        if (not keys or p.key in keys) and (not query or query in p.key.lower() or query in p.name.lower())
    ]
    projects.sort(key=lambda p: (p.name.lower(), p.key))
    components = []
    for project in projects[(page - 1) * size : page * size]:
        item = project_json(project)
        item.update(last_analysis_fields(call.state, project))
        item["managed"] = False
        components.append(item)
    return {"paging": {"pageIndex": page, "pageSize": size, "total": len(projects)}, "components": components}


def last_analysis_fields(state: State, project: Project) -> dict[str, Any]:
    """``lastAnalysisDate`` and ``revision`` of the main branch, once it has been analysed."""
    analysis = state.latest_analysis(project.key, project.main_branch)
    if analysis is None:
        return {}
    return {"lastAnalysisDate": now_iso(analysis.analysed_at), "revision": analysis.revision}


def projects_delete(call: Call) -> None:
    project = call.project(call.required("project"))
    call.check_project(project, "admin")
    state = call.state
    del state.projects[project.key]
    for key in [k for k, h in state.webhooks.items() if h.project_key == project.key]:
        del state.webhooks[key]
    state.analyses = [a for a in state.analyses if a.project_key != project.key]
    state.project_gates.pop(project.key, None)


# --------------------------------------------------------------------------- api/permissions


def permission_target(call: Call) -> tuple[User, str, Project | None]:
    login = call.required("login")
    permission = call.required("permission")
    project_key = call.opt("projectKey")
    project = call.project(project_key) if project_key else None
    allowed = PROJECT_PERMISSIONS if project else GLOBAL_PERMISSIONS
    if permission not in allowed:
        raise bad_request(f"Value of parameter 'permission' ({permission}) must be one of: [{', '.join(allowed)}]")
    if project is None:
        call.check_admin()
    else:
        call.check_project(project, "admin")
    user = call.state.users.get(login)
    if user is None or not user.active:
        raise not_found(f"User with login '{login}' is not found")
    return user, permission, project


def permissions_add_user(call: Call) -> None:
    user, permission, project = permission_target(call)
    if project is None:
        user.permissions.add(permission)
    else:
        project.permissions.setdefault(user.login, set()).add(permission)


def permissions_remove_user(call: Call) -> None:
    user, permission, project = permission_target(call)
    if project is None:
        admins = [u for u in call.state.users.values() if u.active and "admin" in u.permissions]
        if permission == "admin" and admins == [user]:
            raise bad_request("Last user with permission 'admin'. Permission cannot be removed.")
        user.permissions.discard(permission)
    else:
        project.permissions.get(user.login, set()).discard(permission)


def permissions_users(call: Call) -> dict[str, Any]:
    """Users holding permissions on a project (or globally), optionally filtered by ``q``."""
    key = call.opt("projectKey")
    query = (call.opt("q") or "").lower()
    size = int(call.opt("ps") or 20)
    project = call.project(key) if key else None
    if project is None:
        call.check_admin()
    else:
        call.check_project(project, "admin")
    rows = []
    for login, user in sorted(call.state.users.items()):
        held = project.permissions.get(login, set()) if project is not None else user.permissions
        if not user.active or (not held and not query):
            continue
        if query and query not in login.lower() and query not in user.name.lower():
            continue
        rows.append({"login": login, "name": user.name, "active": True, "permissions": sorted(held)})
    return {"paging": {"pageIndex": 1, "pageSize": size, "total": len(rows)}, "users": rows[:size]}


# --------------------------------------------------------------------------- api/webhooks


def webhook_json(hook: Webhook) -> dict[str, Any]:
    data: dict[str, Any] = {
        "key": hook.key,
        "name": hook.name,
        "url": hook.url,
        "hasSecret": bool(hook.secret),
    }
    if hook.latest_delivery:
        data["latestDelivery"] = dict(hook.latest_delivery)
    return data


def check_webhook_rights(call: Call, project_key: str | None) -> Project | None:
    if not project_key:
        call.check_admin()
        return None
    project = call.project(project_key)
    call.check_project(project, "admin")
    return project


def check_webhook_url(state: State, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise bad_request(f"Url parameter with value '{url}' is not a valid url")
    loopback = parts.hostname in ("localhost", "0.0.0.0", "::", "::1") or parts.hostname.startswith("127.")
    if state.validate_webhooks and loopback:
        raise bad_request("Invalid URL: loopback and wildcard addresses are not allowed for webhooks.")


def webhooks_create(call: Call) -> dict[str, Any]:
    name = call.required("name")
    url = call.required("url")
    call.max_length("name", name, 100)
    call.max_length("url", url, 512)
    secret = call.opt("secret")
    if secret is not None:
        if not 1 <= len(secret) <= 200:
            raise bad_request("'secret' length must be between 1 and 200 characters")
    project = check_webhook_rights(call, call.opt("project"))
    check_webhook_url(call.state, url)
    owner = project.key if project else None
    if len(call.state.webhooks_of(owner)) >= MAX_WEBHOOKS:
        if project:
            raise bad_request(f"Maximum number of webhook reached for project '{project.key}'")
        raise bad_request("Maximum number of global webhooks reached")
    key = call.state.add_webhook(name, url, project_key=owner, secret=secret)
    return {"webhook": webhook_json(call.state.webhooks[key])}


def webhooks_list(call: Call) -> dict[str, Any]:
    project = check_webhook_rights(call, call.opt("project"))
    hooks = call.state.webhooks_of(project.key if project else None)
    return {"webhooks": [webhook_json(h) for h in sorted(hooks, key=lambda h: h.name.lower())]}


def webhooks_delete(call: Call) -> None:
    key = call.required("webhook")
    hook = call.state.webhooks.get(key)
    if hook is None:
        raise not_found(f"No webhook with key '{key}'")
    check_webhook_rights(call, hook.project_key)
    del call.state.webhooks[key]


# --------------------------------------------------------------------------- quality gates, measures


def branch_analysis(call: Call, project: Project, branch: str | None) -> Analysis | None:
    """The latest analysis of a branch (main by default); 404 for a branch never analysed."""
    name = branch or project.main_branch
    analysis = call.state.latest_analysis(project.key, name)
    if analysis is None and name != project.main_branch:
        raise not_found(f"Component '{project.key}' on branch '{name}' not found")
    return analysis


def check_browse(call: Call, project: Project) -> None:
    if not any(call.has_project(project, p) for p in ("user", "admin", "scan")):
        raise forbidden()


def qualitygates_project_status(call: Call) -> dict[str, Any]:
    analysis_id = call.opt("analysisId")
    key = call.opt("projectKey")
    by_id: Analysis | None = None
    if analysis_id:
        by_id = next((a for a in call.state.analyses if a.key == analysis_id), None)
        if by_id is None:
            raise not_found(f"Analysis with id '{analysis_id}' is not found")
        key = by_id.project_key
    if not key:
        raise bad_request("Either 'analysisId', 'projectId' or 'projectKey' must be provided")
    project = call.project(key)
    check_browse(call, project)
    analysis = by_id or branch_analysis(call, project, call.opt("branch"))
    if analysis is None:
        status: dict[str, Any] = {"status": "NONE", "conditions": [], "ignoredConditions": False}
        return {"projectStatus": {**status, "caycStatus": "compliant"}}
    conditions = []
    for evaluated in analysis.conditions:
        item = {
            "status": "NONE" if evaluated.status == "NO_VALUE" else evaluated.status,
            "metricKey": evaluated.condition.metric,
            "comparator": evaluated.condition.op,
            "errorThreshold": evaluated.condition.error,
        }
        if evaluated.value is not None:
            item["actualValue"] = evaluated.value
        conditions.append(item)
    first = call.state.analyses_of(project.key, analysis.branch)[0]
    return {
        "projectStatus": {
            "status": analysis.status,
            "conditions": conditions,
            "ignoredConditions": False,
            "caycStatus": "compliant",
            "period": {"mode": "PREVIOUS_VERSION", "date": now_iso(first.analysed_at)},
        }
    }


def measure_json(metric: str, value: str) -> dict[str, Any]:
    """A measure of api/measures/component; new-code metrics carry their value in ``period``."""
    shown = format_value(metric, value)
    best = METRICS[metric][1]
    figure: dict[str, Any] = {"value": shown}
    if best is not None:
        figure["bestValue"] = float(shown) == float(best)
    if metric.startswith("new_"):
        return {"metric": metric, "period": figure}
    return {"metric": metric, **figure}


def measures_component(call: Call) -> dict[str, Any]:
    key = call.required("component")
    metric_keys = [k.strip() for k in call.required("metricKeys").split(",") if k.strip()]
    unknown = [k for k in metric_keys if k not in METRICS]
    if unknown:
        raise not_found(f"The following metric keys are not found: {', '.join(unknown)}")
    project = call.state.projects.get(key)
    if project is None:
        raise not_found(f"Component key '{key}' not found")
    check_browse(call, project)
    branch = call.opt("branch")
    analysis = branch_analysis(call, project, branch)
    values = analysis.measures if analysis else {}
    component: dict[str, Any] = {"key": project.key, "name": project.name, "qualifier": "TRK"}
    if branch and branch != project.main_branch:
        component["branch"] = branch
    component["measures"] = [measure_json(k, values[k]) for k in sorted(set(metric_keys)) if k in values]
    return {"component": component}


# --------------------------------------------------------------------------- app


def create_app(state: State) -> ASGIApp:
    def route(path: str, action: Action, *, post: bool = False, protected: bool = True) -> Route:
        # GET actions answer GET (and POST, as SonarQube does); POST actions refuse GET with 405.
        return Route(path, ws(state, action, post=post, protected=protected), methods=["GET", "POST"])

    routes = [
        route("/api/system/status", system_status, protected=False),
        route("/api/system/health", system_health, protected=False),
        route("/api/server/version", server_version, protected=False),
        route("/api/authentication/validate", authentication_validate, protected=False),
        route("/api/users/create", users_create, post=True),
        route("/api/users/search", users_search),
        route("/api/users/deactivate", users_deactivate, post=True),
        route("/api/user_tokens/generate", user_tokens_generate, post=True),
        route("/api/user_tokens/revoke", user_tokens_revoke, post=True),
        route("/api/user_tokens/search", user_tokens_search),
        route("/api/projects/create", projects_create, post=True),
        route("/api/projects/search", projects_search),
        route("/api/projects/delete", projects_delete, post=True),
        route("/api/permissions/add_user", permissions_add_user, post=True),
        route("/api/permissions/remove_user", permissions_remove_user, post=True),
        route("/api/permissions/users", permissions_users),
        route("/api/webhooks/create", webhooks_create, post=True),
        route("/api/webhooks/list", webhooks_list),
        route("/api/webhooks/delete", webhooks_delete, post=True),
        route("/api/qualitygates/project_status", qualitygates_project_status),
        route("/api/measures/component", measures_component),
    ]

    async def unknown_url(request: Request, exc: Exception) -> Response:
        return JSONResponse({"errors": [{"msg": f"Unknown url : {request.url.path}"}]}, status_code=404)

    app = Starlette(routes=routes, exception_handlers={404: unknown_url})
    return FaultMiddleware(app, state.faults, error_body)


__all__ = ["Analysis", "State", "Timings", "create_app", "error_body"]
