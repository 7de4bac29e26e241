"""Console mode: rights from the console's roles and bits, and acting as the person (``/cpn connect``).

The bot runs against the console emulator (its users have the Mattermost cast's e-mails; alice is
a platform admin, dave has never logged in to the console) with ``platform.control = "console"``.
"""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.console_access import TOKENS_PATH, remind_tokens
from bot.context import CommandContext, Reply
from bot.logs import JsonFormatter
from bot.rights import ConsoleRule, Role
from bot.sandbox.world import World
from bot.spec import Arg, Registry, command
from services.emulators.base import EmulatorServer
from services.emulators.console import create_app
from services.emulators.console_state import MemberRow, ProjectRow, State, User
from tests.conftest import wait_for
from tests.support import commands as test_commands
from tests.support import platform as svc
from tests.support.mattermost import User as Chat


def _registry() -> Registry:
    reg = test_commands.registry()
    project = Arg("project", test_commands.T, test_commands.PROJECT)
    for name, role, rule in (
        ("test read", Role.READONLY, None),
        ("test repos", Role.DEVELOPER, None),
        ("test owner", Role.OWNER, None),
        ("test secrets", Role.DEVOPS, ConsoleRule.SEE_SECRETS),
    ):

        async def handler(ctx: CommandContext, name: str = name) -> Reply:
            return Reply(f"{name} ok on {ctx.args['project']}")

        command(name, summary=test_commands.T, args=[project], requires=role, console_rule=rule, registry=reg)(handler)
    return reg


@dataclass
class Console:
    state: State
    url: str
    users: dict[str, User]

    def project(
        self, name: str, owner: str, members: dict[str, tuple[str, ...]], *, locked: bool = False
    ) -> ProjectRow:
        """A project as the console holds it, with its system roles (members: username → role names)."""
        row = ProjectRow(str(uuid.uuid4()), name, name, "", self.users[owner].id, locked=locked)
        row.roles = self.state.system_roles(name)
        ids = {r.name: r.id for r in row.roles}
        row.members = [MemberRow(self.users[u].id, [ids[n] for n in roles]) for u, roles in members.items()]
        with self.state.lock:
            self.state.projects[row.id] = row
        return row


@pytest.fixture
def console_server() -> Iterator[tuple[State, str]]:
    state = State("9.24.0")
    with EmulatorServer(create_app(state), name="console") as server:
        yield state, server.url


@pytest.fixture
def console_world(
    make_world: Callable[..., World], console_server: tuple[State, str], tmp_path: Path
) -> tuple[World, Console]:
    state, url = console_server
    token_file = tmp_path / "console_token"
    token_file.write_text(state.add_admin_token("cpn-bot"))
    token_file.chmod(0o600)
    world = make_world(
        registry=_registry(),
        config_overrides={
            "platform": {"control": "console"},
            "console": {"url": url, "token": f"file:{token_file}", "ui_url": "https://console.example.gouv.fr"},
        },
    )
    users = {
        name: state.add_user(world.users[name].email, name.title(), admin=name == "alice")
        for name in ("alice", "bob", "carol")  # dave never logged in to the console
    }
    return world, Console(state, url, users)


def test_rights_follow_the_console_roles_and_bits(console_world: tuple[World, Console]) -> None:
    world, console = console_world
    console.project("alpha", "bob", {"carol": ("Développeur",)})
    answers = {
        (who, cmd): Chat(world, who).run(f"/cpn test {cmd} alpha")["text"]
        for who in ("alice", "bob", "carol")
        for cmd in ("read", "repos", "devops", "secrets", "owner")
    }
    ok = {key for key, text in answers.items() if text.endswith("ok on alpha")}
    assert ok == {
        *{("alice", c) for c in ("read", "repos", "devops", "secrets", "owner")},  # admin MANAGE
        *{("bob", c) for c in ("read", "repos", "devops", "secrets", "owner")},  # the owner: MANAGE
        ("carol", "read"),
        ("carol", "repos"),  # Développeur: MANAGE_REPOSITORIES, not environments nor secrets
    }
    assert "« Gérer les environnements »" in answers[("carol", "devops")]
    assert "« Afficher les secrets »" in answers[("carol", "secrets")]
    assert "Projet inconnu" in Chat(world, "bob").run("/cpn test read nope")["text"]


def test_a_button_pressed_later_is_checked_again_by_the_console_rules(console_world: tuple[World, Console]) -> None:
    world, console = console_world
    console.project("alpha", "bob", {"carol": ("Développeur",), "alice": ()})
    bot = world.bot
    assert bot is not None
    ids = {name: world.users[name].id for name in ("alice", "bob", "carol", "dave")}
    secrets = {
        who: world.run(bot.rights.may(i, "alpha", Role.DEVOPS, ConsoleRule.SEE_SECRETS)) for who, i in ids.items()
    }
    assert secrets == {"alice": True, "bob": True, "carol": False, "dave": False}
    assert world.run(bot.rights.may(ids["carol"], "alpha", Role.DEVELOPER))
    assert not world.run(bot.rights.may(ids["carol"], "nope", Role.READONLY))


