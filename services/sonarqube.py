"""SonarQube (Web API) for the projects' code quality: technical user, token, projects,
permissions, webhooks, and the quality gate / measures the bot reports.

Per platform-facts §3.5 (keys simplified: Sonar project key ``<slug>-<repo>``): a local technical
user ``<slug>`` (random password, never returned: the CI uses its token), one private project per
repository with main branch ``main``, the user's permissions on it, and a project webhook to the bot.
The token is sent as HTTP Basic login with an empty password, which every SonarQube version accepts.
"""

from __future__ import annotations

import secrets
import string
from typing import Any
from urllib.parse import quote

import httpx

from services.base import Ensured, HttpService
from services.errors import Failure, ServiceError

SERVICE = "SonarQube"
Json = dict[str, Any]
DEFAULT_PERMISSIONS = ("user", "codeviewer", "scan")


def _random_password() -> str:
    """Meets SonarQube's policy (12+ chars, upper, lower, digit, special)."""
    alphabet = string.ascii_letters + string.digits
    body = "".join(secrets.choice(alphabet) for _ in range(28))
    return body + secrets.choice(string.ascii_uppercase) + secrets.choice(string.digits) + "-_"


def _first_error(response: httpx.Response) -> str:
    """SonarQube's ``{"errors":[{"msg"}]}`` text, for matching only, never shown."""
    try:
        body = response.json()
    except ValueError:
        return ""
    errors = body.get("errors") if isinstance(body, dict) else None
    if errors and isinstance(errors, list) and isinstance(errors[0], dict):
        return str(errors[0].get("msg") or "")
    return ""


def _same_secret(hook: Json, secret: str) -> bool:
    """As far as the server tells: SonarQube 10.1+ only says ``hasSecret``; older ones show it."""
    if "secret" in hook:
        return (hook.get("secret") or "") == secret
    return bool(hook.get("hasSecret")) == bool(secret)


