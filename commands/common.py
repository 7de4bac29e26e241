"""Pieces the command modules share: confirmations, mentions, progress cards."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.context import CommandContext
from bot.i18n import Translator
from bot.interactive import Press, PressResult, action, button
from bot.model import Project
from bot.operations import Operation
from bot.outbox import Post
from bot.render.projects import checklist
from bot.render.safe import code
from bot.rights import ConsoleRule, Role
from bot.workflows.onboarding import Step
from services.errors import ServiceError

if TYPE_CHECKING:
    from bot.runtime import Bot


@dataclass(frozen=True)
class Person:
    user_id: str
    username: str
    email: str


async def resolve_mention(ctx: CommandContext, username: str) -> Person | None:
    """``@name`` → the Mattermost user, from the ids the slash command carries or the API."""
    user_id = ctx.mentions.get(username.lower())
    try:
        user = await ctx.bot.mm.get_user(user_id) if user_id else await ctx.bot.mm.get_user_by_username(username)
    except ServiceError as exc:
        if exc.status == 404:
            return None
        raise
    return Person(user["id"], user.get("username", username), user.get("email", ""))


def confirmation(
    ctx: CommandContext, name: str, data: dict[str, Any], question: str, danger: bool = True
) -> dict[str, Any]:
    """An attachment asking the caller, and only them, to confirm within the buttons' lifetime.

    Both buttons share one nonce: once either is used, the other is refused too."""
    bot = ctx.bot
    nonce = bot.signer.new_nonce()
    return {
        "color": "#CE0500" if danger else "#0063CB",
        "text": question,
        "actions": [
            button(
                bot.public_url,
                bot.signer,
                name=name,
                label=ctx.tr("common.confirm"),
                user_id=ctx.user_id,
                data=data,
                style="danger" if danger else "primary",
                ephemeral=True,
                nonce=nonce,
            ),
            button(
                bot.public_url,
                bot.signer,
                name="common.cancel",
                label=ctx.tr("common.cancel"),
                user_id=ctx.user_id,
                data={},
                ephemeral=True,
                nonce=nonce,
            ),
        ],
    }


@action("common.cancel")
async def cancel(press: Press, bot: Bot) -> PressResult:
    return PressResult(update=Post(bot.tr("common.cancelled")))


async def presser_has(bot: Bot, press: Press, project: str, role: Role, rule: ConsoleRule | None = None) -> bool:
    """The rights check again when the button is pressed: roles may have changed since it was shown."""
    return await bot.rights.may(press.user_id, project, role, rule)


async def confirmed_removal(press: Press, bot: Bot, item: str, role: Role) -> PressResult:
    """The "remove" button of a repository or environment: the rights checked again, the
    ``<item>.remove`` operation queued, the question replaced by ``<item>.removing``."""
    project_name, name = str(press.data["project"]), str(press.data[item])
    if not await presser_has(bot, press, project_name, role):
        return PressResult(ephemeral=bot.tr("actions.not_yours"))
    submit_from_press(bot, press, f"{item}.remove", {"project": project_name, item: name})
    bot.store.audit(press.user_id, press.user_name, f"{item}.remove", f"{project_name}/{name}", "confirmed")
    return PressResult(update=Post(bot.tr(f"{item}.removing", **{item: code(name)})))


def submit_from_press(bot: Bot, press: Press, kind: str, params: dict[str, Any], root_key: str = "") -> int:
    return bot.operations.submit(
        kind,
        params,
        channel_id=press.channel_id,
        team_id=press.team_id,
        user_id=press.user_id,
        root_key=root_key,
    )


def progress_card(
    bot: Bot, op: Operation, project: Project, mode: str, done: tuple[str, dict[str, str]] | None = None
) -> Callable[[list[Step]], Awaitable[None]]:
    """The checklist card of one operation, edited in place after each step.

    With ``done`` (a catalog key and its parameters, ``who`` added), a change that went through on every
    service is that one line: the checklist is posted only when something failed or warned."""
    tr: Translator = bot.tr
    key = op.root_key or f"op:{op.id}"

    async def progress(steps: list[Step]) -> None:
        status = "initializing"
        if steps and all(s.state not in ("pending", "running") for s in steps):
            current = bot.projects.get(project.name, include_archived=True)
            status = current.status if current else "failed"
            if mode in ("delete", "remove"):
                status = "archived" if all(s.state == "ok" for s in steps) else "failed"
            elif status == "created" and any(s.state == "failed" for s in steps):
                status = "failed"  # a card with a failed line never concludes "ready"
        if done is not None:
            if status == "initializing":
                return
            if all(s.state in ("ok", "skipped") for s in steps) and status in ("created", "archived"):
                line = tr(done[0], **done[1], who=await operator(bot, op) or "?")
                bot.outbox.enqueue(op.channel_id, Post(line), post_key=key, response_url=op.response_url)
                return
        card = checklist(project, steps, mode, status, tr)
        bot.outbox.enqueue(op.channel_id, Post("", (card,)), post_key=key, response_url=op.response_url)

    return progress


async def operator(bot: Bot, op: Operation) -> str:
    """``@name`` of who asked for the operation, as the channel knows them."""
    identity = await bot.identities.get(op.user_id) if op.user_id else None
    return f"@{identity.username}" if identity and identity.username else ""
