"""``/cpn status``: one card for a whole project (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.i18n import Translator
from bot.model import DeclaredDeployment, Environment, Project, Repository
from bot.render.deploys import HEALTH_ICONS, argocd_state
from bot.render.pipelines import ICONS as PIPELINE_ICONS
from bot.render.safe import code, escape
from bot.workflows.pipelines import PipelineState

SYNC_ICONS = {"Synced": "🟢", "OutOfSync": "🟠", "Unknown": "⚪"}


def _ago(timestamp: float, now: datetime, tr: Translator) -> str:
    minutes = int((now.timestamp() - timestamp) // 60)
    if minutes < 1:
        return tr("status.just_now")
    if minutes < 60:
        return tr("status.minutes_ago", n=minutes)
    if minutes < 48 * 60:
        return tr("status.hours_ago", n=minutes // 60)
    return datetime.fromtimestamp(timestamp).strftime("%d/%m/%Y")


def _declared_lines(env: str, declared: Sequence[DeclaredDeployment] | None, tr: Translator) -> list[str]:
    lines: list[str] = []
    for deployment in (d for d in declared or () if d.environment == env):
        sources = ", ".join(
            f"{code(repo)} @ {code(revision) if revision else tr('status.own_revision')}"
            for repo, revision in deployment.sources
        )
        sync = tr("status.autosync_on" if deployment.autosync else "status.autosync_off")
        lines.append("🚀 " + tr("status.declared", name=code(deployment.name), sources=sources, sync=sync))
    return lines


def status_card(
    project: Project,
    repositories: Sequence[tuple[Repository, PipelineState | None]],
    environments: Sequence[tuple[Environment, list[tuple[str, dict[str, Any] | None, str]], dict[str, Any] | None]],
    extras: dict[str, list[str]],
    tr: Translator,
    now: datetime,
    declared: Sequence[DeclaredDeployment] | None = None,
) -> dict[str, Any]:
    """``declared``: the console's deployments, under their environment (None in direct mode)."""
    repo_lines = []
    for repo, pipeline in repositories:
        line = f"**{escape(repo.name)}**"
        if pipeline is not None:
            link = f"[#{pipeline.pipeline_id}]({pipeline.url})" if pipeline.url else f"#{pipeline.pipeline_id}"
            line += " — " + tr(
                "status.pipeline",
                icon=PIPELINE_ICONS.get(pipeline.status, "⏳"),
                link=link,
                ref=code(pipeline.ref),
                status=tr(f"pipeline.status.{pipeline.status}"),
            )
        else:
            line += " — " + tr("status.no_pipeline")
        repo_lines.append(line)
        repo_lines += [f"  {extra}" for extra in extras.get(repo.name, [])]
    env_lines = []
    for env, apps, last in environments:
        header = f"**{escape(env.name)}** ({env.stage})"
        if last is not None:
            header += " — " + tr(
                "status.last_deploy",
                what=code(last.get("image_tag") or last.get("revision") or "?"),
                user=escape(str(last.get("requested_by", "")), 60),
                when=_ago(float(last.get("finished_at") or last.get("started_at") or 0), now, tr),
                outcome=tr(f"deploy.outcome.{last.get('status', 'succeeded')}"),
            )
        env_lines.append(header)
        for name, app, url in apps:
            if app is None:
                env_lines.append(f"  {tr('status.app_missing', app=code(name))}")
                continue
            status = app.get("status") or {}
            sync = (status.get("sync") or {}).get("status", "Unknown")
            health = (status.get("health") or {}).get("status", "Unknown")
            revision = str((status.get("sync") or {}).get("revision") or "")[:8]
            env_lines.append(
                f"  [{escape(name)}]({url}) {SYNC_ICONS.get(sync, '⚪')} {argocd_state(sync, tr)} · "
                f"{HEALTH_ICONS.get(health, '❔')} {argocd_state(health, tr)}"
                + (f" · `{revision}`" if revision else "")
            )
        # After the live state: what the console declares for this environment, when it declares any.
        env_lines += [f"  {line}" for line in _declared_lines(env.name, declared, tr)]
    return {
        "fallback": tr("status.title", project=project.name),
        "color": "#000091",
        "title": tr("status.title", project=project.name),
        "fields": [
            {
                "title": tr("project.repositories"),
                "value": "\n".join(repo_lines) or tr("project.no_repositories", name=project.name),
                "short": False,
            },
            {
                "title": tr("project.environments"),
                "value": "\n".join(env_lines) or tr("project.no_environments", name=project.name),
                "short": False,
            },
        ],
    }
