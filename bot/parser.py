"""From the text after ``/cpn`` to validated values, following a :class:`~bot.spec.CommandSpec`.

Never raises anything but :class:`UsageError`: whatever a user types (unbalanced quotes, unknown
flags, control characters, ten kilobytes of text) ends in a usage message, not in a 500.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bot.spec import ArgError, CommandSpec

# Chat clients "improve" what people type: typographic quotes, French guillemets, and "--" turned
# into an em dash. Undo that before splitting so that the command means what the user meant.
_TYPOGRAPHY = str.maketrans(
    {
        "“": '"',
        "”": '"',
        "„": '"',
        "«": '"',
        "»": '"',
        "‘": "'",
        "’": "'",
        "\u00a0": " ",
        "\u202f": " ",
    }
)

MAX_TEXT = 20_000


class UsageError(Exception):
    """The text does not fit the command; ``key``/``params`` say why (catalog entry)."""

    def __init__(self, key: str, spec: CommandSpec | None = None, **params: Any) -> None:
        super().__init__(key)
        self.key = key
        self.spec = spec
        self.params = params


@dataclass(frozen=True)
class Token:
    word: str
    start: int  # offset in the cleaned text: a greedy argument takes the text from there, as typed


_GUILLEMETS = re.compile(r"«\s*|\s*»")


def clean(text: str) -> str:
    if len(text) > MAX_TEXT:
        raise UsageError("errors.too_long", max=MAX_TEXT)
    text = _GUILLEMETS.sub('"', text)  # « Mon projet » : French spacing inside guillemets
    return "".join(ch if ch.isprintable() else " " for ch in text.translate(_TYPOGRAPHY))


def tokenize(text: str) -> list[Token]:
    """Split on white space; quotes group words only where a word (or a ``--flag=`` value) starts.

    An apostrophe inside a word stays a letter (``l'application``), which ``shlex`` would take for
    an opening quote: French is full of them.
    """
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        start = i
        word: list[str] = []
        while i < n and not text[i].isspace():
            ch = text[i]
            if ch in "\"'" and (i == start or text[i - 1] == "="):
                close = text.find(ch, i + 1)
                while close != -1 and ch == '"' and text[close - 1] == "\\":
                    close = text.find(ch, close + 1)
                if close == -1:
                    raise UsageError("errors.quotes")
                word.append(text[i + 1 : close].replace('\\"', '"'))
                i = close + 1
                continue
            word.append(ch)
            i += 1
        value = "".join(word)
        if value.startswith("—"):
            value = "--" + value[1:]
        tokens.append(Token(value, start))
    return tokens


def parse_args(spec: CommandSpec, tokens: list[Token], text: str) -> dict[str, Any]:
    """Split ``tokens`` into the spec's flags and positional arguments, each validated.

    A greedy last argument (a question, a message) takes the rest of ``text`` as typed, from its
    first word on; flags must come before it.
    """
    greedy_at = len(spec.args) - 1 if spec.args and spec.args[-1].greedy else None
    positional: list[Token] = []
    values: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        word = tokens[i].word
        # Once the greedy text has started (its first word taken), what follows is text, flags included.
        in_greedy = greedy_at is not None and len(positional) > greedy_at
        if word == "--" and not in_greedy:
            positional.extend(tokens[i + 1 :])
            break
        if word.startswith("--") and len(word) > 2 and not in_greedy:
            name, has_value, raw = word[2:].partition("=")
            flag = spec.flag(name.lower())
            if flag is None:
                raise UsageError("errors.unknown_flag", spec, flag=word[:60])
            if flag.name in values:
                raise UsageError("errors.duplicate_flag", spec, flag=f"--{flag.name}")
            if flag.value is None:
                if has_value:
                    raise UsageError("errors.flag_takes_no_value", spec, flag=f"--{flag.name}")
                values[flag.name] = True
            else:
                if not has_value:
                    i += 1
                    if i >= len(tokens):
                        raise UsageError("errors.flag_needs_value", spec, flag=f"--{flag.name}")
                    raw = tokens[i].word
                try:
                    values[flag.name] = flag.value.validate(raw)
                except ArgError as exc:
                    raise UsageError(exc.key, spec, **exc.params) from None
        else:
            positional.append(tokens[i])
        i += 1

    for flag in spec.flags:
        if flag.required and flag.name not in values:
            raise UsageError("errors.missing_flag", spec, flag=f"--{flag.name}")
        for other in flag.excludes:
            if values.get(flag.name) and values.get(other):
                raise UsageError("errors.exclusive_flags", spec, a=f"--{flag.name}", b=f"--{other}")
        values.setdefault(flag.name, flag.default if flag.value is not None else bool(flag.default))

    for index, arg in enumerate(spec.args):
        raw_value: str | None
        if arg.greedy:
            raw_value = text[positional[index].start :].strip() if index < len(positional) else None
        else:
            raw_value = positional[index].word if index < len(positional) else None
        if raw_value is None or raw_value == "":
            if arg.required:
                raise UsageError("errors.missing_arg", spec, arg=arg.label_text())
            values[arg.name] = None
            continue
        try:
            values[arg.name] = arg.kind.validate(raw_value)
        except ArgError as exc:
            raise UsageError(exc.key, spec, arg=arg.label_text(), **exc.params) from None
    if greedy_at is None and len(positional) > len(spec.args):
        raise UsageError("errors.too_many_args", spec, extra=positional[len(spec.args)].word[:60])
    return values
