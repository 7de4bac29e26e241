"""Support that looks at the asker's project: in a channel linked to a project, "why did my pipeline fail",
"why is my deploy failing", "how is my project" and "what is X's address" are answered from the project
itself (its last failed pipeline and the masked end of its jobs' logs, ArgoCD's health, the status card,
the project's own links). The questions are recognised by :func:`bot.intents.classify`; without such a
project (or a right to read it) the knowledge base answers, as for any other question.

Gathers data only; ``bot/render/support.py`` writes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from bot.intents import ADDRESS, DEPLOY_FAILURE, PIPELINE_FAILURE, PROJECT_STATUS, Intent, classify
from bot.knowledge import Article
from bot.logs import redact
from bot.model import DeclaredDeployment, Environment, Project, Repository
from bot.render.pipelines import TRACE_LINES
from bot.workflows import deploy as flow
from bot.workflows.naming import MIRROR_REPO, Names
from bot.workflows.pipelines import JobState, PipelineBook, PipelineState
from bot.workflows.support import platform_urls
from services.errors import ServiceError
from services.gitlab import TraceTail

if TYPE_CHECKING:
    from bot.runtime import Bot

#: At most this many failed jobs of a pipeline are shown (each with its log's end).
MAX_JOBS = 3
#: The article that explains a failed job, by job name or stage (globs); the Trivy jobs are the
#: configured ``gitlab.trivy_job_pattern`` too. Other jobs: the article the end of their log points to.
JOB_ARTICLES: tuple[tuple[str, str], ...] = (
    ("trivy*", "scan-vulnerabilites-trivy"),
    ("sonar*", "quality-gate-sonarqube"),
    ("read-secret*", "job-read-secret"),
    ("read_secret*", "job-read-secret"),
    ("sync*", "echec-synchronisation"),
    ("mirror*", "echec-synchronisation"),
    ("build*", "image-personnalisee"),
    ("kaniko*", "image-personnalisee"),
    ("docker*", "image-personnalisee"),
)
#: ArgoCD states that are not a failure (argoproj/argo-cd:pkg/health/health.go HealthStatusCode).
SOUND_HEALTH = ("Healthy", "Progressing", "Suspended")
#: Operation phases that are a failure (argoproj/argo-cd:pkg/apis/application/v1alpha1/types.go
#: OperationPhase: Running, Terminating, Failed, Error, Succeeded).
FAILED_PHASES = ("Failed", "Error")


@dataclass(frozen=True)
class FailedJob:
    job: JobState
    trace: str  # the end of its log, secrets masked
    skipped: int  # lines of the log before ``trace``
    article: Article | None  # the knowledge base's article for this job


@dataclass(frozen=True)
class PipelineFailure:
    project: Project
    pipeline: PipelineState | None  # None: no failed pipeline on the project's repositories
    jobs: tuple[FailedJob, ...] = ()


@dataclass(frozen=True)
class AppHealth:
    env: str
    app: str
    url: str
    health: str
    sync: str
    phase: str
    message: str  # the last operation's message (a failed sync says why)
    unhealthy: tuple[flow.UnhealthyResource, ...]


@dataclass(frozen=True)
class DeployFailure:
    project: Project
    failing: tuple[AppHealth, ...]  # empty: every application is sound
    checked: int  # applications looked at


@dataclass(frozen=True)
class ProjectStatus:
    """What ``/cpn status`` shows (bot.render.status.status_card)."""

    project: Project
    repositories: list[tuple[Repository, PipelineState | None]]
    environments: list[tuple[Environment, list[tuple[str, dict[str, Any] | None, str]], dict[str, Any] | None]]
    extras: dict[str, list[str]]
    declared: list[DeclaredDeployment] | None = None  # the console's deployments; None in direct mode


@dataclass(frozen=True)
class Address:
    service: str  # gitlab, registry, sonarqube, argocd, vault, nexus, console
    url: str  # "" when the platform has no such service
    project: Project | None  # the project whose link this is; None: the platform's address


Found = PipelineFailure | DeployFailure | ProjectStatus | Address


@dataclass(frozen=True)
class Contextual:
    intent: Intent
    found: Found | None  # None: no project to look at, the knowledge base answers


def project_links(bot: Bot, project: Project) -> dict[str, str]:
    """The project's page on each service (``/cpn project show``, and the answer to "what is X's address")."""
    names = Names(bot.config.platform.root_group, project.slug)
    platform, links = bot.platform, {}
    if platform.gitlab:
        links["gitlab"] = platform.gitlab.ui_url(names.group)
    if platform.registry:
        links["registry"] = platform.registry.ui_url(project.slug)
    if platform.nexus:
        links["nexus"] = platform.nexus.ui_url(project.slug)
    if platform.sonarqube:
        links["sonarqube"] = f"{platform.sonarqube.base_url}/projects?search={project.slug}"
    if platform.argocd:
        links["argocd"] = platform.argocd.ui_url(names.argocd_project)
    return links


async def readable_project(bot: Bot, channel_id: str, user_id: str) -> Project | None:
    """The one project linked to the channel, when the asker may read it (a member, or platform staff)."""
    linked = bot.projects.linked_to(channel_id)
    if len(linked) != 1:
        return None  # none, or several: which one the question is about is not known
    project = linked[0]
    if bot.projects_roles(project.name, user_id) is not None:
        return project
    return project if (await bot.identities.get(user_id)).is_platform_admin else None


