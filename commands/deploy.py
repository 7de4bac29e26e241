"""``/cpn deploy``, ``promote``, ``rollback`` and ``status``: GitOps deployments from chat."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.context import CommandContext, Reply
from bot.i18n import Text, Translator
from bot.interactive import IN_HANDLER, Press, PressResult, action
from bot.operations import Operation, operation
from bot.outbox import Post
from bot.render import deploys as render
from bot.render.safe import code
from bot.rights import Role
from bot.spec import Arg, ArgError, Flag, Kind, command, integer
from bot.workflows import contextual
from bot.workflows import deploy as flow
from bot.workflows.pipelines import PipelineBook
from bot.workflows.rules import ENV_NAME, REPO_NAME
from commands.common import confirmation, submit_from_press
from commands.project import PROJECT
from services.errors import ServiceError

if TYPE_CHECKING:
    from bot.model import Project
    from bot.runtime import Bot


def _tag(value: str) -> str:
    if not flow.valid_tag(value):
        raise ArgError("rules.image_tag", value=value)
    return value


def _revision(value: str) -> str:
    if not flow.valid_revision(value):
        raise ArgError("rules.revision", value=value)
    return value


ENV = Arg("env", Text("environnement", "environment"), ENV_NAME)
IMAGE_TAG = Kind("tag", _tag)
REVISION = Kind("revision", _revision)


def _refusal(tr: Translator, exc: flow.DeployRefused) -> str:
    params = {
        k: (", ".join(code(v) for v in val) or "—") if isinstance(val, list) else code(str(val))
        for k, val in exc.params.items()
    }
    return tr(exc.key, name=exc.project, **params)


async def _may_deploy(bot: Bot, user_id: str, project: str, protected: bool) -> bool:
    return await bot.rights.may(user_id, project, Role.DEVOPS if protected else Role.DEVELOPER)


def _checks(ctx: CommandContext, target: flow.Target) -> str | None:
    """Why this deploy may not start now (freeze window, another deploy running), or None."""
    window = flow.frozen(ctx.bot.config, target.env)
    if window is not None:
        end, reason = window
        return ctx.tr("deploy.frozen", env=code(target.env.name), end=end.replace("T", " "), reason=reason or "—")
    running = flow.running(ctx.bot.store, target.project.id, target.env.name)
    if running is not None:
        return ctx.tr(
            "deploy.already_running",
            env=code(target.env.name),
            user=running["requested_by"],
            link=_card_link(ctx.bot, running["card_key"]),
        )
    return None


def _card_link(bot: Bot, card_key: str) -> str:
    post_id = bot.outbox.post_id(card_key)
    if not post_id:
        return ""
    return f"[{bot.tr('deploy.see_card')}]({str(bot.config.mattermost.url).rstrip('/')}/_redirect/pl/{post_id})"


def latest_built_tag(bot: Bot, project: Project) -> str:
    """The short sha of the last successful build on the default branch of an application repository."""
    book = PipelineBook(bot.store)
    candidates = []
    for repo in bot.projects.repositories(project.id):
        if repo.is_infra:
            continue
        for state in book.recent(project.id, repo.name, 10):
            if state.status == "success" and state.ref in ("main", "master") and state.sha:
                candidates.append((state.updated_at, state.sha[:8]))
    return max(candidates)[1] if candidates else ""


async def _with_stakes(ctx: CommandContext, target: flow.Target, question: str, what: str) -> str:
    """A protected deploy's question, with what runs there now and what will replace it, and the
    project's open critical vulnerabilities and failed quality gates: decided knowingly."""
    found = await flow.stakes(ctx.bot, target)
    tr = ctx.tr
    running = code(found.running) if found.running else tr("deploy.stakes_nothing")
    lines = [
        question,
        tr(
            "deploy.stakes_now",
            env=code(target.env.name),
            running=running,
            next=code(what),
            repo=code(target.repo.name),
        ),
    ]
    if found.criticals:
        lines.append(tr.plural("deploy.stakes_criticals", found.criticals, project=target.project.name))
    if found.failed_gates:
        lines.append(tr("deploy.stakes_gate", repos=", ".join(code(r) for r in found.failed_gates)))
    return "\n".join(lines)


