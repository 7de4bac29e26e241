"""Argo CD (API v1, argocd-server's grpc-gateway) for the projects' deployments.

Log in with ``POST /api/v1/session`` (username, password) → a session JWT, cached and renewed once
when a call answers 401. Two argocd-server behaviours matter:

- getting (or acting on) an application that does not exist answers 403 "permission denied"
  (code 7) unless the request names the application's ``project``; the adapter tells a missing
  application from a real refusal by listing applications by name;
- an AppProject is a Kubernetes object: ``PUT`` needs its current ``metadata.resourceVersion``
  and replaces the whole object, metadata included;
- a cascade delete only marks an application (finalizer, ``deletionTimestamp``): it is gone,
  and its AppProject deletable, once the controller has pruned its resources;
- ``GET …?refresh=`` answers once the controller has reconciled: it gets its own, longer timeout.
"""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any, Literal
from urllib.parse import quote

import httpx

from services.base import Ensured, HttpService
from services.errors import Failure, ServiceError

SERVICE = "ArgoCD"
IN_CLUSTER = "https://kubernetes.default.svc"
Json = dict[str, Any]


def _q(part: str) -> str:
    return quote(part, safe="")


def _grpc_code(response: httpx.Response) -> int | None:
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, int) else None


def _grpc_message(response: httpx.Response) -> str:
    """grpc-gateway's ``message``, for matching only: never shown (it may name accounts)."""
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("message") or "") if isinstance(body, dict) else ""


def _refusal(response: httpx.Response) -> Failure:
    """400 FailedPrecondition (an operation runs, auto-sync is on) is a CONFLICT; else INVALID."""
    return Failure.CONFLICT if _grpc_code(response) == 9 else Failure.INVALID


Refusal = Literal["sync_window", "override", "auto_sync", "running", "deleting", "other"]


class SyncRefused(ServiceError):
    """Argo CD refused to start a sync, and why (``kind``), so that each gets its own message.

    server/application/application.go Sync: a sync window is PermissionDenied "cannot sync: blocked
    by sync window" (before 2.5 "Cannot sync: Blocked by sync window"); a revision other than the
    target without the ``override`` action (requireOverridePrivilegeForRevisionSync) is
    PermissionDenied "permission denied: applications, override, …"; a revision other than the target
    under auto-sync is FailedPrecondition "Cannot sync to …: auto-sync currently set to …"; an
    operation already running, or an application being deleted, FailedPrecondition too.
    """

    def __init__(self, kind: Refusal, failure: Failure, status: int, name: str) -> None:
        super().__init__(SERVICE, failure, status, detail=f"cannot sync {name}: {kind}")
        self.kind: Refusal = kind


def _sync_refusal(response: httpx.Response, name: str) -> SyncRefused:
    message = _grpc_message(response).lower()
    if response.status_code == 403:
        if "sync window" in message:
            return SyncRefused("sync_window", Failure.FORBIDDEN, 403, name)
        if message.startswith("permission denied: applications, override"):
            return SyncRefused("override", Failure.FORBIDDEN, 403, name)
        return SyncRefused("other", Failure.FORBIDDEN, 403, name)
    failure = _refusal(response)
    if "auto-sync currently set" in message:
        return SyncRefused("auto_sync", failure, response.status_code, name)
    if "another operation is already in progress" in message:
        return SyncRefused("running", failure, response.status_code, name)
    if "application is deleting" in message:
        return SyncRefused("deleting", failure, response.status_code, name)
    return SyncRefused("other", failure, response.status_code, name)


def automated(app: Json) -> bool:
    """Whether automated sync is on (``spec.syncPolicy.automated``, absent or ``enabled: false`` off)."""
    policy = ((app.get("spec") or {}).get("syncPolicy") or {}).get("automated")
    return isinstance(policy, dict) and policy.get("enabled", True) is not False


