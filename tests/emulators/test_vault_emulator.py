"""The Vault emulator, driven with hvac as the bot drives the real server."""

from __future__ import annotations

from collections.abc import Iterator

import hvac
import hvac.exceptions
import pytest
import requests

from services.emulators.base import EmulatorServer
from services.emulators.vault import State, create_app, glob_match, parse_policy

ROOT = "root-token-for-tests"
MOUNT = "forge-dso"
ALPHA_RO = """
# read-only access to project alpha's tool secrets
path "forge-dso/data/forge/projects/alpha/*" {
  capabilities = ["read"]
}
path "forge-dso/metadata/forge/projects/alpha/*" {
  capabilities = ["list", "read"]
}
"""


@pytest.fixture
def state() -> State:
    state = State(root_token=ROOT)
    state.enable_kv2(MOUNT)
    return state


@pytest.fixture
def server(state: State) -> Iterator[EmulatorServer]:
    with EmulatorServer(create_app(state), name="vault-emulator") as running:
        yield running


@pytest.fixture
def root(server: EmulatorServer) -> hvac.Client:
    return hvac.Client(url=server.url, token=ROOT)


@pytest.fixture
def kv(root: hvac.Client) -> hvac.api.secrets_engines.KvV2:
    return root.secrets.kv.v2


def client(server: EmulatorServer, token: str | None) -> hvac.Client:
    return hvac.Client(url=server.url, token=token)


# --------------------------------------------------------------------------- health & auth


def test_health_active_sealed_and_standby(server: EmulatorServer, state: State, root: hvac.Client) -> None:
    health = root.sys.read_health_status(method="GET")
    assert health["initialized"] is True and health["sealed"] is False
    assert health["version"]

    state.standby = True
    assert root.sys.read_health_status(method="GET").status_code == 429
    # What the console's monitor asks: a standby is healthy too.
    assert root.sys.read_health_status(method="GET", standby_ok=True)["standby"] is True

    state.standby = False
    state.sealed = True
    sealed = root.sys.read_health_status(method="GET")
    assert sealed.status_code == 503 and sealed.json()["sealed"] is True
    assert root.sys.read_health_status(method="HEAD").status_code == 503
    assert root.sys.is_sealed() is True
    with pytest.raises(hvac.exceptions.VaultDown, match="Vault is sealed"):
        root.secrets.kv.v2.read_secret("x", mount_point=MOUNT, raise_on_deleted_version=True)


def test_health_needs_no_token(server: EmulatorServer) -> None:
    response = requests.get(f"{server.url}/v1/sys/health", params={"standbyok": "true"}, timeout=5)
    assert response.status_code == 200
    assert requests.get(f"{server.url}/v1/sys/health?sealedcode=299", timeout=5).status_code == 200


def test_missing_or_unknown_token_is_forbidden(server: EmulatorServer) -> None:
    with pytest.raises(hvac.exceptions.Forbidden) as missing:
        client(server, None).secrets.kv.v2.read_secret("a", mount_point=MOUNT, raise_on_deleted_version=True)
    assert missing.value.errors == ["permission denied"]
    with pytest.raises(hvac.exceptions.Forbidden) as unknown:
        client(server, "hvs.nope").auth.token.lookup_self()
    assert unknown.value.errors == ["permission denied"]  # OpenBao: no "invalid token" (see test_vault_conformance)
    assert client(server, "hvs.nope").is_authenticated() is False


def test_bearer_header_is_accepted(server: EmulatorServer) -> None:
    response = requests.get(
        f"{server.url}/v1/auth/token/lookup-self", headers={"Authorization": f"Bearer {ROOT}"}, timeout=5
    )
    assert response.status_code == 200
    assert response.json()["data"]["policies"] == ["root"]


def test_lookup_self_of_root(root: hvac.Client) -> None:
    data = root.auth.token.lookup_self()["data"]
    assert data["id"] == ROOT
    assert data["policies"] == ["root"]
    assert data["path"] == "auth/token/root"
    assert data["expire_time"] is None and data["ttl"] == 0
    assert root.is_authenticated() is True


# --------------------------------------------------------------------------- KV v2


