"""Webhook bodies: small ones in memory, large ones streamed to a 0600 file in the bot's data dir.

A Trivy report or a large GitLab event of tens of megabytes is written to disk as it arrives,
64 KiB at a time (uvicorn pauses the socket above that, ``uvicorn/protocols/http/h11_impl.py``,
``HIGH_WATER_LIMIT``), so that eight of them in flight cost the web process a few hundred KiB,
not eight times their size. Past ``spool_threshold_bytes`` an upload needs one of
``max_large_uploads`` slots: it waits for one at most ``large_upload_wait_seconds`` (the bytes
meanwhile stay in the sender's and the kernel's buffers: the socket is paused), then is refused
with ``503`` and ``Retry-After``. Waiting a little rather than refusing at once keeps a burst of
GitLab events (GitLab does not retry a failed hook) from being lost; the bound keeps the number
of open spool files and held connections finite.

The files live in ``<store path>.spool/``: ``tmp/`` for uploads in flight (removed when the request
ends, and at start-up whatever a crash left), ``reports/`` for Trivy reports handed to the inbox
(removed once processed; at start-up, those no pending inbox event names).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import uuid
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING

from starlette.requests import Request
from starlette.types import Message, Receive

if TYPE_CHECKING:
    from bot.config import Config

SPOOL_KEY = "cpn.spool"  # the request's Upload in the ASGI scope
REPORT_FILE_HEADER = "report_file"  # the inbox header naming a spooled Trivy report


def spool_directory(store_path: str) -> Path:
    """``<store path>.spool``, beside the SQLite file (a per-process folder for an in-memory store)."""
    if store_path == ":memory:":
        return Path(tempfile.gettempdir()) / f"cpn-bot-spool-{os.getpid()}"
    return Path(f"{store_path}.spool")


def report_file(store_path: str, name: str) -> Path:
    """The spooled report an inbox event names (only its last component counts)."""
    return spool_directory(store_path) / "reports" / Path(name).name


class BodyTooLarge(Exception):
    """The body read so far is over the route's limit."""


class ClientGone(Exception):
    """The client disconnected before its body was whole."""


class SpoolBusy(Exception):
    """Every large-upload slot stayed taken for the whole wait."""


class Spool:
    """Where large bodies go, and how many may be in flight at once."""

    def __init__(self, directory: Path, threshold: int, slots: int, wait_seconds: float) -> None:
        self.directory = directory
        self.tmp = directory / "tmp"
        self.reports = directory / "reports"
        self.threshold = threshold
        self.slots = slots
        self.wait_seconds = wait_seconds
        self._semaphore: asyncio.Semaphore | None = None
        self.in_flight = 0

    @classmethod
    def of(cls, config: Config) -> Spool:
        server = config.server
        return cls(
            spool_directory(config.store.path),
            server.spool_threshold_bytes,
            server.max_large_uploads,
            server.large_upload_wait_seconds,
        )

    def prepare(self, referenced: set[str]) -> int:
        """Create the directories (0700) and remove what a crash left; the number of files removed."""
        removed = 0
        for folder in (self.tmp, self.reports):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(folder, 0o700)
        for path in self.tmp.iterdir():
            path.unlink(missing_ok=True)
            removed += 1
        for path in self.reports.iterdir():
            if path.name not in referenced:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def _slots(self) -> asyncio.Semaphore:
        if self._semaphore is None:  # created in the server's event loop
            self._semaphore = asyncio.Semaphore(self.slots)
        return self._semaphore

    async def acquire(self) -> None:
        try:
            await asyncio.wait_for(self._slots().acquire(), self.wait_seconds)
        except TimeoutError:
            raise SpoolBusy from None
        self.in_flight += 1

    def release(self) -> None:
        self.in_flight -= 1
        self._slots().release()

    def report_path(self, name: str) -> Path:
        return self.reports / Path(name).name

    def upload(self, expected: int | None) -> Upload:
        return Upload(self, expected)


class Upload:
    """One request's body: read once, in memory or in a file; ``close()`` frees both."""

    def __init__(self, spool: Spool, expected: int | None) -> None:
        self.spool = spool
        self.expected = expected
        self.memory = bytearray()
        self.path: Path | None = None
        self.size = 0
        self._file: IO[bytes] | None = None
        self._slot = False
        self._read = False

    @property
    def large(self) -> bool:
        return self.expected is not None and self.expected > self.spool.threshold

    async def reserve(self) -> None:
        """Take a large-upload slot (before any byte is read when the length is announced)."""
        if not self._slot:
            await self.spool.acquire()
            self._slot = True

    async def read(self, receive: Receive, limit: int) -> None:
        """The whole body, to memory up to the threshold, to a file past it."""
        if self._read:
            return
        self._read = True
        if self.large:
            await self.reserve()
        more = True
        while more:
            message: Message = await receive()
            if message["type"] != "http.request":
                raise ClientGone
            chunk: bytes = message.get("body", b"")
            more = bool(message.get("more_body", False))
            self.size += len(chunk)
            if self.size > limit:
                raise BodyTooLarge
            if self._file is None and self.size > self.spool.threshold:
                await self.reserve()
                self._open()
            if self._file is not None:
                if self.memory:
                    self._file.write(self.memory)
                    self.memory = bytearray()
                self._file.write(chunk)
            else:
                self.memory += chunk
        if self._file is not None:
            self._file.flush()

    def _open(self) -> None:
        path = self.spool.tmp / f"{uuid.uuid4().hex}.body"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.path = path
        self._file = os.fdopen(fd, "wb", buffering=0)  # chunks come 64 KiB at most: one write each

    def bytes(self) -> bytes:
        """The body in memory (a spooled one read back: for bodies that must be parsed whole)."""
        if self.path is None:
            return bytes(self.memory)
        return self.path.read_bytes()

    def keep(self, name: str) -> Path:
        """Move the spooled file to ``reports/name``, where the inbox's worker finds it."""
        assert self.path is not None and self._file is not None
        self._file.close()
        self._file = None
        target = self.spool.report_path(name)
        os.replace(self.path, target)
        self.path = None
        return target

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None
        self.memory = bytearray()
        if self._slot:
            self._slot = False
            self.spool.release()

    def __enter__(self) -> Upload:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


# Outside the edge (a FastAPI route, a test calling a handler): the body in memory, as before.
_IN_MEMORY = Spool(Path(tempfile.gettempdir()), threshold=2**62, slots=2**30, wait_seconds=0)


async def read_body(request: Request) -> Upload:
    """The request's body, read once through the edge's :class:`Upload` (which the edge closes)."""
    entry = request.scope.get(SPOOL_KEY)
    if entry is None:
        upload = Upload(_IN_MEMORY, None)
        upload.memory = bytearray(await request.body())
        upload._read = True
        return upload
    upload, limit = entry
    await upload.read(request.receive, limit)
    return upload
