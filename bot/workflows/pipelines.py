"""Pipelines as the bot follows them: GitLab's webhooks (and its API, when a webhook is lost)
folded into one state per pipeline, whatever order the events arrive in.

A job or a pipeline never goes back from a final status to a running one because a late event
says so: statuses only move forward (created → pending → running → final), and between two final
statuses the one that finished last wins. So duplicated, reordered or replayed deliveries all end
in the same state, which is what the card shows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from bot.model import Project
from bot.store import Store, now
from bot.workflows.naming import MIRROR_REPO

if TYPE_CHECKING:
    from bot.config import GitLabConfig
    from services.gitlab import Job as ApiJob
    from services.gitlab import Pipeline as ApiPipeline

# GitLab's statuses (gitlabhq/gitlabhq:app/models/concerns/ci/has_status.rb, AVAILABLE_STATUSES):
# only COMPLETED_STATUSES are final. ``manual`` and ``scheduled`` are BLOCKED_STATUS: a pipeline
# waits there for someone (or a timer) and then runs again, so they are not final.
FINAL = frozenset({"success", "failed", "canceled", "skipped"})
RANK = {
    "created": 0,
    "waiting_for_resource": 1,
    "preparing": 1,
    "pending": 2,
    "running": 3,
    "waiting_for_callback": 3,  # a job waits for an external system's answer, still executing
    # Blocked after running (a manual or delayed stage): same rank, so that a play moves it on.
    "manual": 3,
    "scheduled": 3,
    "canceling": 4,  # EXECUTING_STATUSES: cancelled jobs run their after_script, then ``canceled``
}
# GitLab's order when several jobs of a stage differ (has_status.rb ORDERED_STATUSES).
ORDERED = (
    "failed",
    "preparing",
    "pending",
    "running",
    "waiting_for_callback",
    "waiting_for_resource",
    "manual",
    "scheduled",
    "canceling",
    "canceled",
    "success",
    "skipped",
    "created",
)


def rank(status: str) -> int:
    return 5 if status in FINAL else RANK.get(status, 0)


def newer(old_status: str, old_finished: str, new_status: str, new_finished: str) -> bool:
    """Whether a status seen now should replace the one the bot holds."""
    if rank(new_status) != rank(old_status):
        return rank(new_status) > rank(old_status)
    if new_status in FINAL and old_status in FINAL:
        return (new_finished or "") >= (old_finished or "")
    return new_status != old_status and rank(new_status) >= rank(old_status)


@dataclass
class JobState:
    id: int
    name: str
    stage: str
    status: str
    url: str = ""
    failure_reason: str = ""
    finished_at: str = ""
    allow_failure: bool = False


@dataclass
class PipelineState:
    key: str
    project_id: int
    repo: str
    gitlab_project_id: int
    pipeline_id: int
    ref: str = ""
    sha: str = ""
    status: str = "created"
    source: str = ""
    title: str = ""
    author: str = ""
    url: str = ""
    stages: list[str] = field(default_factory=list)
    jobs: dict[int, JobState] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    triggered_by: str = ""
    parent_key: str = ""
    child_key: str = ""
    failure_reported: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0
    finished_at: float = 0.0
    duration: float = 0.0
    default_branch: str = "main"

    @property
    def final(self) -> bool:
        return self.status in FINAL

    @property
    def is_sync(self) -> bool:
        return self.repo == MIRROR_REPO

    @property
    def synced_repo(self) -> str:
        return self.variables.get("PROJECT_NAME", "")

    @property
    def failed_jobs(self) -> list[JobState]:
        return [j for j in self.jobs.values() if j.status == "failed" and not j.allow_failure]

    def stage_status(self, stage: str) -> str:
        statuses = [j.status for j in self.jobs.values() if j.stage == stage]
        if not statuses:
            return "created"
        # Optional manual jobs do not hold a stage back (has_status.rb IGNORED_STATUSES).
        if all(s in ("success", "skipped", "manual") for s in statuses) and "success" in statuses:
            return "success"
        if all(s == "skipped" for s in statuses):
            return "skipped"
        if all(s in ("created", "skipped") for s in statuses):
            return "created"  # lib/gitlab/ci/status/composite.rb: only created and skipped
        return next((status for status in ORDERED if status in statuses), "created")

    def ordered_stages(self) -> list[str]:
        known = list(self.stages)
        for job in sorted(self.jobs.values(), key=lambda j: j.id):
            if job.stage and job.stage not in known:
                known.append(job.stage)
        return known


def pipeline_key(gitlab_project_id: int, pipeline_id: int) -> str:
    return f"{gitlab_project_id}:{pipeline_id}"


def split_path(root: str, path_with_namespace: str) -> tuple[str, str] | None:
    """``(slug, repo)`` of ``<root>/<slug>/<repo>``, or None for a path outside the platform's root."""
    prefix = root.rstrip("/") + "/"
    if not path_with_namespace.startswith(prefix):
        return None
    rest = path_with_namespace[len(prefix) :].split("/")
    return (rest[0], rest[1]) if len(rest) == 2 else None