def test_create_read_update_with_cas(kv: hvac.api.secrets_engines.KvV2, state: State) -> None:
    path = "forge/projects/alpha/REGISTRY/ro-robot"
    written = kv.create_or_update_secret(path, {"HOST": "quay.io", "TOKEN": "t1"}, cas=0, mount_point=MOUNT)
    assert written["data"]["version"] == 1
    assert written["data"]["deletion_time"] == "" and written["data"]["destroyed"] is False

    read = kv.read_secret(path, mount_point=MOUNT, raise_on_deleted_version=True)
    assert read["data"]["data"] == {"HOST": "quay.io", "TOKEN": "t1"}
    assert read["data"]["metadata"]["version"] == 1
    assert set(read) >= {"request_id", "lease_id", "renewable", "lease_duration", "wrap_info", "warnings"}

    with pytest.raises(hvac.exceptions.InvalidRequest, match="check-and-set parameter did not match"):
        kv.create_or_update_secret(path, {"TOKEN": "t2"}, cas=0, mount_point=MOUNT)
    assert kv.create_or_update_secret(path, {"TOKEN": "t2"}, cas=1, mount_point=MOUNT)["data"]["version"] == 2
    kv.patch(path, {"HOST": "registry"}, mount_point=MOUNT)

    assert state.read_secret(MOUNT, path) == {"TOKEN": "t2", "HOST": "registry"}
    assert state.read_secret(MOUNT, path, version=1) == {"HOST": "quay.io", "TOKEN": "t1"}
    old = kv.read_secret_version(path, version=1, mount_point=MOUNT, raise_on_deleted_version=True)
    assert old["data"]["data"]["TOKEN"] == "t1"


def test_missing_secret_is_404_with_empty_errors(kv: hvac.api.secrets_engines.KvV2) -> None:
    with pytest.raises(hvac.exceptions.InvalidPath) as error:
        kv.read_secret("nope", mount_point=MOUNT, raise_on_deleted_version=True)
    assert error.value.errors == []
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret_metadata("nope", mount_point=MOUNT)


def test_seeded_secrets_are_listed_like_folders(kv: hvac.api.secrets_engines.KvV2, state: State) -> None:
    state.put_secret(MOUNT, "forge/projects/alpha/GITLAB", {"GIT_MIRROR_TOKEN": "x"})
    state.put_secret(MOUNT, "forge/projects/alpha/REGISTRY/ro-robot", {"TOKEN": "y"})
    state.put_secret(MOUNT, "forge/projects/beta/NEXUS", {"NEXUS_PASSWORD": "z"})

    assert kv.list_secrets("forge/projects", mount_point=MOUNT)["data"]["keys"] == ["alpha/", "beta/"]
    keys = kv.list_secrets("forge/projects/alpha", mount_point=MOUNT)["data"]["keys"]
    assert keys == ["GITLAB", "REGISTRY/"]
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.list_secrets("forge/projects/gamma", mount_point=MOUNT)
    assert state.list_paths(MOUNT) == [
        "forge/projects/alpha/GITLAB",
        "forge/projects/alpha/REGISTRY/ro-robot",
        "forge/projects/beta/NEXUS",
    ]


def test_list_with_get_query_parameter(server: EmulatorServer, state: State) -> None:
    state.put_secret(MOUNT, "a/b", {"k": "v"})
    strict = hvac.Client(url=server.url, token=ROOT, strict_http=True)
    assert strict.secrets.kv.v2.list_secrets("a", mount_point=MOUNT)["data"]["keys"] == ["b"]


def test_versions_soft_delete_undelete_destroy(kv: hvac.api.secrets_engines.KvV2, state: State) -> None:
    for value in ("v1", "v2", "v3"):
        kv.create_or_update_secret("app/db", {"password": value}, mount_point=MOUNT)

    kv.delete_latest_version_of_secret("app/db", mount_point=MOUNT)
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret("app/db", mount_point=MOUNT, raise_on_deleted_version=True)
    deleted = kv.read_secret("app/db", mount_point=MOUNT, raise_on_deleted_version=False)
    assert deleted["data"]["data"] is None and deleted["data"]["metadata"]["deletion_time"] != ""

    kv.undelete_secret_versions("app/db", versions=[3], mount_point=MOUNT)
    assert state.read_secret(MOUNT, "app/db") == {"password": "v3"}

    kv.delete_secret_versions("app/db", versions=[1], mount_point=MOUNT)
    kv.destroy_secret_versions("app/db", versions=[2], mount_point=MOUNT)
    versions = kv.read_secret_metadata("app/db", mount_point=MOUNT)["data"]["versions"]
    assert versions["1"]["deletion_time"] != "" and versions["2"]["destroyed"] is True
    assert state.read_secret(MOUNT, "app/db", version=2) is None

    kv.delete_metadata_and_all_versions("app/db", mount_point=MOUNT)
    assert state.list_paths(MOUNT) == []


