"""The bot's state in SQLite, through sqlite-utils.

WAL mode lets the HTTP handlers, the workers and an operator's ``sqlite3`` shell read while one writer
commits. ``synchronous=NORMAL`` in WAL mode keeps every committed transaction across a process crash
(SIGKILL); only a power loss can drop the last ones, which is the trade the write rate needs.

Migrations are numbered functions applied in order at start; ``PRAGMA user_version`` records the last.
No secret value is ever stored here: tokens are kept as hashes, credentials go to Vault.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

Migration = Callable[[sqlite_utils.Database], None]


def now() -> float:
    return time.time()


def _v1(db: sqlite_utils.Database) -> None:
    db.table("projects").create(
        {
            "id": int,
            "name": str,
            "slug": str,
            "description": str,
            "status": str,
            "visibility": str,
            "created_by": str,
            "created_at": float,
            "updated_at": float,
            "services": str,  # JSON: service -> {"state", "reason", "ids"}
        },
        pk="id",
        not_null={"name", "slug", "status"},
        defaults={"description": "", "status": "initializing", "visibility": "private", "services": "{}"},
    )
    db.table("projects").create_index(["name"], unique=True)
    db.table("members").create(
        {
            "project_id": int,
            "user_id": str,
            "username": str,
            "email": str,
            "role": str,
            "added_by": str,
            "added_at": float,
        },
        pk=("project_id", "user_id"),
        foreign_keys=[("project_id", "projects", "id")],
    )
    db.table("members").create_index(["user_id"])
    db.table("repositories").create(
        {
            "id": int,
            "project_id": int,
            "name": str,
            "external_url": str,
            "is_private": int,
            "is_infra": int,
            "gitlab_id": int,
            "status": str,
            "created_by": str,
            "created_at": float,
        },
        pk="id",
        foreign_keys=[("project_id", "projects", "id")],
        defaults={"external_url": "", "is_private": 0, "is_infra": 0, "status": "initializing"},
    )
    db.table("repositories").create_index(["project_id", "name"], unique=True)
    db.table("environments").create(
        {
            "id": int,
            "project_id": int,
            "name": str,
            "stage": str,
            "cpu": float,
            "memory": float,
            "status": str,
            "created_by": str,
            "created_at": float,
        },
        pk="id",
        foreign_keys=[("project_id", "projects", "id")],
        defaults={"status": "initializing"},
    )
    db.table("environments").create_index(["project_id", "name"], unique=True)
    db.table("channel_links").create(
        {
            "channel_id": str,
            "project_id": int,
            "team_id": str,
            "channel_type": str,
            "linked_by": str,
            "linked_at": float,
        },
        pk=("channel_id", "project_id"),
        foreign_keys=[("project_id", "projects", "id")],
    )
    db.table("channel_links").create_index(["project_id"])
    db.table("subscriptions").create(
        {
            "id": int,
            "channel_id": str,
            "project_id": int,
            "events": str,  # JSON list
            "branches": str,  # JSON list of globs
            "failures_only": int,
            "allow_public": int,
            "created_by": str,
            "created_at": float,
        },
        pk="id",
        foreign_keys=[("project_id", "projects", "id")],
        defaults={"failures_only": 0, "allow_public": 0},
    )
    db.table("subscriptions").create_index(["channel_id", "project_id"], unique=True)
    db.table("operations").create(
        {
            "id": int,
            "kind": str,
            "status": str,  # pending | running | done | failed
            "params": str,
            "channel_id": str,
            "team_id": str,
            "user_id": str,
            "root_key": str,
            "response_url": str,
            "attempts": int,
            "result": str,
            "error": str,
            "created_at": float,
            "started_at": float,
            "finished_at": float,
        },
        pk="id",
        defaults={"status": "pending", "attempts": 0, "params": "{}", "result": "{}", "error": ""},
    )
    db.table("operations").create_index(["status"])
    db.table("inbox").create(
        {
            "id": int,
            "source": str,
            "delivery_id": str,
            "event_type": str,
            "project_key": str,
            "headers": str,
            "body": str,
            "status": str,  # pending | done | failed | ignored
            "attempts": int,
            "error": str,
            "received_at": float,
            "processed_at": float,
        },
        pk="id",
        defaults={"status": "pending", "attempts": 0, "error": ""},
    )
    db.table("inbox").create_index(["source", "delivery_id"], unique=True)
    db.table("inbox").create_index(["status"])
    db.table("outbox").create(
        {
            "id": int,
            "uid": str,  # stamped into the post's props: finds a post whose creation outcome is unknown
            "group_key": str,  # rows of one group are delivered in order
            "op": str,  # post | ephemeral | response
            "post_key": str,  # a card edited in place: created once, then updated
            "root_key": str,  # the thread this post replies to
            "channel_id": str,
            "user_id": str,
            "payload": str,
            "response_url": str,
            "status": str,  # pending | sent | superseded | failed
            "attempts": int,
            "next_attempt_at": float,
            "last_error": str,
            "created_at": float,
            "sent_at": float,
        },
        pk="id",
        defaults={"status": "pending", "attempts": 0, "next_attempt_at": 0.0, "last_error": ""},
    )
    db.table("outbox").create_index(["status", "group_key"])
    db.table("outbox").create_index(["uid"], unique=True)
    db.table("posts").create(
        {
            "key": str,
            "post_id": str,
            "channel_id": str,
            "root_id": str,
            "created_at": float,
            "updated_at": float,
        },
        pk="key",
    )
    db.table("posts").create_index(["post_id"])
    db.table("audit").create(
        {
            "id": int,
            "at": float,
            "actor_id": str,
            "actor_name": str,
            "action": str,
            "target": str,
            "outcome": str,
            "detail": str,
        },
        pk="id",
    )
    db.table("audit").create_index(["at"])
    db.table("identities").create(
        {"user_id": str, "username": str, "email": str, "locale": str, "fetched_at": float},
        pk="user_id",
    )


def _v2(db: sqlite_utils.Database) -> None:
    """Tokens of the sync API: only a hash is kept, the token is shown once."""
    db.table("api_tokens").create(
        {
            "id": int,
            "project_id": int,
            "name": str,
            "token_hash": str,
            "prefix": str,
            "created_by": str,
            "created_at": float,
            "last_used_at": float,
            "revoked_at": float,
        },
        pk="id",
        foreign_keys=[("project_id", "projects", "id")],
    )
    db.table("api_tokens").create_index(["token_hash"], unique=True)


def _v3(db: sqlite_utils.Database) -> None:
    """Pipelines as the bot follows them (from webhooks, and from the API when a webhook is lost)."""
    db.table("pipelines").create(
        {
            "key": str,  # "<gitlab project id>:<pipeline id>"
            "project_id": int,  # the bot's project
            "repo": str,  # internal repository name, or "mirror"
            "gitlab_project_id": int,
            "pipeline_id": int,
            "ref": str,
            "sha": str,
            "status": str,
            "source": str,
            "title": str,  # commit title
            "author": str,
            "url": str,
            "stages": str,  # JSON list, in order
            "jobs": str,  # JSON: job id -> {name, stage, status, url, failure_reason, finished_at}
            "variables": str,  # JSON: the pipeline's variables that matter (PROJECT_NAME, SYNC_ALL...)
            "triggered_by": str,  # "@user", "ci:<token id>", "push"
            "parent_key": str,  # the sync pipeline that caused this build
            "child_key": str,  # the build pipeline this sync caused
            "failure_reported": int,
            "created_at": float,
            "updated_at": float,
            "finished_at": float,
            "duration": float,
        },
        pk="key",
        defaults={
            "jobs": "{}",
            "stages": "[]",
            "variables": "{}",
            "failure_reported": 0,
            "parent_key": "",
            "child_key": "",
            "triggered_by": "",
        },
    )
    db.table("pipelines").create_index(["project_id", "repo", "created_at"])
    db.table("pipelines").create_index(["status"])
    db.table("pipeline_posts").create(
        {"pipeline_key": str, "channel_id": str, "post_key": str, "root_key": str},
        pk=("pipeline_key", "channel_id"),
    )
    db.table("pending_syncs").create(
        {"project_id": int, "repo": str, "sync_key": str, "requested_at": float},
        pk=("project_id", "repo"),
    )


def _v4(db: sqlite_utils.Database) -> None:
    """Deployments made through the bot or seen from ArgoCD, and the drift watch's memory."""
    db.table("deployments").create(
        {
            "id": int,
            "project_id": int,
            "env": str,
            "repo": str,
            "app": str,
            "image_tag": str,
            "revision": str,  # the infra repository commit ArgoCD syncs to
            "kind": str,  # deploy | promote | rollback | external
            "status": str,  # running | succeeded | failed | degraded | reverted
            "requested_by": str,
            "card_key": str,
            "channel_id": str,
            "message": str,
            "started_at": float,
            "finished_at": float,
        },
        pk="id",
        defaults={"status": "running", "message": "", "image_tag": "", "revision": ""},
    )
    db.table("deployments").create_index(["project_id", "env", "started_at"])
    db.table("drift").create(
        {"app": str, "project_id": int, "state": str, "since": float, "notified": int},
        pk="app",
    )


