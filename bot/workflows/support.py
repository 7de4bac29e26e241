"""Support: questions answered from the knowledge base, tickets relayed to the platform team, and
the platform's health as the platform itself checks it (platform-facts §1.8).

Everything lives in SQLite: a question and its feedback, a ticket and the threads it links (the
reporter's on one side, the support channel's on the other), the last health of each service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bot.config import Config
from bot.store import Store, now

REGISTRY_NAMES = {"quay": "Quay", "harbor": "Harbor"}


def _web(endpoint: Any) -> str:
    """A service's web address as configured: its ``ui_url`` when it has one, else its ``url``."""
    if endpoint is None:
        return ""
    return str(getattr(endpoint, "ui_url", None) or endpoint.url).rstrip("/")


def platform_urls(config: Config) -> dict[str, str]:
    """The web address of each configured service, by name (the generic answer to "what is X's address")."""
    registry = config.harbor if config.platform.registry == "harbor" else config.quay
    urls = {
        "gitlab": _web(config.gitlab),
        "vault": _web(config.vault),
        "sonarqube": _web(config.sonarqube),
        "argocd": _web(config.argocd),
        "registry": _web(registry),
        "nexus": _web(config.nexus),
        "console": _web(config.console),
    }
    return {name: url for name, url in urls.items() if url}


def kb_values(config: Config) -> dict[str, str]:
    """What the knowledge base's articles say about this platform (bot.knowledge.TEMPLATE_DEFAULTS)."""
    registry = config.platform.registry
    host = ""
    if registry == "harbor" and config.harbor is not None:
        host = config.harbor.host or (urlsplit(str(config.harbor.url)).hostname or "")
    elif config.quay is not None:
        host = urlsplit(str(config.quay.url)).hostname or ""
    values = {
        "registry": REGISTRY_NAMES[registry],
        "registry.host": host,
        # platform.control arrives with the console mode (direct: the bot drives each service itself).
        "control": str(getattr(config.platform, "control", "direct")),
    }
    values.update({f"url.{name}": url for name, url in platform_urls(config).items()})
    return values


@dataclass(frozen=True)
class Ticket:
    id: int
    reporter_id: str
    reporter_name: str
    project: str
    message: str
    status: str
    assignee_id: str
    assignee_name: str
    reporter_channel_id: str
    reporter_root_id: str
    support_channel_id: str
    created_at: float

    @property
    def reporter_key(self) -> str:
        """The outbox key of the reporter-side thread root, when the bot made it."""
        return f"ticket:{self.id}:reporter"

    @property
    def support_key(self) -> str:
        return f"ticket:{self.id}:support"

    @property
    def open(self) -> bool:
        return self.status in ("open", "taken")

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Ticket:
        return cls(
            id=row["id"],
            reporter_id=row["reporter_id"],
            reporter_name=row["reporter_name"] or "",
            project=row["project"] or "",
            message=row["message"] or "",
            status=row["status"],
            assignee_id=row["assignee_id"] or "",
            assignee_name=row["assignee_name"] or "",
            reporter_channel_id=row["reporter_channel_id"] or "",
            reporter_root_id=row["reporter_root_id"] or "",
            support_channel_id=row["support_channel_id"] or "",
            created_at=row["created_at"] or 0.0,
        )


