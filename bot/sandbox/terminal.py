"""A Mattermost post drawn for a terminal: pure functions, no I/O.

Markdown is rendered lightly (bold, italics, code spans and blocks, headings, links, lists);
attachments get a bar in their ``color``, their title, text and fields, and their buttons are listed
``[1] Confirmer  [2] Annuler`` so the chat can press them by number. Colour follows the usual
conventions: ``NO_COLOR`` (any non-empty value) disables it, ``FORCE_COLOR`` enables it, otherwise
it is on for a terminal whose ``TERM`` is not ``dumb``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

RESET = "\x1b[0m"
BOLD = "\x1b[1m"
DIM = "\x1b[2m"
ITALIC = "\x1b[3m"
UNDERLINE = "\x1b[4m"
CODE = "\x1b[36m"  # cyan

# Slack's named colours, accepted by Mattermost for attachments.
NAMED_COLORS = {"good": "#2eb886", "warning": "#daa038", "danger": "#a30200"}
DEFAULT_BAR = "#dddddd"

_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
_HEX_RE = re.compile(r"^#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")
_CODE_SPAN_RE = re.compile(r"`([^`\n]+)`")
_BOLD_RE = re.compile(r"\*\*(.+?)\*\*|__(.+?)__")
_ESCAPED_RE = re.compile(r"\\([\\`*_{}\[\]()#+!|~>.\-])")
_ITALIC_RE = re.compile(r"(?<![\w*])\*(?!\s)([^*\n]+?)\*(?![\w*])|(?<![\w_])_(?!\s)([^_\n]+?)_(?![\w_])")
_LINK_RE = re.compile(r"\[([^\]\n]+)\]\(([^)\s]+)\)")
_HEADING_RE = re.compile(r"^(#{1,6})\s+(.*)$")
_LIST_RE = re.compile(r"^(\s*)[-*+]\s+(.*)$")
_FENCE_RE = re.compile(r"^\s*```")


@dataclass(frozen=True)
class Style:
    """How to draw: with ANSI colours or not, and with 24-bit colours or the 256-colour palette."""

    color: bool = False
    truecolor: bool = True

    def wrap(self, code: str, text: str) -> str:
        return f"{code}{text}{RESET}" if self.color and text else text


def detect_style(stream: TextIO | None, env: Mapping[str, str]) -> Style:
    """The style for ``stream`` given the environment (NO_COLOR wins over everything)."""
    if env.get("NO_COLOR"):
        return Style(color=False)
    truecolor = env.get("COLORTERM", "").lower() in ("truecolor", "24bit")
    if env.get("FORCE_COLOR"):
        return Style(color=True, truecolor=truecolor)
    isatty = bool(stream is not None and hasattr(stream, "isatty") and stream.isatty())
    return Style(color=isatty and env.get("TERM", "") != "dumb", truecolor=truecolor)


@dataclass(frozen=True)
class Labels:
    """The few words the renderer writes itself (the chat gives them in its language)."""

    edited: str = "(modifié)"
    ephemeral: str = "(visible par vous seulement)"
    reply_to: str = "en réponse à"


@dataclass(frozen=True)
class Action:
    """A button (or menu) of an attachment, as clients see it: no integration, only id and name.

    ``cookie`` is set on the buttons of ephemeral posts: the server stores no such post, so the
    client sends the cookie back when the button is pressed.
    """

    id: str
    name: str
    type: str = "button"
    options: list[tuple[str, str]] = field(default_factory=list)  # (text, value) of a select
    data_source: str = ""
    cookie: str = ""


def strip_ansi(text: str) -> str:
    return _ANSI_RE.sub("", text)


# -- colours -------------------------------------------------------------------------------------


def parse_color(value: str | None) -> tuple[int, int, int] | None:
    """``#RRGGBB``, ``#RGB`` or a Slack name → (r, g, b); None when unusable."""
    if not value:
        return None
    value = NAMED_COLORS.get(value.strip().lower(), value.strip())
    match = _HEX_RE.match(value)
    if not match:
        return None
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def _to_256(rgb: tuple[int, int, int]) -> int:
    r, g, b = rgb
    if abs(r - g) < 10 and abs(g - b) < 10:  # a grey: use the grey ramp
        if r < 8:
            return 16
        if r > 248:
            return 231
        return 232 + round((r - 8) / 247 * 24)
    return 16 + 36 * round(r / 255 * 5) + 6 * round(g / 255 * 5) + round(b / 255 * 5)


def fg_code(rgb: tuple[int, int, int], style: Style) -> str:
    if style.truecolor:
        return f"\x1b[38;2;{rgb[0]};{rgb[1]};{rgb[2]}m"
    return f"\x1b[38;5;{_to_256(rgb)}m"


