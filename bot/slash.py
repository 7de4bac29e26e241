"""A slash command as Mattermost sends it: check the token, read the form, answer within a second.

The reply must reach Mattermost quickly (it shows an error otherwise); a handler that takes longer
than the budget goes on in the background and its reply is posted through the outbox.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from bot.context import CommandContext, Reply
from bot.ids import is_mattermost_id
from bot.outbox import Post

if TYPE_CHECKING:
    from bot.runtime import Bot

logger = logging.getLogger("cpn.slash")


def token_ok(header: str | None, tokens: list[str]) -> bool:
    """``Authorization: Token <t>`` against every configured token, in constant time for each."""
    if not header:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "token" or not given:
        return False
    given_bytes = given.strip().encode()
    ok = False
    for token in tokens:
        ok |= hmac.compare_digest(given_bytes, token.encode())
    return ok


# mattermost/mattermost:server/channels/app/command.go (tryExecuteCustomCommand) sends about twenty
# fields, plus two per mention in the text: 200 leaves room for every real command.
MAX_FIELDS = 200
# The fields whose value reaches a Mattermost API path (/users/<id>, /channels/<id>).
ID_FIELDS = ("user_id", "channel_id", "team_id")


class BadForm(ValueError):
    """A slash form Mattermost would never send; ``reason`` is short English for the 400."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_form(body: bytes) -> dict[str, list[str]]:
    """The form of a slash command; :class:`BadForm` for one Mattermost would not send."""
    try:
        text = body.decode("utf-8")
        form = parse_qs(text, keep_blank_values=True, max_num_fields=MAX_FIELDS, errors="strict")
    except UnicodeDecodeError:  # raw bytes, or a %-escape that is not UTF-8
        raise BadForm("the form is not UTF-8") from None
    except ValueError:  # parse_qs: "Max number of fields exceeded"
        raise BadForm(f"the form has more than {MAX_FIELDS} fields") from None
    check_form(form)
    return form


def check_form(form: dict[str, list[str]]) -> None:
    """Ids that reach API paths must be Mattermost ids (bot.ids); an absent one gets the usage reply."""
    for key in ID_FIELDS:
        value = _first(form, key)
        if value and not is_mattermost_id(value):
            raise BadForm(f"{key} is not a Mattermost id")


def _first(form: dict[str, list[str]], key: str) -> str:
    values = form.get(key) or [""]
    return values[0]


def mentions_of(form: dict[str, list[str]]) -> dict[str, str]:
    """username → user id, from the parallel lists Mattermost adds for @mentions in the text."""
    names = form.get("user_mentions", [])
    ids = form.get("user_mentions_ids", [])
    return {n.lower(): i for n, i in zip(names, ids, strict=False) if is_mattermost_id(i)}


class SlashCommands:
    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self._background: set[asyncio.Task[Reply]] = set()

    def team_allowed(self, team_id: str, team_domain: str) -> bool:
        allowed = self.bot.config.mattermost.allowed_teams
        return not allowed or team_id in allowed or team_domain in allowed

    def context(self, form: dict[str, list[str]]) -> CommandContext:
        return CommandContext(
            bot=self.bot,
            user_id=_first(form, "user_id"),
            user_name=_first(form, "user_name"),
            channel_id=_first(form, "channel_id"),
            channel_name=_first(form, "channel_name"),
            team_id=_first(form, "team_id"),
            team_domain=_first(form, "team_domain"),
            trigger_id=_first(form, "trigger_id"),
            response_url=_first(form, "response_url"),
            mentions=mentions_of(form),
            lang=self.bot.config.language,
        )

    async def handle(self, form: dict[str, list[str]]) -> dict[str, Any]:
        ctx = self.context(form)
        if not self.team_allowed(ctx.team_id, ctx.team_domain):
            return Reply(ctx.tr("errors.team_not_allowed")).payload()
        if not ctx.user_id or not ctx.channel_id:
            return Reply(ctx.tr("errors.missing_arg", arg="user_id/channel_id")).payload()
        if not all(is_mattermost_id(v) for v in (ctx.user_id, ctx.channel_id)) or not (
            ctx.team_id == "" or is_mattermost_id(ctx.team_id)
        ):
            # Ids reach Mattermost API paths: "../../system/ping" is refused here, before any use.
            return Reply(ctx.tr("ids.invalid")).payload()
        task = asyncio.create_task(self.bot.dispatcher.run(ctx, _first(form, "text")))
        budget = self.bot.config.server.command_reply_budget_seconds
        done, _ = await asyncio.wait({task}, timeout=budget)
        if done:
            return task.result().payload()
        # Too slow for Mattermost's patience: answer now, post the real reply when it comes.
        self._background.add(task)
        task.add_done_callback(lambda t: self._late_reply(t, ctx))
        return Reply(ctx.tr("errors.still_running")).payload()

    def _late_reply(self, task: asyncio.Task[Reply], ctx: CommandContext) -> None:
        self._background.discard(task)
        if task.cancelled() or task.exception() is not None:
            return
        reply = task.result()
        post = Post(reply.text, tuple(reply.attachments), tuple(reply.props.items()))
        if reply.in_channel:
            self.bot.outbox.enqueue(ctx.channel_id, post, response_url=ctx.response_url)
        else:
            # Through the response URL first: an ephemeral by the API needs the system_admin role.
            self.bot.outbox.enqueue(ctx.channel_id, post, ephemeral_to=ctx.user_id, response_url=ctx.response_url)
