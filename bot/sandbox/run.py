"""``cpn-bot sandbox``: the whole platform on loopback, with a terminal chat or headless.

Headless (``--headless --state-file F``): start the world, write its state (URLs, tokens, ids) to F
as JSON, atomically and readable by the owner only, print one ready line, and run until SIGTERM or
SIGINT; then stop everything and return 0.

Interactive: start the world, say where its data lives and where its services listen, then run the
terminal chat (``bot.sandbox.chat``) as ``--as USER`` in ``--channel NAME``. The logs of the bot and
the emulators go to a file in the sandbox's directory, not onto the chat.
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
    web: bool = False,
) -> int:
    if headless:
        if not state_file:
            print("--headless needs --state-file", file=sys.stderr)
            return 2
        return _headless(Path(state_file), language, registry, web)
    return _interactive(user, channel, language, registry, web)


def _registry(registry: str) -> dict[str, Any]:
    """World.create's config_overrides for the registry the bot drives (World.registry_kind)."""
    return {"platform": {"registry": registry}} if registry != "quay" else {}


def _headless(state_file: Path, language: str, registry: str = "quay", web: bool = False) -> int:
    texts = TEXTS.get(language, TEXTS["fr"])
    stop: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    world = World.create(language=language, config_overrides=_registry(registry))
    try:
        world.start()
        state = world.state_file()
        if web:
            state["web_url"] = start_web(world)
            print(state["web_url"], flush=True)
        write_state_file(state_file, state)
        print(texts["ready_headless"].format(path=state_file), flush=True)
        while not stop:
            time.sleep(0.1)
    finally:
        world.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _interactive(user: str, channel: str, language: str, registry: str = "quay", web: bool = False) -> int:
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
    world = World.create(language=language, config_overrides=_registry(registry))
    log_path = world.root / "sandbox.log"
    log_file = _log_to(log_path)
    chat: Chat | None = None
    try:
        world.start()
        print(texts["root"].format(root=world.root))
        print(texts["log"].format(path=log_path))
        print(texts["urls"])
        for service, url in _urls(world).items():
            print(f"  {service:<12} {url}")
        if web:
            print(f"  {'web':<12} {start_web(world)}")
        print(flush=True)
        chat = Chat(world.state_file(), name, channel.lstrip("~"), language=language, world=world)
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
