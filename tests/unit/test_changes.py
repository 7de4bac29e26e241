"""A replay's card says what it repaired in the reader's language: every sentence the adapters write
for a change (``Ensured.what``, the steps' own notes) has its pattern and its words in both catalogs."""

from __future__ import annotations

import ast
import itertools
import re
from pathlib import Path

import pytest

from bot.i18n import Translator
from bot.render.changes import PATTERNS, change_line, match

ROOT = Path(__file__).resolve().parents[2]
ADAPTERS = ["argocd", "gitlab", "harbor", "nexus", "quay", "sonarqube", "vault"]
SOURCES = [ROOT / "services" / f"{name}.py" for name in ADAPTERS] + [ROOT / "bot" / "workflows" / "onboarding.py"]
VERBS = ("created", "updated", "fixed", "replaced", "removed", "rotated", "gave", "reset", "granted", "made")
SAMPLE = "7"  # what a placeholder becomes: no space, a digit (counts), a name
#: The variables that hold words of a sentence, with every value their code gives them.
WORDS = {
    "verb": ["created", "replaced"],  # gitlab.py, sonarqube.py: "replaced" if … else "created"
    "label": ["group", "groups"],  # gitlab.py ensure_group
    "owner": [f"group {SAMPLE}", f"project {SAMPLE}"],  # gitlab.py _ensure_hook
}
FR, EN = Translator("fr"), Translator("en")


def _variants(node: ast.expr) -> list[str]:
    """Every text a string expression can produce, its placeholders as SAMPLE."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _variants(node.body) + _variants(node.orelse)
    if not isinstance(node, ast.JoinedStr):
        return []
    parts: list[list[str]] = []
    for value in node.values:
        if isinstance(value, ast.Constant):
            parts.append([str(value.value)])
        elif isinstance(value, ast.FormattedValue) and isinstance(value.value, ast.IfExp):
            parts.append(_variants(value.value))
        elif isinstance(value, ast.FormattedValue) and isinstance(value.value, ast.Name) and value.value.id in WORDS:
            parts.append(WORDS[value.value.id])
        else:
            parts.append([SAMPLE])
    return ["".join(p) for p in itertools.product(*parts)]


def written_sentences() -> list[tuple[str, str]]:
    """(where, sentence) for every change sentence of the adapters and of the onboarding steps."""
    found: list[tuple[str, str]] = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            texts: list[ast.expr] = []
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Ensured":
                texts = node.args[2:3] + [k.value for k in node.keywords if k.arg == "what"]
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "append":
                owner = node.func.value
                named = (
                    owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
                )
                if named in ("done", "steps", "changes"):
                    texts = list(node.args)
            elif isinstance(node, ast.Return) and node.value is not None and path.stem in ("nexus", "vault"):
                texts = [node.value]
            for text in texts:
                for sentence in _variants(text):
                    starts_with_verb = sentence.split(" ", 1)[0] in VERBS
                    from_return = isinstance(node, ast.Return)
                    if sentence and (starts_with_verb or not from_return):
                        found.append((f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}", sentence))
    return found


SENTENCES = written_sentences()


def test_the_adapters_sentences_are_found_in_their_source() -> None:
    # the reading above must see them, or the next test would pass on nothing
    assert len(SENTENCES) > 40
    assert any(s == f"created file {SAMPLE} in project {SAMPLE}" for _, s in SENTENCES)


@pytest.mark.parametrize(("where", "sentence"), SENTENCES, ids=[f"{w} {s}"[:90] for w, s in SENTENCES])
def test_every_change_an_adapter_writes_has_a_pattern(where: str, sentence: str) -> None:
    assert match(sentence) is not None, f"{where}: no pattern in bot/render/changes.py for {sentence!r}"


@pytest.mark.parametrize("key", [key for key, _ in PATTERNS])
def test_every_pattern_has_its_words_in_both_languages(key: str) -> None:
    pattern = dict(PATTERNS)[key]
    params = dict.fromkeys(re.compile(pattern).groupindex, "x")
    for tr in (FR, EN):
        text = tr(f"change.{key}", **params)
        assert text != f"change.{key}" and "{" not in text, (tr.lang, key, text)


def test_a_replay_line_is_in_french_with_its_names_kept() -> None:
    assert change_line("created file mirror.sh in project 12", FR) == "fichier mirror.sh créé dans le projet 12"
    assert change_line("created secret forge-dso/projects/alpha/NEXUS", FR) == (
        "secret forge-dso/projects/alpha/NEXUS créé"
    )
    assert change_line("created robot alpha+ro; pull rights for alpha+ro", FR) == (
        "robot alpha\\+ro créé ; droits pull du robot alpha\\+ro rétablis"  # "+" escaped like any user text
    )
    assert change_line("created webhook of group 14", EN) == "created the webhook of group 14"


def test_a_name_in_a_change_is_escaped_like_user_text() -> None:
    line = change_line("created project @channel", FR)
    assert "@channel" not in line.replace("`@channel`", "")


def test_a_sentence_without_a_pattern_is_shown_escaped_not_dropped() -> None:
    assert change_line("frobnicated the *widget*", FR) == "frobnicated the \\*widget\\*"
