"""Inbound webhooks: authenticated first, made durable, then acknowledged.

GitLab signs nothing: it sends the hook's secret token in ``X-Gitlab-Token``. The bot registers
each project's group hook with ``?project=<slug>`` and a secret derived for that project; the
service's master secret is accepted too (instance-level hooks). Every comparison is constant-time.
The body is parsed only once the token is right, and the event is in the inbox before the ``202``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sqlite3
import uuid
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from bot import webhook_models as models
from bot.bounded_json import BadBody, loads, loads_object
from bot.inbox import Delivery
from bot.spool import REPORT_FILE_HEADER, read_body, report_file
from bot.workflows.pipelines import FINAL

if TYPE_CHECKING:
    from bot.model import Project
    from bot.runtime import Bot

KEPT_HEADERS = ("x-gitlab-event", "x-gitlab-instance", "x-gitlab-webhook-uuid", "user-agent")


def pipeline_subject(bot: Bot, event: str, payload: dict[str, Any]) -> tuple[str, bool]:
    """(subject, closes) of a GitLab event: its pipeline, and whether it is the pipeline's final hook.

    A final Pipeline Hook lists every job with its final status, so the pipeline's earlier events
    still waiting need not be folded in. A scan job's hook is never superseded: its report is fetched.
    """
    from bot.scans import is_scan_job

    if event == "Pipeline Hook":
        attrs = payload.get("object_attributes") or {}
        project_id, pipeline_id = (payload.get("project") or {}).get("id"), attrs.get("id")
        closes = attrs.get("status") in FINAL and bool(payload.get("builds"))
    elif event == "Job Hook" and not is_scan_job(bot, str(payload.get("build_name"))):
        project_id, pipeline_id, closes = payload.get("project_id"), payload.get("pipeline_id"), False
    else:
        return "", False
    if not isinstance(project_id, int) or not isinstance(pipeline_id, int):
        return "", False
    return f"pipeline:{project_id}:{pipeline_id}", closes


async def _acknowledge(bot: Bot, delivery: Delivery) -> Response:
    """``202`` once the event is durable; ``503`` if it could not be stored (the database locked
    for too long, or full): not acknowledged, so the sender may send it again."""
    try:
        _, new = await bot.inbox.receive(delivery)
    except sqlite3.Error:
        bot.metrics.inc("cpn_webhooks_refused_total", source=delivery.source, reason="store")
        return JSONResponse(
            {"error": "the event could not be stored; send it again later"},
            status_code=503,
            headers={"Retry-After": "5"},
        )
    bot.metrics.inc("cpn_webhooks_accepted_total", source=delivery.source, duplicate=str(not new).lower())
    return JSONResponse({"accepted": True, "duplicate": not new}, status_code=202)


def json_object(raw: bytes) -> dict[str, Any] | None:
    """The body as a JSON object; None if it is not one (malformed, not UTF-8, a list…)."""
    try:
        return loads_object(raw)
    except BadBody:
        return None


def checked(raw: bytes, model: type[models.Model]) -> dict[str, Any]:
    """The body parsed with bounds and validated against ``model``; :class:`BadBody` if not.

    The worker reads the dict, not the model: the model only proves the dict has the shape the
    worker expects (every field it reads of the right type and size).
    """
    payload = loads_object(raw)
    models.check(model, payload)
    return payload


def refused(bot: Bot, source: str, bad: BadBody) -> JSONResponse:
    """``400`` with the reason and, for a field of the wrong shape, its dotted path."""
    bot.metrics.inc("cpn_webhooks_refused_total", source=source, reason="malformed")
    field = bad.field if isinstance(bad, models.BadField) else ""
    return JSONResponse({"error": bad.reason, "field": field}, status_code=400)


def _equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def gitlab_token_scope(bot: Bot, token: str, slug: str) -> str | None:
    """The project ``token`` authenticates: its slug, ``""`` for the master secret, None if none.

    Every candidate is compared (constant time, whichever matches), so timing says nothing.
    """
    scope: str | None = None
    master = bot.config.gitlab.webhook_secret if bot.config.gitlab else None
    if master is not None and _equal(token, master.get_secret_value()):
        scope = ""
    slugs = [slug] if slug else [p.slug for p in bot.projects.all()]
    for candidate in slugs:
        if _equal(token, bot.webhook_secret("gitlab", candidate)) and scope is None:
            scope = candidate
    return scope


def gitlab_token_ok(bot: Bot, token: str, slug: str) -> bool:
    """Whether ``token`` is the hook secret of ``slug`` (or of any project if none is named)."""
    return gitlab_token_scope(bot, token, slug) is not None


def gitlab_event_path(event: str, payload: dict[str, Any]) -> str:
    """The repository path an event is about, read as the worker reads it (bot.notifications)."""
    project = payload.get("project")
    path = project.get("path_with_namespace") if isinstance(project, dict) else None
    if not path and event == "Job Hook":
        path = payload.get("project_name")
    return str(path or "").replace(" / ", "/")


def _foreign(bot: Bot, scope: str, event: str, payload: dict[str, Any]) -> bool:
    """Whether a project-scoped secret carries an event about a repository of another project."""
    from bot.workflows.pipelines import split_path

    if not scope:  # the master secret: the project comes from the payload
        return False
    path = gitlab_event_path(event, payload)
    if not path:
        return False  # nothing the worker could attribute to any project
    parts = split_path(bot.config.platform.root_group, path)
    return parts is None or parts[0] != scope


async def gitlab_hook(bot: Bot, request: Request) -> Response:
    token = request.headers.get("x-gitlab-token", "")
    slug = request.query_params.get("project", "")[:64]
    scope = gitlab_token_scope(bot, token, slug) if token else None
    if scope is None:
        bot.metrics.inc("cpn_webhooks_refused_total", source="gitlab", reason="token")
        return JSONResponse({"error": "invalid or missing X-Gitlab-Token"}, status_code=401)
    body = (await read_body(request)).bytes()
    event = request.headers.get("x-gitlab-event", "")[:64]
    try:
        payload = checked(body, models.gitlab_model(event))
    except BadBody as bad:
        return refused(bot, "gitlab", bad)
    if _foreign(bot, scope, event, payload):
        # A project's secret vouches only for its own repositories.
        bot.metrics.inc("cpn_webhooks_refused_total", source="gitlab", reason="project")
        return JSONResponse({"error": "this event is not about a repository of this project"}, status_code=403)
    # GitLab keeps the Idempotency-Key across a hook's retries but draws a new X-Gitlab-Event-UUID
    # for every request (gitlabhq/gitlabhq:app/services/web_hook_service.rb, build_headers and
    # async_execute): the key first, the UUID next, the body's hash last.
    delivery = (
        request.headers.get("idempotency-key")
        or request.headers.get("x-gitlab-event-uuid")
        or hashlib.sha256(body).hexdigest()
    )[:128]
    headers = {k: request.headers[k][:200] for k in KEPT_HEADERS if k in request.headers}
    subject, closes = pipeline_subject(bot, event, payload)
    return await _acknowledge(
        bot, Delivery("gitlab", delivery, event, body.decode("utf-8"), headers, slug, subject, closes)
    )


async def argocd_hook(bot: Bot, request: Request) -> Response:
    """Argo CD Notifications: a shared secret in a header, then the event into the inbox."""
    config = bot.config.argocd
    secret = config.webhook_secret.get_secret_value() if config and config.webhook_secret else ""
    given = request.headers.get(config.webhook_header if config else "x-cpn-token", "")
    if not secret or not given or not _equal(given, secret):
        bot.metrics.inc("cpn_webhooks_refused_total", source="argocd", reason="token")
        return JSONResponse({"error": "invalid or missing shared secret"}, status_code=401)
    body = (await read_body(request)).bytes()
    try:
        payload = checked(body, models.ArgoCDHook)
    except BadBody as bad:
        return refused(bot, "argocd", bad)
    delivery = hashlib.sha256(body).hexdigest()
    return await _acknowledge(
        bot, Delivery("argocd", delivery, str(payload.get("event", ""))[:64], body.decode("utf-8"))
    )


async def sonarqube_hook(bot: Bot, request: Request) -> Response:
    """SonarQube: the project from ``X-SonarQube-Project``, its secret derived, the body's HMAC checked."""
    from bot.workflows.quality import delivery_id, owner_of, signature_ok

    def known(slug: str) -> bool:
        return bot.projects.get(slug) is not None

    header_key = request.headers.get("x-sonarqube-project", "")[:200]
    key = header_key or request.query_params.get("project", "")[:200]
    owner = owner_of(key, known)
    slug = owner[0] if owner else request.query_params.get("project", "")[:64]
    # What the headers alone can refuse is refused before the body is read.
    if not slug or bot.projects.get(slug) is None:
        bot.metrics.inc("cpn_webhooks_refused_total", source="sonarqube", reason="project")
        return JSONResponse({"error": "unknown project"}, status_code=401)
    signature = request.headers.get("x-sonar-webhook-hmac-sha256")
    if not signature:
        bot.metrics.inc("cpn_webhooks_refused_total", source="sonarqube", reason="signature")
        return JSONResponse({"error": "invalid or missing X-Sonar-Webhook-HMAC-SHA256"}, status_code=401)
    body = (await read_body(request)).bytes()
    secret = bot.webhook_secret("sonarqube", slug)
    if not signature_ok(secret, body, signature):
        bot.metrics.inc("cpn_webhooks_refused_total", source="sonarqube", reason="signature")
        return JSONResponse({"error": "invalid or missing X-Sonar-Webhook-HMAC-SHA256"}, status_code=401)
    try:
        payload = checked(body, models.SonarQubeHook)
    except BadBody as bad:
        return refused(bot, "sonarqube", bad)
    project = payload.get("project")
    body_key = project.get("key") if isinstance(project, dict) else None
    # The secret is the project's: the body may speak only of that project's Sonar projects.
    body_owner = owner_of(body_key, known) if isinstance(body_key, str) else None
    if body_owner is None or body_owner[0] != slug or (header_key and body_key != header_key):
        bot.metrics.inc("cpn_webhooks_refused_total", source="sonarqube", reason="project")
        return JSONResponse({"error": "the body's project.key is not this project's"}, status_code=403)
    return await _acknowledge(
        bot, Delivery("sonarqube", delivery_id(body), "quality_gate", body.decode("utf-8"), project_key=slug)
    )


