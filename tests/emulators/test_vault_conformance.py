"""The Vault emulator refuses what OpenBao refuses, with the same status and body.

Each rule is written once, from the real server's side (``bao server -dev`` 2.7.2, the answers
below were read from it), and checked against the emulator and, marked ``real_server``,
against the real OpenBao itself, so the expectation cannot drift from the server.
Source: ``openbao/openbao:vault/request_handling.go`` (``fetchACLTokenEntryAndEntity`` answers a
missing or unknown token with the bare ``logical.ErrPermissionDenied``; ``CheckToken`` appends it
to a go-multierror when the token's policies refuse the path), ``sdk/logical/error.go``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.vault_backends import VaultBackend, backend_for

BARE = ["permission denied"]
ACL = ["1 error occurred:\n\t* permission denied\n\n"]
TARGETS = ["emulator", pytest.param("openbao", marks=pytest.mark.real_server)]


@dataclass(frozen=True)
class Rule:
    token: str  # none, unknown, revoked, limited (reads forge-dso beta/ only), no-default
    method: str
    path: str
    status: int
    errors: list[str] | None  # None: a success, whose body is not compared


RULES = {
    "no token": Rule("none", "GET", "forge-dso/data/alpha/x", 403, BARE),
    "an unknown token": Rule("unknown", "GET", "forge-dso/data/alpha/x", 403, BARE),
    "a revoked token": Rule("revoked", "GET", "forge-dso/data/beta/x", 403, BARE),
    "an unknown token looking itself up": Rule("unknown", "GET", "auth/token/lookup-self", 403, BARE),
    "a path the policies do not grant": Rule("limited", "GET", "forge-dso/data/alpha/x", 403, ACL),
    "a write the policies do not grant": Rule("limited", "POST", "forge-dso/data/beta/x", 403, ACL),
    "a granted path that holds nothing": Rule("limited", "GET", "forge-dso/data/beta/x", 404, []),
    "a live token looking itself up": Rule("limited", "GET", "auth/token/lookup-self", 200, None),
    "a token without the default policy looking itself up": Rule(
        "no-default", "GET", "auth/token/lookup-self", 403, ACL
    ),
}


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest) -> Iterator[VaultBackend]:
    with backend_for(request, request.param) as backend:
        backend.put_policy("beta-read", 'path "forge-dso/data/beta/*" {\n  capabilities = ["read"]\n}\n')
        yield backend


def token_for(backend: VaultBackend, kind: str) -> str | None:
    if kind == "none":
        return None
    if kind == "unknown":
        return "s.NotATokenOfThisServer00000"
    if kind == "no-default":
        return backend.create_token(["beta-read"], no_default_policy=True)
    token = backend.create_token(["beta-read"])
    if kind == "revoked":
        backend.revoke(token)
    return token


@pytest.mark.parametrize("rule", list(RULES.values()), ids=list(RULES))
def test_refusals_are_answered_as_openbao_does(target: VaultBackend, rule: Rule) -> None:
    token = token_for(target, rule.token)
    headers = {"X-Vault-Token": token} if token else {}
    body = {"data": {"k": "v"}} if rule.method == "POST" else None
    answer = httpx.request(rule.method, f"{target.url}/v1/{rule.path}", headers=headers, json=body, timeout=5)
    assert answer.status_code == rule.status, answer.text
    if rule.errors is not None:
        assert answer.json() == {"errors": rule.errors}


def test_tokens_look_like_openbao_ones(target: VaultBackend) -> None:
    # OpenBao service tokens are "s." + 24 characters (HashiCorp Vault's are "hvs." + more).
    token = target.create_token(["beta-read"])
    assert token.startswith("s.") and len(token) == 26


# -- the shapes of the answers: the same calls on both, compared key by key ------------------------

CALLS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "forge-dso/data/forge/alpha/GITLAB", {"data": {"K": "v"}}),
    ("GET", "forge-dso/data/forge/alpha/GITLAB", None),
    ("POST", "forge-dso/data/forge/alpha/GITLAB", {"data": {"K": "w"}, "options": {"cas": 7}}),
    ("GET", "forge-dso/metadata/forge/alpha/GITLAB", None),
    ("LIST", "forge-dso/metadata/forge", None),
    ("LIST", "forge-dso/metadata/nothing-here", None),
    ("DELETE", "forge-dso/metadata/forge/alpha/GITLAB", None),
    ("GET", "forge-dso/data/forge/alpha/GITLAB", None),
    ("GET", "auth/token/lookup-self", None),
    ("POST", "auth/token/create", {"policies": ["default"]}),
    ("POST", "auth/token/revoke", {}),
    ("GET", "sys/mounts", None),
    ("POST", "sys/mounts/alpha", {"type": "kv", "options": {"version": "2"}}),
    ("POST", "sys/mounts/alpha", {"type": "kv", "options": {"version": "2"}}),
    ("GET", "sys/mounts/alpha/tune", None),
    ("POST", "sys/policies/acl/app--alpha--admin", {"policy": 'path "alpha/*" {\n  capabilities = ["read"]\n}'}),
    ("GET", "sys/policies/acl/app--alpha--admin", None),
    ("GET", "sys/policies/acl/nothing-here", None),
    ("LIST", "sys/policies/acl", None),
    ("POST", "sys/capabilities-self", {"paths": ["forge-dso/data/x"]}),
    ("GET", "sys/health", None),
]


def shape(value: Any, depth: int = 0) -> Any:
    """Keys and value types, not values (ids, times); errors are compared word for word."""
    if isinstance(value, dict):
        if depth == 2:
            return "dict"  # mount listings, versions: keyed by names, not a fixed shape
        return {k: v if k == "errors" else shape(v, depth + 1) for k, v in value.items() if not k.endswith("/")}
    return type(value).__name__


def answers(backend: VaultBackend) -> list[tuple[str, int, Any]]:
    found = []
    with httpx.Client(base_url=f"{backend.url}/v1", headers={"X-Vault-Token": backend.root_token}) as api:
        for method, path, body in CALLS:
            answer = api.request(method, path, json=body)
            parsed = answer.json() if answer.content else None
            found.append((f"{method} {path}", answer.status_code, shape(parsed)))
    return found


@pytest.mark.real_server
def test_the_emulator_answers_with_openbaos_shapes(request: pytest.FixtureRequest) -> None:
    with backend_for(request, "openbao") as real, backend_for(request, "emulator") as emulator:
        expected, found = answers(real), answers(emulator)
    for want, got in zip(expected, found, strict=True):
        assert got == want
