"""Slash commands exactly as Mattermost sends them, and what the user sees."""

from __future__ import annotations

import httpx
import pytest

from bot.sandbox.world import Timings, World
from services.emulators.fixtures import fixtures_dir
from tests.conftest import wait_for
from tests.support import commands as test_commands
from tests.support.mattermost import User, channel_posts, text_of

FIXTURE = fixtures_dir() / "mattermost_slash_command.txt"
FIXTURE_TOKEN = "qzgakf1nx3yt9dr4n8585ihbxy"


def fixture_request() -> tuple[dict[str, str], bytes]:
    """Headers and body of Example 1, byte for byte."""
    lines = FIXTURE.read_text().split("===== Example 1")[1].splitlines()[1:]
    head, body = [], b""
    for i, line in enumerate(lines):
        if line == "":
            body = lines[i + 1].encode()
            break
        head.append(line)
    headers = dict(h.split(": ", 1) for h in head[1:])
    return headers, body


@pytest.fixture
def fixture_world(make_world) -> World:  # type: ignore[no-untyped-def]
    # The fixture's token (same length as any of ours) and its team are this bot's.
    return make_world(slash_token=FIXTURE_TOKEN, config_overrides={"mattermost": {"allowed_teams": []}})


def test_the_fixture_request_is_accepted_byte_for_byte(fixture_world: World) -> None:
    headers, body = fixture_request()
    assert int(headers["Content-Length"]) == len(body)
    headers.pop("Host")
    response = httpx.post(f"{fixture_world.bot_url}/mattermost/command", headers=headers, content=body)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert answer["response_type"] == "ephemeral"
    assert "toronto" in answer["text"] and "/cpn help" in answer["text"]


@pytest.mark.parametrize("authorization", [None, "Token wrong-token-0000000000", "Bearer " + FIXTURE_TOKEN, "Token"])
def test_a_wrong_or_missing_token_is_refused_and_runs_nothing(fixture_world: World, authorization: str | None) -> None:
    headers, body = fixture_request()
    headers.pop("Host")
    headers.pop("Authorization")
    if authorization:
        headers["Authorization"] = authorization
    bot = fixture_world.bot
    assert bot is not None
    response = httpx.post(f"{fixture_world.bot_url}/mattermost/command", headers=headers, content=body)
    assert response.status_code == 401
    assert bot.metrics.value("cpn_commands_total", command="help") == 0
    assert "text" not in response.json()


def test_help_and_whoami_through_mattermost(world: World) -> None:
    alice = User(world, "alice")
    answer = alice.run("/cpn help")
    assert "Commandes de cpn-bot" in answer["text"]
    assert "`whoami`" in answer["text"]
    me = text_of(alice.run("/cpn whoami"))
    assert "@alice" in me and "alice@interieur.gouv.fr" in me and "Administrateur de la plateforme: oui" in me


def test_help_of_one_command_shows_usage_rights_and_examples(world: World) -> None:
    text = User(world, "bob").run("/cpn help help")["text"]
    assert "/cpn help [<commande…>]" in text
    assert "Droits requis" in text and "Exemples" in text


@pytest.mark.parametrize(
    ("language", "usage", "argument", "roles", "missing"),
    [
        (
            "fr",
            "/cpn scan waive <projet> <vulnérabilité> --until AAAA-MM-JJ --reason TEXTE",
            "- `<projet>` —",
            "<projet> <utilisateur> [--role administrateur|devops|développeur|lecture-seule]",
            "Argument manquant : <projet>.",
        ),
        (
            "en",
            "/cpn scan waive <project> <vulnerability> --until YYYY-MM-DD --reason TEXT",
            "- `<project>` —",
            "<project> <user> [--role admin|devops|developer|read-only]",
            "Missing argument: <project>.",
        ),
    ],
    ids=["fr", "en"],
)
def test_help_placeholders_are_in_the_readers_language(  # type: ignore[no-untyped-def]
    make_world, language: str, usage: str, argument: str, roles: str, missing: str
) -> None:
    user = User(make_world(language=language), "alice")
    waive = user.run("/cpn help scan waive")["text"]
    assert usage in waive and argument in waive
    assert roles in user.run("/cpn help member add")["text"]
    answer = user.run("/cpn status")["text"]
    assert missing in answer and "/cpn status <" in answer


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("/cpn helpp", "Vouliez-vous dire `help` ?"),
        ("/cpn whoamii", "Vouliez-vous dire `whoami` ?"),
        ("/cpn whoami --verbose", "Option inconnue"),
        ("/cpn whoami extra", "Argument en trop"),
        ('/cpn help "unbalanced', "Guillemets non refermés"),
        ("/cpn zzzzzz", "Commande inconnue"),
    ],
)
def test_mistakes_get_a_usage_message_never_an_error(world: World, typed: str, expected: str) -> None:
    answer = User(world, "bob").run(typed)
    assert answer["response_type"] == "ephemeral"
    assert expected in answer["text"]


