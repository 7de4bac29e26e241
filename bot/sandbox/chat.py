"""The sandbox's terminal chat: a Mattermost client for one user at a time, in a terminal.

It speaks only the Mattermost API, as the user whose token it holds (REST with httpx, events with
mattermostautodriver's ``Websocket``): a line starting with ``/`` is a slash command
(``POST /api/v4/commands/execute``), any other line is posted in the current channel, buttons are
pressed with ``POST /api/v4/posts/{id}/actions/{action_id}`` and dialogs are submitted with
``POST /api/v4/actions/dialogs/submit``. It never calls the bot directly.

Events arrive on a background thread that has its own asyncio loop and are printed above the
prompt. Input and output are injectable (``input_fn``, ``secret_fn``, ``output``) so tests drive
the chat with a list of lines and read what it printed.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import getpass
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

import httpx
from mattermostautodriver import Websocket

from bot.sandbox.terminal import (
    BOLD,
    DIM,
    Action,
    Labels,
    Style,
    attachments_of,
    detect_style,
    excerpt,
    post_actions,
    post_body,
    render_edit,
    render_markdown,
    render_post,
    strip_ansi,
)
from bot.sandbox.world import PIPELINE_JOBS, QUALITY_OUTCOMES

if TYPE_CHECKING:
    from bot.sandbox.world import World

InputFn = Callable[[str], str]

# The emulated services ``:degrade`` acts on (World.degrade), as /cpn services names them.
DEGRADABLE = {
    "gitlab": "GitLab",
    "vault": "Vault",
    "quay": "Quay",
    "nexus": "Nexus",
    "sonarqube": "SonarQube",
    "argocd": "ArgoCD",
}

TEXTS: dict[str, dict[str, str]] = {
    "fr": {
        "starting": "Démarrage du bac à sable (Mattermost émulé, services de la plateforme, cpn-bot)…",
        "data_temporary": (
            "Données du bac à sable (configuration, SQLite, secrets) : {root}, temporaires, effacées à l'arrêt "
            "(`--data DOSSIER` pour les garder d'une session à l'autre)."
        ),
        "data_new": "Données du bac à sable : {root}, gardées à l'arrêt et reprises à la prochaine session.",
        "data_resumed": "Données du bac à sable : {root}, reprises de la session précédente (gardées à l'arrêt).",
        "transcript": "Transcription du chat : {path}",
        "kept": "Journal et transcription gardés : {log}, {transcript}",
        "urls": "Services :",
        "log": "Journal du bot et des émulateurs : {path}",
        "ready_headless": "Bac à sable prêt ; état dans {path} (Ctrl-C ou SIGTERM pour arrêter).",
        "stopping": "Arrêt du bac à sable…",
        "welcome": (
            "Bienvenue dans le bac à sable de cpn-bot : vous êtes {user} dans {channel}.\n"
            "Écrivez comme dans Mattermost : une ligne qui commence par « / » est une commande "
            "(essayez **/cpn help**), tout autre texte est publié dans le canal "
            "(mentionnez @cpn-bot pour lui parler).\n"
            "Commandes du terminal : `:help`, `:as UTILISATEUR`, `:c CANAL` (ou `:c @utilisateur`), "
            "`:channels`, `:users`, `:history [N]`, `:press [REF] N`, `:scenario`, `:degrade`, "
            "`:quit` (ou Ctrl-D)."
        ),
        "help": (
            "#### Commandes du terminal\n"
            "- `/cpn …` : une commande slash, comme dans Mattermost (commencez par `/cpn help`)\n"
            "- tout autre texte : un message dans le canal courant (`@cpn-bot …` pour parler au bot)\n"
            "- `:as UTILISATEUR` : changer d'utilisateur ({users})\n"
            "- `:channel NOM` ou `:c NOM` : changer de canal ; `:c @cpn-bot` ouvre un message direct\n"
            "- `:channels` : les canaux ; `:users` : les utilisateurs\n"
            "- `:history [N]` : les N derniers messages du canal (10 par défaut)\n"
            "- `:press N` : appuyer sur le bouton N du dernier message à boutons du canal courant ; "
            "`:press REF N` pour le message REF (ex. `:press 3 1`)\n"
            "- `:reply REF TEXTE` : répondre dans le fil du message REF\n"
            "- `:scenario DÉPÔT PIPELINE [QUALITÉ]` : comment iront les prochains pipelines d'un dépôt "
            "(`api` ou `forge/projects/demo/api`) : PIPELINE `success`, `fail:JOB` ou `stuck:JOB` "
            "(jobs : {jobs}), QUALITÉ `passed` ou `failed` (ex. `:scenario api fail:test failed`)\n"
            "- `:degrade SERVICE [degraded|down|ok]` : dégrader, arrêter ou rétablir un service émulé "
            "({services}), puis `/cpn services` pour voir ce qu'en dit le bot\n"
            "- `:quit` ou Ctrl-D : quitter"
        ),
        "edited": "(modifié)",
        "ephemeral": "(visible par vous seulement)",
        "http_only": (
            "(seulement dans la réponse HTTP de la commande : Mattermost ne l'afficherait pas, "
            "ni en éphémère ni dans le canal)"
        ),
        "reply_to": "en réponse à",
        "deleted": "{ref} supprimé",
        "unknown_meta": "Commande du terminal inconnue : {cmd}. Voir `:help`.",
        "unknown_user": "Utilisateur inconnu : {user}. Utilisateurs : {users}.",
        "unknown_channel": "Canal introuvable ou inaccessible : {channel}.",
        "switched_user": "Vous êtes maintenant {user} dans {channel}.",
        "switched_channel": "Vous êtes dans {channel}.",
        "channels": "Canaux (→ canal courant) :",
        "not_member": "(lecture seule, non membre)",
        "public": "public",
        "private": "privé",
        "users": "Utilisateurs (`:as NOM` pour en changer) :",
        "admin": "administrateur de la plateforme",
        "you": "(vous)",
        "bot": "le bot",
        "history_empty": "Aucun message dans {channel}.",
        "no_buttons": "Aucun message à boutons dans {channel} ; `:press REF N` pour un message précis.",
        "bad_button": "Pas de bouton {n} sur le message {ref} ({count} bouton(s)).",
        "bad_ref": "Message inconnu : {ref}.",
        "usage_press": "Usage : `:press N` ou `:press REF N`.",
        "usage_reply": "Usage : `:reply REF TEXTE`.",
        "usage_as": "Usage : `:as UTILISATEUR`.",
        "usage_channel": "Usage : `:channel NOM`.",
        "choose_option": "Choix (numéro) : ",
        "error": "Erreur {status} : {message}",
        "unreachable": "Mattermost ne répond pas : {error}",
        "ws_down": "Connexion temps réel indisponible : les messages n'arriveront qu'avec `:history`.",
        "dialog_pending": "Un formulaire s'est ouvert : appuyez sur Entrée pour le remplir.",
        "dialog_title": "Formulaire : {title}",
        "dialog_hint": "(Entrée : valeur par défaut ; « :annuler » pour abandonner le formulaire)",
        "optional": "facultatif",
        "default": "défaut",
        "required": "Ce champ est requis.",
        "bad_choice": "Choix invalide : tapez un numéro de 1 à {count}.",
        "bool_prompt": "o/n",
        "yes": "o,oui,y,yes,1,vrai,true",
        "no": "n,non,no,0,faux,false",
        "textarea_hint": "(plusieurs lignes ; terminez par une ligne contenant seulement « . »)",
        "dialog_cancelled": "Formulaire abandonné.",
        "dialog_sent": "Formulaire envoyé.",
        "dialog_errors": "Le formulaire a été refusé :",
        "cancel_words": ":annuler,:cancel",
        "hidden": "[masqué]",
        "no_world": "`{cmd}` agit sur les services émulés : seulement dans le chat de `cpn-bot sandbox`.",
        "usage_scenario": (
            "Usage : `:scenario DÉPÔT PIPELINE [QUALITÉ]`, PIPELINE `success`, `fail:JOB` ou `stuck:JOB` "
            "(jobs : {jobs}), QUALITÉ `passed` ou `failed`. Ex. `:scenario api fail:test failed`."
        ),
        "unknown_repo": "Aucun dépôt `{repo}` dans le GitLab émulé. Dépôts : {known}.",
        "ambiguous_repo": "Plusieurs dépôts `{repo}` : précisez le chemin parmi {paths}.",
        "scenario_set": (
            "🎬 Prochains pipelines de `{path}` : {pipeline}, quality gate {quality}. "
            "`:scenario {repo} success` pour revenir à la normale."
        ),
        "usage_degrade": "Usage : `:degrade SERVICE [degraded|down|ok]`, SERVICE parmi {services}.",
        "mattermost_kept": "Mattermost reste en marche : le chat et le bot passent par lui. Services : {services}.",
        "degraded": "🟠 {service} est dégradé.",
        "down": "🔴 {service} est arrêté.",
        "degrade_hint": "`/cpn services` pour voir ce qu'en dit le bot ; `:degrade {name} ok` pour le rétablir.",
        "restored": "🟢 {service} est rétabli.",
        "command_author": "{trigger}",
        "bye": "Au revoir.",
    },
    "en": {
        "starting": "Starting the sandbox (emulated Mattermost, platform services, cpn-bot)…",
        "data_temporary": (
            "Sandbox data (configuration, SQLite, secrets): {root}, temporary, deleted at exit "
            "(`--data DIR` to keep it from one session to the next)."
        ),
        "data_new": "Sandbox data: {root}, kept at exit and resumed by the next session.",
        "data_resumed": "Sandbox data: {root}, resumed from the previous session (kept at exit).",
        "transcript": "Chat transcript: {path}",
        "kept": "Log and transcript kept: {log}, {transcript}",
        "urls": "Services:",
        "log": "Log of the bot and the emulators: {path}",
        "ready_headless": "Sandbox ready; state in {path} (Ctrl-C or SIGTERM to stop).",
        "stopping": "Stopping the sandbox…",
        "welcome": (
            "Welcome to the cpn-bot sandbox: you are {user} in {channel}.\n"
            "Type as in Mattermost: a line starting with “/” is a command (try **/cpn help**), "
            "any other text is posted in the channel (mention @cpn-bot to talk to it).\n"
            "Terminal commands: `:help`, `:as USER`, `:c CHANNEL` (or `:c @user`), `:channels`, "
            "`:users`, `:history [N]`, `:press [REF] N`, `:scenario`, `:degrade`, `:quit` (or Ctrl-D)."
        ),
        "help": (
            "#### Terminal commands\n"
            "- `/cpn …`: a slash command, as in Mattermost (start with `/cpn help`)\n"
            "- any other text: a message in the current channel (`@cpn-bot …` to talk to the bot)\n"
            "- `:as USER`: switch user ({users})\n"
            "- `:channel NAME` or `:c NAME`: switch channel; `:c @cpn-bot` opens a direct message\n"
            "- `:channels`: the channels; `:users`: the users\n"
            "- `:history [N]`: the last N posts of the channel (10 by default)\n"
            "- `:press N`: press button N of the latest post with buttons in the current channel; "
            "`:press REF N` for post REF (e.g. `:press 3 1`)\n"
            "- `:reply REF TEXT`: reply in the thread of post REF\n"
            "- `:scenario REPO PIPELINE [QUALITY]`: how a repository's next pipelines go "
            "(`api` or `forge/projects/demo/api`): PIPELINE `success`, `fail:JOB` or `stuck:JOB` "
            "(jobs: {jobs}), QUALITY `passed` or `failed` (e.g. `:scenario api fail:test failed`)\n"
            "- `:degrade SERVICE [degraded|down|ok]`: degrade, stop or restore an emulated service "
            "({services}), then `/cpn services` to see what the bot makes of it\n"
            "- `:quit` or Ctrl-D: quit"
        ),
        "edited": "(edited)",
        "ephemeral": "(only visible to you)",
        "http_only": (
            "(only in the command's HTTP answer: Mattermost would not show it, neither as ephemeral nor in the channel)"
        ),
        "reply_to": "reply to",
        "deleted": "{ref} deleted",
        "unknown_meta": "Unknown terminal command: {cmd}. See `:help`.",
        "unknown_user": "Unknown user: {user}. Users: {users}.",
        "unknown_channel": "Channel not found or not readable: {channel}.",
        "switched_user": "You are now {user} in {channel}.",
        "switched_channel": "You are in {channel}.",
        "channels": "Channels (→ current channel):",
        "not_member": "(read only, not a member)",
        "public": "public",
        "private": "private",
        "users": "Users (`:as NAME` to switch):",
        "admin": "platform administrator",
        "you": "(you)",
        "bot": "the bot",
        "history_empty": "No post in {channel}.",
        "no_buttons": "No post with buttons in {channel}; `:press REF N` for a given post.",
        "bad_button": "No button {n} on post {ref} ({count} button(s)).",
        "bad_ref": "Unknown post: {ref}.",
        "usage_press": "Usage: `:press N` or `:press REF N`.",
        "usage_reply": "Usage: `:reply REF TEXT`.",
        "usage_as": "Usage: `:as USER`.",
        "usage_channel": "Usage: `:channel NAME`.",
        "choose_option": "Choice (number): ",
        "error": "Error {status}: {message}",
        "unreachable": "Mattermost does not answer: {error}",
        "ws_down": "Real-time connection unavailable: posts will only show with `:history`.",
        "dialog_pending": "A dialog opened: press Enter to fill it in.",
        "dialog_title": "Dialog: {title}",
        "dialog_hint": "(Enter: default value; “:cancel” to give up the dialog)",
        "optional": "optional",
        "default": "default",
        "required": "This field is required.",
        "bad_choice": "Invalid choice: type a number from 1 to {count}.",
        "bool_prompt": "y/n",
        "yes": "y,yes,1,true,o,oui",
        "no": "n,no,0,false,non",
        "textarea_hint": "(several lines; end with a line holding only “.”)",
        "dialog_cancelled": "Dialog cancelled.",
        "dialog_sent": "Dialog submitted.",
        "dialog_errors": "The dialog was refused:",
        "cancel_words": ":cancel,:annuler",
        "hidden": "[hidden]",
        "no_world": "`{cmd}` acts on the emulated services: only in the chat of `cpn-bot sandbox`.",
        "usage_scenario": (
            "Usage: `:scenario REPO PIPELINE [QUALITY]`, PIPELINE `success`, `fail:JOB` or `stuck:JOB` "
            "(jobs: {jobs}), QUALITY `passed` or `failed`. E.g. `:scenario api fail:test failed`."
        ),
        "unknown_repo": "No repository `{repo}` in the emulated GitLab. Repositories: {known}.",
        "ambiguous_repo": "Several repositories `{repo}`: give the path, one of {paths}.",
        "scenario_set": (
            "🎬 Next pipelines of `{path}`: {pipeline}, quality gate {quality}. "
            "`:scenario {repo} success` to go back to normal."
        ),
        "usage_degrade": "Usage: `:degrade SERVICE [degraded|down|ok]`, SERVICE one of {services}.",
        "mattermost_kept": "Mattermost stays up: the chat and the bot go through it. Services: {services}.",
        "degraded": "🟠 {service} is degraded.",
        "down": "🔴 {service} is down.",
        "degrade_hint": "`/cpn services` to see what the bot makes of it; `:degrade {name} ok` to restore it.",
        "restored": "🟢 {service} is restored.",
        "command_author": "{trigger}",
        "bye": "Goodbye.",
    },
}

EVENT_WAIT = 2.0  # seconds to wait for the websocket echo of a command's answer
QUIET = 0.15  # then this long without any event before prompting again


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class _Cancelled(Exception):
    """The user gave up a dialog."""


class Api:
    """The Mattermost REST API as one user (a bearer token), with httpx."""

    def __init__(self, url: str, token: str, timeout: float = 40.0) -> None:
        self.client = httpx.Client(
            base_url=url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            trust_env=False,  # loopback: never through a proxy
        )

    def call(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        try:
            answer = self.client.request(method, f"/api/v4{path}", json=body, params=params)
        except httpx.HTTPError as exc:
            raise ApiError(0, str(exc) or type(exc).__name__) from exc
        try:
            data = answer.json() if answer.content else {}
        except ValueError:
            data = {"message": answer.text}
        if answer.status_code >= 400:
            message = data.get("message", "") if isinstance(data, dict) else str(data)
            detail = data.get("detailed_error", "") if isinstance(data, dict) else ""
            raise ApiError(answer.status_code, f"{message} {detail}".strip() or answer.reason_phrase)
        return data

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params=params or None)

    def post(self, path: str, body: Any) -> Any:
        return self.call("POST", path, body)

    def close(self) -> None:
        self.client.close()


class EventStream:
    """The user's websocket, on a thread of its own with its own asyncio loop."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        scheme = parts.scheme or "http"
        self.options: dict[str, Any] = {
            "url": parts.hostname or "127.0.0.1",
            "port": parts.port or (443 if scheme == "https" else 80),
            "scheme": scheme,
            "verify": True,
            "timeout": 30,
            "keepalive": True,
            "keepalive_delay": 1,
            "websocket_kw_args": None,
            "proxy": None,
            "debug": False,
        }
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="sandbox-chat-ws", daemon=True)
        self.thread.start()
        self._task: asyncio.Task[None] | None = None
        self._socket: Websocket | None = None
        self.ready = threading.Event()

    def connect(self, token: str, on_event: Callable[[dict[str, Any]], None]) -> bool:
        """(Re)connect as the owner of ``token``; True once ``hello`` came (within 5 s)."""
        self.disconnect()
        self.ready.clear()
        socket = Websocket(self.options, token)
        self._socket = socket

        async def handler(raw: Any) -> None:
            try:
                event = json.loads(raw) if isinstance(raw, str) else None
            except ValueError:
                return
            if not isinstance(event, dict) or socket is not self._socket:
                return
            if event.get("event") == "hello":
                self.ready.set()
            elif event.get("event"):
                on_event(event)

        async def spawn() -> asyncio.Task[None]:
            return asyncio.create_task(socket.connect(handler))

        self._task = asyncio.run_coroutine_threadsafe(spawn(), self.loop).result(5.0)
        return self.ready.wait(5.0)

    def disconnect(self) -> None:
        if self._socket is not None:
            self._socket.disconnect()
            self._socket = None
        task, self._task = self._task, None
        if task is not None:

            async def cancel() -> None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(cancel(), self.loop).result(3.0)

    def close(self) -> None:
        self.disconnect()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=2)
        if not self.loop.is_running():
            self.loop.close()


