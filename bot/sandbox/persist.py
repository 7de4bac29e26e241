"""The sandbox's platform kept across runs (``cpn-bot sandbox --data DIR``).

What persists, in DIR: the bot's SQLite (``cpn-bot.sqlite``, where it already is), and at stop the
emulators' whole state (``platform.pickle``: Mattermost's users, channels, posts and commands,
GitLab's groups, repositories and pipelines, Vault's secrets, the registry's, Nexus', SonarQube's
and ArgoCD's projects) with what the world seeded them with (``world.json``: ids, tokens, webhook
secrets, the signing key, the ports). The next run serves the same states on the same ports, so
every URL the bot and the emulators hold stays right. What does not persist: work in flight at
stop (a running pipeline or Argo CD sync stays as it was, and never ends), websocket connections,
the switches' faults (``:degrade``) and each emulator's request log.

Both files hold secrets (mode 600), and a pickle runs code when loaded: DIR is the user's own, as
the bot's SQLite and secrets are.
"""

from __future__ import annotations

import inspect
import json
import os
import pickle
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.emulators.gitlab_pipelines import Engine
from services.emulators.mattermost_hub import Hub

SNAPSHOT = "platform.pickle"
META = "world.json"
_LOCK = type(threading.Lock())
_RLOCK = type(threading.RLock())


class DataRefused(ValueError):
    """The data directory holds a sandbox this run cannot resume (another registry, say)."""


def _none() -> None:
    return None


class _Pickler(pickle.Pickler):
    """Pickles an emulator's state without what only lives while it runs: locks and events come back
    new, the pipeline engine and websocket hub, threads and the world's callbacks as None (the
    emulator's ``create_app`` and :func:`revive` make them again)."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, _LOCK):
            return (threading.Lock, ())
        if isinstance(obj, _RLOCK):
            return (threading.RLock, ())
        if isinstance(obj, threading.Event):
            return (threading.Event, ())
        if isinstance(obj, Engine | Hub | threading.Thread) or inspect.ismethod(obj):
            return (_none, ())
        return NotImplemented


@dataclass
class Saved:
    states: dict[str, Any]
    meta: dict[str, Any]


def save_platform(root: Path, states: dict[str, Any], meta: dict[str, Any]) -> None:
    """Write the snapshot and the world's seed, each atomically and readable by the owner only."""
    for name, write in ((SNAPSHOT, lambda f: _Pickler(f).dump(states)), (META, lambda f: f.write(_json(meta)))):
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=root)
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), 0o600)
                write(handle)
            os.replace(tmp, root / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _json(meta: dict[str, Any]) -> bytes:
    return json.dumps(meta, ensure_ascii=False, indent=2).encode()


def load_platform(root: Path) -> Saved | None:
    """What :func:`save_platform` wrote in ``root``, revived; None when it holds nothing yet."""
    if not (root / SNAPSHOT).is_file() or not (root / META).is_file():
        return None
    with (root / SNAPSHOT).open("rb") as handle:
        states: dict[str, Any] = pickle.load(handle)  # noqa: S301 (the user's own directory, mode 600)
    meta: dict[str, Any] = json.loads((root / META).read_text(encoding="utf-8"))
    for state in states.values():
        revive(state)
    return Saved(states, meta)


def revive(state: Any) -> None:
    """What a loaded state needs again before it is served."""
    from services.emulators.mattermost_state import new_id

    if isinstance(getattr(state, "hub", None), type(None)) and hasattr(state, "hub"):
        state.hub = Hub(new_id)  # Mattermost's websocket connections
    if hasattr(state, "job_listeners"):
        state.job_listeners = [listener for listener in state.job_listeners if listener is not None]
    if hasattr(state, "_threads"):
        state._threads = []  # Harbor's webhook deliveries
    if hasattr(state, "faults"):
        state.faults.clear()
