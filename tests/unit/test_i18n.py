"""The French and English catalogs stay in step."""

from __future__ import annotations

import commands  # noqa: F401  (declares every command)
from bot.i18n import catalog, placeholders, t
from bot.spec import REGISTRY
from commands.help import SECTIONS


def test_both_catalogs_have_the_same_keys() -> None:
    assert set(catalog("fr")) == set(catalog("en"))


def test_both_catalogs_use_the_same_placeholders() -> None:
    fr, en = catalog("fr"), catalog("en")
    mismatched = [key for key in fr if placeholders(fr[key]) != placeholders(en[key])]
    assert mismatched == []


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
