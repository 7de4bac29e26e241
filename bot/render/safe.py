"""User text echoed back in a post, made harmless.

Mattermost would turn ``@channel`` into a notification for everyone and ``[x](https://evil)`` into
a link; text from users (a project description, a question) is shown as typed but inert.
"""

from __future__ import annotations

import re

_MARKDOWN = re.compile(r"([\\*_{}\[\]()#+!|~>])")
# What Mattermost acts on in plain text, each of which is shown in a code span instead: the webapp
# renders a code span literally (webapp/channels/src/utils/text_formatting.tsx doFormatText, which
# makes @mentions, ~channels and links, runs on text nodes only) and the server strips code spans before
# looking for mentions (server/channels/app/notification.go removeCodeFromMessage), so the text copies
# back exactly as typed, without an invisible character in it.
_LIVE = re.compile(
    r"(?<![^\W_])@[\w.\-]+"  # @channel, @all, @here, @user: after no letter or digit (server/channels/app
    # notification.go splits words on what cannot be in a mention; an e-mail's @ follows a letter)
    r"|(?<![^\W_])(?<!~)~(?!~)[\w.\-]+"  # ~town-square (text_formatting.tsx autolinkChannelMentions)
    r"|(?i:(?<!\w)(?:(?:https?|ftp|mattermost)://|mailto:|tel:|www\.)[^\s<>`]*[^\s<>`.,;:!?'\")\]])"  # a link
)


def escape(text: str, max_len: int = 300, mentions: bool = True) -> str:
    """Inert inline text: markdown escaped; mentions, channel names and addresses in code spans.

    ``mentions=False`` keeps ``@`` as plain text, for text that cannot hold a mention (an e-mail address).
    """
    # A backtick cannot be escaped: the server's removeCodeFromMessage ignores backslashes, so "\`" would
    # still open a code span there and shift every span after it, leaving a later @channel live.
    text = text.replace("\r", " ").replace("\n", " ").replace("`", "ʼ")
    if len(text) > max_len:
        text = text[: max_len - 1] + "…"
    shown: list[str] = []
    done = 0
    for live in _LIVE.finditer(text):
        if not mentions and live.group().startswith("@"):
            continue
        shown += [_MARKDOWN.sub(r"\\\1", text[done : live.start()]), f"`{live.group()}`"]
        done = live.end()
    shown.append(_MARKDOWN.sub(r"\\\1", text[done:]))
    return "".join(shown)


def url(text: str, max_len: int = 200) -> str:
    """An address shown for copying, exactly as stored: in a code span, which Mattermost renders
    literally (no auto-link) and strips before looking for mentions (mattermost/mattermost,
    app/notification.go ``removeCodeFromMessage``), so nothing invisible needs inserting into it."""
    return code(text, max_len)


def code(text: str, max_len: int = 80) -> str:
    """Short user text in an inline code span (backticks removed: they would close it)."""
    text = text.replace("`", "ʼ").replace("\n", " ")
    if len(text) > max_len:
        text = text[: max_len - 1] + "…"
    return f"`{text}`" if text else "``"