def _v5(db: sqlite_utils.Database) -> None:
    """Quality gates, measures for trends, scans, the projects' scan policies and waivers."""
    db.table("quality").create(
        {
            "id": int,
            "project_id": int,
            "repo": str,
            "sonar_key": str,
            "branch": str,
            "revision": str,
            "status": str,
            "conditions": str,  # JSON: the failed conditions
            "dashboard_url": str,
            "analysed_at": str,
            "received_at": float,
        },
        pk="id",
    )
    db.table("quality").create_index(["project_id", "repo", "id"])
    db.table("quality_measures").create(
        {"sonar_key": str, "branch": str, "measures": str, "taken_at": float}, pk=("sonar_key", "branch")
    )
    db.table("scans").create(
        {
            "id": int,
            "project_id": int,
            "repo": str,
            "subject": str,  # the image or the scanned repository
            "ref": str,
            "sha": str,
            "pipeline_key": str,
            "summary": str,  # JSON: counts, fixable, waived, verdict (never a finding's content)
            "keys": str,  # JSON list of "VULN|package", for the next scan's diff
            "created_at": float,
        },
        pk="id",
    )
    db.table("scans").create_index(["project_id", "subject", "id"])
    db.table("policies").create(
        {"project_id": int, "max_critical": int, "max_high": int, "ignore_unfixed": int, "updated_by": str},
        pk="project_id",
    )
    db.table("waivers").create(
        {
            "id": int,
            "project_id": int,
            "vuln_id": str,
            "until": str,  # ISO date, inclusive
            "reason": str,
            "created_by": str,
            "created_at": float,
            "expired_notified": int,
        },
        pk="id",
        defaults={"expired_notified": 0},
    )
    db.table("waivers").create_index(["project_id", "vuln_id"])