def test_metadata_and_config(kv: hvac.api.secrets_engines.KvV2, state: State) -> None:
    kv.configure(max_versions=2, mount_point=MOUNT)
    assert kv.read_configuration(mount_point=MOUNT)["data"]["max_versions"] == 2
    for value in range(3):
        kv.create_or_update_secret("k", {"n": value}, mount_point=MOUNT)
    metadata = kv.read_secret_metadata("k", mount_point=MOUNT)["data"]
    assert metadata["current_version"] == 3 and metadata["oldest_version"] == 2
    assert sorted(metadata["versions"]) == ["2", "3"]

    kv.update_metadata("k", cas_required=True, custom_metadata={"owner": "alpha"}, mount_point=MOUNT)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="check-and-set parameter required"):
        kv.create_or_update_secret("k", {"n": 9}, mount_point=MOUNT)
    assert state.secret_metadata(MOUNT, "k")["custom_metadata"] == {"owner": "alpha"}  # type: ignore[index]


# --------------------------------------------------------------------------- mounts


def test_mount_lifecycle(root: hvac.Client, state: State) -> None:
    root.sys.enable_secrets_engine("kv", path="alpha", options={"version": "2"}, description="app secrets")
    mounts = root.sys.list_mounted_secrets_engines()["data"]
    assert mounts["alpha/"]["type"] == "kv" and mounts["alpha/"]["options"] == {"version": "2"}
    assert {"sys/", "cubbyhole/", "identity/", "forge-dso/"} <= set(mounts)
    assert root.sys.retrieve_mount_option("alpha", "version") == "2"
    assert root.sys.read_mount_configuration("alpha")["data"]["description"] == "app secrets"

    with pytest.raises(hvac.exceptions.InvalidRequest, match="path is already in use at alpha/"):
        root.sys.enable_secrets_engine("kv", path="alpha", options={"version": "2"})

    root.secrets.kv.v2.create_or_update_secret("s", {"a": "b"}, mount_point="alpha")
    root.sys.disable_secrets_engine("alpha")
    assert "alpha/" not in state.mount_paths()
    with pytest.raises(hvac.exceptions.InvalidPath, match="no handler for route"):
        root.secrets.kv.v2.read_secret("s", mount_point="alpha", raise_on_deleted_version=True)


def test_kv_version_1_mount(root: hvac.Client) -> None:
    root.sys.enable_secrets_engine("kv", path="legacy")
    root.secrets.kv.v1.create_or_update_secret("app/cfg", {"x": "1"}, mount_point="legacy")
    assert root.secrets.kv.v1.read_secret("app/cfg", mount_point="legacy")["data"] == {"x": "1"}
    assert root.secrets.kv.v1.list_secrets("app", mount_point="legacy")["data"]["keys"] == ["cfg"]


# --------------------------------------------------------------------------- policies & child tokens


def test_policy_crud(root: hvac.Client) -> None:
    root.sys.create_or_update_acl_policy("tech--alpha--ro", ALPHA_RO)
    assert root.sys.read_acl_policy("tech--alpha--ro")["data"]["policy"] == ALPHA_RO
    assert root.sys.list_acl_policies()["data"]["keys"] == ["default", "tech--alpha--ro", "root"]
    assert "tech--alpha--ro" in root.sys.list_policies()["data"]["policies"]

    with pytest.raises(hvac.exceptions.InvalidRequest, match="failed to parse policy"):
        root.sys.create_or_update_acl_policy("bad", 'path "x" { capabilities = ["fly"] }')
    with pytest.raises(hvac.exceptions.InvalidRequest):
        root.sys.delete_acl_policy("default")

    root.sys.delete_acl_policy("tech--alpha--ro")
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.sys.read_acl_policy("tech--alpha--ro")


def test_policy_limits_a_child_token(server: EmulatorServer, root: hvac.Client, state: State) -> None:
    state.put_secret(MOUNT, "forge/projects/alpha/REGISTRY/ro-robot", {"TOKEN": "alpha"})
    state.put_secret(MOUNT, "forge/projects/beta/REGISTRY/ro-robot", {"TOKEN": "beta"})
    root.sys.create_or_update_acl_policy("tech--alpha--ro", ALPHA_RO)
    auth = root.auth.token.create(policies=["tech--alpha--ro"], ttl="1h", display_name="alpha")["auth"]
    assert auth["policies"] == ["default", "tech--alpha--ro"]
    assert auth["lease_duration"] == 3600

    alpha = client(server, auth["client_token"]).secrets.kv.v2
    secret = alpha.read_secret(
        "forge/projects/alpha/REGISTRY/ro-robot", mount_point=MOUNT, raise_on_deleted_version=True
    )
    assert secret["data"]["data"] == {"TOKEN": "alpha"}
    assert alpha.list_secrets("forge/projects/alpha", mount_point=MOUNT)["data"]["keys"] == ["REGISTRY/"]

    with pytest.raises(hvac.exceptions.Forbidden):
        alpha.read_secret("forge/projects/beta/REGISTRY/ro-robot", mount_point=MOUNT, raise_on_deleted_version=True)
    with pytest.raises(hvac.exceptions.Forbidden):
        alpha.create_or_update_secret("forge/projects/alpha/NEW", {"a": "b"}, mount_point=MOUNT)
    with pytest.raises(hvac.exceptions.Forbidden):
        alpha.list_secrets("forge/projects", mount_point=MOUNT)
    with pytest.raises(hvac.exceptions.Forbidden):
        client(server, auth["client_token"]).sys.list_mounted_secrets_engines()
    with pytest.raises(hvac.exceptions.Forbidden):  # non-root: denied before "no handler"
        client(server, auth["client_token"]).secrets.kv.v2.read_secret(
            "x", mount_point="nowhere", raise_on_deleted_version=True
        )

    looked_up = client(server, auth["client_token"]).auth.token.lookup_self()["data"]
    assert looked_up["display_name"] == "token-alpha" and 0 < looked_up["ttl"] <= 3600


