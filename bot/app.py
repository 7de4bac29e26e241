"""The bot's HTTP server: slash commands, buttons, dialogs, webhooks, the sync API and probes.

Every request is authenticated before its body is parsed; a body over the limit is refused with
413 before it is read whole; every answer carries an ``X-Request-Id``; nothing a client sends can
produce a traceback in a response.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot import presses, webhooks
from bot.logs import log, request_id_var
from bot.runtime import Bot
from bot.slash import BadForm, SlashCommands, parse_form, token_ok
from bot.spool import REPORT_FILE_HEADER, SPOOL_KEY, BodyTooLarge, ClientGone, Spool, SpoolBusy
from bot.sync_api import sync_request
from bot.worker import metrics_snapshot_path, read_snapshot
from services.errors import ServiceError

logger = logging.getLogger("cpn.http")
access = logging.getLogger("cpn.access")


# gitlabhq/gitlabhq:app/services/web_hook_service.rb, REQUEST_BODY_SIZE_LIMIT = 25.megabytes.
GITLAB_BODY_LIMIT = 25 * 1024 * 1024

Handler = Callable[[Bot, Request], Awaitable[Response]]

# The webhooks, answered by the edge middleware without going through FastAPI: a burst of pipeline
# events is their hot path, and FastAPI's routing, dependencies and telemetry cost a quarter of the
# web process's time. FastAPI declares them too, for its answers to other methods.
WEBHOOKS: dict[str, Handler] = {
    "/hooks/gitlab": webhooks.gitlab_hook,
    "/hooks/argocd": webhooks.argocd_hook,
    "/hooks/sonarqube": webhooks.sonarqube_hook,
    "/hooks/trivy": webhooks.trivy_hook,
    "/hooks/harbor": webhooks.harbor_hook,
}


class EdgeMiddleware:
    """Request id, body-size limit, access log and request metrics, for every route."""

    def __init__(self, app: ASGIApp, bot: Bot) -> None:
        self.app = app
        self.bot = bot
        self.limit = bot.config.server.max_body_bytes
        self.report_limit = bot.config.server.max_report_bytes
        self.spool = Spool.of(bot.config)
        self.spool.prepare(_pending_reports(bot))  # what a crash left in flight goes

    async def __call__(self, scope: Scope, receive_raw: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive_raw, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex[:16]
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        body_done = scope["method"] in ("GET", "HEAD")

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
                if not body_done and length != b"0":
                    # Answered before the body was read (a refusal): close rather than let uvicorn
                    # read and discard the rest to keep the connection alive.
                    message["headers"].append((b"connection", b"close"))
            await send(message)

        async def receive_tracked() -> Message:
            nonlocal body_done
            message = await receive_raw()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        limit = self._limit(scope["path"])
        length = headers.get(b"content-length")
        receive = receive_tracked
        try:
            if length is not None and (not length.isdigit() or int(length) > limit):
                await self._too_large(scope, receive, send_with_id)
                return
            direct = WEBHOOKS.get(scope["path"]) if scope["method"] == "POST" else None
            if direct is not None:
                # A webhook authenticates from its headers before any body byte is read: an
                # unauthenticated sender cannot make the bot buffer its upload.
                await self._direct(direct, scope, receive, send_with_id, limit)
                return
            # Read the body up to the limit before the app sees it: a 413 then never races a reply.
            body = bytearray()
            more = scope["method"] not in ("GET", "HEAD")
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    return
                body += message.get("body", b"")
                more = message.get("more_body", False)
                if len(body) > limit:
                    await self._too_large(scope, receive, send_with_id)
                    return
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": bytes(body), "more_body": False}
                return await receive()

            await self.app(scope, replay, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_label(scope)
            self.bot.metrics.inc("cpn_http_requests_total", route=route, status=str(status))
            self.bot.metrics.observe("cpn_http_request_seconds", elapsed, route=route)
            if route != "/metrics":
                log(
                    access,
                    logging.INFO,
                    "request",
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    ms=round(elapsed * 1000, 2),
                )
            request_id_var.reset(token)

    async def _direct(self, handler: Handler, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        length = dict(scope["headers"]).get(b"content-length")
        upload = self.spool.upload(int(length) if length is not None else None)
        # The handler authenticates from the headers, then reads the body through this Upload
        # (bot.spool.read_body): in memory when small, to a 0600 file past the threshold.
        scope[SPOOL_KEY] = (upload, limit)
        try:
            response = await handler(self.bot, Request(scope, receive))
        except BodyTooLarge:
            upload.close()
            await self._too_large(scope, receive, send)
            return
        except SpoolBusy:
            response = JSONResponse(
                {"error": "too many large uploads at once; send it again later"},
                status_code=503,
                headers={"Retry-After": "5"},
            )
        except ClientGone:
            return
        except Exception as exc:  # as FastAPI's handler below does for the other routes
            log(logger, logging.ERROR, "unhandled error", path=scope["path"], error=type(exc).__name__)
            response = _json_error(500, "internal error", request_id=request_id_var.get())
        finally:
            upload.close()
        await response(scope, receive, send)

    def _limit(self, path: str) -> int:
        if path == "/hooks/trivy":
            return self.report_limit
        if path == "/hooks/gitlab":  # GitLab sends up to its own limit; refusing less loses events
            return max(self.limit, GITLAB_BODY_LIMIT)
        return self.limit

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self._limit(scope["path"])
        response = JSONResponse({"error": "request body too large", "limit": limit}, status_code=413)
        await response(scope, receive, send)


def _pending_reports(bot: Bot) -> set[str]:
    """The spooled reports pending inbox events still name (the others are leftovers)."""
    rows = bot.store.inbox_db.execute(
        "SELECT headers FROM inbox WHERE source = 'trivy' AND status = 'pending' AND headers LIKE ?",
        (f"%{REPORT_FILE_HEADER}%",),
    ).fetchall()
    names: set[str] = set()
    for (headers,) in rows:
        try:
            names.add(str(json.loads(headers).get(REPORT_FILE_HEADER, "")))
        except (ValueError, AttributeError):
            continue
    return names


KNOWN_ROUTES = (
    "/mattermost/command",
    "/mattermost/actions",
    "/mattermost/dialogs",
    "/hooks/gitlab",
    "/hooks/sonarqube",
    "/hooks/argocd",
    "/hooks/trivy",
    "/hooks/harbor",
    "/healthz",
    "/readyz",
    "/metrics",
)


def _route_label(scope: Scope) -> str:
    path: str = scope.get("path", "")
    if path in KNOWN_ROUTES:
        return path
    if path.startswith("/api/v1/projects/") and path.endswith("/sync"):
        return "/api/v1/projects/{project}/repositories/{repo}/sync"
    return "other"


def _json_error(status: int, error: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, **extra}, status_code=status)


def create_app(bot: Bot, manage_lifecycle: bool = True) -> ASGIApp:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            await bot.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                await bot.stop()

    app = FastAPI(title="cpn-bot", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    slash = SlashCommands(bot)
    command_tokens = [t.get_secret_value() for t in bot.config.mattermost.command_tokens]

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log(logger, logging.ERROR, "unhandled error", path=request.url.path, error=type(exc).__name__)
        return _json_error(500, "internal error", request_id=request_id_var.get())

    # -- Mattermost ---------------------------------------------------------------------------

    async def command(request: Request) -> Response:
        if not token_ok(request.headers.get("authorization"), command_tokens):
            bot.metrics.inc("cpn_command_errors_total", reason="unauthorized")
            return _json_error(401, "invalid or missing command token")
        try:
            if request.method == "GET":
                form = parse_form(request.scope.get("query_string", b""))
            else:
                form = parse_form(await request.body())
        except BadForm as bad:
            bot.metrics.inc("cpn_command_errors_total", reason="bad_form")
            return _json_error(400, bad.reason)
        return JSONResponse(await slash.handle(form))

    app.add_api_route("/mattermost/command", command, methods=["POST", "GET"])

    @app.post("/mattermost/actions")
    async def actions(request: Request) -> Response:
        return await presses.action_request(bot, await request.body())

    @app.post("/mattermost/dialogs")
    async def dialogs(request: Request) -> Response:
        return await presses.dialog_request(bot, await request.body())

    # -- webhooks and the sync API (their issues fill them in) ----------------------------------

    for path, handler in WEBHOOKS.items():
        app.add_api_route(path, _bound(bot, handler), methods=["POST"])

    @app.post("/api/v1/projects/{project}/repositories/{repo}/sync")
    async def sync_api(project: str, repo: str, request: Request) -> Response:
        return await sync_request(bot, project, repo, request)

    # -- probes ---------------------------------------------------------------------------------

    @app.get("/healthz")
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    metrics_token = bot.config.server.metrics_token

    def probe_authorized(request: Request) -> bool:
        """``Authorization: Bearer <metrics_token>`` (compared in constant time); True when unset."""
        if metrics_token is None:
            return True
        scheme, _, given = (request.headers.get("authorization") or "").partition(" ")
        expected = metrics_token.get_secret_value().encode()
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode("utf-8", "replace"), expected)

    @app.get("/readyz")
    async def readyz(request: Request) -> Response:
        checks: dict[str, str] = {}
        try:
            checks["store"] = "ok" if bot.store.ping() else "failed"
        except Exception:
            checks["store"] = "failed"
        try:
            checks["mattermost"] = "ok" if await bot.mm.ping() else "failed"
        except ServiceError:
            checks["mattermost"] = "unreachable"
        for supervisor in bot.workers:
            checks[f"worker:{supervisor.role.value}"] = "ok" if supervisor.alive() else "down"
        ready = all(v == "ok" for v in checks.values())
        body: dict[str, Any] = {"ready": ready}
        if probe_authorized(request):
            body["checks"] = checks  # which service is down is for the operator's eyes only
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        if not probe_authorized(request):
            return JSONResponse(
                {"error": "invalid or missing bearer token"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        others = [read_snapshot(metrics_snapshot_path(bot.config, s.role)) for s in bot.workers]
        text = bot.metrics.render([o for o in others if o is not None])
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    return EdgeMiddleware(app, bot)


def _bound(bot: Bot, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await handler(bot, request)

    return endpoint
