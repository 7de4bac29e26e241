"""Harbor (API v2.0) as the platform's container registry: one project per Cloud π Native project,
project-level robot accounts, members, artifacts and tags. Implements
:class:`services.registry.ContainerRegistry`.

Read from goharbor/harbor:api/v2.0/swagger.yaml and the handlers under src/server/v2.0/handler/:

- A project-level robot ``<short>`` of project ``<slug>`` is named ``robot$<slug>+<short>``
  (goharbor/harbor:src/controller/robot/controller.go Create builds ``<project>+<name>``, Get adds
  the configured prefix, ``robot$`` by default). Its permissions cover the project's repositories,
  present and future.
- Harbor returns a robot's secret only when it is created or refreshed
  (src/server/v2.0/handler/robot.go CreateRobot, RefreshSec); GET never shows it. So
  :meth:`Harbor.ensure_robot` takes the credentials Vault holds and returns them unchanged; it
  refreshes the secret only when Vault has none (lost or never written), never by accident.
- A repository name containing ``/`` is encoded twice in the path: ``a/b`` → ``a%252Fb`` (the
  swagger's ``repositoryName`` parameter: "If it contains slash, encode it twice over").
- A project with repositories cannot be deleted (412, src/server/v2.0/handler/project.go
  deletable): :meth:`Harbor.delete_namespace` deletes its repositories first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from services.base import Ensured, HttpService
from services.errors import Failure, ServiceError
from services.registry import RobotCredentials, Tag, docker_config_json

SERVICE = "Harbor"
API = "/api/v2.0"
ROBOT_PREFIX = "robot$"  # Harbor's robot_name_prefix default (src/lib/config/metadata/metadatalist.go)
PAGE_SIZE = 100  # the swagger's pageSize maximum
Json = dict[str, Any]
# By name, not by id, whatever the name looks like (swagger parameter isResourceName).
BY_NAME = {"X-Is-Resource-Name": "true"}
# Project roles (swagger ProjectMember.role_id).
# The webhook policy the bot owns in each project, and the events it wants (src/pkg/notifier/model/const.go).
HOOK_NAME = "cpn-bot"
SCAN_EVENTS = ("PUSH_ARTIFACT", "SCANNING_COMPLETED", "SCANNING_FAILED")
ROLES = {"admin": 1, "developer": 2, "guest": 3, "maintainer": 4}


def _q(part: str) -> str:
    return quote(part, safe="")


def repository_path(name: str) -> str:
    """A repository name as Harbor's paths want it: URL-encoded twice (``a/b`` → ``a%252Fb``)."""
    return quote(quote(name, safe=""), safe="")


def _access(write: bool) -> list[dict[str, str]]:
    actions = ("pull", "push") if write else ("pull",)
    return [{"resource": "repository", "action": action, "effect": "allow"} for action in actions]


@dataclass(frozen=True)
class Member:
    id: int
    username: str
    role_id: int


