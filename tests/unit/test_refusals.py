"""The refusal's words in both languages, from the facts the rights check gathers."""

from __future__ import annotations

import pytest

from bot.i18n import Lang, Translator
from bot.model import Member
from bot.render.refusals import forbidden
from bot.rights import Access, Role
from tests.support.mattermost import live_mentions

MEMBERS = [
    Member("u1", "bob", "", Role.OWNER),
    Member("u2", "dave", "", Role.ADMIN),
    Member("u3", "carol", "", Role.DEVELOPER),
]
OR_HIGHER = {"fr": "(ou plus)", "en": "(or higher)"}
ROLE = {"fr": "développeur", "en": "developer"}


@pytest.mark.parametrize("lang", ["fr", "en"])
@pytest.mark.parametrize("access", [Access.PLATFORM_ADMIN, Access.CREATOR])
def test_a_platform_wide_right_has_no_or_higher(lang: Lang, access: Access) -> None:
    text = forbidden("kb reload", access, Translator(lang))
    assert OR_HIGHER[lang] not in text and "`kb reload`" in text
    assert "/cpn support" in text  # where to ask for it


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_a_project_role_names_the_caller_s_role_and_the_granters_but_not_the_caller(lang: Lang) -> None:
    text = forbidden(
        "env add", Role.DEVOPS, Translator(lang), project="alpha", role=Role.DEVELOPER, members=MEMBERS, caller="u3"
    )
    assert OR_HIGHER[lang] in text and ROLE[lang] in text and "`alpha`" in text
    assert "bob" in text and "dave" in text and "carol" not in text
    assert "@bob" not in live_mentions(text)  # in a code span: no one is notified


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_without_anyone_in_the_project_to_grant_it_the_platform_team_is_named(lang: Lang) -> None:
    alone = [Member("u3", "carol", "", Role.DEVELOPER)]
    text = forbidden("env add", Role.DEVOPS, Translator(lang), project="alpha", role=None, members=alone, caller="u9")
    assert "/cpn support" in text and "carol" not in text
