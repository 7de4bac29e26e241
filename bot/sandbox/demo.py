"""``cpn-bot demo``: a scripted tour of the bot in the sandbox, printed as the channel's transcript.

A :class:`~bot.sandbox.world.World` is started with short timings, then each :class:`DemoStep` of
:data:`STEPS` runs in order. A step's ``run`` acts as members of the team through the emulated
Mattermost's real HTTP API, with their own tokens, exactly as their client would: slash commands
(``POST /api/v4/commands/execute``), dialogs (``POST /api/v4/actions/dialogs/submit``) and buttons
(``POST /api/v4/posts/{id}/actions/{action_id}``, with the cookie of an ephemeral post). After each
action the demo waits for the bot to be idle and prints what appeared: the user's answer, the new
and edited posts of the channels (rendered by :mod:`bot.sandbox.terminal`). The step's ``check``
then looks at what the team sees (and, where useful, at the platform through the emulators) and
raises :class:`StepFailed` with a one-line reason when something is not as expected.

The exit code is 0 only if every step passed; a step that crashes is a failed step with a short
reason, never a traceback. When a step fails, the sandbox's directory (configuration, SQLite, the
log of the bot and the emulators) is kept and its path printed.

Members also write plain messages (``POST /api/v4/posts``, e.g. a question to @cpn-bot), and a
step may flip one of the sandbox's own switches (``World.scenario``: a failing job, a failed quality
gate), which the transcript says in a dimmed line.

The tour has two chapters: the onboarding (:data:`ONBOARDING`: project, members, repositories,
environments, secret, token) and the team at work (:data:`TEAMWORK`: syncs and their builds, a
failing build with its log and quality gate, the Trivy scan against a stricter policy, deploys to dev
and to prod, a question to the bot, a support ticket, the platform's services), which builds on the
project ``demo`` that the onboarding leaves ready.

Extending the tour: write ``run`` and ``check`` functions and append ``DemoStep``\\ s to
:data:`STEPS` (or call :func:`add_steps`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import sys
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

import httpx

from bot.i18n import Text, t
from bot.sandbox.terminal import (
    BOLD,
    DIM,
    Labels,
    Style,
    attachments_of,
    detect_style,
    excerpt,
    post_actions,
    render_post,
)
from bot.sandbox.world import Timings, World
from bot.workflows.naming import Names
from services.emulators.console_plugins import namespace_name

GREEN = "\x1b[32m"
RED = "\x1b[31m"
CHANNEL = "equipe-alpha"
PROJECT = "demo"
IDLE_TIMEOUT = 20.0  # seconds the bot and the platform may take to finish what an action set off
SETTLE_LOOK = 0.05  # seconds between two looks at the platform when waiting for it to be quiet

TEXTS: dict[str, dict[str, str]] = {
    "fr": {
        "intro": (
            "Démonstration de cpn-bot dans le bac à sable : Mattermost, GitLab, Vault, Quay, Nexus, "
            "SonarQube et ArgoCD émulés en local, le bot branché dessus."
        ),
        "cast": "L'équipe : @alice (administratrice de la plateforme), @bob et @carol, dans ~{channel}.",
        "starting": "Démarrage du bac à sable…",
        "start_failed": "✘ Le bac à sable n'a pas démarré : {reason}",
        "summary": "{total} étapes, {passed} réussies, {failed} échouées",
        "duration": "Durée totale : {seconds:.1f} s",
        "crashed": "l'étape a planté : {reason}",
        "kept": "Données du bac à sable conservées pour diagnostic (configuration, SQLite, journal) : {root}",
        "dialog": "{user} remplit le formulaire « {title} » :",
        "password": "(champ mot de passe)",
        "press": "{user} appuie sur « {label} »",
        "http_only": "(réponse HTTP seulement : Mattermost ne l'a pas affichée)",
        "ephemeral": "(visible par {user} seulement)",
        "edited": "(modifié)",
        "reply_to": "en réponse à",
        "no_dialog": "aucun formulaire ne s'est ouvert pour {user}",
        "not_password": "le champ « {field} » reçoit un secret mais n'est pas un champ mot de passe",
        "no_button": "aucun bouton « {label} » visible par {user}",
        "http_error": "Mattermost a répondu {status} : {message}",
    },
    "en": {
        "intro": (
            "cpn-bot demo in the sandbox: Mattermost, GitLab, Vault, Quay, Nexus, SonarQube and ArgoCD "
            "emulated locally, the bot wired to them."
        ),
        "cast": "The team: @alice (platform administrator), @bob and @carol, in ~{channel}.",
        "starting": "Starting the sandbox…",
        "start_failed": "✘ The sandbox did not start: {reason}",
        "summary": "{total} steps, {passed} passed, {failed} failed",
        "duration": "Total time: {seconds:.1f} s",
        "crashed": "the step crashed: {reason}",
        "kept": "Sandbox data kept for diagnosis (configuration, SQLite, log): {root}",
        "dialog": "{user} fills in the dialog “{title}”:",
        "password": "(password field)",
        "press": "{user} presses “{label}”",
        "http_only": "(HTTP answer only: Mattermost did not show it)",
        "ephemeral": "(only visible to {user})",
        "edited": "(edited)",
        "reply_to": "reply to",
        "no_dialog": "no dialog opened for {user}",
        "not_password": "the field “{field}” receives a secret but is not a password field",
        "no_button": "no button “{label}” visible to {user}",
        "http_error": "Mattermost answered {status}: {message}",
    },
}


class StepFailed(Exception):
    """The team did not see what the step expected; the message says what, in one line."""


# -- what a step saw -------------------------------------------------------------------------------


@dataclass
class Shown:
    """A post that appeared (or changed) during a step, as one member of the team saw it."""

    post: dict[str, Any]
    channel: str  # the channel's name ("" when unknown)
    ephemeral_to: str = ""  # the username an ephemeral post was shown to
    edited: bool = False


@dataclass
class StepResult:
    """Everything a step's actions produced, for its check."""

    typed: list[tuple[str, str]] = field(default_factory=list)  # (username, what they typed)
    answers: list[dict[str, Any]] = field(default_factory=list)  # HTTP answers of the slash commands
    submissions: list[dict[str, Any]] = field(default_factory=list)  # HTTP answers of dialog submissions
    shown: list[Shown] = field(default_factory=list)

    @property
    def answer(self) -> dict[str, Any]:
        """The last slash command's answer."""
        return self.answers[-1] if self.answers else {}

    def answer_text(self, index: int = -1) -> str:
        return text_of(self.answers[index]) if self.answers else ""

    def posts(self, channel: str = CHANNEL) -> list[dict[str, Any]]:
        """Posts of ``channel`` created or edited during the step (their last version), oldest first."""
        latest: dict[str, dict[str, Any]] = {}
        for shown in self.shown:
            if shown.channel == channel and not shown.ephemeral_to:
                latest[shown.post["id"]] = shown.post
        return list(latest.values())

    def ephemerals(self, username: str) -> list[dict[str, Any]]:
        """Ephemeral posts shown to ``username`` during the step (their last version)."""
        latest: dict[str, dict[str, Any]] = {}
        for shown in self.shown:
            if shown.ephemeral_to == username:
                latest[shown.post["id"]] = shown.post
        return list(latest.values())

    def cards(self, title: str, channel: str = CHANNEL) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(post, attachment) of the step's posts in ``channel`` whose attachment is titled ``title``."""
        return [(post, a) for post in self.posts(channel) for a in attachments_of(post) if a.get("title") == title]


def text_of(item: Mapping[str, Any]) -> str:
    """Everything a person reads in a post or a command's answer: message and attachments."""
    parts = [str(item.get("message") or item.get("text") or "")]
    for attachment in attachments_of(item):
        parts += [str(attachment.get(key) or "") for key in ("pretext", "title", "text", "footer")]
        parts += [f"{f.get('title')}: {f.get('value')}" for f in attachment.get("fields") or [] if isinstance(f, dict)]
    return "\n".join(p for p in parts if p)


