"""Every ``/cpn …`` a reply tells people to type is a command the bot accepts, in both languages.

The catalog's hints (``/cpn project replay {project}``, ``/cpn support``…) are parsed with the real
registry and parser, as the knowledge base's examples are (tests/kb/test_examples.py): its
``{placeholders}`` and ``<placeholders>`` replaced by valid values first. A hint with ``…`` stands
for a family of commands (``/cpn deploy … --image-tag``): only its command words are checked.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import commands  # noqa: F401  (declares every command in REGISTRY)
from bot.spec import REGISTRY
from tests.kb.test_examples import PLACEHOLDERS, check

LOCALES = Path(__file__).resolve().parents[2] / "bot" / "locales"
_SPAN = re.compile(r"`(/cpn [^`\n]+)`")
_FIELD = re.compile(r"\{(\w+)\}")
# The catalog's {fields} in commands, and the English <placeholders> beside the French ones.
VALUES = {"project": "alpha", "name": "alpha", "repo": "api", "env": "dev", "stage": "dev", "trigger": "/cpn"}
ENGLISH = {"name": "alpha", "repo": "api", "KEY": "API_KEY", "project": "alpha", "cluster": "c1", "env": "dev"}


def hints() -> Iterator[tuple[str, str]]:
    def walk(table: dict[str, Any], prefix: str) -> Iterator[tuple[str, str]]:
        for key, value in table.items():
            if isinstance(value, dict):
                yield from walk(value, f"{prefix}{key}.")
            elif isinstance(value, str):
                for example in _SPAN.findall(value):
                    yield f"{prefix}{key}", example

    for path in sorted(LOCALES.glob("*.toml")):
        yield from walk(tomllib.loads(path.read_text()), f"{path.stem}:")


HINTS = sorted(set(hints()))


def filled(example: str) -> str:
    text = _FIELD.sub(lambda m: VALUES.get(m.group(1), m.group(0)), example)
    if "…" in text:
        # A family of commands: what comes before, without the flag whose value is left open.
        text = re.sub(r"\s--[\w-]+$", "", text.split("…", 1)[0].strip())
    return re.sub(r"<(\w+)>", lambda m: ENGLISH.get(m.group(1), m.group(0)), text)


def test_there_are_hints_to_check() -> None:
    assert len(HINTS) > 40


@pytest.mark.parametrize(("key", "example"), HINTS, ids=[f"{k}={e}" for k, e in HINTS])
def test_every_command_a_reply_suggests_parses(key: str, example: str) -> None:
    assert not _FIELD.search(filled(example)), f"{key}: give {{fields}} of {example!r} a value in VALUES"
    assert check(filled(example), REGISTRY) is None, f"{key}: {example}"


def test_a_wrong_hint_is_caught() -> None:
    assert check(filled("/cpn ticket open {project}"), REGISTRY) is not None
    assert "projet" in PLACEHOLDERS  # the French placeholders are the knowledge base's
