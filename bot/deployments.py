"""What ArgoCD says on its own: notifications of deploys made outside the bot, and drift.

Argo CD Notifications POSTs to ``/hooks/argocd`` with a shared-secret header; a deploy the bot is
not following is announced where the project's deploy events go. A scheduled job polls the linked
projects' applications: one that stays OutOfSync or Degraded longer than the grace period is
reported once, not at every poll, and once more when it recovers.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.inbox import InboundEvent, inbox_handler
from bot.model import Project
from bot.outbox import Post
from bot.render import deploys as render
from bot.scheduler import every
from bot.store import now
from bot.workflows import deploy as flow
from bot.workflows.naming import Names
from bot.workflows.routing import Subscriptions
from services.errors import ServiceError

if TYPE_CHECKING:
    from bot.runtime import Bot

logger = logging.getLogger("cpn.deployments")

ANNOUNCED = {"on-deployed": False, "on-health-degraded": True, "on-sync-failed": True}  # event -> is a failure
QUIET_AFTER_BOT_DEPLOY = 120.0  # the bot's own card already tells about its deploys


def find_app(bot: Bot, app: str) -> tuple[Project, str, str] | None:
    """(project, env, repo) of an ArgoCD application the bot created, if any."""
    for project in bot.projects.all():
        if not app.startswith(project.slug + "-"):
            continue
        names = Names(bot.config.platform.root_group, project.slug)
        for env in bot.projects.environments(project.id):
            for repo in bot.projects.repositories(project.id):
                if repo.is_infra and names.argocd_app(env.name, repo.name) == app:
                    return project, env.name, repo.name
    return None


def _recently_deployed_by_bot(bot: Bot, project: Project, env: str) -> bool:
    row = bot.store.db.execute(
        "SELECT status, finished_at FROM deployments WHERE project_id = ? AND env = ? AND kind != 'external' "
        "ORDER BY id DESC LIMIT 1",
        (project.id, env),
    ).fetchone()
    if row is None:
        return False
    status, finished = row
    return status == "running" or (finished is not None and now() - finished < QUIET_AFTER_BOT_DEPLOY)


async def _first_automated_sync(bot: Bot, app: str) -> bool:
    """The application's very first sync, made by its automated sync policy: what creating an
    environment does in console mode (the console's plugin creates the application with automated
    sync), already told by "Environnement ajouté"; not a deploy. ArgoCD keeps who started each
    entry of the history (argoproj/argo-cd:pkg/apis/application/v1alpha1/types.go RevisionHistory
    ``initiatedBy``, OperationInitiator ``automated``)."""
    argocd = bot.platform.argocd
    if argocd is None:
        return False
    try:
        found = await argocd.get_application(app)
    except ServiceError:
        return False
    history = ((found or {}).get("status") or {}).get("history") or []
    return len(history) == 1 and bool((history[0].get("initiatedBy") or {}).get("automated"))


@inbox_handler("argocd")
async def on_argocd_event(event: InboundEvent, bot: Bot) -> None:
    payload: dict[str, Any] = event.json()
    kind = str(payload.get("event", ""))
    if kind not in ANNOUNCED:
        bot.metrics.inc("cpn_events_ignored_total", source="argocd", reason="event")
        return
    found = find_app(bot, str(payload.get("app", "")))
    if found is None:
        bot.metrics.inc("cpn_events_ignored_total", source="argocd", reason="unknown_app")
        return
    project, env, repo = found
    if _recently_deployed_by_bot(bot, project, env):
        return
    if kind == "on-deployed" and await _first_automated_sync(bot, str(payload.get("app", ""))):
        bot.metrics.inc("cpn_events_ignored_total", source="argocd", reason="first_sync")
        return
    revision = str(payload.get("revision", ""))
    bot.store.db.table("deployments").insert(
        {
            "project_id": project.id,
            "env": env,
            "repo": repo,
            "app": payload.get("app", ""),
            "revision": revision[:12],
            "kind": "external",
            "status": {"on-deployed": "succeeded", "on-health-degraded": "degraded"}.get(kind, "failed"),
            "requested_by": bot.tr("deploy.outside"),
            "started_at": now(),
            "finished_at": now(),
        }
    )
    text = render.external_line(kind, str(payload.get("app")), revision, str(payload.get("healthStatus", "")), bot.tr)
    for channel_id in Subscriptions(bot.store).targets(project, "deploy", env, env, failure=ANNOUNCED[kind]):
        bot.outbox.enqueue(channel_id, Post(text))


@every(120.0, "argocd.drift")
async def watch_drift(bot: Bot) -> None:
    argocd = bot.platform.argocd
    if argocd is None or bot.config.argocd is None:
        return
    grace = bot.config.argocd.drift_grace_seconds
    subscriptions = Subscriptions(bot.store)
    # A bounded number of applications per round (bot.rotation): a round costs the same whatever
    # the number of projects; the drift's "since" is kept in SQLite, so the grace still holds.
    for project_id, env, repo in bot.drift_rotation.take(bot.projects.linked_deployments()):
        project = bot.projects.by_id(project_id)
        if flow.running(bot.store, project.id, env):
            continue
        app_name = Names(bot.config.platform.root_group, project.slug).argocd_app(env, repo)
        try:
            # A normal refresh compares with git now, as ArgoCD's own periodic one would.
            app = await argocd.refresh(app_name)
        except ServiceError:
            continue
        status = app.get("status") or {}
        if not status.get("history"):
            continue  # never deployed yet: nothing has drifted
        state = "ok"
        if (status.get("health") or {}).get("status") == "Degraded":
            state = "Degraded"
        elif (status.get("sync") or {}).get("status") == "OutOfSync":
            state = "OutOfSync"
        message = _drift_step(bot, project, app_name, state, grace)
        if message is None:
            continue
        failure = state != "ok"
        for channel_id in subscriptions.targets(project, "deploy", env, env, failure=True):
            bot.outbox.enqueue(channel_id, Post(message))
        bot.metrics.inc("cpn_drift_reports_total", state="drift" if failure else "recovered")


def _drift_step(bot: Bot, project: Project, app: str, state: str, grace: float) -> str | None:
    """Advance the app's drift record; the message to post now, if any (at most once per episode)."""
    db = bot.store.db
    row = db.execute("SELECT state, since, notified FROM drift WHERE app = ?", (app,)).fetchone()
    url = bot.platform.argocd.ui_url(app) if bot.platform.argocd else ""
    if state == "ok":
        if row is None:
            return None
        db.execute("DELETE FROM drift WHERE app = ?", (app,))
        return render.drift_line(app, row[0], 0, url, bot.tr, recovered=True) if row[2] else None
    if row is None or row[0] != state:
        db.table("drift").upsert(
            {"app": app, "project_id": project.id, "state": state, "since": now(), "notified": 0}, pk="app"
        )
        row = (state, now(), 0)
    if not row[2] and now() - row[1] >= grace:
        db.execute("UPDATE drift SET notified = 1 WHERE app = ?", (app,))
        return render.drift_line(app, state, int((now() - row[1]) // 60), url, bot.tr)
    return None