def test_a_non_member_and_a_locked_project(console_world: tuple[World, Console]) -> None:
    world, console = console_world
    console.project("alpha", "bob", {})
    console.project("beta", "carol", {"bob": ("DevOps",)}, locked=True)
    refused = Chat(world, "carol").run("/cpn test read alpha")["text"]
    assert "« Membre du projet »" in refused
    assert Chat(world, "bob").run("/cpn test read beta")["text"] == "test read ok on beta"
    for who in ("bob", "alice"):  # even a platform admin: only unlocking helps
        assert "verrouillé" in Chat(world, who).run("/cpn test devops beta")["text"]


def test_an_archived_project_is_no_longer_found(console_world: tuple[World, Console]) -> None:
    world, console = console_world
    row = console.project("alpha", "bob", {})
    assert Chat(world, "bob").run("/cpn test owner alpha")["text"] == "test owner ok on alpha"
    with console.state.lock:  # archived as DELETE does (§3.1)
        row.status, row.locked, row.slug = "archived", True, f"alpha_{row.id[:8]}_archived"
    assert world.bot is not None
    world.bot.rights.forget("alpha")
    assert "Projet inconnu" in Chat(world, "bob").run("/cpn test owner alpha")["text"]


def test_help_lists_only_what_the_caller_may_do_in_the_console(console_world: tuple[World, Console]) -> None:
    world, console = console_world
    console.project("alpha", "bob", {"carol": ("Lecture seule",)})
    owner = Chat(world, "bob").run("/cpn help test")["text"]
    reader = Chat(world, "carol").run("/cpn help test")["text"]
    assert "/cpn test owner" in owner and "/cpn test devops" in owner and "/cpn test admin" not in owner
    assert "/cpn test read" in reader and "/cpn test repos" not in reader and "/cpn test owner" not in reader
    assert "/cpn test admin" in Chat(world, "alice").run("/cpn help test")["text"]
    stranger = Chat(world, "dave").run("/cpn help test")["text"]
    assert "/cpn test slow" in stranger and "/cpn test read" not in stranger


def test_a_person_unknown_to_the_console_is_told_who_to_ask_and_how(console_world: tuple[World, Console]) -> None:
    world, console = console_world
    console.project("alpha", "bob", {})
    text = Chat(world, "dave").run("/cpn test read alpha")["text"]
    assert "ne vous connaît pas" in text
    assert "https://console.example.gouv.fr" in text and "compte du ministère" in text and "~support-cpn" in text
    # Once dave has logged in (his console account exists), the same command is answered by his rights.
    console.state.add_user(world.users["dave"].email, "Dave")
    assert "« Membre du projet »" in Chat(world, "dave").run("/cpn test read alpha")["text"]


def test_the_cache_is_forgotten_when_the_bot_changes_members(console_world: tuple[World, Console]) -> None:
    world, console = console_world
    row = console.project("alpha", "bob", {})
    assert "« Membre du projet »" in Chat(world, "carol").run("/cpn test read alpha")["text"]
    with console.state.lock:
        row.members.append(MemberRow(console.users["carol"].id, []))
    # Cached for rights_cache_seconds …
    assert "« Membre du projet »" in Chat(world, "carol").run("/cpn test read alpha")["text"]
    assert world.bot is not None
    world.bot.rights.forget("alpha")  # … until the bot says it changed them
    assert Chat(world, "carol").run("/cpn test read alpha")["text"] == "test read ok on alpha"


# --- /cpn connect -------------------------------------------------------------------------------


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def _private(world: World, username: str) -> list[str]:
    """What the bot told ``username`` alone: ephemeral posts, or direct messages where the bot
    account may not send those (a plain bot, as ministry instances create it)."""
    mm = world.states["mattermost"]
    user_id = world.users[username].id
    shown = [str(e["post"].get("message", "")) for e in mm.ephemeral if e["user_id"] == user_id]
    assert world.bot_user is not None
    channel = mm.find_channel("__".join(sorted((world.bot_user.id, user_id))), team_id="")
    return shown + ([str(p["message"]) for p in mm.channel_posts(channel["id"])] if channel else [])


def _connect(world: World, username: str, token: str) -> dict[str, object]:
    assert "fenêtre" in Chat(world, username).run("/cpn connect")["text"]
    return svc.submit_dialog(world, username, {"token": token})


