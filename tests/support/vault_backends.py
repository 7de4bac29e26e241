"""A Vault to test against, emulated or real, seeded and inspected the same way: through its API.

Tests written against :class:`VaultBackend` run unchanged on the emulator and on a real OpenBao
(``tests/conftest.py`` ``VAULT_BACKENDS``); only what a real server cannot be made to do (seal
on demand, answer 429) stays with the emulator's own switches.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import hvac
import hvac.exceptions as hvac_errors
import pytest

from services.emulators.base import EmulatorServer
from services.emulators.vault import State, create_app

MOUNT = "forge-dso"


class VaultBackend:
    """A Vault's URL and root token, with the admin calls tests need to seed and look."""

    def __init__(self, name: str, url: str, root_token: str, state: State | None = None) -> None:
        self.name = name
        self.url = url
        self.root_token = root_token
        self.state = state  # the emulator's, for its switches; None on a real server
        self.admin = hvac.Client(url=url, token=root_token, timeout=10)

    @property
    def kv(self) -> Any:
        return self.admin.secrets.kv.v2

    def put_secret(self, mount: str, path: str, data: Mapping[str, Any]) -> int:
        answer = self.kv.create_or_update_secret(path=path, secret=dict(data), mount_point=mount)
        return int(answer["data"]["version"])

    def read_secret(self, mount: str, path: str) -> dict[str, Any] | None:
        try:
            answer = self.kv.read_secret_version(path=path, mount_point=mount, raise_on_deleted_version=True)
        except hvac_errors.InvalidPath:
            return None
        data: dict[str, Any] = answer["data"]["data"]
        return data

    def secret_metadata(self, mount: str, path: str) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = self.kv.read_secret_metadata(path=path, mount_point=mount)["data"]
        except hvac_errors.InvalidPath:
            return None
        return data

    def list_paths(self, mount: str, prefix: str = "") -> list[str]:
        """Every key of a KV v2 mount, recursively, sorted."""
        try:
            keys = self.kv.list_secrets(path=prefix, mount_point=mount)["data"]["keys"]
        except hvac_errors.InvalidPath:
            return []
        found: list[str] = []
        for key in keys:
            found += self.list_paths(mount, prefix + key) if key.endswith("/") else [prefix + key]
        return sorted(found)

    def mounts(self) -> dict[str, Any]:
        data: dict[str, Any] = self.admin.sys.list_mounted_secrets_engines()["data"]
        return data

    def enable_kv2(self, mount: str) -> None:
        self.admin.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})

    def policy(self, name: str) -> str | None:
        try:
            return str(self.admin.sys.read_acl_policy(name=name)["data"]["policy"])
        except hvac_errors.InvalidPath:
            return None

    def put_policy(self, name: str, hcl: str) -> None:
        self.admin.sys.create_or_update_acl_policy(name=name, policy=hcl)

    def create_token(self, policies: list[str], *, no_default_policy: bool = False) -> str:
        answer = self.admin.auth.token.create(policies=policies, no_default_policy=no_default_policy, ttl="1h")
        token: str = answer["auth"]["client_token"]
        return token

    def revoke(self, token: str) -> None:
        self.admin.auth.token.revoke(token)

    def close(self) -> None:
        self.admin.adapter.close()


@contextmanager
def emulated(root_token: str = "root-token-for-tests", flavor: str = "openbao") -> Iterator[VaultBackend]:
    """The emulator on loopback with the platform's mount, as a backend."""
    state = State(root_token=root_token, flavor=flavor)
    state.enable_kv2(MOUNT)
    with EmulatorServer(create_app(state), name="vault-emulator") as server:
        backend = VaultBackend(f"emulator-{flavor}", server.url, root_token, state)
        try:
            yield backend
        finally:
            backend.close()


@contextmanager
def backend_for(request: pytest.FixtureRequest, name: str) -> Iterator[VaultBackend]:
    """``emulator`` (OpenBao's answers), ``emulator-vault`` (HashiCorp Vault's) or ``openbao`` (real)."""
    if name.startswith("emulator"):
        with emulated(flavor="vault" if name == "emulator-vault" else "openbao") as backend:
            yield backend
        return
    server = request.getfixturevalue("openbao")
    backend = VaultBackend(name, server.url, server.root_token)
    try:
        yield backend
    finally:
        backend.close()
