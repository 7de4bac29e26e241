"""Commands that exist only in tests, to exercise the framework beyond help and whoami."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.context import CommandContext, Reply
from bot.i18n import Text
from bot.interactive import Press, PressResult, action, button
from bot.operations import Operation, operation
from bot.outbox import Post
from bot.rights import Access, Role
from bot.runtime import Bot
from bot.spec import REGISTRY, Arg, Flag, Registry, command, free_text, mention, named

T = Text("test", "test")
PROJECT = named(r"[a-z0-9]+", 2, 20, "rules.integer", "PROJET")
received: dict[str, Any] = {}


def registry() -> Registry:
    reg = Registry(dict(REGISTRY.commands))

    @command("test admin", summary=T, requires=Access.PLATFORM_ADMIN, registry=reg)
    async def admin_only(ctx: CommandContext) -> Reply:
        return Reply("admin ok")

    @command("test devops", summary=T, args=[Arg("project", T, PROJECT)], requires=Role.DEVOPS, registry=reg)
    async def devops(ctx: CommandContext) -> Reply:
        return Reply(f"devops ok on {ctx.args['project']}")

    @command("test slow", summary=T, registry=reg)
    async def slow(ctx: CommandContext) -> Reply:
        await asyncio.sleep(1.2)
        return Reply("slow done")

    @command("test crash", summary=T, registry=reg)
    async def crash(ctx: CommandContext) -> Reply:
        raise RuntimeError("glpat-abcdefghijklmnopqrstuvwx should never be shown")

    @command("test long", summary=T, args=[Arg("text", T, free_text(100), greedy=True)], registry=reg)
    async def long(ctx: CommandContext) -> Reply:
        ctx.submit("test.echo", {"text": ctx.args["text"]}, root_key=f"test:{ctx.args['text']}")
        return Reply(ctx.tr("ops.queued"))

    @command(
        "test button",
        summary=T,
        flags=[Flag("for", T, mention())],
        registry=reg,
    )
    async def with_button(ctx: CommandContext) -> Reply:
        bound = ctx.user_id
        if ctx.args["for"]:
            bound = ctx.mentions.get(ctx.args["for"], "")
        bot = ctx.bot
        attachment = {
            "text": "Supprimer ?",
            "actions": [
                button(
                    bot.public_url,
                    bot.signer,
                    name="test.pressed",
                    label="Confirmer",
                    user_id=bound,
                    data={"n": 1},
                    style="danger",
                ),
            ],
        }
        bot.outbox.enqueue(ctx.channel_id, Post("carte", (attachment,)), post_key="test:card")
        return Reply("carte envoyée")

    @command("test choices", summary=T, registry=reg)
    async def choices(ctx: CommandContext) -> Reply:
        """French labels, and two buttons with the same name and label: ids must still differ."""
        bot = ctx.bot
        labels = [("test.chose", "Résolu", 1), ("test.chose", "Ça m'a aidé", 2), ("test.chose", "Ça m'a aidé", 3)]
        actions = [
            button(bot.public_url, bot.signer, name=name, label=label, user_id=ctx.user_id, data={"n": n})
            for name, label, n in labels
        ]
        bot.outbox.enqueue(ctx.channel_id, Post("choix", ({"text": "?", "actions": actions},)), post_key="test:choices")
        return Reply("choix envoyés")

    @command("test dialog", summary=T, registry=reg)
    async def dialog(ctx: CommandContext) -> Reply:
        bot = ctx.bot
        state = bot.signer.sign("test.dialog", {"project": "alpha"}, ctx.user_id)
        import json

        await bot.mm.open_dialog(
            ctx.trigger_id,
            f"{bot.public_url}/mattermost/dialogs",
            {
                "callback_id": "test.dialog",
                "title": "Secret",
                "state": json.dumps(state),
                "elements": [
                    {"display_name": "Clé", "name": "key", "type": "text"},
                    {"display_name": "Valeur", "name": "value", "type": "text", "subtype": "password"},
                ],
            },
        )
        return Reply("")

    return reg


@operation("test.echo")
async def echo(op: Operation, bot: Bot) -> dict[str, Any]:
    text = op.params["text"]
    bot.outbox.enqueue(op.channel_id, Post(f"début {text}"), post_key=op.root_key, response_url=op.response_url)
    bot.outbox.enqueue(op.channel_id, Post(f"réponse {text}"), root_key=op.root_key)
    return {"ok": True}


@action("test.pressed")
async def pressed(press: Press, bot: Bot) -> PressResult:
    received["pressed_by"] = press.user_id
    received["pressed_by_name"] = press.user_name
    return PressResult(update=Post("✅ confirmé"), ephemeral="fait")


@action("test.chose")
async def chose(press: Press, bot: Bot) -> PressResult:
    received.setdefault("chosen", []).append(press.data["n"])
    return PressResult()


@action("test.dialog")
async def dialog_submitted(press: Press, bot: Bot) -> PressResult:
    if not press.submission.get("key"):
        return PressResult(errors={"key": "requis"})
    received["dialog"] = {"keys": sorted(press.submission), "data": press.data, "by": press.user_name}
    return PressResult(ephemeral="reçu")