def test_connect_keeps_a_good_token_in_vault_only_and_disconnect_forgets_it(
    console_world: tuple[World, Console], captured_logs: io.StringIO
) -> None:
    world, console = console_world
    bob = world.users["bob"]
    pat = console.state.add_pat(console.users["bob"], "chat", expires_in=timedelta(days=20))
    assert _connect(world, "bob", pat) == {}
    expiry = (datetime.now(UTC) + timedelta(days=20)).strftime("%Y-%m-%d")
    linked = wait_for(lambda: [m for m in _private(world, "bob") if "relié" in m], what="the linked message")
    assert expiry in linked[0] and "`chat`" in linked[0]
    assert svc.vault_secret(world, f"{TOKENS_PATH}/{bob.id}") is not None
    stored = svc.vault_secret(world, f"{TOKENS_PATH}/{bob.id}") or {}
    assert stored.get("token") == pat
    assert world.bot is not None
    acting = world.run(world.bot.credentials.person_credential(bob.id))
    assert acting is not None and acting.token.kind == "pat"
    assert world.run(world.bot.credentials.person_credential(world.users["carol"].id)) is None
    assert world.run(world.bot.credentials.credential_for(world.users["carol"].id)).token.kind == "admin"
    dialog = [d for d in world.states["mattermost"].dialogs_opened if d["user_id"] == bob.id]
    assert dialog and dialog[-1]["dialog"]["elements"][0]["subtype"] == "password"

    assert "oublié" in Chat(world, "bob").run("/cpn disconnect")["text"]
    assert svc.vault_secret(world, f"{TOKENS_PATH}/{bob.id}") is None
    assert world.run(world.bot.credentials.person_credential(bob.id)) is None
    assert "Aucun jeton" in Chat(world, "bob").run("/cpn disconnect")["text"]

    mm = world.states["mattermost"]
    places = {
        "posts": "\n".join(str(p) for c in list(mm.db.channels) for p in mm.channel_posts(c)),
        "ephemeral": "\n".join(str(e) for e in mm.ephemeral),
        "dialogs": "\n".join(str(d) for d in mm.dialogs_opened),
        "logs": captured_logs.getvalue(),
    }
    world.wait_idle()
    world.stop_bot()  # flushes the WAL into the database file
    places["sqlite"] = "\n".join(
        f.read_bytes().decode("latin-1") for f in world.root.iterdir() if f.is_file() and ".sqlite" in f.name
    )
    assert "relié" in places["posts"] + places["ephemeral"]  # the search ran over real content
    assert [where for where, text in places.items() if pat in text] == []


@pytest.mark.parametrize(
    ("spoil", "shown"),
    [
        (lambda state, raw: state.expire(raw), "expiré"),
        (lambda state, raw: state.revoke(raw), "révoqué"),
        (None, "n'est pas le vôtre"),  # carol's token, typed by bob
        (lambda state, raw: None, "ne reconnaît pas"),  # never a console token
    ],
)
def test_connect_refuses_a_token_with_the_reason_in_the_dialog(
    console_world: tuple[World, Console],
    spoil: Callable[[State, str], None] | None,
    shown: str,
    captured_logs: io.StringIO,
) -> None:
    world, console = console_world
    if spoil is None:
        raw = console.state.add_pat(console.users["carol"])
    elif shown == "ne reconnaît pas":
        raw = "x" * 48
    else:
        raw = console.state.add_pat(console.users["bob"])
        spoil(console.state, raw)
    answer = _connect(world, "bob", raw)
    errors = answer.get("errors")
    assert isinstance(errors, dict) and shown in str(errors["token"])
    assert svc.vault_secret(world, f"{TOKENS_PATH}/{world.users['bob'].id}") is None
    assert "personal access token refused" in captured_logs.getvalue() or shown == "n'est pas le vôtre"
    assert raw not in captured_logs.getvalue() and raw not in str(world.states["mattermost"].ephemeral)


def test_the_daily_job_reminds_before_expiry_and_once_expired(console_world: tuple[World, Console]) -> None:
    world, console = console_world
    bot = world.bot
    assert bot is not None
    bob, carol = world.users["bob"], world.users["carol"]
    for who, days in (("bob", 3), ("carol", 40)):
        pat = console.state.add_pat(console.users[who], expires_in=timedelta(days=days))
        _connect(world, who, pat)
    wait_for(lambda: svc.vault_secret(world, f"{TOKENS_PATH}/{carol.id}"), what="both linked")

    async def daily() -> None:
        await remind_tokens(bot)

    def reminders(username: str) -> list[str]:
        return [m for m in _private(world, username) if m.startswith(("⏳", "⌛"))]

    world.run(daily())
    world.run(daily())  # daily: the same reminder is not sent twice
    world.wait_idle()
    assert len(reminders("bob")) == 1 and "dans 3 jours" in reminders("bob")[0]
    assert reminders("carol") == []
    stored = svc.vault_secret(world, f"{TOKENS_PATH}/{bob.id}") or {}
    assert stored.get("reminded") == "soon"
    svc_path = f"{TOKENS_PATH}/{bob.id}"
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    world.run(bot.credentials.vault.merge(svc_path, {"expires": past}))
    world.run(daily())
    world.wait_idle()
    assert len(reminders("bob")) == 2 and "a expiré" in reminders("bob")[1]
    assert world.run(bot.credentials.person_credential(bob.id)) is None  # an expired token is not used