@dataclass
class _Shown:
    """A post the chat has shown, with the short reference the user types (``3`` for ``#3``)."""

    ref: int
    post_id: str
    message: str
    actions: list[Action] = field(default_factory=list)
    channel_id: str = ""
    body: list[str] = field(default_factory=list)  # its lines as last printed (post_body)


class Chat:
    """One terminal user of the sandbox's Mattermost.

    ``state`` is the sandbox's state (``World.state_file()``): the chat takes from it the
    Mattermost URL, the team, the channels and the users' tokens (to be any of them with ``:as``).
    ``world``, when the chat runs in the sandbox's own process, lets ``:scenario`` and ``:degrade``
    act on the emulated services.
    """

    def __init__(
        self,
        state: Mapping[str, Any],
        user: str = "alice",
        channel: str = "equipe-alpha",
        *,
        language: str = "fr",
        input_fn: InputFn | None = None,
        secret_fn: InputFn | None = None,
        output: TextIO | None = None,
        style: Style | None = None,
        interactive: bool | None = None,
        world: World | None = None,
        transcript: TextIO | None = None,
    ) -> None:
        self.world = world
        self.transcript = transcript  # what the terminal showed and the user typed, without colours
        mm = state["mattermost"]
        self.url: str = mm["url"]
        self.team_id: str = mm["team_id"]
        self.team_name: str = mm.get("team_name", "")
        self.channels: dict[str, str] = dict(mm["channels"])
        self.users: dict[str, dict[str, Any]] = dict(mm["users"])
        self.slash_command: str = state.get("slash_command", "/cpn")
        self.texts = TEXTS.get(language, TEXTS["fr"])
        self.input_fn: InputFn = input_fn or builtins.input
        self.secret_fn: InputFn = secret_fn or getpass.getpass
        self.out: TextIO = output or sys.stdout
        self.style = style or detect_style(self.out, os.environ)
        if interactive is None:
            interactive = input_fn is None and sys.stdin.isatty() and self.out.isatty()
        self.interactive = interactive
        self.labels = Labels(self.texts["edited"], self.texts["ephemeral"], self.texts["reply_to"])
        if self.interactive:
            with contextlib.suppress(ImportError):
                import readline  # noqa: F401  (line editing and history for input())

        self._lock = threading.RLock()
        self._events = threading.Condition()
        self._event_count = 0
        self._last_event_at = 0.0
        self._dialogs: list[dict[str, Any]] = []
        self._prompting = False
        self._shown: dict[str, _Shown] = {}
        self._by_ref: dict[int, _Shown] = {}
        # Per channel, the posts shown with buttons, latest last: ``:press N`` acts in the current channel.
        self._buttons: dict[str, list[str]] = {}
        self._usernames: dict[str, str] = {info["id"]: name for name, info in self.users.items()}
        self._channel_names: dict[str, str] = {cid: name for name, cid in self.channels.items()}
        self._last_trigger = self.slash_command

        self.username = ""
        self.user_id = ""
        self.channel_name = ""
        self.channel_id = ""
        self._api: Api | None = None
        self._bg_api: Api | None = None
        self._stream = EventStream(self.url)
        self._start_user(user, channel)

    # -- identity and place -----------------------------------------------------------------------

    @property
    def api(self) -> Api:
        assert self._api is not None
        return self._api

    def _start_user(self, user: str, channel: str) -> None:
        name = user.lstrip("@").lower()
        if name not in self.users:
            raise ValueError(self.t("unknown_user", user=user, users=self._user_list()))
        old = (self._api, self._bg_api)
        token = str(self.users[name]["token"])
        self._api, self._bg_api = Api(self.url, token), Api(self.url, token)
        self.username, self.user_id = name, str(self.users[name]["id"])
        if not self._stream.connect(token, self._on_event):
            self.say(self.t("ws_down"))
        for api in old:
            if api is not None:
                api.close()
        if not self._enter_channel(channel) and not self._enter_channel("equipe-alpha"):
            self.channel_name, self.channel_id = channel, self.channels.get(channel, "")

    def _enter_channel(self, name: str) -> bool:
        """Make ``name`` (``~canal`` or ``@user`` for a direct message) the current channel."""
        name = name.strip()
        try:
            if name.startswith("@"):
                other = self.api.get(f"/users/username/{name[1:].lower()}")
                channel = self.api.post("/channels/direct", [self.user_id, other["id"]])
                label = f"@{other['username']}"
            else:
                bare = name.lstrip("~")
                channel = self.api.get(f"/teams/{self.team_id}/channels/name/{bare}")
                label = f"~{channel['name']}"
        except ApiError:
            return False
        self.channel_id, self.channel_name = channel["id"], label
        self._channel_names[channel["id"]] = label.lstrip("~")
        return True

    @property
    def prompt(self) -> str:
        return f"@{self.username} {self.channel_name}> "

    # -- output -------------------------------------------------------------------------------------

    def t(self, key: str, **values: Any) -> str:
        text = self.texts[key]
        return text.format(**values) if values else text

    def say(self, text: str, markdown: bool = True) -> None:
        self._emit(render_markdown(text, self.style) if markdown else text)

    def _emit(self, text: str) -> None:
        with self._lock:
            if self._prompting and self.interactive:
                # Above the prompt: clear the line, print, then redraw the prompt and what was typed.
                typed = ""
                with contextlib.suppress(Exception):
                    import readline

                    typed = readline.get_line_buffer()
                self.out.write(f"\r\x1b[K{text}\n{self.prompt}{typed}")
            else:
                self.out.write(text + "\n")
            self.out.flush()
            self._record(text)

    def _record(self, text: str) -> None:
        if self.transcript is not None:
            self.transcript.write(strip_ansi(text) + "\n")
            self.transcript.flush()

    def _read(self, prompt: str, secret: bool = False) -> str:
        """One line from the user (EOFError at the end of input)."""
        line = (self.secret_fn if secret else self.input_fn)(prompt)
        shown = prompt + (self.t("hidden") if secret and line else line)
        with self._lock:
            if not self.interactive:
                self.out.write(shown + "\n")
            self._record(shown)
        return line

    # -- the loop -----------------------------------------------------------------------------------

    def welcome(self) -> None:
        self.say(self.t("welcome", user=f"@{self.username}", channel=self.channel_name))

    def run(self) -> int:
        """Read and handle lines until ``:quit`` or the end of input; 0 when done."""
        self.welcome()
        try:
            while True:
                self._fill_dialogs()
                with self._lock:
                    self._prompting = True
                try:
                    line = self._read(self.prompt)
                except EOFError:
                    if self.interactive:
                        self.out.write("\n")
                    break
                finally:
                    with self._lock:
                        self._prompting = False
                if not self.handle(line):
                    break
        except KeyboardInterrupt:
            self.out.write("\n")
        self.say(self.t("bye"))
        return 0

    def handle(self, line: str) -> bool:
        """Handle one typed line; False when the chat should end."""
        text = line.strip()
        if not text:
            return True
        try:
            if text.startswith(":"):
                return self._meta(text)
            if text.startswith("/"):
                self.command(text)
            else:
                self.send(line.rstrip("\n"))
        except ApiError as exc:
            self._show_error(exc)
        return True

    def _show_error(self, exc: ApiError) -> None:
        if exc.status == 0:
            self.say(self.t("unreachable", error=exc.message), markdown=False)
        else:
            self.say(self.t("error", status=exc.status, message=exc.message), markdown=False)

    def close(self) -> None:
        self._stream.close()
        for api in (self._api, self._bg_api):
            if api is not None:
                api.close()

    # -- what a Mattermost user does ----------------------------------------------------------------

    def command(self, text: str, root_id: str = "") -> None:
        """Run a slash command in the current channel and show its answer."""
        self._last_trigger = text.split()[0]
        before = self._count()
        body = {"command": text, "channel_id": self.channel_id, "team_id": self.team_id}
        if root_id:
            body["root_id"] = root_id
        answer = self.api.post("/commands/execute", body)
        has_content = bool(
            answer.get("text") or answer.get("attachments") or (answer.get("props") or {}).get("attachments")
        )
        # The answer also comes over the websocket (ephemeral_message / posted), as the web app shows it.
        if not self._settle(before, EVENT_WAIT if has_content else QUIET) and has_content:
            # Mattermost delivered nothing (e.g. attachments only in ``props`` of an ephemeral answer):
            # the web app would show nothing either. Show the HTTP answer, flagged as such.
            props = dict(answer.get("props") or {}, from_webhook="true")
            post = {**answer, "message": answer.get("text") or "", "props": props}
            self._show_post({**post, "user_id": self.user_id, "channel_id": self.channel_id}, http_only=True)
        if answer.get("goto_location"):
            self.say(f"→ {answer['goto_location']}", markdown=False)

    def send(self, message: str, root_id: str = "") -> None:
        body: dict[str, Any] = {"channel_id": self.channel_id, "message": message}
        if root_id:
            body["root_id"] = root_id
        self.api.post("/posts", body)

    def press(self, post_id: str, action: Action, selected: str = "") -> None:
        before = self._count()
        body = {"selected_option": selected} if selected else {}
        if action.cookie:  # a button of an ephemeral post: the server knows it only by its cookie
            body["cookie"] = action.cookie
        self.api.post(f"/posts/{post_id}/actions/{action.id}", body)
        self._settle(before, EVENT_WAIT)

    def _count(self) -> int:
        with self._events:
            return self._event_count

    def _settle(self, before: int, wait: float) -> bool:
        """Wait up to ``wait`` s for a first event after ``before``, then for a short quiet spell."""
        deadline = time.monotonic() + wait
        with self._events:
            while self._event_count == before:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._events.wait(left)
            while True:
                quiet_for = time.monotonic() - self._last_event_at
                if quiet_for >= QUIET:
                    return True
                self._events.wait(QUIET - quiet_for)

    # -- meta commands ------------------------------------------------------------------------------

    def _meta(self, text: str) -> bool:
        name, _, rest = text.partition(" ")
        rest = rest.strip()
        name = name.lower()
        if name in (":quit", ":q", ":exit"):
            return False
        handlers: dict[str, Callable[[str], None]] = {
            ":help": self._help,
            ":h": self._help,
            ":as": self._as,
            ":channel": self._channel,
            ":c": self._channel,
            ":channels": self._list_channels,
            ":users": self._list_users,
            ":history": self._history,
            ":press": self._press,
            ":p": self._press,
            ":reply": self._reply,
            ":scenario": self._scenario,
            ":degrade": self._degrade,
        }
        handler = handlers.get(name)
        if handler is None:
            self.say(self.t("unknown_meta", cmd=name))
        else:
            handler(rest)
        return True

    def _user_list(self) -> str:
        return ", ".join(sorted(self.users))

    def _help(self, _: str) -> None:
        self.say(self.t("help", users=self._user_list(), jobs=_codes(PIPELINE_JOBS), services=_codes(DEGRADABLE)))

    def _as(self, rest: str) -> None:
        if not rest:
            self.say(self.t("usage_as"))
            return
        name = rest.split()[0].lstrip("@").lower()
        if name not in self.users:
            self.say(self.t("unknown_user", user=rest, users=self._user_list()))
            return
        channel = self.channel_name if not self.channel_name.startswith("@") else "equipe-alpha"
        self._start_user(name, channel)
        self.say(self.t("switched_user", user=f"@{self.username}", channel=self.channel_name))

    def _channel(self, rest: str) -> None:
        if not rest:
            self.say(self.t("usage_channel"))
            return
        if self._enter_channel(rest.split()[0]):
            self.say(self.t("switched_channel", channel=self.channel_name))
        else:
            self.say(self.t("unknown_channel", channel=rest))

    def _list_channels(self, _: str) -> None:
        lines = [self.t("channels")]
        for name, channel_id in sorted(self.channels.items()):
            try:
                channel = self.api.get(f"/channels/{channel_id}")
            except ApiError:
                continue
            try:
                self.api.get(f"/channels/{channel_id}/members/me")
                member = ""
            except ApiError:
                member = " " + self.t("not_member")
            kind = self.t("public") if channel.get("type") == "O" else self.t("private")
            mark = "→" if channel_id == self.channel_id else " "
            lines.append(f"{mark} ~{name} — {channel.get('display_name', '')} ({kind}){member}")
        self.say("\n".join(lines), markdown=False)

    def _list_users(self, _: str) -> None:
        lines = [self.t("users")]
        for name, info in sorted(self.users.items()):
            try:
                user = self.api.get(f"/users/username/{name}")
                full = f"{user.get('first_name', '')} {user.get('last_name', '')}".strip()
            except ApiError:
                full = ""
            extras = [full] if full else []
            if info.get("admin"):
                extras.append(self.t("admin"))
            you = f" {self.t('you')}" if name == self.username else ""
            lines.append(f"  @{name} — {', '.join(extras)}{you}")
        with contextlib.suppress(ApiError):
            bot = self.api.get("/users/username/cpn-bot")
            lines.append(f"  @{bot['username']} — {self.t('bot')}")
        self.say("\n".join(lines), markdown=False)

    def _history(self, rest: str) -> None:
        count = int(rest) if rest.isdigit() and int(rest) > 0 else 10
        page = self.api.get(f"/channels/{self.channel_id}/posts", per_page=min(count, 200))
        order: list[str] = list(reversed(page.get("order") or []))
        posts: dict[str, Any] = page.get("posts") or {}
        if not order:
            self.say(self.t("history_empty", channel=self.channel_name), markdown=False)
            return
        for post_id in order:
            root_id = posts[post_id].get("root_id")
            if root_id and root_id in posts and root_id not in self._shown:
                self._remember(posts[root_id])
            post = posts[post_id]
            self._show_post(post, edited=bool(post.get("edit_at")))

    def _resolve_ref(self, ref: str) -> _Shown | None:
        key = ref.lstrip("#")
        if key.isdigit():
            return self._by_ref.get(int(key))
        return self._shown.get(key)

    def _press(self, rest: str) -> None:
        parts = rest.split()
        if len(parts) == 1 and parts[0].isdigit():
            shown = self._latest_buttons()
            if shown is None:
                self.say(self.t("no_buttons", channel=self.channel_name))
                return
        elif len(parts) == 2 and parts[1].isdigit():
            shown = self._resolve_ref(parts[0])
            if shown is None:
                self.say(self.t("bad_ref", ref=parts[0]), markdown=False)
                return
        else:
            self.say(self.t("usage_press"))
            return
        number = int(parts[-1])
        if not 1 <= number <= len(shown.actions):
            self.say(self.t("bad_button", n=number, ref=f"#{shown.ref}", count=len(shown.actions)))
            return
        action = shown.actions[number - 1]
        selected = ""
        if action.type == "select":
            try:
                selected = self._choose(action.options, action.data_source, None)
            except _Cancelled:
                return
        self.press(shown.post_id, action, selected)

    def _latest_buttons(self) -> _Shown | None:
        """The latest post with buttons in the current channel: among those shown, else among the
        channel's last posts on the server (a channel whose posts came before the chat started)."""
        with self._lock:
            for post_id in reversed(self._buttons.get(self.channel_id, [])):
                shown = self._shown[post_id]
                if shown.actions and shown.channel_id == self.channel_id:
                    return shown
        try:
            page = self.api.get(f"/channels/{self.channel_id}/posts", per_page=30)
        except ApiError:
            return None
        posts: dict[str, Any] = page.get("posts") or {}
        for post_id in page.get("order") or []:  # newest first
            if post_actions(posts[post_id]):
                return self._remember(posts[post_id])
        return None

    def _reply(self, rest: str) -> None:
        ref, _, text = rest.partition(" ")
        shown = self._resolve_ref(ref) if ref else None
        if not text.strip():
            self.say(self.t("usage_reply"))
            return
        if shown is None:
            self.say(self.t("bad_ref", ref=ref), markdown=False)
            return
        post = self.api.get(f"/posts/{shown.post_id}")
        root_id = post.get("root_id") or post["id"]
        if text.strip().startswith("/"):
            self.command(text.strip(), root_id=root_id)
        else:
            self.send(text.strip(), root_id=root_id)

    # -- the sandbox's own switches ----------------------------------------------------------------

    def _scenario(self, rest: str) -> None:
        """``:scenario REPO PIPELINE [QUALITY]``: how the next pipelines of a repository go."""
        if self.world is None:
            self.say(self.t("no_world", cmd=":scenario"))
            return
        parts = rest.split()
        pipeline = parts[1].lower() if len(parts) > 1 else ""
        quality = parts[2].lower() if len(parts) > 2 else "passed"
        kind, _, job = pipeline.partition(":")
        valid = pipeline == "success" or (kind in ("fail", "stuck") and job in PIPELINE_JOBS)
        if len(parts) not in (2, 3) or not valid or quality not in QUALITY_OUTCOMES:
            self.say(self.t("usage_scenario", jobs=_codes(PIPELINE_JOBS)))
            return
        path = self._repository_path(parts[0])
        if path is None:
            return
        self.world.scenario(path, pipeline=pipeline, quality=quality)
        self.say(self.t("scenario_set", path=path, pipeline=f"`{pipeline}`", quality=f"`{quality}`", repo=parts[0]))

    def _repository_path(self, given: str) -> str | None:
        """The emulated GitLab path of ``given`` (a path, ``project/repo`` or a bare repository name);
        None (and the reason said) when it is unknown or ambiguous."""
        assert self.world is not None
        root = self.world.config.platform.root_group if self.world.config else "forge/projects"
        depth = root.count("/") + 2  # <root>/<project>/<repo>
        gitlab = self.world.states["gitlab"]
        with gitlab.lock:
            paths = sorted(str(gitlab.project_path(p)) for p in gitlab.projects.values())
        repos = [p for p in paths if p.startswith(root + "/") and p.count("/") == depth]
        name = given.strip().strip("/").removesuffix(".git")
        if "/" in name:
            by_lower = {p.lower(): p for p in paths}
            for candidate in (name, f"{root}/{name}"):
                if candidate.lower() in by_lower:
                    return by_lower[candidate.lower()]
            # A repository not created yet: its first pipelines will follow the scenario.
            if name.startswith(root + "/") and name.count("/") == depth:
                return name
            if name.count("/") == 1:
                return f"{root}/{name}"
            found: list[str] = []
        else:
            found = [p for p in repos if p.rsplit("/", 1)[1].lower() == name.lower()]
            if len(found) == 1:
                return found[0]
        if len(found) > 1:
            self.say(self.t("ambiguous_repo", repo=name, paths=_codes(found)))
        else:
            known = _codes(p[len(root) + 1 :] for p in repos) or "—"
            self.say(self.t("unknown_repo", repo=name, known=known))
        return None

    def _degrade(self, rest: str) -> None:
        """``:degrade SERVICE [degraded|down|ok]``: an emulated service degraded, down, or restored."""
        if self.world is None:
            self.say(self.t("no_world", cmd=":degrade"))
            return
        parts = rest.lower().split()
        how = parts[1] if len(parts) > 1 else "degraded"
        if parts and parts[0] == "mattermost":
            self.say(self.t("mattermost_kept", services=_codes(DEGRADABLE)))
            return
        if len(parts) not in (1, 2) or parts[0] not in DEGRADABLE or how not in ("degraded", "down", "ok"):
            self.say(self.t("usage_degrade", services=_codes(DEGRADABLE)))
            return
        self.world.degrade(parts[0], how)
        if how == "ok":
            self.say(self.t("restored", service=DEGRADABLE[parts[0]]))
        else:
            self.say(f"{self.t(how, service=DEGRADABLE[parts[0]])} {self.t('degrade_hint', name=parts[0])}")

    # -- events -------------------------------------------------------------------------------------

    def _on_event(self, event: dict[str, Any]) -> None:
        """Called on the websocket's thread for every event after ``hello``."""
        kind = event.get("event")
        data = event.get("data") or {}
        try:
            if kind in ("posted", "post_edited", "ephemeral_message", "post_deleted"):
                post = json.loads(data.get("post") or "{}")
                if kind == "post_deleted":
                    shown = self._shown.get(post.get("id", ""))
                    if shown is not None:
                        self.say(self.t("deleted", ref=f"#{shown.ref}"), markdown=False)
                elif not (kind == "posted" and self._is_own_typing(post)):
                    if kind == "posted" and data.get("channel_type") == "D":
                        self._channel_names.setdefault(post["channel_id"], str(data.get("sender_name", "")))
                    # An updated ephemeral post comes back as post_edited, still of type system_ephemeral.
                    ephemeral = kind == "ephemeral_message" or post.get("type") == "system_ephemeral"
                    if kind == "post_edited":
                        self._show_edit(post, ephemeral=ephemeral)
                    else:
                        self._show_post(post, ephemeral=ephemeral)
            elif kind == "open_dialog":
                opened = json.loads(data.get("dialog") or "{}")
                with self._lock:
                    self._dialogs.append(opened)
                    prompting = self._prompting
                if prompting:
                    self.say(self.t("dialog_pending"), markdown=False)
        except (ValueError, KeyError, TypeError, ApiError):
            pass
        with self._events:
            self._event_count += 1
            self._last_event_at = time.monotonic()
            self._events.notify_all()

    def _is_own_typing(self, post: Mapping[str, Any]) -> bool:
        """A plain message this user just typed here: the terminal already shows it."""
        props = post.get("props") or {}
        return (
            post.get("user_id") == self.user_id
            and post.get("channel_id") == self.channel_id
            and not post.get("type")
            and not props.get("from_webhook")
            and not attachments_of(post)
        )

    def _remember(self, post: Mapping[str, Any]) -> _Shown:
        with self._lock:
            post_id = str(post.get("id") or "")
            shown = self._shown.get(post_id) if post_id else None
            if shown is None:
                shown = _Shown(len(self._by_ref) + 1, post_id, "")
                self._by_ref[shown.ref] = shown
                if post_id:
                    self._shown[post_id] = shown
            shown.message = str(post.get("message") or "") or _first_attachment_text(post)
            shown.actions = post_actions(post)
            shown.channel_id = str(post.get("channel_id") or shown.channel_id)
            if shown.actions and post_id:
                posts = self._buttons.setdefault(shown.channel_id, [])
                if post_id in posts:
                    posts.remove(post_id)
                posts.append(post_id)
            return shown

    def _show_post(
        self,
        post: Mapping[str, Any],
        *,
        edited: bool = False,
        ephemeral: bool = False,
        http_only: bool = False,
    ) -> None:
        root = self._root_of(post)
        labels = self.labels
        if http_only:
            labels = Labels(self.labels.edited, self.t("http_only"), self.labels.reply_to)
        with self._lock:
            shown = self._remember(post)
            shown.body = post_body(post, self.style)
            text = render_post(
                post,
                author=self._author(post, ephemeral),
                style=self.style,
                labels=labels,
                ref=f"#{shown.ref}",
                channel=self._channel_label(str(post.get("channel_id") or "")),
                edited=edited,
                ephemeral=ephemeral or http_only,
                root=root,
            )
            self._emit(text)

    def _show_edit(self, post: Mapping[str, Any], *, ephemeral: bool = False) -> None:
        """An edit of a post: only what changed (``✎ #2 <title>`` and the changed lines), or the
        whole post when the chat has not printed it before."""
        with self._lock:
            shown = self._shown.get(str(post.get("id") or ""))
            if shown is None or not shown.body:
                self._show_post(post, edited=True, ephemeral=ephemeral)
                return
            before = shown.body
            self._remember(post)
            shown.body = post_body(post, self.style)
            text = render_edit(
                before,
                shown.body,
                title=excerpt(shown.message),
                style=self.style,
                ref=f"#{shown.ref}",
                channel=self._channel_label(str(post.get("channel_id") or "")),
                reply=bool(post.get("root_id")),
            )
            if text:
                self._emit(text)

    def _root_of(self, post: Mapping[str, Any]) -> tuple[str, str] | None:
        root_id = str(post.get("root_id") or "")
        if not root_id:
            return None
        shown = self._shown.get(root_id)
        if shown is None:
            try:
                assert self._bg_api is not None
                shown = self._remember(self._bg_api.get(f"/posts/{root_id}"))
            except (ApiError, AssertionError):
                return ("", "")
        return (f"#{shown.ref}", excerpt(shown.message))

    def _author(self, post: Mapping[str, Any], ephemeral: bool) -> str:
        props = post.get("props") or {}
        if props.get("override_username"):
            return str(props["override_username"])
        user_id = str(post.get("user_id") or "")
        if props.get("from_webhook") == "true" and (ephemeral or user_id == self.user_id):
            return self.t("command_author", trigger=self._last_trigger)
        return f"@{self._username_of(user_id)}" if user_id else "system"

    def _username_of(self, user_id: str) -> str:
        name = self._usernames.get(user_id)
        if name is None:
            try:
                assert self._bg_api is not None
                name = str(self._bg_api.get(f"/users/{user_id}")["username"])
            except (ApiError, AssertionError, KeyError):
                name = user_id[:8]
            self._usernames[user_id] = name
        return name

    def _channel_label(self, channel_id: str) -> str:
        if not channel_id or channel_id == self.channel_id:
            return ""
        name = self._channel_names.get(channel_id)
        if name is None:
            try:
                assert self._bg_api is not None
                channel = self._bg_api.get(f"/channels/{channel_id}")
                name = self._dm_label(channel) if channel.get("type") == "D" else str(channel["name"])
            except (ApiError, AssertionError, KeyError):
                name = channel_id[:8]
            self._channel_names[channel_id] = name
        return name if name.startswith("@") else f"~{name}"

    def _dm_label(self, channel: Mapping[str, Any]) -> str:
        ids = str(channel.get("name", "")).split("__")
        others = [i for i in ids if i != self.user_id] or ids
        return f"@{self._username_of(others[0])}"

    # -- dialogs ------------------------------------------------------------------------------------

    def _fill_dialogs(self) -> None:
        while True:
            with self._lock:
                if not self._dialogs:
                    return
                opened = self._dialogs.pop(0)
            try:
                self.fill_dialog(opened)
            except ApiError as exc:
                self._show_error(exc)

    def fill_dialog(self, opened: Mapping[str, Any]) -> None:
        """Ask the dialog's fields in turn, submit, re-ask the fields the integration refused."""
        dialog: dict[str, Any] = dict(opened.get("dialog") or {})
        url = str(opened.get("url") or "")
        elements: list[dict[str, Any]] = [e for e in dialog.get("elements") or [] if isinstance(e, dict)]
        self._dialog_header(dialog)
        values: dict[str, Any] = {}
        to_ask = elements
        while True:
            try:
                for element in to_ask:
                    values[str(element.get("name"))] = self._ask(element)
            except (_Cancelled, EOFError, KeyboardInterrupt):
                self._submit(url, dialog, {}, cancelled=True)
                self.say(self.t("dialog_cancelled"), markdown=False)
                return
            before = self._count()
            answer = self._submit(url, dialog, values, cancelled=False)
            errors = answer.get("errors") or {}
            if answer.get("error") or errors:
                lines = [self.t("dialog_errors")]
                if answer.get("error"):
                    lines.append(f"  {answer['error']}")
                by_name = {str(e.get("name")): str(e.get("display_name") or e.get("name")) for e in elements}
                lines += [f"  {by_name.get(name, name)} : {message}" for name, message in errors.items()]
                self.say("\n".join(lines), markdown=False)
                to_ask = [e for e in elements if str(e.get("name")) in errors]
                if not to_ask:
                    return
                continue
            if answer.get("type") == "form" and isinstance(answer.get("form"), dict):
                dialog = {**dialog, **answer["form"]}
                elements = [e for e in dialog.get("elements") or [] if isinstance(e, dict)]
                self._dialog_header(dialog)
                to_ask = elements
                continue
            self.say(self.t("dialog_sent"), markdown=False)
            self._settle(before, QUIET * 4)
            return

    def _dialog_header(self, dialog: Mapping[str, Any]) -> None:
        lines = [self.style.wrap(BOLD, self.t("dialog_title", title=dialog.get("title", "")))]
        if dialog.get("introduction_text"):
            lines.append(render_markdown(str(dialog["introduction_text"]), self.style))
        lines.append(self.style.wrap(DIM, self.t("dialog_hint")))
        self.say("\n".join(lines), markdown=False)

    def _submit(self, url: str, dialog: Mapping[str, Any], values: dict[str, Any], cancelled: bool) -> Any:
        if cancelled and not dialog.get("notify_on_cancel"):
            return {}
        body = {
            "url": url,
            "callback_id": dialog.get("callback_id", ""),
            "state": dialog.get("state", ""),
            "channel_id": self.channel_id,
            "team_id": self.team_id,
            "submission": values,
            "cancelled": cancelled,
        }
        return self.api.post("/actions/dialogs/submit", body)

    def _is_cancel(self, text: str) -> bool:
        return text.strip().lower() in self.t("cancel_words").split(",")

    def _ask(self, element: Mapping[str, Any]) -> Any:
        kind = str(element.get("type") or "text")
        optional = bool(element.get("optional"))
        default = element.get("default")
        label = str(element.get("display_name") or element.get("name"))
        notes = []
        if optional:
            notes.append(self.t("optional"))
        secret = kind == "text" and element.get("subtype") == "password"
        if default not in (None, "") and not secret and kind not in ("select", "radio", "bool"):
            notes.append(f"{self.t('default')} : {default}")
        head = self.style.wrap(BOLD, label) + (f" ({', '.join(notes)})" if notes else "")
        info = [head]
        if element.get("help_text"):
            info.append("  " + self.style.wrap(DIM, str(element["help_text"])))
        if element.get("placeholder") and not secret:
            info.append("  " + self.style.wrap(DIM, str(element["placeholder"])))
        self.say("\n".join(info), markdown=False)
        if kind in ("select", "radio"):
            options = [
                (str(o.get("text", "")), str(o.get("value", "")))
                for o in element.get("options") or []
                if isinstance(o, dict)
            ]
            return self._choose(options, str(element.get("data_source") or ""), element)
        if kind == "bool":
            return self._ask_bool(element)
        while True:
            if kind == "textarea":
                value = self._read_lines()
            else:
                value = self._read("> ", secret=secret)
                if self._is_cancel(value):
                    raise _Cancelled
            if not value and default not in (None, ""):
                return str(default)
            if value or optional:
                return value
            self.say(self.t("required"), markdown=False)

    def _read_lines(self) -> str:
        self.say(self.style.wrap(DIM, self.t("textarea_hint")), markdown=False)
        lines: list[str] = []
        while True:
            line = self._read("| ")
            if self._is_cancel(line):
                raise _Cancelled
            if line.strip() == ".":
                return "\n".join(lines)
            lines.append(line)

    def _ask_bool(self, element: Mapping[str, Any]) -> bool:
        default = element.get("default")
        yes, no = self.t("yes").split(","), self.t("no").split(",")
        while True:
            value = self._read(f"[{self.t('bool_prompt')}] > ").strip().lower()
            if self._is_cancel(value):
                raise _Cancelled
            if not value:
                if default in (None, ""):
                    return False if element.get("optional") else self._bool_required()
                return str(default).lower() in ("true", "1", "yes", "on")
            if value in yes:
                return True
            if value in no:
                return False

    def _bool_required(self) -> bool:
        self.say(self.t("required"), markdown=False)
        return self._ask_bool({"default": None})

    def _choose(self, options: list[tuple[str, str]], data_source: str, element: Mapping[str, Any] | None) -> str:
        """A value from numbered options, or a username / channel name for a dynamic menu."""
        default = str((element or {}).get("default") or "")
        optional = bool((element or {}).get("optional"))
        if data_source in ("users", "channels"):
            while True:
                value = self._read("> ").strip()
                if self._is_cancel(value):
                    raise _Cancelled
                if not value and (default or optional):
                    return default
                found = self._lookup(data_source, value)
                if found:
                    return found
                self.say(
                    self.t(
                        "unknown_user" if data_source == "users" else "unknown_channel",
                        user=value,
                        users=self._user_list(),
                        channel=value,
                    ),
                    markdown=False,
                )
        lines = []
        for number, (text, value) in enumerate(options, 1):
            mark = " *" if default and value == default else ""
            lines.append(f"  [{number}] {text}{mark}")
        self.say("\n".join(lines), markdown=False)
        while True:
            answer = self._read(self.t("choose_option")).strip()
            if self._is_cancel(answer):
                raise _Cancelled
            if not answer and (default or optional):
                return default
            if answer.isdigit() and 1 <= int(answer) <= len(options):
                return options[int(answer) - 1][1]
            for text, value in options:
                if answer and answer.lower() in (text.lower(), value.lower()):
                    return value
            self.say(self.t("bad_choice", count=len(options)), markdown=False)

    def _lookup(self, data_source: str, value: str) -> str:
        try:
            if data_source == "users":
                return str(self.api.get(f"/users/username/{value.lstrip('@').lower()}")["id"])
            channel = self.api.get(f"/teams/{self.team_id}/channels/name/{value.lstrip('~')}")
            return str(channel["id"])
        except (ApiError, KeyError):
            return ""


def _codes(names: Iterable[str]) -> str:
    return ", ".join(f"`{name}`" for name in names)


def _first_attachment_text(post: Mapping[str, Any]) -> str:
    for attachment in attachments_of(post):
        for key in ("title", "text", "fallback", "pretext"):
            if attachment.get(key):
                return str(attachment[key])
    return ""
