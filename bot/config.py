"""Configuration: one TOML file read into pydantic models.

Secrets are never written in the file: a secret field holds ``env:NAME`` or ``file:PATH`` and is
resolved at load time into a :class:`pydantic.SecretStr`, whose ``repr`` never shows the value. A bad
or missing value is refused with the key's dotted name and what is wrong.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)


class ConfigError(Exception):
    """The configuration cannot be used; the message names each bad key."""


def resolve_secret(value: object) -> SecretStr:
    """Turn ``env:NAME`` / ``file:PATH`` into the secret it points to.

    A literal value is refused: a secret in a config file ends up in backups and diffs.
    """
    if isinstance(value, SecretStr):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a string 'env:NAME' or 'file:PATH'")
    kind, sep, ref = value.partition(":")
    if not sep or kind not in ("env", "file") or not ref:
        raise ValueError("secrets are never written literally: use 'env:NAME' or 'file:PATH'")
    if kind == "env":
        secret = os.environ.get(ref)
        if secret is None or secret == "":
            raise ValueError(f"environment variable {ref} is not set")
        return SecretStr(secret)
    path = Path(ref).expanduser()
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read secret file {ref}: {exc.strerror}") from None
    if not secret:
        raise ValueError(f"secret file {ref} is empty")
    return SecretStr(secret)


Secret = Annotated[SecretStr, BeforeValidator(resolve_secret)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    public_url: AnyHttpUrl = Field(description="URL at which Mattermost reaches the bot")
    max_body_bytes: int = Field(1_048_576, ge=1024)
    max_report_bytes: int = Field(67_108_864, ge=1024, description="body limit of POST /hooks/trivy")
    command_reply_budget_seconds: float = Field(0.8, gt=0, le=2.5)
    workers: int = Field(
        0, ge=0, le=2, description="worker processes beside the web one: 0 none, 1 events and posts, 2 one each"
    )
    # Transport limits (issue 12 items 4 and 5): bodies spooled to disk, slow clients cut off.
    spool_threshold_bytes: int = Field(
        1_048_576, ge=0, description="a webhook body larger than this is written to a 0600 file, not kept in memory"
    )
    max_large_uploads: int = Field(4, ge=1, le=256, description="spooled uploads at once; more wait, then 503")
    large_upload_wait_seconds: float = Field(5.0, ge=0, le=60, description="wait for a large-upload slot, then 503")
    header_timeout_seconds: float = Field(10.0, gt=0, le=300, description="request line and headers within this")
    min_body_rate_bytes_per_second: int = Field(
        1024, ge=0, description="a body arriving slower (after the grace period) is cut; 0: no minimum"
    )
    body_grace_seconds: float = Field(5.0, gt=0, le=300, description="before the body's rate is checked")
    max_connections: int = Field(1000, ge=1, le=100_000, description="open connections; more are closed at accept")
    # ``Authorization: Bearer <token>`` for /metrics, and for the details of /readyz; unset: open.
    metrics_token: Secret | None = None


class StoreConfig(Section):
    path: str = "var/cpn-bot.sqlite"


class SecurityConfig(Section):
    signing_key: Secret
    action_ttl_seconds: int = Field(300, ge=10, le=86_400)


class MattermostConfig(Section):
    url: AnyHttpUrl
    bot_token: Secret
    command_tokens: list[Secret] = Field(min_length=1)
    allowed_teams: list[str] = Field(default_factory=list, description="team names or ids; empty: any")
    trigger: str = Field("cpn", pattern=r"^[a-z0-9_-]{1,32}$")
    timeout_seconds: float = Field(5.0, gt=0, le=60)
    websocket: bool = True
    websocket_ping_seconds: float = Field(30.0, gt=0, le=300, description="heartbeat; no pong in time: reconnect")
    websocket_reconnect_seconds: float = Field(1.0, gt=0, le=60, description="first delay before reconnecting")


class FreezeWindow(Section):
    """No deploy to ``environments`` between ``start`` and ``end`` (ISO dates/times, local time)."""

    environments: list[str] = Field(default_factory=lambda: ["prod"])
    start: str
    end: str
    reason: str = ""


class PlatformConfig(Section):
    admins: list[str] = Field(default_factory=list, description="usernames or e-mails of platform admins")
    project_creators: list[str] = Field(default_factory=list, description="empty: anyone may create")
    root_group: str = "forge/projects"
    support_channel: str = ""
    allowed_repo_hosts: list[str] = Field(
        default_factory=list,
        description="deprecated: use [repositories] allowed_hosts (both are honoured)",
    )
    protected_environments: list[str] = Field(default_factory=lambda: ["prod"])
    freeze_windows: list[FreezeWindow] = Field(default_factory=list)
    registry: Literal["quay", "harbor"] = Field("quay", description="the container registry: [quay] or [harbor]")
    control: Literal["direct", "console"] = Field(
        "direct",
        description='who provisions: "direct" (the bot drives each service) or "console" (through [console])',
    )


def _network(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a network in CIDR notation ({exc})") from None
    return value


def _host_pattern(value: str) -> str:
    if not re.fullmatch(r"(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?\.?", value):
        raise ValueError(f"{value!r} is not a host name or '*.domain'")
    return value


class RepositoriesConfig(Section):
    """Which external repositories the mirror may clone (bot/netpolicy.py): public forges only by default."""

    allowed_hosts: list[Annotated[str, AfterValidator(_host_pattern)]] = Field(
        default_factory=list,
        description="host names (or '*.domain') accepted whatever they resolve to: an internal forge",
    )
    allowed_networks: list[Annotated[str, AfterValidator(_network)]] = Field(
        default_factory=list,
        description="address ranges (CIDR) accepted for any host resolving into them",
    )
    allowed_ports: list[int] = Field(default_factory=lambda: [443], description="ports a repository URL may name")
    resolve_timeout_seconds: float = Field(3.0, gt=0, le=30)


class SupportConfig(Section):
    kb_dir: str = Field("", description="the knowledge base's folder; empty: the kb/ shipped with the bot")
    ticket_reminder_minutes: float = Field(60.0, gt=0, description="remind the support channel of untaken tickets")
    health_poll_seconds: float = Field(300.0, ge=0, description="platform health refresh; 0 disables it")


class OutboxConfig(Section):
    concurrency: int = Field(8, ge=1, le=64)
    poll_seconds: float = Field(0.5, gt=0, le=30)
    base_backoff_seconds: float = Field(0.5, gt=0)
    max_backoff_seconds: float = Field(60.0, gt=0)
    give_up_after_hours: float = Field(24.0, gt=0)


class LoggingConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = Field(True, alias="json")


class ServiceEndpoint(Section):
    """A platform service the bot reaches with a URL and a token (GitLab, Quay, SonarQube…)."""

    url: AnyHttpUrl
    token: Secret
    timeout_seconds: float = Field(10.0, gt=0, le=120)
    ui_url: AnyHttpUrl | None = None
    # Master secret of the service's webhooks to the bot; each project's is derived from it.
    webhook_secret: Secret | None = None


class GitLabConfig(ServiceEndpoint):
    poll_seconds: float = Field(60.0, ge=0, description="polling fallback period; 0 disables it")
    poll_stale_seconds: float = Field(60.0, gt=0, description="a pipeline silent this long is asked about")
    poll_batch: int = Field(50, ge=1, description="repositories the polling fallback looks at per round")
    sync_rate_per_minute: int = Field(6, ge=1, description="sync API calls allowed per token per minute")
    trivy_job_pattern: str = Field("trivy*", description="the jobs whose artifact is a Trivy report (glob)")
    trivy_artifact: str = Field("trivy-report.json", description="the report's path in the job's artifacts")


class VaultConfig(ServiceEndpoint):
    kv_mount: str = "forge-dso"


class NexusConfig(Section):
    url: AnyHttpUrl
    username: str = "admin"
    password: Secret
    timeout_seconds: float = Field(10.0, gt=0, le=120)
    blob_store: str = Field("default", min_length=1, description="blob store of the repositories the bot creates")


class ArgoCDConfig(Section):
    url: AnyHttpUrl
    username: str = "admin"
    password: Secret
    timeout_seconds: float = Field(10.0, gt=0, le=120)
    webhook_secret: Secret | None = None
    webhook_header: str = "X-CPN-Token"
    destination_server: str = "https://kubernetes.default.svc"
    poll_seconds: float = Field(2.0, gt=0, description="how often a running deploy is looked at")
    deploy_timeout_seconds: float = Field(600.0, gt=0)
    refresh_timeout_seconds: float = Field(60.0, gt=0, le=600, description="a refresh answers once reconciled")
    delete_timeout_seconds: float = Field(300.0, gt=0, description="how long a cascade delete is waited for")
    drift_poll_seconds: float = Field(120.0, ge=0, description="drift watch period; 0 disables it")
    drift_batch: int = Field(50, ge=1, description="applications the drift watch looks at per round")
    drift_grace_seconds: float = Field(600.0, ge=0, description="OutOfSync/Degraded this long is reported")


class HarborConfig(Section):
    """Harbor (API v2.0), the registry of today's platform: a system admin account, Basic auth."""

    url: AnyHttpUrl
    username: str = "admin"
    password: Secret
    timeout_seconds: float = Field(10.0, gt=0, le=120)
    host: str = Field("", description="registry host in image paths; empty: the URL's host")
    robot_prefix: str = Field("robot$", min_length=1, description="Harbor's robot_name_prefix setting")
    # Master of the per-project secrets the scan webhook policies send (bot.runtime webhook_secret);
    # without it they derive from security.signing_key, as for the other services.
    webhook_secret: Secret | None = None