class Tickets:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.table = store.db.table("tickets")

    def open_ticket(
        self,
        reporter_id: str,
        reporter_name: str,
        project: str,
        message: str,
        channel_id: str,
        root_id: str,
        support_channel_id: str,
    ) -> Ticket:
        row = self.table.insert(
            {
                "reporter_id": reporter_id,
                "reporter_name": reporter_name,
                "project": project,
                "message": message[:4000],
                "status": "open",
                "reporter_channel_id": channel_id,
                "reporter_root_id": root_id,
                "support_channel_id": support_channel_id,
                "support_key": "",
                "created_at": now(),
            }
        )
        ticket_id = int(row.last_pk or 0)
        self.table.update(ticket_id, {"support_key": f"ticket:{ticket_id}:support"})
        found = self.get(ticket_id)
        assert found is not None
        return found

    def find_open(self, reporter_id: str, project: str, message: str) -> Ticket | None:
        """The reporter's still-open ticket on this project with this very message: a second press
        of "Ouvrir un ticket", or a command sent again."""
        rows = list(
            self.table.rows_where(
                "reporter_id = ? AND project = ? AND message = ? AND status IN ('open', 'taken')",
                [reporter_id, project, message[:4000]],
                order_by="id desc",
                limit=1,
            )
        )
        return Ticket.from_row(rows[0]) if rows else None

    def get(self, ticket_id: int) -> Ticket | None:
        rows = list(self.table.rows_where("id = ?", [ticket_id], limit=1))
        return Ticket.from_row(rows[0]) if rows else None

    def listing(self, reporter_id: str | None = None, only_open: bool = True) -> list[Ticket]:
        where, params = [], []
        if only_open:
            where.append("status IN ('open', 'taken')")
        if reporter_id is not None:
            where.append("reporter_id = ?")
            params.append(reporter_id)
        rows = self.table.rows_where(" AND ".join(where) or None, params, order_by="id desc", limit=50)
        return [Ticket.from_row(r) for r in rows]

    def take(self, ticket_id: int, staff_id: str, staff_name: str) -> None:
        self.table.update(
            ticket_id, {"status": "taken", "assignee_id": staff_id, "assignee_name": staff_name, "taken_at": now()}
        )

    def resolve(self, ticket_id: int, staff_id: str, staff_name: str) -> None:
        self.table.update(
            ticket_id,
            {"status": "resolved", "resolved_at": now(), "assignee_id": staff_id, "assignee_name": staff_name},
        )

    def close(self, ticket_id: int) -> None:
        self.table.update(ticket_id, {"status": "closed", "resolved_at": now()})

    def reopen(self, ticket_id: int) -> None:
        """A resolved ticket its reporter says is not: back to whoever had it, or to nobody."""
        ticket = self.get(ticket_id)
        if ticket is not None and ticket.status == "resolved":
            self.table.update(ticket_id, {"status": "taken" if ticket.assignee_id else "open", "resolved_at": None})

    def by_thread(self, root_post_id: str) -> tuple[Ticket, str] | None:
        """The ticket whose thread this is, and which side: "support" or "reporter".

        A resolved ticket still has its threads (its reporter may answer that the problem remains);
        a closed one does not.
        """
        db = self.store.db
        row = db.execute("SELECT key FROM posts WHERE post_id = ?", (root_post_id,)).fetchone()
        if row is not None and row[0].startswith("ticket:"):
            _, number, side = row[0].split(":")
            ticket = self.get(int(number))
            return (ticket, side) if ticket is not None and ticket.status != "closed" else None
        rows = list(
            self.table.rows_where(
                "reporter_root_id = ? AND status IN ('open', 'taken', 'resolved')",
                [root_post_id],
                order_by="id desc",
                limit=1,
            )
        )
        return (Ticket.from_row(rows[0]), "reporter") if rows else None

    def to_remind(self, older_than: float) -> list[Ticket]:
        rows = self.table.rows_where(
            "status = 'open' AND created_at < ? AND (reminded_at IS NULL OR reminded_at < ?)",
            [now() - older_than, now() - older_than],
        )
        return [Ticket.from_row(r) for r in rows]

    def reminded(self, ticket_id: int) -> None:
        self.table.update(ticket_id, {"reminded_at": now()})


class Questions:
    """What people asked the knowledge base, and whether it helped (``/cpn kb stats``)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.table = store.db.table("kb_questions")

    def record(
        self, user_id: str, channel_id: str, question: str, article_id: str, confidence: float, known: bool
    ) -> int:
        row = self.table.insert(
            {
                "user_id": user_id,
                "channel_id": channel_id,
                "question": question[:1000],
                "article_id": article_id,
                "confidence": round(confidence, 3),
                "known": int(known),
                "asked_at": now(),
            }
        )
        return int(row.last_pk or 0)

    def feedback(self, question_id: int, helpful: bool) -> None:
        self.table.update(question_id, {"helpful": int(helpful)})

    # An answer the asker turned into a ticket ("it did not help", helpful = 0) was a wrong answer: it is
    # not found, it does not make its article useful, and it is listed with the unanswered questions.
    _FOUND = "known = 1 AND helpful IS NOT 0"

    def stats(self) -> dict[str, Any]:
        db = self.store.db
        total, known, helped, ticketed = db.execute(
            f"SELECT COUNT(*), COALESCE(SUM({self._FOUND}), 0), COALESCE(SUM(helpful = 1), 0), "  # noqa: S608 - constant
            "COALESCE(SUM(helpful = 0), 0) FROM kb_questions"
        ).fetchone()
        unanswered = [
            r[0]
            for r in db.execute(
                f"SELECT question FROM kb_questions WHERE NOT ({self._FOUND}) ORDER BY id DESC LIMIT 10"  # noqa: S608
            ).fetchall()
        ]
        top = db.execute(
            f"SELECT article_id, COUNT(*) FROM kb_questions WHERE {self._FOUND} GROUP BY article_id "  # noqa: S608
            "ORDER BY COUNT(*) DESC LIMIT 5"
        ).fetchall()
        return {
            "total": total,
            "known": known,
            "helped": helped,
            "ticketed": ticketed,
            "unanswered": unanswered,
            "top": top,
        }


class Health:
    """The last known health of each service; a change is what gets announced."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.table = store.db.table("service_health")

    def update(self, service: str, health: str, latency_ms: float, detail: str) -> str | None:
        """Store the new state; the previous health when it changed (None if unchanged or first)."""
        row = self.store.db.execute("SELECT health FROM service_health WHERE service = ?", (service,)).fetchone()
        previous = str(row[0]) if row is not None else None
        record: dict[str, Any] = {
            "service": service,
            "health": health,
            "latency_ms": round(latency_ms, 1),
            "detail": detail[:200],
            "checked_at": now(),
        }
        if previous != health:
            record["changed_at"] = now()
        self.table.upsert(record, pk="service")
        return previous if previous is not None and previous != health else None

    def all(self) -> list[dict[str, Any]]:
        return list(self.table.rows_where(order_by="service"))
