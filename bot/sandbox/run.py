"""``cpn-bot sandbox``: the whole platform on loopback, with a terminal chat or headless.

Headless (``--headless --state-file F``): start the world and its switches over HTTP
(``bot.sandbox.control_api``), write its state (URLs, tokens, ids, ``sandbox_url`` and
``sandbox_token``) to F as JSON, atomically and readable by the owner only, print one ready line,
and run until SIGTERM or SIGINT; then stop everything and return 0.

Interactive: start the world, say where its data lives and where its services listen, then run the
terminal chat (``bot.sandbox.chat``) as ``--as USER`` in ``--channel NAME``. The logs of the bot and
the emulators go to a file, not onto the chat, and the chat's transcript to another; both outlive
the session. With ``--data DIR`` the sandbox's platform is kept in DIR at exit and resumed from it
(``bot.sandbox.persist``); without, it lives in a temporary directory deleted at exit.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

from bot.sandbox.chat import TEXTS, Chat
from bot.sandbox.control_api import ControlServer
from bot.sandbox.persist import DataRefused
from bot.sandbox.web import start_web
from bot.sandbox.world import CAST, CHANNELS, World


def write_state_file(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` as JSON to ``path`` atomically (temp file in the same folder, then rename)."""
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)  # it holds tokens
            json.dump(state, handle, ensure_ascii=False, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run_sandbox(
    user: str = "alice",
    channel: str = "equipe-alpha",
    headless: bool = False,
    state_file: str | None = None,
    language: str = "fr",
    registry: str = "quay",
    data: str | None = None,
    web: bool = False,
    control: str = "direct",
) -> int:
    """``control = "console"``: the console emulator provisions, Harbor is the registry."""
    if control == "console":
        registry = "harbor"  # the console's registry since its v3
    try:
        if headless:
            if not state_file:
                print("--headless needs --state-file", file=sys.stderr)
                return 2
            return _headless(Path(state_file), language, registry, data, web, control)
        return _interactive(user, channel, language, registry, data, web, control)
    except DataRefused as refused:
        print(refused, file=sys.stderr)
        return 2


def _registry(registry: str) -> dict[str, Any]:
    """World.create's config_overrides for the registry the bot drives (World.registry_kind)."""
    return {"platform": {"registry": registry}} if registry != "quay" else {}


def _world(language: str, registry: str, data: str | None, control: str = "direct") -> World:
    """The sandbox's world: in a temporary directory, or saved in and resumed from ``data``."""
    if data is None:
        return World.create(language=language, config_overrides=_registry(registry), control=control)
    root = Path(data).expanduser().resolve()
    return World(
        root, language=language, config_overrides=_registry(registry), persist=True, keep_files=True, control=control
    )


def _data_line(texts: dict[str, str], world: World) -> str:
    """The banner's line on where the sandbox's data is, and whether it outlives the session."""
    if not world.persist:
        return texts["data_temporary"].format(root=world.root)
    return texts["data_resumed" if world.resumed else "data_new"].format(root=world.root)


def _kept_files(world: World) -> tuple[Path, Path]:
    """The log and the chat's transcript: in the data directory, or beside the temporary one (which
    is deleted at exit, with the secrets), so that they outlive the session as advertised."""
    if world.persist:
        return world.root / "sandbox.log", world.root / "transcript.txt"
    return Path(f"{world.root}.log"), Path(f"{world.root}-transcript.txt")


def _headless(
    state_file: Path,
    language: str,
    registry: str = "quay",
    data: str | None = None,
    web: bool = False,
    control: str = "direct",
) -> int:
    texts = TEXTS.get(language, TEXTS["fr"])
    stop: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    world = _world(language, registry, data, control)
    switches = ControlServer(world)  # the switches of :scenario and :degrade, over HTTP
    try:
        world.start()
        switches.start()
        state = {**world.state_file(), **switches.state()}
        if web:
            state["web_url"] = start_web(world)
            print(state["web_url"], flush=True)
        write_state_file(state_file, state)
        print(_data_line(texts, world))
        print(texts["ready_headless"].format(path=state_file), flush=True)
        while not stop:
            time.sleep(0.1)
    finally:
        switches.stop()
        world.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _interactive(
    user: str,
    channel: str,
    language: str,
    registry: str = "quay",
    data: str | None = None,
    web: bool = False,
    control: str = "direct",
) -> int:
    texts = TEXTS.get(language, TEXTS["fr"])
    name = user.lstrip("@").lower()
    if name not in CAST:
        print(f"unknown user {user!r}; one of: {', '.join(CAST)}", file=sys.stderr)
        return 2
    if channel.lstrip("~") not in CHANNELS and not channel.startswith("@"):
        print(f"unknown channel {channel!r}; one of: {', '.join(CHANNELS)}", file=sys.stderr)
        return 2

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    print(texts["starting"], flush=True)
    world = _world(language, registry, data, control)
    log_path, transcript_path = _kept_files(world)
    log_file = _log_to(log_path)
    transcript = transcript_path.open("a", encoding="utf-8")
    os.chmod(transcript_path, 0o600)  # what was typed, passwords masked: the user's own
    chat: Chat | None = None
    try:
        world.start()
        print(_data_line(texts, world))
        print(texts["log"].format(path=log_path))
        print(texts["transcript"].format(path=transcript_path))
        print(texts["urls"])
        for service, url in _urls(world).items():
            print(f"  {service:<12} {url}")
        if web:
            print(f"  {'web':<12} {start_web(world)}")
        print(flush=True)
        chat = Chat(
            world.state_file(), name, channel.lstrip("~"), language=language, world=world, transcript=transcript
        )
        return chat.run()
    except KeyboardInterrupt:
        return 0
    finally:
        print(texts["stopping"], flush=True)
        if chat is not None:
            chat.close()
        world.stop()
        signal.signal(signal.SIGTERM, previous)
        log_file.close()
        transcript.close()
        print(texts["kept"].format(log=log_path, transcript=transcript_path), flush=True)


def _urls(world: World) -> dict[str, str]:
    urls = {"cpn-bot": world.bot_url}
    urls.update({name: server.url for name, server in world.servers.items()})
    return urls


def _log_to(path: Path) -> Any:
    """Send every log record to ``path`` (JSON lines, secrets redacted) instead of the terminal."""
    from bot.logs import setup_logging

    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a", encoding="utf-8")
    setup_logging("INFO", json_format=True, stream=handle)
    logging.captureWarnings(True)
    return handle
