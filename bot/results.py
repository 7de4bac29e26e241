"""Analysis results in the team's channel: quality gates from SonarQube (Trivy scans live in
:mod:`bot.scans`). A result belongs in the thread of the pipeline that produced it when the bot
posted one for that commit; otherwise it goes where the project's subscriptions send it.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from bot.inbox import InboundEvent, inbox_handler
from bot.model import Project
from bot.notifications import refresh_roots
from bot.outbox import Post
from bot.render import quality as render
from bot.store import now
from bot.workflows import quality
from bot.workflows.routing import Subscriptions

if TYPE_CHECKING:
    from bot.runtime import Bot

logger = logging.getLogger("cpn.results")


def pipeline_threads(bot: Bot, project_id: int, repo: str, sha: str) -> dict[str, str]:
    """channel → thread root key, for the pipelines the bot posted for this commit."""
    if not sha:
        return {}
    rows = bot.store.db.execute(
        "SELECT pp.channel_id, pp.post_key, pp.root_key FROM pipelines p "
        "JOIN pipeline_posts pp ON pp.pipeline_key = p.key "
        "WHERE p.project_id = ? AND p.repo = ? AND p.sha = ? ORDER BY p.updated_at",
        (project_id, repo, sha),
    ).fetchall()
    return {channel: root or post for channel, post, root in rows}


def publish_result(
    bot: Bot, project: Project, repo: str, sha: str, kind: str, branch: str, failure: bool, post: Post
) -> int:
    """In the pipeline's thread where there is one, else where subscriptions want it; how many posts."""
    threads = pipeline_threads(bot, project.id, repo, sha)
    for channel_id, root_key in threads.items():
        bot.outbox.enqueue(channel_id, post, root_key=root_key)
    others = [c for c in Subscriptions(bot.store).targets(project, kind, branch, "main", failure) if c not in threads]
    for channel_id in others:
        bot.outbox.enqueue(channel_id, post)
    if kind in ("quality", "scan"):  # the top-level card of its thread tells the worst of it
        refresh_roots(bot, project, repo, sha)
    return len(threads) + len(others)


@inbox_handler("sonarqube")
async def on_quality_gate(event: InboundEvent, bot: Bot) -> None:
    try:
        sonar = bot.config.sonarqube
        # Links are rebuilt from the configured SonarQube, never taken from the body.
        base = str(sonar.ui_url or sonar.url) if sonar else ""
        result = quality.parse_webhook(event.json(), base)
    except (quality.UnreadablePayload, ValueError):
        bot.metrics.inc("cpn_events_ignored_total", source="sonarqube", reason="unreadable")
        return
    owner = quality.owner_of(result.project_key, lambda slug: bot.projects.get(slug) is not None)
    project = bot.projects.get(owner[0]) if owner else None
    # The delivery was signed with one project's secret: it may speak only of that project.
    if owner is None or project is None or (event.project_key and owner[0] != event.project_key):
        bot.metrics.inc("cpn_events_ignored_total", source="sonarqube", reason="unknown_project")
        return
    repo = owner[1]
    bot.store.db.table("quality").insert(
        {
            "project_id": project.id,
            "repo": repo,
            "sonar_key": result.project_key,
            "branch": result.branch,
            "revision": result.revision,
            "status": result.status,
            "conditions": json.dumps([c.__dict__ for c in result.failed]),
            "dashboard_url": result.dashboard_url,
            "analysed_at": result.analysed_at,
            "received_at": now(),
        }
    )
    card = render.gate_card(result, project.name, repo, bot.tr)
    failure = bool(result.failed)
    publish_result(bot, project, repo, result.revision, "quality", result.branch or "main", failure, Post("", (card,)))


def quality_lines(bot: Bot, project: Any) -> dict[str, list[str]]:
    """``/cpn status``: the last quality gate of each repository."""
    lines: dict[str, list[str]] = {}
    rows = bot.store.db.execute(
        "SELECT repo, status, branch, dashboard_url FROM quality WHERE id IN "
        "(SELECT MAX(id) FROM quality WHERE project_id = ? GROUP BY repo)",
        (project.id,),
    ).fetchall()
    for repo, status, branch, url in rows:
        name = render.status_name(status, bot.tr)
        icon = "✅" if status == "OK" else "❌" if status == "ERROR" else "⚠️"
        link = f"[{bot.tr('quality.dashboard')}]({url})" if url else ""
        lines[repo] = [bot.tr("quality.status_line", icon=icon, status=name, branch=branch or "main", link=link)]
    return lines
