"""Nexus Repository 3 (REST v1, HTTP Basic) for the projects' maven and npm repositories.

Per platform-facts §3.4, for a project ``<slug>``:

- maven: hosted ``<slug>-repository-release`` (write policy ALLOW_ONCE), hosted
  ``<slug>-repository-snapshot`` (ALLOW), group ``<slug>-repository-group`` containing both;
- npm: hosted ``<slug>-npm`` (ALLOW), group ``<slug>-npm-group`` containing it;
- access: one repository-view privilege ``<repo>-privilege`` (all actions) per existing project
  repository, a role ``<slug>-ID`` holding them, a local user ``<slug>`` with that role (its password
  goes to Vault ``NEXUS``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from services.base import Ensured, HttpService
from services.errors import Failure, ServiceError

SERVICE = "Nexus"
API = "/service/rest/v1"
Json = dict[str, Any]
USER_EMAIL_DOMAIN = "nexus.cpn.invalid"  # Nexus requires an e-mail address on local users


def _q(part: str) -> str:
    return quote(part, safe="")


def maven_names(slug: str) -> tuple[str, str, str]:
    """(release, snapshot, group) repository names."""
    return f"{slug}-repository-release", f"{slug}-repository-snapshot", f"{slug}-repository-group"


def npm_names(slug: str) -> tuple[str, str]:
    """(hosted, group) repository names."""
    return f"{slug}-npm", f"{slug}-npm-group"


def role_id(slug: str) -> str:
    return f"{slug}-ID"


def privilege_name(repository: str) -> str:
    return f"{repository}-privilege"


def _project_repositories(slug: str) -> list[tuple[str, str]]:
    """(name, format) of every repository a project may own, groups last."""
    release, snapshot, group = maven_names(slug)
    npm, npm_group = npm_names(slug)
    return [(release, "maven2"), (snapshot, "maven2"), (npm, "npm"), (group, "maven2"), (npm_group, "npm")]


class Nexus(HttpService):
    service = SERVICE

    def __init__(
        self, url: str, username: str, password: str, timeout: float = 10.0, blob_store: str = "default"
    ) -> None:
        super().__init__(url, timeout, auth=(username, password))
        self.url = self.base_url
        # Where new repositories store their blobs (``[nexus] blob_store``); Nexus refuses a name it
        # does not know, and a change on an existing repository (AbstractRepositoriesApiResource).
        self.blob_store = blob_store

    # -- repositories ---------------------------------------------------------------------------

    async def ensure_maven(self, slug: str) -> Ensured[list[str]]:
        release, snapshot, group = maven_names(slug)
        done = [
            await self._ensure_hosted("maven", release, "ALLOW_ONCE", "RELEASE"),
            await self._ensure_hosted("maven", snapshot, "ALLOW", "SNAPSHOT"),
            await self._ensure_group("maven", group, [release, snapshot]),
        ]
        return _result([release, snapshot, group], done)

    async def ensure_npm(self, slug: str) -> Ensured[list[str]]:
        hosted, group = npm_names(slug)
        done = [
            await self._ensure_hosted("npm", hosted, "ALLOW", None),
            await self._ensure_group("npm", group, [hosted]),
        ]
        return _result([hosted, group], done)

    async def _get_typed(self, fmt: str, rtype: str, name: str) -> Json | None:
        response = await self.request("GET", f"{API}/repositories/{fmt}/{rtype}/{_q(name)}", allow=(404,))
        if response.status_code == 404:
            return None
        found: Json = response.json()
        return found

    async def _save(self, fmt: str, rtype: str, name: str, body: Json, exists: bool) -> None:
        path = f"{API}/repositories/{fmt}/{rtype}"
        if exists:
            response = await self.request("PUT", f"{path}/{_q(name)}", json=body, allow=(400,))
        else:
            response = await self.request("POST", path, json=body, allow=(400,))
        if response.status_code == 400:
            verb = "update" if exists else "create"
            raise ServiceError(SERVICE, Failure.INVALID, 400, detail=f"cannot {verb} repository {name}")

    async def _ensure_hosted(self, fmt: str, name: str, write_policy: str, version_policy: str | None) -> str:
        current = await self._get_typed(fmt, "hosted", name)
        body: Json = {
            "name": name,
            "online": True,
            "storage": {
                "blobStoreName": self.blob_store,
                "strictContentTypeValidation": True,
                "writePolicy": write_policy,
            },
            "cleanup": None,
            "component": {"proprietaryComponents": False},
        }
        if version_policy:
            body["maven"] = {
                "versionPolicy": version_policy,
                "layoutPolicy": "STRICT",
                "contentDisposition": "INLINE",
            }
        if current is not None:
            storage = current.get("storage") or {}
            maven = current.get("maven") or {}
            same = str(storage.get("writePolicy") or "").upper() == write_policy and current.get("online", True)
            if version_policy:
                same = same and str(maven.get("versionPolicy") or "").upper() == version_policy
            if same:
                return ""
            # Keep what an admin tuned (blob store, cleanup, content types), fix only our settings.
            body["storage"]["blobStoreName"] = storage.get("blobStoreName") or self.blob_store
            body["storage"]["strictContentTypeValidation"] = storage.get("strictContentTypeValidation", True)
            body["cleanup"] = current.get("cleanup")
            if version_policy and maven:
                body["maven"].update(
                    layoutPolicy=maven.get("layoutPolicy") or "STRICT",
                    contentDisposition=maven.get("contentDisposition") or "INLINE",
                )
            await self._save(fmt, "hosted", name, body, exists=True)
            return f"fixed {fmt} repository {name}"
        await self._save(fmt, "hosted", name, body, exists=False)
        return f"created {fmt} repository {name}"

    async def _ensure_group(self, fmt: str, name: str, members: list[str]) -> str:
        current = await self._get_typed(fmt, "group", name)
        body: Json = {
            "name": name,
            "online": True,
            "storage": {"blobStoreName": self.blob_store, "strictContentTypeValidation": True},
            "group": {"memberNames": members},
        }
        if current is not None:
            present = list((current.get("group") or {}).get("memberNames") or [])
            missing = [m for m in members if m not in present]
            if not missing and current.get("online", True):
                return ""
            storage = current.get("storage") or {}
            body["storage"]["blobStoreName"] = storage.get("blobStoreName") or self.blob_store
            body["group"]["memberNames"] = present + missing  # extra members an admin added stay
            await self._save(fmt, "group", name, body, exists=True)
            return f"fixed {fmt} group {name}"
        await self._save(fmt, "group", name, body, exists=False)
        return f"created {fmt} group {name}"

    def repository_urls(self, slug: str) -> dict[str, str]:
        """What the project's CI needs (shown as the project's Nexus secrets)."""
        release, snapshot, _ = maven_names(slug)
        npm, _ = npm_names(slug)
        return {
            "MAVEN_REPO_RELEASE": f"{self.url}/repository/{release}",
            "MAVEN_REPO_SNAPSHOT": f"{self.url}/repository/{snapshot}",
            "NPM_REPO": f"{self.url}/repository/{npm}",
        }

    def ui_url(self, slug: str, repository: str | None = None) -> str:
        """The project's maven group (or ``repository``) in the Nexus browser."""
        return f"{self.url}/#browse/browse:{_q(repository or maven_names(slug)[2])}"

    # -- access ---------------------------------------------------------------------------------

    async def ensure_access(self, slug: str, password: str, reset_password: bool = False) -> Ensured[None]:
        """Privileges on the project's existing repositories, role ``<slug>-ID``, user ``<slug>``.

        ``password`` is set when the user is created; on an existing user it is changed only with
        ``reset_password=True``. It never appears in ``what`` nor in errors.
        """
        done: list[str] = []
        privileges: list[str] = []
        # One look-up per object: listing every repository or privilege of the instance would
        # grow with the number of projects (about 65 privileges each).
        for name, fmt in _project_repositories(slug):
            if not await self._exists(f"{API}/repositories/{_q(name)}"):
                continue
            privilege = privilege_name(name)
            privileges.append(privilege)
            if await self._exists(f"{API}/security/privileges/{_q(privilege)}"):
                continue
            response = await self.request(
                "POST",
                f"{API}/security/privileges/repository-view",
                json={
                    "name": privilege,
                    "description": f"cpn-bot: all actions on {name}",
                    "actions": ["ALL"],
                    "format": fmt,
                    "repository": name,
                },
                allow=(400,),
            )
            if response.status_code == 400:
                raise ServiceError(SERVICE, Failure.INVALID, 400, detail=f"cannot create privilege {privilege}")
            done.append(f"created privilege {privilege}")
        done.append(await self._ensure_role(slug, privileges))
        done.append(await self._ensure_user(slug, password, reset_password))
        return _result(None, done)

    async def _exists(self, path: str) -> bool:
        return (await self.request("GET", path, allow=(404,))).status_code != 404

    async def _ensure_role(self, slug: str, privileges: list[str]) -> str:
        rid = role_id(slug)
        body: Json = {
            "id": rid,
            "name": rid,
            "description": f"cpn-bot: project {slug}",
            "privileges": sorted(privileges),
            "roles": [],
        }
        response = await self.request("GET", f"{API}/security/roles/{_q(rid)}", allow=(404,))
        if response.status_code == 404:
            created = await self.request("POST", f"{API}/security/roles", json=body, allow=(400,))
            if created.status_code == 400:
                raise ServiceError(SERVICE, Failure.INVALID, 400, detail=f"cannot create role {rid}")
            return f"created role {rid}"
        current = response.json()
        if sorted(current.get("privileges") or []) == sorted(privileges):
            return ""
        body["roles"] = list(current.get("roles") or [])
        updated = await self.request("PUT", f"{API}/security/roles/{_q(rid)}", json=body, allow=(400,))
        if updated.status_code == 400:
            raise ServiceError(SERVICE, Failure.INVALID, 400, detail=f"cannot update role {rid}")
        return f"updated privileges of role {rid}"

    async def _find_user(self, user_id: str) -> Json | None:
        # source=default: only the local realm, where the bot's users live. Without it Nexus asks
        # every realm, LDAP included, and waits for it (nexus-public components/nexus-security/
        # .../security/internal/rest/UserApiResource.getUsers, DefaultSecuritySystem.searchUsers).
        params = {"userId": user_id, "source": "default"}
        response = await self.request("GET", f"{API}/security/users", params=params)
        for user in response.json() or []:
            if user.get("userId") == user_id and user.get("source", "default") == "default":
                found: Json = user
                return found
        return None

    async def _ensure_user(self, slug: str, password: str, reset_password: bool) -> str:
        rid = role_id(slug)
        user = await self._find_user(slug)
        if user is None:
            response = await self.request(
                "POST",
                f"{API}/security/users",
                json={
                    "userId": slug,
                    "firstName": slug,
                    "lastName": "cpn-bot",
                    "emailAddress": f"{slug}@{USER_EMAIL_DOMAIN}",
                    "password": password,
                    "status": "active",
                    "roles": [rid],
                },
                allow=(400,),
            )
            if response.status_code == 400:
                raise ServiceError(SERVICE, Failure.INVALID, 400, detail=f"cannot create user {slug}")
            return f"created user {slug}"
        done: list[str] = []
        roles = list(user.get("roles") or [])
        if rid not in roles or user.get("status") != "active":
            fixed = {**user, "roles": sorted({*roles, rid}), "status": "active"}
            fixed.pop("externalRoles", None)
            response = await self.request("PUT", f"{API}/security/users/{_q(slug)}", json=fixed, allow=(400,))
            if response.status_code == 400:
                raise ServiceError(SERVICE, Failure.INVALID, 400, detail=f"cannot update user {slug}")
            done.append(f"gave role {rid} to user {slug}")
        if reset_password:
            response = await self.request(
                "PUT",
                f"{API}/security/users/{_q(slug)}/change-password",
                content=password.encode(),
                headers={"Content-Type": "text/plain"},
                allow=(400,),
            )
            if response.status_code == 400:
                raise ServiceError(SERVICE, Failure.INVALID, 400, detail=f"password of {slug} refused")
            done.append(f"reset password of user {slug}")
        return "; ".join(done)

    # -- deletion -------------------------------------------------------------------------------

    async def delete_project(self, slug: str) -> int:
        """Delete the project's repositories (groups first), user, role and privileges.

        Returns how many objects were removed; what is already absent is skipped.
        """
        removed = 0
        for name, _ in reversed(_project_repositories(slug)):
            response = await self.request("DELETE", f"{API}/repositories/{_q(name)}", allow=(404,))
            removed += response.status_code != 404
        response = await self.request("DELETE", f"{API}/security/users/{_q(slug)}", allow=(404,))
        removed += response.status_code != 404
        response = await self.request("DELETE", f"{API}/security/roles/{_q(role_id(slug))}", allow=(404,))
        removed += response.status_code != 404
        for name, _ in _project_repositories(slug):
            path = f"{API}/security/privileges/{_q(privilege_name(name))}"
            response = await self.request("DELETE", path, allow=(404,))
            removed += response.status_code != 404
        return removed


def _result(value: Any, done: list[str]) -> Ensured[Any]:
    steps = [d for d in done if d]
    return Ensured(value, bool(steps), "; ".join(steps))


__all__ = ["SERVICE", "Nexus", "maven_names", "npm_names", "privilege_name", "role_id"]
