"""Quay (API v1) as the platform's container registry: one organization per project, robots and
default permissions. Implements :class:`services.registry.ContainerRegistry`.

- Organization ``<slug>``; robots ``<slug>+<short>`` (``ro`` pull only, ``rw`` push and pull).
- A robot's role on every repository of the organization comes from an organization *default
  permission* (a "prototype", applied when a repository is created) plus an explicit permission on
  each repository that already exists, so present and future repositories are both covered.
- Quay shows a robot's token to organization admins: :meth:`Quay.ensure_robot` returns the
  current token without regenerating it, so a replay changes nothing.
"""

from __future__ import annotations

import time
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from services.base import Ensured, HttpService
from services.errors import Failure, ServiceError
from services.registry import RobotCredentials, Tag, docker_config_json

SERVICE = "Quay"
Json = dict[str, Any]
# Quay with FEATURE_MAILING (the default) refuses an organization without a contact e-mail, and up
# to 3.17 an e-mail may belong to one namespace only: each organization gets its own address.
ORG_EMAIL_DOMAIN = "quay.cpn.invalid"


def _q(part: str) -> str:
    return quote(part, safe="")


def _message(response: httpx.Response) -> str:
    """Quay's error text (``{"message"}`` or ``{"detail"}``), for matching only, never shown."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        return str(body.get("message") or body.get("detail") or body.get("error_message") or "")
    return ""


class Quay(HttpService):
    service = SERVICE
    name = "Quay"
    hook_source = ""  # the platform's images are scanned by the CI's Trivy job, not by Quay

    def __init__(self, url: str, token: str, timeout: float = 10.0, host: str | None = None) -> None:
        super().__init__(url, timeout, headers={"Authorization": f"Bearer {token}"})
        self.url = self.base_url
        self.host = host or urlsplit(self.url).netloc

    # -- namespace ------------------------------------------------------------------------------

    async def ensure_namespace(self, slug: str) -> Ensured[str]:
        found = await self.request("GET", f"/api/v1/organization/{_q(slug)}", allow=(404,))
        if found.status_code == 200:
            return Ensured(slug, False, "")
        # quay/quay:endpoints/api/organization.py OrganizationList.post — "Email address is required"
        # (400) when FEATURE_MAILING is on; data/model/user.py create_user_noverify (≤ 3.17) refuses
        # an address already used by another user or organization.
        body = {"name": slug, "email": f"{slug}@{ORG_EMAIL_DOMAIN}"}
        created = await self.request("POST", "/api/v1/organization/", json=body, allow=(400,))
        if created.status_code == 400:
            raise ServiceError(SERVICE, Failure.INVALID, 400, detail=f"cannot create organization {slug}")
        return Ensured(slug, True, f"created organization {slug}")

    async def delete_namespace(self, slug: str) -> bool:
        response = await self.request("DELETE", f"/api/v1/organization/{_q(slug)}", allow=(404,))
        return response.status_code != 404

    # -- robots ---------------------------------------------------------------------------------

    async def ensure_robot(
        self, slug: str, short: str, write: bool, known: RobotCredentials | None = None
    ) -> Ensured[RobotCredentials]:
        # Quay shows the token to organization admins: Vault's copy (``known``) is not needed.
        full = f"{slug}+{short}"
        role = "write" if write else "read"
        done: list[str] = []
        robot = await self._robot(slug, short)
        if robot is None:
            description = f"cpn-bot {'push/pull' if write else 'pull'} robot of {slug}"
            created = await self.request(
                "PUT",
                f"/api/v1/organization/{_q(slug)}/robots/{_q(short)}",
                json={"description": description},
                allow=(400,),
            )
            if created.status_code == 400:
                raise ServiceError(SERVICE, Failure.INVALID, 400, detail=f"cannot create robot {full}")
            robot = created.json()
            done.append(f"created robot {full}")
        if await self._ensure_prototype(slug, full, role):
            done.append(f"default permission {role} for {full}")
        fixed = await self._ensure_repository_permissions(slug, full, role)
        if fixed:
            done.append(f"{role} on {fixed} existing repositories for {full}")
        token = str(robot.get("token") or "")
        if not token:
            raise ServiceError(SERVICE, Failure.FORBIDDEN, detail=f"token of robot {full} not readable")
        return Ensured(RobotCredentials(full, token), bool(done), "; ".join(done))

    async def _robot(self, slug: str, short: str) -> Json | None:
        response = await self.request("GET", f"/api/v1/organization/{_q(slug)}/robots/{_q(short)}", allow=(400, 404))
        if response.status_code == 200:
            robot: Json = response.json()
            return robot
        if "organization does not exist" in _message(response).lower() or response.status_code == 404:
            raise ServiceError(SERVICE, Failure.NOT_FOUND, response.status_code, detail=f"no organization {slug}")
        return None  # 400 "Could not find robot with specified username"

    async def _ensure_prototype(self, slug: str, full: str, role: str) -> bool:
        """An organization-wide default permission giving ``role`` to ``full``; True if changed."""
        response = await self.request("GET", f"/api/v1/organization/{_q(slug)}/prototypes")
        prototypes = response.json().get("prototypes") or []
        mine = [p for p in prototypes if (p.get("delegate") or {}).get("name") == full and not p.get("activating_user")]
        if len(mine) == 1 and mine[0].get("role") == role:
            return False
        for proto in mine:  # a wrong role or duplicates: replace them
            await self.request(
                "DELETE", f"/api/v1/organization/{_q(slug)}/prototypes/{_q(str(proto['id']))}", allow=(404,)
            )
        await self.request(
            "POST",
            f"/api/v1/organization/{_q(slug)}/prototypes",
            json={"role": role, "delegate": {"name": full, "kind": "user"}},
        )
        return True

    async def _ensure_repository_permissions(self, slug: str, full: str, role: str) -> int:
        """Give ``role`` to ``full`` on every existing repository; how many were changed."""
        changed = 0
        for repository in await self._repositories(slug):
            base = f"/api/v1/repository/{_q(slug)}/{_q(repository)}/permissions/user/"
            current = (await self.request("GET", base)).json().get("permissions") or {}
            if (current.get(full) or {}).get("role") == role:
                continue
            await self.request("PUT", base + _q(full), json={"role": role})
            changed += 1
        return changed

    async def _repositories(self, slug: str) -> list[str]:
        names: list[str] = []
        params: dict[str, str] = {"namespace": slug}
        for _ in range(100):  # 100 pages of 100: far beyond a project's needs
            page = (await self.request("GET", "/api/v1/repository", params=params)).json()
            names.extend(str(r["name"]) for r in page.get("repositories") or [])
            if not page.get("next_page"):
                break
            params["next_page"] = str(page["next_page"])
        return names

    # -- images ---------------------------------------------------------------------------------

    async def tags(self, slug: str, repository: str) -> list[Tag]:
        result: list[Tag] = []
        path = f"/api/v1/repository/{_q(slug)}/{_q(repository)}/tag/"
        for page in range(1, 101):
            params = {"onlyActiveTags": "true", "limit": "100", "page": str(page)}
            response = await self.request("GET", path, params=params, allow=(404,))
            if response.status_code == 404:
                raise ServiceError(SERVICE, Failure.NOT_FOUND, 404, detail=f"no repository {slug}/{repository}")
            body = response.json()
            now = time.time()
            for tag in body.get("tags") or []:
                if not _alive(tag, now):
                    continue
                result.append(
                    Tag(
                        name=str(tag["name"]),
                        digest=str(tag.get("manifest_digest") or ""),
                        size=tag.get("size"),
                        last_modified=_date(tag.get("last_modified")),
                    )
                )
            if not body.get("has_additional"):
                break
        return result

    async def ensure_scan_hook(self, slug: str, url: str, secret: str) -> Ensured[str]:
        return Ensured(slug, False, "")  # no hook_source: nothing to register

    # -- links and configuration ----------------------------------------------------------------

    def ui_url(self, slug: str, repository: str | None = None) -> str:
        if repository:
            return f"{self.url}/repository/{_q(slug)}/{_q(repository)}"
        return f"{self.url}/organization/{_q(slug)}"

    def docker_config(self, creds: RobotCredentials) -> str:
        return docker_config_json(self.host, creds)


def _alive(tag: Json, now: float) -> bool:
    """A tag with an expiration still ahead is alive until then.

    quay/quay:data/model/oci/tag.py filter_to_alive_tags — ``lifetime_end_ms`` NULL or in the future.
    """
    end = tag.get("end_ts")
    return end is None or (isinstance(end, int | float) and end > now)


def _date(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None


__all__ = ["ORG_EMAIL_DOMAIN", "SERVICE", "Quay"]