async def _start(ctx: CommandContext, kind: str, target: flow.Target, params: dict[str, Any], question: str) -> Reply:
    bot = ctx.bot
    if not await _may_deploy(bot, ctx.user_id, target.project.name, target.protected):
        return Reply(ctx.tr("deploy.protected_rights", env=code(target.env.name)))
    refusal = _checks(ctx, target)
    if refusal:
        return Reply(refusal)
    identity = await ctx.identity()
    params |= {
        "project": target.project.name,
        "env": target.env.name,
        "repo": target.repo.name,
        "kind": kind,
        "user": f"@{identity.username}",
    }
    if target.protected or kind == "rollback":
        if kind != "rollback":  # a rollback's question already says what runs and what comes back
            question = await _with_stakes(
                ctx, target, question, params.get("image_tag") or params.get("revision") or ""
            )
        return Reply(attachments=[confirmation(ctx, "deploy.confirm", params, question)])
    ctx.submit("deploy.run", params)
    return Reply(ctx.tr(_STARTED[kind], env=code(target.env.name)))


# What a started deploy is acknowledged with, by kind: a rollback is not announced as a deploy.
_STARTED = {"deploy": "deploy.started", "promote": "deploy.started_promote", "rollback": "deploy.started_rollback"}


@command(
    "deploy",
    summary=Text("Déploie sur un environnement (GitOps, ArgoCD)", "Deploys to an environment (GitOps, ArgoCD)"),
    description=Text(
        "Écrit l'image ou la révision dans les valeurs de l'environnement du dépôt d'infrastructure, puis "
        "demande à ArgoCD de synchroniser et suit le déploiement. Sans option : la dernière image construite "
        "sur la branche principale. Les environnements protégés (prod) demandent une confirmation.",
        "Writes the image or revision into the environment's values in the infra repository, then asks ArgoCD "
        "to sync and follows the rollout. Without options: the last image built on the main branch. Protected "
        "environments (prod) ask for a confirmation.",
    ),
    args=[PROJECT, ENV],
    flags=[
        Flag(
            "repo", Text("dépôt d'infrastructure (s'il y en a plusieurs)", "infra repository (if several)"), REPO_NAME
        ),
        Flag("revision", Text("révision à déployer", "revision to deploy"), REVISION, excludes=("image-tag",)),
        Flag("image-tag", Text("tag d'image à déployer", "image tag to deploy"), IMAGE_TAG),
    ],
    requires=Role.DEVELOPER,
    examples=["deploy alpha dev", "deploy alpha prod --image-tag 1.4.2"],
)
async def deploy_command(ctx: CommandContext) -> Reply:
    bot = ctx.bot
    project = ctx.project()
    try:
        target = flow.resolve(bot, project, ctx.args["env"], ctx.args["repo"])
    except flow.DeployRefused as exc:
        return Reply(_refusal(ctx.tr, exc))
    tag, revision = ctx.args["image-tag"] or "", ctx.args["revision"] or ""
    if not tag and not revision:
        tag = latest_built_tag(bot, project)
        if not tag:
            return Reply(ctx.tr("deploy.nothing_built"))
    what = tag or revision
    question = ctx.tr("deploy.confirm_question", env=code(target.env.name), project=code(project.name), what=code(what))
    return await _start(ctx, "deploy", target, {"image_tag": tag, "revision": revision}, question)


