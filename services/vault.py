"""Vault, as the bot's token sees it: a thin typed layer over hvac (KV v2, mounts, ACL policies).

hvac is blocking (requests), so every call runs in a worker thread through
:func:`~services.base.in_thread`. Paths are relative to a KV v2 mount; ``mount=None`` means the
platform's mount (``forge-dso``). Secret values are returned to the caller and never appear in an
:class:`~services.base.Ensured` ``what`` nor in a :class:`~services.errors.ServiceError` (only
key names and paths do).
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Callable
from typing import Any, TypeVar

import hvac
import hvac.exceptions as hvac_errors
import requests

from services.base import Ensured, in_thread, unchanged
from services.errors import Failure, ServiceError

SERVICE = "Vault"
T = TypeVar("T")
Json = dict[str, Any]

_FAILURES: list[tuple[type[Exception], Failure, int | None]] = [
    (hvac_errors.InvalidRequest, Failure.INVALID, 400),
    (hvac_errors.Unauthorized, Failure.UNAUTHORIZED, 401),
    (hvac_errors.Forbidden, Failure.FORBIDDEN, 403),
    (hvac_errors.InvalidPath, Failure.NOT_FOUND, 404),
    (hvac_errors.UnsupportedOperation, Failure.INVALID, 405),
    (hvac_errors.PreconditionFailed, Failure.CONFLICT, 412),
    (hvac_errors.RateLimitExceeded, Failure.RATE_LIMITED, 429),
    (hvac_errors.InternalServerError, Failure.UNAVAILABLE, 500),
    (hvac_errors.VaultNotInitialized, Failure.UNAVAILABLE, 501),
    (hvac_errors.BadGateway, Failure.UNAVAILABLE, 502),
    (hvac_errors.VaultDown, Failure.UNAVAILABLE, 503),
]
CAS_MISMATCH = "check-and-set parameter did not match"


def _failure(exc: hvac_errors.VaultError) -> tuple[Failure, int | None]:
    errors = " ".join(str(e) for e in (exc.errors or []))
    for kind, failure, status in _FAILURES:
        if isinstance(exc, kind):
            if failure is Failure.INVALID and CAS_MISMATCH in errors:
                return Failure.CONFLICT, status
            return failure, status
    return Failure.UNAVAILABLE, None


def _strings(data: Any) -> dict[str, str]:
    if not isinstance(data, dict):
        return {}
    return {str(k): v if isinstance(v, str) else str(v) for k, v in data.items()}


class Vault:
    def __init__(self, url: str, token: str, kv_mount: str = "forge-dso", timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.kv_mount = kv_mount.strip("/")
        self.timeout = timeout
        self.client = hvac.Client(url=self.url, token=token, timeout=timeout)

    async def close(self) -> None:
        await in_thread(SERVICE, self.client.adapter.close, self.timeout)

    def ui_url(self, path: str = "", mount: str | None = None) -> str:
        """The web UI page of a secret (or of the mount's root), for links shown to users."""
        base = f"{self.url}/ui/vault/secrets/{self._mount(mount)}"
        path = path.strip("/")
        return f"{base}/kv/{path}" if path else f"{base}/kv/list"

    # -- plumbing -------------------------------------------------------------------------------

    def _mount(self, mount: str | None) -> str:
        return (mount or self.kv_mount).strip("/")

    async def _call(self, what: str, call: Callable[[], T]) -> T:
        """Run a blocking hvac call; ``what`` (a path, never a value) becomes the error's detail."""

        def guarded() -> T:
            try:
                return call()
            except hvac_errors.VaultError as exc:
                failure, status = _failure(exc)
                if failure is Failure.FORBIDDEN and not self._token_accepted():
                    failure = Failure.UNAUTHORIZED
                raise ServiceError(SERVICE, failure, status, detail=what) from None
            except requests.Timeout:
                raise ServiceError(SERVICE, Failure.UNAVAILABLE, detail=f"{what}: timeout") from None
            except requests.RequestException:
                raise ServiceError(SERVICE, Failure.UNAVAILABLE, detail=f"{what}: unreachable") from None

        return await in_thread(SERVICE, guarded, self.timeout + 1.0)

    def _token_accepted(self) -> bool:
        """After a 403: is it the token itself that is refused, or only this path?

        Both answer 403 ``permission denied``; only HashiCorp Vault adds ``invalid token`` for a
        bad token, OpenBao does not (``openbao/openbao:vault/request_handling.go``,
        ``fetchACLTokenEntryAndEntity``). ``auth/token/lookup-self`` tells them apart whatever
        the server: every live token may read it (the ``default`` policy). Anything but a 403
        there (an outage, say) keeps the first answer: the bot lacks rights.
        """
        try:
            self.client.auth.token.lookup_self()
        except hvac_errors.Forbidden:
            return False
        except (hvac_errors.VaultError, requests.RequestException):
            return True
        return True

    async def _maybe(self, what: str, call: Callable[[], T]) -> T | None:
        """Like ``_call`` but a 404 gives None."""
        try:
            return await self._call(what, call)
        except ServiceError as exc:
            if exc.failure is Failure.NOT_FOUND:
                return None
            raise

    @property
    def _kv(self) -> Any:
        return self.client.secrets.kv.v2

    # -- KV v2 ----------------------------------------------------------------------------------

    async def _current(self, path: str, mount: str | None) -> tuple[dict[str, str] | None, int]:
        """The live data of a key (None if absent or its last version deleted) and its version."""
        where = self._mount(mount)
        answer = await self._maybe(
            f"read {where}/{path}",
            lambda: self._kv.read_secret_version(path=path, mount_point=where, raise_on_deleted_version=True),
        )
        if answer is not None:
            body = answer["data"]
            return _strings(body.get("data")), int(body.get("metadata", {}).get("version") or 0)
        return None, await self.versions(path, mount) or 0

    async def read(self, path: str, mount: str | None = None) -> dict[str, str] | None:
        """The current data of a secret, or None if it does not exist (or was deleted)."""
        data, _ = await self._current(path.strip("/"), mount)
        return data

    async def write(self, path: str, data: dict[str, str], mount: str | None = None, cas: int | None = None) -> int:
        """Write a new version (check-and-set on ``cas`` if given: 0 = only if absent); returns it."""
        where, key = self._mount(mount), path.strip("/")
        answer = await self._call(
            f"write {where}/{key}",
            lambda: self._kv.create_or_update_secret(path=key, secret=dict(data), cas=cas, mount_point=where),
        )
        return int(answer["data"]["version"])

    async def ensure(self, path: str, data: dict[str, str], mount: str | None = None) -> Ensured[int]:
        """The secret holds exactly ``data``; written (check-and-set) only if it differs."""
        key = path.strip("/")
        current, version = await self._current(key, mount)
        if current == data:
            return unchanged(version)
        new = await self.write(key, data, mount, cas=version)
        return Ensured(new, True, self._describe(key, mount, current, data))

    async def merge(self, path: str, data: dict[str, str], mount: str | None = None) -> Ensured[int]:
        """The secret holds ``data`` on top of its other keys; written only if something differs."""
        key = path.strip("/")
        current, version = await self._current(key, mount)
        merged = {**(current or {}), **data}
        if current == merged:
            return unchanged(version)
        new = await self.write(key, merged, mount, cas=version)
        return Ensured(new, True, self._describe(key, mount, current, merged))

    def _describe(self, key: str, mount: str | None, before: dict[str, str] | None, after: dict[str, str]) -> str:
        where = f"{self._mount(mount)}/{key}"
        if before is None:
            return f"created secret {where}"
        names = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        return f"updated secret {where} ({', '.join(names)})"

    async def list(self, path: str = "", mount: str | None = None) -> builtins.list[str]:
        """Keys under ``path`` (folders end with ``/``); [] when there is nothing there."""
        where, folder = self._mount(mount), path.strip("/")
        answer = await self._maybe(
            f"list {where}/{folder}", lambda: self._kv.list_secrets(path=folder, mount_point=where)
        )
        if answer is None:
            return []
        return sorted(str(k) for k in answer["data"].get("keys") or [])

    async def _metadata(self, path: str, mount: str | None) -> Json | None:
        where, key = self._mount(mount), path.strip("/")
        answer = await self._maybe(
            f"read metadata of {where}/{key}",
            lambda: self._kv.read_secret_metadata(path=key, mount_point=where),
        )
        return answer["data"] if answer is not None else None

    async def versions(self, path: str, mount: str | None = None) -> int | None:
        """The current version of a key (from its metadata); None if the key does not exist."""
        metadata = await self._metadata(path, mount)
        return int(metadata.get("current_version") or 0) if metadata is not None else None

    async def _walk(self, prefix: str, mount: str | None) -> builtins.list[str]:
        """Every key under ``prefix`` (a folder, "" for the whole mount), recursively, sorted."""
        keys: builtins.list[str] = []
        folders = [prefix.strip("/")]
        while folders:
            folder = folders.pop()
            for entry in await self.list(folder, mount):
                full = f"{folder}/{entry}" if folder else entry
                if entry.endswith("/"):
                    folders.append(full.rstrip("/"))
                else:
                    keys.append(full)
        return sorted(keys)

    async def key_versions(self, mount: str | None = None) -> builtins.list[tuple[str, int, str]]:
        """Every key of a mount with its current version and last update time, sorted by path."""
        keys = await self._walk("", mount)
        limit = asyncio.Semaphore(8)

        async def one(key: str) -> tuple[str, int, str] | None:
            async with limit:
                metadata = await self._metadata(key, mount)
            if metadata is None:
                return None  # deleted meanwhile
            return key, int(metadata.get("current_version") or 0), str(metadata.get("updated_time") or "")

        found = await asyncio.gather(*(one(k) for k in keys))
        return [entry for entry in found if entry is not None]

    async def delete(self, path: str, mount: str | None = None) -> bool:
        """Delete a key with all its versions and metadata; False if it did not exist."""
        where, key = self._mount(mount), path.strip("/")
        if await self._metadata(key, mount) is None:
            return False
        await self._call(
            f"delete {where}/{key}",
            lambda: self._kv.delete_metadata_and_all_versions(path=key, mount_point=where),
        )
        return True

    async def delete_tree(self, prefix: str, mount: str | None = None) -> int:
        """Delete every key under the folder ``prefix`` (recursively); returns how many."""
        if not prefix.strip("/"):
            raise ValueError("delete_tree needs a folder; to remove a whole mount use delete_mount")
        count = 0
        for key in await self._walk(prefix, mount):
            if await self.delete(key, mount):
                count += 1
        return count

    # -- mounts ---------------------------------------------------------------------------------

    async def _mounts(self) -> Json:
        answer = await self._call("list mounts", self.client.sys.list_mounted_secrets_engines)
        mounts = answer.get("data", answer)
        return mounts if isinstance(mounts, dict) else {}

    async def mount_exists(self, mount: str) -> bool:
        return f"{mount.strip('/')}/" in await self._mounts()

    async def ensure_kv2_mount(self, mount: str, description: str = "") -> Ensured[None]:
        """A KV v2 engine at ``mount``; its description fixed if a different one is given."""
        name = mount.strip("/")
        existing = (await self._mounts()).get(f"{name}/")
        if existing is None:
            await self._call(
                f"enable mount {name}",
                lambda: self.client.sys.enable_secrets_engine(
                    backend_type="kv", path=name, description=description, options={"version": "2"}
                ),
            )
            return Ensured(None, True, f"created KV v2 mount {name}")
        options = existing.get("options") or {}
        if existing.get("type") != "kv" or str(options.get("version")) != "2":
            raise ServiceError(SERVICE, Failure.CONFLICT, detail=f"mount {name} exists and is not KV v2")
        if description and existing.get("description") != description:
            await self._call(
                f"tune mount {name}",
                lambda: self.client.sys.tune_mount_configuration(path=name, description=description),
            )
            return Ensured(None, True, f"updated description of mount {name}")
        return unchanged(None)

    async def delete_mount(self, mount: str) -> bool:
        """Disable a secrets engine (everything in it is lost); False if nothing was mounted there."""
        name = mount.strip("/")
        if not await self.mount_exists(name):
            return False
        await self._call(f"disable mount {name}", lambda: self.client.sys.disable_secrets_engine(path=name))
        return True

    # -- policies -------------------------------------------------------------------------------

    async def _policy_text(self, name: str) -> str | None:
        answer = await self._maybe(f"read policy {name}", lambda: self.client.sys.read_acl_policy(name=name))
        if answer is None:
            return None
        return str(answer.get("data", {}).get("policy") or "")

    async def ensure_policy(self, name: str, hcl: str) -> Ensured[None]:
        """The ACL policy ``name`` holds ``hcl`` (compared without surrounding blank space)."""
        current = await self._policy_text(name)
        if current is not None and current.strip() == hcl.strip():
            return unchanged(None)
        await self._call(
            f"write policy {name}", lambda: self.client.sys.create_or_update_acl_policy(name=name, policy=hcl)
        )
        return Ensured(None, True, f"{'created' if current is None else 'updated'} policy {name}")

    async def delete_policy(self, name: str) -> bool:
        if await self._policy_text(name) is None:
            return False
        await self._call(f"delete policy {name}", lambda: self.client.sys.delete_acl_policy(name=name))
        return True

    # -- health ---------------------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """``sys/health``: ``initialized``, ``sealed``, ``standby``, ``version``… (also when sealed)."""

        def read() -> Any:
            return self.client.sys.read_health_status(method="GET")

        answer = await self._call("read health", read)
        if isinstance(answer, requests.Response):
            # A sealed, standby or uninitialised Vault answers non-200 with the same body.
            try:
                body = answer.json()
            except ValueError:
                body = None
            if not isinstance(body, dict) or "initialized" not in body:
                raise ServiceError(SERVICE, Failure.UNAVAILABLE, answer.status_code, detail="read health")
            return body
        return dict(answer)
