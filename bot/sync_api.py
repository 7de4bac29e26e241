"""``POST /api/v1/projects/{project}/repositories/{repo}/sync``: what the teams' own CI calls.

Authenticated with a per-project token of ``/cpn token create`` (kept as a hash), rate limited
per token. The channel is told that CI asked for a sync, and follows it like any other.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from bot.bounded_json import BadBody, loads_object
from bot.netpolicy import AddressRefused
from bot.notifications import start_sync
from bot.store import now
from bot.webhook_models import BadField, check
from bot.workflows.rules import valid_branch
from services.errors import ServiceError

if TYPE_CHECKING:
    from bot.runtime import Bot


class SyncBody(BaseModel):
    """``{"branch": "…"}``, ``{"all": true}`` or ``{}``: strict types, no other field."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    # Git refs have no length limit of their own; GitLab's branch names stay well under this.
    branch: Annotated[str, Field(max_length=255)] | None = None
    all: bool = False


def read_body(raw: bytes) -> SyncBody:
    """The request's body; :class:`BadField` (a :class:`BadBody`) with a reason if it is not one."""
    if not raw.strip():
        return SyncBody()
    return check(SyncBody, loads_object(raw))


def _error(status: int, error: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, **extra}, status_code=status)


async def sync_request(bot: Bot, project_name: str, repo_name: str, request: Request) -> Response:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _error(401, "missing bearer token", hint="Authorization: Bearer <token from /cpn token create>")
    digest = hashlib.sha256(token.strip().encode()).hexdigest()
    row = bot.store.db.execute(
        "SELECT id, project_id FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL", (digest,)
    ).fetchone()
    if row is None:
        bot.metrics.inc("cpn_sync_api_total", outcome="unauthorized")
        return _error(401, "invalid or revoked token")
    token_id, token_project = row
    project = bot.projects.get(project_name)
    if project is None or project.id != token_project:
        bot.metrics.inc("cpn_sync_api_total", outcome="forbidden")
        return _error(403, "this token is not valid for this project")
    repo = bot.projects.repository(project.id, repo_name)
    if repo is None:
        known = [r.name for r in bot.projects.repositories(project.id)]
        return _error(404, "unknown repository", repositories=known)
    wait = bot.sync_limiter.take(str(token_id))
    if wait:
        bot.metrics.inc("cpn_sync_api_total", outcome="rate_limited")
        seconds = max(1, int(wait + 0.999))
        return JSONResponse(
            {"error": "too many sync requests", "retry_after": seconds},
            status_code=429,
            headers={"Retry-After": str(seconds)},
        )
    body = await request.body()
    try:
        data = read_body(body)
    except BadBody as bad:
        field = bad.field if isinstance(bad, BadField) else ""
        return _error(400, bad.reason, field=field, expected='{"branch": "…"} or {"all": true}')
    branch, all_branches = data.branch, data.all
    if branch and all_branches:
        return _error(422, 'give either "branch" or "all", not both')
    if branch is not None and not valid_branch(branch):
        return _error(422, "not a valid branch name", branch=branch[:100])
    if not repo.external_url:
        return _error(422, "this repository has no external source to synchronise")
    try:
        state = await start_sync(bot, project, repo.name, branch or None, all_branches, f"ci:{token_id}")
    except AddressRefused as refused:
        return _error(422, "the repository's source address is refused by the platform", reason=refused.verdict.reason)
    except ServiceError as exc:
        return _error(503, f"{exc.service} is not available, try again later", service=exc.service)
    bot.store.db.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (now(), token_id))
    bot.store.audit(
        f"token:{token_id}",
        "ci",
        "repo.sync",
        f"{project.name}/{repo.name}",
        "ok",
        {"branch": branch or "", "all": all_branches, "pipeline": state.pipeline_id},
    )
    bot.metrics.inc("cpn_sync_api_total", outcome="accepted")
    return JSONResponse(
        {
            "pipeline_id": state.pipeline_id,
            "web_url": state.url,
            "project": project.name,
            "repository": repo.name,
            "branch": branch or ("*" if all_branches else "main"),
        },
        status_code=202,
    )
