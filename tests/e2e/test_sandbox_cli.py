"""``cpn-bot sandbox``: the terminal rendering, the chat driven by scripted input, the headless mode."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.sandbox.chat import Chat
from bot.sandbox.terminal import (
    Labels,
    Style,
    changed_lines,
    detect_style,
    post_body,
    render_edit,
    render_markdown,
    render_post,
    strip_ansi,
)
from bot.sandbox.world import Timings, World
from services.emulators.base import EmulatorServer
from tests.conftest import wait_for
from tests.support.mattermost import text_of

CARD: dict[str, Any] = {
    "id": "p" * 26,
    "user_id": "u" * 26,
    "channel_id": "c" * 26,
    "root_id": "",
    "message": "#### Déploiement\nVoulez-vous **vraiment** déployer `alpha` ?",
    "props": {
        "attachments": [
            {
                "color": "#000091",
                "title": "Projet alpha",
                "text": "Branche _main_",
                "fields": [
                    {"title": "Environnement", "value": "production", "short": True},
                    {"title": "Version", "value": "`1.2.3`", "short": True},
                ],
                "actions": [
                    {"id": "a1", "name": "Confirmer", "type": "button"},
                    {"id": "a2", "name": "Annuler", "type": "button"},
                ],
            }
        ]
    },
}


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


# -- terminal.py ---------------------------------------------------------------------------------


def test_post_with_attachment_fields_and_buttons_in_colour() -> None:
    text = render_post(CARD, author="@cpn-bot", style=Style(color=True, truecolor=True), ref="#4")
    assert "\x1b[38;2;0;0;145m▌" in text  # the bar in the attachment's colour
    assert "\x1b[1mvraiment\x1b[0m" in text  # bold
    assert "\x1b[36malpha\x1b[0m" in text  # code span
    plain = strip_ansi(text)
    lines = plain.splitlines()
    assert lines[0] == "#4 @cpn-bot"
    assert "Déploiement" in lines[1]
    assert "▌ Projet alpha" in plain
    assert "▌ Environnement : production" in plain
    assert "▌ Version : 1.2.3" in plain
    assert "▌ [1] Confirmer  [2] Annuler" in plain


def test_256_colours_when_the_terminal_has_no_truecolor() -> None:
    text = render_post(CARD, author="@cpn-bot", style=Style(color=True, truecolor=False))
    assert "\x1b[38;5;" in text and "\x1b[38;2;" not in text


def test_no_color_is_respected() -> None:
    env = {"NO_COLOR": "1", "FORCE_COLOR": "1", "TERM": "xterm-256color", "COLORTERM": "truecolor"}
    style = detect_style(_Tty(), env)
    assert style.color is False
    text = render_post(CARD, author="@cpn-bot", style=style, edited=True)
    assert "\x1b" not in text
    assert "| [1] Confirmer  [2] Annuler" in text
    assert "| Version : `1.2.3`" in text  # code spans keep their backticks without colours
    assert "(modifié)" in text.splitlines()[0]
    assert detect_style(_Tty(), {"TERM": "xterm"}).color is True
    assert detect_style(io.StringIO(), {"TERM": "xterm"}).color is False


def test_markdown_lightly_rendered_without_colours() -> None:
    out = render_markdown("## Titre\n- un **gras** et [lien](http://x)\n```\ncode\n```", Style())
    assert out.splitlines() == ["TITRE", "• un gras et lien <http://x>", "    code"]


def test_thread_reply_indented_under_its_root() -> None:
    reply = {**CARD, "root_id": "r" * 26, "message": "une réponse", "props": {}}
    text = render_post(reply, author="@bob", style=Style(), ref="#7", root=("#2", "la question"), labels=Labels())
    lines = text.splitlines()
    assert lines[0] == "↳ en réponse à #2 « la question »"
    assert lines[1] == "    #7 @bob"
    assert lines[2] == "      une réponse"


CHECKLIST = ["| Création du projet alpha", "| 🔄 Vault", "| ⏳ GitLab", "| ⏳ Quay"]


@pytest.mark.parametrize(
    ("after", "shown"),
    [
        # a step done, the next one started: those two lines only
        (["| Création du projet alpha", "| ✅ Vault", "| 🔄 GitLab", "| ⏳ Quay"], ["| ✅ Vault", "| 🔄 GitLab"]),
        # lines added at the end
        ([*CHECKLIST, "|", "| ✅ Projet prêt."], ["|", "| ✅ Projet prêt."]),
        # a line gone (the buttons of a confirmation, say)
        (CHECKLIST[:3], ["− | ⏳ Quay"]),
        # replaced by fewer lines: the new one, then the one left over as gone
        (["| Création du projet alpha", "| ❌ Vault"], ["| ❌ Vault", "− | ⏳ GitLab", "− | ⏳ Quay"]),
        # nothing changed
        (CHECKLIST, []),
    ],
)
def test_an_edit_shows_only_the_lines_it_changed(after: list[str], shown: list[str]) -> None:
    assert changed_lines(CHECKLIST, after, Style()) == shown


def test_an_edit_is_marked_with_the_post_and_its_title() -> None:
    before = post_body(CARD, Style())
    confirmed = {**CARD, "props": {"attachments": [{**CARD["props"]["attachments"][0], "actions": []}]}}
    text = render_edit(before, post_body(confirmed, Style()), title="Projet alpha", style=Style(), ref="#4")
    assert text.splitlines() == ["✎ #4 Projet alpha", "  − | [1] Confirmer  [2] Annuler"]
    reply = render_edit(before, [], title="x", style=Style(), ref="#4", channel="~beta", reply=True)
    assert reply.splitlines()[0] == "    ✎ #4 [~beta] x"
    assert render_edit(before, before, title="Projet alpha", style=Style(), ref="#4") == ""
    coloured = render_edit(before, [], title="Projet alpha", style=Style(color=True), ref="#4")
    assert "\x1b[2m− " in coloured and strip_ansi(coloured).splitlines()[0] == "✎ #4 Projet alpha"


# -- the chat against a real World ----------------------------------------------------------------


class Script:
    """Fake input: returns the scripted lines; a callable in the script is run (e.g. a wait) first."""

    def __init__(self, *items: str | Callable[[], Any]) -> None:
        self.items = list(items)
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        while self.items:
            item = self.items.pop(0)
            if callable(item):
                item()
                continue
            return item
        raise EOFError


class Integration:
    """A tiny integration behind buttons and a dialog, as the bot would be (on loopback)."""

    def __init__(self, mm_url: str) -> None:
        self.mm_url = mm_url
        self.submissions: list[dict[str, Any]] = []
        self.pressed: list[str] = []  # the ``where`` of each pressed "record" button
        app = Starlette(
            routes=[
                Route("/action", self.action, methods=["POST"]),
                Route("/dialog", self.dialog, methods=["POST"]),
            ]
        )
        self.server = EmulatorServer(app, name="test-integration").start()

    def button(self, name: str, do: str, **context: str) -> dict[str, Any]:
        integration = {"url": f"{self.server.url}/action", "context": {"do": do, **context}}
        return {"name": name, "integration": integration}

    async def action(self, request: Request) -> JSONResponse:
        body = await request.json()
        if body["context"]["do"] == "record":
            self.pressed.append(body["context"]["where"])
            return JSONResponse({"update": {"message": f"pressé dans {body['context']['where']}"}})
        if body["context"]["do"] == "confirm":
            card = {"title": "Confirmé", "actions": [self.button("Formulaire", "dialog")]}
            return JSONResponse({"update": {"message": "Déploiement confirmé", "props": {"attachments": [card]}}})
        dialog = {
            "callback_id": "deploy",
            "title": "Déployer",
            "introduction_text": "Un **jeton** est demandé.",
            "notify_on_cancel": False,
            "elements": [
                {"name": "name", "display_name": "Nom", "type": "text"},
                {"name": "token", "display_name": "Jeton", "type": "text", "subtype": "password"},
                {
                    "name": "env",
                    "display_name": "Environnement",
                    "type": "select",
                    "options": [{"text": "Dev", "value": "dev"}, {"text": "Prod", "value": "prod"}],
                },
                {"name": "notify", "display_name": "Prévenir", "type": "bool", "optional": True},
                {"name": "note", "display_name": "Note", "type": "textarea", "optional": True},
            ],
        }
        payload = {"trigger_id": body["trigger_id"], "url": f"{self.server.url}/dialog", "dialog": dialog}
        async with httpx.AsyncClient(trust_env=False) as client:
            opened = await client.post(f"{self.mm_url}/api/v4/actions/dialogs/open", json=payload)
        assert opened.status_code == 200, opened.text
        return JSONResponse({})

    async def dialog(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.submissions.append(body)
        if len(body["submission"].get("name", "")) < 3:
            return JSONResponse({"errors": {"name": "au moins 3 caractères"}})
        return JSONResponse({})


@pytest.fixture(scope="module")
def chat_world() -> Iterator[World]:
    w = World.create(timings=Timings.fast()).start()
    try:
        yield w
    finally:
        w.stop()


def _chat(world: World, script: Script, **kw: Any) -> tuple[Chat, io.StringIO]:
    out = io.StringIO()
    chat = Chat(world.state_file(), "alice", "equipe-alpha", input_fn=script, output=out, **kw)
    return chat, out


def test_chat_help_whoami_and_switching_user(chat_world: World) -> None:
    script = Script("/cpn help", "/cpn whoami", ":as bob", "/cpn whoami", ":users", ":quit")
    chat, out = _chat(chat_world, script)
    try:
        assert chat.run() == 0
    finally:
        chat.close()
    text = out.getvalue()
    assert "/cpn help" in text and "Bienvenue" in text
    assert script.prompts[0] == "@alice ~equipe-alpha> "
    assert script.prompts[3] == "@bob ~equipe-alpha> "
    help_part = text.split("@alice ~equipe-alpha> /cpn help", 1)[1]
    assert "whoami" in help_part.split("@alice ~equipe-alpha> /cpn whoami")[0] and "COMMANDES DE CPN-BOT" in help_part
    alice_part = text.split("@alice ~equipe-alpha> /cpn whoami", 1)[1].split(":as bob")[0]
    assert "Utilisateur : @alice" in alice_part
    assert "Vous êtes maintenant @bob" in text
    bob_part = text.split("@bob ~equipe-alpha> /cpn whoami", 1)[1]
    assert "Utilisateur : @bob" in bob_part.split(":users")[0]
    assert "@bob — Bob Durand (vous)" in bob_part
    assert "\x1b" not in text  # not a terminal: no colours


def test_chat_message_to_the_bot_channels_and_history(chat_world: World) -> None:
    holder: dict[str, io.StringIO] = {}
    script = Script(
        "bonjour @cpn-bot",
        lambda: wait_for(
            lambda: "@cpn-bot" in holder["out"].getvalue().split("bonjour @cpn-bot")[-1],
            what="the bot's answer",
        ),
        ":c equipe-beta",
        ":c ~nulle-part",
        ":c equipe-alpha",
        ":history 2",
        ":channels",
        ":nope",
    )
    chat, out = _chat(chat_world, script, language="en")
    holder["out"] = out
    try:
        chat.run()
    finally:
        chat.close()
    text = out.getvalue()
    assert "Welcome" in text
    assert "You are in ~equipe-beta." in text
    assert "Channel not found or not readable: ~nulle-part." in text
    history = text.split(":history 2", 1)[1].split(":channels")[0]
    assert "@alice" in history and "bonjour @cpn-bot" in history and "@cpn-bot" in history
    assert "→ ~equipe-alpha — Équipe Alpha (public)" in text
    assert "Unknown terminal command: :nope" in text


def test_chat_buttons_edits_and_a_dialog_with_a_password(chat_world: World) -> None:
    mm = chat_world.states["mattermost"]
    integration = Integration(chat_world.servers["mattermost"].url)
    secrets: list[str] = []

    def secret(prompt: str) -> str:
        secrets.append(prompt)
        return "s3cr3t-jeton"

    holder: dict[str, io.StringIO] = {}

    def post_card() -> None:
        assert chat_world.bot_user is not None
        card = {
            "color": "good",
            "title": "Déploiement de alpha",
            "fields": [{"title": "Version", "value": "1.2.3", "short": True}],
            "actions": [
                integration.button("Confirmer", "confirm"),
                integration.button("Formulaire", "dialog"),
            ],
        }
        root = mm.create_post(chat_world.bot_user.id, chat_world.channels["equipe-alpha"], "Une question ?")
        mm.create_post(
            chat_world.bot_user.id,
            chat_world.channels["equipe-alpha"],
            "",
            root_id=root["id"],
            props={"attachments": [card]},
        )
        wait_for(lambda: "[2] Formulaire" in holder["out"].getvalue(), what="the card")

    script = Script(
        post_card,
        ":press 1",
        lambda: wait_for(lambda: "Déploiement confirmé" in holder["out"].getvalue(), what="the edit"),
        ":press 2 1",  # the card is #2 (#1 is the thread's root); its only button is now Formulaire
        "ab",  # Nom: refused by the integration, asked again
        "2",  # Environnement: Prod
        "o",  # Prévenir
        "ligne 1",
        ".",
        "alpha-ok",  # Nom again
        ":quit",
    )
    chat, out = _chat(chat_world, script, secret_fn=secret)
    holder["out"] = out
    try:
        chat.run()
    finally:
        chat.close()
        integration.server.stop()
    text = out.getvalue()
    assert "↳ en réponse à #1 « Une question ? »" in text
    assert "    | [1] Confirmer  [2] Formulaire" in text
    # The edit: the reply's marker and the lines it changed, the unchanged card not again.
    edit = text.split("    ✎ #2 Déploiement confirmé\n", 1)[1].split("@alice")[0].splitlines()
    assert edit == ["      Déploiement confirmé", "      | Confirmé", "      | [1] Formulaire"], edit
    assert "Formulaire : Déployer" in text and "Un jeton est demandé." in text
    assert "[2] Prod" in text
    assert "Nom : au moins 3 caractères" in text
    assert "Formulaire envoyé." in text
    assert len(secrets) == 1  # the password was read with the secret reader, once
    assert "s3cr3t-jeton" not in text
    assert [s["submission"]["name"] for s in integration.submissions] == ["ab", "alpha-ok"]
    final = integration.submissions[-1]["submission"]
    assert final == {
        "name": "alpha-ok",
        "token": "s3cr3t-jeton",
        "env": "prod",
        "notify": True,
        "note": "ligne 1",
    }
    assert integration.submissions[-1]["channel_id"] == chat_world.channels["equipe-alpha"]


def test_press_acts_on_the_buttons_of_the_current_channel(chat_world: World) -> None:
    mm = chat_world.states["mattermost"]
    assert chat_world.bot_user is not None
    bot_id = chat_world.bot_user.id
    integration = Integration(chat_world.servers["mattermost"].url)
    holder: dict[str, io.StringIO] = {}

    def card(channel: str, where: str) -> None:
        attachment = {"title": f"Carte de {where}", "actions": [integration.button("Appuyer", "record", where=where)]}
        mm.create_post(bot_id, chat_world.channels[channel], "", props={"attachments": [attachment]})

    def post_cards() -> None:
        card("equipe-alpha", "alpha")
        card("prive-gamma", "gamma")  # the latest card the chat shows, but in another channel
        wait_for(lambda: "Carte de gamma" in holder["out"].getvalue(), what="the cards")

    card("support-cpn", "support")  # before the chat started: found on the server
    script = Script(
        post_cards,
        ":press 1",
        ":c prive-gamma",
        ":press 1",
        ":c support-cpn",
        ":press 1",
        ":c equipe-beta",
        ":press 1",
        ":quit",
    )
    chat, out = _chat(chat_world, script)
    holder["out"] = out
    try:
        chat.run()
    finally:
        chat.close()
        integration.server.stop()
    assert integration.pressed == ["alpha", "gamma", "support"]
    assert "Aucun message à boutons dans ~equipe-beta" in out.getvalue().rsplit(":press 1", 1)[1]


def test_a_project_created_in_the_chat_prints_each_checklist_step_once_per_state(chat_world: World) -> None:
    holder: dict[str, io.StringIO] = {}
    script = Script(
        "/cpn project create tableau",
        lambda: wait_for(lambda: "Projet prêt" in holder["out"].getvalue(), timeout=30, what="the project"),
        ":quit",
    )
    chat, out = _chat(chat_world, script)
    holder["out"] = out
    try:
        chat.run()
    finally:
        chat.close()
    lines = out.getvalue().splitlines()
    steps = [m.groups() for line in lines if (m := re.match(r"\s*\| (⏳|🔄|✅|❌) (\w+)$", line))]
    per_step = Counter(name for _, name in steps)
    assert set(per_step) == {"Vault", "GitLab", "Quay", "Nexus", "SonarQube", "ArgoCD"}, lines
    # Waiting, running, done: a step shows at most once per state, never the whole card per edit.
    assert max(per_step.values()) <= 3, per_step
    assert sum(1 for line in lines if line.endswith("| Création du projet tableau")) == 1
    assert sum(1 for line in lines if line.startswith("✎ #")) >= 5


def test_chat_scenario_and_degrade_act_on_the_emulated_platform(chat_world: World) -> None:
    gl = chat_world.states["gitlab"]
    projects_group = next(n for n in gl.namespaces.values() if gl.full_path(n) == "forge/projects")
    for project, repos in (("demo", ("api", "front")), ("essai", ("api",))):
        group = gl.add_group(project, parent_id=projects_group.id)
        for repo in repos:
            gl.add_project(repo, group["id"])
    holder: dict[str, io.StringIO] = {}

    def after(marker: str) -> str:
        return holder["out"].getvalue().rsplit(marker, 1)[1]

    def check(condition: Callable[[], bool]) -> Callable[[], None]:
        def run() -> None:
            assert condition()

        return run

    script = Script(
        ":scenario front fail:test failed",
        check(lambda: gl.scenarios["forge/projects/demo/front"] == "fail:test"),
        check(lambda: chat_world.quality_outcomes["forge/projects/demo/front"] == "failed"),
        ":scenario demo/api stuck:build",
        ":scenario forge/projects/neuf/web fail:push",  # not created yet: allowed, as a path
        ":scenario neuf/front stuck:test",
        ":scenario api success",  # two of them
        ":scenario nope success",
        ":scenario front explode",
        ":degrade sonarqube",
        check(lambda: chat_world.states["sonarqube"].health == "YELLOW"),
        "/cpn services",
        ":degrade sonarqube ok",
        "/cpn services",
        ":degrade nexus down",
        check(lambda: chat_world.states["nexus"].available is False),
        ":degrade nexus ok",
        check(lambda: chat_world.states["nexus"].available is True),
        ":degrade mattermost down",
        ":degrade jenkins",
        ":help",
        ":quit",
    )
    out = io.StringIO()
    chat = Chat(chat_world.state_file(), "alice", "equipe-alpha", input_fn=script, output=out, world=chat_world)
    holder["out"] = out
    try:
        chat.run()
    finally:
        chat.close()
        for service in ("sonarqube", "nexus"):
            chat_world.degrade(service, "ok")
        for path in ("demo/front", "demo/api", "neuf/web", "neuf/front"):
            chat_world.scenario(f"forge/projects/{path}")
    text = out.getvalue()
    assert "Prochains pipelines de `forge/projects/demo/front` : `fail:test`, quality gate `failed`" in text
    assert "Prochains pipelines de `forge/projects/demo/api` : `stuck:build`, quality gate `passed`" in text
    assert "Prochains pipelines de `forge/projects/neuf/web` : `fail:push`" in text
    assert "Prochains pipelines de `forge/projects/neuf/front` : `stuck:test`" in text
    part = after(":scenario api success").split(":scenario nope")[0]
    assert "Plusieurs dépôts `api`" in part and "forge/projects/demo/api" in part and "forge/projects/essai/api" in part
    part = after(":scenario nope success").split(":scenario front explode")[0]
    assert "Aucun dépôt `nope`" in part and "`demo/front`" in part
    assert "Usage : `:scenario DÉPÔT PIPELINE [QUALITÉ]`" in after(":scenario front explode")

    degraded = after("> :degrade sonarqube\n").split("> :degrade sonarqube ok")[0]
    assert "SonarQube est dégradé." in degraded
    assert "SonarQube : Dégradé" in degraded and "GitLab : OK" in degraded
    restored = after("> :degrade sonarqube ok").split("> :degrade nexus down")[0]
    assert "SonarQube est rétabli." in restored and "SonarQube : OK" in restored
    assert "Nexus est arrêté." in text and "Nexus est rétabli." in text
    assert "Mattermost reste en marche" in after(":degrade mattermost down")
    assert "Usage : `:degrade SERVICE" in after(":degrade jenkins")
    help_part = after("> :help")
    assert ":scenario DÉPÔT PIPELINE [QUALITÉ]" in help_part and ":degrade SERVICE [degraded|down|ok]" in help_part
    assert not script.items  # every check above ran


def test_chat_switches_in_english_and_without_the_sandbox(chat_world: World) -> None:
    script = Script(":help", ":scenario api success", ":degrade vault down", ":quit")
    chat, out = _chat(chat_world, script, language="en")
    try:
        chat.run()
    finally:
        chat.close()
    text = out.getvalue()
    assert ":scenario REPO PIPELINE [QUALITY]" in text and ":degrade SERVICE [degraded|down|ok]" in text
    assert "(jobs: `sync`, `test`, `sonar`, `build`, `trivy`, `push`)" in text
    assert "`:scenario` acts on the emulated services: only in the chat of `cpn-bot sandbox`." in text
    assert "`:degrade` acts on the emulated services" in text
    assert chat_world.states["vault"].sealed is False and not chat_world.states["vault"].faults.down


# -- headless ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("control", "registry", "web"),
    [("direct", "quay", False), ("direct", "harbor", True), ("console", "harbor", False)],
    ids=["direct-quay", "direct-harbor-web", "console"],
)
def test_headless_state_file_healthz_slash_and_sigterm(tmp_path: Path, control: str, registry: str, web: bool) -> None:
    state_file = tmp_path / "state" / "sandbox.json"
    cli = Path(sys.executable).parent / "cpn-bot"
    env = dict(os.environ, NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    flags = (
        ["--control", control] + (["--web"] if web else []) + ([] if control == "console" else ["--registry", registry])
    )
    proc = subprocess.Popen(
        [str(cli), "sandbox", "--headless", "--state-file", str(state_file), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        wait_for(lambda: state_file.exists() or proc.poll() is not None, timeout=20, what="the state file")
        assert proc.poll() is None, proc.communicate()
        assert state_file.stat().st_mode & 0o077 == 0
        state = json.loads(state_file.read_text())
        assert state["slash_command"] == "/cpn" and state["slash_token"]
        mm = state["mattermost"]
        for key in ("url", "token", "team_id", "team_name", "channels", "users"):
            assert mm[key], key
        assert mm["team_name"] == "cloud-pi-native"
        assert "equipe-alpha" in mm["channels"]
        assert mm["users"]["alice"]["admin"] is True and mm["users"]["bob"]["admin"] is False
        assert all({"id", "token", "admin"} <= set(u) for u in mm["users"].values())
        # The registry the bot drives, and only it (harbor in place of quay).
        assert state[registry]["url"] and state[registry]["token"]
        assert bool(state[registry]["secret"]) == (registry == "harbor")  # Quay sends the bot no webhooks
        assert ({"quay", "harbor"} - {registry}).isdisjoint(state)
        # The console mode: the console's address and its admin token, which scripts drive it with.
        if control == "console":
            assert state["console"]["url"].startswith("http://127.0.0.1:") and state["console"]["token"]
        else:
            assert "console" not in state
        assert ("web_url" in state) == web

        with httpx.Client(trust_env=False, timeout=10) as client:
            assert client.get(f"{state['bot_url']}/healthz").status_code == 200
            answer = client.post(
                f"{mm['url']}/api/v4/commands/execute",
                headers={"Authorization": f"Bearer {mm['users']['bob']['token']}"},
                json={
                    "command": "/cpn help",
                    "channel_id": mm["channels"]["equipe-alpha"],
                    "team_id": mm["team_id"],
                },
            )
        assert answer.status_code == 200, answer.text
        assert "`whoami`" in answer.json()["text"]
        assert ("Mode console" if control == "console" else "Mode direct") in answer.json()["text"]
        if control == "console":
            _console_answers_its_admin_token(state)
        if web:
            _web_view_serves_the_team(state)
        _switches_over_http(state)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            stdout, stderr = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, stderr
    assert str(state_file) in stdout


def _console_answers_its_admin_token(state: dict[str, Any]) -> None:
    """The state file's console token is an admin token the console accepts (console-api.md §1: the
    ``x-dso-token`` header, refused by the legacy server as HTTP 200 carrying ``{"status": 401}``), and the
    console knows alice by her e-mail."""
    with httpx.Client(base_url=state["console"]["url"], trust_env=False, timeout=10) as console:
        assert console.get("/api/v1/version").status_code == 200
        admin = {"x-dso-token": state["console"]["token"]}
        every = console.get("/api/v1/projects", params={"filter": "all"}, headers=admin)
        assert every.status_code == 200 and isinstance(every.json(), list), every.text
        matching = console.get("/api/v1/users/matching", params={"letters": "alice"}, headers=admin)
        assert [u["email"].split("@")[0] for u in matching.json()] == ["alice"], matching.text
        refused = console.get("/api/v1/projects", headers={"x-dso-token": "not-a-token"})
        assert refused.status_code == 401 or refused.json().get("status") == 401, refused.text


def _web_view_serves_the_team(state: dict[str, Any]) -> None:
    """``web_url`` answers on loopback with the page (its content is tested in a real browser)."""
    assert state["web_url"].startswith("http://127.0.0.1:")
    page = httpx.get(state["web_url"], trust_env=False, timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]


def _switches_over_http(state: dict[str, Any]) -> None:
    """``sandbox_url``: a degraded service as /cpn services shows it, a scenario as GitLab runs it."""
    mm = state["mattermost"]
    control = httpx.Client(
        base_url=state["sandbox_url"], headers={"Authorization": f"Bearer {state['sandbox_token']}"}, trust_env=False
    )
    gitlab = httpx.Client(
        base_url=f"{state['gitlab']['url']}/api/v4",
        headers={"PRIVATE-TOKEN": state["gitlab"]["token"]},
        trust_env=False,
    )

    def services() -> str:
        answer = httpx.post(
            f"{mm['url']}/api/v4/commands/execute",
            headers={"Authorization": f"Bearer {mm['users']['bob']['token']}"},
            json={"command": "/cpn services", "channel_id": mm["channels"]["equipe-alpha"], "team_id": mm["team_id"]},
            trust_env=False,
            timeout=10,
        )
        return text_of(answer.json())

    with control, gitlab:
        answer = control.post("/degrade", json={"service": "sonarqube", "mode": "degraded"})
        assert answer.status_code == 200, answer.text
        assert "**SonarQube** : Dégradé" in services()
        assert control.post("/degrade", json={"service": "sonarqube", "mode": "ok"}).status_code == 200
        assert "**SonarQube** : OK" in services()

        answer = control.post(
            "/scenario", json={"repository": "essai/api", "pipeline": "fail:test", "quality": "failed"}
        )
        assert answer.status_code == 200, answer.text
        assert control.post("/scenario", json={"repository": "essai/api"}).status_code == 400
        # Two repositories of one project, one under the scenario: their first job tells them apart.
        parent = gitlab.get("/groups/forge%2Fprojects").json()
        group = gitlab.post("/groups", json={"name": "essai", "path": "essai", "parent_id": parent["id"]}).json()
        pipelines = {}
        for repo in ("api", "web"):
            project = gitlab.post(
                "/projects", json={"name": repo, "namespace_id": group["id"], "initialize_with_readme": True}
            ).json()
            ci = {"branch": "main", "content": "include: []\n", "commit_message": "CI"}
            created = gitlab.post(f"/projects/{project['id']}/repository/files/.gitlab-ci.yml", json=ci)
            assert created.status_code == 201, created.text  # the push starts the pipeline
            pipeline = gitlab.get(f"/projects/{project['id']}/pipelines/latest").json()
            pipelines[repo] = f"/projects/{project['id']}/pipelines/{pipeline['id']}/jobs"

        def first_job(repo: str) -> str:
            jobs = {job["name"]: job["status"] for job in gitlab.get(pipelines[repo]).json()}
            return str(jobs.get("test", ""))

        wait_for(lambda: {first_job("api"), first_job("web")} <= {"failed", "success"}, timeout=15, what="the tests")
        assert (first_job("api"), first_job("web")) == ("failed", "success")


# -- the interactive CLI: its log, its transcript, --data ------------------------------------------


class Session:
    """``cpn-bot sandbox`` in a subprocess, typed into through its stdin, its output read as it comes."""

    def __init__(self, *args: str) -> None:
        cli = Path(sys.executable).parent / "cpn-bot"
        env = dict(os.environ, NO_COLOR="1", NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
        self.proc = subprocess.Popen(
            [str(cli), "sandbox", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def type(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait_for(self, fragment: str, timeout: float = 30) -> None:
        wait_for(lambda: fragment in self.text or self.proc.poll() is not None, timeout=timeout, what=fragment)
        assert fragment in self.text, self.text

    def quit(self) -> str:
        self.type(":quit")
        assert self.proc.wait(timeout=20) == 0, self.text
        self.reader.join(timeout=5)
        return self.text

    def path_after(self, label: str) -> Path:
        line = next(line for line in self.lines if line.startswith(label))
        return Path(line.split(" : ", 1)[1].strip())


def test_quit_keeps_the_log_and_the_transcript_it_advertised() -> None:
    session = Session()
    try:
        session.wait_for("Bienvenue")
        session.type("/cpn whoami")
        session.wait_for("Utilisateur : @alice")
        text = session.quit()
    finally:
        if session.proc.poll() is None:
            session.proc.kill()
    data_line = next(line for line in session.lines if line.startswith("Données du bac à sable"))
    assert "temporaires, effacées à l'arrêt" in data_line
    root = Path(data_line.split(" : ", 1)[1].split(",", 1)[0])
    log, transcript = session.path_after("Journal du bot"), session.path_after("Transcription du chat")
    assert not root.exists()  # the secrets and the database went with it
    try:
        assert f"Journal et transcription gardés : {log}, {transcript}" in text
        assert log.is_file()
        kept = transcript.read_text(encoding="utf-8")
        assert "@alice ~equipe-alpha> /cpn whoami" in kept and "Utilisateur : @alice" in kept
        assert "@alice ~equipe-alpha> :quit" in kept
        assert transcript.stat().st_mode & 0o077 == 0
    finally:
        log.unlink(missing_ok=True)
        transcript.unlink(missing_ok=True)


def test_data_keeps_the_sandbox_from_one_run_to_the_next(tmp_path: Path) -> None:
    data = tmp_path / "bac"
    first = Session("--as", "bob", "--data", str(data))
    try:
        first.wait_for("Bienvenue")
        first.type("/cpn project create tableau")
        first.wait_for("Projet prêt", timeout=60)
        first.quit()
    finally:
        if first.proc.poll() is None:
            first.proc.kill()
    assert f"Données du bac à sable : {data}, gardées à l'arrêt" in first.text

    second = Session("--as", "bob", "--data", str(data))
    try:
        second.wait_for("Bienvenue")
        second.type("/cpn project list")
        second.wait_for("tableau")
        second.type(":history 3")
        second.wait_for("Création du projet tableau")
        second.quit()
    finally:
        if second.proc.poll() is None:
            second.proc.kill()
    assert f"Données du bac à sable : {data}, reprises de la session précédente" in second.text
    # One log and one transcript in the directory, the second session's after the first's.
    transcript = (data / "transcript.txt").read_text(encoding="utf-8")
    assert transcript.index("/cpn project create tableau") < transcript.index("/cpn project list")
    assert (data / "sandbox.log").is_file()
