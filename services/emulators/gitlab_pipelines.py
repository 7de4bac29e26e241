"""CI of the GitLab emulator: pipeline and job routes, the trigger endpoint, and the engine.

The engine runs each pipeline as an asyncio task on the server's loop. On a project's ``mirror``
repository the only job, ``sync``, reads ``PROJECT_NAME``/``GIT_BRANCH_DEPLOY``/``SYNC_ALL`` and
pushes a commit to ``<group>/<PROJECT_NAME>`` (which sends a Push Hook and starts that
repository's own pipeline). Other projects run test → sonar → build → trivy → push. Per-project
``State.scenarios`` make a job fail (``"fail:<job>"``) or hang until the stuck timeout
(``"stuck:<job>"``). Every transition is sent to subscribed webhooks (``gitlab_hooks``).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import mimetypes
import threading
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.responses import Response, StreamingResponse

from services.emulators.gitlab_hooks import (
    Dispatcher,
    hooks_for,
    job_payload,
    pipeline_payload,
    push_payload,
)
from services.emulators.gitlab_http import (
    ApiError,
    Ctx,
    Router,
    as_bool,
    forbidden,
    json_response,
    not_found,
    paged_response,
    param_error,
    require,
)
from services.emulators.gitlab_repo import Action, Commit, now_iso
from services.emulators.gitlab_state import (
    DEVELOPER,
    REPORTER,
    Job,
    Pipeline,
    Project,
    User,
)
from services.emulators.gitlab_views import job_json, pipeline_json

if TYPE_CHECKING:
    from services.emulators.gitlab_state import State

router = Router()

MIRROR_JOBS = [("sync", "sync")]
BUILD_JOBS = [("test", "test"), ("sonar", "sonar"), ("build", "build"), ("trivy", "trivy"), ("push", "push")]
ACTIVE = ("created", "pending", "running")
# A token-shaped value the bot must mask when it relays a failed job's log (built so it is not a literal).
FAKE_TOKEN = "glpat-" + "X" * 20
FAKE_TOKEN_LINE = "Using token " + FAKE_TOKEN
# When the shared fixtures are absent: a clean image report as Trivy writes it, `Results` left out
# (omitempty in aquasecurity/trivy:pkg/types/report.go), never an empty list.
MINIMAL_TRIVY_REPORT = {
    "SchemaVersion": 2,
    "CreatedAt": "2026-01-01T00:00:00Z",
    "ArtifactName": "app",
    "ArtifactType": "container_image",
    "Metadata": {"OS": {"Family": "alpine", "Name": "3.20.3"}, "ImageID": "sha256:" + "0" * 64},
}
CI_TEMPLATE = """include:
  - project: $CATALOG_PATH
    file: vault-ci.yml
    ref: main
stages: [read-secret, test, sonar, build, trivy, push]
"""


def image_digest(repository: str, sha: str) -> str:
    """The digest the build job's image gets (the registry is told the same one at push)."""
    return "sha256:" + hashlib.sha256(f"{repository}@{sha}".encode()).hexdigest()


def scanned_as(report: dict[str, Any], repository: str, sha: str) -> dict[str, Any]:
    """The report ``trivy image ${IMAGE_REPOSITORY}:${CI_COMMIT_SHORT_SHA}`` writes for the fixture's
    image pushed as ``repository``: the reference as given is the ``ArtifactName``, and the OS
    result's ``Target`` is ``"<reference> (<family> <version>)"``; ``Metadata.RepoTags`` and
    ``RepoDigests`` name it too (aquasecurity/trivy:pkg/types/report.go, pkg/scanner/local/scan.go
    ``Target: fmt.Sprintf("%s (%s %s)", target, …)``)."""
    reference = f"{repository}:{sha[:8]}"
    scanned = dict(report, ArtifactName=reference)
    metadata = dict(report.get("Metadata") or {})
    metadata["RepoTags"] = [reference]
    metadata["RepoDigests"] = [f"{repository}@{image_digest(repository, sha)}"]
    if "Reference" in metadata:
        metadata["Reference"] = reference
    scanned["Metadata"] = metadata
    os_info = metadata.get("OS") or {}
    results = []
    for result in report.get("Results") or ():
        if isinstance(result, dict) and result.get("Class") == "os-pkgs":
            result = dict(result, Target=f"{reference} ({os_info.get('Family', '')} {os_info.get('Name', '')})")
        results.append(result)
    if "Results" in report:
        scanned["Results"] = results
    return scanned


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
    with state.lock:
        if ref not in project.repo.branches:
            raise ApiError(400, {"message": {"base": ["Reference not found"]}})
        commit = project.repo.commits[project.repo.branches[ref]]
        if not ci_config_present(project, commit):
            raise ApiError(400, {"message": {"base": ["Missing CI config file"]}})
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


