"""Webhook payloads (Push, Pipeline and Job Hook) and their delivery, shaped like GitLab's.

Payload keys match the examples of GitLab's ``webhook_events.md`` (the fixtures in
``/work/shared/fixtures``); headers match ``lib/gitlab/web_hooks.rb``. Deliveries go through one
queue per hook so a receiver sees a pipeline's events in order; like GitLab, a delivery is sent
once (never resent) and a hook failing four times in a row is disabled for a while
(:func:`record_outcome`). Every request is recorded in ``State.hook_deliveries``.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx

from services.emulators.gitlab_repo import Commit, now_iso
from services.emulators.gitlab_state import GITLAB_VERSION, Hook, Job, Pipeline, Project, User
from services.emulators.gitlab_views import avatar_url, duration

if TYPE_CHECKING:
    from services.emulators.gitlab_state import State

log = logging.getLogger(__name__)

VISIBILITY_LEVELS = {"private": 0, "internal": 10, "public": 20}
ZERO_SHA = "0" * 40
HOOK_RUNNER = {
    "id": 12,
    "description": "cpn-runner-kubernetes",
    "active": True,
    "runner_type": "instance_type",
    "is_shared": True,
    "tags": ["kubernetes", "cpn"],
}


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def hook_time(value: str | None) -> str | None:
    """Pipeline Hook timestamps: ``2016-08-12 15:23:28 UTC``."""
    return _parse(value).strftime("%Y-%m-%d %H:%M:%S UTC") if value else None


def iso_seconds(value: str | None) -> str | None:
    """The ``*_iso`` fields of Job Hooks: ``2021-02-23T02:41:37Z``."""
    return _parse(value).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


# --- payloads --------------------------------------------------------------------------------


def project_attrs(state: State, project: Project) -> dict[str, Any]:
    path = state.project_path(project)
    web_url = state.url(f"/{path}")
    host = state.url().split("://", 1)[-1].split(":")[0]
    return {
        "id": project.id,
        "name": project.name,
        "description": project.description,
        "web_url": web_url,
        "avatar_url": None,
        "git_ssh_url": f"git@{host}:{path}.git",
        "git_http_url": f"{web_url}.git",
        "namespace": state.namespaces[project.namespace_id].name,
        "visibility_level": VISIBILITY_LEVELS.get(project.visibility, 0),
        "path_with_namespace": path,
        "default_branch": project.repo.default_branch,
    }


def _user_attrs(state: State, user_id: int | None) -> dict[str, Any] | None:
    user = state.users.get(user_id) if user_id else None
    if user is None:
        return None
    return {
        "id": user.id,
        "name": user.name,
        "username": user.username,
        "avatar_url": avatar_url(user.email),
        "email": user.email,
    }


def _commit_attrs(state: State, project: Project, commit: Commit) -> dict[str, Any]:
    return {
        "id": commit.id,
        "message": commit.message,
        "title": commit.title,
        "timestamp": _parse(commit.created_at).strftime("%Y-%m-%dT%H:%M:%S+00:00"),
        "url": state.url(f"/{state.project_path(project)}/-/commit/{commit.id}"),
        "author": {"name": commit.author_name, "email": commit.author_email},
        "added": list(commit.added),
        "modified": list(commit.modified),
        "removed": list(commit.removed),
    }


def push_payload(
    state: State, project: Project, branch: str, before: str | None, commit: Commit, user: User
) -> dict[str, Any]:
    commits: list[Commit] = []
    for item in project.repo.history(commit.id):
        if item.id == before or len(commits) == 20:
            break
        commits.append(item)
    attrs = project_attrs(state, project)
    return {
        "object_kind": "push",
        "event_name": "push",
        "before": before or ZERO_SHA,
        "after": commit.id,
        "ref": f"refs/heads/{branch}",
        "ref_protected": branch == project.repo.default_branch,
        "checkout_sha": commit.id,
        "user_id": user.id,
        "user_name": user.name,
        "user_username": user.username,
        "user_email": user.email,
        "user_avatar": avatar_url(user.email),
        "project_id": project.id,
        "project": {
            **attrs,
            "homepage": attrs["web_url"],
            "url": attrs["git_ssh_url"],
            "ssh_url": attrs["git_ssh_url"],
            "http_url": attrs["git_http_url"],
        },
        "repository": {
            "name": project.name,
            "url": attrs["git_ssh_url"],
            "description": project.description,
            "homepage": attrs["web_url"],
            "git_http_url": attrs["git_http_url"],
            "git_ssh_url": attrs["git_ssh_url"],
            "visibility_level": attrs["visibility_level"],
        },
        "commits": [_commit_attrs(state, project, c) for c in reversed(commits)],
        "total_commits_count": len(commits),
    }


def _stages(state: State, pipeline: Pipeline) -> list[str]:
    stages: list[str] = []
    for job_id in pipeline.job_ids:
        stage = state.jobs[job_id].stage
        if stage not in stages:
            stages.append(stage)
    return stages


def _build_attrs(state: State, job: Job, pipeline: Pipeline) -> dict[str, Any]:
    size = sum(len(data) for data in job.artifacts.values())
    return {
        "id": job.id,
        "stage": job.stage,
        "name": job.name,
        "status": job.status,
        "created_at": hook_time(job.created_at),
        "started_at": hook_time(job.started_at),
        "finished_at": hook_time(job.finished_at),
        "duration": duration(job.started_at, job.finished_at),
        "queued_duration": duration(job.queued_at, job.started_at),
        "failure_reason": job.failure_reason,
        "when": "on_success",
        "manual": False,
        "allow_failure": False,
        "user": _user_attrs(state, job.user_id or pipeline.user_id),
        "runner": HOOK_RUNNER if job.started_at else None,
        "artifacts_file": {"filename": "artifacts.zip" if size else None, "size": size or None},
        "environment": None,
    }


def pipeline_payload(state: State, pipeline: Pipeline) -> dict[str, Any]:
    project = state.projects[pipeline.project_id]
    commit = project.repo.commits.get(pipeline.sha)
    path = state.project_path(project)
    pipeline_duration = duration(pipeline.started_at, pipeline.finished_at)
    return {
        "object_kind": "pipeline",
        "object_attributes": {
            "id": pipeline.id,
            "iid": pipeline.iid,
            "name": None,
            "ref": pipeline.ref,
            "tag": False,
            "sha": pipeline.sha,
            "before_sha": pipeline.before_sha,
            "source": pipeline.source,
            "status": pipeline.status,
            "stages": _stages(state, pipeline),
            "created_at": hook_time(pipeline.created_at),
            "finished_at": hook_time(pipeline.finished_at),
            "duration": int(pipeline_duration) if pipeline_duration is not None else None,
            "variables": [{"key": v["key"], "value": v["value"]} for v in pipeline.variables],
            "url": state.url(f"/{path}/-/pipelines/{pipeline.id}"),
        },
        "merge_request": None,
        "user": _user_attrs(state, pipeline.user_id),
        "project": project_attrs(state, project),
        "commit": _pipeline_commit(state, project, commit),
        "source_pipeline": None,
        "builds": [
            _build_attrs(state, state.jobs[job_id], pipeline)
            for job_id in reversed(pipeline.job_ids)
            if not state.jobs[job_id].retried
        ],
    }


def _pipeline_commit(state: State, project: Project, commit: Commit | None) -> dict[str, Any] | None:
    if commit is None:
        return None
    attrs = _commit_attrs(state, project, commit)
    return {key: attrs[key] for key in ("id", "message", "timestamp", "url", "author")}


def job_payload(state: State, job: Job) -> dict[str, Any]:
    pipeline = state.pipelines[job.pipeline_id]
    project = state.projects[job.project_id]
    commit = project.repo.commits.get(pipeline.sha)
    attrs = project_attrs(state, project)
    user = _user_attrs(state, job.user_id or pipeline.user_id)
    retries = sum(1 for other in state.jobs.values() if other.pipeline_id == job.pipeline_id and other.name == job.name)
    return {
        "object_kind": "build",
        "ref": pipeline.ref,
        "tag": False,
        "before_sha": pipeline.before_sha,
        "sha": pipeline.sha,
        "build_id": job.id,
        "build_name": job.name,
        "build_stage": job.stage,
        "build_status": job.status,
        "build_created_at": job.created_at,
        "build_created_at_iso": iso_seconds(job.created_at),
        "build_started_at": job.started_at,
        "build_started_at_iso": iso_seconds(job.started_at),
        "build_finished_at": job.finished_at,
        "build_finished_at_iso": iso_seconds(job.finished_at),
        "build_duration": duration(job.started_at, job.finished_at),
        "build_queued_duration": duration(job.queued_at, job.started_at or now_iso()) if job.queued_at else None,
        "build_allow_failure": False,
        "build_failure_reason": job.failure_reason,
        "retries_count": retries - 1,
        "pipeline_id": pipeline.id,
        "project_id": project.id,
        "project_name": state.full_name(state.namespaces[project.namespace_id]) + f" / {project.name}",
        "user": {key: user[key] for key in ("id", "name", "email", "avatar_url")} if user else None,
        "commit": {
            # GitLab puts the pipeline id here, not a sha (see the fixture's note).
            "id": pipeline.id,
            "name": None,
            "sha": pipeline.sha,
            "message": commit.message if commit else "",
            "author_name": commit.author_name if commit else "",
            "author_email": commit.author_email if commit else "",
            "status": pipeline.status,
            "duration": duration(pipeline.started_at, pipeline.finished_at),
            "started_at": pipeline.started_at,
            "started_at_iso": iso_seconds(pipeline.started_at),
            "finished_at": pipeline.finished_at,
            "finished_at_iso": iso_seconds(pipeline.finished_at),
        },
        "repository": {
            "name": project.name,
            "description": project.description,
            "homepage": attrs["web_url"],
            "git_ssh_url": attrs["git_ssh_url"],
            "git_http_url": attrs["git_http_url"],
            "visibility_level": attrs["visibility_level"],
        },
        "project": attrs,
        "runner": HOOK_RUNNER if job.started_at else None,
        "environment": None,
        "source_pipeline": None,
    }


# --- delivery --------------------------------------------------------------------------------


@dataclass
class Delivery:
    """One event for one hook: GitLab makes one WebHookService per hook, so one Idempotency-Key."""

    hook: Hook
    event: str
    payload: dict[str, Any]
    event_uuid: str
    idempotency_key: str = field(default_factory=lambda: str(uuid.uuid4()))

    def headers(self, state: State) -> dict[str, str]:
        """gitlabhq/gitlabhq:app/services/web_hook_service.rb ``build_headers``.

        ``X-Gitlab-Webhook-UUID`` is ``SecureRandom.uuid`` on every request; ``X-Gitlab-Event-UUID``
        is the recursion-detection UUID of the request that caused the event (lib/gitlab/web_hooks/
        recursion_detection.rb), shared by the hooks it triggers; ``Idempotency-Key`` is made once
        per hook and event (``generate_idempotency_key``).
        """
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"GitLab/{GITLAB_VERSION}",
            "Idempotency-Key": self.idempotency_key,
            "X-Gitlab-Event": self.event,
            "X-Gitlab-Webhook-UUID": str(uuid.uuid4()),
            "X-Gitlab-Instance": state.url(),
            "X-Gitlab-Event-UUID": self.event_uuid,
        }
        if self.hook.token:
            headers["X-Gitlab-Token"] = self.hook.token
        return headers


def record_outcome(state: State, hook: Hook, ok: bool, now: float) -> None:
    """WebHooks::AutoDisabling after a delivery: ``enable!`` on success, ``backoff!`` on failure.

    app/services/web_hooks/log_execution_service.rb: a 2xx/3xx answer is ``ok``, anything else
    (4xx, 5xx, timeout, refused connection) an ``error``. ``backoff!`` counts the failure and, past
    the 3rd in a row, disables the hook for INITIAL_BACKOFF × 2^(failures before this one − 3),
    capped at MAX_BACKOFF; the 40th failure disables it for good.
    """
    with state.lock:
        if ok:
            hook.recent_failures, hook.disabled_until = 0, None
            return
        if not hook.executable(now):
            return
        before = hook.recent_failures
        hook.recent_failures = min(before + 1, 40)
        if hook.recent_failures > 3:
            timings = state.timings
            backoff = timings.hook_initial_backoff_seconds * 2.0 ** (before - 3)
            backoff = min(max(backoff, timings.hook_initial_backoff_seconds), timings.hook_max_backoff_seconds)
            hook.disabled_until = now + backoff


def hooks_for(state: State, project: Project, event_attr: str, branch: str | None = None) -> list[Hook]:
    """Project hooks and hooks of every group above the project that subscribed to the event."""
    group_ids = {ns.id for ns in state.ancestors(state.namespaces[project.namespace_id]) if ns.kind == "group"}
    found = []
    for hook in state.hooks.values():
        if hook.project_id != project.id and hook.group_id not in group_ids:
            continue
        if not hook.events.get(event_attr) or not hook.executable(time.time()):
            continue  # WebHook.executable scope: a disabled hook is not even tried
        if branch and hook.push_events_branch_filter:
            if not fnmatch.fnmatchcase(branch, hook.push_events_branch_filter):
                continue
        found.append(hook)
    return sorted(found, key=lambda h: h.id)


class Dispatcher:
    """One queue and worker per hook, on the server's event loop.

    Each receiver gets its events in order, and a slow or dead receiver (retries, timeouts) does
    not hold back the others, as with GitLab's background delivery.
    """

    def __init__(self, state: State) -> None:
        self.state = state
        self.queues: dict[int, asyncio.Queue[Delivery]] = {}
        self.workers: dict[int, asyncio.Task[None]] = {}
        self.client: httpx.AsyncClient | None = None
        self.in_flight = 0  # deliveries submitted and not finished yet: tests wait for 0

    def submit(self, event: str, hooks: list[Hook], payload: dict[str, Any]) -> None:
        event_uuid = str(uuid.uuid4())
        for hook in hooks:
            queue = self.queues.get(hook.id)
            if queue is None:
                queue = self.queues[hook.id] = asyncio.Queue()
                self.workers[hook.id] = asyncio.get_running_loop().create_task(self._run(queue))
            self.in_flight += 1
            queue.put_nowait(Delivery(hook, event, payload, event_uuid))

    async def shutdown(self) -> None:
        for worker in self.workers.values():
            worker.cancel()
        if self.client is not None:
            await self.client.aclose()

    async def _run(self, queue: asyncio.Queue[Delivery]) -> None:
        if self.client is None:
            # trust_env=False: loopback receivers must not go through a configured proxy.
            self.client = httpx.AsyncClient(trust_env=False)
        while True:
            delivery = await queue.get()
            try:
                await self._deliver(self.client, delivery)
            except Exception:  # a broken receiver must never stop its queue
                log.exception("webhook delivery crashed")
            finally:
                self.in_flight -= 1
                queue.task_done()

    async def _deliver(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        """One request, never resent (WebHookWorker has ``sidekiq_options retry: false``)."""
        if not delivery.hook.executable(time.time()):
            return  # web_hook_service.rb execute: "Hook disabled", nothing sent, nothing logged
        body = json.dumps(delivery.payload).encode()
        headers = delivery.headers(self.state)
        status: int | None = None
        error = ""
        try:
            answer = await client.post(
                delivery.hook.url, content=body, headers=headers, timeout=self.state.timings.hook_timeout_seconds
            )
            status = answer.status_code
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        self._record(delivery, headers, status, error)
        record_outcome(self.state, delivery.hook, status is not None and status < 400, time.time())

    def _record(self, delivery: Delivery, headers: dict[str, str], status: int | None, error: str) -> None:
        shown = {k: ("[REDACTED]" if k == "X-Gitlab-Token" else v) for k, v in headers.items()}
        with self.state.lock:
            self.state.hook_deliveries.append(
                {
                    "hook_id": delivery.hook.id,
                    "scope": "project" if delivery.hook.project_id is not None else "group",
                    "url": delivery.hook.url,
                    "event": delivery.event,
                    "status": status,
                    "error": error,
                    "headers": shown,
                    "payload": delivery.payload,
                    "at": now_iso(),
                }
            )
