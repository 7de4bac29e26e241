"""User text echoed back in a post, made harmless.

Mattermost would turn ``@channel`` into a notification for everyone and ``[x](https://evil)`` into
a link; text from users (a project description, a question) is shown as typed but inert.
"""

from __future__ import annotations

import re

_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+!|~>])")
_MENTION = re.compile(r"@(?=[\w.\-])")
_CHANNEL_REF = re.compile(r"~(?=[\w\-])")
_AUTOLINK = re.compile(r"(?i)\b(https?|ftp|mailto)(:)")


def escape(text: str, max_len: int = 300, mentions: bool = True) -> str:
    """Inert inline text: markdown escaped, mentions and auto-links broken with a word joiner.

    ``mentions=False`` keeps ``@`` as is, for text that cannot hold a mention (an e-mail address).
    """
    text = text.replace("\r", " ").replace("\n", " ")
    if len(text) > max_len:
        text = text[: max_len - 1] + "…"
    text = _MARKDOWN.sub(r"\\\1", text)
    if mentions:
        text = _MENTION.sub("@\u2060", text)
    text = _CHANNEL_REF.sub("~\u2060", text)
    return _AUTOLINK.sub("\\1\u2060\\2", text)


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
