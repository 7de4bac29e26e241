"""``/cpn sync`` and ``/cpn pipeline``: synchronise a repository, look at its pipelines."""

from __future__ import annotations

from bot.context import CommandContext, Reply
from bot.i18n import Text
from bot.netpolicy import AddressRefused
from bot.notifications import start_sync
from bot.render import pipelines as render
from bot.render.safe import code
from bot.rights import Role
from bot.spec import Arg, Flag, command
from bot.workflows.naming import Names
from bot.workflows.pipelines import PipelineBook
from bot.workflows.rules import BRANCH
from commands.address import address_refusal
from commands.project import PROJECT
from commands.repo import REPO


@command(
    "sync",
    summary=Text("Synchronise un dépôt depuis sa source externe", "Synchronises a repository from its external source"),
    description=Text(
        "Lance le pipeline mirror du projet, puis suit la synchronisation et le build qu'elle déclenche.",
        "Runs the project's mirror pipeline, then follows the sync and the build it causes.",
    ),
    args=[PROJECT, REPO],
    flags=[
        Flag(
            "branch",
            Text("la branche à synchroniser (main par défaut)", "the branch to sync (main by default)"),
            BRANCH,
            excludes=("all",),
        ),
        Flag("all", Text("toutes les branches et les tags", "every branch and tag")),
    ],
    requires=Role.DEVELOPER,
    examples=["sync alpha api", "sync alpha api --branch release/2.1", "sync alpha api --all"],
)
async def sync_command(ctx: CommandContext) -> Reply:
    bot = ctx.bot
    project = ctx.project()
    repo = bot.projects.repository(project.id, ctx.args["repo"])
    if repo is None:
        known = ", ".join(code(r.name) for r in bot.projects.repositories(project.id)) or "—"
        return Reply(ctx.tr("sync.unknown_repo", repo=code(ctx.args["repo"]), known=known))
    if not repo.external_url:
        return Reply(ctx.tr("sync.no_source", repo=code(repo.name)))
    identity = await ctx.identity()
    try:
        state = await start_sync(
            bot, project, repo.name, ctx.args["branch"], bool(ctx.args["all"]), f"@{identity.username}", ctx.user_id
        )
    except AddressRefused as refused:
        bot.store.audit(ctx.user_id, ctx.user_name, "repo.sync", f"{project.name}/{repo.name}", "refused")
        return Reply(address_refusal(ctx.tr, refused.verdict))
    bot.store.audit(
        ctx.user_id,
        ctx.user_name,
        "repo.sync",
        f"{project.name}/{repo.name}",
        "ok",
        {"branch": ctx.args["branch"] or "", "all": bool(ctx.args["all"]), "pipeline": state.pipeline_id},
    )
    return Reply(ctx.tr("sync.started", repo=code(repo.name), id=state.pipeline_id, url=state.url))


@command(
    "pipeline",
    summary=Text("Montre les derniers pipelines d'un dépôt", "Shows a repository's last pipelines"),
    args=[PROJECT, Arg("repo", Text("nom du dépôt (ou mirror)", "repository name (or mirror)"))],
    flags=[Flag("ref", Text("seulement cette branche", "only this branch"), BRANCH)],
    requires=Role.READONLY,
    examples=["pipeline alpha api", "pipeline alpha api --ref main"],
)
async def pipeline_command(ctx: CommandContext) -> Reply:
    bot = ctx.bot
    project = ctx.project()
    repo = ctx.args["repo"]
    gitlab = bot.platform.gitlab
    book = PipelineBook(bot.store)
    states = book.recent(project.id, repo, 10)
    if gitlab is not None:
        found = await gitlab.find_project(Names(bot.config.platform.root_group, project.slug).repo(repo))
        if found is None:
            return Reply(
                ctx.tr(
                    "sync.unknown_repo",
                    repo=code(repo),
                    known=", ".join(code(r.name) for r in bot.projects.repositories(project.id)) or "—",
                )
            )
        for pipeline in await gitlab.pipelines(found.id, ref=ctx.args["ref"], per_page=5):
            if book.get(f"{found.id}:{pipeline.id}") is None:
                jobs = await gitlab.pipeline_jobs(found.id, pipeline.id)
                book.apply_api(project, repo, pipeline, jobs)
        states = book.recent(project.id, repo, 10)
    if ctx.args["ref"]:
        states = [s for s in states if s.ref == ctx.args["ref"]]
    title = ctx.tr("pipeline.list_title", project=project.name, repo=repo)
    return Reply(f"#### {title}\n" + render.pipeline_summary(states[:5], ctx.tr))