# --- routes ----------------------------------------------------------------------------------


@router.route("POST", "/api/v4/projects/{id}/trigger/pipeline", public=True)
async def trigger_pipeline(ctx: Ctx, state: State) -> Response:
    require(ctx.params, "ref", "token")
    with state.lock:
        try:
            project = state.project(ctx.path["id"])
        except ApiError:
            raise not_found() from None
        token = str(ctx.params["token"])
        trigger = next((t for t in state.triggers.values() if t.project_id == project.id and t.token == token), None)
        if trigger is None:
            raise not_found()  # GitLab answers a bad trigger token with a plain 404
        trigger.last_used = now_iso()
        variables = _variables(ctx.arg("variables"))
        pipeline = create_pipeline(state, project, str(ctx.params["ref"]), "trigger", trigger.owner_id, variables)
        return json_response(pipeline_json(state, pipeline, detail=True), status=201)


def _ci_project(ctx: Ctx, state: State, level: int = REPORTER) -> Project:
    project = state.visible_project(ctx.path["id"], ctx.user_id)
    if (project.visibility == "private" or level > REPORTER) and state.project_access(ctx.user_id, project) < level:
        raise forbidden()
    return project


def _pipeline(state: State, project: Project, pipeline_id: str) -> Pipeline:
    pipeline = state.pipelines.get(int(pipeline_id)) if pipeline_id.isdigit() else None
    if pipeline is None or pipeline.project_id != project.id:
        raise not_found()
    return pipeline


def _job(state: State, project: Project, job_id: str) -> Job:
    job = state.jobs.get(int(job_id)) if job_id.isdigit() else None
    if job is None or job.project_id != project.id:
        raise not_found()
    return job


def _scoped(ctx: Ctx, jobs: list[Job]) -> list[Job]:
    scope = ctx.arg("scope")
    if scope:
        wanted = scope if isinstance(scope, list) else [scope]
        jobs = [j for j in jobs if j.status in wanted]
    return jobs


def _parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _time_arg(ctx: Ctx, name: str) -> datetime | None:
    """An ISO 8601 DateTime parameter (Grape's coercion answers 400 "<name> is invalid")."""
    value = ctx.arg(name)
    if value in (None, ""):
        return None
    try:
        return _parse_time(str(value))
    except ValueError as exc:
        raise param_error(f"{name} is invalid") from exc


@router.route("GET", "/api/v4/projects/{id}/pipelines")
async def list_pipelines(ctx: Ctx, state: State) -> Response:
    with state.lock:
        project = _ci_project(ctx, state)
        pipelines = [p for p in state.pipelines.values() if p.project_id == project.id]
        for key in ("ref", "status", "source", "sha"):
            if ctx.arg(key):
                pipelines = [p for p in pipelines if getattr(p, key) == ctx.arg(key)]
        # app/finders/ci/pipelines_finder.rb by_updated_at: updated_at >= updated_after, <= before.
        after, before = _time_arg(ctx, "updated_after"), _time_arg(ctx, "updated_before")
        if after is not None:
            pipelines = [p for p in pipelines if _parse_time(p.updated_at) >= after]
        if before is not None:
            pipelines = [p for p in pipelines if _parse_time(p.updated_at) <= before]
        order = str(ctx.arg("order_by", "id"))
        sort_key: dict[str, Any] = {
            "id": lambda p: p.id,
            "status": lambda p: (p.status, p.id),
            "ref": lambda p: (p.ref, p.id),
            "updated_at": lambda p: (p.updated_at, p.id),
            "user_id": lambda p: (p.user_id or 0, p.id),
        }
        pipelines.sort(key=sort_key.get(order, sort_key["id"]), reverse=str(ctx.arg("sort", "desc")) != "asc")
        return paged_response(ctx.request, [pipeline_json(state, p) for p in pipelines])


