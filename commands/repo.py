"""``/cpn repo …``: the project's repositories, synchronised from the team's own git.

Credentials of a private repository are never typed on the command line: ``--private`` opens a
dialog whose token field is a password field, and its values go straight to Vault.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from bot.context import CommandContext, Reply
from bot.i18n import Text
from bot.interactive import Press, PressResult, action
from bot.operations import Operation, operation
from bot.outbox import Post
from bot.render.safe import code, url
from bot.rights import Role
from bot.spec import Arg, Flag, command
from bot.workflows.rules import REPO_NAME, REPO_URL
from commands.address import address_refusal
from commands.common import confirmation, confirmed_removal, progress_card, submit_from_press
from commands.project import PROJECT

if TYPE_CHECKING:
    from bot.runtime import Bot

CREDENTIAL_USER = re.compile(r"[A-Za-z0-9._@+-]{1,200}")
CREDENTIAL_TOKEN = re.compile(r"[A-Za-z0-9._~+/=:-]{1,500}")  # PATs, app passwords, base64
REPO = Arg("repo", Text("nom du dépôt", "repository name"), REPO_NAME)


def credentials_dialog(bot: Bot, user_id: str, data: dict[str, Any], title: str) -> dict[str, Any]:
    state = bot.signer.sign("repo.credentials", data, user_id)
    tr = bot.tr
    return {
        "callback_id": "repo.credentials",
        "title": title[:24],
        "introduction_text": tr("repo.dialog_intro", repo=data["repo"]),
        "submit_label": tr("common.save"),
        "state": json.dumps(state),
        "elements": [
            {
                "display_name": tr("repo.dialog_user"),
                "name": "username",
                "type": "text",
                "optional": True,
                "max_length": 200,
            },
            {
                "display_name": tr("repo.dialog_token"),
                "name": "token",
                "type": "text",
                "subtype": "password",
                "optional": True,
                "max_length": 500,
                "help_text": tr("repo.dialog_token_help"),
            },
        ],
    }


async def _url_refusal(ctx: CommandContext, url: str) -> str | None:
    verdict = await ctx.bot.address_policy.check_url(url)
    return None if verdict.ok else address_refusal(ctx.tr, verdict)


@command(
    "repo add",
    summary=Text("Ajoute un dépôt au projet", "Adds a repository to the project"),
    description=Text(
        "Crée le dépôt interne et son projet SonarQube ; avec --url, le synchronise aussitôt (toutes les branches). "
        "--private ouvre une fenêtre pour l'identifiant et le jeton, stockés dans Vault.",
        "Creates the internal repository and its SonarQube project; with --url, synchronises it at once (all "
        "branches). --private opens a dialog for the username and token, stored in Vault.",
    ),
    args=[PROJECT, REPO],
    flags=[
        Flag(
            "url",
            Text(
                "URL https du dépôt externe, finissant par .git",
                "https URL of the external repository, ending in .git",
            ),
            REPO_URL,
        ),
        Flag(
            "private",
            Text("le dépôt externe demande des identifiants", "the external repository needs credentials"),
        ),
        Flag(
            "infra",
            Text(
                "dépôt d'infrastructure (déployé par ArgoCD)",
                "infrastructure repository (deployed by ArgoCD)",
            ),
        ),
    ],
    requires=Role.DEVELOPER,
    examples=[
        "repo add alpha api --url https://github.com/ministere/api.git",
        "repo add alpha deploy --url https://gitlab.com/ministere/deploy.git --private --infra",
    ],
)
async def add(ctx: CommandContext) -> Reply:
    bot, name = ctx.bot, ctx.args["repo"]
    project = ctx.project()
    if bot.projects.repository(project.id, name) is not None:
        return Reply(ctx.tr("repo.taken", repo=code(name), project=code(project.name)))
    url = ctx.args["url"] or ""
    if ctx.args["private"] and not url:
        return Reply(ctx.tr("repo.private_needs_url"))
    if url:
        refusal = await _url_refusal(ctx, url)
        if refusal:
            return Reply(refusal)
    data = {"project": project.name, "repo": name, "url": url, "infra": bool(ctx.args["infra"]), "new": True}
    if ctx.args["private"]:
        await bot.mm.open_dialog(
            ctx.trigger_id,
            f"{bot.public_url}/mattermost/dialogs",
            credentials_dialog(bot, ctx.user_id, data, ctx.tr("repo.dialog_title")),
        )
        return Reply(ctx.tr("repo.fill_dialog"))
    _register(bot, data, private=False, user_id=ctx.user_id)
    ctx.submit(
        "project.reconcile",
        {"project": project.name, "mode": "update", "first_sync": name if url else "", "done": _added(name)},
    )
    bot.store.audit(ctx.user_id, ctx.user_name, "repo.add", f"{project.name}/{name}", "ok", {"url": url})
    return Reply(ctx.tr("repo.adding", repo=code(name), project=code(project.name)))


def _added(repo: str) -> list[Any]:
    """The one line a successful ``repo add`` leaves in the channel (see ``progress_card``)."""
    return ["repo.added", {"repo": code(repo)}]


def _register(bot: Bot, data: dict[str, Any], private: bool, user_id: str) -> None:
    project = bot.projects.get(data["project"])
    assert project is not None
    bot.projects.add_repository(project.id, data["repo"], data["url"], private, data["infra"], user_id)


@action("repo.credentials")
async def credentials_submitted(press: Press, bot: Bot) -> PressResult:
    """The dialog's values go to Vault and nowhere else (never logged, never echoed)."""
    username = str(press.submission.get("username") or "").strip()
    token = str(press.submission.get("token") or "").strip()
    if not username and not token:
        return PressResult(errors={"username": bot.tr("repo.credentials_needed")})
    # Both reach the mirror job (Vault GIT_INPUT_USER / GIT_INPUT_PASSWORD): nothing a shell or a
    # URL would read twice. The refusal names the rule, never the value.
    if username and not CREDENTIAL_USER.fullmatch(username):
        return PressResult(errors={"username": bot.tr("repo.credentials_user_rule")})
    if token and not CREDENTIAL_TOKEN.fullmatch(token):
        return PressResult(errors={"token": bot.tr("repo.credentials_token_rule")})
    data = press.data
    project = bot.projects.get(data["project"])
    if project is None:
        return PressResult(ephemeral=bot.tr("errors.unknown_project", project=code(data["project"])))
    await bot.control.save_credentials(project, data["repo"], username, token, press.user_id)
    target = f"{project.name}/{data['repo']}"
    if data.get("new"):
        if bot.projects.repository(project.id, data["repo"]) is None:
            _register(bot, data, private=True, user_id=press.user_id)
        submit_from_press(
            bot,
            press,
            "project.reconcile",
            {"project": project.name, "mode": "update", "first_sync": data["repo"], "done": _added(data["repo"])},
        )
        bot.store.audit(press.user_id, press.user_name, "repo.add", target, "ok", {"url": data["url"], "private": True})
        bot.outbox.enqueue(
            press.channel_id,
            Post(bot.tr("repo.adding", repo=code(data["repo"]), project=code(project.name))),
            ephemeral_to=press.user_id,
        )
    else:
        bot.store.audit(press.user_id, press.user_name, "repo.credentials", target, "ok")
        bot.outbox.enqueue(
            press.channel_id,
            Post(bot.tr("repo.credentials_saved", repo=code(data["repo"]))),
            ephemeral_to=press.user_id,
        )
    return PressResult()


