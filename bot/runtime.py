"""The running bot: configuration, store, Mattermost, the workers and the scheduler, wired once.

:class:`Bot` is what handlers, workflows and workers receive. ``start``/``stop`` are called by the
HTTP app's lifespan, so ``cpn-bot serve``, the sandbox and the tests run the very same code.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import commands  # noqa: F401  (declares every command)
from bot import deployments, notifications, retention  # noqa: F401  (events, scheduled jobs)
from bot.config import Config
from bot.console_access import ConsoleRights, Credentials
from bot.context import Identity
from bot.control import Control
from bot.control import build as build_control
from bot.dispatcher import Dispatcher
from bot.i18n import Translator
from bot.identity import Identities
from bot.inbox import Inbox
from bot.inbox_writer import InboxWriter
from bot.interactive import Signer
from bot.knowledge import KnowledgeBase, load_articles
from bot.listener import Listener
from bot.logs import register_secret
from bot.metrics import Metrics
from bot.model import Projects
from bot.netpolicy import policy_from_config
from bot.operations import Operation, Operations
from bot.outbox import Outbox, Post
from bot.ratelimit import RateLimiter
from bot.results import quality_lines  # also handles SonarQube's quality gates
from bot.rights import DirectRights, Rights, Role
from bot.rotation import Rotation
from bot.scans import scan_lines  # also handles Trivy reports
from bot.scheduler import Scheduler
from bot.spec import REGISTRY, Registry
from bot.store import Store
from bot.worker import ProcessRole, StoreWatch, Supervisor
from bot.workflows.naming import derive
from bot.workflows.platform import Platform
from bot.workflows.support import kb_values
from services.errors import ServiceError
from services.mattermost import Mattermost

logger = logging.getLogger("cpn.runtime")
# ``platform.control`` → where rights come from (bot.rights); nothing else asks which.
RIGHTS: dict[str, Callable[[Bot], Rights]] = {"direct": DirectRights, "console": ConsoleRights}
DEFAULT_KB = Path(__file__).resolve().parent.parent / "kb"

# Features add lines to ``/cpn status`` per repository: (bot, project) -> {repo: [lines]}.
STATUS_PROVIDERS: list[Callable[[Bot, Any], dict[str, list[str]]]] = []


def _secrets_of(config: Config) -> list[str]:
    found: list[str] = []

    def walk(value: Any) -> None:
        if hasattr(value, "get_secret_value"):
            found.append(value.get_secret_value())
        elif hasattr(value, "__dict__") and hasattr(value, "model_fields"):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    walk(config)
    return found


class Bot:
    def __init__(self, config: Config, registry: Registry | None = None, role: ProcessRole = ProcessRole.ALL) -> None:
        self.config = config
        self.role = role
        # With worker processes, the web process runs them (set by ``cpn-bot serve``).
        self.workers: list[Supervisor] = []
        # Set by ``cpn-bot serve`` and ``worker``, not by the tests' many bots in one process.
        self.freeze_heap = False
        for secret in _secrets_of(config):
            register_secret(secret)
        self.tr = Translator(config.language)
        self.store = Store(config.store.path)
        if role is ProcessRole.POSTS:
            self.store.wait_by_steps(inbox=False)  # its writes are the outbox's, through Store.write
        elif role in (ProcessRole.EVENTS, ProcessRole.WORKER):
            self.store.wait_by_steps(main=False)  # its inbox marks go through Store.inbox_write
        self.metrics = Metrics()
        mm = config.mattermost
        self.mm = Mattermost(str(mm.url), mm.bot_token.get_secret_value(), mm.timeout_seconds)
        self.outbox = Outbox(self.store, self.mm, self.metrics, config.outbox)
        self.operations = Operations(self.store)
        self.inbox = Inbox(self.store)
        self.identities = Identities(self.store, self.mm, config.platform.admins)
        self.signer = Signer(
            config.security.signing_key.get_secret_value().encode(), config.security.action_ttl_seconds
        )
        self.registry = registry or REGISTRY
        self.dispatcher = Dispatcher(self, self.registry)
        self.projects = Projects(self.store)
        self.kb_dir = Path(config.support.kb_dir) if config.support.kb_dir else DEFAULT_KB
        self.kb = KnowledgeBase(self.store.db)
        if role.serves_http:
            self._index_kb()  # once, by the process that starts first; workers read what it wrote
        self.support_channel_id = ""
        self.sync_limiter = RateLimiter(config.gitlab.sync_rate_per_minute if config.gitlab else 6)
        self.platform = Platform.from_config(config)
        # Who provisions (platform.control): commands call it, never asking which it is.
        self.control: Control = build_control(self)
        self.rights = RIGHTS[config.platform.control](self)
        self.credentials = Credentials(self)  # people's console tokens (console mode)
        # Repository hosts are resolved through this (tests put their own DNS here).
        self.address_policy = policy_from_config(config)
        # The polling fallback's turn over the repositories, and their GitLab ids once looked up.
        self.pipeline_rotation: Rotation[tuple[int, str]] = Rotation(config.gitlab.poll_batch if config.gitlab else 50)
        self.gitlab_ids: dict[str, int] = {}
        self.drift_rotation: Rotation[tuple[int, str, str]] = Rotation(
            config.argocd.drift_batch if config.argocd else 50
        )
        self.scheduler = Scheduler(
            {
                "gitlab.poll": config.gitlab.poll_seconds if config.gitlab else 0.0,
                "argocd.drift": config.argocd.drift_poll_seconds if config.argocd else 0.0,
                "support.health": config.support.health_poll_seconds,
                "support.reminders": max(5.0, min(300.0, config.support.ticket_reminder_minutes * 60 / 4)),
                "console.tokens": 86400.0 if config.platform.control == "console" else 0.0,
            },
        )
        self.listener = Listener(self)
        self._tasks: list[asyncio.Task[None]] = []
        self.started = False
        for provider in (quality_lines, scan_lines):
            if provider not in STATUS_PROVIDERS:
                STATUS_PROVIDERS.append(provider)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._describe_metrics()

    @property
    def public_url(self) -> str:
        return str(self.config.server.public_url).rstrip("/")

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start what this process runs (:class:`bot.worker.ProcessRole`): all of it, or its half."""
        self.loop = asyncio.get_running_loop()
        role = self.role
        await self._login()
        self._tasks = []
        if role.serves_http:
            recovered = self.operations.recover()
            if recovered:
                logger.info("operations resumed after restart", extra={"fields": {"count": recovered}})
            self._tasks.append(asyncio.create_task(self.operations.run(self), name="operations"))
        if role.delivers:
            self._tasks.append(asyncio.create_task(self.outbox.run(), name="outbox"))
        if role.processes:
            self._tasks.append(asyncio.create_task(self.inbox.run(self), name="inbox"))
            self.scheduler.start(self)
            if self.config.mattermost.websocket:
                self.listener.start()
        if role is ProcessRole.WEB:
            self.inbox.writer = InboxWriter(self.store.inbox_path)
            self.inbox.writer.start()
        if role is not ProcessRole.ALL:
            watch = StoreWatch(self.store, self._other_process_committed)
            self._tasks.append(asyncio.create_task(watch.run(), name="store-watch"))
        for supervisor in self.workers:
            self._tasks.append(asyncio.create_task(supervisor.run(), name="worker"))
        if self.freeze_heap:
            # What start-up built lives as long as the process: out of the collector's way, so that
            # its full collections stay short (they walked every module, route and catalog: pauses
            # of tens of ms in the middle of a burst of webhooks).
            gc.freeze()
        self.started = True

    def _other_process_committed(self) -> None:
        """Another process wrote: events to process, posts to send, operations to run."""
        if self.role.processes:
            self.inbox.wake()
        if self.role.delivers:
            self.outbox.wake()
        if self.role.serves_http:
            self.operations.wake()

    async def _login(self) -> None:
        try:
            await self.mm.login()
        except ServiceError as exc:
            # Mattermost may come up after the bot; the outbox retries, identity comes later.
            logger.warning("Mattermost not reachable at start", extra={"fields": {"error": str(exc)}})
            self._tasks.append(asyncio.create_task(self._login_later(), name="login"))

    async def _login_later(self) -> None:
        delay = 1.0
        while not self.mm.bot_user_id:
            await asyncio.sleep(delay)
            with contextlib.suppress(ServiceError):
                await self.mm.login()
            delay = min(delay * 2, 30.0)

    async def stop(self) -> None:
        for supervisor in self.workers:
            await supervisor.stop()
        if self.inbox.writer is not None:
            await self.inbox.writer.stop()
            self.inbox.writer = None
        self.outbox.stop()
        self.operations.stop()
        self.inbox.stop()
        self.scheduler.stop()
        await self.listener.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.mm.close()
        await self.platform.close()
        await self.control.close()
        self.store.close()
        self.started = False

    def busy(self) -> bool:
        """Whether anything is still on its way: events, cards to refresh, operations, posts."""
        dirty = self.store.count("pipelines", "dirty = 1")
        return bool(self.inbox.pending() or dirty or self.operations.pending() or self.outbox.pending())

    async def wait_idle(self, timeout: float = 10.0) -> None:
        """Until every queue is empty at once (tests, the sandbox, the demo)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.busy():
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("the bot is still busy")
            self.outbox.wake()
            await asyncio.sleep(0.01)

    def _index_kb(self) -> None:
        try:
            self.kb.index(load_articles(self.kb_dir, kb_values(self.config)))
        except (OSError, ValueError) as exc:
            logger.error("knowledge base not loaded", extra={"fields": {"error": str(exc)[:200]}})

    def webhook_secret(self, service: str, slug: str) -> str:
        """The secret ``service`` signs this project's webhooks with, derived (never stored).

        From the service's ``webhook_secret`` when configured, else from the signing key.
        """
        section = getattr(self.config, service, None)
        master = getattr(section, "webhook_secret", None) or self.config.security.signing_key
        return derive(master.get_secret_value().encode(), service, slug)

    def status_extras(self, project: Any) -> dict[str, list[str]]:
        """Lines other features add under each repository of ``/cpn status`` (quality, scans)."""
        extras: dict[str, list[str]] = {}
        for provider in STATUS_PROVIDERS:
            for repo, lines in provider(self, project).items():
                extras.setdefault(repo, []).extend(lines)
        return extras

    # -- projects and roles (read side, used by the rights check) -------------------------------

    def project_exists(self, name: str) -> bool:
        return self.store.count("projects", "name = ? AND status != 'archived'", (name,)) > 0

    def projects_roles(self, project: str, user_id: str) -> Role | None:
        row = self.store.db.execute(
            "SELECT m.role FROM members m JOIN projects p ON p.id = m.project_id "
            "WHERE p.name = ? AND m.user_id = ? AND p.status != 'archived'",
            (project, user_id),
        ).fetchone()
        return Role.parse(row[0]) if row else None

    def memberships(self, user_id: str) -> list[tuple[str, Role]]:
        rows = self.store.db.execute(
            "SELECT p.name, m.role FROM members m JOIN projects p ON p.id = m.project_id "
            "WHERE m.user_id = ? AND p.status != 'archived' ORDER BY p.name",
            (user_id,),
        ).fetchall()
        return [(name, Role.parse(role)) for name, role in rows]

    def best_role(self, user_id: str) -> Role | None:
        roles = [role for _, role in self.memberships(user_id)]
        return max(roles) if roles else None

    def is_creator(self, identity: Identity) -> bool:
        allowed = {c.lower() for c in self.config.platform.project_creators}
        if not allowed:
            return True
        return identity.username.lower() in allowed or identity.email.lower() in allowed

    # -- reporting ------------------------------------------------------------------------------

    async def report_operation_crash(self, op: Operation) -> None:
        if op.channel_id:
            self.outbox.enqueue(
                op.channel_id,
                Post(self.tr("ops.crashed", kind=op.kind, id=op.id)),
                root_key=op.root_key,
                response_url=op.response_url,
            )

    def _describe_metrics(self) -> None:
        m = self.metrics
        m.describe("cpn_http_requests_total", "HTTP requests by route and status")
        m.describe("cpn_http_request_seconds", "HTTP request latency")
        m.describe("cpn_commands_total", "Slash commands run, by command")
        m.describe("cpn_command_errors_total", "Slash commands refused or failed, by reason")
        m.describe("cpn_outbox_delivered_total", "Posts delivered to Mattermost")
        m.describe("cpn_outbox_errors_total", "Failed delivery attempts, by failure")
        m.describe("cpn_outbox_delivery_seconds", "Time from enqueue to delivery")
        m.describe("cpn_outbox_dropped_total", "Posts given up on (refused for good, or too old), by op")
        m.describe(
            "cpn_outbox_ephemeral_refused_total",
            "Ephemeral posts Mattermost refused (the bot account lacks system_admin), sent as direct messages",
        )
        m.describe("cpn_outbox_ephemeral_dm_total", "Ephemeral posts delivered as a direct message instead")
        m.describe("cpn_listener_reconnects_total", "Websocket reconnections to Mattermost, by outcome")
        m.describe("cpn_events_processed_total", "Inbound events processed")

        def depths() -> dict[tuple[tuple[str, str], ...], float]:
            return {
                (("queue", "outbox"),): float(self.outbox.pending()),
                (("queue", "inbox"),): float(self.inbox.pending()),
                (("queue", "operations"),): float(self.operations.pending()),
            }

        m.gauge("cpn_queue_depth", "Rows waiting in each durable queue", depths)