def web_base(config: GitLabConfig | None) -> str:
    """GitLab's web root as configured (``ui_url``, else ``url``); "" without GitLab."""
    if config is None:
        return ""
    return str(config.ui_url or config.url).rstrip("/")


def gitlab_page(base: str, path_with_namespace: str) -> str:
    """A project's page on the configured GitLab; "" without a base or a path.

    Links in posts are rebuilt from the configured base, never taken from a webhook: a body may
    carry ``javascript:`` or another host as ``url``/``web_url``. The path is percent-encoded so
    that it cannot end the markdown link or leave the base.
    """
    path = path_with_namespace.strip("/")
    if not base or not path:
        return ""
    return f"{base}/{quote(path, safe='/')}"


def _event_path(payload: dict[str, Any]) -> str:
    """The repository path as bot.notifications locates the event (GitLab's, not a URL)."""
    project = payload.get("project") or {}
    path = project.get("path_with_namespace") or payload.get("project_name") or ""
    return str(path).replace(" / ", "/")


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0][:200] if (text or "").strip() else ""


_COLUMNS = (
    "key",
    "project_id",
    "repo",
    "gitlab_project_id",
    "pipeline_id",
    "ref",
    "sha",
    "status",
    "source",
    "title",
    "author",
    "url",
    "stages",
    "jobs",
    "variables",
    "triggered_by",
    "parent_key",
    "child_key",
    "failure_reported",
    "created_at",
    "updated_at",
    "finished_at",
    "duration",
    "default_branch",
)
_UPSERT = (
    f"INSERT INTO pipelines ({', '.join(_COLUMNS)}) VALUES ({', '.join(':' + c for c in _COLUMNS)}) "  # noqa: S608
    f"ON CONFLICT(key) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in _COLUMNS if c != 'key')}"
)


def signature(state: PipelineState) -> tuple[Any, ...]:
    """What a card shows of a pipeline: a change here is worth an edit (cheaper than asdict)."""
    return (
        state.status,
        state.ref,
        state.sha,
        state.title,
        state.author,
        state.url,
        state.duration,
        tuple(state.stages),
        tuple((j.id, j.status, j.name, j.stage) for j in state.jobs.values()),
        tuple(state.variables.items()),
        state.triggered_by,
        state.parent_key,
        state.child_key,
    )