def _v6(db: sqlite_utils.Database) -> None:
    """Support: questions asked to the knowledge base, tickets, and the platform's health."""
    db.table("kb_questions").create(
        {
            "id": int,
            "user_id": str,
            "channel_id": str,
            "question": str,
            "article_id": str,
            "confidence": float,
            "known": int,
            "helpful": int,  # NULL: no feedback, 1: helped, 0: a ticket was opened instead
            "asked_at": float,
        },
        pk="id",
    )
    db.table("tickets").create(
        {
            "id": int,
            "reporter_id": str,
            "reporter_name": str,
            "project": str,
            "message": str,
            "status": str,  # open | taken | resolved | closed
            "assignee_id": str,
            "assignee_name": str,
            "reporter_channel_id": str,
            "reporter_root_id": str,  # the Mattermost post the reporter's thread hangs on
            "support_channel_id": str,
            "support_key": str,  # the ticket's card in the support channel (outbox post key)
            "created_at": float,
            "taken_at": float,
            "resolved_at": float,
            "reminded_at": float,
        },
        pk="id",
        defaults={"status": "open", "assignee_id": "", "assignee_name": "", "project": ""},
    )
    db.table("tickets").create_index(["status"])
    db.table("service_health").create(
        {"service": str, "health": str, "latency_ms": float, "detail": str, "checked_at": float, "changed_at": float},
        pk="service",
    )


