"""The French and English catalogs stay in step."""

from __future__ import annotations

import re

import pytest

import commands  # noqa: F401  (declares every command)
from bot.i18n import Text, Translator, catalog, placeholders, t
from bot.spec import REGISTRY
from commands.help import SECTIONS


def test_both_catalogs_have_the_same_keys() -> None:
    assert set(catalog("fr")) == set(catalog("en"))


def test_both_catalogs_use_the_same_placeholders() -> None:
    fr, en = catalog("fr"), catalog("en")
    mismatched = [key for key in fr if placeholders(fr[key]) != placeholders(en[key])]
    assert mismatched == []


# Words and letters of the other language (code spans, placeholders and links left out).
_OTHER = {
    "en": re.compile(r"[éèàçêùô]|\b(le|la|les|du|des|une|pour|est|sur|dans)\b"),
    "fr": re.compile(r"\b(the|and|is|are|failed|with|your|not|of|to)\b"),
}


def _prose(text: str) -> str:
    return re.sub(r"`[^`]*`|\{[^}]*\}|<[^>]*>|\([^)]*https?[^)]*\)", "", text)


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_no_text_is_left_in_the_other_language(lang: str) -> None:
    """The English review of the catalog, kept: no French left in English, no English in French."""
    texts = catalog(lang)
    mixed = {key: text for key, text in texts.items() if isinstance(text, str) and _OTHER[lang].search(_prose(text))}
    assert mixed == {}
    # The commands' help, declared inline beside each command.
    inline = [
        text(lang)
        for spec in REGISTRY.all()
        for text in (spec.summary, spec.description, *(f.help for f in spec.flags))
        if isinstance(text, Text)
    ]
    assert inline and [text for text in inline if _OTHER[lang].search(_prose(text))] == []


def test_french_is_the_default_and_a_missing_placeholder_does_not_crash() -> None:
    assert t("help.title") == "Commandes de cpn-bot"
    assert t("help.title", "en") == "cpn-bot commands"
    # A placeholder nobody filled stays visible rather than raising KeyError in a handler.
    assert t("support.ticket_opened", "fr", unrelated=1).startswith("🎫 Ticket n°{id} ouvert")


def test_every_command_has_help_in_both_languages() -> None:
    for spec in REGISTRY.all():
        assert spec.summary.fr and spec.summary.en, spec.name
        for arg in spec.args:
            assert arg.help.fr and arg.help.en, (spec.name, arg.name)
        for flag in spec.flags:
            assert flag.help.fr and flag.help.en, (spec.name, flag.name)


def test_every_help_section_is_described_and_names_each_declared_group_once() -> None:
    named = [group for groups in SECTIONS.values() for group in groups]
    assert len(named) == len(set(named))
    assert set(named) == set(REGISTRY.groups())  # a new group must be placed in the overview
    for key in SECTIONS:
        assert f"help.sections.{key}" in catalog("fr") and f"help.sections.{key}" in catalog("en")


def test_every_rule_key_used_by_validators_exists() -> None:
    for key in (
        "rules.too_long",
        "rules.integer",
        "rules.range",
        "rules.choice",
        "rules.date",
        "rules.mention",
    ):
        assert key in catalog("fr")


@pytest.mark.parametrize(
    ("lang", "count", "shown"),
    [
        ("fr", 0, "0 vulnérabilité"),  # French counts zero as singular
        ("fr", 1, "1 vulnérabilité"),
        ("fr", 6, "6 vulnérabilités"),
        ("en", 0, "0 vulnerabilities"),
        ("en", 1, "1 vulnerability"),
        ("en", 6, "6 vulnerabilities"),
    ],
)
def test_counted_texts_agree_with_their_count_in_each_language(lang: str, count: int, shown: str) -> None:
    tr = Translator("en" if lang == "en" else "fr")
    assert tr.plural("scan.full_title", count, subject="img").endswith(shown)


def test_counted_texts_have_both_forms_and_no_parenthesised_plural() -> None:
    for lang in ("fr", "en"):
        texts = catalog(lang)
        counted = {key.removesuffix(".one") for key in texts if key.endswith(".one")}
        assert "scan.full_title" in counted
        for key in counted:
            forms = texts[f"{key}.one"], texts[f"{key}.other"]
            assert all("{count}" in form and "(s)" not in form for form in forms), key


def test_no_text_hedges_its_plural_with_parentheses() -> None:
    for lang in ("fr", "en"):
        assert [key for key, text in catalog(lang).items() if "(s)" in text] == [], lang