class PipelineBook:
    """Pipelines' states in the store."""

    def __init__(self, store: Store, web: str = "") -> None:
        """``web``: GitLab's web root (:func:`web_base`), from which every link is rebuilt."""
        self.store = store
        self.table = store.db.table("pipelines")
        self.web = web

    # -- reading and writing --------------------------------------------------------------------

    def get(self, key: str) -> PipelineState | None:
        rows = self.store.rows("SELECT * FROM pipelines WHERE key = ?", (key,))
        return self._from_row(rows[0]) if rows else None

    def _from_row(self, row: dict[str, Any]) -> PipelineState:
        jobs = {int(k): JobState(**v) for k, v in json.loads(row["jobs"] or "{}").items()}
        return PipelineState(
            key=row["key"],
            project_id=row["project_id"],
            repo=row["repo"],
            gitlab_project_id=row["gitlab_project_id"],
            pipeline_id=row["pipeline_id"],
            ref=row["ref"] or "",
            sha=row["sha"] or "",
            status=row["status"] or "created",
            source=row["source"] or "",
            title=row["title"] or "",
            author=row["author"] or "",
            url=row["url"] or "",
            stages=json.loads(row["stages"] or "[]"),
            jobs=jobs,
            variables=json.loads(row["variables"] or "{}"),
            triggered_by=row["triggered_by"] or "",
            parent_key=row["parent_key"] or "",
            child_key=row["child_key"] or "",
            failure_reported=bool(row["failure_reported"]),
            created_at=row["created_at"] or 0.0,
            updated_at=row["updated_at"] or 0.0,
            finished_at=row["finished_at"] or 0.0,
            duration=row["duration"] or 0.0,
            default_branch=row.get("default_branch") or "main",
        )

    def save(self, state: PipelineState) -> None:
        """One statement, no introspection: this runs for every event of every pipeline."""
        state.updated_at = now()
        row = {name: getattr(state, name) for name in _COLUMNS}
        row["jobs"] = json.dumps({str(k): v.__dict__ for k, v in state.jobs.items()})
        row["stages"] = json.dumps(state.stages)
        row["variables"] = json.dumps(state.variables)
        row["failure_reported"] = int(state.failure_reported)
        self.store.db.execute(_UPSERT, row)

    def postpone(self, key: str) -> None:
        """Send a pipeline to the back of the polling queue (:meth:`unfinished` orders by ``updated_at``),
        so one that keeps failing does not hold the others back."""
        self.store.db.execute("UPDATE pipelines SET updated_at = ? WHERE key = ?", (now(), key))

    def forget(self, key: str) -> None:
        """Drop a pipeline GitLab no longer knows (its project or the pipeline was deleted)."""
        self.store.db.execute("DELETE FROM pipelines WHERE key = ?", (key,))

    def _load_or_new(self, project: Project, repo: str, gitlab_project_id: int, pipeline_id: int) -> PipelineState:
        key = pipeline_key(gitlab_project_id, pipeline_id)
        return self.get(key) or PipelineState(
            key=key,
            project_id=project.id,
            repo=repo,
            gitlab_project_id=gitlab_project_id,
            pipeline_id=pipeline_id,
            created_at=now(),
        )

    # -- folding events in ----------------------------------------------------------------------

    def apply_pipeline_hook(self, project: Project, repo: str, payload: dict[str, Any]) -> tuple[PipelineState, bool]:
        attrs = payload.get("object_attributes") or {}
        gl_project = payload.get("project") or {}
        state = self._load_or_new(project, repo, int(gl_project.get("id") or 0), int(attrs.get("id") or 0))
        before = signature(state)
        state.ref = attrs.get("ref") or state.ref
        state.sha = attrs.get("sha") or state.sha
        state.source = attrs.get("source") or state.source
        web = gitlab_page(self.web, _event_path(payload))
        if web:
            state.url = f"{web}/-/pipelines/{state.pipeline_id}"
        state.stages = list(attrs.get("stages") or state.stages)
        state.default_branch = gl_project.get("default_branch") or state.default_branch
        commit = payload.get("commit") or {}
        state.title = _first_line(commit.get("title") or commit.get("message")) or state.title
        state.author = (
            (commit.get("author") or {}).get("name") or (payload.get("user") or {}).get("name") or state.author
        )
        state.variables.update(
            {
                v["key"]: str(v.get("value", ""))
                for v in attrs.get("variables") or []
                if isinstance(v, dict) and v.get("key") in ("PROJECT_NAME", "GIT_BRANCH_DEPLOY", "SYNC_ALL")
            }
        )
        status = attrs.get("status") or state.status
        if newer(state.status, "", status, attrs.get("finished_at") or ""):
            state.status = status
            if attrs.get("duration") is not None:
                state.duration = float(attrs["duration"])
            if status in FINAL:
                state.finished_at = now()
        for build in payload.get("builds") or []:
            job_id = int(build.get("id") or 0)
            self._merge_job(
                state,
                JobState(
                    id=job_id,
                    name=build.get("name") or "",
                    stage=build.get("stage") or "",
                    status=build.get("status") or "created",
                    # GitLab's job page; the Job Hook says the same, but it may have been superseded.
                    url=f"{web}/-/jobs/{job_id}" if web and job_id else "",
                    failure_reason=build.get("failure_reason") or "",
                    finished_at=build.get("finished_at") or "",
                    allow_failure=bool(build.get("allow_failure")),
                ),
            )
        changed = signature(state) != before
        self.save(state)
        return state, changed

    def apply_job_hook(self, project: Project, repo: str, payload: dict[str, Any]) -> tuple[PipelineState, bool]:
        state = self._load_or_new(
            project, repo, int(payload.get("project_id") or 0), int(payload.get("pipeline_id") or 0)
        )
        before = signature(state)
        state.ref = state.ref or payload.get("ref") or ""
        state.sha = state.sha or payload.get("sha") or ""
        commit = payload.get("commit") or {}
        state.title = state.title or _first_line(commit.get("message"))
        state.author = state.author or commit.get("author_name") or ""
        web = gitlab_page(self.web, _event_path(payload))
        job_id = int(payload.get("build_id") or 0)
        self._merge_job(
            state,
            JobState(
                id=job_id,
                name=payload.get("build_name") or "",
                stage=payload.get("build_stage") or "",
                status=payload.get("build_status") or "created",
                url=f"{web}/-/jobs/{job_id}" if web and job_id else "",
                failure_reason=payload.get("build_failure_reason") or ""
                if payload.get("build_status") == "failed"
                else "",
                finished_at=payload.get("build_finished_at") or "",
                allow_failure=bool(payload.get("build_allow_failure")),
            ),
        )
        if not state.url and web:
            state.url = f"{web}/-/pipelines/{state.pipeline_id}"
        if rank(state.status) < rank("running") and any(j.status == "running" for j in state.jobs.values()):
            state.status = "running"
        changed = signature(state) != before
        self.save(state)
        return state, changed

    def apply_api(
        self, project: Project, repo: str, pipeline: ApiPipeline, jobs: list[ApiJob]
    ) -> tuple[PipelineState, bool]:
        """What the API says of a pipeline (the polling fallback)."""
        state = self._load_or_new(project, repo, pipeline.project_id, pipeline.id)
        before = signature(state)
        state.ref = state.ref or pipeline.ref
        state.sha = state.sha or pipeline.sha
        state.source = state.source or pipeline.source
        state.url = state.url or pipeline.web_url
        for job in jobs:
            self._merge_job(
                state, JobState(job.id, job.name, job.stage, job.status, job.web_url, job.failure_reason or "")
            )
        if newer(state.status, "", pipeline.status, ""):
            state.status = pipeline.status
            if pipeline.status in FINAL:
                state.finished_at = now()
        changed = signature(state) != before
        self.save(state)
        return state, changed

    @staticmethod
    def _merge_job(state: PipelineState, job: JobState) -> None:
        if not job.id:
            return
        old = state.jobs.get(job.id)
        if old is None:
            state.jobs[job.id] = job
            return
        old.name = old.name or job.name
        old.stage = old.stage or job.stage
        old.url = old.url or job.url
        if newer(old.status, old.finished_at, job.status, job.finished_at):
            old.status = job.status
            old.finished_at = job.finished_at or old.finished_at
            old.failure_reason = job.failure_reason or old.failure_reason
            old.allow_failure = job.allow_failure

    def mark_dirty(self, key: str) -> None:
        self.store.db.execute("UPDATE pipelines SET dirty = 1 WHERE key = ?", (key,))

    def dirty_keys(self, limit: int = 500) -> list[str]:
        rows = self.store.db.execute("SELECT key FROM pipelines WHERE dirty = 1 LIMIT ?", (limit,)).fetchall()
        return [r[0] for r in rows]

    def clean(self, key: str) -> None:
        self.store.db.execute("UPDATE pipelines SET dirty = 0 WHERE key = ?", (key,))

    # -- syncs and the builds they cause ---------------------------------------------------------

    def expect_build(self, project_id: int, repo: str, sync_key: str) -> None:
        """The next build pipeline of ``repo`` is the one this sync causes."""
        self.store.db.table("pending_syncs").upsert(
            {"project_id": project_id, "repo": repo, "sync_key": sync_key, "requested_at": now()},
            pk=("project_id", "repo"),
        )

    def claim_build(self, state: PipelineState, window: float = 900.0) -> PipelineState | None:
        """The sync pipeline that caused this build pipeline, if any (claimed once)."""
        if state.is_sync or state.parent_key:
            return None
        row = self.store.db.execute(
            "SELECT sync_key, requested_at FROM pending_syncs WHERE project_id = ? AND repo = ?",
            (state.project_id, state.repo),
        ).fetchone()
        if row is None or now() - row[1] > window:
            return None
        self.store.db.execute(
            "DELETE FROM pending_syncs WHERE project_id = ? AND repo = ?", (state.project_id, state.repo)
        )
        sync = self.get(row[0])
        if sync is None:
            return None
        state.parent_key = sync.key
        sync.child_key = state.key
        self.save(state)
        self.save(sync)
        return sync

    def unfinished(self, older_than: float, limit: int = 50) -> list[PipelineState]:
        rows = self.table.rows_where(
            f"status NOT IN ({', '.join('?' * len(FINAL))}) AND updated_at < ?",
            [*sorted(FINAL), now() - older_than],
            order_by="updated_at",
            limit=limit,
        )
        return [self._from_row(r) for r in rows]

    def recent(self, project_id: int, repo: str, limit: int = 5) -> list[PipelineState]:
        rows = self.table.rows_where(
            "project_id = ? AND repo = ?", [project_id, repo], order_by="pipeline_id desc", limit=limit
        )
        return [self._from_row(r) for r in rows]
