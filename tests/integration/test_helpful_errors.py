"""Errors that help (issue 14, item 7): refusals that say who can grant the right, typos answered
with the command, group or project meant. Slash commands as Mattermost sends them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.sandbox.world import Timings, World
from tests.conftest import wait_for
from tests.support import platform as svc
from tests.support.mattermost import User, channel_posts, text_of


@pytest.fixture(scope="module")
def etatcivil() -> Iterator[World]:
    """bob owns etatcivil, where dave is admin and carol developer; dave also owns impots."""
    world = World.create(timings=Timings.fast()).start()
    try:
        bob, dave = User(world, "bob"), User(world, "dave")
        bob.run("/cpn project create etatcivil")
        dave.run("/cpn project create impots", channel="equipe-beta")
        world.wait_idle(30)
        bob.run("/cpn member add etatcivil @dave --role admin")
        bob.run("/cpn member add etatcivil @carol --role developer")
        yield world
    finally:
        world.stop()


def answer(world: World, who: str, command: str) -> str:
    return text_of(User(world, who).run(command))


@pytest.mark.parametrize(
    ("who", "command", "expected", "absent"),
    [
        pytest.param(
            "carol",
            "/cpn env add etatcivil recette --stage dev",
            [
                "`env add` est réservé au rôle devops (ou plus) sur le projet `etatcivil`.",
                "Votre rôle sur ce projet : développeur.",
                "Peuvent vous donner ce rôle : `@bob` (propriétaire), `@dave` (administrateur).",
            ],
            ["@carol"],
            id="member-with-a-lower-role",
        ),
        pytest.param(
            "carol",
            "/cpn env add impots recette --stage dev",
            ["sur le projet `impots`", "Vous n'êtes pas membre de ce projet.", "`@dave` (propriétaire)."],
            ["bob"],
            id="not-a-member",
        ),
        pytest.param(
            "dave",
            "/cpn project delete etatcivil",
            [
                "`project delete` est réservé au propriétaire du projet `etatcivil`.",
                "Votre rôle sur ce projet : administrateur.",
                "Seul le propriétaire peut le faire : `@bob`.",
            ],
            ["@dave", "(ou plus)"],
            id="owner-only",
        ),
        pytest.param(
            "carol",
            "/cpn kb reload",
            ["`kb reload` est réservé aux administrateurs de la plateforme.", "équipe plateforme"],
            ["(ou plus)"],
            id="platform-admins",
        ),
    ],
)
def test_a_refusal_says_the_role_held_the_role_needed_and_who_can_grant_it(
    etatcivil: World, who: str, command: str, expected: list[str], absent: list[str]
) -> None:
    refused = answer(etatcivil, who, command)
    assert refused.startswith("⛔"), refused
    for part in expected:
        assert part in refused, refused
    for part in absent:
        assert part not in refused, refused


def test_a_refusal_found_later_by_a_flag_names_the_project_s_admins_too(etatcivil: World) -> None:
    refused = answer(etatcivil, "carol", "/cpn policy etatcivil --max-critical 0")
    assert "réservé au rôle administrateur (ou plus) sur le projet `etatcivil`" in refused
    assert "Votre rôle sur ce projet : développeur." in refused and "`@dave` (administrateur)" in refused


@pytest.mark.parametrize(
    ("who", "typed", "expected", "absent"),
    [
        pytest.param(
            "bob",
            "/cpn project craete foo",
            ["Vouliez-vous dire `project create` ?", "Usage : `/cpn project create <nom>"],
            [],
            id="verb",
        ),
        pytest.param(
            "bob",
            "/cpn deploi etatcivil dev",
            ["Commande inconnue : `deploi`. Vouliez-vous dire `deploy` ?", "Usage : `/cpn deploy <projet> <env>"],
            ["deploi etatcivil"],
            id="group-then-its-arguments",
        ),
        pytest.param(
            "bob",
            "/cpn projet craete foo",
            ["Vouliez-vous dire `project create` ?", "Usage : `/cpn project create"],
            [],
            id="group-and-verb",
        ),
        pytest.param(
            "bob",
            "/cpn scna waive etatcivil",
            ["Vouliez-vous dire `scan waive` ?"],
            [],
            id="group-then-a-verb-typed-right",
        ),
        pytest.param(
            "bob",
            "/cpn project show etatcivl",
            ["Projet inconnu : `etatcivl`. Vouliez-vous dire `etatcivil` ?"],
            [],
            id="project",
        ),
        pytest.param(
            "carol",
            "/cpn project show impot",
            ["Projet inconnu : `impot`."],
            ["impots"],
            id="a-project-carol-cannot-see",
        ),
        pytest.param(
            "alice", "/cpn project show impot", ["Vouliez-vous dire `impots` ?"], [], id="platform-admins-see-all"
        ),
        pytest.param("bob", "/cpn zzzzzz", ["Commande inconnue : `zzzzzz`."], ["Vouliez-vous dire"], id="no-near-word"),
    ],
)
def test_typos_get_the_command_group_or_project_meant(
    etatcivil: World, who: str, typed: str, expected: list[str], absent: list[str]
) -> None:
    reply = User(etatcivil, who).run(typed)
    assert reply["response_type"] == "ephemeral"
    for part in expected:
        assert part in reply["text"], reply["text"]
    for part in absent:
        assert part not in reply["text"], reply["text"]


def test_failure_hints_name_the_project(etatcivil: World) -> None:
    bob = User(etatcivil, "bob")
    sonar = etatcivil.states["sonarqube"]
    sonar.faults.down = True
    try:
        bob.run("/cpn project replay etatcivil")
        etatcivil.wait_idle(30)
    finally:
        sonar.faults.down = False
    card = next(
        a
        for p in reversed(channel_posts(etatcivil, "equipe-alpha"))
        for a in (p.get("props") or {}).get("attachments") or []
        if a.get("title", "").startswith("Reprovisionnement du projet etatcivil")
    )
    assert "`/cpn project replay etatcivil` pour réessayer" in card["text"], card["text"]
    assert "Rien à réparer" not in card["text"]  # not while SonarQube failed
    page = answer(etatcivil, "bob", "/cpn project show etatcivil")
    assert "`/cpn repo add etatcivil <dépôt>`" in page and "`/cpn env add etatcivil <env> --stage dev`" in page
    assert "`/cpn secret set etatcivil <CLÉ>`" in answer(etatcivil, "bob", "/cpn secret list etatcivil")
    assert "`/cpn token create etatcivil`" in answer(etatcivil, "bob", "/cpn token list etatcivil")
    bob.run("/cpn env add etatcivil dev --stage dev")
    etatcivil.wait_idle(30)
    assert "`/cpn repo add etatcivil <dépôt> --url … --infra`" in answer(etatcivil, "bob", "/cpn deploy etatcivil dev")
    mm = etatcivil.states["mattermost"]
    mm.add_user("eve", email="eve@interieur.gouv.fr")
    mm.add_team_member(etatcivil.team_id, mm.find_user("eve")["id"])
    assert "`/cpn project replay etatcivil`" in answer(etatcivil, "bob", "/cpn member add etatcivil @eve")
    assert "<projet>" not in page


def _linked(world: World, channel: str) -> list[str]:
    assert world.bot is not None
    return [p.name for p in world.bot.projects.linked_to(world.channels[channel])]


def test_a_project_created_in_a_channel_linked_to_another_asks_before_linking(etatcivil: World) -> None:
    assert _linked(etatcivil, "equipe-alpha") == ["etatcivil"]  # its first project was linked at once
    reply = User(etatcivil, "bob").run("/cpn project create passeports")
    shown = text_of(reply)
    assert "Le canal n'y sera lié que si vous le confirmez" in shown
    assert "Lier ce canal au projet `passeports` ?" in shown and "déjà lié à : `etatcivil`" in shown
    assert _linked(etatcivil, "equipe-alpha") == ["etatcivil"]
    svc.press_ephemeral(etatcivil, "bob", "Confirmer")
    wait_for(lambda: _linked(etatcivil, "equipe-alpha") == ["etatcivil", "passeports"], what="the link")
    svc.press_ephemeral(etatcivil, "bob", "Annuler")  # the other button of the same question: used up
    mine = etatcivil.states["mattermost"].ephemeral_for(etatcivil.users["bob"].id)
    assert "déjà été fait" in mine[-1]["message"], mine[-1]
    assert _linked(etatcivil, "equipe-alpha") == ["etatcivil", "passeports"]
    etatcivil.wait_idle(30)


def test_a_project_created_in_someone_else_s_channel_asks_and_a_no_leaves_it_unlinked(etatcivil: World) -> None:
    mm = etatcivil.states["mattermost"]
    carol, bob = etatcivil.users["carol"], etatcivil.users["bob"]
    channel = mm.add_channel(etatcivil.team_id, "equipe-carol", "Équipe de Carol", creator_id=carol.id)
    for member in (carol.id, bob.id, etatcivil.bot_user.id if etatcivil.bot_user else ""):
        mm.add_member(channel["id"], member)
    etatcivil.channels["equipe-carol"] = channel["id"]
    shown = text_of(User(etatcivil, "bob").run("/cpn project create cartesgrises", channel="equipe-carol"))
    assert "Ce canal a été créé par `@carol`, pas par vous." in shown and "déjà lié" not in shown
    svc.press_ephemeral(etatcivil, "bob", "Annuler")
    etatcivil.wait_idle(30)
    assert _linked(etatcivil, "equipe-carol") == []
    assert etatcivil.bot is not None and etatcivil.bot.projects.get("cartesgrises") is not None  # created all the same
    # In her own channel, carol is not asked.
    reply = User(etatcivil, "carol").run("/cpn project create vignettes", channel="equipe-carol")
    assert not text_of(reply).count("Lier ce canal") and _linked(etatcivil, "equipe-carol") == ["vignettes"]
    etatcivil.wait_idle(30)
