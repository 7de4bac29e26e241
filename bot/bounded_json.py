"""JSON bodies from the outside, parsed with bounds: every failure is a ``BadBody`` with a reason.

``json.loads`` alone lets hostile input through to the code behind it: ``1e999`` becomes ``inf``
(``OverflowError`` when turned into an int or a timestamp), ``NaN``/``Infinity`` are accepted,
``"\\ud800"`` yields a lone surrogate (``UnicodeEncodeError`` when logged, stored or posted), and
deep nesting raises ``RecursionError``. This module refuses each of them with a ``BadBody`` whose
reason the edge answers with a 400, so nothing behind it sees them.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

DEFAULT_MAX_DEPTH = 32
# A lone surrogate can only come from a \\uD800–\\uDFFF escape: valid UTF-8 cannot encode one.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class BadBody(ValueError):
    """A body refused at the edge; ``reason`` is short English for the 4xx answer."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _refuse_constant(name: str) -> Any:
    raise BadBody(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadBody("number out of range")
    return value


def loads(raw: bytes | str, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Parse ``raw`` as strict JSON: finite numbers, no lone surrogates, at most ``max_depth`` levels."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadBody("body is not UTF-8") from None
        escapes = _SURROGATE_ESCAPE.search(raw) is not None
    else:
        text = raw
        escapes = _SURROGATE_ESCAPE.search(raw.encode("utf-8", "surrogatepass")) is not None
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except BadBody:
        raise
    except RecursionError:
        raise BadBody("body nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and ints of more than 4300 digits
        raise BadBody(f"malformed JSON: {str(exc)[:80]}") from None
    _walk(value, max_depth, strings=escapes or not isinstance(raw, bytes))
    return value


def loads_object(raw: bytes | str, max_depth: int = DEFAULT_MAX_DEPTH) -> dict[str, Any]:
    """Like ``loads``, and the top level must be an object."""
    value = loads(raw, max_depth)
    if not isinstance(value, dict):
        raise BadBody("body must be a JSON object")
    return value


def _walk(value: Any, max_depth: int, strings: bool) -> None:
    """Refuse nesting deeper than ``max_depth`` and, if ``strings``, any lone surrogate.

    Iterative, over containers only unless strings are checked: a 25 MB GitLab body costs a few
    tens of milliseconds.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > max_depth:
                raise BadBody("body nested too deeply")
            for key, child in item.items():
                if strings:
                    _encodable(key)
                if isinstance(child, (dict, list)) or (strings and isinstance(child, str)):
                    stack.append((child, depth + 1))
        elif isinstance(item, list):
            if depth > max_depth:
                raise BadBody("body nested too deeply")
            stack.extend((child, depth + 1) for child in item if isinstance(child, (dict, list, str)))
        elif strings and isinstance(item, str):
            _encodable(item)


def _encodable(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadBody("string holds a lone surrogate") from None


def clean_text(text: str) -> str:
    """``text`` with lone surrogates replaced: for strings that do not come through ``loads``."""
    return text.encode("utf-8", "replace").decode("utf-8")
