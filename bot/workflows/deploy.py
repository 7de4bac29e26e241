"""GitOps deployments: the new image tag or revision committed into the infra repository's
values for the environment, then ArgoCD asked to refresh and sync, then followed to its health.

If ArgoCD cannot be reached the infra repository is left as it was: the application is looked up
*before* anything is committed (nothing is committed when ArgoCD is down), and a commit whose sync
could not be started is reverted at once. Which of the two happened is part of the outcome.

A refresh that outlives its timeout is not such a failure: ArgoCD goes on with it and the sync
resolves the revision itself. Under automated sync the bot never names a revision (Argo CD refuses
one other than the target) and an automated sync already applying the commit is followed as is.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.config import Config
from bot.model import Environment, Project, Repository
from bot.store import Store, now
from bot.workflows.naming import Names
from services.argocd import ArgoCD, SyncRefused, automated
from services.errors import Failure, ServiceError

if TYPE_CHECKING:
    from bot.runtime import Bot

BLOCK_BEGIN = "# --- cpn-bot: bloc géré par le bot, ne pas modifier à la main ---"
BLOCK_END = "# --- fin du bloc cpn-bot ---"
_BLOCK = re.compile(re.escape(BLOCK_BEGIN) + r".*?" + re.escape(BLOCK_END) + r"\n?", re.DOTALL)
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
_REVISION = re.compile(r"^[A-Za-z0-9_./\-]{1,128}$")
FINAL_PHASES = ("Succeeded", "Failed", "Error")
SETTLED_HEALTH = ("Healthy", "Degraded", "Missing", "Suspended")


class DeployRefused(Exception):
    """The deploy cannot start; ``key``/``params`` say why (catalog entry)."""

    def __init__(self, key: str, *, project: str = "", **params: Any) -> None:
        super().__init__(key)
        self.key = key
        self.project = project  # named in the hint's command line (``/cpn project replay alpha``)
        self.params = params


@dataclass(frozen=True)
class Target:
    project: Project
    env: Environment
    repo: Repository
    app: str
    protected: bool


@dataclass
class Progress:
    """What the deploy card shows, updated as ArgoCD moves."""

    committed: str = ""  # short sha, or "" when the values were already right
    values_written: bool = False  # the values step is done: only then does "committed" or "unchanged" hold
    commit_url: str = ""
    phase: str = ""  # ArgoCD operation phase
    sync: str = ""
    health: str = ""
    unhealthy: list[UnhealthyResource] = field(default_factory=list)
    message: str = ""
    outcome: str = "running"  # running | succeeded | failed | degraded | reverted | unchanged | timeout
    reverted: bool = False
    reason: str = ""  # catalog key of why ArgoCD refused the sync ("deploy.refused.…"), if it did


Report = Callable[[Progress], Awaitable[None]]


def is_protected(config: Config, env: Environment) -> bool:
    return env.name in config.platform.protected_environments or env.stage == "prod"


def frozen(config: Config, env: Environment, at: datetime | None = None) -> tuple[str, str] | None:
    """(end, reason) of the freeze window covering ``env`` now, if any."""
    moment = at or datetime.now()
    for window in config.platform.freeze_windows:
        if env.name not in window.environments and "*" not in window.environments:
            continue
        if datetime.fromisoformat(window.start) <= moment < datetime.fromisoformat(window.end):
            return window.end, window.reason
    return None


def valid_tag(value: str) -> bool:
    return bool(_TAG.match(value))


def valid_revision(value: str) -> bool:
    return bool(_REVISION.match(value)) and ".." not in value


def resolve(bot: Bot, project: Project, env_name: str, repo_name: str | None) -> Target:
    env = bot.projects.environment(project.id, env_name)
    if env is None:
        known = [e.name for e in bot.projects.environments(project.id)]
        raise DeployRefused("deploy.unknown_env", env=env_name, known=known)
    infra = [r for r in bot.projects.repositories(project.id) if r.is_infra]
    if repo_name:
        repo = next((r for r in infra if r.name == repo_name), None)
        if repo is None:
            raise DeployRefused("deploy.unknown_repo", repo=repo_name, known=[r.name for r in infra])
    elif len(infra) == 1:
        repo = infra[0]
    elif not infra:
        raise DeployRefused("deploy.no_infra_repo", project=project.name)
    else:
        raise DeployRefused("deploy.choose_repo", known=[r.name for r in infra])
    names = Names(bot.config.platform.root_group, project.slug)
    return Target(project, env, repo, names.argocd_app(env.name, repo.name), is_protected(bot.config, env))


def running(store: Store, project_id: int, env: str) -> dict[str, Any] | None:
    rows = list(
        store.db.table("deployments").rows_where(
            "project_id = ? AND env = ? AND status = 'running'", [project_id, env], order_by="id desc", limit=1
        )
    )
    return rows[0] if rows else None


def last_deploys(store: Store, project_id: int) -> dict[str, dict[str, Any]]:
    """The last finished deploy of each environment."""
    result: dict[str, dict[str, Any]] = {}
    for row in store.db.table("deployments").rows_where("project_id = ?", [project_id], order_by="id"):
        if row["status"] != "running":
            result[row["env"]] = row
    return result


def values_block(env: str, image_tag: str, revision: str, user: str) -> str:
    lines = [BLOCK_BEGIN, f"# environnement {env}, déployé par {user}"]
    if image_tag:
        lines += ["image:", f'  tag: "{image_tag}"']
    lines += [
        "cpn:",
        f'  revision: "{revision}"' if revision else '  revision: ""',
        f'  deployedBy: "{user}"',
        BLOCK_END,
    ]
    return "\n".join(lines) + "\n"


def merge_values(existing: str | None, block: str) -> str:
    """The team's values with the bot's block replaced (or appended the first time)."""
    if not existing:
        return block
    if _BLOCK.search(existing):
        return _BLOCK.sub(lambda _: block, existing, count=1)
    return existing.rstrip("\n") + "\n\n" + block


def values_path(env: str) -> str:
    return f"values-{env}.yaml"


async def deploy(bot: Bot, target: Target, image_tag: str, revision: str, user: str, report: Report) -> Progress:
    """Commit, sync, follow. Raises nothing for a service failure: the outcome says it."""
    gitlab, argocd = bot.platform.gitlab, bot.platform.argocd
    progress = Progress()
    if gitlab is None or argocd is None:
        raise ServiceError("ArgoCD", Failure.UNAVAILABLE, detail="not configured")
    # Before anything is written: is ArgoCD there, and does it know the application?
    application = await argocd.get_application(target.app)
    if application is None:
        raise DeployRefused("deploy.no_application", app=target.app, project=target.project.name)
    names = Names(bot.config.platform.root_group, target.project.slug)
    repo = await gitlab.find_project(names.repo(target.repo.name))
    if repo is None:
        raise DeployRefused("deploy.no_infra_repo", project=target.project.name)
    path = values_path(target.env.name)
    current = await gitlab.read_file(repo.id, path)
    content = merge_values(current, values_block(target.env.name, image_tag, revision, user))
    sha = ""
    if content != current:
        action = "update" if current is not None else "create"
        # [skip ci]: a values change is for ArgoCD, not a reason to rebuild and rescan the infra repository.
        message = f"deploy({target.env.name}): {image_tag or revision} par {user} via cpn-bot [skip ci]"
        sha = await gitlab.commit(repo.id, "main", message, [{"action": action, "file_path": path, "content": content}])
        progress.committed = sha[:8]
        progress.commit_url = f"{repo.web_url}/-/commit/{sha}"
    progress.values_written = True
    await report(progress)
    auto = automated(application)
    try:
        await refresh_for_sync(argocd, target.app)
        await start_sync(argocd, target.app, sha, auto)
    except ServiceError as exc:
        # The infra repository must not say something ArgoCD never applied.
        if sha:
            await gitlab.revert(repo.id, sha, "main")
            progress.reverted = True
        progress.outcome = "reverted" if sha else "failed"
        progress.message = exc.service
        progress.reason = refusal_key(exc)
        await report(progress)
        return progress
    return await follow(bot, target.app, progress, report, revision=sha)


async def refresh_for_sync(argocd: ArgoCD, app: str) -> None:
    """Have ArgoCD read git again; a refresh still running past its timeout is left to finish."""
    try:
        await argocd.refresh(app)
    except ServiceError as exc:
        if exc.failure is not Failure.UNAVAILABLE or exc.detail != "timeout":
            raise


async def start_sync(argocd: ArgoCD, app: str, sha: str, auto: bool) -> None:
    """A manual sync to ``sha``; under automated sync, to the target (which holds ``sha``), and an
    automated sync already running is the one that applies it."""
    try:
        await argocd.sync(app, revision=None if auto else (sha or None))
    except SyncRefused as exc:
        if not (auto and exc.kind == "running"):
            raise


REFUSALS = ("sync_window", "override", "auto_sync", "running", "deleting")


def refusal_key(exc: ServiceError) -> str:
    """The catalog entry telling why ArgoCD refused the sync ("" when it is not a refusal)."""
    if isinstance(exc, SyncRefused) and exc.kind in REFUSALS:
        return f"deploy.refused.{exc.kind}"
    return ""


_TAG_IN_BLOCK = re.compile(r'^\s*tag:\s*"([^"]*)"', re.MULTILINE)


@dataclass(frozen=True)
class Stakes:
    """What a confirmation of a protected deploy shows before the press: what runs there now, and
    what the project's own results say against it (latest scan per image, latest gate per repository)."""

    running: str  # the image tag or revision the bot last committed there; "" when none
    criticals: int  # open critical vulnerabilities over the latest scan of each image
    failed_gates: tuple[str, ...]  # repositories whose latest quality gate on their main branch failed


