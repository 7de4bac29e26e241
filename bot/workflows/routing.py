"""Which channels hear about which events: subscriptions, and the quiet defaults.

Noise is what users of the peer tools complain about most, so a channel linked to a project
without an explicit subscription hears about failures on every branch and about successes on the
default branch only. An explicit subscription chooses its events, its branches (globs such as
``release/*``) and may keep failures only. A private project's events never reach a public channel
unless the project's owner allowed it explicitly for that channel.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass

from bot.model import Project, Projects
from bot.store import Store, now

EVENTS = ("pipeline", "sync", "push", "mr", "quality", "scan", "deploy")
DEFAULT_EVENTS = ("pipeline", "sync", "quality", "scan", "deploy")  # pushes and MRs are opt-in


@dataclass(frozen=True)
class Subscription:
    channel_id: str
    channel_type: str  # "O" public, "P" private, "D"/"G" direct
    events: tuple[str, ...]
    branches: tuple[str, ...]
    failures_only: bool
    allow_public: bool
    explicit: bool


def wants(sub: Subscription, kind: str, branch: str, default_branch: str, failure: bool) -> bool:
    """Whether this subscription asks for an event of ``kind`` on ``branch`` with that outcome."""
    if kind not in sub.events:
        return False
    if sub.branches and not any(fnmatch.fnmatchcase(branch, glob) for glob in sub.branches):
        return False
    if sub.failures_only and not failure:
        return False
    if not sub.explicit and not sub.branches and not failure:
        return branch == default_branch or not branch
    return True


def visible(sub: Subscription, project: Project) -> bool:
    """A private project's events stay out of public channels unless explicitly allowed."""
    return not (project.visibility == "private" and sub.channel_type == "O" and not sub.allow_public)


class Subscriptions:
    def __init__(self, store: Store) -> None:
        self.store = store

    def for_project(self, project: Project) -> list[Subscription]:
        """Every channel that may hear about the project: explicit subscriptions, then linked channels."""
        db = self.store.db
        types = dict(
            db.execute(
                "SELECT channel_id, channel_type FROM channel_links WHERE project_id = ?", (project.id,)
            ).fetchall()
        )
        found: dict[str, Subscription] = {}
        for row in db.table("subscriptions").rows_where("project_id = ?", [project.id]):
            found[row["channel_id"]] = Subscription(
                channel_id=row["channel_id"],
                channel_type=types.get(row["channel_id"], "O") or "O",
                events=tuple(json.loads(row["events"] or "[]")) or DEFAULT_EVENTS,
                branches=tuple(json.loads(row["branches"] or "[]")),
                failures_only=bool(row["failures_only"]),
                allow_public=bool(row["allow_public"]),
                explicit=True,
            )
        for channel_id, channel_type in types.items():
            found.setdefault(
                channel_id,
                Subscription(channel_id, channel_type or "O", DEFAULT_EVENTS, (), False, False, explicit=False),
            )
        return list(found.values())

    def targets(self, project: Project, kind: str, branch: str, default_branch: str, failure: bool) -> list[str]:
        return [
            sub.channel_id
            for sub in self.for_project(project)
            if visible(sub, project) and wants(sub, kind, branch, default_branch, failure)
        ]

    def subscribe(
        self,
        project: Project,
        channel_id: str,
        events: tuple[str, ...],
        branches: tuple[str, ...],
        failures_only: bool,
        allow_public: bool,
        by: str,
    ) -> None:
        db = self.store.db
        with self.store.transaction():
            db.execute("DELETE FROM subscriptions WHERE channel_id = ? AND project_id = ?", (channel_id, project.id))
            db.table("subscriptions").insert(
                {
                    "channel_id": channel_id,
                    "project_id": project.id,
                    "events": json.dumps(list(events)),
                    "branches": json.dumps(list(branches)),
                    "failures_only": int(failures_only),
                    "allow_public": int(allow_public),
                    "created_by": by,
                    "created_at": now(),
                }
            )

    def unsubscribe(self, project: Project, channel_id: str) -> bool:
        """Nothing more from this project in this channel (its link is removed too)."""
        db = self.store.db
        with self.store.transaction():
            a = db.execute(
                "DELETE FROM subscriptions WHERE channel_id = ? AND project_id = ?", (channel_id, project.id)
            ).rowcount
            b = db.execute(
                "DELETE FROM channel_links WHERE channel_id = ? AND project_id = ?", (channel_id, project.id)
            ).rowcount
        return bool(a or b)

    def of_channel(self, channel_id: str) -> list[tuple[str, Subscription]]:
        """(project name, subscription) for every project this channel hears about."""
        rows = self.store.db.execute(
            "SELECT p.name, p.id FROM projects p JOIN channel_links c ON c.project_id = p.id "
            "WHERE c.channel_id = ? AND p.status != 'archived' ORDER BY p.name",
            (channel_id,),
        ).fetchall()
        result = []
        for name, pid in rows:
            project = Projects(self.store).by_id(pid)
            sub = next((s for s in self.for_project(project) if s.channel_id == channel_id), None)
            if sub is not None:
                result.append((name, sub))
        return result
