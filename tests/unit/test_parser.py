"""What users type, and what the parser makes of it."""

from __future__ import annotations

import pytest

from bot.i18n import Lang, Text
from bot.parser import UsageError, clean, parse_args, tokenize
from bot.rights import Access
from bot.spec import Arg, CommandSpec, Flag, choice, free_text, integer, named

PROJECT = named(r"[a-z0-9]+", 2, 20, "rules.project_name", "NOM")


async def _noop(ctx: object) -> object:
    return None


def spec(**kw: object) -> CommandSpec:
    base: dict[str, object] = {
        "name": "project create",
        "summary": Text("Crée", "Creates"),
        "handler": _noop,
        "args": (Arg("name", Text("nom", "name"), PROJECT),),
        "flags": (
            Flag("description", Text("d", "d"), free_text(280)),
            Flag("private", Text("p", "p")),
            Flag("cpu", Text("c", "c"), integer(1, 64)),
            Flag("stage", Text("s", "s"), choice("dev", "prod")),
        ),
        "requires": Access.ANYONE,
    }
    base.update(kw)
    return CommandSpec(**base)  # type: ignore[arg-type]


def parse(text: str, s: CommandSpec | None = None) -> dict[str, object]:
    cleaned = clean(text)
    return parse_args(s or spec(), tokenize(cleaned), cleaned)


def test_positional_and_flags_in_any_order() -> None:
    values = parse('--private alpha --description "Mon beau projet" --cpu=4')
    assert values == {
        "name": "alpha",
        "description": "Mon beau projet",
        "private": True,
        "cpu": 4,
        "stage": None,
    }


def test_french_apostrophes_are_letters_not_quotes() -> None:
    assert [t.word for t in tokenize("ask comment j'ajoute l'application")] == [
        "ask",
        "comment",
        "j'ajoute",
        "l'application",
    ]


def test_guillemets_and_typographic_quotes_group_words() -> None:
    assert parse("alpha --description « Mon projet »")["description"] == "Mon projet"
    assert parse("alpha --description “Mon projet”")["description"] == "Mon projet"


def test_em_dash_typed_by_autocorrect_is_a_flag() -> None:
    assert parse("alpha —private")["private"] is True


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("", "errors.missing_arg"),
        ("alpha beta", "errors.too_many_args"),
        ("alpha --nope", "errors.unknown_flag"),
        ("alpha --description", "errors.flag_needs_value"),
        ("alpha --private=yes", "errors.flag_takes_no_value"),
        ("alpha --private --private", "errors.duplicate_flag"),
        ('alpha --description "unclosed', "errors.quotes"),
        ("Alpha", "rules.project_name"),
        ("a", "rules.project_name"),
        ("alpha --cpu lots", "rules.integer"),
        ("alpha --cpu 1000", "rules.range"),
        ("alpha --stage qa", "rules.choice"),
    ],
)
def test_bad_input_names_the_rule(text: str, key: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(text)
    assert caught.value.key == key


def test_greedy_argument_keeps_the_text_as_typed() -> None:
    s = spec(name="ask", args=(Arg("question", Text("q", "q"), greedy=True),), flags=())
    assert parse("Comment j'ajoute   un dépôt ? --vite", s)["question"] == "Comment j'ajoute   un dépôt ? --vite"


def test_control_characters_and_huge_text_are_refused_cleanly() -> None:
    with pytest.raises(UsageError) as caught:
        parse("x" * 30_000)
    assert caught.value.key == "errors.too_long"
    assert parse("alpha\x00\x07")["name"] == "alpha"


def test_exclusive_flags() -> None:
    s = spec(
        flags=(
            Flag("branch", Text("b", "b"), free_text(100), excludes=("all",)),
            Flag("all", Text("a", "a")),
        )
    )
    with pytest.raises(UsageError) as caught:
        parse("alpha --branch main --all", s)
    assert caught.value.key == "errors.exclusive_flags"


@pytest.mark.parametrize(
    ("lang", "usage"),
    [
        ("fr", "/cpn project create <nom> [--description TEXTE] [--private] [--cpu N] [--stage dev|prod]"),
        ("en", "/cpn project create <name> [--description TEXT] [--private] [--cpu N] [--stage dev|prod]"),
    ],
)
def test_usage_line_is_generated_from_the_declaration_in_the_readers_language(lang: Lang, usage: str) -> None:
    assert spec().usage(lang=lang) == usage