async def stakes(bot: Bot, target: Target) -> Stakes:
    try:
        running = await deployed_tag(bot, target)
    except ServiceError:
        running = ""  # GitLab down: the confirmation still comes, without that line
    db = bot.store.db
    scans = db.execute(
        "SELECT summary FROM scans WHERE id IN (SELECT MAX(id) FROM scans WHERE project_id = ? GROUP BY subject)",
        (target.project.id,),
    ).fetchall()
    criticals = sum(int((json.loads(row[0]).get("counts") or {}).get("CRITICAL", 0)) for row in scans)
    gates = db.execute(
        "SELECT repo, status FROM quality WHERE id IN (SELECT MAX(id) FROM quality WHERE project_id = ? "
        "AND branch IN ('', 'main', 'master') GROUP BY repo) ORDER BY repo",
        (target.project.id,),
    ).fetchall()
    return Stakes(running, criticals, tuple(repo for repo, status in gates if status == "ERROR"))


async def deployed_tag(bot: Bot, target: Target) -> str:
    """The image tag the bot last committed for this environment ("" if none)."""
    gitlab = bot.platform.gitlab
    assert gitlab is not None
    names = Names(bot.config.platform.root_group, target.project.slug)
    repo = await gitlab.find_project(names.repo(target.repo.name))
    content = await gitlab.read_file(repo.id, values_path(target.env.name)) if repo else None
    block = _BLOCK.search(content or "")
    found = _TAG_IN_BLOCK.search(block.group(0)) if block else None
    return found.group(1) if found else ""


