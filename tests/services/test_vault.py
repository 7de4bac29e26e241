"""The Vault adapter driven against the emulator and against a real OpenBao (``vault`` parameter).

Seeding and checks go through the server's API (:class:`~tests.support.vault_backends.VaultBackend`),
so each test reads the same on both; the emulator's own switches (seal, outage, 429) stay in the
tests that need them.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from services.base import Ensured
from services.errors import Failure, ServiceError
from services.vault import Vault
from services.vault_policy import bot_policy
from tests.support.vault_backends import VaultBackend, backend_for, emulated

ROOT = "root-token-for-adapter-tests"
MOUNT = "forge-dso"
SECRET = "s3cr3t-value-never-shown"
BACKENDS = ["emulator", pytest.param("openbao", marks=pytest.mark.real_server)]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[VaultBackend]:
    with backend_for(request, request.param) as found:
        yield found


@pytest.fixture
def vault(backend: VaultBackend) -> Iterator[Vault]:
    """The adapter with a token holding only the bot's documented policy, not the root token."""
    backend.put_policy("cpn-bot", bot_policy(MOUNT))
    yield Vault(backend.url, backend.create_token(["cpn-bot"]), timeout=5)


@pytest.fixture
def emulator() -> Iterator[VaultBackend]:
    with emulated(ROOT) as found:
        yield found


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text


# --- KV v2 -----------------------------------------------------------------------------------


async def test_read_write_and_cas(vault: Vault, backend: VaultBackend) -> None:
    assert await vault.read("forge/alpha/GITLAB") is None
    assert await vault.write("forge/alpha/GITLAB", {"GIT_MIRROR_TOKEN": SECRET}) == 1
    assert backend.read_secret(MOUNT, "forge/alpha/GITLAB") == {"GIT_MIRROR_TOKEN": SECRET}
    assert await vault.read("/forge/alpha/GITLAB") == {"GIT_MIRROR_TOKEN": SECRET}
    assert await vault.write("forge/alpha/GITLAB", {"A": "b"}, cas=1) == 2
    with pytest.raises(ServiceError) as stale:
        await vault.write("forge/alpha/GITLAB", {"A": "c"}, cas=1)
    assert stale.value.failure is Failure.CONFLICT and stale.value.detail == "write forge-dso/forge/alpha/GITLAB"
    assert await vault.versions("forge/alpha/GITLAB") == 2
    assert await vault.versions("forge/alpha/nothing") is None

    # Values that are not strings come back as strings.
    backend.put_secret(MOUNT, "forge/alpha/NUM", {"PORT": 8080})
    assert await vault.read("forge/alpha/NUM") == {"PORT": "8080"}


async def test_other_mount(vault: Vault, backend: VaultBackend) -> None:
    backend.enable_kv2("alpha")
    await vault.write("app/db", {"PASSWORD": SECRET}, mount="alpha")
    assert backend.read_secret("alpha", "app/db") == {"PASSWORD": SECRET}
    assert await vault.read("app/db") is None
    assert await vault.read("app/db", mount="alpha") == {"PASSWORD": SECRET}


async def test_ensure_writes_only_differences(vault: Vault, backend: VaultBackend) -> None:
    created = await vault.ensure("forge/alpha/SONAR", {"SONAR_USERNAME": "alpha", "SONAR_TOKEN": SECRET})
    assert created == Ensured(1, True, "created secret forge-dso/forge/alpha/SONAR")
    again = await vault.ensure("forge/alpha/SONAR", {"SONAR_TOKEN": SECRET, "SONAR_USERNAME": "alpha"})
    assert again == Ensured(1, False, "")
    changed = await vault.ensure("forge/alpha/SONAR", {"SONAR_TOKEN": "new-" + SECRET})
    assert changed == Ensured(2, True, "updated secret forge-dso/forge/alpha/SONAR (SONAR_TOKEN, SONAR_USERNAME)")
    assert backend.read_secret(MOUNT, "forge/alpha/SONAR") == {"SONAR_TOKEN": "new-" + SECRET}
    assert_no_secret(created.what, changed.what)

    # A key whose last version was deleted is written again (check-and-set on its version).
    backend.put_secret(MOUNT, "forge/alpha/OLD", {"A": "1"})
    backend.kv.delete_latest_version_of_secret(path="forge/alpha/OLD", mount_point=MOUNT)
    assert await vault.read("forge/alpha/OLD") is None
    rewritten = await vault.ensure("forge/alpha/OLD", {"A": "1"})
    assert rewritten == Ensured(2, True, "created secret forge-dso/forge/alpha/OLD")


