"""Messages people write to the bot: direct messages and mentions, over Mattermost's websocket.

The websocket client of mattermostautodriver authenticates with the bot token and reconnects on
its own. Each ``posted`` event that is a DM to the bot or mentions it goes to the registered message
handler (the support feature answers questions); by default the bot points to ``/cpn help``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mattermostautodriver import Websocket

from bot.outbox import Post, thread_of
from services.mattermost import driver_options

if TYPE_CHECKING:
    from bot.runtime import Bot

logger = logging.getLogger("cpn.listener")


@dataclass(frozen=True)
class Message:
    post_id: str
    root_id: str
    channel_id: str
    channel_type: str
    user_id: str
    sender_name: str
    text: str

    @property
    def thread_id(self) -> str:
        return self.root_id or self.post_id


MessageHandler = Callable[[Message, "Bot"], Awaitable[None]]
HANDLERS: list[MessageHandler] = []
# Replies in threads the bot follows (a ticket's): each returns True when it took the message.
ThreadHandler = Callable[[Message, "Bot"], Awaitable[bool]]
THREAD_HANDLERS: list[ThreadHandler] = []


def on_thread_reply(handler: ThreadHandler) -> ThreadHandler:
    THREAD_HANDLERS.append(handler)
    return handler


def on_message(handler: MessageHandler) -> MessageHandler:
    """Register the handler of messages addressed to the bot (the last registered wins)."""
    HANDLERS.append(handler)
    return handler


async def default_handler(message: Message, bot: Bot) -> None:
    bot.outbox.enqueue(
        message.channel_id,
        Post(bot.tr("listener.hello", trigger=bot.config.mattermost.trigger)),
        root_key=thread_of(message.thread_id),
    )


def _mention_of(username: str) -> re.Pattern[str]:
    """``@username`` as Mattermost reads it: any case, not followed by more of a username."""
    return re.compile(rf"@{re.escape(username)}(?![\w.\-]*[\w\-])", re.IGNORECASE)


def parse_posted(raw: str, bot_user_id: str, bot_username: str) -> Message | None:
    """The message of a ``posted`` event if it is addressed to the bot, else None."""
    read = read_posted(raw, bot_user_id, bot_username)
    return read[0] if read is not None and read[1] else None


def read_posted(raw: str, bot_user_id: str, bot_username: str) -> tuple[Message, bool] | None:
    """A person's message from a ``posted`` event, and whether it is addressed to the bot."""
    try:
        event = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(event, dict) or event.get("event") != "posted":
        return None
    data = event.get("data") or {}
    try:
        post = json.loads(data.get("post", "{}"))
        mentions = json.loads(data["mentions"]) if data.get("mentions") else []
    except (ValueError, TypeError):
        return None
    if not isinstance(post, dict) or post.get("user_id") in ("", None, bot_user_id) or post.get("type"):
        return None
    props = post.get("props")
    props = props if isinstance(props, dict) else {}
    if props.get("from_webhook") == "true" or props.get("from_bot") == "true":
        return None  # a command's in-channel answer, a webhook's or another bot's post: nobody is talking
    text = str(post.get("message", ""))
    direct = data.get("channel_type") == "D"
    if bot_username:
        # Only a mention by name: @channel, @all and @here also list the bot in ``mentions``.
        mention = _mention_of(bot_username)
        mentioned = bool(mention.search(text))
        text = mention.sub("", text).strip()
    else:
        mentioned = bot_user_id in mentions and not re.search(r"@(?:all|channel|here)\b", text, re.IGNORECASE)
    message = Message(
        post_id=str(post.get("id", "")),
        root_id=str(post.get("root_id", "")),
        channel_id=str(post.get("channel_id", "")),
        channel_type=str(data.get("channel_type", "")),
        user_id=str(post.get("user_id", "")),
        sender_name=str(data.get("sender_name", "")).lstrip("@"),
        text=text,
    )
    return message, direct or mentioned


class Listener:
    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self._task: asyncio.Task[None] | None = None
        self._socket: Websocket | None = None
        self.received = 0

    def start(self) -> None:
        config = self.bot.config.mattermost
        options = driver_options(str(config.url), config.bot_token.get_secret_value(), config.timeout_seconds)
        options.update({"debug": False, "verify": True, "proxy": None, "websocket_kw_args": None})
        self._socket = Websocket(options, config.bot_token.get_secret_value())
        self._task = asyncio.create_task(self._socket.connect(self._on_event))

    async def _on_event(self, raw: Any) -> None:
        if not isinstance(raw, str):
            return
        read = read_posted(raw, self.bot.mm.bot_user_id, self.bot.mm.bot_username)
        if read is None:
            return
        message, addressed = read
        try:
            if message.root_id:
                for thread_handler in THREAD_HANDLERS:
                    if await thread_handler(message, self.bot):
                        return
            if not addressed:
                return
            self.received += 1
            handler = HANDLERS[-1] if HANDLERS else default_handler
            await handler(message, self.bot)
        except Exception:
            logger.exception("message handler failed")

    async def stop(self) -> None:
        if self._socket is not None:
            self._socket.disconnect()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