@command(
    "promote",
    summary=Text(
        "Promeut ce qui tourne sainement d'un environnement vers un autre",
        "Promotes what runs healthy in one environment to another",
    ),
    args=[
        PROJECT,
        Arg("from", Text("environnement source", "source environment"), ENV_NAME),
        Arg("to", Text("environnement cible", "target environment"), ENV_NAME),
    ],
    flags=[Flag("repo", Text("dépôt d'infrastructure", "infra repository"), REPO_NAME)],
    requires=Role.DEVELOPER,
    examples=["promote alpha staging prod"],
)
async def promote_command(ctx: CommandContext) -> Reply:
    bot = ctx.bot
    project = ctx.project()
    assert bot.platform.argocd is not None
    try:
        source = flow.resolve(bot, project, ctx.args["from"], ctx.args["repo"])
        target = flow.resolve(bot, project, ctx.args["to"], ctx.args["repo"])
    except flow.DeployRefused as exc:
        return Reply(_refusal(ctx.tr, exc))
    app = await bot.platform.argocd.get_application(source.app) or {}
    status = app.get("status") or {}
    health = (status.get("health") or {}).get("status", "")
    sync = (status.get("sync") or {}).get("status", "")
    if health != "Healthy" or sync != "Synced":
        return Reply(
            ctx.tr(
                "deploy.source_unhealthy",
                env=code(source.env.name),
                health=render.argocd_state(health, ctx.tr),
                sync=render.argocd_state(sync, ctx.tr),
            )
        )
    tag = await flow.deployed_tag(bot, source) or flow.source_image_tag(app)
    if not tag:
        return Reply(ctx.tr("deploy.source_unknown", env=code(source.env.name)))
    question = ctx.tr(
        "deploy.promote_question", source=code(source.env.name), env=code(target.env.name), what=code(tag)
    )
    return await _start(ctx, "promote", target, {"image_tag": tag, "revision": "", "from": source.env.name}, question)


@command(
    "rollback",
    summary=Text("Revient à un déploiement précédent (historique ArgoCD)", "Goes back to a previous deployment"),
    args=[PROJECT, ENV],
    flags=[
        Flag(
            "to",
            Text(
                "numéro dans l'historique ArgoCD (par défaut : le précédent)",
                "ArgoCD history id (default: the previous one)",
            ),
            integer(0),
        ),
        Flag("repo", Text("dépôt d'infrastructure", "infra repository"), REPO_NAME),
    ],
    requires=Role.DEVOPS,
    examples=["rollback alpha prod", "rollback alpha prod --to 3"],
)
async def rollback_command(ctx: CommandContext) -> Reply:
    bot = ctx.bot
    project = ctx.project()
    assert bot.platform.argocd is not None
    try:
        target = flow.resolve(bot, project, ctx.args["env"], ctx.args["repo"])
    except flow.DeployRefused as exc:
        return Reply(_refusal(ctx.tr, exc))
    app = await bot.platform.argocd.get_application(target.app) or {}
    history = (app.get("status") or {}).get("history") or []
    ids = [int(h["id"]) for h in history]
    running = flow.running_revision(app)
    wanted = ctx.args["to"]
    if wanted is None:
        wanted = flow.previous_deployment(history, running)
        if wanted is None:
            return Reply(ctx.tr("deploy.no_history", env=code(target.env.name)))
    if wanted not in ids:
        return Reply(ctx.tr("deploy.unknown_history", id=wanted, known=", ".join(str(i) for i in ids) or "—"))
    entry = next(h for h in history if int(h["id"]) == wanted)
    revision = str(entry.get("revision", ""))
    if revision == running:
        return Reply(
            ctx.tr("deploy.rollback_running", env=code(target.env.name), id=wanted, revision=code(revision[:8]))
        )
    question = ctx.tr(
        "deploy.rollback_question",
        env=code(target.env.name),
        id=wanted,
        revision=code(revision[:8]),
        date=code(render.deployed_on(str(entry.get("deployedAt", "")))),
        running=code(running[:8] or "—"),
    )
    return await _start(ctx, "rollback", target, {"history_id": wanted, "image_tag": "", "revision": ""}, question)


