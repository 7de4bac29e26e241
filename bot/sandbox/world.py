"""A whole platform on loopback: the emulators, seeded with one cast of users, and the bot.

Used by ``cpn-bot sandbox``, ``cpn-bot demo``, the end-to-end tests and the benchmarks, so that all
of them exercise the same wiring. Secrets go to files (mode 600) in the sandbox's directory and the
bot's configuration points at them with ``file:``, exactly as in production.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bot.app import create_app
from bot.config import Config, parse_config
from bot.runtime import Bot
from bot.sandbox.persist import DataRefused, Saved, load_platform, save_platform
from bot.spec import Registry
from bot.store import Store
from bot.workflows.naming import console_sonar_key
from services.emulators.base import EmulatorServer
from services.emulators.gitlab_pipelines import BUILD_JOBS, image_digest

T = TypeVar("T")

TEAM = "cloud-pi-native"
CHANNELS = {
    # name: (display name, type, bot is a member)
    "equipe-alpha": ("Équipe Alpha", "O", True),
    "equipe-beta": ("Équipe Beta", "O", False),
    "prive-gamma": ("Privé Gamma", "P", True),
    "support-cpn": ("Support Cloud π Native", "P", True),
}
CAST = {
    # username: (first name, last name, platform admin)
    "alice": ("Alice", "Martin", True),
    "bob": ("Bob", "Durand", False),
    "carol": ("Carole", "Petit", False),
    "dave": ("David", "Moreau", False),
}

# The emulated GitLab's jobs, in the order they run (the mirror's sync, then the repository's own
# pipeline), and the quality gates a SonarQube analysis may end with: what :meth:`World.scenario` takes.
PIPELINE_JOBS = ("sync", *(name for name, _stage in BUILD_JOBS))
QUALITY_OUTCOMES = ("passed", "failed")


@dataclass
class User:
    username: str
    id: str
    token: str
    email: str
    admin: bool


@dataclass
class Timings:
    """How long emulated work takes: seconds in the sandbox, milliseconds in tests."""

    pipeline_step: float = 1.5
    argocd_step: float = 2.0
    # How long a slash command may take before "still running" (Mattermost waits 3 s at most). Tests
    # take the longest allowed: on a loaded machine a command taking 0.8 s would answer "still running".
    reply_budget: float = 0.8

    @classmethod
    def fast(cls) -> Timings:
        return cls(pipeline_step=0.01, argocd_step=0.01, reply_budget=2.5)


@dataclass(frozen=True)
class ExternalVault:
    """A real Vault or OpenBao to use instead of the emulator: its URL and an admin (root) token.

    The world mounts the platform's KV v2 ``forge-dso`` there if absent, writes the policy
    ``cpn-bot`` (:func:`services.vault_policy.bot_policy`) and gives the bot a token holding only
    that policy (and ``default``), as an operator would: the admin token never reaches the bot.
    """

    url: str
    token: str


@dataclass
class World:
    root: Path
    language: str = "fr"
    timings: Timings = field(default_factory=Timings)
    bot_in_process: bool = True
    config_overrides: dict[str, Any] = field(default_factory=dict)
    registry: Registry | None = None  # tests add their own commands to a copy of the real one
    slash_token: str = field(default_factory=lambda: secrets.token_hex(13))
    keep_files: bool = False
    quality_outcomes: dict[str, str] = field(default_factory=dict)
    vault: ExternalVault | None = None  # None: the Vault emulator
    # The bot account as a ministry instance creates it: a plain bot (system_user). With
    # ``bot_admin`` it also has the system_admin role, the one that may send ephemeral posts.
    bot_admin: bool = False
    # GitLab's tier: "premium" has group webhooks, "free" (CE) answers 404 on /groups/:id/hooks.
    gitlab_tier: str = "premium"
    # Who provisions (platform.control): "direct", or "console" (the console emulator, Harbor).
    control: str = "direct"
    # ``--data DIR``: the platform saved in ``root`` at stop and resumed at start (bot.sandbox.persist).
    persist: bool = False

    def __post_init__(self) -> None:
        self.servers: dict[str, EmulatorServer] = {}
        self.states: dict[str, Any] = {}
        self.users: dict[str, User] = {}
        self.channels: dict[str, str] = {}
        self.team_id = ""
        self.bot_user: User | None = None
        self.bot: Bot | None = None
        self.bot_server: EmulatorServer | None = None
        self.bot_url = ""
        self.config_path = self.root / "cpn-bot.toml"
        self.config: Config | None = None
        self._console_plugins: Any = None
        self.signing_key = secrets.token_hex(32)
        self.resumed = False  # started from the platform a previous run saved in root
        self._ports: dict[str, int] = {}  # where a resumed world serves each service again

    # -- start and stop -------------------------------------------------------------------------

    @classmethod
    def create(cls, **kw: Any) -> World:
        return cls(Path(tempfile.mkdtemp(prefix="cpn-sandbox-")), **kw)

    def start(self) -> World:
        self.root.mkdir(parents=True, exist_ok=True)
        saved = load_platform(self.root) if self.persist else None
        if saved is None:
            self._start_mattermost()
            self._start_services()
            self.bot_server_reserve()
        else:
            self._resume(saved)
        self._write_config()
        if self.bot_in_process:
            self.start_bot()
        return self

    def bot_server_reserve(self) -> None:
        """The bot's port is chosen first: the slash command and the config need its URL."""
        placeholder = EmulatorServer(app=_unused_app, name="cpn-bot")
        self.bot_url = placeholder.bind()
        self._argocd_state.notification_webhooks.append(
            (f"{self.bot_url}/hooks/argocd", {"X-CPN-Token": self.webhook_secrets["argocd"]})
        )
        self._bot_placeholder = placeholder
        mm = self.states["mattermost"]
        mm.register_command(
            self.team_id,
            "cpn",
            f"{self.bot_url}/mattermost/command",
            token=self.slash_token,
            creator_id=self.bot_user.id if self.bot_user else "",
            auto_complete=True,
            display_name="cpn-bot",
            description="Cloud π Native",
        )

    def serve_command(self) -> list[str]:
        """``cpn-bot serve`` for this world, to run the bot in its own process.

        The port reserved for the bot is released first, so that the process can bind it.
        """
        self._bot_placeholder.stop()
        return [sys.executable, "-m", "bot.cli", "serve", "--config", str(self.config_path)]

    @property
    def bot_port(self) -> int:
        return self._bot_placeholder.port

    def start_bot(self) -> Bot:
        assert self.config is not None
        self.bot = Bot(self.config, registry=self.registry)
        server = self._bot_placeholder
        server.app = create_app(self.bot)
        self.bot_server = server.start()
        return self.bot

    def stop_bot(self) -> None:
        if self.bot_server is not None:
            self.bot_server.stop()
            self.bot_server = None
            self.bot = None

    def stop(self) -> None:
        self.stop_bot()
        if self._console_plugins is not None:
            self._console_plugins.close()
        for server in self.servers.values():
            server.stop()
        if self.persist and self.servers:
            save_platform(self.root, self.states, self._seed())
        if not self.keep_files:
            # The directory holds the services' secrets and the bot's database.
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> World:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the services ---------------------------------------------------------------------------

    def _serve(self, name: str, state: Any, module: Any) -> EmulatorServer:
        port = self._ports.get(name, 0)
        server = EmulatorServer(module.create_app(state), name=f"emulator-{name}", port=port).start()
        self.servers[name] = server
        self.states[name] = state
        return server

    def _start_mattermost(self) -> None:
        module = importlib.import_module("services.emulators.mattermost")
        state = module.State()
        server = self._serve("mattermost", state, module)
        state.site_url = server.url
        # Full names in sender_name, as ministry instances show them (TeammateNameDisplay).
        state.teammate_name_display = "full_name"
        team = state.add_team(TEAM, "Cloud π Native")
        self.team_id = team["id"]
        for username, (first, last, admin) in CAST.items():
            user, token = state.add_user(username, first_name=first, last_name=last, admin=admin)
            self.users[username] = User(username, user["id"], token, user["email"], admin)
            state.add_team_member(team["id"], user["id"])
        bot_json, bot_token = state.add_user("cpn-bot", first_name="cpn-bot", is_bot=True, admin=self.bot_admin)
        self.bot_user = User("cpn-bot", bot_json["id"], bot_token, bot_json["email"], self.bot_admin)
        state.add_team_member(team["id"], bot_json["id"])
        for name, (display, kind, bot_member) in CHANNELS.items():
            channel = state.add_channel(team["id"], name, display, type=kind)
            self.channels[name] = channel["id"]
            for user in self.users.values():
                state.add_member(channel["id"], user.id)
            if bot_member:
                state.add_member(channel["id"], bot_json["id"])

    def _start_services(self) -> None:
        """GitLab, Vault, Quay, Nexus, SonarQube and ArgoCD, seeded with the same people."""
        self.service_tokens: dict[str, str] = {}
        self.webhook_secrets = {name: secrets.token_hex(20) for name in ("gitlab", "sonarqube", "argocd", "harbor")}
        gitlab = importlib.import_module("services.emulators.gitlab")
        gl = gitlab.State()
        gl.tier = self.gitlab_tier
        gl.timings.job_seconds = self.timings.pipeline_step
        gl.timings.stuck_timeout_seconds = max(30 * self.timings.pipeline_step, 0.3)
        self._serve("gitlab", gl, gitlab)
        root = gl.add_group("forge")
        gl.add_group("projects", parent_id=root["id"])
        for user in self.users.values():
            first, last, _ = CAST[user.username]
            gl.add_user(user.username, user.email, f"{first} {last}")
        self.service_tokens["gitlab"] = gl.root_token
        gl.job_listeners.append(self._on_job)

        if self.vault is None:
            vault = importlib.import_module("services.emulators.vault")
            vault_token = secrets.token_hex(16)
            vs = vault.State(root_token=vault_token)
            vs.enable_kv2("forge-dso")
            self._serve("vault", vs, vault)
            self.service_tokens["vault"] = vault_token
        else:
            self.service_tokens["vault"] = _bot_vault_token(self.vault, "forge-dso")

        quay = importlib.import_module("services.emulators.quay")
        qs = quay.State()
        quay_token = secrets.token_hex(20)
        qs.add_token(quay_token, superuser=True)
        self._serve("quay", qs, quay)
        self.service_tokens["quay"] = quay_token

        if self.registry_kind == "harbor":
            harbor = importlib.import_module("services.emulators.harbor")
            harbor_password = "Hb1" + secrets.token_hex(12)
            hs = harbor.State(admin="admin", admin_password=harbor_password)
            self._serve("harbor", hs, harbor)
            hs.host = self.servers["harbor"].url.removeprefix("http://")
            self.service_tokens["harbor"] = harbor_password

        gl.image_repository = self._image_repository

        nexus = importlib.import_module("services.emulators.nexus")
        nexus_password = secrets.token_hex(12)
        self._serve("nexus", nexus.State(admin_password=nexus_password), nexus)
        self.service_tokens["nexus"] = nexus_password

        sonar = importlib.import_module("services.emulators.sonarqube")
        sonar_token = "squ_" + secrets.token_hex(20)
        ss = sonar.State(admin_token=sonar_token)
        self._serve("sonarqube", ss, sonar)
        ss.server_url = self.servers["sonarqube"].url
        self.service_tokens["sonarqube"] = sonar_token

        argocd = importlib.import_module("services.emulators.argocd")
        argo_password = secrets.token_hex(12)
        ar = argocd.State(admin_password=argo_password)
        ar.timings.sync_seconds = self.timings.argocd_step
        ar.timings.health_seconds = self.timings.argocd_step
        ar.timings.cascade_delete_seconds = self.timings.argocd_step
        ar.timings.refresh_seconds = self.timings.argocd_step
        self._serve("argocd", ar, argocd)
        # Argo CD Notifications -> the bot, with the shared-secret header (set once the bot's URL is known).
        self._argocd_state = ar
        # ArgoCD reads the infra repositories from the emulated GitLab, as a real one reads git.
        ar.git_resolver = self._git_head
        ar.manifest_digest = self._manifest_digest
        self.service_tokens["argocd"] = argo_password
        if self.control == "console":
            self._start_console()

    def _start_console(self) -> None:
        """The console emulator: the cast as console users with the same e-mails (alice a platform
        admin), an admin token for the bot (console-api.md §1.3), and its plugins provisioning the
        other emulators over HTTP (services/emulators/console_plugins.py), as the real console's do."""
        console = importlib.import_module("services.emulators.console")
        plugins = importlib.import_module("services.emulators.console_plugins")
        cs = console.State()
        servers, Service = self.servers, plugins.Service
        self._console_plugins = plugins.install(
            cs,
            gitlab=Service(servers["gitlab"].url, self.service_tokens["gitlab"]),
            vault=Service(self.vault_url, self.vault_admin_token),
            harbor=Service(servers["harbor"].url, self.service_tokens["harbor"], user="admin"),
            sonarqube=Service(servers["sonarqube"].url, self.service_tokens["sonarqube"]),
            argocd=Service(servers["argocd"].url, self.service_tokens["argocd"], user="admin"),
            root_group="forge/projects",
            kv_mount="forge-dso",
        )
        for user in self.users.values():
            first, last, admin = CAST[user.username]
            cs.add_user(user.email, first, last, admin=admin)
        self.service_tokens["console"] = cs.add_admin_token("cpn-bot")
        self._serve("console", cs, console)

    # -- kept across runs (--data DIR) ------------------------------------------------------------

    def _seed(self) -> dict[str, Any]:
        """What the world seeded the emulators with and holds besides their states."""
        return {
            "registry": self.registry_kind,
            "ports": {**{name: server.port for name, server in self.servers.items()}, "cpn-bot": self.bot_port},
            "team_id": self.team_id,
            "channels": self.channels,
            "users": {name: vars(user) for name, user in self.users.items()},
            "bot_user": vars(self.bot_user) if self.bot_user else None,
            "service_tokens": self.service_tokens,
            "webhook_secrets": self.webhook_secrets,
            "slash_token": self.slash_token,
            "signing_key": self.signing_key,
            "quality_outcomes": self.quality_outcomes,
        }

    def _resume(self, saved: Saved) -> None:
        """Serve the states a previous run saved, on its ports: every URL they and the bot hold stays right."""
        seed = saved.meta
        if seed["registry"] != self.registry_kind:
            raise DataRefused(f"{self.root} holds a sandbox with {seed['registry']} as its registry")
        self._ports = {name: int(port) for name, port in seed["ports"].items()}
        self.team_id, self.channels = seed["team_id"], seed["channels"]
        self.users = {name: User(**user) for name, user in seed["users"].items()}
        self.bot_user = User(**seed["bot_user"])
        self.service_tokens, self.webhook_secrets = seed["service_tokens"], seed["webhook_secrets"]
        self.slash_token, self.signing_key = seed["slash_token"], seed["signing_key"]
        self.quality_outcomes = seed["quality_outcomes"]
        for name, state in saved.states.items():
            self._serve(name, state, importlib.import_module(f"services.emulators.{name}"))
        self.states["gitlab"].job_listeners.append(self._on_job)
        self._argocd_state = argocd = self.states["argocd"]
        argocd.git_resolver = self._git_head
        argocd.manifest_digest = self._manifest_digest
        # The slash command and Argo CD's notifications already point at this port.
        self._bot_placeholder = EmulatorServer(app=_unused_app, name="cpn-bot", port=self._ports["cpn-bot"])
        self.bot_url = self._bot_placeholder.bind()
        self.resumed = True

    # -- what the pipelines' jobs would tell the other services ---------------------------------

    def scenario(self, repository: str, pipeline: str = "success", quality: str = "passed") -> None:
        """How the next pipelines of ``forge/projects/<slug>/<repo>`` go: a failing or stuck job
        (``fail:test``, ``stuck:build``), a quality gate ``passed`` or ``failed``."""
        self.states["gitlab"].scenarios[repository] = pipeline
        self.quality_outcomes[repository] = quality

    def degrade(self, service: str, how: str = "degraded") -> None:
        """Make ``service`` look ``degraded`` or ``down`` to ``/cpn services``, or ``ok`` again.

        Only the emulators' own switches are used, so the bot sees what a real outage shows it:

        ============  ==========================================  ================================
        service       ``degraded``                                ``down``
        ============  ==========================================  ================================
        gitlab        the Gitaly readiness check fails            every request answers 503
        vault         sealed                                      every request answers 503
        sonarqube     health ``YELLOW``                           every request answers 503
        nexus         read-only (``writable`` off)                ``/status`` unavailable
        quay          the database health check fails             every request answers 503
        harbor        the trivy component is unhealthy            every request answers 503
        argocd        ``/healthz`` answers 503 (the API answers)  every request answers 503
        ============  ==========================================  ================================

        ``ok`` undoes both (and clears every other fault of that emulator). Mattermost cannot be
        degraded: the chat and the bot go through it. Unknown names raise ``ValueError``.
        """
        name = service.strip().lower()
        if how not in ("degraded", "down", "ok"):
            raise ValueError(f"unknown state {how!r}: degraded, down or ok")
        if name == "mattermost" and how != "ok":
            raise ValueError("Mattermost cannot be degraded: the chat and the bot go through it")
        if name not in self.states:
            raise ValueError(f"unknown service {service!r}: one of {', '.join(sorted(self.states))}")
        state = self.states[name]
        state.faults.clear()
        down = how == "down"
        if name == "gitlab":
            with state.lock:
                state.unhealthy = {"gitaly_check"} if how == "degraded" else set()
            state.faults.down = down
        elif name == "vault":
            with state.lock:
                state.sealed = how == "degraded"
            state.faults.down = down
        elif name == "sonarqube":
            state.set_health("YELLOW" if how == "degraded" else "GREEN")
            state.faults.down = down
        elif name == "nexus":
            with state.lock:
                state.writable = how != "degraded"
                state.available = not down
        elif name == "quay":
            state.set_service_health("database", how != "degraded", "database connection refused")
            state.faults.down = down
        elif name == "harbor":
            state.set_component_health("trivy", how != "degraded", "trivy adapter unreachable")
            state.faults.down = down
        elif name == "argocd":
            if how == "degraded":
                state.faults.fail("GET /healthz", 503)
            state.faults.down = down

    def _on_job(self, info: dict[str, Any]) -> None:
        """The sonar job ends with a SonarQube analysis, the push job with an image in Quay."""
        path = str(info["project"])
        parts = path.split("/")
        if len(parts) < 2 or info["status"] != "success":
            return
        slug, repo = parts[-2], parts[-1]
        if info["job"] == "sonar":
            sonar = self.states["sonarqube"]
            # The bot's key in direct mode, the console plugin's in console mode.
            for key in (f"{slug}-{repo}", console_sonar_key(slug, repo)):
                if sonar.project(key) is not None:
                    sonar.run_analysis(key, info["ref"], info["sha"], self.quality_outcomes.get(path, "passed"))
        elif info["job"] == "push":
            sha = str(info["sha"])
            digest = image_digest(self._image_repository(path) or path, sha)  # the image trivy scanned
            self.states[self.registry_kind].push_image(slug, repo, sha[:8], digest=digest)

    def _image_repository(self, path: str) -> str | None:
        """Where a repository's build pushes its image: ``<registry host>/<project>/<repo>``."""
        parts = path.split("/")
        server = self.servers.get(self.registry_kind)
        if len(parts) < 2 or server is None:
            return None
        return f"{server.url.removeprefix('http://').removeprefix('https://')}/{parts[-2]}/{parts[-1]}"

    def _manifest_digest(self, spec: dict[str, Any], revision: str) -> str | None:
        """What an application renders at a revision: its path's files and its value files."""
        source = spec.get("source") or {}
        project = self._gitlab_project(str(source.get("repoURL", "")))
        if project is None:
            return None
        gitlab = self.states["gitlab"]
        values = set((source.get("helm") or {}).get("valueFiles") or [])
        with gitlab.lock:
            commit = project.repo.commits.get(revision)
            if commit is None:
                return None
            # Every file but other environments' values files (values-<env>.yaml).
            files = sorted(
                (path, blob.data)
                for path, blob in commit.tree.items()
                if path in values or not (path.startswith("values-") and path.endswith(".yaml"))
            )
        return hashlib.sha256(repr(files).encode()).hexdigest()

    def _gitlab_project(self, repo_url: str) -> Any:
        gitlab = self.states["gitlab"]
        base = self.servers["gitlab"].url + "/"
        if not repo_url.startswith(base):
            return None
        path = repo_url[len(base) :].removesuffix(".git")
        with gitlab.lock:
            return next((p for p in gitlab.projects.values() if gitlab.project_path(p) == path), None)

    def _git_head(self, repo_url: str, ref: str) -> str | None:
        gitlab = self.states["gitlab"]
        project = self._gitlab_project(repo_url)
        with gitlab.lock:
            commit = project.repo.resolve(None if ref == "HEAD" else ref) if project is not None else None
        return str(commit.id) if commit is not None else None

    # -- the bot's configuration ----------------------------------------------------------------

    def secret_ref(self, name: str, value: str) -> str:
        path = self.root / "secrets" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value)
        os.chmod(path, 0o600)
        return f"file:{path}"

    def config_data(self) -> dict[str, Any]:
        assert self.bot_user is not None
        admins = [u.username for u in self.users.values() if u.admin]
        data: dict[str, Any] = {
            "language": self.language,
            "server": {
                "host": "127.0.0.1",
                "port": self._bot_placeholder.port,
                "public_url": self.bot_url,
                "command_reply_budget_seconds": self.timings.reply_budget,
            },
            "store": {"path": str(self.root / "cpn-bot.sqlite")},
            "security": {"signing_key": self.secret_ref("signing_key", self.signing_key)},
            "mattermost": {
                "url": self.servers["mattermost"].url,
                "bot_token": self.secret_ref("mm_bot_token", self.bot_user.token),
                "command_tokens": [self.secret_ref("mm_slash_token", self.slash_token)],
                "allowed_teams": [TEAM],
            },
            # The sandbox has no DNS: the public forges teams use are allowed by name.
            "platform": {
                "admins": admins,
                "support_channel": "support-cpn",
                "allowed_repo_hosts": ["github.com", "gitlab.com", "bitbucket.org", "codeberg.org"],
            },
            "outbox": {"poll_seconds": 0.2, "base_backoff_seconds": 0.05, "max_backoff_seconds": 2.0},
            "logging": {"level": "WARNING", "json": True},
            "gitlab": {
                "url": self.servers["gitlab"].url,
                "token": self.secret_ref("gitlab", self.service_tokens["gitlab"]),
                "webhook_secret": self.secret_ref("gitlab_hooks", self.webhook_secrets["gitlab"]),
                # Pipelines silent this long are asked about: seconds in the sandbox.
                "poll_seconds": max(1.0, 20 * self.timings.pipeline_step),
                "poll_stale_seconds": max(1.0, 20 * self.timings.pipeline_step),
                "poll_batch": 10,  # a round a second: ten repositories per round keep it light
            },
            "vault": {
                "url": self.vault_url,
                "token": self.secret_ref("vault", self.service_tokens["vault"]),
                "kv_mount": "forge-dso",
            },
            "quay": {"url": self.servers["quay"].url, "token": self.secret_ref("quay", self.service_tokens["quay"])},
            "nexus": {
                "url": self.servers["nexus"].url,
                "username": "admin",
                "password": self.secret_ref("nexus", self.service_tokens["nexus"]),
            },
            "sonarqube": {
                "url": self.servers["sonarqube"].url,
                "token": self.secret_ref("sonarqube", self.service_tokens["sonarqube"]),
                "webhook_secret": self.secret_ref("sonarqube_hooks", self.webhook_secrets["sonarqube"]),
            },
            "argocd": {
                "url": self.servers["argocd"].url,
                "username": "admin",
                "password": self.secret_ref("argocd", self.service_tokens["argocd"]),
                "webhook_secret": self.secret_ref("argocd_hooks", self.webhook_secrets["argocd"]),
                "poll_seconds": max(0.02, self.timings.argocd_step / 2),
                "drift_poll_seconds": max(1.0, 30 * self.timings.argocd_step),
                "drift_batch": 10,
                "drift_grace_seconds": max(2.0, 60 * self.timings.argocd_step),
            },
        }
        if "console" in self.servers:
            data["platform"]["control"] = "console"
            data["platform"]["registry"] = "harbor"
            data["console"] = {
                "url": self.servers["console"].url,
                "token": self.secret_ref("console", self.service_tokens["console"]),
                "reread_delay_seconds": 0.05,
            }
        if self.registry_kind == "harbor":
            del data["quay"]  # one registry: the platform's (`/cpn services` does not probe the other)
        if "harbor" in self.servers:
            data["harbor"] = {
                "url": self.servers["harbor"].url,
                "username": "admin",
                "password": self.secret_ref("harbor", self.service_tokens["harbor"]),
                "webhook_secret": self.secret_ref("harbor_hooks", self.webhook_secrets["harbor"]),
            }
        for key, value in self.config_overrides.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        return data

    def _write_config(self) -> None:
        data = self.config_data()
        self.config = parse_config(data)
        self.config_path.write_text(_to_toml(data))

    # -- for tests and the sandbox --------------------------------------------------------------

    @property
    def registry_kind(self) -> str:
        """The registry the bot drives: ``quay``, or ``harbor`` with ``config_overrides``
        ``{"platform": {"registry": "harbor"}}`` or in console mode (its emulator is started only then)."""
        if self.control == "console":
            return "harbor"  # the console's registry since its v3 (issue 13)
        platform = self.config_overrides.get("platform")
        return str(platform.get("registry", "quay")) if isinstance(platform, dict) else "quay"

    @property
    def vault_url(self) -> str:
        """The Vault the bot uses: the emulator's, or the external one."""
        return self.vault.url.rstrip("/") if self.vault is not None else self.servers["vault"].url

    @property
    def vault_admin_token(self) -> str:
        """A token that may look at everything (the bot's own holds only its policy on a real Vault)."""
        return self.vault.token if self.vault is not None else self.service_tokens["vault"]

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run ``coro`` on the bot's event loop (it lives in its server's thread)."""
        assert self.bot is not None and self.bot.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.bot.loop).result(timeout)

    def store(self) -> Store:
        """A connection of its own to the bot's database (the bot's connection belongs to its thread)."""
        return Store(self.root / "cpn-bot.sqlite")

    def wait_idle(self, timeout: float = 10.0) -> None:
        assert self.bot is not None
        self.run(self.bot.wait_idle(timeout), timeout + 1)

    def state_file(self) -> dict[str, Any]:
        """The contract of DESIGN.md for ``--headless --state-file``."""
        mm = self.servers["mattermost"]
        services: dict[str, Any] = {
            "mattermost": {
                "url": mm.url,
                "token": self.users["alice"].token,
                "secret": "",
                "team_id": self.team_id,
                "team_name": TEAM,
                "channels": dict(self.channels),
                "users": {u.username: {"id": u.id, "token": u.token, "admin": u.admin} for u in self.users.values()},
            }
        }
        for name, info in self.service_credentials().items():
            services[name] = info
        if "console" in self.servers:
            services["console"] = {"url": self.servers["console"].url, "token": self.service_tokens["console"]}
        return {
            "bot_url": self.bot_url,
            "slash_command": "/cpn",
            "slash_token": self.slash_token,
            "config_path": str(self.config_path),
            **services,
        }

    def service_credentials(self) -> dict[str, dict[str, Any]]:
        """Per service: its URL, its admin token (or password) and its webhooks' master secret.

        A project's webhook secret is derived from the master one:
        ``hex(HMAC-SHA256(secret, "<service>:<project slug>"))[:48]`` (``bot.workflows.naming.derive``).
        """
        return {
            name: {
                "url": self.vault_url if name == "vault" else self.servers[name].url,
                "token": self.service_tokens.get(name, ""),
                "secret": self.webhook_secrets.get(name, ""),
            }
            # The registry the bot drives: harbor in place of quay (DESIGN.md, the state file).
            for name in ("gitlab", "vault", self.registry_kind, "nexus", "sonarqube", "argocd")
            if name in self.servers or (name == "vault" and self.vault is not None)
        }


def _bot_vault_token(vault: ExternalVault, kv_mount: str) -> str:
    """On an external Vault: the platform's mount, the bot's policy, and a token holding only it."""
    import hvac

    from services.vault_policy import bot_policy

    admin = hvac.Client(url=vault.url, token=vault.token, timeout=10)
    try:
        if f"{kv_mount}/" not in admin.sys.list_mounted_secrets_engines()["data"]:
            admin.sys.enable_secrets_engine("kv", path=kv_mount, options={"version": "2"})
        admin.sys.create_or_update_acl_policy(name="cpn-bot", policy=bot_policy(kv_mount))
        created = admin.auth.token.create(policies=["cpn-bot"], display_name="cpn-bot", ttl="24h")
        token: str = created["auth"]["client_token"]
        return token
    finally:
        admin.adapter.close()


async def _unused_app(scope: Any, receive: Any, send: Any) -> None:  # replaced before start
    raise RuntimeError("the bot app was not set")


def _to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """Enough TOML for the sandbox's own config (tables of scalars and lists)."""
    scalars = []
    tables = []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            scalars.append(f"{key} = {json.dumps(value, ensure_ascii=False)}")
    out = []
    if prefix and scalars:
        out.append(f"[{prefix}]")
    out += scalars
    for key, value in tables:
        out.append("")
        out.append(_to_toml(value, f"{prefix}.{key}" if prefix else key))
    return "\n".join(out) + "\n"