def color_bar(color: str | None, style: Style) -> str:
    """The left bar of an attachment: a coloured block, or ``|`` without colours."""
    if not style.color:
        return "|"
    rgb = parse_color(color) or parse_color(DEFAULT_BAR)
    assert rgb is not None
    return f"{fg_code(rgb, style)}▌{RESET}"


# -- markdown ------------------------------------------------------------------------------------


def render_inline(text: str, style: Style) -> str:
    """Code spans, bold, italics and links of one line."""
    spans: list[str] = []

    def keep_code(match: re.Match[str]) -> str:
        code = match.group(1)
        spans.append(style.wrap(CODE, code) if style.color else f"`{code}`")
        return f"\x00{len(spans) - 1}\x00"

    out = _CODE_SPAN_RE.sub(keep_code, text)
    out = _LINK_RE.sub(lambda m: m.group(1) if m.group(1) == m.group(2) else f"{m.group(1)} <{m.group(2)}>", out)
    out = _BOLD_RE.sub(lambda m: style.wrap(BOLD, m.group(1) or m.group(2)), out)
    out = _ITALIC_RE.sub(lambda m: style.wrap(ITALIC, m.group(1) or m.group(2)), out)
    out = _ESCAPED_RE.sub(r"\1", out)  # \_ shows as _ in Mattermost, and so here
    return re.sub(r"\x00(\d+)\x00", lambda m: spans[int(m.group(1))], out)


def render_markdown(text: str, style: Style) -> str:
    """Mattermost markdown, lightly: headings bold, lists with bullets, code blocks dimmed."""
    lines: list[str] = []
    in_code = False
    for line in text.splitlines():
        if _FENCE_RE.match(line):
            in_code = not in_code
            continue
        if in_code:
            lines.append("    " + style.wrap(DIM, line))
            continue
        heading = _HEADING_RE.match(line)
        if heading:
            title = render_inline(heading.group(2).strip(), Style(color=False))
            lines.append(style.wrap(BOLD + UNDERLINE, title) if style.color else title.upper())
            continue
        item = _LIST_RE.match(line)
        if item:
            lines.append(f"{item.group(1)}• {render_inline(item.group(2), style)}")
            continue
        lines.append(render_inline(line, style))
    return "\n".join(lines)


# -- posts ---------------------------------------------------------------------------------------


def attachments_of(post: Mapping[str, Any]) -> list[dict[str, Any]]:
    props = post.get("props") or {}
    found = props.get("attachments") if isinstance(props, dict) else None
    if not found:
        found = post.get("attachments")  # a command response carries them at the top level too
    return [a for a in found or [] if isinstance(a, dict)]


def post_actions(post: Mapping[str, Any]) -> list[Action]:
    """The post's actions in display order (numbered from 1 by :func:`render_actions`)."""
    actions: list[Action] = []
    for attachment in attachments_of(post):
        for raw in attachment.get("actions") or []:
            if not isinstance(raw, dict) or not raw.get("id"):
                continue
            options = [
                (str(o.get("text", "")), str(o.get("value", "")))
                for o in raw.get("options") or []
                if isinstance(o, dict)
            ]
            actions.append(
                Action(
                    id=str(raw["id"]),
                    name=str(raw.get("name") or raw["id"]),
                    type=str(raw.get("type") or "button"),
                    options=options,
                    data_source=str(raw.get("data_source") or ""),
                    cookie=str(raw.get("cookie") or ""),
                )
            )
    return actions


def render_actions(actions: list[Action], style: Style, start: int = 1) -> str:
    """``[1] Confirmer  [2] Annuler`` (a menu ends with ``▾``)."""
    items = []
    for number, action in enumerate(actions, start):
        label = action.name + (" ▾" if action.type == "select" else "")
        items.append(f"{style.wrap(BOLD, f'[{number}]')} {label}")
    return "  ".join(items)


