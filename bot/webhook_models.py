"""The shapes of inbound webhook bodies, checked at the edge so the worker never fails on one.

Each model names the fields the worker reads, with their JSON types (strict: ``"1"`` is not an
id, ``0`` is not a boolean), integers in SQLite's range and strings of bounded length. Every other
field is allowed and ignored: GitLab adds fields from release to release. A field GitLab sends as
``null`` (a job not started, a pipeline without duration) is nullable here too.

Shapes: gitlabhq/gitlabhq:doc/user/project/integrations/webhook_events.md (Pipeline, Job, Push,
Tag Push and Merge Request events) and the real bodies in /work/shared/fixtures; SonarQube's
SonarSource/sonarqube:server/sonar-server-common/src/main/java/org/sonar/server/webhook/
WebhookPayloadFactoryImpl.java; the Argo CD notification body is the bot's own template
(``{"app", "event", "revision", "healthStatus", ...}``); Trivy's report top level is
aquasecurity/trivy:pkg/types/report.go (``SchemaVersion``, ``ArtifactName``, ``Results``).
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.bounded_json import BadBody

# An id as SQLite stores it: a signed 64-bit integer, never negative on these servers.
Id = Annotated[int, Field(ge=0, lt=2**63)]
Count = Annotated[int, Field(ge=0, lt=2**63)]
Name = Annotated[str, Field(max_length=1024)]  # names, refs, statuses, stages, user names
Url = Annotated[str, Field(max_length=4096)]
Text = Annotated[str, Field(max_length=1_000_000)]  # commit messages, descriptions
Seconds = Annotated[float, Field(ge=0, le=10**9)]


class Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow", frozen=True)


# -- GitLab ------------------------------------------------------------------------------------


class GitLabProject(Model):
    id: Id | None = None
    path_with_namespace: Name | None = None
    default_branch: Name | None = None
    web_url: Url | None = None


class GitLabUser(Model):
    name: Name | None = None
    username: Name | None = None


class GitLabAuthor(Model):
    name: Name | None = None


class PipelineCommit(Model):
    title: Text | None = None
    message: Text | None = None
    author: GitLabAuthor | None = None


class PipelineVariable(Model):
    key: Name
    value: Text | None = None


class PipelineAttributes(Model):
    id: Id
    ref: Name | None = None
    sha: Name | None = None
    source: Name | None = None
    status: Name | None = None
    url: Url | None = None
    stages: list[Name] | None = None
    variables: list[PipelineVariable] | None = None
    finished_at: Name | None = None
    duration: Seconds | None = None


class PipelineBuild(Model):
    id: Id
    name: Name | None = None
    stage: Name | None = None
    status: Name | None = None
    failure_reason: Name | None = None
    finished_at: Name | None = None
    allow_failure: bool | None = None


class PipelineHook(Model):
    object_attributes: PipelineAttributes
    project: GitLabProject
    commit: PipelineCommit | None = None
    user: GitLabUser | None = None
    builds: list[PipelineBuild] | None = None


class JobCommit(Model):
    message: Text | None = None
    author_name: Name | None = None


class JobRepository(Model):
    homepage: Url | None = None


class JobHook(Model):
    build_id: Id
    pipeline_id: Id
    project_id: Id
    project_name: Name | None = None
    build_name: Name | None = None
    build_stage: Name | None = None
    build_status: Name | None = None
    build_failure_reason: Name | None = None
    build_finished_at: Name | None = None
    build_allow_failure: bool | None = None
    ref: Name | None = None
    sha: Name | None = None
    commit: JobCommit | None = None
    project: GitLabProject | None = None
    repository: JobRepository | None = None


class PushHook(Model):
    object_kind: Name | None = None
    ref: Name | None = None
    total_commits_count: Count | None = None
    commits: list[dict[str, Any]] | None = None
    user_name: Name | None = None
    user_username: Name | None = None
    project: GitLabProject | None = None


class MergeRequestAttributes(Model):
    iid: Id | None = None
    title: Text | None = None
    action: Name | None = None
    state: Name | None = None
    url: Url | None = None
    source_branch: Name | None = None
    target_branch: Name | None = None


class MergeRequestHook(Model):
    object_attributes: MergeRequestAttributes
    user: GitLabUser | None = None
    project: GitLabProject | None = None


class OtherGitLabHook(Model):
    """An event the worker does not act on: only what the edge reads of every event."""

    project: GitLabProject | None = None


GITLAB_HOOKS: dict[str, type[Model]] = {
    "Pipeline Hook": PipelineHook,
    "Job Hook": JobHook,
    "Push Hook": PushHook,
    "Tag Push Hook": PushHook,
    "Merge Request Hook": MergeRequestHook,
}


# -- SonarQube, Argo CD, Trivy -------------------------------------------------------------------


class SonarProject(Model):
    key: Name
    name: Name | None = None
    url: Url | None = None


class SonarBranch(Model):
    name: Name | None = None
    type: Name | None = None
    isMain: bool | None = None
    url: Url | None = None


class SonarCondition(Model):
    metric: Name | None = None
    operator: Name | None = None
    value: Name | None = None
    status: Name | None = None
    errorThreshold: Name | None = None


class SonarGate(Model):
    name: Name | None = None
    status: Name | None = None
    conditions: list[SonarCondition] | None = None


class SonarQubeHook(Model):
    project: SonarProject
    serverUrl: Url | None = None
    taskId: Name | None = None
    status: Name | None = None
    analysedAt: Name | None = None
    revision: Name | None = None
    branch: SonarBranch | None = None
    qualityGate: SonarGate | None = None
    properties: dict[str, Text] | None = None


class ArgoCDHook(Model):
    app: Name
    event: Name | None = None
    revision: Name | None = None
    healthStatus: Name | None = None


class TrivyReport(Model):
    """The top level only: bot.workflows.scans walks the results themselves."""

    SchemaVersion: Count | None = None
    ArtifactName: Name | None = None
    ArtifactType: Name | None = None
    Results: list[dict[str, Any]] | None = None


# -- Harbor --------------------------------------------------------------------------------------
# goharbor/harbor:src/pkg/notifier/model/event.go (Payload, EventData, Resource, Repository), filled by
# src/controller/event/handler/webhook/{artifact,scan}; the event types of src/pkg/notifier/model/const.go.
# Resource.tag and scan_overview are omitempty (absent for an untagged artifact, a failed scan), so
# optional here; digest is omitempty too but both handlers always set it, and a card needs it.

HARBOR_EVENTS = ("PUSH_ARTIFACT", "SCANNING_COMPLETED", "SCANNING_FAILED")


class HarborResource(Model):
    digest: Name
    tag: Name | None = None
    resource_url: Url | None = None


class HarborRepository(Model):
    name: Name
    namespace: Name
    repo_full_name: Name | None = None


class HarborEventData(Model):
    resources: Annotated[list[HarborResource], Field(min_length=1, max_length=100)]
    repository: HarborRepository


class HarborHook(Model):
    type: Name
    occur_at: Count | None = None
    operator: Name | None = None
    event_data: HarborEventData


# -- validation --------------------------------------------------------------------------------


class BadField(BadBody):
    """A body of the wrong shape: ``field`` is the dotted path of the first offending field."""

    def __init__(self, reason: str, field: str) -> None:
        super().__init__(reason)
        self.field = field


M = TypeVar("M", bound=BaseModel)


def check(model: type[M], payload: dict[str, Any]) -> M:
    """``payload`` validated against ``model``; :class:`BadField` naming the first bad field."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_context=False, include_input=False)[0]
        field = ".".join(str(part) for part in first["loc"])
        raise BadField(str(first["msg"])[:200], field[:200]) from None


def gitlab_model(event: str) -> type[Model]:
    return GITLAB_HOOKS.get(event, OtherGitLabHook)