def _v7(db: sqlite_utils.Database) -> None:
    """Pipelines whose card must be refreshed: set with the event, cleared once the card is queued."""
    db.execute("ALTER TABLE pipelines ADD COLUMN dirty INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE pipelines ADD COLUMN default_branch TEXT NOT NULL DEFAULT 'main'")
    db.execute("CREATE INDEX idx_pipelines_dirty ON pipelines (dirty) WHERE dirty = 1")


def _v8(db: sqlite_utils.Database) -> None:
    """Inbox subjects: an event that ``closes`` its subject makes the earlier pending ones redundant."""
    db.execute("ALTER TABLE inbox ADD COLUMN subject TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE inbox ADD COLUMN closes INTEGER NOT NULL DEFAULT 0")


def _v9(db: sqlite_utils.Database) -> None:
    """The inbox moves to its own file (see :class:`Store`); here stays what became of each event."""
    db.table("inbox_done").create(
        {"source": str, "delivery_id": str, "status": str, "error": str, "processed_at": float},
        pk=("source", "delivery_id"),
        defaults={"error": ""},
    )
    db.table("inbox_done").create_index(["processed_at"])


def _v10(db: sqlite_utils.Database) -> None:
    """Contexts of buttons and dialogs already used (bot/nonces.py), kept until they expire."""
    db.execute(
        "CREATE TABLE used_nonces (nonce TEXT PRIMARY KEY, used_at FLOAT NOT NULL, user_id TEXT NOT NULL, "
        "action TEXT NOT NULL, label TEXT NOT NULL DEFAULT '', expires_at FLOAT NOT NULL)"
    )
    db.execute("CREATE INDEX idx_used_nonces_expires_at ON used_nonces (expires_at)")


def _v11(db: sqlite_utils.Database) -> None:
    """Which GitLab webhooks a project has: ``group`` (Premium) or ``project`` (one per repository, Free)."""
    db.execute("ALTER TABLE projects ADD COLUMN gitlab_hooks TEXT NOT NULL DEFAULT ''")


def _v12(db: sqlite_utils.Database) -> None:
    """Console mode: the console's ids of a project, its repositories and environments (the slug is
    the console's, ``name`` or ``name-N``), and the cluster an environment was placed on."""
    for table in ("projects", "repositories", "environments"):
        db.execute(f"ALTER TABLE {table} ADD COLUMN console_id TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE environments ADD COLUMN cluster TEXT NOT NULL DEFAULT ''")


MIGRATIONS: list[Migration] = [_v1, _v2, _v3, _v4, _v5, _v6, _v7, _v8, _v9, _v10, _v11, _v12]

# The inbox file: written by the web process only (acknowledgements), read by whoever processes.
INBOX_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS inbox (id INTEGER PRIMARY KEY, source TEXT NOT NULL, delivery_id TEXT NOT NULL, "
    "event_type TEXT NOT NULL DEFAULT '', project_key TEXT NOT NULL DEFAULT '', headers TEXT NOT NULL DEFAULT '{}', "
    "body TEXT NOT NULL DEFAULT '', status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0, "
    "error TEXT NOT NULL DEFAULT '', received_at FLOAT, processed_at FLOAT, subject TEXT NOT NULL DEFAULT '', "
    "closes INTEGER NOT NULL DEFAULT 0)",
    "CREATE UNIQUE INDEX IF NOT EXISTS idx_inbox_source_delivery_id ON inbox (source, delivery_id)",
    "CREATE INDEX IF NOT EXISTS idx_inbox_status ON inbox (status)",
)
INBOX_COLUMNS = (
    "id, source, delivery_id, event_type, project_key, headers, body, status, attempts, error, received_at, "
    "processed_at, subject, closes"
)


# Columns the inbox file gained after its first version: (name, declaration).
INBOX_ADDED_COLUMNS = (("size", "INTEGER NOT NULL DEFAULT 0"),)  # the body's length, kept once it is dropped


def _add_inbox_columns(conn: sqlite3.Connection) -> None:
    present = {row[1] for row in conn.execute("PRAGMA table_info(inbox)")}
    for name, declaration in INBOX_ADDED_COLUMNS:
        if name not in present:
            conn.execute(f"ALTER TABLE inbox ADD COLUMN {name} {declaration}")