def test_create_needs_update_and_child_policies_must_be_a_subset(
    server: EmulatorServer, root: hvac.Client, state: State
) -> None:
    state.put_policy("writer", 'path "forge-dso/data/*" { capabilities = ["create"] }')
    state.put_policy("issuer", 'path "auth/token/create" { capabilities = ["update"] }')
    writer = client(server, state.create_token(["writer"]))
    writer.secrets.kv.v2.create_or_update_secret("new", {"a": "1"}, mount_point=MOUNT)
    with pytest.raises(hvac.exceptions.Forbidden):  # the key exists now: that needs "update"
        writer.secrets.kv.v2.create_or_update_secret("new", {"a": "2"}, mount_point=MOUNT)
    with pytest.raises(hvac.exceptions.Forbidden):  # no capability on auth/token/create
        writer.auth.token.create(policies=["writer"])

    issuer = client(server, state.create_token(["issuer", "writer"]))
    assert issuer.auth.token.create(policies=["writer"])["auth"]["policies"] == ["default", "writer"]
    with pytest.raises(hvac.exceptions.InvalidRequest, match="subset"):
        issuer.auth.token.create(policies=["root"])


def test_revoke_self_revokes_children_and_ttl_expires(server: EmulatorServer, root: hvac.Client, state: State) -> None:
    parent_token = root.auth.token.create(policies=["default"], ttl="10m")["auth"]["client_token"]
    orphan_token = root.auth.token.create(policies=["default"], no_parent=True)["auth"]["client_token"]
    state.put_policy("issuer", 'path "auth/token/create" { capabilities = ["update"] }')
    issuer_token = root.auth.token.create(policies=["issuer"])["auth"]["client_token"]
    child_token = client(server, issuer_token).auth.token.create(policies=["default"])["auth"]["client_token"]

    client(server, issuer_token).auth.token.revoke_self()
    assert not state.token_valid(issuer_token) and not state.token_valid(child_token)
    with pytest.raises(hvac.exceptions.Forbidden):
        client(server, child_token).auth.token.lookup_self()

    state.advance_clock(601)
    with pytest.raises(hvac.exceptions.Forbidden):
        client(server, parent_token).auth.token.lookup_self()
    assert client(server, orphan_token).auth.token.lookup_self()["data"]["orphan"] is True


def test_capabilities_self(server: EmulatorServer, state: State) -> None:
    state.put_policy("tech--alpha--ro", ALPHA_RO)
    token = client(server, state.create_token(["tech--alpha--ro"]))
    caps = token.sys.get_capabilities(["forge-dso/data/forge/projects/alpha/GITLAB"])
    assert caps["capabilities"] == ["read"]
    assert token.sys.get_capabilities(["forge-dso/data/other"])["capabilities"] == ["deny"]


def test_policy_matching_rules() -> None:
    assert glob_match("secret/+/config", "secret/alpha/config")
    assert not glob_match("secret/+/config", "secret/alpha/beta/config")
    assert glob_match("secret/data/*", "secret/data/a/b")
    rules = parse_policy('{"path": {"a/*": {"capabilities": ["read"]}, "a/b": {"policy": "deny"}}}')
    assert {rule.pattern: rule.capabilities for rule in rules} == {
        "a/*": frozenset({"read"}),
        "a/b": frozenset({"deny"}),
    }


# --------------------------------------------------------------------------- faults


def test_faults_make_hvac_raise(root: hvac.Client, state: State) -> None:
    state.faults.fail("GET /v1/forge-dso/data/*", 500, times=1)
    with pytest.raises(hvac.exceptions.InternalServerError):
        root.secrets.kv.v2.read_secret("a", mount_point=MOUNT, raise_on_deleted_version=True)
    state.faults.down = True
    with pytest.raises(hvac.exceptions.VaultDown):
        root.auth.token.lookup_self()