async def trivy_hook(bot: Bot, request: Request) -> Response:
    """A Trivy report pushed by the team's CI, with the project's sync API token."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return JSONResponse({"error": "missing bearer token"}, status_code=401)
    row = bot.store.db.execute(
        "SELECT project_id FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL",
        (hashlib.sha256(token.strip().encode()).hexdigest(),),
    ).fetchone()
    if row is None:
        return JSONResponse({"error": "invalid or revoked token"}, status_code=401)
    project = next((p for p in bot.projects.all() if p.id == row[0]), None)
    named = request.query_params.get("project", "")
    if project is None or (named and named != project.name):
        return JSONResponse({"error": "this token is not valid for this project"}, status_code=403)
    repo = request.query_params.get("repo", "")[:40]
    if repo and bot.projects.repository(project.id, repo) is None:
        return JSONResponse({"error": "unknown repository"}, status_code=404)
    upload = await read_body(request)
    if upload.path is None:
        # A spooled (large) report is checked by the worker as it walks it: parsing it here would
        # bring back into memory what the spool keeps on disk.
        try:
            await asyncio.to_thread(_trivy_top_level, upload.bytes())
        except BadBody as bad:
            return refused(bot, "trivy", bad)
    meta = {
        "repo": repo,
        "ref": request.query_params.get("ref", "")[:200],
        "sha": request.query_params.get("sha", "")[:64],
    }
    # The same report pushed twice is two scans; only a retried delivery (same key) is one.
    delivery = request.headers.get("idempotency-key", "")[:128] or uuid.uuid4().hex
    headers = {"meta": json.dumps(meta)}
    if upload.path is not None:
        # A large report stays on disk: the inbox names its file, the worker reads it (mmap).
        name = f"{uuid.uuid4().hex}.json"
        upload.keep(name)
        headers[REPORT_FILE_HEADER] = name
        text = ""
    else:
        text = upload.bytes().decode("utf-8", errors="replace")
    response = await _acknowledge(bot, Delivery("trivy", delivery, "report", text, headers, project_key=project.name))
    spooled = headers.get(REPORT_FILE_HEADER)
    if spooled and (response.status_code != 202 or b'"duplicate":true' in response.body):
        report_file(bot.config.store.path, spooled).unlink(missing_ok=True)  # not stored, or already
    return response


def harbor_scope(bot: Bot, header: str, slug: str) -> Project | None:
    """The project whose Harbor webhook secret ``header`` carries; None if none.

    Harbor sends the policy target's ``auth_header`` verbatim as ``Authorization``
    (goharbor/harbor:src/pkg/notifier/handler/notification/http_handler.go process sets it on the
    job's ``header`` parameter; src/jobservice/job/impl/notification/webhook_job.go execute sends
    that header as is). The bot registers ``Bearer <secret derived for the project>``. Every
    candidate is compared: Harbor keeps no query string on a target (src/server/v2.0/handler/
    webhook.go validateTargets stores scheme://host/path), so ``?project=`` only narrows the
    search for a sender that is not Harbor's policy.
    """
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    scope: Project | None = None
    for project in bot.projects.all():
        if slug and project.slug != slug:
            continue
        if _equal(token, bot.webhook_secret("harbor", project.slug)) and scope is None:
            scope = project
    return scope


async def harbor_hook(bot: Bot, request: Request) -> Response:
    """Harbor's webhook policy: its auth header first, then the body, then the inbox."""
    project = harbor_scope(bot, request.headers.get("authorization", ""), request.query_params.get("project", "")[:64])
    if project is None:
        bot.metrics.inc("cpn_webhooks_refused_total", source="harbor", reason="token")
        return JSONResponse({"error": "invalid or missing Authorization"}, status_code=401)
    body = (await read_body(request)).bytes()
    try:
        payload = checked(body, models.HarborHook)
    except BadBody as bad:
        return refused(bot, "harbor", bad)
    repository = payload["event_data"]["repository"]
    # A project's secret vouches only for its own Harbor project (named after its slug).
    full = repository.get("repo_full_name") or f"{repository['namespace']}/{repository['name']}"
    if repository["namespace"] != project.slug or full != f"{project.slug}/{repository['name']}":
        bot.metrics.inc("cpn_webhooks_refused_total", source="harbor", reason="project")
        return JSONResponse({"error": "this event is not about this project's Harbor project"}, status_code=403)
    # Harbor sends no delivery id; a retry resends the same body (its occur_at included).
    delivery = hashlib.sha256(body).hexdigest()
    return await _acknowledge(
        bot, Delivery("harbor", delivery, str(payload["type"])[:64], body.decode("utf-8"), project_key=project.name)
    )


def _trivy_top_level(body: bytes) -> None:
    """A report that is a JSON object must have a Trivy report's top level (BadField if not).

    Anything else (not JSON, truncated, a bare list…) goes on to bot.workflows.scans, whose walk
    tells the team in the channel why the report is unreadable, as CI output rarely is read.
    """
    try:
        top = loads(body)
    except BadBody:
        return
    if isinstance(top, dict):
        models.check(models.TrivyReport, top)