@router.route("GET", "/api/v4/projects/{id}/pipelines/latest")
async def latest_pipeline(ctx: Ctx, state: State) -> Response:
    with state.lock:
        project = _ci_project(ctx, state)
        ref = str(ctx.arg("ref", project.repo.default_branch))
        found = [p for p in state.pipelines.values() if p.project_id == project.id and p.ref == ref]
        if not found:
            raise not_found()
        return json_response(pipeline_json(state, max(found, key=lambda p: p.id), detail=True))


@router.route("GET", "/api/v4/projects/{id}/pipelines/{pipeline_id}")
async def get_pipeline(ctx: Ctx, state: State) -> Response:
    with state.lock:
        project = _ci_project(ctx, state)
        pipeline = _pipeline(state, project, ctx.path["pipeline_id"])
        return json_response(pipeline_json(state, pipeline, detail=True))


@router.route("GET", "/api/v4/projects/{id}/pipelines/{pipeline_id}/variables")
async def pipeline_variables(ctx: Ctx, state: State) -> Response:
    with state.lock:
        project = _ci_project(ctx, state, DEVELOPER)
        pipeline = _pipeline(state, project, ctx.path["pipeline_id"])
        return json_response([{"variable_type": "env_var", **v} for v in pipeline.variables])


@router.route("GET", "/api/v4/projects/{id}/pipelines/{pipeline_id}/jobs")
async def pipeline_jobs(ctx: Ctx, state: State) -> Response:
    with state.lock:
        project = _ci_project(ctx, state)
        pipeline = _pipeline(state, project, ctx.path["pipeline_id"])
        jobs = [state.jobs[i] for i in pipeline.job_ids]
        if as_bool(ctx.arg("include_retried")):
            jobs += [j for j in state.jobs.values() if j.pipeline_id == pipeline.id and j.retried]
        jobs = sorted(_scoped(ctx, jobs), key=lambda j: j.id, reverse=True)
        return paged_response(ctx.request, [job_json(state, j) for j in jobs])


@router.route("POST", "/api/v4/projects/{id}/pipeline")
async def run_pipeline(ctx: Ctx, state: State) -> Response:
    require(ctx.params, "ref")
    with state.lock:
        project = _ci_project(ctx, state, DEVELOPER)
        variables = _variables(ctx.arg("variables"))
        pipeline = create_pipeline(state, project, str(ctx.params["ref"]), "api", ctx.user_id, variables)
        return json_response(pipeline_json(state, pipeline, detail=True), status=201)


@router.route("POST", "/api/v4/projects/{id}/pipelines/{pipeline_id}/cancel")
async def cancel_pipeline(ctx: Ctx, state: State) -> Response:
    with state.lock:
        project = _ci_project(ctx, state, DEVELOPER)
        pipeline = _pipeline(state, project, ctx.path["pipeline_id"])
        state.engine.cancel(pipeline.id)
        return json_response(pipeline_json(state, pipeline, detail=True))


@router.route("POST", "/api/v4/projects/{id}/pipelines/{pipeline_id}/retry")
async def retry_pipeline(ctx: Ctx, state: State) -> Response:
    with state.lock:
        project = _ci_project(ctx, state, DEVELOPER)
        pipeline = _pipeline(state, project, ctx.path["pipeline_id"])
        state.engine.retry(pipeline.id)
        return json_response(pipeline_json(state, pipeline, detail=True), status=201)


