"""The headless sandbox's switches over HTTP: what the chat's ``:scenario`` and ``:degrade`` do.

``POST {sandbox_url}/scenario`` with ``{"repository": "<project>/<repo>", "pipeline":
"success"|"fail:<job>"|"stuck:<job>", "quality": "passed"|"failed"}`` and ``POST
{sandbox_url}/degrade`` with ``{"service": …, "mode": "degraded"|"down"|"ok"}``
(DESIGN.md, Contracts). It is a control surface of the whole platform, so it listens on loopback
only and wants ``Authorization: Bearer <sandbox_token>``, the token written next to
``sandbox_url`` in the state file (mode 600). Bodies are bounded and validated: a bad one gets a
4xx with a reason, never a 5xx.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.bounded_json import BadBody, loads_object
from bot.sandbox.world import PIPELINE_JOBS, World
from bot.webhook_models import BadField, check
from bot.workflows.rules import REPO_NAME_PATTERN
from services.emulators.base import EmulatorServer

MAX_BODY = 4096  # bytes: the largest valid body is well under 200
_PIPELINE = rf"^(?:success|(?:fail|stuck):(?:{'|'.join(PIPELINE_JOBS)}))$"
# <project>/<repo> with the platform's naming rules (bot/workflows/rules.py: PROJECT_NAME, REPO_NAME).
_REPOSITORY = rf"^[a-z0-9]{{2,20}}/{REPO_NAME_PATTERN}$"


class ScenarioBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    repository: Annotated[str, Field(max_length=41, pattern=_REPOSITORY)]
    pipeline: Annotated[str, Field(max_length=16, pattern=_PIPELINE)]
    quality: Literal["passed", "failed"] = "passed"


class DegradeBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    service: Annotated[str, Field(max_length=32, pattern=r"^[A-Za-z]+$")]
    mode: Literal["degraded", "down", "ok"] = "degraded"


EXPECTED = {
    "scenario": '{"repository": "<project>/<repo>", "pipeline": "success"|"fail:<job>"|"stuck:<job>", '
    '"quality": "passed"|"failed"}',
    "degrade": '{"service": "<service>", "mode": "degraded"|"down"|"ok"}',
}


def _error(status: int, error: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, **extra}, status_code=status)


class ControlApi:
    """The Starlette app of the switches, for one world and one token."""

    def __init__(self, world: World, token: str) -> None:
        self.world = world
        self.token = token
        self.app = Starlette(
            routes=[
                Route("/scenario", self.scenario, methods=["POST"]),
                Route("/degrade", self.degrade, methods=["POST"]),
            ]
        )

    def _refused(self, request: Request) -> JSONResponse | None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return _error(401, "missing bearer token", hint="Authorization: Bearer <sandbox_token of the state file>")
        if not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            return _error(401, "invalid token")
        return None

    async def _body(self, request: Request, kind: str, model: type[Any]) -> Any:
        """The validated body, or the 4xx response that refuses it."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY:
            return _error(413, f"body larger than {MAX_BODY} bytes")
        raw = b""
        async for chunk in request.stream():  # a chunked body has no length: count as it comes
            raw += chunk
            if len(raw) > MAX_BODY:
                return _error(413, f"body larger than {MAX_BODY} bytes")
        try:
            return check(model, loads_object(raw))
        except BadBody as bad:
            field = bad.field if isinstance(bad, BadField) else ""
            return _error(400, bad.reason, field=field, expected=EXPECTED[kind])

    async def scenario(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        body = await self._body(request, "scenario", ScenarioBody)
        if isinstance(body, Response):
            return body
        root = self.world.config.platform.root_group if self.world.config else "forge/projects"
        path = f"{root}/{body.repository}"
        # As :scenario: a repository not created yet follows it from its first pipeline.
        self.world.scenario(path, pipeline=body.pipeline, quality=body.quality)
        return JSONResponse(
            {"repository": body.repository, "path": path, "pipeline": body.pipeline, "quality": body.quality}
        )

    async def degrade(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        body = await self._body(request, "degrade", DegradeBody)
        if isinstance(body, Response):
            return body
        services = sorted(name for name in self.world.states if name != "mattermost")
        try:
            self.world.degrade(body.service, body.mode)
        except ValueError as refused_name:  # Mattermost, or a service this world does not run
            return _error(422, str(refused_name), services=services)
        return JSONResponse({"service": body.service.lower(), "mode": body.mode})


class ControlServer:
    """:class:`ControlApi` served on loopback; :meth:`state` is what the state file gets."""

    def __init__(self, world: World) -> None:
        self.token = secrets.token_urlsafe(32)
        self.server = EmulatorServer(ControlApi(world, self.token).app, name="sandbox-control")

    def start(self) -> ControlServer:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def state(self) -> dict[str, str]:
        return {"sandbox_url": self.server.url, "sandbox_token": self.token}
