"""From GitLab's events to the team's channels: pipeline cards, sync threads, failure replies.

Each event is folded into the pipeline's state (:mod:`bot.workflows.pipelines`), then each channel
that wants it (:mod:`bot.workflows.routing`) gets the card created once and edited afterwards. The
sync pipeline of ``mirror`` and the build it causes share one thread. A failed pipeline gets one
reply with the end of each failed job's log, masked. A scheduled job asks the GitLab API about
pipelines whose events stopped coming, so a lost webhook still ends in the right final card.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.inbox import InboundEvent, after_batch, inbox_handler
from bot.logs import log, redact
from bot.model import Project
from bot.operations import Operation, operation
from bot.outbox import Post
from bot.render import pipelines as render
from bot.scheduler import every
from bot.workflows import outcomes
from bot.workflows.naming import MIRROR_REPO, Names
from bot.workflows.pipelines import PipelineBook, PipelineState, gitlab_page, split_path, web_base
from bot.workflows.routing import Subscriptions
from services.errors import Failure, ServiceError
from services.gitlab import TraceTail

if TYPE_CHECKING:
    from bot.runtime import Bot

logger = logging.getLogger("cpn.notifications")

KNOWN_EVENTS = ("Pipeline Hook", "Job Hook", "Push Hook", "Tag Push Hook", "Merge Request Hook")


def card_key(state: PipelineState, channel_id: str) -> str:
    return f"pipeline:{state.key}:{channel_id}"


def _locate(bot: Bot, path: str) -> tuple[Project, str] | None:
    parts = split_path(bot.config.platform.root_group, path)
    if parts is None:
        return None
    project = bot.projects.get(parts[0])  # slug == name on this platform
    return (project, parts[1]) if project is not None else None


@inbox_handler("gitlab")
async def on_gitlab_event(event: InboundEvent, bot: Bot) -> None:
    if event.event_type not in KNOWN_EVENTS:
        bot.metrics.inc("cpn_events_ignored_total", source="gitlab", reason="unknown_event")
        return
    payload = event.json()
    if event.event_type == "Job Hook":
        path = (payload.get("project") or {}).get("path_with_namespace") or payload.get("project_name") or ""
    else:
        path = (payload.get("project") or {}).get("path_with_namespace") or ""
    found = _locate(bot, str(path).replace(" / ", "/"))
    if found is None:
        bot.metrics.inc("cpn_events_ignored_total", source="gitlab", reason="unknown_project")
        return
    project, repo = found
    book = PipelineBook(bot.store, web_base(bot.config.gitlab))
    if event.event_type == "Pipeline Hook":
        state, changed = book.apply_pipeline_hook(project, repo, payload)
        if changed:
            book.mark_dirty(state.key)
    elif event.event_type == "Job Hook":
        state, changed = book.apply_job_hook(project, repo, payload)
        if changed:
            book.mark_dirty(state.key)
        if changed and _finished_scan_job(bot, payload):
            bot.operations.submit(
                "scan.fetch",
                {
                    "project": project.name,
                    "repo": repo,
                    "gitlab_project_id": state.gitlab_project_id,
                    "job_id": int(payload.get("build_id") or 0),
                    "ref": state.ref,
                    "sha": state.sha,
                },
            )
    else:
        announce_push_or_mr(bot, project, repo, event.event_type, payload)


EDIT_INTERVAL = 1.0  # a running pipeline's card is edited at most this often; final states at once
_last_edit: dict[str, float] = {}


CARDS_PER_TRANSACTION = 32


@after_batch
async def refresh_cards(bot: Bot) -> None:
    """One card refresh per pipeline for all the events of a batch (a pipeline sends many)."""
    book = PipelineBook(bot.store)
    clock = time.monotonic()
    due: list[tuple[str, PipelineState | None]] = []
    for key in book.dirty_keys():
        state = book.get(key)
        if state is not None and not state.final and clock - _last_edit.get(key, 0.0) < EDIT_INTERVAL:
            continue  # stays dirty: a later batch, or the idle tick, edits it
        _last_edit[key] = clock
        due.append((key, state))
    if len(_last_edit) > 10_000:
        _last_edit.clear()
    for start in range(0, len(due), CARDS_PER_TRANSACTION):
        with bot.store.transaction():  # one commit for several cards, each queued with its "clean"
            for key, state in due[start : start + CARDS_PER_TRANSACTION]:
                project = bot.projects.by_id(state.project_id) if state is not None else None
                if state is not None and project is not None and project.status != "archived":
                    await publish(bot, project, state)
                book.clean(key)
        await asyncio.sleep(0)


def _finished_scan_job(bot: Bot, payload: dict[str, Any]) -> bool:
    from bot.scans import is_scan_job

    return payload.get("build_status") in ("success", "failed") and is_scan_job(bot, str(payload.get("build_name")))


async def publish(bot: Bot, project: Project, state: PipelineState) -> None:
    """Create or edit the pipeline's card in every channel that wants it; tie builds to syncs."""
    book = PipelineBook(bot.store)
    if state.is_sync and state.synced_repo and not state.child_key:
        book.expect_build(project.id, state.synced_repo, state.key)
    parent = book.claim_build(state) if not state.is_sync else None
    if parent is None and state.parent_key:
        parent = book.get(state.parent_key)
    subscriptions = Subscriptions(bot.store)
    kind = "sync" if state.is_sync else "pipeline"
    failure = state.status in ("failed", "canceled")
    existing = dict(
        bot.store.db.execute(
            "SELECT channel_id, post_key FROM pipeline_posts WHERE pipeline_key = ?", (state.key,)
        ).fetchall()
    )
    parent_posts: dict[str, str] = {}
    if parent is not None:
        parent_posts = dict(
            bot.store.db.execute(
                "SELECT channel_id, post_key FROM pipeline_posts WHERE pipeline_key = ?", (parent.key,)
            ).fetchall()
        )
    wanted = set(subscriptions.targets(project, kind, state.ref, state.default_branch, failure))
    channels = set(existing) | wanted | set(parent_posts)
    card = render.pipeline_card(state, project.name, bot.tr, thread_results(bot, state))
    for channel_id in channels:
        post_key = existing.get(channel_id) or card_key(state, channel_id)
        root_key = parent_posts.get(channel_id, "")
        if channel_id not in existing:
            bot.store.db.execute(
                "INSERT INTO pipeline_posts (pipeline_key, channel_id, post_key, root_key) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (pipeline_key, channel_id) DO UPDATE SET post_key = excluded.post_key, "
                "root_key = excluded.root_key",
                (state.key, channel_id, post_key, root_key),
            )
            if parent is not None and root_key:
                bot.outbox.enqueue(channel_id, Post(render.build_started(parent, state, bot.tr)), root_key=root_key)
        else:
            root_key = bot.store.db.execute(
                "SELECT root_key FROM pipeline_posts WHERE pipeline_key = ? AND channel_id = ?",
                (state.key, channel_id),
            ).fetchone()[0]
        bot.outbox.enqueue(channel_id, Post("", (card,)), post_key=post_key, root_key=root_key)
    bot.metrics.inc("cpn_pipeline_updates_total", kind=kind)
    if parent is not None and (state.final or any(c not in existing for c in channels)):
        # The sync's card tells how its build went: "running" from its first card, then its end.
        refresh_card(bot, project, parent)
    if state.final and state.failed_jobs and not state.failure_reported and channels:
        state.failure_reported = True
        book.save(state)
        bot.operations.submit("pipeline.failure", {"key": state.key, "project_name": project.name})