def running_revision(application: dict[str, Any]) -> str:
    """The revision the application runs: its synced revision, else its last history entry
    (argoproj/argo-cd:pkg/apis/application/v1alpha1/types.go SyncStatus.Revision, RevisionHistories)."""
    status = application.get("status") or {}
    history = status.get("history") or [{}]
    return str((status.get("sync") or {}).get("revision") or history[-1].get("revision") or "")


def previous_deployment(history: list[dict[str, Any]], running: str) -> int | None:
    """The history id to roll back to: the last entry with another revision than the running one. ArgoCD
    appends an entry on every successful sync (argoproj/argo-cd:controller/sync.go calls
    controller/state.go appStateManager.persistRevisionHistory), so a resync of unchanged values repeats
    the running revision; the entry before it is not "previous"."""
    older = [int(h["id"]) for h in history if str(h.get("revision", "")) != running]
    return older[-1] if older else None


def operation_revision(operation: dict[str, Any]) -> str:
    result = (operation.get("syncResult") or {}).get("revision")
    return str(result or ((operation.get("operation") or {}).get("sync") or {}).get("revision") or "")


async def follow(bot: Bot, app: str, progress: Progress, report: Report, revision: str = "") -> Progress:
    """Watch ArgoCD until the operation is over and the health has settled; with ``revision``, only
    an operation on that revision counts (an automated sync may start it a little later)."""
    argocd = bot.platform.argocd
    assert argocd is not None
    config = bot.config.argocd
    interval = config.poll_seconds if config else 2.0
    deadline = time.monotonic() + (config.deploy_timeout_seconds if config else 600.0)
    while True:
        data = await argocd.get_application(app) or {}
        status = data.get("status") or {}
        operation = status.get("operationState") or {}
        if revision and operation_revision(operation) != revision:
            operation = {}  # an older operation, not the one applying this deploy
        changed = read_status(progress, status, operation)
        if changed:
            await report(progress)
        if progress.phase in ("Failed", "Error"):
            progress.outcome = "failed"
            progress.message = str(operation.get("message") or "")[:300]
            return progress
        if progress.phase == "Succeeded" and progress.health in SETTLED_HEALTH:
            progress.outcome = "succeeded" if progress.health == "Healthy" else "degraded"
            return progress
        if time.monotonic() > deadline:
            progress.outcome = "timeout"
            return progress
        await asyncio.sleep(interval)