@router.route("GET", "/api/v4/projects/{id}/jobs")
async def project_jobs(ctx: Ctx, state: State) -> Response:
    with state.lock:
        project = _ci_project(ctx, state)
        jobs = [j for j in state.jobs.values() if j.project_id == project.id and not j.retried]
        jobs = sorted(_scoped(ctx, jobs), key=lambda j: j.id, reverse=True)
        return paged_response(ctx.request, [job_json(state, j) for j in jobs])


@router.route("GET", "/api/v4/projects/{id}/jobs/{job_id}")
async def get_job(ctx: Ctx, state: State) -> Response:
    with state.lock:
        project = _ci_project(ctx, state)
        return json_response(job_json(state, _job(state, project, ctx.path["job_id"])))


@router.route("GET", "/api/v4/projects/{id}/jobs/{job_id}/trace")
async def job_trace(ctx: Ctx, state: State) -> Response:
    with state.lock:
        project = _ci_project(ctx, state)
        job = _job(state, project, ctx.path["job_id"])
        lines = list(job.trace)

    def chunks() -> Iterator[bytes]:
        # Sent in pieces, like GitLab's chunked trace: a multi-MB log is never one string here.
        batch: list[str] = []
        size = 0
        for line in lines:
            batch.append(line + "\n")
            size += len(line) + 1
            if size >= 65536:
                yield "".join(batch).encode()
                batch, size = [], 0
        if batch:
            yield "".join(batch).encode()

    return StreamingResponse(chunks(), media_type="text/plain")


@router.route("GET", "/api/v4/projects/{id}/jobs/{job_id}/artifacts")
async def job_artifacts_archive(ctx: Ctx, state: State) -> Response:
    with state.lock:
        project = _ci_project(ctx, state)
        job = _job(state, project, ctx.path["job_id"])
        files = dict(job.artifacts)
    if not files:
        raise not_found()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    headers = {"Content-Disposition": 'attachment; filename="artifacts.zip"'}
    return Response(buffer.getvalue(), media_type="application/zip", headers=headers)


@router.route("GET", "/api/v4/projects/{id}/jobs/{job_id}/artifacts/{artifact_path:path}")
async def job_artifact_file(ctx: Ctx, state: State) -> Response:
    with state.lock:
        project = _ci_project(ctx, state)
        job = _job(state, project, ctx.path["job_id"])
        data = job.artifacts.get(ctx.path["artifact_path"])
    if data is None:
        raise not_found()
    media = mimetypes.guess_type(ctx.path["artifact_path"])[0] or "application/octet-stream"
    return Response(data, media_type=media)


# --- the engine ------------------------------------------------------------------------------


def _scenario(state: State, project: Project, job: Job) -> str:
    """``"fail"``, ``"stuck"`` or ``"success"`` for this job from ``State.scenarios``."""
    wanted = state.scenarios.get(state.project_path(project), "success")
    kind, _, target = wanted.partition(":")
    if kind in ("fail", "stuck") and target in (job.name, job.stage):
        return kind
    return "success"


SCRIPTS: dict[str, list[str]] = {
    "sync": [
        "$ git clone --mirror https://${GIT_INPUT_URL} repo",
        "$ git push --force --prune https://${GIT_OUTPUT_URL} ${GIT_BRANCH_DEPLOY}",
    ],
    "test": ["$ npm ci", "$ npm test", "Tests: 42 passed, 42 total"],
    "sonar": [
        "$ sonar-scanner -Dsonar.qualitygate.wait=true -Dsonar.projectKey=${PROJECT_KEY}",
        "INFO: ANALYSIS SUCCESSFUL",
    ],
    "build": ["$ /kaniko/executor --context . --destination ${IMAGE_REPOSITORY}:${CI_COMMIT_SHORT_SHA}"],
    "trivy": [
        "$ trivy image --format json --output trivy-report.json ${IMAGE_REPOSITORY}:${CI_COMMIT_SHORT_SHA}",
        "Uploading artifacts...",
        "trivy-report.json: found 1 matching artifact files and directories",
    ],
    "push": ["$ crane tag ${IMAGE_REPOSITORY}:${CI_COMMIT_SHORT_SHA} latest"],
}