def inbox_path(path: str) -> str:
    """``/var/lib/cpn-bot/cpn-bot.sqlite`` → ``/var/lib/cpn-bot/cpn-bot.inbox.sqlite``."""
    if path == ":memory:":
        return path
    main = Path(path)
    return str(main.with_name(f"{main.stem}.inbox{main.suffix or '.sqlite'}"))


def private_dir(path: Path) -> None:
    """The data directory, created 0700 (whatever the umask) when the bot creates it."""
    if path.exists():
        return
    path.mkdir(parents=True, mode=0o700, exist_ok=True)
    path.chmod(0o700)  # mkdir's mode is masked by the umask


def private_file(path: str) -> None:
    """A SQLite file created 0600 before SQLite opens it, and kept so.

    SQLite creates a database 0644 less the umask, and its ``-wal`` and ``-shm`` with the mode of
    the database file (sqlite/sqlite:src/os_unix.c findCreateFileMode, unixOpenSharedMemory): a
    database made 0600 first gives private journals too. Files left by an older version are
    tightened as well.
    """
    if path == ":memory:":
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm", "-journal"):
        try:
            os.chmod(path + suffix, 0o600)
        except FileNotFoundError:
            pass


T = TypeVar("T")
LOCK_TIMEOUT = 10.0  # seconds a write waits for another process's lock
LOCK_RETRY = 0.0003