@action("deploy.confirm", use=IN_HANDLER)
async def confirmed(press: Press, bot: Bot) -> PressResult:
    data = dict(press.data)
    project = bot.projects.get(str(data.get("project", "")))
    if project is None:
        return PressResult(ephemeral=bot.tr("errors.unknown_project", project=code(str(data.get("project")))))
    try:
        target = flow.resolve(bot, project, data["env"], data["repo"])
    except flow.DeployRefused as exc:
        return PressResult(ephemeral=_refusal(bot.tr, exc))
    if not await _may_deploy(bot, press.user_id, project.name, target.protected):
        return PressResult(ephemeral=bot.tr("deploy.protected_rights", env=code(target.env.name)))
    if flow.frozen(bot.config, target.env) is not None or flow.running(bot.store, project.id, target.env.name):
        return PressResult(ephemeral=bot.tr("deploy.not_now", env=code(target.env.name)))
    with press.effect():  # the deploy is queued in the transaction that uses the confirmation up
        submit_from_press(bot, press, "deploy.run", data)
        target_name = f"{project.name}/{target.env.name}"
        bot.store.audit(press.user_id, press.user_name, f"deploy.{data['kind']}.confirmed", target_name, "ok")
    return PressResult(update=Post(bot.tr(_STARTED[str(data["kind"])], env=code(target.env.name))))


@operation("deploy.run")
async def run_deploy(op: Operation, bot: Bot) -> dict[str, Any]:
    params = op.params
    project = bot.projects.get(params["project"])
    if project is None or bot.platform.argocd is None:
        return {"status": "gone"}
    target = flow.resolve(bot, project, params["env"], params["repo"])
    kind, user = params["kind"], params["user"]
    what = params.get("image_tag") or params.get("revision") or f"#{params.get('history_id')}"
    key = op.root_key or f"deploy:{op.id}"
    deployment = flow.record_start(bot.store, target, kind, what, user, key, op.channel_id)
    app_url = bot.platform.argocd.ui_url(target.app)

    async def report(progress: flow.Progress) -> None:
        card = render.deploy_card(
            kind, project.name, target.env.name, what, user, target.app, app_url, progress, bot.tr
        )
        bot.outbox.enqueue(op.channel_id, Post("", (card,)), post_key=key, response_url=op.response_url)

    progress = flow.Progress()
    await report(progress)
    try:
        if kind == "rollback":
            await bot.platform.argocd.rollback(target.app, int(params["history_id"]))
            progress = await flow.follow(bot, target.app, progress, report)
        else:
            progress = await flow.deploy(
                bot, target, params.get("image_tag", ""), params.get("revision", ""), user, report
            )
    except flow.DeployRefused as exc:
        progress.outcome, progress.message = "failed", _refusal(bot.tr, exc)
    except ServiceError as exc:
        progress.outcome = "failed"
        progress.message = bot.tr("deploy.service_down", service=exc.service)
    flow.record_end(bot.store, deployment, progress)
    await report(progress)
    bot.store.audit(
        op.user_id,
        user,
        f"deploy.{kind}",
        f"{project.name}/{target.env.name}",
        progress.outcome,
        {"what": what, "commit": progress.committed, "reverted": progress.reverted},
    )
    return {"outcome": progress.outcome}


@command(
    "status",
    summary=Text(
        "Une carte : dépôts, qualité, scans et environnements du projet",
        "One card: the project's repositories, quality, scans and environments",
    ),
    args=[PROJECT],
    requires=Role.READONLY,
)
async def status_command(ctx: CommandContext) -> Reply:
    from bot.render.status import status_card

    status = await contextual.project_status(ctx.bot, ctx.project())
    card = status_card(
        status.project,
        status.repositories,
        status.environments,
        status.extras,
        ctx.tr,
        datetime.now(),
        status.declared,
    )
    return Reply(attachments=[card])
