"""Argo CD (API v1, argocd-server's grpc-gateway) for the projects' deployments.

Log in with ``POST /api/v1/session`` (username, password) → a session JWT, cached and renewed once
when a call answers 401. Two argocd-server behaviours matter:

- getting (or acting on) an application that does not exist answers 403 "permission denied"
  (code 7) unless the request names the application's ``project``; the adapter tells a missing
  application from a real refusal by listing applications by name;
- an AppProject is a Kubernetes object: ``PUT`` needs its current ``metadata.resourceVersion``.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any
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


def _refusal(response: httpx.Response) -> Failure:
    """400 FailedPrecondition (an operation runs, auto-sync is on) is a CONFLICT; else INVALID."""
    return Failure.CONFLICT if _grpc_code(response) == 9 else Failure.INVALID


class ArgoCD(HttpService):
    service = SERVICE

    def __init__(self, url: str, username: str, password: str, timeout: float = 10.0) -> None:
        super().__init__(url, timeout)
        self.url = self.base_url
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
        metadata = current.get("metadata") or {}
        body = {
            "project": {
                "metadata": {"name": name, "resourceVersion": metadata.get("resourceVersion", "")},
                "spec": spec,
            }
        }
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
        """A call on application ``name``; None when the application does not exist."""
        path = f"/api/v1/applications/{_q(name)}{suffix}"
        response = await self.call(method, path, allow=(403, 404, *allow), **kwargs)
        if response.status_code == 404:
            return None
        if response.status_code == 403:
            if _grpc_code(response) == 7 and await self._listed(name) is None:
                return None  # argocd-server hides a missing application behind "permission denied"
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
        if auto_sync and "automated" not in policy:
            policy["automated"] = {"prune": True, "selfHeal": True}
        elif not auto_sync:
            policy.pop("automated", None)
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
        """Delete (with its resources when ``cascade``); False when absent."""
        params = {"cascade": "true" if cascade else "false"}
        response = await self._app_call("DELETE", name, params=params)
        return response is not None

    async def sync(self, name: str, revision: str | None = None, prune: bool = False) -> Json:
        """Start a sync; the application with its Running ``operationState``.

        An operation already running, or a revision refused by auto-sync, is a CONFLICT."""
        body: Json = {"prune": prune}
        if revision:
            body["revision"] = revision
        response = await self._require("POST", name, "/sync", json=body, allow=(400,))
        if response.status_code == 400:
            raise ServiceError(SERVICE, _refusal(response), 400, detail=f"cannot sync {name} now")
        app: Json = response.json()
        return app

    async def refresh(self, name: str, hard: bool = False) -> Json:
        response = await self._require("GET", name, params={"refresh": "hard" if hard else "normal"})
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


__all__ = ["IN_CLUSTER", "SERVICE", "ArgoCD"]