async def begin_when_free(conn: sqlite3.Connection, timeout: float = LOCK_TIMEOUT) -> None:
    """BEGIN IMMEDIATE; on a connection without busy timeout, another process's lock is waited for
    in short asynchronous steps, the event loop going on meanwhile. ``sqlite3.OperationalError``
    after ``timeout`` seconds (``LOCK_TIMEOUT``)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        await asyncio.sleep(LOCK_RETRY)


_DDL = re.compile(r"\s*(CREATE|DROP|ALTER)\b", re.IGNORECASE)


class _Database(sqlite_utils.Database):
    """sqlite_utils with the names of tables and views cached.

    Every ``table()``, insert, upsert and ``rows_where`` asks for them, one query on sqlite_master
    each time: a tenth of the worker's time under a burst of events. The schema changes only through
    DDL statements (migrations, the knowledge base's index), which clear the cache.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__(conn)
        self._names: dict[tuple[str, bool, bool], list[str]] = {}

    def table_names(self, fts4: bool = False, fts5: bool = False) -> list[str]:
        key = ("table", fts4, fts5)
        if key not in self._names:
            self._names[key] = super().table_names(fts4=fts4, fts5=fts5)
        return list(self._names[key])

    def view_names(self) -> list[str]:
        key = ("view", False, False)
        if key not in self._names:
            self._names[key] = super().view_names()
        return list(self._names[key])

    def execute(self, sql: str, parameters: Any = None) -> sqlite3.Cursor:
        if _DDL.match(sql):
            self._names.clear()
        return super().execute(sql, parameters)

    def executescript(self, sql: str) -> sqlite3.Cursor:
        self._names.clear()
        return super().executescript(sql)


class Store:
    """The SQLite database, migrated on open. One instance per process.

    Two files: the main one, and beside it the inbox (``*.inbox.sqlite``, :func:`inbox_path`).
    Webhooks are acknowledged once in the inbox, and only the web process writes it but for the
    processed marks; so an acknowledgement never waits for the write lock of the main file, held
    by whoever is processing (the worker process). What became of an event is decided in the main
    file, in the transaction of its effects (``inbox_done``); the inbox's own status follows.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            private_dir(Path(self.path).parent)
        private_file(self.path)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        self.db = _Database(conn)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.execute("PRAGMA busy_timeout=10000")
        self.inbox_path = inbox_path(self.path)
        private_file(self.inbox_path)
        self.inbox_db = sqlite3.connect(self.inbox_path, check_same_thread=False, isolation_level=None, timeout=10)
        self.inbox_db.execute("PRAGMA journal_mode=WAL")
        self.inbox_db.execute("PRAGMA synchronous=NORMAL")
        # A processed event's body is cleared (bot.inbox): its bytes are overwritten, not freed.
        self.inbox_db.execute("PRAGMA secure_delete=ON")
        for statement in INBOX_SCHEMA:
            self.inbox_db.execute(statement)
        _add_inbox_columns(self.inbox_db)
        self.migrate()
        self._move_inbox()

    def _move_inbox(self) -> None:
        """The inbox of a database from before the inbox file: its rows moved there, once."""
        if "inbox" not in self.db.table_names() or self.path == ":memory:":
            return
        self.db.execute("ATTACH DATABASE ? AS moved", (self.inbox_path,))
        try:
            with self.transaction():
                self.db.execute(
                    f"INSERT OR IGNORE INTO moved.inbox ({INBOX_COLUMNS}) "  # noqa: S608
                    f"SELECT {INBOX_COLUMNS} FROM main.inbox"
                )
                self.db.execute("DROP TABLE main.inbox")
        finally:
            self.db.execute("DETACH DATABASE moved")

    @property
    def version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        current = self.version
        for number, migration in enumerate(MIGRATIONS, start=1):
            if number <= current:
                continue
            with self.transaction():
                migration(self.db)
                self.db.execute(f"PRAGMA user_version={number}")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE … COMMIT: takes the write lock up front so concurrent writers queue."""
        conn = self.db.conn
        if conn.in_transaction:
            yield
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def data_version(self) -> tuple[int, int]:
        """Changes whenever another connection (another process) has committed since the last call."""
        main = int(self.db.conn.execute("PRAGMA data_version").fetchone()[0])
        return main, int(self.inbox_db.execute("PRAGMA data_version").fetchone()[0])

    async def write(self, work: Callable[[_Database], T]) -> T:
        """``work(db)`` in a write transaction (joined if one is open).

        With ``busy_timeout`` 0 (the posts worker, see :meth:`wait_by_steps`), a lock held by
        another process is waited for here, in short asynchronous steps, rather than by SQLite's
        sleeps of a millisecond or more that would stop the event loop and rarely fall in the gaps
        between the other's transactions.
        """
        conn = self.db.conn
        if conn.in_transaction:
            return work(self.db)
        await begin_when_free(conn)
        try:
            result = work(self.db)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    async def inbox_write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """As :meth:`write`, on the inbox file."""
        conn = self.inbox_db
        await begin_when_free(conn)
        try:
            result = work(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    def wait_by_steps(self, main: bool = True, inbox: bool = True) -> None:
        """For a process whose writes to that file go through :meth:`write` or :meth:`inbox_write`:
        no blocking busy handler."""
        if main:
            self.db.execute("PRAGMA busy_timeout=0")
        if inbox:
            self.inbox_db.execute("PRAGMA busy_timeout=0")

    def ping(self) -> bool:
        return self.db.execute("SELECT 1").fetchone()[0] == 1

    def close(self) -> None:
        self.db.conn.close()
        self.inbox_db.close()

    # -- audit ---------------------------------------------------------------------------------

    def audit(
        self,
        actor_id: str,
        actor_name: str,
        action: str,
        target: str,
        outcome: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Record an action taken on the platform. ``detail`` must never hold a secret value."""
        self.db.table("audit").insert(
            {
                "at": now(),
                "actor_id": actor_id,
                "actor_name": actor_name,
                "action": action,
                "target": target,
                "outcome": outcome,
                "detail": json.dumps(detail or {}, ensure_ascii=False),
            }
        )

    def rows(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[dict[str, Any]]:
        """The rows of a query as dicts, without sqlite_utils' per-call introspection (hot paths)."""
        cursor = self.db.conn.execute(sql, params)
        columns = [c[0] for c in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

    def count(self, table: str, where: str = "", params: tuple[Any, ...] = ()) -> int:
        """Rows of ``table`` (``inbox`` is read in its own file)."""
        sql = f"SELECT COUNT(*) FROM [{table}]" + (f" WHERE {where}" if where else "")  # noqa: S608
        conn = self.inbox_db if table == "inbox" else self.db.conn
        return int(conn.execute(sql, params).fetchone()[0])