def _pipeline_result(state: PipelineState) -> outcomes.Result:
    outcome = outcomes.pipeline_outcome(state.status)
    jobs = tuple(j.name for j in state.failed_jobs) if outcome == "failed" else ()  # named once it has failed
    return outcomes.Result("sync" if state.is_sync else "build", outcome, jobs)


def thread_results(bot: Bot, state: PipelineState) -> list[outcomes.Result]:
    """The card's own result, then, for a top-level card, those of its thread (build, gate, scan).

    A card inside a sync's thread tells only its own; the quality gate and the scan of a commit
    are the build's, looked up by its repository and commit as :func:`bot.results.pipeline_threads`
    does to post them in that thread.
    """
    own = _pipeline_result(state)
    if state.parent_key:
        return [own]
    results = [own]
    build: PipelineState | None = state
    if state.is_sync:
        build = PipelineBook(bot.store).get(state.child_key) if state.child_key else None
        if build is not None:
            results.append(_pipeline_result(build))
    if build is None or not build.sha:
        return results
    gate = bot.store.db.execute(
        "SELECT status FROM quality WHERE project_id = ? AND repo = ? AND revision = ? ORDER BY id DESC LIMIT 1",
        (build.project_id, build.repo, build.sha),
    ).fetchone()
    if gate is not None:
        results.append(outcomes.Result("quality", outcomes.gate_outcome(gate[0])))
    # One verdict per scanned image or file of the commit: its latest.
    scans = bot.store.db.execute(
        "SELECT summary FROM scans WHERE id IN (SELECT MAX(id) FROM scans WHERE project_id = ? AND repo = ? "
        "AND sha = ? GROUP BY subject)",
        (build.project_id, build.repo, build.sha),
    ).fetchall()
    for (summary,) in scans:
        results.append(outcomes.Result("scan", outcomes.scan_outcome(str(json.loads(summary).get("verdict")))))
    return results


