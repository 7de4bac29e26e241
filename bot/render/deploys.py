"""Deploy cards, edited in place while ArgoCD works, and the project status card (pure)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.i18n import Translator
from bot.render.safe import code, escape
from bot.workflows.deploy import Progress, UnhealthyResource


def deployed_on(stamp: str) -> str:
    """An ArgoCD history ``deployedAt`` (RFC 3339, UTC) as the bot's local day and time, ``—`` if unreadable."""
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone().strftime("%d/%m/%Y %H:%M")
    except ValueError:
        return "—"


ICONS = {
    "running": "🔄",
    "succeeded": "✅",
    "failed": "❌",
    "degraded": "⚠️",
    "reverted": "↩️",
    "timeout": "⌛",
    "unchanged": "✅",
}
COLORS = {
    "running": "#0063CB",
    "succeeded": "#18753C",
    "failed": "#CE0500",
    "degraded": "#B34000",
    "reverted": "#CE0500",
    "timeout": "#B34000",
}
HEALTH_ICONS = {"Healthy": "💚", "Progressing": "🔄", "Degraded": "💔", "Missing": "❔", "Suspended": "⏸️"}


def argocd_state(state: str, tr: Translator) -> str:
    """An ArgoCD phase, sync status or health in the reader's words (``OutOfSync`` is « désynchronisé »);
    a state the catalog does not know is shown inert, as ArgoCD wrote it."""
    if not state:
        return "—"
    key = f"argocd.{state}"
    shown = tr(key) if state.isalnum() else key
    return escape(state, 40) if shown == key else shown


def resource_line(resource: UnhealthyResource, tr: Translator) -> str:
    """``- Deployment/api : 💔 dégradé — message``: one resource in bad health, its state in the reader's words."""
    health = f"{HEALTH_ICONS.get(resource.health, '❔')} {argocd_state(resource.health, tr)}"
    line = f"- {escape(resource.kind, 60)}/{escape(resource.name, 120)} : {health}"
    return line + (f" — {escape(resource.message, 200)}" if resource.message else "")


def deploy_card(
    kind: str, project: str, env: str, what: str, user: str, app: str, app_url: str, progress: Progress, tr: Translator
) -> dict[str, Any]:
    icon = ICONS.get(progress.outcome, "🔄")
    title = tr(
        f"deploy.title.{kind}",
        icon=icon,
        project=project,
        env=env,
        what=what,
        status=tr(f"deploy.outcome.{progress.outcome}"),
    )
    lines = [tr("deploy.requested_by", user=user)]
    if progress.committed:
        link = f"[`{progress.committed}`]({progress.commit_url})" if progress.commit_url else code(progress.committed)
        lines.append(tr("deploy.committed", commit=link))
        if progress.reverted:
            lines.append(tr("deploy.reverted"))
    elif kind in ("deploy", "promote") and progress.values_written and progress.outcome != "failed":
        # Not before the values step: the first card would say "nothing to commit", then "committed".
        lines.append(tr("deploy.values_unchanged"))
    if progress.phase or progress.sync or progress.health:
        lines.append(
            tr(
                "deploy.argocd",
                phase=argocd_state(progress.phase, tr),
                sync=argocd_state(progress.sync, tr),
                health=f"{HEALTH_ICONS.get(progress.health, '')} {argocd_state(progress.health, tr)}".strip(),
            )
        )
    if progress.unhealthy:
        lines.append(tr("deploy.unhealthy"))
        lines += [resource_line(item, tr) for item in progress.unhealthy[:10]]
    if progress.outcome in ("failed", "reverted") and progress.reason:
        lines.append(tr("deploy.reason", reason=tr(progress.reason, app=code(app))))
    elif progress.outcome in ("failed", "reverted") and progress.message:
        lines.append(tr("deploy.reason", reason=escape(progress.message, 300)))
    if progress.outcome == "timeout":
        lines.append(tr("deploy.timeout"))
    if kind == "rollback" and progress.outcome == "succeeded":
        lines.append(tr("deploy.rollback_drift"))
    return {
        "fallback": title,
        "color": COLORS.get(progress.outcome, "#0063CB"),
        "title": title,
        "title_link": app_url,
        "text": "\n".join(lines),
    }


def external_line(event: str, app: str, revision: str, health: str, tr: Translator) -> str:
    """An Argo CD notification (its body's strings shown inert)."""
    shown = argocd_state(health, tr)
    return tr(f"deploy.external.{event}", app=code(app), revision=code(revision[:8] or "?"), health=shown)


def drift_line(app: str, state: str, minutes: int, url: str, tr: Translator, recovered: bool = False) -> str:
    link = f"[{escape(app, 100)}]({url})" if url else code(app)
    if recovered:
        return tr("deploy.drift_recovered", app=link)
    return tr("deploy.drift", app=link, state=argocd_state(state, tr), minutes=minutes)
