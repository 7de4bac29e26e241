"""Projects, members, repositories, environments: the bot's records, read and written in one place."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from bot.rights import Role
from bot.store import Store, now

ACTIVE = "status != 'archived'"


@dataclass(frozen=True)
class Project:
    id: int
    name: str
    slug: str
    description: str
    status: str
    created_by: str
    created_at: float
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    visibility: str = "internal"  # "private": its events stay out of public channels unless allowed
    gitlab_hooks: str = ""  # "group" | "project" (Free tier: a hook on each repository) | "" (none yet)
    console_id: str = ""  # console mode: the console's project id ("" until it is created there)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Project:
        return cls(
            id=row["id"],
            name=row["name"],
            slug=row["slug"],
            description=row["description"] or "",
            status=row["status"],
            created_by=row["created_by"] or "",
            created_at=row["created_at"] or 0.0,
            services=json.loads(row["services"] or "{}"),
            visibility=row.get("visibility") or "internal",
            gitlab_hooks=row.get("gitlab_hooks") or "",
            console_id=row.get("console_id") or "",
        )


@dataclass(frozen=True)
class Member:
    user_id: str
    username: str
    email: str
    role: Role


@dataclass(frozen=True)
class Repository:
    id: int
    name: str
    external_url: str
    is_private: bool
    is_infra: bool
    status: str
    console_id: str = ""


@dataclass(frozen=True)
class Environment:
    id: int
    name: str
    stage: str
    cpu: float
    memory: float
    status: str
    console_id: str = ""
    cluster: str = ""  # console mode: the cluster's label


class Projects:
    """Access to the project records of the store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db

    # -- projects -------------------------------------------------------------------------------

    def get(self, name: str, include_archived: bool = False) -> Project | None:
        where = "name = ?" if include_archived else f"name = ? AND {ACTIVE}"
        rows = self.store.rows(f"SELECT * FROM projects WHERE {where} LIMIT 1", (name,))  # noqa: S608
        return Project.from_row(rows[0]) if rows else None

    def by_id(self, project_id: int) -> Project:
        rows = self.store.rows("SELECT * FROM projects WHERE id = ?", (project_id,))
        if not rows:
            raise KeyError(f"no project {project_id}")
        return Project.from_row(rows[0])

    def all(self) -> list[Project]:
        return [Project.from_row(r) for r in self.store.rows(f"SELECT * FROM projects WHERE {ACTIVE} ORDER BY name")]  # noqa: S608

    def of_user(self, user_id: str) -> list[tuple[Project, Role]]:
        rows = self.db.execute(
            "SELECT p.id, m.role FROM projects p JOIN members m ON m.project_id = p.id "
            "WHERE m.user_id = ? AND p.status != 'archived' ORDER BY p.name",
            (user_id,),
        ).fetchall()
        return [(self.by_id(pid), Role.parse(role)) for pid, role in rows]

    def create(self, name: str, description: str, created_by: str, private: bool = False) -> Project:
        """A new project row, ``initializing``; an archived project of that name is replaced."""
        with self.store.transaction():
            old = self.get(name, include_archived=True)
            if old is not None:
                self.db.execute("UPDATE projects SET name = ? WHERE id = ?", (f"{name}~{old.id}", old.id))
            pid = (
                self.db.table("projects")
                .insert(
                    {
                        "name": name,
                        "slug": name,
                        "description": description,
                        "status": "initializing",
                        "visibility": "private" if private else "internal",
                        "created_by": created_by,
                        "created_at": now(),
                        "updated_at": now(),
                        "services": "{}",
                    }
                )
                .last_pk
            )
        return self.by_id(int(pid or 0))

    def set_status(self, project_id: int, status: str, services: dict[str, dict[str, Any]] | None = None) -> None:
        fields: dict[str, Any] = {"status": status, "updated_at": now()}
        if services is not None:
            fields["services"] = json.dumps(services, ensure_ascii=False)
        self.db.table("projects").update(project_id, fields)

    def set_gitlab_hooks(self, project_id: int, kind: str) -> None:
        self.db.table("projects").update(project_id, {"gitlab_hooks": kind, "updated_at": now()})

    def set_console(self, project_id: int, console_id: str, slug: str) -> None:
        """Console mode: the project as the console knows it (its slug names it on every service)."""
        self.db.table("projects").update(project_id, {"console_id": console_id, "slug": slug, "updated_at": now()})

    # -- members --------------------------------------------------------------------------------

    def members(self, project_id: int) -> list[Member]:
        rows = self.db.table("members").rows_where("project_id = ?", [project_id], order_by="username")
        return [Member(r["user_id"], r["username"], r["email"] or "", Role.parse(r["role"])) for r in rows]

    def member(self, project_id: int, user_id: str) -> Member | None:
        return next((m for m in self.members(project_id) if m.user_id == user_id), None)

    def set_member(self, project_id: int, user_id: str, username: str, email: str, role: Role, by: str) -> None:
        self.db.table("members").upsert(
            {
                "project_id": project_id,
                "user_id": user_id,
                "username": username,
                "email": email,
                "role": role.label,
                "added_by": by,
                "added_at": now(),
            },
            pk=("project_id", "user_id"),
        )

    def remove_member(self, project_id: int, user_id: str) -> bool:
        cursor = self.db.execute("DELETE FROM members WHERE project_id = ? AND user_id = ?", (project_id, user_id))
        return cursor.rowcount > 0

    # -- repositories ---------------------------------------------------------------------------

    def repositories(self, project_id: int) -> list[Repository]:
        rows = self.db.table("repositories").rows_where(
            "project_id = ? AND status != 'removed'", [project_id], order_by="name"
        )
        return [
            Repository(
                r["id"],
                r["name"],
                r["external_url"] or "",
                bool(r["is_private"]),
                bool(r["is_infra"]),
                r["status"],
                r.get("console_id") or "",
            )
            for r in rows
        ]

    def repository(self, project_id: int, name: str) -> Repository | None:
        return next((r for r in self.repositories(project_id) if r.name == name), None)

    def add_repository(self, project_id: int, name: str, url: str, private: bool, infra: bool, by: str) -> None:
        self.db.execute(
            "DELETE FROM repositories WHERE project_id = ? AND name = ? AND status = 'removed'",
            (project_id, name),
        )
        self.db.table("repositories").insert(
            {
                "project_id": project_id,
                "name": name,
                "external_url": url,
                "is_private": int(private),
                "is_infra": int(infra),
                "status": "initializing",
                "created_by": by,
                "created_at": now(),
            }
        )

    def set_repository_status(self, project_id: int, name: str, status: str) -> None:
        self.db.execute(
            "UPDATE repositories SET status = ? WHERE project_id = ? AND name = ?", (status, project_id, name)
        )

    def set_repository_console_id(self, project_id: int, name: str, console_id: str) -> None:
        self.db.execute(
            "UPDATE repositories SET console_id = ? WHERE project_id = ? AND name = ? AND status != 'removed'",
            (console_id, project_id, name),
        )

    # -- environments ---------------------------------------------------------------------------

    def environments(self, project_id: int) -> list[Environment]:
        rows = self.db.table("environments").rows_where(
            "project_id = ? AND status != 'removed'", [project_id], order_by="name"
        )
        return [
            Environment(
                r["id"],
                r["name"],
                r["stage"],
                r["cpu"] or 0,
                r["memory"] or 0,
                r["status"],
                r.get("console_id") or "",
                r.get("cluster") or "",
            )
            for r in rows
        ]

    def environment(self, project_id: int, name: str) -> Environment | None:
        return next((e for e in self.environments(project_id) if e.name == name), None)

    def add_environment(
        self, project_id: int, name: str, stage: str, cpu: float, memory: float, by: str, cluster: str = ""
    ) -> None:
        self.db.execute(
            "DELETE FROM environments WHERE project_id = ? AND name = ? AND status = 'removed'",
            (project_id, name),
        )
        self.db.table("environments").insert(
            {
                "project_id": project_id,
                "name": name,
                "stage": stage,
                "cpu": cpu,
                "memory": memory,
                "cluster": cluster,
                "status": "initializing",
                "created_by": by,
                "created_at": now(),
            }
        )

    def set_environment_status(self, project_id: int, name: str, status: str) -> None:
        self.db.execute(
            "UPDATE environments SET status = ? WHERE project_id = ? AND name = ?", (status, project_id, name)
        )

    def set_environment_console_id(self, project_id: int, name: str, console_id: str) -> None:
        self.db.execute(
            "UPDATE environments SET console_id = ? WHERE project_id = ? AND name = ? AND status != 'removed'",
            (console_id, project_id, name),
        )

    # -- channels -------------------------------------------------------------------------------

    def link(self, project_id: int, channel_id: str, team_id: str, channel_type: str, by: str) -> bool:
        exists = self.db.execute(
            "SELECT 1 FROM channel_links WHERE project_id = ? AND channel_id = ?", (project_id, channel_id)
        ).fetchone()
        if exists:
            return False
        self.db.table("channel_links").insert(
            {
                "channel_id": channel_id,
                "project_id": project_id,
                "team_id": team_id,
                "channel_type": channel_type,
                "linked_by": by,
                "linked_at": now(),
            }
        )
        return True

    def channels(self, project_id: int) -> list[str]:
        rows = self.db.execute("SELECT channel_id FROM channel_links WHERE project_id = ?", (project_id,))
        return [r[0] for r in rows.fetchall()]

    def linked_repositories(self) -> dict[int, list[str]]:
        """Repository names of every active project linked to a channel, by project id (one query)."""
        rows = self.db.execute(
            "SELECT p.id, r.name FROM projects p LEFT JOIN repositories r "
            "ON r.project_id = p.id AND r.status != 'removed' "
            "WHERE p.status != 'archived' AND EXISTS (SELECT 1 FROM channel_links c WHERE c.project_id = p.id) "
            "ORDER BY p.id, r.name"
        ).fetchall()
        found: dict[int, list[str]] = {}
        for project_id, name in rows:
            found.setdefault(project_id, [])
            if name is not None:
                found[project_id].append(name)
        return found

    def linked_deployments(self) -> list[tuple[int, str, str]]:
        """(project id, environment, infra repository) of every active project linked to a channel:
        the ArgoCD applications the drift watch looks at (one query)."""
        rows = self.db.execute(
            "SELECT p.id, e.name, r.name FROM projects p "
            "JOIN environments e ON e.project_id = p.id AND e.status != 'removed' "
            "JOIN repositories r ON r.project_id = p.id AND r.status != 'removed' AND r.is_infra "
            "WHERE p.status != 'archived' AND EXISTS (SELECT 1 FROM channel_links c WHERE c.project_id = p.id) "
            "ORDER BY p.id, e.name, r.name"
        ).fetchall()
        return [(int(pid), str(env), str(repo)) for pid, env, repo in rows]

    def linked_to(self, channel_id: str) -> list[Project]:
        rows = self.db.execute(
            "SELECT p.id FROM projects p JOIN channel_links c ON c.project_id = p.id "
            "WHERE c.channel_id = ? AND p.status != 'archived' ORDER BY p.name",
            (channel_id,),
        ).fetchall()
        return [self.by_id(r[0]) for r in rows]


@dataclass(frozen=True)
class DeclaredDeployment:
    """A deployment as the provisioner declares it (the console's, §2.8): which repositories go to
    which environment, at which revision, synchronised automatically or not."""

    name: str
    environment: str
    sources: tuple[tuple[str, str], ...]  # (repository, revision; "" for the repository's own)
    autosync: bool