def test_help_lists_only_what_the_caller_may_run(make_world) -> None:  # type: ignore[no-untyped-def]
    world = make_world(registry=test_commands.registry())
    admin_help = User(world, "alice").run("/cpn help test")["text"]
    dev_help = User(world, "bob").run("/cpn help test")["text"]
    assert "/cpn test admin" in admin_help and "/cpn test devops" in admin_help
    assert "/cpn test admin" not in dev_help
    assert "/cpn test devops" not in dev_help  # bob has no project where he is devops
    assert "/cpn test slow" in dev_help
    # A group no overview section names still gets its line, with the caller's verbs only.
    test_line = next(line for line in User(world, "bob").run("/cpn help")["text"].splitlines() if "`test`" in line)
    assert "slow" in test_line and "admin" not in test_line and "devops" not in test_line
    refused = User(world, "bob").run("/cpn test admin")["text"]
    assert "réservé" in refused


def _overview_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("- ")]


@pytest.mark.parametrize(
    ("language", "marker"), [("fr", "Projets, membres et jetons :"), ("en", "Projects, members and tokens:")]
)
def test_help_is_a_short_overview_one_line_per_section(make_world, language: str, marker: str) -> None:  # type: ignore[no-untyped-def]
    world = make_world(language=language)
    text = User(world, "alice").run("/cpn help")["text"]  # a platform admin sees every command
    assert len(text.splitlines()) <= 20
    lines = _overview_lines(text)
    assert len(lines) == 6  # projects, code, deploy, notifications, support, the bot
    assert any(line.startswith(f"- {marker} `project` create, delete") for line in lines)
    every_group = {spec.group for spec in world.bot.dispatcher.registry.all()}
    assert all(any(f"`{group}`" in line for line in lines) for group in every_group)
    assert "/cpn help project" in text


def test_a_member_sees_fewer_verbs_in_the_overview_than_an_owner(make_world) -> None:  # type: ignore[no-untyped-def]
    world = make_world()
    bot = world.bot
    assert bot is not None

    async def seed() -> None:
        project = bot.store.db.table("projects").insert({"name": "alpha", "slug": "alpha", "status": "created"})
        bot.store.db.table("members").insert_all(
            [
                {"project_id": project.last_pk, "user_id": world.users["bob"].id, "username": "bob", "role": "owner"},
                {
                    "project_id": project.last_pk,
                    "user_id": world.users["carol"].id,
                    "username": "carol",
                    "role": "readonly",
                },
            ]
        )

    world.run(seed())
    owner = _overview_lines(User(world, "bob").run("/cpn help")["text"])
    member = _overview_lines(User(world, "carol").run("/cpn help")["text"])
    assert len(member) == len(owner)  # the same sections, fewer verbs in them
    projects = lambda lines: next(line for line in lines if "`project`" in line)  # noqa: E731
    assert "delete" in projects(owner) and "`member` add" in projects(owner)
    assert "delete" not in projects(member) and "`member` list" in projects(member) and "add" not in projects(member)
    assert sum(map(len, member)) < sum(map(len, owner))
    assert "`kb` reload" not in " ".join(owner)  # platform admins only


def test_help_of_a_group_gives_its_commands_details(world: World) -> None:
    text = User(world, "alice").run("/cpn help project")["text"]
    assert "/cpn project create <" in text and "/cpn project delete" in text
    assert "/cpn repo add" not in text and "/cpn help <commande>" in text