class ArgoCD(HttpService):
    service = SERVICE

    def __init__(
        self, url: str, username: str, password: str, timeout: float = 10.0, refresh_timeout: float = 60.0
    ) -> None:
        super().__init__(url, timeout)
        self.url = self.base_url
        self.refresh_timeout = refresh_timeout
        self._username = username
        self._password = password
        self._token: str | None = None
        self._login_lock = asyncio.Lock()

    # -- session --------------------------------------------------------------------------------

    async def _login(self, stale: str | None) -> str:
        async with self._login_lock:
            if self._token is not None and self._token != stale:
                return self._token  # another call renewed it meanwhile
            response = await super().request(
                "POST", "/api/v1/session", json={"username": self._username, "password": self._password}
            )
            token = str(response.json().get("token") or "")
            if not token:
                raise ServiceError(SERVICE, Failure.UNAUTHORIZED, response.status_code, detail="no session token")
            self._token = token
            return token

    async def call(self, method: str, path: str, *, allow: tuple[int, ...] = (), **kwargs: Any) -> httpx.Response:
        """An authenticated request; a 401 renews the session once and retries."""
        token = self._token or await self._login(None)
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {token}"}
            response = await super().request(method, path, allow=(401, *allow), headers=headers, **kwargs)
            if response.status_code != 401:
                return response
            if attempt == 1:
                token = await self._login(token)
        raise ServiceError(SERVICE, Failure.UNAUTHORIZED, 401, detail="session refused")

    # -- projects -------------------------------------------------------------------------------

    async def get_project(self, name: str) -> Json | None:
        response = await self.call("GET", f"/api/v1/projects/{_q(name)}", allow=(404,))
        if response.status_code == 404:
            return None
        project: Json = response.json()
        return project

    async def ensure_project(
        self,
        name: str,
        source_repos: list[str],
        destinations: list[tuple[str, str]],
        description: str = "",
    ) -> Ensured[None]:
        """An AppProject allowed to deploy only from ``source_repos`` to ``destinations``
        (``(server, namespace)`` pairs, globs allowed). Other spec fields are kept."""
        wanted: Json = {
            "sourceRepos": list(source_repos),
            "destinations": [{"server": server, "namespace": namespace} for server, namespace in destinations],
        }
        if description:
            wanted["description"] = description
        current = await self.get_project(name)
        if current is None:
            body = {"project": {"metadata": {"name": name}, "spec": wanted}}
            response = await self.call("POST", "/api/v1/projects", json=body, allow=(400,))
            if response.status_code == 400:
                raise ServiceError(SERVICE, Failure.INVALID, 400, detail=f"cannot create project {name}")
            return Ensured(None, True, f"created ArgoCD project {name}")
        spec = dict(current.get("spec") or {})
        if _same_project(spec, wanted):
            return Ensured(None, False, "")
        spec.update(wanted)
        # server/project/project.go Update is a Kubernetes Update of the whole AppProject: the
        # labels, annotations and finalizers an admin set must be sent back or they are dropped.
        metadata = {k: v for k, v in (current.get("metadata") or {}).items() if k != "managedFields"}
        metadata["name"] = name
        body = {"project": {"metadata": metadata, "spec": spec}}
        response = await self.call("PUT", f"/api/v1/projects/{_q(name)}", json=body, allow=(400,))
        if response.status_code == 400:
            raise ServiceError(SERVICE, Failure.INVALID, 400, detail=f"cannot update project {name}")
        return Ensured(None, True, f"updated ArgoCD project {name}")

    async def delete_project(self, name: str) -> bool:
        """False when absent; INVALID while applications still use it."""
        response = await self.call("DELETE", f"/api/v1/projects/{_q(name)}", allow=(400, 404))
        if response.status_code == 400:
            raise ServiceError(SERVICE, Failure.INVALID, 400, detail=f"project {name} still has applications")
        return response.status_code != 404

    # -- applications ---------------------------------------------------------------------------

    async def _listed(self, name: str) -> Json | None:
        response = await self.call("GET", "/api/v1/applications", params={"name": name})
        for app in response.json().get("items") or []:
            if (app.get("metadata") or {}).get("name") == name:
                found: Json = app
                return found
        return None

    async def _app_call(
        self, method: str, name: str, suffix: str = "", *, allow: tuple[int, ...] = (), **kwargs: Any
    ) -> httpx.Response | None:
        """A call on application ``name``; None when the application does not exist.

        A 403 of an existing application is returned when 403 is in ``allow``, raised otherwise."""
        path = f"/api/v1/applications/{_q(name)}{suffix}"
        response = await self.call(method, path, allow=(403, 404, *allow), **kwargs)
        if response.status_code == 404:
            return None
        if response.status_code == 403:
            if _grpc_code(response) == 7 and await self._listed(name) is None:
                return None  # argocd-server hides a missing application behind "permission denied"
            if 403 not in allow:
                raise ServiceError(SERVICE, Failure.FORBIDDEN, 403)
        return response

    async def _require(
        self, method: str, name: str, suffix: str = "", *, allow: tuple[int, ...] = (), **kwargs: Any
    ) -> httpx.Response:
        response = await self._app_call(method, name, suffix, allow=allow, **kwargs)
        if response is None:
            raise ServiceError(SERVICE, Failure.NOT_FOUND, 404, detail=f"no application {name}")
        return response

    async def get_application(self, name: str) -> Json | None:
        response = await self._app_call("GET", name)
        if response is None:
            return None
        app: Json = response.json()
        return app

    async def list_applications(self, project: str) -> list[Json]:
        response = await self.call("GET", "/api/v1/applications", params={"projects": project})
        return list(response.json().get("items") or [])

    async def ensure_application(
        self,
        name: str,
        project: str,
        repo_url: str,
        path: str,
        revision: str,
        namespace: str,
        server: str = IN_CLUSTER,
        value_files: list[str] | None = None,
        auto_sync: bool = False,
    ) -> Ensured[None]:
        """An Application of ``project`` deploying ``repo_url``/``path`` at ``revision`` into
        ``namespace`` on ``server``; helm ``value_files`` when given; automated sync (prune and
        self-heal) when ``auto_sync``. Fields the bot does not manage are kept on update."""
        current = await self.get_application(name)
        if current is None:
            source: Json = {"repoURL": repo_url, "path": path, "targetRevision": revision}
            if value_files:
                source["helm"] = {"valueFiles": list(value_files)}
            spec: Json = {
                "project": project,
                "source": source,
                "destination": {"server": server, "namespace": namespace},
            }
            if auto_sync:
                spec["syncPolicy"] = {"automated": {"prune": True, "selfHeal": True}}
            body = {"metadata": {"name": name}, "spec": spec}
            response = await self.call("POST", "/api/v1/applications", json=body, allow=(400,))
            if response.status_code == 400:
                raise ServiceError(SERVICE, Failure.INVALID, 400, detail=f"cannot create application {name}")
            return Ensured(None, True, f"created ArgoCD application {name}")

        spec = copy.deepcopy(current.get("spec") or {})
        before = copy.deepcopy(spec)
        spec["project"] = project
        source = spec.setdefault("source", {})
        source.update(repoURL=repo_url, path=path, targetRevision=revision)
        helm = source.get("helm") or {}
        if value_files:
            helm["valueFiles"] = list(value_files)
        else:
            helm.pop("valueFiles", None)
        if helm:
            source["helm"] = helm
        else:
            source.pop("helm", None)
        destination = spec.setdefault("destination", {})
        destination.pop("name", None)  # server and name are exclusive
        destination.update(server=server, namespace=namespace)
        policy = spec.get("syncPolicy") or {}
        # Automated sync an admin turned on stays on: the bot only ever turns it on.
        if auto_sync and "automated" not in policy:
            policy["automated"] = {"prune": True, "selfHeal": True}
        if policy:
            spec["syncPolicy"] = policy
        else:
            spec.pop("syncPolicy", None)
        if _normal(spec) == _normal(before):
            return Ensured(None, False, "")
        metadata = current.get("metadata") or {}
        body = {"metadata": {k: v for k, v in metadata.items() if k != "managedFields"}, "spec": spec}
        response = await self._require("PUT", name, json=body, allow=(400,))
        if response.status_code == 400:
            raise ServiceError(SERVICE, Failure.INVALID, 400, detail=f"cannot update application {name}")
        return Ensured(None, True, f"updated ArgoCD application {name}")

    async def delete_application(self, name: str, cascade: bool = True) -> bool:
        """Delete (with its resources when ``cascade``); False when absent.

        A cascade delete returns at once while the application is still there, being deleted:
        :meth:`wait_deleted` waits until it is gone."""
        params = {"cascade": "true" if cascade else "false"}
        response = await self._app_call("DELETE", name, params=params)
        return response is not None

    async def wait_deleted(self, names: list[str], timeout: float = 300.0, interval: float = 1.0) -> None:
        """Until none of ``names`` exists any more (server/application/application.go Delete only
        marks an application; the controller removes it after its resources). UNAVAILABLE past
        ``timeout``."""
        deadline = time.monotonic() + timeout
        pending = list(names)
        while pending:
            pending = [name for name in pending if await self.get_application(name) is not None]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise ServiceError(SERVICE, Failure.UNAVAILABLE, detail=f"{len(pending)} applications still deleting")
            await asyncio.sleep(interval)

    async def sync(self, name: str, revision: str | None = None, prune: bool = False) -> Json:
        """Start a sync; the application with its Running ``operationState``.

        A refusal raises :class:`SyncRefused` saying why: sync window or missing ``override``
        (FORBIDDEN), auto-sync on another revision or an operation already running (CONFLICT)."""
        body: Json = {"prune": prune}
        if revision:
            body["revision"] = revision
        response = await self._require("POST", name, "/sync", json=body, allow=(400, 403))
        if response.status_code in (400, 403):
            raise _sync_refusal(response, name)
        app: Json = response.json()
        return app

    async def refresh(self, name: str, hard: bool = False) -> Json:
        """The application once Argo CD has compared it with git again. The call blocks until the
        controller has reconciled (server/application/application.go Get), hence its own timeout."""
        params = {"refresh": "hard" if hard else "normal"}
        response = await self._require("GET", name, params=params, timeout=self.refresh_timeout)
        app: Json = response.json()
        return app

    async def rollback(self, name: str, history_id: int) -> Json:
        response = await self._require("POST", name, "/rollback", json={"id": history_id}, allow=(400,))
        if response.status_code == 400:
            raise ServiceError(SERVICE, _refusal(response), 400, detail=f"cannot roll {name} back to {history_id}")
        app: Json = response.json()
        return app

    async def terminate(self, name: str) -> bool:
        """Stop the running operation; False when none runs."""
        response = await self._require("DELETE", name, "/operation", allow=(400,))
        return response.status_code != 400

    async def resource_tree(self, name: str) -> Json:
        response = await self._require("GET", name, "/resource-tree")
        tree: Json = response.json()
        return tree

    def ui_url(self, app_name: str) -> str:
        return f"{self.url}/applications/{_q(app_name)}"


def _same_project(spec: Json, wanted: Json) -> bool:
    def destinations(items: Any) -> list[tuple[str, str, str]]:
        return sorted(
            (str(d.get("server") or ""), str(d.get("name") or ""), str(d.get("namespace") or "")) for d in items or []
        )

    return (
        sorted(spec.get("sourceRepos") or []) == sorted(wanted["sourceRepos"])
        and destinations(spec.get("destinations")) == destinations(wanted["destinations"])
        and ("description" not in wanted or spec.get("description") == wanted["description"])
    )


def _normal(spec: Json) -> Json:
    """A spec with empty values dropped, so ``{}``/``None``/absent compare equal."""
    if isinstance(spec, dict):
        return {k: _normal(v) for k, v in spec.items() if v not in (None, {}, [], "")}
    return spec


__all__ = ["IN_CLUSTER", "SERVICE", "ArgoCD", "Refusal", "SyncRefused", "automated"]
