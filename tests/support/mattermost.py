"""A Mattermost user in tests, through the real client library against the emulator."""

from __future__ import annotations

import re
from typing import Any

from mattermostautodriver import TypedDriver

from bot.sandbox.world import World
from services.mattermost import driver_options


class User:
    def __init__(self, world: World, username: str) -> None:
        self.world = world
        self.me = world.users[username]
        self.driver = TypedDriver(driver_options(world.servers["mattermost"].url, self.me.token, 10))
        self.driver.login()

    def run(self, command: str, channel: str = "equipe-alpha") -> dict[str, Any]:
        """Type ``command`` (e.g. ``/cpn help``) in ``channel``; the command's answer."""
        result: dict[str, Any] = self.driver.commands.execute_command(self.world.channels[channel], command)
        return result

    def say(self, message: str, channel: str = "equipe-alpha", root_id: str = "") -> dict[str, Any]:
        post: dict[str, Any] = self.driver.posts.create_post(
            self.world.channels[channel], message, root_id=root_id or None
        )
        return post

    def press(self, post_id: str, action_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.driver.posts.do_post_action(post_id, action_id)
        return result


def text_of(answer: dict[str, Any]) -> str:
    """Everything a person reads in a command's answer: text and attachments."""
    parts = [answer.get("text") or ""]
    props = answer.get("props") or {}
    for attachment in (props.get("attachments") or []) + (answer.get("attachments") or []):
        parts += [attachment.get("title", ""), attachment.get("text", ""), attachment.get("pretext", "")]
        parts += [f"{f.get('title')}: {f.get('value')}" for f in attachment.get("fields") or []]
    return "\n".join(p for p in parts if p)


def channel_posts(world: World, channel: str) -> list[dict[str, Any]]:
    """The channel's posts, oldest first, as the emulator holds them."""
    posts: list[dict[str, Any]] = world.states["mattermost"].channel_posts(world.channels[channel])
    return posts


# Mattermost's inline code pattern (server/channels/app/notification.go removeCodeFromMessage): what it
# matches is replaced by a space before mentions are looked for, and the webapp renders it literally.
# Go's `(.*?\S.*?\n)*` is linear in RE2; Python backtracks through every way of matching each line, so the
# line is matched one way only (blanks, its first non-blank, the rest): the same spans, in linear time.
_CODE_SPAN = re.compile(r"`+(?:.+?|.*?\n(?:[^\S\n]*\S.*\n)*.*?)`+")


def live_mentions(text: str) -> set[str]:
    """The @words Mattermost's server would take as mentions in ``text`` (app.GetExplicitMentions: code
    removed, words split on what cannot be in a mention, then again on ``.``, ``-`` and ``:``)."""
    found: set[str] = set()
    for word in re.split(r"[^:.\-_@\w]", _CODE_SPAN.sub(" ", text)):
        for part in (word, *re.split(r"[.\-:]", word)):
            if part.startswith("@") and len(part) > 1:
                found.add(part.lower())
    return found


def live_links(text: str) -> list[str]:
    """Markdown links and auto-linked addresses the webapp would make of ``text`` outside code spans
    (a backslash-escaped character makes no syntax)."""
    plain = re.sub(r"\\.", "", _CODE_SPAN.sub(" ", text))
    return re.findall(r"\]\(|(?i:\b(?:https?|ftp)://|\bwww\.)", plain)


def assert_inert(text: str) -> None:
    """User text shown back: no live mention, no link made from it, and no invisible character in it."""
    assert not live_mentions(text) & {"@all", "@channel", "@here"}, text
    assert not live_links(text), text
    assert "\u2060" not in text, text