@command(
    "repo credentials",
    summary=Text("Change les identifiants d'un dépôt privé", "Changes a private repository's credentials"),
    args=[PROJECT, REPO],
    requires=Role.DEVELOPER,
)
async def credentials(ctx: CommandContext) -> Reply:
    bot = ctx.bot
    project = ctx.project()
    repo = bot.projects.repository(project.id, ctx.args["repo"])
    if repo is None or not repo.external_url:
        return Reply(ctx.tr("repo.unknown", repo=code(ctx.args["repo"]), project=code(project.name)))
    data = {
        "project": project.name,
        "repo": repo.name,
        "url": repo.external_url,
        "infra": repo.is_infra,
        "new": False,
    }
    await bot.mm.open_dialog(
        ctx.trigger_id,
        f"{bot.public_url}/mattermost/dialogs",
        credentials_dialog(bot, ctx.user_id, data, ctx.tr("repo.dialog_title")),
    )
    return Reply(ctx.tr("repo.fill_dialog"))


@command(
    "repo list",
    summary=Text("Liste les dépôts du projet", "Lists the project's repositories"),
    args=[PROJECT],
    requires=Role.READONLY,
)
async def list_repositories(ctx: CommandContext) -> Reply:
    bot = ctx.bot
    project = ctx.project()
    repositories = bot.projects.repositories(project.id)
    if not repositories:
        return Reply(ctx.tr("project.no_repositories", name=project.name))
    lines = [f"#### {ctx.tr('repo.list_title', project=project.name)}"]
    for repo in repositories:
        source = url(repo.external_url) if repo.external_url else ctx.tr("repo.standalone")
        flags = (" 🔒" if repo.is_private else "") + (" 🏗️ infra" if repo.is_infra else "")
        lines.append(f"- {code(repo.name)} ← {source}{flags}")
    return Reply("\n".join(lines))


@command(
    "repo remove",
    summary=Text("Supprime un dépôt (GitLab, Vault, SonarQube)", "Removes a repository (GitLab, Vault, SonarQube)"),
    args=[PROJECT, REPO],
    requires=Role.DEVELOPER,
)
async def remove(ctx: CommandContext) -> Reply:
    bot = ctx.bot
    project = ctx.project()
    if bot.projects.repository(project.id, ctx.args["repo"]) is None:
        return Reply(ctx.tr("repo.unknown", repo=code(ctx.args["repo"]), project=code(project.name)))
    question = ctx.tr("repo.remove_confirm", repo=code(ctx.args["repo"]), project=code(project.name))
    return Reply(
        attachments=[confirmation(ctx, "repo.remove", {"project": project.name, "repo": ctx.args["repo"]}, question)]
    )


@action("repo.remove")
async def remove_confirmed(press: Press, bot: Bot) -> PressResult:
    return await confirmed_removal(press, bot, "repo", Role.DEVELOPER)


@operation("repo.remove")
async def remove_repository(op: Operation, bot: Bot) -> dict[str, Any]:
    project = bot.projects.get(op.params["project"])
    if project is None:
        return {"status": "gone"}
    complete = await bot.control.remove_repository(
        project,
        op.params["repo"],
        progress_card(bot, op, project, "remove", ("repo.removed", {"repo": code(op.params["repo"])})),
        op.user_id,
    )
    return {"complete": complete}
