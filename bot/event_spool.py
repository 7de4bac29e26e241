"""Events the inbox file could not take in time, kept on disk until it can.

GitLab never resends a webhook and disables one after four failures in a row
(gitlabhq/gitlabhq:app/models/concerns/web_hooks/auto_disabling.rb, FAILURE_THRESHOLD): an
authenticated event is answered 2xx even when the inbox file is locked for seconds or its write
fails. Such an event is written here, one 0600 file per event, fsync'ed (and its directory) before
the answer; the inbox writer moves the files into the inbox as soon as it can, oldest first, in the
transaction of its next commit (the delivery ids go with them: a redelivery is still deduplicated).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

SUFFIX = ".event.json"


def spool_path(inbox_path: str) -> Path:
    """``/var/lib/cpn-bot/cpn-bot.inbox.sqlite`` → ``/var/lib/cpn-bot/cpn-bot.inbox.spool``."""
    return Path(inbox_path).with_suffix(".spool")


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def put(self, row: dict[str, Any]) -> Path:
        """Write ``row`` durably (file and directory fsync'ed); its path."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}"
        partial = self.directory / f"{name}.partial"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, json.dumps(row, ensure_ascii=False).encode("utf-8", "surrogatepass"))
            os.fsync(fd)
        finally:
            os.close(fd)
        final = self.directory / f"{name}{SUFFIX}"
        os.rename(partial, final)  # a crash leaves a whole file or a partial one, never half a JSON
        self._sync_directory()
        return final

    def pending(self) -> list[tuple[Path, dict[str, Any]]]:
        """The spooled events, oldest first (an unreadable file is left for the operator)."""
        if not self.directory.is_dir():
            return []
        found: list[tuple[Path, dict[str, Any]]] = []
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            try:
                row = json.loads(path.read_bytes().decode("utf-8", "surrogatepass"))
            except (OSError, ValueError):
                continue
            if isinstance(row, dict):
                found.append((path, row))
        return found

    def remove(self, paths: list[Path]) -> None:
        """Once their rows are committed in the inbox."""
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if paths:
            self._sync_directory()

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
