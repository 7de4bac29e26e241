"""Pipelines: the trigger endpoint, pipeline creation, and the engine that runs them (phase 2)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from services.emulators.gitlab_http import (
    ApiError,
    Ctx,
    Router,
    json_response,
    not_found,
    require,
)
from services.emulators.gitlab_repo import Commit, now_iso
from services.emulators.gitlab_state import Job, Pipeline, Project, User
from services.emulators.gitlab_views import pipeline_json

if TYPE_CHECKING:
    from services.emulators.gitlab_state import State

router = Router()

MIRROR_JOBS = [("sync", "sync")]
BUILD_JOBS = [("test", "test"), ("sonar", "sonar"), ("build", "build"), ("trivy", "trivy"), ("push", "push")]


def ci_config_present(project: Project, commit: Commit) -> bool:
    path = project.ci_config_path or ".gitlab-ci.yml"
    if "@" in path or "://" in path:
        return True  # a config kept in another project or at a URL: assume it resolves
    return path in commit.tree


def create_pipeline(
    state: State,
    project: Project,
    ref: str,
    source: str,
    user_id: int | None,
    variables: list[dict[str, str]],
) -> Pipeline:
    """Record a pipeline and its jobs (status ``created``) and hand it to the engine."""
    if ref not in project.repo.branches:
        raise ApiError(400, {"message": {"base": ["Reference not found"]}})
    commit = project.repo.commits[project.repo.branches[ref]]
    if not ci_config_present(project, commit):
        raise ApiError(400, {"message": {"base": ["Missing CI config file"]}})
    with state.lock:
        pipeline = Pipeline(
            state.next_id("pipeline"),
            project.next_pipeline_iid,
            project.id,
            commit.id,
            commit.parent_ids[0] if commit.parent_ids else "0" * 40,
            ref,
            source,
            user_id,
            variables=variables,
        )
        project.next_pipeline_iid += 1
        state.pipelines[pipeline.id] = pipeline
        specs = MIRROR_JOBS if project.path == "mirror" else BUILD_JOBS
        for name, stage in specs:
            job = Job(state.next_id("job"), pipeline.id, project.id, name, stage, user_id=user_id)
            state.jobs[job.id] = job
            pipeline.job_ids.append(job.id)
    if state.engine is not None:
        state.engine.start(pipeline.id)
    return pipeline


def _variables(raw: Any) -> list[dict[str, str]]:
    """Trigger variables come as a hash, ``POST /pipeline`` ones as a list of {key, value}."""
    if isinstance(raw, dict):
        return [{"key": str(k), "value": str(v)} for k, v in raw.items()]
    if isinstance(raw, list):
        return [
            {"key": str(item["key"]), "value": str(item.get("value", ""))}
            for item in raw
            if isinstance(item, dict) and "key" in item
        ]
    return []


@router.route("POST", "/api/v4/projects/{id}/trigger/pipeline", public=True)
async def trigger_pipeline(ctx: Ctx, state: State) -> Response:
    require(ctx.params, "ref", "token")
    with state.lock:
        try:
            project = state.project(ctx.path["id"])
        except ApiError:
            raise not_found() from None
        token = str(ctx.params["token"])
        trigger = next(
            (t for t in state.triggers.values() if t.project_id == project.id and t.token == token), None
        )
        if trigger is None:
            raise not_found()  # GitLab answers a bad trigger token with a plain 404
        trigger.last_used = now_iso()
        variables = _variables(ctx.arg("variables"))
        pipeline = create_pipeline(
            state, project, str(ctx.params["ref"]), "trigger", trigger.owner_id, variables
        )
        return json_response(pipeline_json(state, pipeline, detail=True), status=201)


class Engine:
    """Runs pipelines and delivers webhooks on the server's event loop."""

    def __init__(self, state: State) -> None:
        self.state = state

    def start(self, pipeline_id: int) -> None:
        """Phase 1: pipelines stay ``created``."""

    def on_push(self, project: Project, branch: str, before: str | None, commit: Commit, user: User) -> None:
        """Phase 1: no push hooks yet."""

    async def shutdown(self) -> None:
        return None
