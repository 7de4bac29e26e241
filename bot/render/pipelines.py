"""Pipeline cards, sync cards and their thread replies (pure functions)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.i18n import Translator
from bot.render.safe import code, escape
from bot.workflows.outcomes import Result, bad, worst
from bot.workflows.pipelines import JobState, PipelineState

ICONS = {
    "created": "⏳",
    "waiting_for_resource": "⏳",
    "preparing": "⏳",
    "pending": "⏳",
    "scheduled": "⏳",
    "running": "🔄",
    "waiting_for_callback": "🔄",
    "canceling": "⛔",
    "success": "✅",
    "failed": "❌",
    "canceled": "⛔",
    "skipped": "⏭️",
    "manual": "✋",
}
COLORS = {"success": "#18753C", "failed": "#CE0500", "canceled": "#666666", "running": "#0063CB"}
OUTCOME_ICONS = {"ok": "✅", "running": "🔄", "warn": "⚠️", "failed": "❌"}
OUTCOME_COLORS = {"ok": "#18753C", "running": "#0063CB", "warn": "#B34000", "failed": "#CE0500"}
TRACE_LINES = 40
TRACE_LINE_RUNES = 400  # a longer log line keeps its end (where the error usually is)
# A post's message is at most 16 383 runes, or the server answers 400 and the reply is lost
# (mattermost/mattermost server/public/model/post.go: PostMessageMaxRunesV2, Post.IsValid).
MAX_POST_RUNES = 16383
_HEADER_RUNES = 1000


def duration(seconds: float, tr: Translator) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return tr("pipeline.seconds", s=seconds)
    return tr("pipeline.minutes", m=seconds // 60, s=seconds % 60)


def stages_line(state: PipelineState) -> str:
    stages = state.ordered_stages()
    if not stages:
        return ""
    return " → ".join(f"{ICONS.get(state.stage_status(stage), '⏳')} {escape(stage, 60)}" for stage in stages)


def status_word(status: str, tr: Translator, key: str = "pipeline.status") -> str:
    """A known status in words; an unknown one (a webhook's) as inert text."""
    return tr(f"{key}.{status}") if status in ICONS else escape(status, 40)


def trigger_text(state: PipelineState, tr: Translator) -> str:
    who = state.triggered_by
    if who.startswith("ci:"):
        return tr("pipeline.by_ci", token=who[3:])
    if who.startswith("@"):
        return tr("pipeline.by_user", user=who)
    if state.source in ("push", "trigger", "api", "web", "schedule", "merge_request_event", "pipeline"):
        return tr(f"pipeline.source.{state.source}")
    return ""


def outcome_text(result: Result, tr: Translator) -> str:
    """``build en échec (`trivy`)``: one result of a thread, in words."""
    text = tr(f"pipeline.outcome.{result.source}_{result.outcome}")
    if result.jobs:
        text += f" ({', '.join(code(job) for job in result.jobs)})"
    return text


def pipeline_card(state: PipelineState, project: str, tr: Translator, thread: Sequence[Result] = ()) -> dict[str, Any]:
    """The one card of a pipeline, edited in place as its jobs progress.

    ``thread``: the card's own result first, then those of its thread (the build a sync caused,
    the quality gate, the scan): a worse one than the card's own takes its title, colour and
    first line, so that a collapsed thread does not show green over a failure.
    """
    icon = ICONS.get(state.status, "⏳")
    top = worst(thread)
    others = top is not None and thread[0].outcome != top.outcome
    outcome = ""
    if top is not None and others:
        icon, outcome = OUTCOME_ICONS[top.outcome], outcome_text(top, tr)
    if state.is_sync:
        word = status_word(state.status, tr, "pipeline.sync_status")
        target = escape(state.synced_repo, 100) or "?"
        scope = (
            tr("pipeline.all_branches")
            if state.variables.get("SYNC_ALL") == "true"
            else escape(state.variables.get("GIT_BRANCH_DEPLOY") or "main", 100)
        )
        if outcome:
            word = tr("pipeline.but", status=word, outcome=outcome)
        title = tr("pipeline.sync_title", icon=icon, project=project, repo=target, scope=scope, status=word)
    else:
        word = status_word(state.status, tr)
        if outcome:
            word = tr("pipeline.but", status=word, outcome=outcome)
        repo = escape(state.repo, 100)
        title = tr("pipeline.title", icon=icon, project=project, repo=repo, id=state.pipeline_id, status=word)
    lines = []
    if others and bad(thread):
        lines.append(" · ".join(f"{OUTCOME_ICONS[r.outcome]} {outcome_text(r, tr)}" for r in bad(thread)))
    head = f"**{escape(state.ref, 100)}**" if state.ref and not state.is_sync else ""
    if state.sha and not state.is_sync:  # a sync's commit is the mirror repository's, of no interest
        head += f" · {code(state.sha[:8], 12)}"
        if state.title:
            head += f" {escape(state.title, 120)}"
        if state.author:
            head += f" — {escape(state.author, 80)}"
    if head.strip():
        lines.append(head.strip())
    trigger = trigger_text(state, tr)
    if trigger:
        lines.append(trigger)
    stages = stages_line(state)
    if stages:
        lines.append(stages)
    if state.final and state.duration:
        lines.append(f"⏱ {duration(state.duration, tr)}")
    if state.failed_jobs:
        lines.append(tr("pipeline.failed_jobs", jobs=", ".join(code(j.name) for j in state.failed_jobs)))
    return {
        "fallback": title,
        "color": OUTCOME_COLORS[top.outcome] if top is not None and others else COLORS.get(state.status, "#0063CB"),
        "title": title,
        "title_link": state.url,
        "text": "\n".join(lines),
    }


def failure_reply(job: JobState, trace: str, tr: Translator, skipped: int = 0) -> str:
    """A failed job with the end of its log (already masked by the caller) and a link.

    At most :data:`TRACE_LINES` lines, each cut to its last :data:`TRACE_LINE_RUNES` characters,
    and as many of the last lines as fit in one post: the tail is what explains a failure.
    ``skipped``: lines of the log before ``trace`` (the adapter reads only the tail).
    """
    reason = f" ({escape(job.failure_reason, 80)})" if job.failure_reason else ""
    link = f"[{tr('pipeline.job')} #{int(job.id)}]({job.url})" if job.url else f"{tr('pipeline.job')} #{int(job.id)}"
    header = (tr("pipeline.job_failed", job=code(job.name), stage=code(job.stage), link=link) + reason)[:_HEADER_RUNES]
    lines = [_line_tail(line) for line in trace.rstrip().splitlines()]
    budget = MAX_POST_RUNES - len(header) - len("\n```\n\n```") - 100  # 100: the "lines above" note
    kept: list[str] = []
    for line in reversed(lines[-TRACE_LINES:]):
        if len(line) + 1 > budget:
            break
        kept.append(line)
        budget -= len(line) + 1
    kept.reverse()
    if len(kept) < len(lines) or skipped:
        kept.insert(0, tr("pipeline.trace_cut", count=len(lines) - len(kept) + skipped))
    tail = "\n".join(kept)
    return f"{header}\n```\n{tail or tr('pipeline.no_trace')}\n```"


def _line_tail(line: str) -> str:
    line = line.replace("```", "ʼʼʼ")
    return line if len(line) <= TRACE_LINE_RUNES else "…" + line[-(TRACE_LINE_RUNES - 1) :]


def build_started(sync: PipelineState, build: PipelineState, tr: Translator) -> str:
    link = f"[#{int(build.pipeline_id)}]({build.url})" if build.url else f"#{int(build.pipeline_id)}"
    return tr("pipeline.sync_then_build", repo=code(build.repo), link=link, ref=escape(build.ref, 100))


def push_line(payload: dict[str, Any], project: str, repo: str, tr: Translator) -> str:
    ref = str(payload.get("ref", "")).removeprefix("refs/heads/").removeprefix("refs/tags/")
    count = int(payload.get("total_commits_count") or len(payload.get("commits") or []))
    who = escape(str(payload.get("user_name") or payload.get("user_username") or ""), 80)
    if payload.get("object_kind") == "tag_push":
        return tr("push.tag", user=who, ref=code(ref), project=project, repo=code(repo))
    return tr.plural("push.commits", count, user=who, ref=code(ref), project=project, repo=code(repo))


def merge_request_line(payload: dict[str, Any], project: str, repo: str, tr: Translator, web: str = "") -> str:
    """One line for a merge request event; ``web`` is the repository's page on the configured GitLab.

    The link is rebuilt from ``web`` and the iid (an int, else no link): the body's ``url`` is
    never used, and every other string of the body is shown inert.
    """
    attrs = payload.get("object_attributes") or {}
    action = str(attrs.get("action") or attrs.get("state") or "update")
    title = escape(str(attrs.get("title") or ""), 150)
    iid = attrs.get("iid")
    if isinstance(iid, int) and not isinstance(iid, bool):
        link = f"[!{iid}]({web}/-/merge_requests/{iid})" if web else f"!{iid}"
    else:
        link = "!?"
    who = escape(str((payload.get("user") or {}).get("name") or ""), 80)
    return tr(
        "mr.line",
        action=tr(f"mr.action.{action}") if action in MR_ACTIONS else escape(action, 40),
        link=link,
        title=title,
        user=who,
        repo=code(repo),
        source=code(str(attrs.get("source_branch") or "")),
        target=code(str(attrs.get("target_branch") or "")),
    )


MR_ACTIONS = ("open", "close", "reopen", "update", "approved", "unapproved", "merge")


def pipeline_summary(states: list[PipelineState], tr: Translator) -> str:
    """``/cpn pipeline``: the last pipelines of a repository."""
    if not states:
        return tr("pipeline.none")
    lines = []
    for state in states:
        link = f"[#{int(state.pipeline_id)}]({state.url})" if state.url else f"#{int(state.pipeline_id)}"
        line = f"- {ICONS.get(state.status, '⏳')} {link} {code(state.ref)} {status_word(state.status, tr)}"
        if state.failed_jobs:
            line += " — " + ", ".join(
                f"[{escape(j.name, 80)}]({j.url})" if j.url else code(j.name) for j in state.failed_jobs
            )
        lines.append(line)
    return "\n".join(lines)