# -- the steps -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoStep:
    """One scene of the tour: ``run`` acts as the team, ``check`` raises :class:`StepFailed` if it went wrong."""

    title: Text
    run: Callable[[Demo], None]
    check: Callable[[Demo, StepResult], None]


class Demo:
    """The tour's stage: the world, the team's Mattermost accounts, and the transcript."""

    def __init__(self, world: World, language: str, out: TextIO, style: Style) -> None:
        self.world = world
        self.language = language if language in TEXTS else "fr"
        self.texts = TEXTS[self.language]
        self.out = out
        self.style = style
        self.mm = world.states["mattermost"]
        self.http = httpx.Client(base_url=world.servers["mattermost"].url, timeout=30.0, trust_env=False)
        self.result = StepResult()
        self.channel_names = {cid: name for name, cid in world.channels.items()}
        self.usernames = {user.id: user.username for user in world.users.values()}
        if world.bot_user is not None:
            self.usernames[world.bot_user.id] = world.bot_user.username
        self._refs: dict[str, int] = {}
        self._where: dict[str, str] = {}  # username → the channel they last typed in
        self._dialogs_done: set[int] = set()  # indexes in the emulator's dialogs_opened already filled in
        root_group = world.config.platform.root_group if world.config else "forge/projects"
        self.names = Names(root_group, PROJECT)
        # What the team types in password fields: random, so that a leak check means something.
        self.repo_credential = "ghp_" + secrets.token_hex(18)
        self.app_secret = "pw-" + secrets.token_urlsafe(18)

    def close(self) -> None:
        self.http.close()

    # -- what the platform holds, in the world's control mode ------------------------------------------
    # Direct mode: the bot's own naming (bot/workflows/naming.py); console mode: the console plugins'
    # (services/emulators/console_plugins.py, each citing cloud-pi-native/console).

    @property
    def registry_label(self) -> str:
        return "Harbor" if self.world.registry_kind == "harbor" else "Quay"

    def services(self) -> tuple[str, ...]:
        """The services of the project's checklist card, in its order."""
        return ("Vault", "GitLab", self.registry_label, "Nexus", "SonarQube", "ArgoCD")

    def gitlab_level(self, role: str) -> int:
        """The GitLab group access level a project role gets: the console gives devops Maintainer
        (``MAINTAINER_SUFFIXES``), the bot gives every non-owner role Developer."""
        if self.world.control == "console" and role in ("admin", "devops"):
            return MAINTAINER_ACCESS
        return DEVELOPER_ACCESS

    def namespace(self, env: str) -> str:
        """The Kubernetes namespace of an environment: ``<slug>-<env>``, or the console's
        ``generateNamespaceName`` of the environment's and the project's ids."""
        if self.world.control != "console":
            return self.names.namespace(env)
        console = self.world.states["console"]
        project = console.project_by_slug(PROJECT)
        with console.lock:
            rows = console.environments.values()
            found = [e for e in rows if project and e.project_id == project.id and e.name == env]
        return namespace_name(project.id, found[0].id) if project and found else ""

    def image_tags(self, repo: str) -> list[str]:
        tags: list[str] = self.world.states[self.world.registry_kind].tag_names(PROJECT, repo)
        return tags

    # -- words ---------------------------------------------------------------------------------------

    def t(self, key: str, **values: Any) -> str:
        text = self.texts[key]
        return text.format(**values) if values else text

    def tr(self, text: Text, **values: Any) -> str:
        """A text of the tour in the demo's language."""
        chosen = text(self.language)
        return chosen.format(**values) if values else chosen

    def expect(self, condition: object, fr: str, en: str = "") -> None:
        """Fail the step with the reason in the demo's language unless ``condition`` holds."""
        if not condition:
            raise StepFailed(en if self.language == "en" and en else fr)

    # -- what a member of the team does ----------------------------------------------------------------

    def command(self, username: str, line: str, channel: str = CHANNEL) -> dict[str, Any]:
        """``username`` types the slash command ``line`` in ``channel``; the command's answer."""
        self._where[username] = channel
        self._say(f"{self.style.wrap(BOLD, '@' + username)} {self.style.wrap(DIM, '~' + channel + '>')} {line}")
        self.result.typed.append((username, line))
        body = {"command": line, "channel_id": self.world.channels[channel], "team_id": self.world.team_id}
        answer: dict[str, Any] = {}

        def act() -> None:
            answer.update(self._post(username, "/api/v4/commands/execute", body))

        shown = self._act(act)
        self.result.answers.append(answer)
        has_content = bool(answer.get("text") or attachments_of(answer))
        if has_content and not any(
            s.ephemeral_to == username or s.post.get("user_id") == self._id(username) for s in shown
        ):
            post = {**answer, "id": "", "message": answer.get("text") or "", "user_id": self._id(username)}
            self._render(Shown(post, channel, ephemeral_to=username), http_only=True)
        return answer

    def write(self, username: str, message: str, channel: str = CHANNEL, *, to_bot: bool = False) -> dict[str, Any]:
        """``username`` posts ``message`` in ``channel`` (``POST /api/v4/posts``); the new post.

        ``to_bot``: the message is for the bot, whose answer (in the message's thread) is awaited
        too: it comes through the bot's websocket, which the bot's idleness does not cover.
        """
        self._where[username] = channel
        self._say(f"{self.style.wrap(BOLD, '@' + username)} {self.style.wrap(DIM, '~' + channel + '>')} {message}")
        self.result.typed.append((username, message))
        post: dict[str, Any] = {}
        body = {"channel_id": self.world.channels[channel], "message": message}
        bot_id = self.world.bot_user.id if self.world.bot_user else ""

        def act() -> None:
            post.update(self._post(username, "/api/v4/posts", body))
            deadline = time.monotonic() + IDLE_TIMEOUT / 4
            while to_bot and time.monotonic() < deadline:
                if any(r.get("user_id") == bot_id for r in self.thread_replies(str(post.get("id")))):
                    break
                time.sleep(SETTLE_LOOK)

        self._act(act)
        return post

    def narrate(self, text: str) -> None:
        """A line of the tour about what happens outside the chat (the sandbox's own switches)."""
        self._say(self.style.wrap(DIM, f"({text})"))

    def submit_dialog(
        self, username: str, values: Mapping[str, str], *, secret: Collection[str] = ()
    ) -> dict[str, Any]:
        """Fill and submit the newest dialog opened for ``username`` and not submitted yet.

        Fields named in ``secret`` must be password fields (their values are never printed).
        """
        user_id = self._id(username)
        opened = [
            i for i, d in enumerate(self.mm.dialogs_opened) if d["user_id"] == user_id and i not in self._dialogs_done
        ]
        if not opened:
            raise StepFailed(self.t("no_dialog", user="@" + username))
        self._dialogs_done.add(opened[-1])
        newest = self.mm.dialogs_opened[opened[-1]]
        url, dialog = str(newest["url"]), dict(newest["dialog"])
        elements = {str(e.get("name")): e for e in dialog.get("elements") or [] if isinstance(e, dict)}
        for name in secret:
            if elements.get(name, {}).get("subtype") != "password":
                raise StepFailed(self.t("not_password", field=name))
        lines = [self.t("dialog", user=self.style.wrap(BOLD, "@" + username), title=dialog.get("title", ""))]
        for name, value in values.items():
            label = str(elements.get(name, {}).get("display_name") or name)
            shown = f"{'•' * 12} {self.style.wrap(DIM, self.t('password'))}" if name in secret else value
            lines.append(f"  {label} : {shown}" if self.language == "fr" else f"  {label}: {shown}")
        self._say("\n".join(lines))
        body = {
            "url": url,
            "callback_id": dialog.get("callback_id", ""),
            "state": dialog.get("state", ""),
            "channel_id": self.world.channels[self._where.get(username, CHANNEL)],
            "team_id": self.world.team_id,
            "submission": dict(values),
            "cancelled": False,
        }
        answer: dict[str, Any] = {}

        def act() -> None:
            answer.update(self._post(username, "/api/v4/actions/dialogs/submit", body))

        self._act(act)
        self.result.submissions.append(answer)
        return answer

    def press(self, username: str, label: str) -> dict[str, Any]:
        """``username`` presses the newest button ``label`` they can see (ephemeral posts first)."""
        self._say(self.t("press", user=self.style.wrap(BOLD, "@" + username), label=label))
        target: tuple[str, str, dict[str, Any]] | None = None
        for post_id, action_id, cookie, name in reversed(self.mm.ephemeral_actions(self._id(username))):
            if name == label:
                target = (post_id, action_id, {"cookie": cookie})
                break
        if target is None:
            for post in reversed(self.channel_posts(self._where.get(username, CHANNEL))):
                found = [a for a in post_actions(post) if a.name == label]
                if found:
                    target = (post["id"], found[0].id, {})
                    break
        if target is None:
            raise StepFailed(self.t("no_button", label=label, user="@" + username))
        post_id, action_id, body = target
        answer: dict[str, Any] = {}

        def act() -> None:
            answer.update(self._post(username, f"/api/v4/posts/{post_id}/actions/{action_id}", body))

        self._act(act)
        return answer

    # -- what the team and the platform hold -------------------------------------------------------------

    def channel_posts(self, channel: str = CHANNEL) -> list[dict[str, Any]]:
        """Every live post of ``channel``, oldest first, as the emulated Mattermost holds them."""
        posts: list[dict[str, Any]] = self.mm.channel_posts(self.world.channels[channel])
        return posts

    def thread_replies(self, root_id: str) -> list[dict[str, Any]]:
        return [p for p in self.mm.thread(root_id) if p["id"] != root_id]

    def gitlab(self, path: str) -> Any:
        """``GET /api/v4{path}`` on GitLab as its administrator (None on 404)."""
        answer = httpx.get(
            f"{self.world.servers['gitlab'].url}/api/v4{path}",
            headers={"PRIVATE-TOKEN": self.world.service_tokens["gitlab"]},
            timeout=10.0,
            trust_env=False,
        )
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        return answer.json()

    def gitlab_group_members(self, group_path: str) -> dict[str, int]:
        """username → access level of a GitLab group's direct members."""
        members = self.gitlab(f"/groups/{quote(group_path, safe='')}/members") or []
        return {str(m["username"]): int(m["access_level"]) for m in members}

    def vault_secret(self, path: str, mount: str = "forge-dso") -> dict[str, Any] | None:
        try:
            found: dict[str, Any] | None = self.world.states["vault"].read_secret(mount, path)
        except Exception:  # the mount itself is missing
            return None
        return found

    def argocd_app(self, name: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.world.states["argocd"].app(name)
        return found

    def leaks(self, value: str, *, allowed_ephemeral_to: str = "") -> list[str]:
        """Where ``value`` can be read although it should not: posts, ephemeral posts, files of the bot.

        ``allowed_ephemeral_to``: the one person the value may be shown to, ephemerally.
        """
        places: list[str] = []
        for name in self.world.channels:
            if any(value in str(post) for post in self.channel_posts(name)):
                places.append(f"~{name}")
        for username, user in self.world.users.items():
            if username != allowed_ephemeral_to and any(value in str(p) for p in self.mm.ephemeral_for(user.id)):
                places.append(f"@{username} (ephemeral)")
        needle = value.encode()
        for path in _files(self.world.root):
            if "secrets" in path.relative_to(self.world.root).parts:
                continue  # the services' own credentials, written by the sandbox
            with contextlib.suppress(OSError):
                if needle in path.read_bytes():
                    places.append(path.name)
        return places

    # -- machinery -----------------------------------------------------------------------------------

    def _id(self, username: str) -> str:
        return self.world.users[username].id

    def _post(self, username: str, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        answer = self.http.post(
            path, json=dict(body), headers={"Authorization": f"Bearer {self.world.users[username].token}"}
        )
        try:
            data = answer.json() if answer.content else {}
        except ValueError:
            data = {"message": answer.text}
        if answer.status_code >= 400:
            message = data.get("message", "") if isinstance(data, dict) else str(data)
            raise StepFailed(self.t("http_error", status=answer.status_code, message=message or answer.reason_phrase))
        return data if isinstance(data, dict) else {}

    def _snapshot(self) -> dict[tuple[str, str], int]:
        """(username for ephemerals or "", post id) → update_at, of everything the team can see."""
        seen: dict[tuple[str, str], int] = {}
        for name in self.world.channels:
            for post in self.channel_posts(name):
                seen[("", post["id"])] = int(post.get("update_at") or 0)
        for username, user in self.world.users.items():
            for post in self._only_for(user.id):
                seen[(username, post["id"])] = int(post.get("update_at") or 0)
        return seen

    def _only_for(self, user_id: str) -> list[dict[str, Any]]:
        """What one person alone sees: their ephemeral posts, and the bot's direct messages to them
        (where ephemerals go when the bot account may not send them: a plain bot account)."""
        bot_id = self.world.bot_user.id if self.world.bot_user else ""
        direct = self.mm.find_channel("__".join(sorted((bot_id, user_id))), team_id="")
        from_bot = [p for p in self.mm.channel_posts(direct["id"]) if p["user_id"] == bot_id] if direct else []
        return [*self.mm.ephemeral_for(user_id), *from_bot]

    def _act(self, action: Callable[[], None]) -> list[Shown]:
        """Run ``action``, wait for the bot to be idle, print and record what changed."""
        before = self._snapshot()
        action()
        self.settle()
        changes: list[tuple[int, Shown]] = []
        for name in self.world.channels:
            for post in self.channel_posts(name):
                changes += _changed(before, "", post, Shown(post, name))
        for username, user in self.world.users.items():
            for post in self._only_for(user.id):
                channel = self.channel_names.get(str(post.get("channel_id")), "")
                changes += _changed(before, username, post, Shown(post, channel, ephemeral_to=username))
        shown = [item for _, item in sorted(changes, key=lambda change: change[0])]
        for item in shown:
            self._render(item)
        self.result.shown += shown
        return shown

    def settle(self, timeout: float = IDLE_TIMEOUT) -> None:
        """Until the bot is idle and the platform quiet: no pipeline or ArgoCD operation running, and
        nothing new in the channels between two looks. What an action set off thus shows in its step.
        """
        deadline = time.monotonic() + timeout
        previous: object = None
        while True:
            self.world.wait_idle(timeout)
            busy = self._platform_busy()
            marker = (busy, self._snapshot(), len(self.world.states["gitlab"].deliveries()))
            if (not busy and marker == previous) or time.monotonic() > deadline:
                return
            previous = marker
            time.sleep(SETTLE_LOOK)

    def _platform_busy(self) -> bool:
        gitlab, argocd = self.world.states["gitlab"], self.world.states["argocd"]
        with gitlab.lock:
            if any(p.status in ("created", "pending", "running") for p in gitlab.pipelines.values()):
                return True
        with argocd.lock:
            return any(
                "operation" in app.data or app.data.get("status", {}).get("health", {}).get("status") == "Progressing"
                for app in argocd.apps.values()
            )

    def _render(self, shown: Shown, http_only: bool = False) -> None:
        post = shown.post
        ephemeral_label = self.t("http_only") if http_only else self.t("ephemeral", user="@" + shown.ephemeral_to)
        labels = Labels(self.t("edited"), ephemeral_label, self.t("reply_to"))
        ref = ""
        if not shown.ephemeral_to and post.get("id"):
            ref = f"#{self._refs.setdefault(post['id'], len(self._refs) + 1)}"
        text = render_post(
            post,
            author=self._author(post, bool(shown.ephemeral_to)),
            style=self.style,
            labels=labels,
            ref=ref,
            channel=f"~{shown.channel}" if shown.channel and shown.channel != CHANNEL else "",
            edited=shown.edited,
            ephemeral=bool(shown.ephemeral_to),
            root=self._root(str(post.get("root_id") or "")),
        )
        self._say(text)

    def _author(self, post: Mapping[str, Any], ephemeral: bool) -> str:
        props = post.get("props") or {}
        if ephemeral and props.get("from_webhook") == "true":
            return "/cpn"  # a command's answer: the web app shows the command, not a person
        user_id = str(post.get("user_id") or "")
        return f"@{self.usernames.get(user_id, user_id[:8] or 'system')}"

    def _root(self, root_id: str) -> tuple[str, str] | None:
        if not root_id:
            return None
        root = next((p for p in self.mm.thread(root_id) if p["id"] == root_id), None)
        if root is None:
            return None  # an ephemeral post's root is the user's own answer, not a thread
        titles = [str(a.get("title") or "") for a in attachments_of(root)]
        ref = f"#{self._refs[root_id]}" if root_id in self._refs else ""
        return (ref, excerpt(str(root.get("message") or "") or next(iter(titles), "")))

    def _say(self, text: str) -> None:
        for line in text.split("\n"):
            self.out.write(f"  {line}\n" if line else "\n")
        self.out.flush()


def _changed(
    before: Mapping[tuple[str, str], int], who: str, post: Mapping[str, Any], item: Shown
) -> list[tuple[int, Shown]]:
    key = (who, str(post["id"]))
    stamp = int(post.get("update_at") or 0)
    if key not in before:
        return [(int(post.get("create_at") or stamp), item)]
    if before[key] != stamp:
        item.edited = True
        return [(stamp, item)]
    return []


def _files(root: Path) -> Iterator[Path]:
    with contextlib.suppress(OSError):
        for path in sorted(root.rglob("*")):
            if path.is_file():
                yield path


# -- the onboarding chapter ------------------------------------------------------------------------

READY = Text("Projet prêt", "Project ready")
CREATE_TITLE = Text("Création du projet {project}", "Creating project {project}")
REPO_ADDED = Text("Dépôt `{repo}` ajouté par @{who}.", "Repository `{repo}` added by @{who}.")
ENV_ADDED = Text("Environnement `{env}` ajouté par @{who}.", "Environment `{env}` added by @{who}.")
REPLAY_TITLE = Text("Reprovisionnement du projet {project}", "Re-provisioning project {project}")
DEVELOPER_ACCESS, MAINTAINER_ACCESS = 30, 40


def _ready_card(demo: Demo, result: StepResult, title: Text) -> tuple[dict[str, Any], dict[str, Any]]:
    """The step's checklist card ``title`` for the project, finished with every service ✅."""
    name = demo.tr(title, project=PROJECT)
    cards = result.cards(name)
    demo.expect(cards, f"pas de carte « {name} » dans ~{CHANNEL}", f"no “{name}” card in ~{CHANNEL}")
    post, card = cards[-1]
    text = str(card.get("text") or "")
    ready = demo.tr(READY)
    status = text.split("\n\n", 1)[1] if "\n\n" in text else ""  # the verdict, after the services
    demo.expect(
        status.startswith(f"✅ {ready}"),
        f"la carte « {name} » ne conclut pas « {ready} » : {excerpt(text, 80)}",
        f"the “{name}” card does not conclude “{ready}”: {excerpt(text, 80)}",
    )
    missing = [s for s in demo.services() if f"✅ **{s}**" not in text]
    demo.expect(not missing, f"services pas ✅ : {', '.join(missing)}", f"services not ✅: {', '.join(missing)}")
    return post, card


def _one_line(demo: Demo, result: StepResult, line: str) -> None:
    """A change that went through everywhere is one line in the channel, not a checklist."""
    demo.expect(
        [p for p in result.posts() if p.get("message") == line and not attachments_of(p)],
        f"pas de ligne « {line} » seule dans ~{CHANNEL}",
        f"no “{line}” line alone in ~{CHANNEL}",
    )


def _first_sync(demo: Demo, result: StepResult, repo: str, who: str) -> None:
    """The repository's first sync: a mirror pipeline, announced once, by its sync card."""
    _one_line(demo, result, demo.tr(REPO_ADDED, repo=repo, who=who))
    pipelines = [
        p
        for p in demo.world.states["gitlab"].pipelines_of(demo.names.mirror)
        if p.variable("PROJECT_NAME") == repo and p.variable("SYNC_ALL") == "true"
    ]
    demo.expect(
        pipelines,
        f"aucun pipeline mirror de synchronisation complète de {repo} dans GitLab",
        f"no full-sync mirror pipeline of {repo} in GitLab",
    )
    link = f"{demo.names.mirror}/-/pipelines/{pipelines[-1].id}"
    announced = [p for p in result.posts() if link in str(p)]
    demo.expect(
        len(announced) == 1,
        f"la première synchronisation de {repo} (pipeline #{pipelines[-1].id}) est annoncée {len(announced)} fois",
        f"the first sync of {repo} (pipeline #{pipelines[-1].id}) is announced {len(announced)} times",
    )


def _no_leak(demo: Demo, value: str, what: str, allowed_ephemeral_to: str = "") -> None:
    places = demo.leaks(value, allowed_ephemeral_to=allowed_ephemeral_to)
    demo.expect(not places, f"{what} se lit dans : {', '.join(places)}", f"{what} can be read in: {', '.join(places)}")


def _not_refused(demo: Demo, result: StepResult) -> None:
    for index, answer in enumerate(result.answers):
        text = text_of(answer)
        demo.expect(
            not text.startswith(("⛔", "❌", "⚠️")),
            f"« {result.typed[index][1]} » refusée : {excerpt(text, 100)}",
            f"“{result.typed[index][1]}” refused: {excerpt(text, 100)}",
        )


# 1. help


def _run_help(demo: Demo) -> None:
    demo.command("alice", "/cpn help")
    demo.command("bob", "/cpn help")


def _check_help(demo: Demo, result: StepResult) -> None:
    demo.expect(len(result.answers) == 2, "deux réponses attendues", "two answers expected")
    # Everyone sees how to start; the commands of a project show once one is in a project (or to admins).
    expected = {
        # The overview names each group with the verbs the caller may use.
        "alice": ("`whoami`", "`project` create", "`member` add", "`repo` add", "`env` add"),
        "bob": ("`whoami`", "`project` create, list"),
    }
    for (username, _), answer in zip(result.typed, result.answers, strict=True):
        text = text_of(answer)
        for command in expected[username]:
            demo.expect(
                command in text,
                f"@{username} ne voit pas {command} dans l'aide",
                f"@{username} does not see {command} in the help",
            )
        demo.expect(result.ephemerals(username), f"@{username} n'a rien vu", f"@{username} saw nothing")
    demo.expect(not result.posts(), "l'aide a été publiée dans le canal", "the help was posted in the channel")


# 2. whoami


def _check_whoami(demo: Demo, result: StepResult) -> None:
    text = result.answer_text()
    user = demo.world.users["bob"]
    for expected in ("@bob", user.email):
        demo.expect(expected in text, f"« {expected} » absent de la réponse", f"“{expected}” missing from the answer")
    no = demo.tr(Text("non", "no"))
    demo.expect(
        re.search(rf"(?im)^.*(plateforme|platform).*:\s*{no}\s*$", text),
        "bob n'apparaît pas comme non administrateur",
        "bob is not shown as a non-administrator",
    )


# 3. project create


def _run_create(demo: Demo) -> None:
    description = demo.tr(Text("Démonstration de cpn-bot", "cpn-bot demonstration"))
    demo.command("bob", f'/cpn project create {PROJECT} --description "{description}"')


def _check_create(demo: Demo, result: StepResult) -> None:
    _not_refused(demo, result)
    demo.expect(
        f"`{PROJECT}`" in result.answer_text(),
        "la réponse ne nomme pas le projet",
        "the answer does not name the project",
    )
    _ready_card(demo, result, CREATE_TITLE)
    demo.expect(
        demo.gitlab(f"/projects/{quote(demo.names.mirror, safe='')}"),
        f"pas de dépôt {demo.names.mirror} dans GitLab",
        f"no {demo.names.mirror} repository in GitLab",
    )


# 4. member add


def _check_member(demo: Demo, result: StepResult) -> None:
    _not_refused(demo, result)
    role = "devops"
    announced = [p for p in result.posts() if "@carol" in text_of(p) and role in text_of(p)]
    demo.expect(
        announced,
        "l'arrivée de @carol n'est pas annoncée dans le canal",
        "@carol joining is not announced in the channel",
    )
    level = demo.gitlab_group_members(demo.names.group).get("carol")
    wanted = demo.gitlab_level(role)
    demo.expect(
        level == wanted,
        f"@carol n'a pas le niveau {wanted} dans le groupe GitLab (niveau {level})",
        f"@carol does not have level {wanted} in the GitLab group (level {level})",
    )


# 5. public repository


def _check_public_repo(demo: Demo, result: StepResult) -> None:
    _not_refused(demo, result)
    demo.expect(
        demo.gitlab(f"/projects/{quote(demo.names.repo('api'), safe='')}"),
        "pas de dépôt api dans GitLab",
        "no api repository in GitLab",
    )
    _first_sync(demo, result, "api", "bob")


# 6. private infrastructure repository


def _run_private_repo(demo: Demo) -> None:
    demo.command(
        "bob", f"/cpn repo add {PROJECT} deploy --url https://gitlab.com/ministere/deploy.git --private --infra"
    )
    demo.submit_dialog("bob", {"username": "deployer", "token": demo.repo_credential}, secret={"token"})


def _check_private_repo(demo: Demo, result: StepResult) -> None:
    _not_refused(demo, result)
    demo.expect(
        not any(s.get("errors") or s.get("error") for s in result.submissions),
        f"le formulaire a été refusé : {result.submissions}",
        f"the dialog was refused: {result.submissions}",
    )
    stored = demo.vault_secret(demo.names.mirror_secret("deploy")) or {}
    demo.expect(
        stored.get("GIT_INPUT_USER") == "deployer" and stored.get("GIT_INPUT_PASSWORD") == demo.repo_credential,
        "les identifiants du dépôt ne sont pas dans Vault",
        "the repository's credentials are not in Vault",
    )
    _first_sync(demo, result, "deploy", "bob")
    _no_leak(demo, demo.repo_credential, demo.tr(Text("le jeton du dépôt", "the repository token")))


# 7. environments


def _run_envs(demo: Demo) -> None:
    demo.command("carol", f"/cpn env add {PROJECT} dev --stage dev --cpu 2 --memory 4")
    demo.command("carol", f"/cpn env add {PROJECT} prod --stage prod")


def _check_envs(demo: Demo, result: StepResult) -> None:
    _not_refused(demo, result)
    for env in ("dev", "prod"):
        _one_line(demo, result, demo.tr(ENV_ADDED, env=env, who="carol"))
    for env in ("dev", "prod"):
        app = demo.argocd_app(demo.names.argocd_app(env, "deploy")) or {}
        namespace = app.get("spec", {}).get("destination", {}).get("namespace")
        demo.expect(
            namespace and namespace == demo.namespace(env),
            f"pas d'application ArgoCD pour deploy en {env}",
            f"no ArgoCD application for deploy in {env}",
        )
    demo.expect(
        demo.argocd_app(demo.names.argocd_app("dev", "api")) is None,
        "une application ArgoCD a été créée pour api, qui n'est pas un dépôt d'infrastructure",
        "an ArgoCD application was created for api, which is not an infrastructure repository",
    )


# 8. application secret


APP_KEY = "DATABASE_PASSWORD"


def _run_secret(demo: Demo) -> None:
    demo.command("carol", f"/cpn secret set {PROJECT} {APP_KEY}")
    demo.submit_dialog("carol", {"value": demo.app_secret}, secret={"value"})
    demo.command("carol", f"/cpn secret list {PROJECT}")


def _check_secret(demo: Demo, result: StepResult) -> None:
    _not_refused(demo, result)
    demo.expect(
        demo.vault_secret(APP_KEY, mount=demo.names.app_mount) == {"value": demo.app_secret},
        "le secret n'est pas dans le montage Vault du projet",
        "the secret is not in the project's Vault mount",
    )
    saved = [p for p in result.ephemerals("carol") if APP_KEY in text_of(p) and "🔐" in text_of(p)]
    demo.expect(saved, "carol n'a pas eu de confirmation", "carol got no confirmation")
    listing = result.answer_text()
    demo.expect(
        f"`{APP_KEY}` — v1" in listing,
        f"la liste ne montre pas `{APP_KEY}` en version 1",
        f"the list does not show `{APP_KEY}` at version 1",
    )
    _no_leak(demo, demo.app_secret, demo.tr(Text("la valeur du secret", "the secret's value")))


# 9. sync API token


def _check_token(demo: Demo, result: StepResult) -> None:
    _not_refused(demo, result)
    text = result.answer_text()
    tokens = re.findall(r"cpn_[A-Za-z0-9_-]{20,}", text)
    demo.expect(
        len(tokens) == 1,
        f"{len(tokens)} jeton(s) dans la réponse au lieu d'un",
        f"{len(tokens)} token(s) in the answer, not one",
    )
    for expected in ("GitLab CI", "GitHub Actions", f"/api/v1/projects/{PROJECT}/repositories/"):
        demo.expect(expected in text, f"« {expected} » absent des exemples", f"“{expected}” missing from the snippets")
    _no_leak(demo, tokens[0], demo.tr(Text("le jeton d'API", "the API token")), allowed_ephemeral_to="bob")


# 10. project show


def _check_show(demo: Demo, result: StepResult) -> None:
    _not_refused(demo, result)
    cards = attachments_of(result.answer)
    demo.expect(cards, "pas de fiche projet", "no project card")
    fields = {str(f.get("title")): str(f.get("value")) for f in cards[0].get("fields") or []}
    services = fields.get(demo.tr(Text("Services", "Services")), "")
    lines = [line for line in services.splitlines() if line.strip()]
    bad = [line for line in lines if not line.startswith("✅")]
    demo.expect(
        len(lines) == len(demo.services()) and not bad,
        f"services pas tous ✅ : {'; '.join(bad) or services}",
        f"services not all ✅: {'; '.join(bad) or services}",
    )
    page = text_of(result.answer)
    for expected in ("@bob", "@carol", "`api`", "`deploy`", "🔒", "`dev`", "`prod`"):
        demo.expect(expected in page, f"« {expected} » absent de la fiche", f"“{expected}” missing from the page")


# 11. replay


def _check_replay(demo: Demo, result: StepResult) -> None:
    _not_refused(demo, result)
    _, card = _ready_card(demo, result, REPLAY_TITLE)
    nothing = demo.tr(Text("Rien à réparer", "Nothing to repair"))
    demo.expect(
        nothing in str(card.get("text")),
        f"le rejeu a réparé quelque chose : {excerpt(str(card.get('text')), 120)}",
        f"the replay repaired something: {excerpt(str(card.get('text')), 120)}",
    )


def _typed(username: str, line: str) -> Callable[[Demo], None]:
    def run(demo: Demo) -> None:
        demo.command(username, line)

    return run


ONBOARDING: list[DemoStep] = [
    DemoStep(
        Text("Alice et Bob découvrent les commandes", "Alice and Bob discover the commands"), _run_help, _check_help
    ),
    DemoStep(
        Text("Bob vérifie qui il est pour le bot", "Bob checks who he is for the bot"),
        _typed("bob", "/cpn whoami"),
        _check_whoami,
    ),
    DemoStep(
        Text(
            f"Bob crée le projet {PROJECT} sur toute la plateforme",
            f"Bob creates project {PROJECT} across the platform",
        ),
        _run_create,
        _check_create,
    ),
    DemoStep(
        Text("Bob ajoute Carol au projet comme devops", "Bob adds Carol to the project as devops"),
        _typed("bob", f"/cpn member add {PROJECT} @carol --role devops"),
        _check_member,
    ),
    DemoStep(
        Text(
            "Bob ajoute le dépôt public api, synchronisé aussitôt", "Bob adds the public repository api, synced at once"
        ),
        _typed("bob", f"/cpn repo add {PROJECT} api --url https://github.com/ministere/api.git"),
        _check_public_repo,
    ),
    DemoStep(
        Text(
            "Bob ajoute le dépôt privé d'infrastructure deploy ; son jeton passe par un formulaire",
            "Bob adds the private infrastructure repository deploy; its token goes through a dialog",
        ),
        _run_private_repo,
        _check_private_repo,
    ),
    DemoStep(
        Text("Carol ajoute les environnements dev et prod", "Carol adds the dev and prod environments"),
        _run_envs,
        _check_envs,
    ),
    DemoStep(
        Text(
            "Carol enregistre un secret applicatif et liste les secrets (clés seulement)",
            "Carol stores an application secret and lists the secrets (keys only)",
        ),
        _run_secret,
        _check_secret,
    ),
    DemoStep(
        Text(
            "Bob crée un jeton pour l'API de synchronisation de sa CI",
            "Bob creates a token for his CI to call the sync API",
        ),
        _typed("bob", f"/cpn token create {PROJECT} --name ci-github"),
        _check_token,
    ),
    DemoStep(
        Text("Carol regarde l'état du projet", "Carol looks at the project's state"),
        _typed("carol", f"/cpn project show {PROJECT}"),
        _check_show,
    ),
    DemoStep(
        Text("Bob rejoue le provisionnement : rien à réparer", "Bob replays the provisioning: nothing to repair"),
        _typed("bob", f"/cpn project replay {PROJECT}"),
        _check_replay,
    ),
]

# -- the team at work: syncs, pipelines, quality gate, scans, deploys, support, services ------------

API = "api"
INFRA = "deploy"
SYNC_OF = Text("— synchronisation de {repo} (", "— sync of {repo} (")
SYNC_DONE = Text("réussie", "done")
# The sync's card carries the worst of its thread (a failed build, a scan against the policy).
SYNC_BUT_BUILD_FAILED = Text("réussie, mais build en échec (`build`)", "done, but build failed (`build`)")
SYNC_BUT_SCAN_FAILED = Text("réussie, mais scan Trivy hors politique", "done, but Trivy scan breaks the policy")
PIPELINE_OF = Text("{project} / {repo} — pipeline #", "{project} / {repo} — pipeline #")
PIPELINE_PASSED = Text("réussi", "passed")
PIPELINE_FAILED = Text("en échec", "failed")
GATE_FAILED = Text("quality gate en échec", "quality gate failed")
TRIVY = "Trivy —"
DEPLOY_OF = Text("Déploiement de {what} sur {project} / {env}", "Deploy of {what} to {project} / {env}")
DEPLOY_DONE = Text("réussi", "done")
CONFIRM = Text("Confirmer", "Confirm")
QUESTION = Text("comment je synchronise mon dépôt ?", "how do I sync my repository?")
TICKET = Text(
    "le build de api a échoué au job build, est-ce un souci de la plateforme ?",
    "the build of api failed at the build job, is it a platform problem?",
)


def _titled(post: Mapping[str, Any], fragment: str) -> list[dict[str, Any]]:
    return [a for a in attachments_of(post) if fragment in str(a.get("title") or "")]


def _sync_card(demo: Demo, result: StepResult, repo: str, ending: Text = SYNC_DONE) -> tuple[dict[str, Any], str]:
    """The step's last sync card of ``repo`` (a thread root in ~equipe-alpha), finished: (post, title).

    ``ending``: how its title ends, the worst outcome of its thread.
    """
    fragment = demo.tr(SYNC_OF, repo=repo)
    found = [(p, a) for p in result.posts() if not p.get("root_id") for a in _titled(p, fragment)]
    demo.expect(found, f"pas de carte de synchronisation de {repo}", f"no sync card for {repo}")
    post, card = found[-1]
    title = str(card.get("title") or "")
    done = demo.tr(ending)
    demo.expect(
        title.endswith(done) and title.startswith("✅" if ending is SYNC_DONE else "❌"),
        f"la synchronisation ne finit pas « {done} » : {excerpt(title, 100)}",
        f"the sync does not end “{done}”: {excerpt(title, 100)}",
    )
    return post, title


def _thread_cards(demo: Demo, root: Mapping[str, Any], fragment: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(reply, attachment) of the thread of ``root`` whose attachment title holds ``fragment``."""
    return [(r, a) for r in demo.thread_replies(str(root["id"])) for a in _titled(r, fragment)]


def _build_card(demo: Demo, root: Mapping[str, Any], repo: str, status: Text) -> tuple[dict[str, Any], str]:
    """The build card in the sync's thread, finished with ``status``: (reply, title)."""
    found = _thread_cards(demo, root, demo.tr(PIPELINE_OF, project=PROJECT, repo=repo))
    demo.expect(
        found,
        f"pas de carte de build de {repo} dans le fil de la synchronisation",
        f"no build card for {repo} in the sync's thread",
    )
    reply, card = found[-1]
    title = str(card.get("title") or "")
    word = demo.tr(status)
    demo.expect(
        title.endswith(word),
        f"le build ne finit pas « {word} » : {excerpt(title, 100)}",
        f"the build does not end “{word}”: {excerpt(title, 100)}",
    )
    return reply, title


def _built_tag(demo: Demo, repo: str = API) -> str:
    """The image tag of ``repo``'s last successful build on main (the short sha the push job tags)."""
    built = [
        p
        for p in demo.world.states["gitlab"].pipelines_of(demo.names.repo(repo))
        if p.status == "success" and p.ref == "main"
    ]
    demo.expect(built, f"aucun build réussi de {repo} sur main", f"no successful build of {repo} on main")
    return str(built[-1].sha)[:8]


# a. sync


def _check_sync(demo: Demo, result: StepResult) -> None:
    _not_refused(demo, result)
    demo.expect(
        re.search(r"#\d+", result.answer_text()),
        "la réponse ne donne pas le pipeline",
        "the answer does not give the pipeline",
    )
    root, _ = _sync_card(demo, result, API)
    _build_card(demo, root, API, PIPELINE_PASSED)
    thread = "\n".join(text_of(r) for r in demo.thread_replies(root["id"]))
    demo.expect(
        demo.tr(Text("Synchronisation terminée → build", "Sync done → build")) in thread,
        "le fil n'annonce pas le build déclenché par la synchronisation",
        "the thread does not announce the build the sync started",
    )


# b. a failing build


def _run_failing_build(demo: Demo) -> None:
    demo.narrate(
        demo.tr(
            Text(
                "bac à sable : le prochain build de api échoue au job build, après une analyse SonarQube "
                "dont la quality gate échoue",
                "sandbox: the next build of api fails at the build job, after a SonarQube analysis whose "
                "quality gate fails",
            )
        )
    )
    demo.world.scenario(demo.names.repo(API), pipeline="fail:build", quality="failed")
    demo.command("bob", f"/cpn sync {PROJECT} {API}")


def _check_failing_build(demo: Demo, result: StepResult) -> None:
    _not_refused(demo, result)
    root, _ = _sync_card(demo, result, API, SYNC_BUT_BUILD_FAILED)
    _build_card(demo, root, API, PIPELINE_FAILED)
    replies = demo.thread_replies(root["id"])
    failures = [r for r in replies if str(r.get("message") or "").startswith("❌") and "`build`" in str(r["message"])]
    demo.expect(
        failures,
        "pas de réponse sur l'échec du job build dans le fil",
        "no reply about the failed build job in the thread",
    )
    log = str(failures[-1]["message"])
    demo.expect(
        "Job failed" in log and "/-/jobs/" in log,
        f"la réponse ne montre pas la fin du journal du job : {excerpt(log, 120)}",
        f"the reply does not show the end of the job's log: {excerpt(log, 120)}",
    )
    demo.expect(
        "glpat-X" not in log,
        "le jeton écrit dans le journal du job n'est pas masqué",
        "the token written in the job's log is not masked",
    )
    gate = _thread_cards(demo, root, demo.tr(GATE_FAILED))
    demo.expect(
        gate,
        "pas de carte « quality gate en échec » dans le fil",
        "no “quality gate failed” card in the thread",
    )


# c. the Trivy scan, then a stricter policy


def _run_scan_policy(demo: Demo) -> None:
    demo.narrate(
        demo.tr(
            Text(
                "bac à sable : Bob a corrigé son code, les prochains pipelines de api réussissent",
                "sandbox: Bob fixed his code, the next pipelines of api pass",
            )
        )
    )
    demo.world.scenario(demo.names.repo(API))
    demo.command("bob", f"/cpn scan {PROJECT}")
    demo.command("bob", f"/cpn policy {PROJECT} --max-critical 0")
    demo.command("bob", f"/cpn sync {PROJECT} {API}")


def _check_scan_policy(demo: Demo, result: StepResult) -> None:
    _not_refused(demo, result)
    listing = result.answer_text(0)
    demo.expect(
        f"/{PROJECT}/{API}" in listing and ("Critique : 2" in listing or "Critical: 2" in listing),
        f"`/cpn scan` ne montre pas l'image analysée et ses 2 critiques : {excerpt(listing, 120)}",
        f"`/cpn scan` does not show the scanned image and its 2 criticals: {excerpt(listing, 120)}",
    )
    policy = result.answer_text(1)
    demo.expect(
        "Critique tolérées : 0" in policy or "Critical allowed: 0" in policy,
        "la politique ne tolère pas 0 critique",
        "the policy does not allow 0 critical",
    )
    root, _ = _sync_card(demo, result, API, SYNC_BUT_SCAN_FAILED)
    _build_card(demo, root, API, PIPELINE_PASSED)
    scans = _thread_cards(demo, root, TRIVY)
    demo.expect(scans, "pas de carte Trivy dans le fil du pipeline", "no Trivy card in the pipeline's thread")
    post, card = scans[-1]
    title, text = str(card.get("title") or ""), str(card.get("text") or "")
    demo.expect(
        title.startswith("❌") and "(maximum 0)" in text.replace("at most", "maximum"),
        f"le scan n'est pas signalé hors politique : {excerpt(title, 100)}",
        f"the scan is not flagged against the policy: {excerpt(title, 100)}",
    )
    demo.expect(
        "@bob" in str(post.get("message") or ""),
        "le propriétaire @bob n'est pas mentionné",
        "the owner @bob is not mentioned",
    )


# d. deploys


def _run_deploy_dev(demo: Demo) -> None:
    demo.command("carol", f"/cpn deploy {PROJECT} dev")


def _deploy_card(demo: Demo, result: StepResult, env: str, tag: str) -> None:
    fragment = demo.tr(DEPLOY_OF, what=tag, project=PROJECT, env=env)
    found = [a for p in result.posts() for a in _titled(p, fragment)]
    demo.expect(found, f"pas de carte « {fragment} »", f"no “{fragment}” card")
    title = str(found[-1].get("title") or "")
    done = demo.tr(DEPLOY_DONE)
    demo.expect(
        title.endswith(done),
        f"le déploiement ne finit pas « {done} » : {excerpt(title, 100)}",
        f"the deploy does not end “{done}”: {excerpt(title, 100)}",
    )
    app = demo.argocd_app(demo.names.argocd_app(env, INFRA)) or {}
    status = app.get("status") or {}
    sync, health = status.get("sync") or {}, status.get("health") or {}
    head = demo.gitlab(f"/projects/{quote(demo.names.repo(INFRA), safe='')}/repository/commits/main") or {}
    demo.expect(
        sync.get("status") == "Synced" and health.get("status") == "Healthy" and sync.get("revision") == head.get("id"),
        f"ArgoCD ne fait pas tourner la tête de {INFRA} en {env} : {sync.get('status')}, {health.get('status')}",
        f"ArgoCD does not run the head of {INFRA} in {env}: {sync.get('status')}, {health.get('status')}",
    )


def _check_deploy_dev(demo: Demo, result: StepResult) -> None:
    _not_refused(demo, result)
    tag = _built_tag(demo)
    demo.expect(
        tag in demo.image_tags(API),
        f"l'image {API}:{tag} n'est pas dans {demo.registry_label}",
        f"the image {API}:{tag} is not in {demo.registry_label}",
    )
    _deploy_card(demo, result, "dev", tag)


def _run_deploy_prod(demo: Demo) -> None:
    demo.command("bob", f"/cpn deploy {PROJECT} prod --image-tag {_built_tag(demo)}")
    demo.press("bob", demo.tr(CONFIRM))
    demo.command("carol", f"/cpn status {PROJECT}")


def _check_deploy_prod(demo: Demo, result: StepResult) -> None:
    _not_refused(demo, result)
    tag = _built_tag(demo)
    _deploy_card(demo, result, "prod", tag)
    fields = [f for a in attachments_of(result.answer) for f in a.get("fields") or [] if isinstance(f, dict)]
    envs = next((str(f.get("value")) for f in fields if str(f.get("value") or "").startswith("**dev**")), "")
    lines = envs.splitlines()
    for env in ("dev", "prod"):
        head = next((i for i, line in enumerate(lines) if line.startswith(f"**{env}**")), -1)
        app_line = lines[head + 1] if 0 <= head < len(lines) - 1 else ""
        demo.expect(
            head >= 0
            and f"`{tag}`" in lines[head]
            and _in_sync(demo, env, app_line)
            and _state(demo, "Healthy") in app_line,
            f"l'état ne montre pas {env} en {tag}, Synced et Healthy : {excerpt(envs, 160)}",
            f"the status does not show {env} at {tag}, Synced and Healthy: {excerpt(envs, 160)}",
        )


def _state(demo: Demo, code: str) -> str:
    """An ArgoCD state as the bot shows it to the demo's reader (the catalog's ``[argocd]``)."""
    return t(f"argocd.{code}", demo.language)  # type: ignore[arg-type]


def _in_sync(demo: Demo, env: str, app_line: str) -> bool:
    """Whether the status line shows the environment's application in sync with git.

    The emulated ArgoCD compares commits where Argo CD compares manifests: once it has refreshed
    after a commit for another environment (``values-prod.yaml``), an application whose own values
    did not change shows OutOfSync. That case counts as in sync, and only that one: the
    environment's values file must be the same at the deployed commit and at the head.
    """
    if f"🟢 {_state(demo, 'Synced')}" in app_line:
        return True
    if _state(demo, "OutOfSync") not in app_line:
        return False
    status = (demo.argocd_app(demo.names.argocd_app(env, INFRA)) or {}).get("status") or {}
    history = status.get("history") or [{}]
    deployed, head = str(history[-1].get("revision") or ""), str((status.get("sync") or {}).get("revision") or "")
    repo = quote(demo.names.repo(INFRA), safe="")
    blobs = [
        (demo.gitlab(f"/projects/{repo}/repository/files/values-{env}.yaml?ref={ref}") or {}).get("blob_id")
        for ref in (deployed, head)
    ]
    return bool(deployed and head and blobs[0] and blobs[0] == blobs[1])


# e. support


def _run_question(demo: Demo) -> None:
    demo.write("alice", f"@cpn-bot {demo.tr(QUESTION)}", to_bot=True)


def _check_question(demo: Demo, result: StepResult) -> None:
    asked = [p for p in result.posts() if demo.tr(QUESTION) in str(p.get("message") or "")]
    demo.expect(asked, "la question n'est pas dans le canal", "the question is not in the channel")
    answers = [r for r in demo.thread_replies(asked[-1]["id"]) if attachments_of(r)]
    demo.expect(
        answers, "pas de réponse du bot dans le fil de la question", "no answer from the bot in the question's thread"
    )
    card = attachments_of(answers[-1])[0]
    text = text_of(answers[-1])
    demo.expect(
        str(card.get("title") or "").startswith("📘") and "/cpn sync" in text,
        f"la réponse ne parle pas de `/cpn sync` : {excerpt(text, 120)}",
        f"the answer does not mention `/cpn sync`: {excerpt(text, 120)}",
    )


def _run_ticket(demo: Demo) -> None:
    demo.command("bob", f"/cpn support {demo.tr(TICKET)} --project {PROJECT}")


def _check_ticket(demo: Demo, result: StepResult) -> None:
    _not_refused(demo, result)
    number = re.search(r"(?:n°|#)(\d+)", result.answer_text())
    demo.expect(number, "la réponse ne donne pas de numéro de ticket", "the answer gives no ticket number")
    assert number is not None
    ticket = demo.tr(Text("Ticket n°{id}", "Ticket #{id}"), id=number.group(1))
    cards = [a for p in result.posts("support-cpn") for a in _titled(p, ticket)]
    demo.expect(cards, "le ticket n'apparaît pas dans ~support-cpn", "the ticket does not show in ~support-cpn")
    text = str(cards[-1].get("text") or "")
    demo.expect(
        "@bob" in text and f"{PROJECT}" in text and demo.tr(TICKET)[:40] in text,
        f"la carte du ticket ne dit pas qui, quel projet et quoi : {excerpt(text, 120)}",
        f"the ticket card does not say who, which project and what: {excerpt(text, 120)}",
    )


# f. services


def _check_services(demo: Demo, result: StepResult) -> None:
    text = result.answer_text()
    found = dict(re.findall(r"\*\*(\w+)\*\* : ([^(\n]+?) \(", text))
    bad = [f"{name} : {found.get(name, '?')}" for name in ("Mattermost", *demo.services()) if found.get(name) != "OK"]
    demo.expect(not bad, f"services pas OK : {'; '.join(bad)}", f"services not OK: {'; '.join(bad)}")


TEAMWORK: list[DemoStep] = [
    DemoStep(
        Text("Bob synchronise api : la synchronisation, puis son build", "Bob syncs api: the sync, then its build"),
        _typed("bob", f"/cpn sync {PROJECT} {API}"),
        _check_sync,
    ),
    DemoStep(
        Text(
            "Un build qui échoue : le journal du job et la quality gate dans le fil",
            "A failing build: the job's log and the quality gate in the thread",
        ),
        _run_failing_build,
        _check_failing_build,
    ),
    DemoStep(
        Text(
            "Bob consulte le scan Trivy, n'accepte plus aucune CRITICAL et resynchronise",
            "Bob looks at the Trivy scan, allows no CRITICAL any more and syncs again",
        ),
        _run_scan_policy,
        _check_scan_policy,
    ),
    DemoStep(
        Text("Carol déploie la dernière image en dev", "Carol deploys the latest image to dev"),
        _run_deploy_dev,
        _check_deploy_dev,
    ),
    DemoStep(
        Text(
            "Bob déploie la même image en prod (avec confirmation), Carol regarde l'état",
            "Bob deploys the same image to prod (with a confirmation), Carol looks at the state",
        ),
        _run_deploy_prod,
        _check_deploy_prod,
    ),
    DemoStep(
        Text("Alice, bêta-testeuse, pose une question au bot", "Alice, a beta tester, asks the bot a question"),
        _run_question,
        _check_question,
    ),
    DemoStep(
        Text("Bob ouvre un ticket auprès de l'équipe plateforme", "Bob opens a ticket with the platform team"),
        _run_ticket,
        _check_ticket,
    ),
    DemoStep(
        Text("Alice vérifie l'état des services de la plateforme", "Alice checks the platform's services"),
        _typed("alice", "/cpn services"),
        _check_services,
    ),
]


STEPS: list[DemoStep] = [*ONBOARDING, *TEAMWORK]
"""The tour, in order. Later chapters append their steps (see :func:`add_steps`)."""


def add_steps(*steps: DemoStep) -> None:
    STEPS.extend(steps)


# -- running the tour ------------------------------------------------------------------------------


def run_demo(
    language: str = "fr",
    *,
    steps: Iterable[DemoStep] | None = None,
    out: TextIO | None = None,
    timings: Timings | None = None,
    control: str = "direct",
) -> int:
    """Run the tour (``steps``, :data:`STEPS` by default) and print its transcript; 0 if every step passed.
    ``control = "console"``: the same tour with the console emulator provisioning."""
    stream = out or sys.stdout
    language = language if language in TEXTS else "fr"
    texts = TEXTS[language]
    style = detect_style(stream, os.environ)
    chosen = list(STEPS if steps is None else steps)
    started = time.monotonic()
    print(style.wrap(BOLD, texts["intro"]), file=stream)
    print(texts["cast"].format(channel=CHANNEL), file=stream)
    print(style.wrap(DIM, texts["starting"]), file=stream, flush=True)
    world = World.create(
        language=language,
        timings=timings or Timings(pipeline_step=0.05, argocd_step=0.05, reply_budget=2.5),
        control=control,
    )
    passed = failed = 0
    with _logs_to(world.root / "demo.log"):
        demo: Demo | None = None
        try:
            try:
                world.start()
                demo = Demo(world, language, stream, style)
            except Exception as exc:
                print(style.wrap(RED, texts["start_failed"].format(reason=_reason(exc))), file=stream, flush=True)
                world.keep_files = True
                print(texts["kept"].format(root=world.root), file=stream)
                return 1
            for step in chosen:
                if _play(demo, step):
                    passed += 1
                else:
                    failed += 1
        finally:
            if demo is not None:
                demo.close()
            if failed:
                world.keep_files = True
            world.stop()
    print(file=stream)
    print(style.wrap(DIM, texts["duration"].format(seconds=time.monotonic() - started)), file=stream)
    if failed:
        print(texts["kept"].format(root=world.root), file=stream)
    summary = texts["summary"].format(total=passed + failed, passed=passed, failed=failed)
    print(style.wrap(BOLD + (RED if failed else GREEN), summary), file=stream, flush=True)
    return 0 if failed == 0 else 1


def _play(demo: Demo, step: DemoStep) -> bool:
    """Run one step and print its verdict; True if it passed."""
    style, out = demo.style, demo.out
    print(file=out)
    print(style.wrap(BOLD, f"▶ {demo.tr(step.title)}"), file=out, flush=True)
    demo.result = StepResult()
    began = time.monotonic()
    why = ""
    try:
        step.run(demo)
        step.check(demo, demo.result)
    except StepFailed as exc:
        why = str(exc) or "?"
    except Exception as exc:
        why = demo.t("crashed", reason=_reason(exc))
    took = style.wrap(DIM, f"({time.monotonic() - began:.1f} s)")
    if why:
        print(f"{style.wrap(RED, '✘')} {why} {took}", file=out, flush=True)
        return False
    print(f"{style.wrap(GREEN, '✔')} {took}", file=out, flush=True)
    return True


def _reason(exc: BaseException) -> str:
    """One short line about an exception (no traceback)."""
    text = " ".join(str(exc).split())
    if len(text) > 200:
        text = text[:199] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@contextlib.contextmanager
def _logs_to(path: Path) -> Iterator[None]:
    """The bot's and the emulators' logs go to ``path`` (not onto the transcript), then back."""
    from bot.logs import setup_logging

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        setup_logging("INFO", json_format=True, stream=handle)
        try:
            yield
        finally:
            root.handlers[:] = saved[0]
            root.setLevel(saved[1])
