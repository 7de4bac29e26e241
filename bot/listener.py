"""Messages people write to the bot: direct messages and mentions, over Mattermost's websocket.

:class:`bot.mm_socket.MattermostSocket` keeps the socket up (heartbeat, resume of missed events).
Each ``posted`` event that is a DM to the bot or mentions it goes to the registered message
handler (the support feature answers questions); by default the bot points to ``/cpn help``. A
post is handled once even when the server replays it, and after a reconnection the server could
not resume, the bot's channels are read back with ``since=`` so that nothing said meanwhile is lost.

Who wrote is read from the post's ``user_id``: the event's ``sender_name`` is a display name
("Alice Martin" with TeammateNameDisplay = full_name), not a username
(mattermost/mattermost server/channels/app/notification.go, model/user.go GetDisplayNameWithPrefix).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from bot.ids import is_mattermost_id
from bot.mm_socket import MattermostSocket, SocketOptions
from bot.outbox import Post, thread_of
from services.errors import ServiceError

if TYPE_CHECKING:
    from bot.runtime import Bot

logger = logging.getLogger("cpn.listener")
_HANDLED_MEMORY = 5000  # post ids remembered, so that a replayed event is not answered twice
_CATCH_UP_MARGIN_MS = 2000


@dataclass(frozen=True)
class Message:
    post_id: str
    root_id: str
    channel_id: str
    channel_type: str
    user_id: str
    username: str  # resolved from user_id; "" until then
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
    return read_event(event, bot_user_id, bot_username) if isinstance(event, dict) else None


def read_event(event: dict[str, Any], bot_user_id: str, bot_username: str) -> tuple[Message, bool] | None:
    """:func:`read_posted` of an event already decoded."""
    if event.get("event") != "posted":
        return None
    data = event.get("data") or {}
    if not isinstance(data, dict):
        return None
    try:
        post = json.loads(data.get("post", "{}"))
        mentions = json.loads(data["mentions"]) if data.get("mentions") else []
    except (ValueError, TypeError):
        return None
    if not isinstance(post, dict):
        return None
    return read_post(post, str(data.get("channel_type", "")), mentions, bot_user_id, bot_username)


def read_post(
    post: dict[str, Any], channel_type: str, mentions: list[Any], bot_user_id: str, bot_username: str
) -> tuple[Message, bool] | None:
    """A person's message from a post (of an event or of a since= look-up), and whether it is
    addressed to the bot."""
    if post.get("user_id") in ("", None, bot_user_id) or post.get("type") or post.get("delete_at"):
        return None
    if not _ids_valid(post):
        return None  # its ids would reach API paths (the author's, the channel's, the thread's)
    props = post.get("props")
    props = props if isinstance(props, dict) else {}
    if props.get("from_webhook") == "true" or props.get("from_bot") == "true":
        return None  # a command's in-channel answer, a webhook's or another bot's post: nobody is talking
    text = str(post.get("message", ""))
    direct = channel_type == "D"
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
        channel_type=channel_type,
        user_id=str(post.get("user_id", "")),
        username="",
        text=text,
    )
    return message, direct or mentioned


def _ids_valid(post: dict[str, Any]) -> bool:
    root = post.get("root_id") or ""
    return all(is_mattermost_id(post.get(key)) for key in ("id", "user_id", "channel_id")) and (
        root == "" or is_mattermost_id(root)
    )


class Listener:
    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self._task: asyncio.Task[None] | None = None
        self.socket: MattermostSocket | None = None
        self.received = 0
        self._handled: OrderedDict[str, None] = OrderedDict()

    def start(self) -> None:
        config = self.bot.config.mattermost
        options = SocketOptions(
            url=str(config.url),
            token=config.bot_token.get_secret_value(),
            ping_seconds=config.websocket_ping_seconds,
            reconnect_seconds=config.websocket_reconnect_seconds,
            open_timeout=config.timeout_seconds,
        )
        self.socket = MattermostSocket(options, self._on_message, self._catch_up, self._reconnected)
        self._task = asyncio.create_task(self.socket.run(), name="listener")

    def _reconnected(self, outcome: str) -> None:
        self.bot.metrics.inc("cpn_listener_reconnects_total", outcome=outcome)

    async def _on_message(self, event: dict[str, Any]) -> None:
        read = read_event(event, self.bot.mm.bot_user_id, self.bot.mm.bot_username)
        if read is not None:
            await self._handle(*read, sender_name=str(event["data"].get("sender_name", "")))

    async def _handle(self, message: Message, addressed: bool, sender_name: str = "") -> None:
        if not self._first_time(message.post_id):
            return  # replayed after a resume, or already read back by a catch-up
        try:
            if message.root_id or addressed:
                message = await self._with_username(message, sender_name)
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

    def _first_time(self, post_id: str) -> bool:
        if post_id in self._handled:
            return False
        self._handled[post_id] = None
        while len(self._handled) > _HANDLED_MEMORY:
            self._handled.popitem(last=False)
        return True

    async def _with_username(self, message: Message, sender_name: str) -> Message:
        # "@name" is a username (TeammateNameDisplay = username); anything else is a display name.
        fallback = sender_name[1:] if sender_name.startswith("@") else ""
        identity = await self.bot.identities.get(message.user_id, fallback_username=fallback)
        return replace(message, username=identity.username)

    async def _catch_up(self, since_ms: int) -> None:
        """The server lost what it should have replayed: read the bot's channels since then."""
        mm = self.bot.mm
        since = max(0, since_ms - _CATCH_UP_MARGIN_MS)
        try:
            for team in await mm.teams_of(mm.bot_user_id):
                for channel in await mm.channels_of(mm.bot_user_id, str(team["id"])):
                    for post in await mm.channel_posts_since(str(channel["id"]), since):
                        read = read_post(post, str(channel.get("type", "")), [], mm.bot_user_id, mm.bot_username)
                        if read is not None:
                            await self._handle(*read)
        except ServiceError as exc:
            logger.warning("catch-up after a websocket loss failed", extra={"fields": {"error": str(exc)}})

    async def stop(self) -> None:
        if self.socket is not None:
            with contextlib.suppress(Exception):
                await self.socket.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
