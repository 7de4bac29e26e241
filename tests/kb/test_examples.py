"""Every ``/cpn …`` example of the knowledge base is a command the bot accepts, as the parser reads it.

An article that quotes a command people copy must quote one that works: the examples are parsed with
the real registry and parser (placeholders such as ``<projet>`` replaced by a valid value first).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import commands  # noqa: F401  (declares every command in REGISTRY)
from bot.knowledge import Article, load_articles
from bot.parser import UsageError, clean, parse_args, tokenize
from bot.spec import REGISTRY, Registry

KB = Path(__file__).resolve().parents[2] / "kb"

# A valid value for each placeholder the articles use; an unknown placeholder fails the test, so that a
# new one is given a value here rather than skipped.
PLACEHOLDERS = {
    "projet": "monprojet",
    "nom": "monappli",  # a project's name or a token's: valid for both
    "dépôt": "api",
    "env": "recette",
    "tag": "3f2c1ab",
    "type": "dev",
    "CLÉ": "API_KEY",
    "url.git": "https://github.com/mon-org/api.git",
    "url du dépôt helm-projects-mocks": "https://github.com/mon-org/helm-projects-mocks.git",
    "message": "mon déploiement reste en attente",
    "question": "comment synchroniser mon dépôt ?",
    "n°": "1",
    "commande": "deploy",
    "n": "2",
    "Gio": "4",
    "rôle": "developer",
    "texte": '"Gestion des rendez-vous"',
    "from": "staging",
    "to": "prod",
    "liste": "pipeline,deploy",
    "motifs": "main,release/*",
    "révision": "v1.4.0",
    "branche": "main",
}

_SPAN = re.compile(r"`(/cpn [^`\n]+)`")
_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
_PLACEHOLDER = re.compile(r"\[?<([^<>]+)>\]?")
_ALTERNATIVES = re.compile(r"(?<![\w/])([\w-]+)(?:\|[\w-]+)+")  # dev|staging|prod: one of them


def examples(article: Article) -> list[str]:
    """The ``/cpn`` commands an article quotes: its ``commands`` header, code spans and code blocks."""
    found = list(article.commands)
    text = article.summary + "\n" + article.body
    blocks = _FENCE.findall(text)
    for block in blocks:
        for line in block.splitlines():
            if line.strip().startswith("/cpn "):
                found.append(line.split(" #", 1)[0].strip())  # a shell-style comment explains the line
    outside = _FENCE.sub("", text)
    found += _SPAN.findall(outside)
    # `/cpn <groupe> <verbe> …` describes the syntax itself: no command to check
    return [e for e in found if not e.startswith("/cpn <")]


def fill(example: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in PLACEHOLDERS:
            raise AssertionError(f"placeholder <{name}> has no value in PLACEHOLDERS: {example}")
        return PLACEHOLDERS[name]

    return _ALTERNATIVES.sub(r"\1", _PLACEHOLDER.sub(value, example))


def check(example: str, registry: Registry) -> str | None:
    """None when ``example`` is accepted, else why not.

    A mention made only of a command's words (``/cpn env remove``) names that command, or a group of
    commands (``/cpn scan``): it is a reference, not something to run. Anything longer must parse.
    """
    text = fill(example).removeprefix("/cpn").strip()
    try:
        cleaned = clean(text)
        tokens = tokenize(cleaned)
        words = [t.word for t in tokens]
        spec, used = registry.match(words)
        if spec is None:
            groups = {s.path[: len(words)] for s in registry.all()}
            return None if tuple(words) in groups else "no such command"
        if used == len(words):
            return None
        parse_args(spec, tokens[used:], cleaned)
    except UsageError as exc:
        return f"{exc.key} {exc.params}"
    return None


ARTICLES = load_articles(KB)


@pytest.mark.parametrize("article", ARTICLES, ids=[a.id for a in ARTICLES])
def test_every_cpn_example_parses(article: Article) -> None:
    refused = {e: why for e in examples(article) if (why := check(e, REGISTRY)) is not None}
    assert not refused, f"{article.path.name}: {refused}"


def test_the_extraction_sees_spans_blocks_and_headers() -> None:
    """The test above cannot pass by finding nothing: each kind of quotation is picked up."""
    by_id = {a.id: a for a in ARTICLES}
    assert '/cpn project create monappli --description "Gestion des rendez-vous en préfecture"' in examples(
        by_id["creer-un-projet"]
    )
    assert "/cpn deploy monprojet dev" in examples(by_id["deployer-promouvoir-rollback"])
    assert "/cpn project show monprojet" in examples(by_id["projet-verrouille-ou-en-echec"])
    assert sum(len(examples(a)) for a in ARTICLES) >= 200


@pytest.mark.parametrize(
    "example",
    [
        "/cpn token create <projet> ci-github",  # the flag is --name: a second positional is refused
        "/cpn project craete monprojet",
        "/cpn deploy <projet> <env> --image <tag>",
        "/cpn repo add <projet>",
    ],
)
def test_a_wrong_example_is_caught(example: str) -> None:
    assert check(example, REGISTRY) is not None


SPEC_EXAMPLES = [(s.name, e) for s in REGISTRY.all() for e in s.examples]


@pytest.mark.parametrize(("name", "example"), SPEC_EXAMPLES, ids=[e for _, e in SPEC_EXAMPLES])
def test_every_help_example_parses(name: str, example: str) -> None:
    """`/cpn help <commande>` shows these to be copied: they pass the same check as the articles'."""
    assert check("/cpn " + example, REGISTRY) is None
    assert REGISTRY.match(example.split())[0] is REGISTRY.commands[tuple(name.split())]