def read_status(progress: Progress, status: dict[str, Any], operation: dict[str, Any]) -> bool:
    before = (progress.phase, progress.sync, progress.health, tuple(progress.unhealthy))
    progress.phase = str(operation.get("phase") or progress.phase)
    progress.sync = str((status.get("sync") or {}).get("status") or "")
    progress.health = str((status.get("health") or {}).get("status") or "")
    progress.unhealthy = unhealthy_resources(status)
    return before != (progress.phase, progress.sync, progress.health, tuple(progress.unhealthy))


@dataclass(frozen=True)
class UnhealthyResource:
    """One resource of an application in bad health, as ArgoCD reports it (status.resources[])."""

    kind: str
    name: str
    health: str
    message: str = ""


def unhealthy_resources(status: dict[str, Any]) -> list[UnhealthyResource]:
    found = []
    for resource in status.get("resources") or []:
        health = (resource.get("health") or {}).get("status")
        if health and health not in ("Healthy", "Progressing"):
            message = (resource.get("health") or {}).get("message") or ""
            found.append(
                UnhealthyResource(str(resource.get("kind") or ""), str(resource.get("name") or ""), health, message)
            )
    return found


def record_start(
    store: Store, target: Target, kind: str, image_tag: str, user: str, card_key: str, channel_id: str
) -> int:
    row = store.db.table("deployments").insert(
        {
            "project_id": target.project.id,
            "env": target.env.name,
            "repo": target.repo.name,
            "app": target.app,
            "image_tag": image_tag,
            "kind": kind,
            "status": "running",
            "requested_by": user,
            "card_key": card_key,
            "channel_id": channel_id,
            "started_at": now(),
        }
    )
    return int(row.last_pk or 0)


def record_end(store: Store, deployment_id: int, progress: Progress) -> None:
    status = {"succeeded": "succeeded", "degraded": "degraded", "reverted": "reverted"}.get(progress.outcome, "failed")
    store.db.table("deployments").update(
        deployment_id,
        {"status": status, "revision": progress.committed, "message": progress.message[:300], "finished_at": now()},
    )


def source_image_tag(app: dict[str, Any]) -> str:
    """The image tag an application runs, from ArgoCD's summary (``registry/app:tag``)."""
    for image in (app.get("status") or {}).get("summary", {}).get("images") or []:
        if ":" in image.rsplit("/", 1)[-1]:
            return str(image.rsplit(":", 1)[-1])
    return ""