class ConsoleConfig(Section):
    """The Cloud π Native console (console-api.md): the bot's admin token (mask with admin MANAGE)."""

    url: AnyHttpUrl
    token: Secret
    timeout_seconds: float = Field(10.0, gt=0, le=120, description="reads and quick writes")
    write_timeout_seconds: float = Field(
        120.0, gt=0, le=900, description="provisioning writes (project create, hooks replay, repositories)"
    )
    reread_attempts: int = Field(5, ge=1, le=60, description="re-reads of a project whose create timed out")
    reread_delay_seconds: float = Field(2.0, gt=0, le=60)
    ui_url: AnyHttpUrl | None = None
    rights_cache_seconds: float = Field(
        60.0, ge=0, le=3600, description="how long people, roles and projects read for rights are reused; 0: never"
    )
    token_reminder_days: int = Field(
        7, ge=1, le=90, description="a linked personal access token is recalled by DM this many days before it expires"
    )


class Config(Section):
    language: Literal["fr", "en"] = "fr"
    server: ServerConfig
    store: StoreConfig = StoreConfig()
    security: SecurityConfig
    mattermost: MattermostConfig
    platform: PlatformConfig = PlatformConfig()
    repositories: RepositoriesConfig = RepositoriesConfig()
    support: SupportConfig = SupportConfig()
    outbox: OutboxConfig = OutboxConfig()
    logging: LoggingConfig = LoggingConfig()
    gitlab: GitLabConfig | None = None
    vault: VaultConfig | None = None
    quay: ServiceEndpoint | None = None
    nexus: NexusConfig | None = None
    sonarqube: ServiceEndpoint | None = None
    argocd: ArgoCDConfig | None = None
    harbor: HarborConfig | None = None
    console: ConsoleConfig | None = None

    @model_validator(mode="after")
    def _registry_configured(self) -> Config:
        if self.platform.registry == "harbor" and self.harbor is None:
            raise ValueError('platform.registry is "harbor": the [harbor] section is missing')
        if self.platform.control == "console" and self.console is None:
            raise ValueError('platform.control is "console": the [console] section is missing')
        return self

    @field_validator("platform")
    @classmethod
    def _lower_admins(cls, value: PlatformConfig) -> PlatformConfig:
        return value.model_copy(update={"admins": [a.lower() for a in value.admins]})


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(root)"
        message = item["msg"]
        if item["type"] == "missing":
            message = "missing (required)"
        elif item["type"] == "extra_forbidden":
            message = "unknown key"
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        lines.append(f"{key}: {message}")
    return "\n".join(lines)


def parse_config(data: dict[str, Any]) -> Config:
    """Validate an already-parsed TOML document."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def load_config(path: str | Path) -> Config:
    """Read and validate the TOML file at ``path``; raise :class:`ConfigError` naming each bad key."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data)