def render_attachment(attachment: Mapping[str, Any], style: Style, actions_from: int = 1) -> list[str]:
    """Lines of one attachment, each behind the colour bar."""
    body: list[str] = []
    if attachment.get("pretext"):
        body.append(render_markdown(str(attachment["pretext"]), style))
    if attachment.get("author_name"):
        body.append(style.wrap(DIM, str(attachment["author_name"])))
    title = str(attachment.get("title") or "")
    if title:
        link = str(attachment.get("title_link") or "")
        shown = style.wrap(BOLD, render_inline(title, Style(color=False))) if style.color else title
        body.append(f"{shown} <{link}>" if link else shown)
    if attachment.get("text"):
        body.append(render_markdown(str(attachment["text"]), style))
    for item in attachment.get("fields") or []:
        if not isinstance(item, dict):
            continue
        name = str(item.get("title") or "")
        value = render_markdown(str(item.get("value") or ""), style)
        if name:
            head = style.wrap(BOLD, f"{name} :") if style.color else f"{name} :"
            body.append(f"{head} {value}" if "\n" not in value else f"{head}\n{value}")
        elif value:
            body.append(value)
    if attachment.get("image_url"):
        body.append(f"[image] {attachment['image_url']}")
    actions = post_actions({"props": {"attachments": [attachment]}})
    if actions:
        body.append(render_actions(actions, style, actions_from))
    if attachment.get("footer"):
        body.append(style.wrap(DIM, str(attachment["footer"])))
    if not body and attachment.get("fallback"):
        body.append(str(attachment["fallback"]))
    bar = color_bar(str(attachment.get("color") or "") or None, style)
    return [f"{bar} {line}" if line else bar for chunk in body for line in chunk.split("\n")]


def excerpt(text: str, width: int = 40) -> str:
    """One short line of a message, markdown markers dropped, for thread references."""
    flat = " ".join(strip_ansi(render_markdown(text, Style(color=False))).split())
    return flat if len(flat) <= width else flat[: width - 1].rstrip() + "…"


def render_post(
    post: Mapping[str, Any],
    *,
    author: str,
    style: Style,
    labels: Labels | None = None,
    ref: str = "",
    channel: str = "",
    edited: bool = False,
    ephemeral: bool = False,
    root: tuple[str, str] | None = None,
) -> str:
    """A post as terminal lines.

    ``ref`` is the short reference the chat gives the post (``#3``), ``channel`` a label shown
    when the post is not in the current channel, ``root`` (reference, excerpt) of the thread's root
    post for a reply: the reply is then indented under ``↳ en réponse à #1 « … »``.
    """
    labels = labels or Labels()
    head = [style.wrap(DIM, ref)] if ref else []
    if channel:
        head.append(style.wrap(DIM, f"[{channel}]"))
    head.append(style.wrap(BOLD, author))
    if ephemeral:
        head.append(style.wrap(DIM, labels.ephemeral))
    if edited:
        head.append(style.wrap(ITALIC, labels.edited))
    lines = [" ".join(head), *post_body(post, style)]
    if root is not None:
        root_ref, root_text = root
        pointer = f"↳ {labels.reply_to} {root_ref}".rstrip()
        if root_text:
            pointer += f" « {root_text} »"
        lines = [style.wrap(DIM, pointer)] + ["    " + line for line in lines]
    return "\n".join(lines)


def post_body(post: Mapping[str, Any], style: Style) -> list[str]:
    """The lines of a post under its author line: its message, then its attachments."""
    lines: list[str] = []
    message = str(post.get("message") or "")
    if message:
        lines += ["  " + line for line in render_markdown(message, style).split("\n")]
    number = 1
    for attachment in attachments_of(post):
        lines += ["  " + line for line in render_attachment(attachment, style, number)]
        number += len(post_actions({"props": {"attachments": [attachment]}}))
    return lines


def changed_lines(before: Sequence[str], after: Sequence[str], style: Style) -> list[str]:
    """What an edit changed, for a terminal that already shows ``before``: the lines of ``after``
    that are new or changed, in order, and each line gone as ``− line`` (dimmed).

    A progress card edited at every step then costs a line or two per step, not the whole card.
    """
    shown: list[str] = []
    matcher = difflib.SequenceMatcher(a=list(before), b=list(after), autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        shown += after[j1:j2]
        # Lines replaced by fewer lines, or deleted: the ones left over are gone.
        gone = before[i1 + (j2 - j1) : i2] if tag == "replace" else before[i1:i2]
        for line in gone:
            bare = line.lstrip()
            shown.append(line[: len(line) - len(bare)] + style.wrap(DIM, "− " + strip_ansi(bare)))
    return shown


def render_edit(
    before: Sequence[str],
    after: Sequence[str],
    *,
    title: str,
    style: Style,
    ref: str = "",
    channel: str = "",
    reply: bool = False,
) -> str:
    """An edit of a post already shown: ``✎ #2 <title>`` then :func:`changed_lines`; "" when
    nothing visible changed. ``before`` and ``after`` are :func:`post_body` lines; ``reply``
    indents it all as replies are."""
    changed = changed_lines(before, after, style)
    if not changed:
        return ""
    head = ["✎"]
    if ref:
        head.append(style.wrap(DIM, ref))
    if channel:
        head.append(style.wrap(DIM, f"[{channel}]"))
    if title:
        head.append(style.wrap(BOLD, title))
    indent = "    " if reply else ""
    return "\n".join(indent + line for line in [" ".join(head), *changed])