def test_help_of_an_unknown_group_gives_the_usage(world: World) -> None:
    text = User(world, "bob").run("/cpn help nope")["text"]
    assert "Pas de commande `nope`" in text and "/cpn help" in text


def test_rights_are_checked_on_the_named_project(make_world) -> None:  # type: ignore[no-untyped-def]
    world = make_world(registry=test_commands.registry())
    bot = world.bot
    assert bot is not None
    bob, carol = world.users["bob"], world.users["carol"]

    async def seed() -> None:
        project = bot.store.db.table("projects").insert({"name": "alpha", "slug": "alpha", "status": "created"})
        pid = project.last_pk
        bot.store.db.table("members").insert_all(
            [
                {"project_id": pid, "user_id": bob.id, "username": "bob", "role": "devops"},
                {"project_id": pid, "user_id": carol.id, "username": "carol", "role": "readonly"},
            ]
        )

    world.run(seed())
    assert User(world, "bob").run("/cpn test devops alpha")["text"] == "devops ok on alpha"
    assert "réservé" in User(world, "carol").run("/cpn test devops alpha")["text"]
    assert "Projet inconnu" in User(world, "bob").run("/cpn test devops nope")["text"]
    assert "/cpn test devops" in User(world, "bob").run("/cpn help test")["text"]


def test_a_slow_command_answers_within_its_budget_and_posts_later(make_world) -> None:  # type: ignore[no-untyped-def]
    # The command takes 1.2 s; the budget is the production default (tests otherwise take 2.5 s).
    world = make_world(registry=test_commands.registry(), timings=Timings(0.01, 0.01, reply_budget=0.8))
    bob = User(world, "bob")
    answer = bob.run("/cpn test slow")
    assert "plus long que prévu" in answer["text"]
    mm = world.states["mattermost"]
    wait_for(lambda: any(p["message"] == "slow done" for p in mm.ephemeral_for(bob.me.id)), 5)


def test_a_crashing_command_apologises_without_leaking(make_world) -> None:  # type: ignore[no-untyped-def]
    world = make_world(registry=test_commands.registry())
    answer = User(world, "bob").run("/cpn test crash")
    assert "erreur interne" in answer["text"]
    assert "glpat" not in answer["text"] and "Traceback" not in answer["text"]


def test_long_work_is_acknowledged_then_posted_in_a_thread(make_world) -> None:  # type: ignore[no-untyped-def]
    world = make_world(registry=test_commands.registry())
    answer = User(world, "bob").run("/cpn test long bonjour")
    assert "C'est parti" in answer["text"]
    posts = wait_for(lambda: len(channel_posts(world, "equipe-alpha")) >= 2 and channel_posts(world, "equipe-alpha"))
    root = next(p for p in posts if p["message"] == "début bonjour")
    reply = next(p for p in posts if p["message"] == "réponse bonjour")
    assert reply["root_id"] == root["id"]
    assert root["user_id"] == world.bot_user.id


def test_where_the_bot_is_not_a_member_it_answers_through_the_response_url(make_world) -> None:  # type: ignore[no-untyped-def]
    world = make_world(registry=test_commands.registry())
    User(world, "bob").run("/cpn test long ailleurs", channel="equipe-beta")
    posts = wait_for(lambda: channel_posts(world, "equipe-beta"), what="a post in equipe-beta")
    assert posts[0]["message"] == "début ailleurs"


def test_a_team_not_allowed_gets_a_polite_refusal(make_world) -> None:  # type: ignore[no-untyped-def]
    world = make_world(config_overrides={"mattermost": {"allowed_teams": ["some-other-team"]}})
    assert "pas ouvert à cette équipe" in User(world, "bob").run("/cpn help")["text"]


def test_english_is_available_with_language_en(make_world) -> None:  # type: ignore[no-untyped-def]
    world = make_world(language="en")
    bob = User(world, "bob")
    assert "cpn-bot commands" in bob.run("/cpn help")["text"]
    assert "Did you mean `help`?" in bob.run("/cpn helpp")["text"]
    assert "Unknown option" in bob.run("/cpn whoami --nope")["text"]