def job_article(bot: Bot, job: JobState, trace: str) -> Article | None:
    """The article for a failed job: by its name or stage, else the one the end of its log points to."""
    articles = {a.id: a for a in bot.kb.articles}
    patterns = list(JOB_ARTICLES)
    if bot.config.gitlab is not None:
        patterns.insert(0, (bot.config.gitlab.trivy_job_pattern, "scan-vulnerabilites-trivy"))
    for pattern, article_id in patterns:
        if (fnmatchcase(job.name, pattern) or fnmatchcase(job.stage, pattern)) and article_id in articles:
            return articles[article_id]
    tail = " ".join(line for line in trace.splitlines()[-5:] if "ERROR: Job failed" not in line)
    answer = bot.kb.answer(f"{job.name} {tail}")
    return answer.best.article if answer.known and answer.best else None


async def pipeline_failure(bot: Bot, project: Project) -> PipelineFailure:
    """The project's most recent failed pipeline (the last pipeline of each repository, the mirror's too)."""
    book = PipelineBook(bot.store)
    names = [r.name for r in bot.projects.repositories(project.id)] + [MIRROR_REPO]
    last = [recent[0] for name in names if (recent := book.recent(project.id, name, 1))]
    failed = sorted((s for s in last if s.status == "failed"), key=lambda s: s.updated_at, reverse=True)
    if not failed:
        return PipelineFailure(project, None)
    state = failed[0]
    jobs = []
    for job in state.failed_jobs[:MAX_JOBS]:
        tail = TraceTail("", 0)
        if bot.platform.gitlab is not None:
            try:
                tail = await bot.platform.gitlab.job_trace_tail(state.gitlab_project_id, job.id, lines=TRACE_LINES)
            except ServiceError:
                pass  # the job is still named, with its stage and link; its log is not
        trace = redact(tail.text)
        jobs.append(FailedJob(job, trace, tail.skipped, job_article(bot, job, trace)))
    return PipelineFailure(project, state, tuple(jobs))


async def deploy_failure(bot: Bot, project: Project) -> DeployFailure:
    """ArgoCD's view of each application of the project (none checked without an infra repository)."""
    argocd = bot.platform.argocd
    infra = [r for r in bot.projects.repositories(project.id) if r.is_infra]
    environments = bot.projects.environments(project.id)
    if argocd is None or not infra or not environments:
        return DeployFailure(project, (), 0)
    names = Names(bot.config.platform.root_group, project.slug)
    failing, checked = [], 0
    for env in environments:
        for repo in infra:
            name = names.argocd_app(env.name, repo.name)
            try:
                app = await argocd.get_application(name)
            except ServiceError:
                app = None
            checked += 1
            if app is None:
                failing.append(AppHealth(env.name, name, argocd.ui_url(name), "Missing", "Unknown", "", "", ()))
                continue
            # Application.status: health, sync, operationState and resources[] with their own health
            # (argoproj/argo-cd:pkg/apis/application/v1alpha1/types.go ApplicationStatus, ResourceStatus).
            status = app.get("status") or {}
            health = str((status.get("health") or {}).get("status") or "Unknown")
            sync = str((status.get("sync") or {}).get("status") or "Unknown")
            operation = status.get("operationState") or {}
            phase = str(operation.get("phase") or "")
            if health in SOUND_HEALTH and phase not in FAILED_PHASES:
                continue
            message = str(operation.get("message") or "") if phase in FAILED_PHASES else ""
            unhealthy = tuple(flow.unhealthy_resources(status))
            failing.append(AppHealth(env.name, name, argocd.ui_url(name), health, sync, phase, message, unhealthy))
    return DeployFailure(project, tuple(failing), checked)


async def project_status(bot: Bot, project: Project) -> ProjectStatus:
    """Everything ``/cpn status`` shows: each repository's last pipeline, each environment's applications."""
    names = Names(bot.config.platform.root_group, project.slug)
    argocd = bot.platform.argocd
    environments = []
    last = flow.last_deploys(bot.store, project.id)
    repos = bot.projects.repositories(project.id)
    for env in bot.projects.environments(project.id):
        apps = []
        for repo in repos:
            if not repo.is_infra:
                continue
            app_name = names.argocd_app(env.name, repo.name)
            try:
                app = await argocd.get_application(app_name) if argocd else None
            except ServiceError:
                app = None
            apps.append((app_name, app, argocd.ui_url(app_name) if argocd else ""))
        environments.append((env, apps, last.get(env.name)))
    book = PipelineBook(bot.store)
    repositories: list[tuple[Repository, PipelineState | None]] = []
    for repo in repos:
        recent = book.recent(project.id, repo.name, 1)
        repositories.append((repo, recent[0] if recent else None))
    declared = await bot.control.declared_deployments(project)
    return ProjectStatus(project, repositories, environments, bot.status_extras(project), declared)


def address(bot: Bot, service: str, project: Project | None) -> Address:
    """The project's own page on ``service`` when there is one, else the platform's address."""
    if project is not None:
        link = project_links(bot, project).get(service)
        if link:
            return Address(service, link, project)
    return Address(service, platform_urls(bot.config).get(service, ""), None)


async def answer(bot: Bot, user_id: str, channel_id: str, question: str) -> Contextual | None:
    """The contextual answer to ``question``; None when it is a question for the knowledge base."""
    intent = classify(question)
    if intent is None:
        return None
    project = await readable_project(bot, channel_id, user_id)
    if intent.kind == ADDRESS:
        return Contextual(intent, address(bot, intent.target, project))
    if project is None:
        return Contextual(intent, None)
    found: Found | None = None
    if intent.kind == PIPELINE_FAILURE:
        found = await pipeline_failure(bot, project)
    elif intent.kind == DEPLOY_FAILURE:
        found = await deploy_failure(bot, project)
    elif intent.kind == PROJECT_STATUS:
        found = await project_status(bot, project)
    return Contextual(intent, found)