class Engine:
    """Runs pipelines as tasks on the server's loop and emits Push/Pipeline/Job hooks."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.hooks = Dispatcher(state)
        self.tasks: dict[int, asyncio.Task[None]] = {}

    # --- entry points (called with state.lock held, on the server's loop) ----------------------

    def start(self, pipeline_id: int) -> None:
        pipeline = self.state.pipelines[pipeline_id]
        for job in self._current_jobs(pipeline):
            if job.status == "created":
                self._job_hook(job)
        self.tasks[pipeline_id] = asyncio.get_running_loop().create_task(self._run(pipeline_id))

    def on_push(
        self,
        project: Project,
        branch: str,
        before: str | None,
        commit: Commit,
        user: User,
        ci_skip: bool = False,
    ) -> None:
        """A branch moved: Push Hook, then the project's pipeline if it has a CI config."""
        state = self.state
        hooks = hooks_for(state, project, "push_events", branch)
        self.hooks.submit("Push Hook", hooks, push_payload(state, project, branch, before, commit, user))
        # The mirror's .gitlab-ci.yml only runs for api/trigger/web/schedule sources; like GitLab,
        # a commit message with [skip ci] or [ci skip] starts no pipeline.
        skip_message = any(marker in commit.message.lower() for marker in ("[skip ci]", "[ci skip]"))
        if ci_skip or skip_message or project.path == "mirror" or not ci_config_present(project, commit):
            return
        create_pipeline(state, project, branch, "push", user.id, [])

    def cancel(self, pipeline_id: int) -> None:
        task = self.tasks.pop(pipeline_id, None)
        if task is not None:
            task.cancel()
        pipeline = self.state.pipelines[pipeline_id]
        if pipeline.status not in ACTIVE:
            return
        for job in self._current_jobs(pipeline):
            if job.status in ACTIVE:
                if job.status == "running":
                    job.trace.append("ERROR: Job failed: canceled")
                self._set_job(job, "canceled")
        self._finish(pipeline, "canceled")

    def retry(self, pipeline_id: int) -> None:
        """Replace failed/canceled/skipped jobs by fresh ones and run the pipeline again."""
        state = self.state
        pipeline = state.pipelines[pipeline_id]
        if pipeline.status in ACTIVE:
            return
        retried = False
        for index, job_id in enumerate(pipeline.job_ids):
            old = state.jobs[job_id]
            if old.status in ("failed", "canceled", "skipped"):
                old.retried = True
                new = Job(
                    state.next_id("job"),
                    pipeline.id,
                    old.project_id,
                    old.name,
                    old.stage,
                    user_id=old.user_id,
                )
                state.jobs[new.id] = new
                pipeline.job_ids[index] = new.id
                retried = True
        if retried:
            # The retry answer already shows the pipeline pending, like GitLab's.
            pipeline.finished_at = None
            self._set_pipeline(pipeline, "pending")
            self.start(pipeline_id)

    async def shutdown(self) -> None:
        for task in list(self.tasks.values()):
            task.cancel()
        await self.hooks.shutdown()

    # --- running -------------------------------------------------------------------------------

    async def _run(self, pipeline_id: int) -> None:
        state = self.state
        with state.lock:
            pipeline = state.pipelines[pipeline_id]
            if pipeline.status != "pending":
                self._set_pipeline(pipeline, "pending")
            jobs = [job for job in self._current_jobs(pipeline) if job.status == "created"]
        for job in jobs:
            if not await self._run_job(pipeline, job):
                with state.lock:
                    for later in self._current_jobs(pipeline):
                        if later.status == "created":
                            self._set_job(later, "skipped")
                    self._finish(pipeline, "failed")
                self.tasks.pop(pipeline_id, None)
                return
        with state.lock:
            self._finish(pipeline, "success")
        self.tasks.pop(pipeline_id, None)

    async def _run_job(self, pipeline: Pipeline, job: Job) -> bool:
        """created → pending → running → success|failed; True when the job succeeded."""
        state = self.state
        step = state.timings.job_seconds
        with state.lock:
            self._set_job(job, "pending")
        await asyncio.sleep(step)
        with state.lock:
            project = state.projects[pipeline.project_id]
            outcome = _scenario(state, project, job)
            job.trace.extend(self._intro(project, pipeline, job))
            self._set_job(job, "running")
            if pipeline.status != "running":
                pipeline.started_at = pipeline.started_at or now_iso()
                self._set_pipeline(pipeline, "running")
        if outcome == "stuck":
            await asyncio.sleep(state.timings.stuck_timeout_seconds)
            with state.lock:
                job.trace.append("ERROR: Job failed: execution took longer than 1h0m0s seconds")
                self._set_job(job, "failed", "job_execution_timeout")
            return False
        await asyncio.sleep(step)
        with state.lock:
            ok = outcome == "success" and self._execute(project, pipeline, job)
            if job.name == "trivy":
                job.artifacts["trivy-report.json"] = self._trivy_report(project, pipeline)
            if ok:
                job.trace.append("Job succeeded")
                self._set_job(job, "success")
            else:
                job.trace.append("ERROR: Job failed: exit code 1")
                self._set_job(job, "failed", "script_failure")
            return ok

    def _intro(self, project: Project, pipeline: Pipeline, job: Job) -> list[str]:
        return [
            "Running with gitlab-runner 18.2.0 (9ba718cd)",
            "  on cpn-runner-kubernetes abc123, system ID: r_cpn0000000001",
            'Preparing the "kubernetes" executor',
            "Getting source from Git repository",
            f"Fetching changes with git depth set to 20... ({self.state.project_path(project)})",
            f"Checking out {pipeline.sha[:8]} as detached HEAD (ref is {pipeline.ref})...",
            'Executing "step_script" stage of the job script',
            FAKE_TOKEN_LINE,
            *SCRIPTS.get(job.name, []),
        ]

    def _execute(self, project: Project, pipeline: Pipeline, job: Job) -> bool:
        if job.name == "sync" and project.path == "mirror":
            return self._sync(project, pipeline, job)
        return True

    def _sync(self, mirror: Project, pipeline: Pipeline, job: Job) -> bool:
        """The mirror job: push the external repository's branch(es) to ``<group>/<PROJECT_NAME>``."""
        state = self.state
        name = pipeline.variable("PROJECT_NAME")
        if not name:
            job.trace.append("ERROR: PROJECT_NAME is not set")
            return False
        group_path = state.full_path(state.namespaces[mirror.namespace_id])
        target = next(
            (p for p in state.projects.values() if state.project_path(p).lower() == f"{group_path}/{name}".lower()),
            None,
        )
        if target is None:
            job.trace.append("remote: The project you were looking for could not be found.")
            job.trace.append(f"fatal: repository '{state.url(f'/{group_path}/{name}.git')}/' not found")
            return False
        if pipeline.variable("SYNC_ALL", "false").lower() == "true":
            branches = sorted(target.repo.branches) or [target.repo.default_branch]
        else:
            branches = [pipeline.variable("GIT_BRANCH_DEPLOY") or "main"]
        user = state.users.get(pipeline.user_id or 1) or state.users[1]
        ci_skip = pipeline.variable("CI_SKIP", "false").lower() == "true"
        for branch in branches:
            before = target.repo.branches.get(branch)
            # A branch new to the internal repository starts from its default branch.
            start = None if before or target.repo.empty else self._base_branch(target)
            commit = target.repo.commit(
                branch,
                self._upstream_actions(target, branch),
                f"Synchronise {branch} from the external repository",
                "cpn-mirror",
                "mirror@cloud-pi-native.fr",
                start_branch=start,
            )
            target.last_activity_at = now_iso()
            job.trace.append(f" + {(before or '0' * 40)[:8]}...{commit.short_id} {branch} -> {branch} (forced update)")
            self.on_push(target, branch, before, commit, user, ci_skip=ci_skip)
        return True

    @staticmethod
    def _base_branch(target: Project) -> str:
        default = target.repo.default_branch
        return default if default in target.repo.branches else sorted(target.repo.branches)[0]

    def _upstream_actions(self, target: Project, branch: str) -> list[Action]:
        """What the external repository brings: its CI file, a README and a changed source file."""
        if branch in target.repo.branches:
            head = target.repo.resolve(branch)
        else:
            head = target.repo.resolve(self._base_branch(target)) if not target.repo.empty else None
        tree = head.tree if head else {}
        config = target.ci_config_path if target.ci_config_path and "@" not in target.ci_config_path else None
        files = {
            config or ".gitlab-ci.yml": CI_TEMPLATE.encode(),
            "README.md": f"# {target.name}\n".encode(),
            "src/VERSION": f"{len(target.repo.commits) + 1}\n".encode(),
        }
        actions = []
        for path, data in files.items():
            if path not in tree:
                actions.append(Action("create", path, data))
            elif tree[path].data != data:
                actions.append(Action("update", path, data))
        return actions

    def _trivy_report(self, project: Project, pipeline: Pipeline) -> bytes:
        # Loaded at run time so the fixture can change without restarting anything.
        try:
            raw = self.state.trivy_report_path.read_bytes()
        except OSError:
            raw = json.dumps(MINIMAL_TRIVY_REPORT).encode()
        repository = (
            self.state.image_repository(self.state.project_path(project)) if self.state.image_repository else None
        )
        if repository is None:
            return raw
        try:
            report = json.loads(raw)
        except ValueError:
            return raw  # a broken fixture stays broken: the bot's handling of it is what is tried
        if not isinstance(report, dict) or report.get("ArtifactType") != "container_image":
            return raw
        return json.dumps(scanned_as(report, repository, pipeline.sha)).encode()

    # --- transitions (state.lock held) ---------------------------------------------------------

    def _current_jobs(self, pipeline: Pipeline) -> list[Job]:
        return [self.state.jobs[job_id] for job_id in pipeline.job_ids]

    def _set_job(self, job: Job, status: str, failure_reason: str | None = None) -> None:
        now = now_iso()
        job.status = status
        if status == "pending":
            job.queued_at = now
        elif status == "running":
            job.started_at = now
        elif status in ("success", "failed", "canceled"):
            job.finished_at = now
        job.failure_reason = failure_reason
        pipeline = self.state.pipelines[job.pipeline_id]
        pipeline.updated_at = now
        self._job_hook(job)
        if status in ("success", "failed") and self.state.job_listeners:
            project = self.state.projects.get(pipeline.project_id)
            info = {
                "project": self.state.project_path(project) if project else "",
                "job": job.name,
                "status": status,
                "ref": pipeline.ref,
                "sha": pipeline.sha,
            }
            for listener in list(self.state.job_listeners):
                # Off the server's loop: a listener may call another emulator over HTTP.
                threading.Thread(target=listener, args=(info,), daemon=True).start()

    def _set_pipeline(self, pipeline: Pipeline, status: str) -> None:
        pipeline.status = status
        pipeline.updated_at = now_iso()
        project = self.state.projects.get(pipeline.project_id)
        if project is None:
            return
        hooks = hooks_for(self.state, project, "pipeline_events")
        self.hooks.submit("Pipeline Hook", hooks, pipeline_payload(self.state, pipeline))

    def _finish(self, pipeline: Pipeline, status: str) -> None:
        pipeline.finished_at = now_iso()
        pipeline.started_at = pipeline.started_at or pipeline.finished_at
        self._set_pipeline(pipeline, status)

    def _job_hook(self, job: Job) -> None:
        project = self.state.projects.get(job.project_id)
        if project is None:
            return
        hooks = hooks_for(self.state, project, "job_events")
        self.hooks.submit("Job Hook", hooks, job_payload(self.state, job))
