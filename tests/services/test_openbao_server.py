"""The real OpenBao the suite runs against: what a reset leaves, so tests start from the same place."""

from __future__ import annotations

import httpx
import pytest

from tests.support.real_servers import OpenBao

pytestmark = pytest.mark.real_server


def test_a_reset_leaves_the_dev_servers_mounts_and_the_platforms_kv(openbao: OpenBao) -> None:
    api = openbao.client
    mounts = api.get("/sys/mounts").json()["data"]
    assert set(mounts) == {"cubbyhole/", "identity/", "sys/", "secret/", "forge-dso/"}
    for kv in ("secret/", "forge-dso/"):  # the dev server's own KV and the platform's (platform-facts §3.2)
        assert mounts[kv]["type"] == "kv" and mounts[kv]["options"]["version"] == "2"
    assert openbao.version().startswith("2.")


def test_a_reset_undoes_what_a_test_made(openbao: OpenBao) -> None:
    api = openbao.client
    assert api.post("/sys/mounts/alpha", json={"type": "kv-v2"}).status_code == 204
    assert api.post("/sys/policies/acl/app--alpha--admin", json={"policy": 'path "alpha/*" {}'}).status_code == 204
    api.post("/forge-dso/data/forge/alpha/GITLAB", json={"data": {"K": "v"}}).raise_for_status()
    token = api.post("/auth/token/create", json={"policies": ["default"]}).json()["auth"]["client_token"]

    openbao.claim()

    assert "alpha/" not in api.get("/sys/mounts").json()["data"]
    assert api.request("LIST", "/sys/policies/acl").json()["data"]["keys"] == ["default", "root"]
    assert api.get("/forge-dso/data/forge/alpha/GITLAB").status_code == 404
    lookup = httpx.get(f"{openbao.url}/v1/auth/token/lookup-self", headers={"X-Vault-Token": token}, timeout=5)
    assert lookup.status_code == 403
    assert api.get("/auth/token/lookup-self").status_code == 200  # the root token stays


def test_a_new_claim_releases_the_previous_holder(openbao: OpenBao) -> None:
    released: list[str] = []
    openbao.hold(lambda: released.append("first"))
    openbao.claim()
    assert released == ["first"]
