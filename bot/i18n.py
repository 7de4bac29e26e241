"""Every user-facing text, by key, in French (the default) and English.

The catalogs are TOML files in ``bot/locales``; nested tables are flattened into dotted keys
(``[errors] unknown_command = "…"`` is ``errors.unknown_command``). Placeholders use ``str.format``
syntax. A test checks that both catalogs have the same keys and the same placeholders.
"""

from __future__ import annotations

import string
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

Lang = Literal["fr", "en"]
LANGS: tuple[Lang, ...] = ("fr", "en")
DEFAULT_LANG: Lang = "fr"
LOCALES = Path(__file__).with_name("locales")


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in table.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, full + "."))
        else:
            flat[full] = str(value)
    return flat


@cache
def catalog(lang: Lang) -> dict[str, str]:
    with (LOCALES / f"{lang}.toml").open("rb") as handle:
        return _flatten(tomllib.load(handle))


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def t(key: str, lang: Lang = DEFAULT_LANG, /, **params: Any) -> str:
    """The text for ``key`` in ``lang``, with ``params`` filled in; falls back to French, then the key."""
    text = catalog(lang).get(key) or catalog(DEFAULT_LANG).get(key)
    if text is None:
        return key
    return text.format_map(_Params(params)) if params else text


def plural_form(lang: str, count: int) -> Literal["one", "other"]:
    """CLDR's cardinal category: French takes the singular for 0 and 1, English for 1 only."""
    if lang == "en":
        return "one" if count == 1 else "other"
    return "one" if count in (0, 1) else "other"


def tn(key: str, count: int, lang: Lang = DEFAULT_LANG, /, **params: Any) -> str:
    """A counted text: ``key`` is a catalog entry with ``one`` and ``other`` forms, ``{count}`` filled in."""
    return t(f"{key}.{plural_form(lang, count)}", lang, count=count, **params)


class _Params(dict[str, Any]):
    """A missing placeholder shows as itself rather than crashing a reply."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@dataclass(frozen=True)
class Text:
    """A text declared inline in both languages (command help lives with its declaration)."""

    fr: str
    en: str

    def __call__(self, lang: str) -> str:
        return self.en if lang == "en" else self.fr


@dataclass(frozen=True)
class Translator:
    """``t`` bound to one language: what handlers and renderers receive."""

    lang: Lang = DEFAULT_LANG

    def __call__(self, key: str, /, **params: Any) -> str:
        return t(key, self.lang, **params)

    def plural(self, key: str, count: int, /, **params: Any) -> str:
        return tn(key, count, self.lang, **params)