async def test_merge_keeps_other_keys(vault: Vault, backend: VaultBackend) -> None:
    backend.put_secret(MOUNT, "forge/alpha/GITLAB", {"GIT_MIRROR_TOKEN": SECRET, "PROJECT_SLUG": "alpha"})
    same = await vault.merge("forge/alpha/GITLAB", {"PROJECT_SLUG": "alpha"})
    assert same == Ensured(1, False, "")
    merged = await vault.merge("forge/alpha/GITLAB", {"GIT_MIRROR_PROJECT_ID": "12"})
    assert merged == Ensured(2, True, "updated secret forge-dso/forge/alpha/GITLAB (GIT_MIRROR_PROJECT_ID)")
    assert backend.read_secret(MOUNT, "forge/alpha/GITLAB") == {
        "GIT_MIRROR_TOKEN": SECRET,
        "PROJECT_SLUG": "alpha",
        "GIT_MIRROR_PROJECT_ID": "12",
    }
    fresh = await vault.merge("forge/beta/GITLAB", {"PROJECT_SLUG": "beta"})
    assert fresh == Ensured(1, True, "created secret forge-dso/forge/beta/GITLAB")


async def test_list_walk_versions_and_delete(vault: Vault, backend: VaultBackend) -> None:
    for path in (
        "forge/alpha/GITLAB",
        "forge/alpha/tech/GITLAB_MIRROR",
        "forge/alpha/app-mirror",
        "forge/beta/NEXUS",
    ):
        backend.put_secret(MOUNT, path, {"K": "v"})
    backend.put_secret(MOUNT, "forge/alpha/GITLAB", {"K": "w"})
    assert await vault.list() == ["forge/"]
    assert await vault.list("forge/alpha") == ["GITLAB", "app-mirror", "tech/"]
    assert await vault.list("forge/nothing") == []

    versions = await vault.key_versions(MOUNT)
    assert [(k, v) for k, v, _ in versions] == [
        ("forge/alpha/GITLAB", 2),
        ("forge/alpha/app-mirror", 1),
        ("forge/alpha/tech/GITLAB_MIRROR", 1),
        ("forge/beta/NEXUS", 1),
    ]
    assert all(updated.endswith("Z") for _, _, updated in versions)

    assert await vault.delete("forge/beta/NEXUS") is True
    assert backend.secret_metadata(MOUNT, "forge/beta/NEXUS") is None
    assert await vault.delete("forge/beta/NEXUS") is False

    assert await vault.delete_tree("forge/alpha/") == 3
    assert backend.list_paths(MOUNT) == []
    assert await vault.delete_tree("forge/alpha") == 0
    with pytest.raises(ValueError):
        await vault.delete_tree("/")


# --- mounts and policies ---------------------------------------------------------------------


async def test_kv2_mounts(vault: Vault, backend: VaultBackend) -> None:
    assert await vault.mount_exists("alpha") is False
    created = await vault.ensure_kv2_mount("alpha", "Application secrets of alpha")
    assert created == Ensured(None, True, "created KV v2 mount alpha")
    mount = backend.mounts()["alpha/"]
    assert mount["type"] == "kv" and mount["options"]["version"] == "2"
    assert mount["description"] == "Application secrets of alpha"
    assert await vault.ensure_kv2_mount("alpha", "Application secrets of alpha") == Ensured(None, False, "")
    assert await vault.ensure_kv2_mount("alpha") == Ensured(None, False, "")
    described = await vault.ensure_kv2_mount("alpha", "Secrets of alpha")
    assert described.changed and backend.mounts()["alpha/"]["description"] == "Secrets of alpha"
    assert await vault.mount_exists("alpha/") is True

    await vault.write("app/db", {"PASSWORD": SECRET}, mount="alpha")
    assert await vault.delete_mount("alpha") is True
    assert "alpha/" not in backend.mounts()
    assert await vault.delete_mount("alpha") is False

    backend.admin.sys.enable_secrets_engine("kv", path="legacy", options={"version": "1"})
    with pytest.raises(ServiceError) as caught:
        await vault.ensure_kv2_mount("legacy")
    assert caught.value.failure is Failure.CONFLICT and "not KV v2" in caught.value.detail


async def test_policies(vault: Vault, backend: VaultBackend) -> None:
    hcl = 'path "alpha/*" {\n  capabilities = ["create", "read", "update", "delete", "list"]\n}\n'
    created = await vault.ensure_policy("app--alpha--admin", hcl)
    assert created == Ensured(None, True, "created policy app--alpha--admin")
    assert backend.policy("app--alpha--admin") == hcl
    assert await vault.ensure_policy("app--alpha--admin", hcl.strip()) == Ensured(None, False, "")
    readonly = hcl.replace('"create", "read", "update", "delete", "list"', '"read"')
    updated = await vault.ensure_policy("app--alpha--admin", readonly)
    assert updated == Ensured(None, True, "updated policy app--alpha--admin")
    assert backend.policy("app--alpha--admin") == readonly
    assert await vault.delete_policy("app--alpha--admin") is True
    assert backend.policy("app--alpha--admin") is None
    assert await vault.delete_policy("app--alpha--admin") is False

    with pytest.raises(ServiceError) as invalid:
        await vault.ensure_policy("broken", 'path "x" { capabilities = ["fly"] }')
    assert invalid.value.failure is Failure.INVALID