class SonarQube(HttpService):
    service = SERVICE

    def __init__(self, url: str, token: str, timeout: float = 10.0) -> None:
        super().__init__(url, timeout, auth=(token, ""))
        self.url = self.base_url

    async def _post(self, path: str, data: dict[str, str], *, what: str, allow: tuple[int, ...] = ()) -> httpx.Response:
        """A POST action; 400 becomes INVALID with ``what`` as the (safe) detail."""
        response = await self.request("POST", path, data=data, allow=(400, *allow))
        if response.status_code == 400:
            raise ServiceError(SERVICE, Failure.INVALID, 400, detail=what)
        return response

    # -- users and tokens -----------------------------------------------------------------------

    async def _user(self, login: str) -> Json | None:
        response = await self.request("GET", "/api/users/search", params={"q": login, "ps": "500"})
        for user in response.json().get("users") or []:
            if user.get("login") == login:
                found: Json = user
                return found
        return None

    async def ensure_user(self, login: str, name: str, email: str = "") -> Ensured[None]:
        """A local technical user; its random password is set on creation and never returned."""
        if await self._user(login) is not None:
            return Ensured(None, False, "")
        data = {"login": login, "name": name, "password": _random_password(), "local": "true"}
        if email:
            data["email"] = email
        await self._post("/api/users/create", data, what=f"cannot create user {login}")
        return Ensured(None, True, f"created SonarQube user {login}")

    async def generate_token(self, login: str, name: str) -> str:
        """A new user token ``name`` for ``login`` (an older token of that name is revoked first)."""
        await self._post(
            "/api/user_tokens/revoke",
            {"login": login, "name": name},
            what="cannot revoke token",
            allow=(404,),
        )
        response = await self._post(
            "/api/user_tokens/generate", {"login": login, "name": name}, what=f"cannot generate token {name}"
        )
        token = str(response.json().get("token") or "")
        if not token:
            raise ServiceError(SERVICE, Failure.INVALID, response.status_code, detail="no token returned")
        return token

    async def deactivate_user(self, login: str, anonymize: bool = False) -> bool:
        """Deactivate (and optionally anonymize) ``login``; False when no active user has it."""
        data = {"login": login}
        if anonymize:
            data["anonymize"] = "true"
        response = await self._post("/api/users/deactivate", data, what=f"cannot deactivate {login}", allow=(404,))
        return response.status_code != 404

    # -- projects -------------------------------------------------------------------------------

    async def _project(self, key: str) -> Json | None:
        response = await self.request("GET", "/api/projects/search", params={"projects": key})
        for project in response.json().get("components") or []:
            if project.get("key") == key:
                found: Json = project
                return found
        return None

    async def ensure_project(self, key: str, name: str) -> Ensured[None]:
        """A private project with main branch ``main``; an existing public one is made private."""
        project = await self._project(key)
        if project is None:
            await self._post(
                "/api/projects/create",
                {"project": key, "name": name, "visibility": "private", "mainBranch": "main"},
                what=f"cannot create project {key}",
            )
            return Ensured(None, True, f"created SonarQube project {key}")
        if project.get("visibility") != "private":
            await self._post(
                "/api/projects/update_visibility",
                {"project": key, "visibility": "private"},
                what=f"cannot make project {key} private",
            )
            return Ensured(None, True, f"made SonarQube project {key} private")
        return Ensured(None, False, "")

    async def delete_project(self, key: str) -> bool:
        response = await self._post("/api/projects/delete", {"project": key}, what="cannot delete", allow=(404,))
        return response.status_code != 404

    # -- permissions ----------------------------------------------------------------------------

    async def _user_permissions(self, login: str, project_key: str) -> set[str] | None:
        """The project permissions of ``login``; None when the server cannot tell (no such API)."""
        params = {"projectKey": project_key, "ps": "100"}
        if len(login) >= 3:  # SonarQube refuses a shorter ``q``
            params["q"] = login
        response = await self.request("GET", "/api/permissions/users", params=params, allow=(404,))
        if response.status_code == 404:
            if _first_error(response).startswith("Unknown url"):
                return None
            raise ServiceError(SERVICE, Failure.NOT_FOUND, 404, detail=f"no project {project_key}")
        for user in response.json().get("users") or []:
            if user.get("login") == login:
                return {str(p) for p in user.get("permissions") or []}
        return set()

    async def ensure_user_permissions(
        self, login: str, project_key: str, permissions: tuple[str, ...] = DEFAULT_PERMISSIONS
    ) -> Ensured[None]:
        """``login`` holds at least ``permissions`` on the project (others are left alone)."""
        current = await self._user_permissions(login, project_key)
        missing = [p for p in permissions if current is None or p not in current]
        for permission in missing:
            response = await self._post(
                "/api/permissions/add_user",
                {"login": login, "projectKey": project_key, "permission": permission},
                what=f"cannot grant {permission} on {project_key}",
                allow=(404,),
            )
            if response.status_code == 404:
                raise ServiceError(SERVICE, Failure.NOT_FOUND, 404, detail=f"no user {login} or project {project_key}")
        if not missing:
            return Ensured(None, False, "")
        return Ensured(None, True, f"granted {', '.join(missing)} on {project_key} to {login}")

    # -- webhooks -------------------------------------------------------------------------------

    async def ensure_webhook(
        self, project_key: str, name: str, url: str, secret: str, force: bool = False
    ) -> Ensured[str]:
        """A project webhook ``name`` posting to ``url`` signed with ``secret``; its key.

        SonarQube never shows a secret back: a webhook with that name and url (and a secret) is
        kept as is, unless ``force`` asks to replace it (to apply a changed secret).
        """
        response = await self.request("GET", "/api/webhooks/list", params={"project": project_key})
        hooks = [h for h in response.json().get("webhooks") or [] if h.get("name") == name]
        keep = next((h for h in hooks if h.get("url") == url and _same_secret(h, secret)), None)
        if keep is not None and not force:
            for extra in hooks:  # duplicates of the same name go
                if extra is not keep:
                    await self._delete_webhook(str(extra["key"]))
            changed = len(hooks) > 1
            return Ensured(
                str(keep["key"]),
                changed,
                f"removed duplicate webhooks {name} of {project_key}" if changed else "",
            )
        for hook in hooks:
            await self._delete_webhook(str(hook["key"]))
        data = {"project": project_key, "name": name, "url": url}
        if secret:
            data["secret"] = secret
        created = await self._post("/api/webhooks/create", data, what=f"cannot create webhook {name}")
        key = str(created.json()["webhook"]["key"])
        verb = "replaced" if hooks else "created"
        return Ensured(key, True, f"{verb} webhook {name} of {project_key}")

    async def _delete_webhook(self, key: str) -> None:
        await self._post("/api/webhooks/delete", {"webhook": key}, what="cannot delete webhook", allow=(404,))

    # -- results --------------------------------------------------------------------------------

    async def quality_gate(self, project_key: str, branch: str | None = None) -> Json:
        """The ``projectStatus`` object (``status`` OK / ERROR / NONE, ``conditions``…)."""
        params = {"projectKey": project_key}
        if branch:
            params["branch"] = branch
        response = await self.request("GET", "/api/qualitygates/project_status", params=params)
        status: Json = response.json().get("projectStatus") or {}
        return status

    async def measures(self, project_key: str, metric_keys: list[str], branch: str | None = None) -> dict[str, str]:
        """metric → value; ``new_*`` metrics are read from their new-code period."""
        params = {"component": project_key, "metricKeys": ",".join(metric_keys)}
        if branch:
            params["branch"] = branch
        response = await self.request("GET", "/api/measures/component", params=params)
        result: dict[str, str] = {}
        for measure in (response.json().get("component") or {}).get("measures") or []:
            value = measure.get("value")
            if value is None:
                period = measure.get("period") or next(iter(measure.get("periods") or []), None) or {}
                value = period.get("value")
            if value is not None:
                result[str(measure["metric"])] = str(value)
        return result

    def ui_url(self, project_key: str, branch: str | None = None) -> str:
        url = f"{self.url}/dashboard?id={quote(project_key, safe='')}"
        return url + (f"&branch={quote(branch, safe='')}" if branch else "")


__all__ = ["DEFAULT_PERMISSIONS", "SERVICE", "SonarQube"]
