"""``/cpn quality``: a repository's quality gate and key measures, with their trend."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from bot.context import CommandContext, Reply
from bot.i18n import Text
from bot.render import quality as render
from bot.render.safe import code
from bot.rights import Role
from bot.spec import Arg, Flag, command
from bot.store import now
from bot.workflows import quality
from bot.workflows.rules import BRANCH
from commands.project import PROJECT
from services.errors import ServiceError

if TYPE_CHECKING:
    from bot.runtime import Bot


def _previous(bot: Bot, key: str, branch: str) -> dict[str, str] | None:
    row = bot.store.db.execute(
        "SELECT measures FROM quality_measures WHERE sonar_key = ? AND branch = ?", (key, branch)
    ).fetchone()
    return json.loads(row[0]) if row else None


def _remember(bot: Bot, key: str, branch: str, measures: dict[str, str]) -> None:
    bot.store.db.table("quality_measures").upsert(
        {"sonar_key": key, "branch": branch, "measures": json.dumps(measures), "taken_at": now()},
        pk=("sonar_key", "branch"),
    )


@command(
    "quality",
    summary=Text("Quality gate et mesures clés, avec leur tendance", "Quality gate and key measures, with trends"),
    args=[PROJECT, Arg("repo", Text("dépôt (tous par défaut)", "repository (all by default)"), required=False)],
    flags=[Flag("branch", Text("branche (main par défaut)", "branch (main by default)"), BRANCH)],
    requires=Role.READONLY,
    examples=["quality alpha", "quality alpha api --branch develop"],
)
async def quality_command(ctx: CommandContext) -> Reply:
    bot = ctx.bot
    project = ctx.project()
    sonar = bot.platform.sonarqube
    if sonar is None:
        return Reply(ctx.tr("errors.service", service="SonarQube"))
    repos = [r.name for r in bot.projects.repositories(project.id)]
    wanted = ctx.args["repo"]
    if wanted:
        if wanted not in repos:
            return Reply(ctx.tr("sync.unknown_repo", repo=code(wanted), known=", ".join(code(r) for r in repos) or "—"))
        repos = [wanted]
    if not repos:
        return Reply(ctx.tr("project.no_repositories", name=project.name))
    branch = ctx.args["branch"] or "main"
    cards = []
    for repo in repos:
        key = bot.control.sonar_key(project.slug, repo)
        api_branch = None if branch == "main" else branch
        try:
            status_obj = await sonar.quality_gate(key, api_branch)
            measures = await sonar.measures(key, [*quality.KEY_MEASURES, *quality.NEW_KEY_MEASURES], api_branch)
        except ServiceError as exc:
            if exc.status == 404:
                cards.append({"text": ctx.tr("quality.never_analysed", repo=code(repo), branch=code(branch))})
                continue
            raise
        trends = quality.trend(_previous(bot, key, branch), measures)
        _remember(bot, key, branch, measures)
        url = sonar.ui_url(key, api_branch)
        cards.append(
            render.quality_card(
                project.name,
                repo,
                branch,
                quality.status_of(status_obj),
                measures,
                trends,
                ctx.tr,
                url,
                quality.from_project_status(status_obj),
            )
        )
    return Reply(attachments=cards)