def refresh_card(bot: Bot, project: Project, state: PipelineState) -> None:
    """Edit the card of ``state`` where it was posted (never a new post): something in its thread changed."""
    posts = bot.store.db.execute(
        "SELECT channel_id, post_key, root_key FROM pipeline_posts WHERE pipeline_key = ?", (state.key,)
    ).fetchall()
    if not posts:
        return
    card = render.pipeline_card(state, project.name, bot.tr, thread_results(bot, state))
    for channel_id, post_key, root_key in posts:
        bot.outbox.enqueue(channel_id, Post("", (card,)), post_key=post_key, root_key=root_key)


def refresh_roots(bot: Bot, project: Project, repo: str, sha: str) -> None:
    """A quality gate or a scan of ``repo`` at ``sha`` arrived: edit the top-level cards of its threads."""
    if not sha:
        return
    book = PipelineBook(bot.store)
    rows = bot.store.db.execute(
        "SELECT key, parent_key FROM pipelines WHERE project_id = ? AND repo = ? AND sha = ?", (project.id, repo, sha)
    ).fetchall()
    for key, parent_key in rows:
        root = book.get(parent_key or key)
        if root is not None:
            refresh_card(bot, project, root)


@operation("pipeline.failure")
async def report_failure(op: Operation, bot: Bot) -> dict[str, Any]:
    """Reply in each card's thread with the end of each failed job's log, secrets masked."""
    book = PipelineBook(bot.store)
    state = book.get(op.params["key"])
    gitlab = bot.platform.gitlab
    if state is None or gitlab is None:
        return {"status": "gone"}
    replies = []
    for job in state.failed_jobs:
        try:
            tail = await gitlab.job_trace_tail(state.gitlab_project_id, job.id, lines=render.TRACE_LINES)
        except ServiceError:
            tail = TraceTail("", 0)
        replies.append(render.failure_reply(job, redact(tail.text), bot.tr, skipped=tail.skipped))
    posts = bot.store.db.execute(
        "SELECT channel_id, post_key, root_key FROM pipeline_posts WHERE pipeline_key = ?", (state.key,)
    ).fetchall()
    for channel_id, post_key, root_key in posts:
        for reply in replies:
            # A build card already sits in its sync's thread: its failure goes in that thread too.
            bot.outbox.enqueue(channel_id, Post(reply), root_key=root_key or post_key)
    return {"jobs": len(replies)}


def announce_push_or_mr(bot: Bot, project: Project, repo: str, event_type: str, payload: dict[str, Any]) -> None:
    """Pushes and merge requests: one line, only where a subscription asked for them."""
    if repo == MIRROR_REPO:
        return
    subscriptions = Subscriptions(bot.store)
    if event_type == "Merge Request Hook":
        target = str((payload.get("object_attributes") or {}).get("target_branch") or "")
        channels = subscriptions.targets(project, "mr", target, "main", failure=True)
        path = f"{bot.config.platform.root_group.rstrip('/')}/{project.name}/{repo}"
        web = gitlab_page(web_base(bot.config.gitlab), path)
        text = render.merge_request_line(payload, project.name, repo, bot.tr, web)
    else:
        ref = str(payload.get("ref", "")).removeprefix("refs/heads/").removeprefix("refs/tags/")
        channels = subscriptions.targets(project, "push", ref, "main", failure=True)
        text = render.push_line(payload, project.name, repo, bot.tr)
    for channel_id in channels:
        bot.outbox.enqueue(channel_id, Post(text))


async def start_sync(
    bot: Bot,
    project: Project,
    repo: str,
    branch: str | None,
    all_branches: bool,
    triggered_by: str,
    user_id: str = "",
    first: bool = False,
) -> PipelineState:
    """Trigger the ``mirror`` pipeline for ``repo`` (through ``bot.control``; ``first``: the one a
    new repository gets) and put its card in the project's channels."""
    control = bot.control
    pipeline = await (
        control.first_sync(project, repo, user_id)
        if first
        else control.trigger_sync(project, repo, branch, all_branches, user_id)
    )
    book = PipelineBook(bot.store)
    key = f"{pipeline.project_id}:{pipeline.id}"
    state = book.get(key) or PipelineState(
        key=key,
        project_id=project.id,
        repo=MIRROR_REPO,
        gitlab_project_id=pipeline.project_id,
        pipeline_id=pipeline.id,
        ref=pipeline.ref,
        sha=pipeline.sha,
        status=pipeline.status,
        source=pipeline.source,
        url=pipeline.web_url,
    )
    state.triggered_by = triggered_by
    state.variables.update(
        {"PROJECT_NAME": repo, "SYNC_ALL": "true" if all_branches else "false", "GIT_BRANCH_DEPLOY": branch or ""}
    )
    book.save(state)
    await publish(bot, project, state)
    return state