# --- health and errors -----------------------------------------------------------------------


async def test_health(vault: Vault) -> None:
    health = await vault.health()
    assert health["initialized"] is True and health["sealed"] is False and health["version"]


async def test_sealed_and_down(emulator: VaultBackend) -> None:
    state = emulator.state
    assert state is not None
    vault = Vault(emulator.url, ROOT, timeout=5)
    state.sealed = True
    sealed = await vault.health()
    assert sealed["sealed"] is True
    with pytest.raises(ServiceError) as caught:
        await vault.read("forge/alpha/GITLAB")
    assert caught.value.failure is Failure.UNAVAILABLE
    state.sealed = False

    state.faults.down = True
    with pytest.raises(ServiceError) as down:
        await vault.health()
    assert down.value.failure is Failure.UNAVAILABLE and down.value.status == 503
    with pytest.raises(ServiceError) as down_read:
        await vault.read("forge/alpha/GITLAB")
    assert down_read.value.failure is Failure.UNAVAILABLE and down_read.value.service == "Vault"


# HashiCorp Vault's answers too: "invalid token" in its message must not be what the adapter relies on.
FLAVORS = ["emulator", "emulator-vault", pytest.param("openbao", marks=pytest.mark.real_server)]


@pytest.mark.parametrize("server_kind", FLAVORS)
async def test_a_refused_token_is_told_from_missing_rights(request: pytest.FixtureRequest, server_kind: str) -> None:
    with backend_for(request, server_kind) as backend:
        backend.put_secret(MOUNT, "forge/alpha/GITLAB", {"GIT_MIRROR_TOKEN": SECRET})
        unknown = Vault(backend.url, "s.not-a-token-of-this-server", timeout=5)
        with pytest.raises(ServiceError) as refused:
            await unknown.read("forge/alpha/GITLAB")
        assert refused.value.failure is Failure.UNAUTHORIZED and refused.value.status == 403
        assert "s.not-a-token" not in str(refused.value) + refused.value.detail

        backend.put_policy("beta-only", 'path "forge-dso/data/forge/beta/*" {\n  capabilities = ["read"]\n}\n')
        token = backend.create_token(["beta-only"])
        limited = Vault(backend.url, token, timeout=5)
        with pytest.raises(ServiceError) as denied:
            await limited.read("forge/alpha/GITLAB")
        assert denied.value.failure is Failure.FORBIDDEN and denied.value.status == 403
        assert_no_secret(str(denied.value), denied.value.detail, repr(denied.value))
        with pytest.raises(ServiceError) as denied_write:
            await limited.write("forge/alpha/GITLAB", {"GIT_MIRROR_TOKEN": SECRET})
        assert denied_write.value.failure is Failure.FORBIDDEN
        assert_no_secret(str(denied_write.value), denied_write.value.detail)

        backend.revoke(token)  # the same token, once revoked, is the bot's credentials refused
        with pytest.raises(ServiceError) as revoked:
            await limited.read("forge/beta/x")
        assert revoked.value.failure is Failure.UNAUTHORIZED


async def test_rate_limited(emulator: VaultBackend) -> None:
    assert emulator.state is not None
    vault = Vault(emulator.url, ROOT, timeout=5)
    emulator.state.faults.fail("GET /v1/forge-dso/data/*", 429, times=1)
    with pytest.raises(ServiceError) as caught:
        await vault.read("forge/alpha/GITLAB")
    assert caught.value.failure is Failure.RATE_LIMITED and caught.value.transient


async def test_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ServiceError) as caught:
        await Vault(f"http://127.0.0.1:{port}", ROOT, timeout=2).read("x")
    assert caught.value.failure is Failure.UNAVAILABLE and caught.value.detail.endswith("unreachable")


def test_ui_url() -> None:
    vault = Vault("https://vault.example.com/", ROOT)
    assert (
        vault.ui_url("forge/alpha/GITLAB")
        == "https://vault.example.com/ui/vault/secrets/forge-dso/kv/forge/alpha/GITLAB"
    )
    assert vault.ui_url(mount="alpha") == "https://vault.example.com/ui/vault/secrets/alpha/kv/list"
