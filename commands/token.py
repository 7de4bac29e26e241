"""``/cpn token …``: tokens for the sync API that the team's external CI calls.

A token is shown once, ephemerally, with ready-to-paste CI snippets; the bot keeps only its hash.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import TYPE_CHECKING

from bot.context import CommandContext, Reply
from bot.i18n import Text
from bot.render.safe import code
from bot.rights import Role
from bot.spec import Arg, Flag, command, integer, named
from bot.store import now
from commands.project import PROJECT

if TYPE_CHECKING:
    from bot.runtime import Bot

PREFIX = "cpn_"
TOKEN_NAME = named(r"[a-z0-9][a-z0-9-]*[a-z0-9]", 2, 32, "rules.token_name", "name")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def snippets(bot: Bot, project: str, token_var: str = "CPN_SYNC_TOKEN") -> tuple[str, str]:  # noqa: S107
    url = f"{bot.public_url}/api/v1/projects/{project}/repositories/<dépôt>/sync"
    gitlab = (
        "sync-cpn:\n"
        "  stage: .post\n"
        "  image: curlimages/curl:8.10.1\n"
        "  script:\n"
        f'    - \'curl --fail -X POST -H "Authorization: Bearer ${token_var}" -H "Content-Type: application/json"'
        f' -d "{{\\"branch\\": \\"$CI_COMMIT_REF_NAME\\"}}" "{url}"\'\n'
    )
    github = (
        "- name: Synchroniser vers Cloud π Native\n"
        "  run: |\n"
        f'    curl --fail -X POST -H "Authorization: Bearer ${{{{ secrets.{token_var} }}}}" \\\n'
        '      -H "Content-Type: application/json" \\\n'
        '      -d "{\\"branch\\": \\"${{ github.head_ref || github.ref_name }}\\"}" \\\n'
        f'      "{url}"\n'
    )
    return gitlab, github


@command(
    "token create",
    summary=Text("Crée un jeton pour l'API de synchronisation", "Creates a token for the sync API"),
    description=Text(
        "Le jeton n'est montré qu'une fois ; le bot n'en garde qu'une empreinte.",
        "The token is shown once; the bot keeps only a hash of it.",
    ),
    args=[PROJECT],
    flags=[
        Flag(
            "name",
            Text("nom du jeton (ex. ci-github)", "token name (e.g. ci-github)"),
            TOKEN_NAME,
            default="ci",
        )
    ],
    requires=Role.ADMIN,
)
async def create(ctx: CommandContext) -> Reply:
    bot = ctx.bot
    project = ctx.project()
    token = PREFIX + secrets.token_urlsafe(32)
    token_id = (
        bot.store.db.table("api_tokens")
        .insert(
            {
                "project_id": project.id,
                "name": ctx.args["name"],
                "token_hash": hash_token(token),
                "prefix": token[: len(PREFIX) + 4],
                "created_by": ctx.user_id,
                "created_at": now(),
            }
        )
        .last_pk
    )
    bot.store.audit(ctx.user_id, ctx.user_name, "token.create", project.name, "ok", {"id": token_id})
    gitlab, github = snippets(bot, project.name)
    text = "\n".join(
        [
            ctx.tr("token.created", id=token_id, project=code(project.name)),
            f"```\n{token}\n```",
            ctx.tr("token.once"),
            f"**GitLab CI** (`.gitlab-ci.yml`, variable masquée `CPN_SYNC_TOKEN`) :\n```yaml\n{gitlab}```",
            f"**GitHub Actions** (secret `CPN_SYNC_TOKEN`) :\n```yaml\n{github}```",
        ]
    )
    return Reply(text)


@command(
    "token revoke",
    summary=Text("Révoque un jeton", "Revokes a token"),
    args=[
        PROJECT,
        Arg("id", Text("numéro du jeton (voir token list)", "token number (see token list)"), integer(1)),
    ],
    requires=Role.ADMIN,
)
async def revoke(ctx: CommandContext) -> Reply:
    bot = ctx.bot
    project = ctx.project()
    cursor = bot.store.db.execute(
        "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND project_id = ? AND revoked_at IS NULL",
        (now(), ctx.args["id"], project.id),
    )
    if cursor.rowcount == 0:
        return Reply(ctx.tr("token.unknown", id=ctx.args["id"], project=code(project.name)))
    bot.store.audit(ctx.user_id, ctx.user_name, "token.revoke", project.name, "ok", {"id": ctx.args["id"]})
    return Reply(ctx.tr("token.revoked", id=ctx.args["id"]))


@command(
    "token list",
    summary=Text("Liste les jetons de l'API de synchronisation", "Lists the sync API tokens"),
    args=[PROJECT],
    requires=Role.ADMIN,
)
async def list_tokens(ctx: CommandContext) -> Reply:
    bot = ctx.bot
    project = ctx.project()
    rows = list(
        bot.store.db.table("api_tokens").rows_where(
            "project_id = ? AND revoked_at IS NULL", [project.id], order_by="id"
        )
    )
    if not rows:
        return Reply(ctx.tr("token.none", project=code(project.name), name=project.name))
    lines = [f"#### {ctx.tr('token.list_title', project=project.name)}"]
    for row in rows:
        used = datetime.fromtimestamp(row["last_used_at"]).strftime("%Y-%m-%d %H:%M") if row["last_used_at"] else "—"
        created = datetime.fromtimestamp(row["created_at"]).strftime("%Y-%m-%d")
        lines.append(
            f"- #{row['id']} {code(row['name'])} `{row['prefix']}…` — {created}, "
            + ctx.tr("token.last_used", when=used)
        )
    return Reply("\n".join(lines))