# -- the polling fallback -------------------------------------------------------------------------


@every(60.0, "gitlab.poll")
async def poll_pipelines(bot: Bot) -> None:
    """Ask GitLab about pipelines whose webhooks stopped coming, and about recent ones never seen."""
    gitlab = bot.platform.gitlab
    if gitlab is None:
        return
    book = PipelineBook(bot.store)
    stale_after = bot.config.gitlab.poll_stale_seconds if bot.config.gitlab else 60.0
    for state in book.unfinished(older_than=stale_after):
        project = bot.projects.by_id(state.project_id)
        if project.status == "archived":
            continue
        try:
            pipeline = await gitlab.pipeline(state.gitlab_project_id, state.pipeline_id)
            jobs = await gitlab.pipeline_jobs(state.gitlab_project_id, state.pipeline_id)
        except ServiceError as exc:
            # A deleted pipeline or project is a 404 for ever (gitlab-org/gitlab:lib/api/ci/jobs.rb finds it
            # with `user_project.all_pipelines.find`, RecordNotFound → 404): asking again would never end.
            if exc.failure is Failure.NOT_FOUND:
                log(logger, logging.INFO, "pipeline gone", pipeline=state.key)
                book.forget(state.key)
            else:
                log(logger, logging.WARNING, "polling failed", pipeline=state.key, error=str(exc))
                book.postpone(state.key)
            continue
        updated, changed = book.apply_api(project, state.repo, pipeline, jobs)
        if changed:
            bot.metrics.inc("cpn_pipelines_polled_total", outcome="repaired")
            await publish(bot, project, updated)
    await discover_recent(bot)


DISCOVERY_WINDOW = 900.0  # older pipelines are history, not news, the first time a repository is looked at
DISCOVERY_MARGIN = 60.0  # clocks and pagination: a pipeline this much older than the last look is still news


def _age_seconds(created_at: str) -> float:
    try:
        created = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    except ValueError:
        return float("inf")
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return (datetime.now(UTC) - created).total_seconds()


async def discover_recent(bot: Bot) -> None:
    """Pipelines of linked projects that no webhook told about (created while hooks were lost).

    One round looks at the next ``gitlab.poll_batch`` repositories only (:class:`bot.rotation.Rotation`),
    so its cost does not grow with the number of projects; a pipeline is news if it was created
    after the repository's previous look (or, the first time, in the last ``DISCOVERY_WINDOW``).
    """
    gitlab = bot.platform.gitlab
    assert gitlab is not None
    book = PipelineBook(bot.store)
    targets = [
        (project_id, repo)
        for project_id, names in bot.projects.linked_repositories().items()
        for repo in [MIRROR_REPO, *names]
    ]
    rotation = bot.pipeline_rotation
    for project_id, repo in rotation.take(targets):
        key = (project_id, repo)
        project = bot.projects.by_id(project_id)
        looking = time.time()
        previous = rotation.looked_at(key)
        max_age = DISCOVERY_WINDOW if previous is None else looking - previous + DISCOVERY_MARGIN
        path = Names(bot.config.platform.root_group, project.slug).repo(repo)
        gitlab_id = bot.gitlab_ids.get(path)
        try:
            if gitlab_id is None:
                found = await gitlab.find_project(path)
                if found is None:
                    continue
                gitlab_id = bot.gitlab_ids[path] = found.id
            since = datetime.fromtimestamp(looking - max_age, UTC)
            pipelines = await gitlab.pipelines(gitlab_id, updated_after=since)
        except ServiceError:
            bot.gitlab_ids.pop(path, None)  # removed and added again under another id, or GitLab down
            continue
        rotation.mark(key, looking)
        for pipeline in pipelines:
            known = book.get(f"{gitlab_id}:{pipeline.id}")
            if known is not None or _age_seconds(pipeline.created_at) > max_age:
                continue
            jobs = await gitlab.pipeline_jobs(gitlab_id, pipeline.id)
            state, _ = book.apply_api(project, repo, pipeline, jobs)
            bot.metrics.inc("cpn_pipelines_polled_total", outcome="discovered")
            await publish(bot, project, state)