class Harbor(HttpService):
    service = SERVICE
    name = "Harbor"
    hook_source = "harbor"  # Harbor scans pushed images with its Trivy and says so by webhook

    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        timeout: float = 10.0,
        host: str | None = None,
        robot_prefix: str = ROBOT_PREFIX,
    ) -> None:
        super().__init__(url, timeout, auth=httpx.BasicAuth(username, password))
        self.url = self.base_url
        self.host = host or urlsplit(self.url).netloc
        self.robot_prefix = robot_prefix
        self._project_ids: dict[str, int] = {}  # for UI links, which name projects by id

    # -- projects -------------------------------------------------------------------------------

    async def _project(self, slug: str) -> Json | None:
        response = await self.request("GET", f"{API}/projects/{_q(slug)}", headers=BY_NAME, allow=(404,))
        if response.status_code == 404:
            return None
        project: Json = response.json()
        self._project_ids[slug] = int(project["project_id"])
        return project

    async def ensure_namespace(self, slug: str) -> Ensured[str]:
        if await self._project(slug) is not None:
            return Ensured(slug, False, "")
        # Private: the clusters pull with the read robot (swagger ProjectReq, metadata.public).
        body = {"project_name": slug, "metadata": {"public": "false"}}
        created = await self.request("POST", f"{API}/projects", json=body, allow=(400, 409))
        if created.status_code == 400:
            raise ServiceError(SERVICE, Failure.INVALID, 400, detail=f"cannot create project {slug}")
        if created.status_code == 409:  # created meanwhile by someone else: it exists, as wanted
            return Ensured(slug, False, "")
        # Location: /api/v2.0/projects/<id> (handler/project.go CreateProject)
        tail = created.headers.get("location", "").rsplit("/", 1)[-1]
        if tail.isdigit():
            self._project_ids[slug] = int(tail)
        return Ensured(slug, True, f"created project {slug}")

    async def delete_namespace(self, slug: str) -> bool:
        if await self._project(slug) is None:
            return False
        for repository in await self.repositories(slug):
            await self.request(
                "DELETE", f"{API}/projects/{_q(slug)}/repositories/{repository_path(repository)}", allow=(404,)
            )
        response = await self.request("DELETE", f"{API}/projects/{_q(slug)}", headers=BY_NAME, allow=(404,))
        self._project_ids.pop(slug, None)
        return response.status_code != 404

    async def repositories(self, slug: str) -> list[str]:
        """Names of the project's repositories, without the project prefix (``api``, ``a/b``)."""
        items = await self._all(f"{API}/projects/{_q(slug)}/repositories", {}, what=f"project {slug}")
        prefix = f"{slug}/"
        return [str(r["name"]).removeprefix(prefix) for r in items]

    # -- robots ---------------------------------------------------------------------------------

    async def ensure_robot(
        self, slug: str, short: str, write: bool, known: RobotCredentials | None = None
    ) -> Ensured[RobotCredentials]:
        full = f"{self.robot_prefix}{slug}+{short}"
        project = await self._project(slug)
        if project is None:
            raise ServiceError(SERVICE, Failure.NOT_FOUND, 404, detail=f"no project {slug}")
        permissions = [{"kind": "project", "namespace": slug, "access": _access(write)}]
        robot = await self._robot(int(project["project_id"]), full)
        if robot is None:
            body = {
                "name": short,
                "description": f"cpn-bot {'push/pull' if write else 'pull'} robot of {slug}",
                "level": "project",
                "duration": -1,
                "disable": False,
                "permissions": permissions,
            }
            created = (await self.request("POST", f"{API}/robots", json=body)).json()
            return Ensured(RobotCredentials(full, str(created["secret"])), True, f"created robot {full}")
        done: list[str] = []
        if robot.get("disable") or not _same_access(robot, slug, write):
            # PUT takes the whole robot back, its name as GET shows it (handler/robot.go updateV2Robot).
            body = {
                "name": robot["name"],
                "description": robot.get("description", ""),
                "level": "project",
                "duration": robot.get("duration") if robot.get("duration") is not None else -1,
                "disable": False,
                "permissions": permissions,
            }
            await self.request("PUT", f"{API}/robots/{robot['id']}", json=body)
            done.append(f"{'push/pull' if write else 'pull'} rights for {full}")
        if known is not None and known.username == full and known.token:
            return Ensured(known, bool(done), "; ".join(done))
        # Vault has no secret for it: a new one, which the caller stores (handler/robot.go RefreshSec).
        refreshed = (await self.request("PATCH", f"{API}/robots/{robot['id']}", json={})).json()
        done.append(f"new secret for robot {full} (none in Vault)")
        return Ensured(RobotCredentials(full, str(refreshed["secret"])), True, "; ".join(done))

    async def _robot(self, project_id: int, full: str) -> Json | None:
        # handler/robot.go ListRobot: project robots are listed with q=Level=project,ProjectID=<id>.
        params = {"q": f"Level=project,ProjectID={project_id}"}
        for robot in await self._all(f"{API}/robots", params, what="robots"):
            if robot.get("name") == full:
                return robot
        return None

    # -- members --------------------------------------------------------------------------------

    async def members(self, slug: str) -> list[Member]:
        items = await self._all(f"{API}/projects/{_q(slug)}/members", {}, what=f"project {slug}", headers=BY_NAME)
        return [
            Member(int(m["id"]), str(m.get("entity_name", "")), int(m.get("role_id", 0)))
            for m in items
            if m.get("entity_type") == "u"
        ]

    async def ensure_member(self, slug: str, username: str, role: str) -> Ensured[Member]:
        """``username`` (a Harbor user) is a member of the project with ``role`` (:data:`ROLES`)."""
        role_id = ROLES[role]
        base = f"{API}/projects/{_q(slug)}/members"
        current = next((m for m in await self.members(slug) if m.username == username), None)
        if current is not None:
            if current.role_id == role_id:
                return Ensured(current, False, "")
            await self.request("PUT", f"{base}/{current.id}", headers=BY_NAME, json={"role_id": role_id})
            return Ensured(Member(current.id, username, role_id), True, f"{username} is now {role} of {slug}")
        body = {"role_id": role_id, "member_user": {"username": username}}
        created = await self.request("POST", base, headers=BY_NAME, json=body, allow=(404, 409))
        if created.status_code == 404:  # controller/member: "user X is not found"
            raise ServiceError(SERVICE, Failure.NOT_FOUND, 404, detail=f"no Harbor user {username}")
        member_id = int(created.headers.get("location", "0").rsplit("/", 1)[-1] or 0)
        return Ensured(Member(member_id, username, role_id), True, f"added {username} to {slug} as {role}")

    async def remove_member(self, slug: str, username: str) -> bool:
        current = next((m for m in await self.members(slug) if m.username == username), None)
        if current is None:
            return False
        await self.request("DELETE", f"{API}/projects/{_q(slug)}/members/{current.id}", headers=BY_NAME, allow=(404,))
        return True

    # -- images ---------------------------------------------------------------------------------

    async def tags(self, slug: str, repository: str) -> list[Tag]:
        path = f"{API}/projects/{_q(slug)}/repositories/{repository_path(repository)}/artifacts"
        artifacts = await self._all(path, {"with_tag": "true"}, what=f"repository {slug}/{repository}")
        result: list[Tag] = []
        for artifact in artifacts:
            for tag in artifact.get("tags") or []:
                result.append(
                    Tag(
                        name=str(tag["name"]),
                        digest=str(artifact.get("digest") or ""),
                        size=artifact.get("size"),
                        last_modified=_date(tag.get("push_time") or artifact.get("push_time")),
                    )
                )
        result.sort(key=lambda t: t.last_modified.timestamp() if t.last_modified else 0.0, reverse=True)
        return result

    async def vulnerabilities(self, slug: str, repository: str, reference: str) -> Json:
        """The artifact's Trivy report (``application/vnd.security.vulnerability.report; version=1.1``),
        ``{}`` when not scanned yet (handler/artifact.go GetVulnerabilitiesAddition)."""
        path = f"{API}/projects/{_q(slug)}/repositories/{repository_path(repository)}/artifacts/{_q(reference)}"
        response = await self.request("GET", path + "/additions/vulnerabilities", allow=(404,))
        if response.status_code == 404:
            raise ServiceError(SERVICE, Failure.NOT_FOUND, 404, detail=f"no artifact {slug}/{repository}@{reference}")
        body: Json = response.json()
        return body

    # -- scan webhook ---------------------------------------------------------------------------

    async def ensure_scan_hook(self, slug: str, url: str, secret: str) -> Ensured[str]:
        """The project's webhook policy ``cpn-bot`` posts SCAN_EVENTS to ``url`` with
        ``Authorization: Bearer <secret>`` (the target's ``auth_header``, set by
        src/pkg/notifier/handler/notification/http_handler.go, sent as is by
        src/jobservice/job/impl/notification/webhook_job.go). ``url`` takes no query string:
        src/server/v2.0/handler/webhook.go validateTargets keeps scheme://host/path. Swagger
        ``WebhookPolicy`` and ``WebhookTargetObject``; created by POST, set right by PUT
        (``/projects/{project_name_or_id}/webhook/policies[/{webhook_policy_id}]``)."""
        base = f"{API}/projects/{_q(slug)}/webhook/policies"
        target = {"type": "http", "address": url, "auth_header": f"Bearer {secret}", "skip_cert_verify": False}
        wanted = {
            "name": HOOK_NAME,
            "description": "Cloud π Native ChatOps: Trivy scans in the team's channel",
            "targets": [target],
            "event_types": list(SCAN_EVENTS),
            "enabled": True,
        }
        policies = await self._all(base, {}, what=f"project {slug}", headers=BY_NAME)
        current = next((p for p in policies if p.get("name") == HOOK_NAME), None)
        if current is None:
            await self.request("POST", base, json=wanted, headers=BY_NAME)
            return Ensured(slug, True, f"created scan webhook of project {slug}")
        targets = current.get("targets") or []
        same = (
            len(targets) == 1
            and {k: targets[0].get(k) for k in ("type", "address", "auth_header")}
            == {k: target[k] for k in ("type", "address", "auth_header")}
            and sorted(current.get("event_types") or []) == sorted(SCAN_EVENTS)
            and current.get("enabled") is True
        )
        if same:
            return Ensured(slug, False, "")
        await self.request("PUT", f"{base}/{int(current['id'])}", json=wanted, headers=BY_NAME)
        return Ensured(slug, True, f"updated scan webhook of project {slug}")

    # -- health, links and configuration --------------------------------------------------------

    async def health(self) -> Json:
        """``/api/v2.0/health``: ``{"status": "healthy"|"unhealthy", "components": [...]}``."""
        body: Json = (await self.request("GET", f"{API}/health", allow=(500,))).json()
        return body

    def ui_url(self, slug: str, repository: str | None = None) -> str:
        # The portal names projects by id (/harbor/projects/<id>/repositories/<name>); before the
        # id is known, the project list.
        project_id = self._project_ids.get(slug)
        if project_id is None:
            return f"{self.url}/harbor/projects"
        base = f"{self.url}/harbor/projects/{project_id}/repositories"
        return f"{base}/{repository_path(repository)}" if repository else base

    def docker_config(self, creds: RobotCredentials) -> str:
        return docker_config_json(self.host, creds)

    # -- pagination -----------------------------------------------------------------------------

    async def _all(
        self, path: str, params: dict[str, str], *, what: str, headers: dict[str, str] | None = None
    ) -> list[Json]:
        """Every item of a paginated list (``page``/``page_size``, ``X-Total-Count``)."""
        items: list[Json] = []
        for page in range(1, 101):  # 100 pages of 100: far beyond a project's needs
            query = {**params, "page": str(page), "page_size": str(PAGE_SIZE)}
            response = await self.request("GET", path, params=query, headers=headers, allow=(404,))
            if response.status_code == 404:
                raise ServiceError(SERVICE, Failure.NOT_FOUND, 404, detail=f"no {what}")
            batch = response.json() or []
            items.extend(batch)
            total = response.headers.get("x-total-count")
            done = len(items) >= int(total) if total and total.isdigit() else len(batch) < PAGE_SIZE
            if done or not batch:
                break
        return items


def _same_access(robot: Json, slug: str, write: bool) -> bool:
    wanted = {(a["resource"], a["action"]) for a in _access(write)}
    permissions = robot.get("permissions") or []
    if len(permissions) != 1 or permissions[0].get("namespace") != slug:
        return False
    have = {(a.get("resource"), a.get("action")) for a in permissions[0].get("access") or []}
    return have == wanted


def _date(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


__all__ = ["API", "ROBOT_PREFIX", "ROLES", "SERVICE", "Harbor", "Member", "repository_path"]
