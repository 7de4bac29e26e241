"""JSON shapes of the GitLab emulator's answers (the entities of GitLab's REST API v4).

Field names and nesting follow GitLab's ``lib/api/entities`` as documented in ``doc/api/*.md``.
Callers hold ``state.lock``.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from services.emulators.gitlab_repo import Commit
from services.emulators.gitlab_state import (
    HOOK_EVENTS,
    AccessToken,
    Hook,
    Job,
    Member,
    Namespace,
    Pipeline,
    Project,
    Trigger,
    User,
)

if TYPE_CHECKING:
    from services.emulators.gitlab_state import State


def avatar_url(email: str) -> str:
    digest = hashlib.md5(email.lower().encode(), usedforsecurity=False).hexdigest()
    return f"https://www.gravatar.com/avatar/{digest}?s=80&d=identicon"


def user_basic(state: State, user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "name": user.name,
        "state": user.state,
        "locked": False,
        "avatar_url": avatar_url(user.email),
        "web_url": state.url(f"/{user.username}"),
    }


def user_json(state: State, user: User, full: bool = False) -> dict[str, Any]:
    """``full``: the admin view (``UserWithAdmin``) or the caller's own ``/user``."""
    data = user_basic(state, user)
    data.update({"created_at": user.created_at, "bio": "", "bot": user.bot, "public_email": None})
    if full:
        data.update(
            {
                "email": user.email,
                "commit_email": user.email,
                "last_sign_in_at": None,
                "confirmed_at": user.created_at,
                "last_activity_on": None,
                "identities": [],
                "can_create_group": True,
                "can_create_project": True,
                "two_factor_enabled": False,
                "external": False,
                "private_profile": False,
                "namespace_id": user.namespace_id,
            }
        )
        if user.admin:
            data["is_admin"] = True
    return data


def namespace_brief(state: State, namespace: Namespace) -> dict[str, Any]:
    full_path = state.full_path(namespace)
    return {
        "id": namespace.id,
        "name": namespace.name,
        "path": namespace.path,
        "kind": namespace.kind,
        "full_path": full_path,
        "parent_id": namespace.parent_id,
        "avatar_url": None,
        "web_url": state.url(f"/groups/{full_path}" if namespace.kind == "group" else f"/{full_path}"),
    }


def group_json(state: State, group: Namespace, with_projects: bool = False) -> dict[str, Any]:
    full_path = state.full_path(group)
    data: dict[str, Any] = {
        "id": group.id,
        "web_url": state.url(f"/groups/{full_path}"),
        "name": group.name,
        "path": group.path,
        "description": group.description,
        "visibility": group.visibility,
        "share_with_group_lock": False,
        "require_two_factor_authentication": False,
        "two_factor_grace_period": 48,
        "project_creation_level": group.extra.get("project_creation_level", "maintainer"),
        "auto_devops_enabled": None,
        "subgroup_creation_level": group.extra.get("subgroup_creation_level", "maintainer"),
        "emails_disabled": False,
        "emails_enabled": True,
        "mentions_disabled": None,
        "lfs_enabled": True,
        "default_branch": None,
        "default_branch_protection": group.extra.get("default_branch_protection", 2),
        "avatar_url": None,
        "request_access_enabled": True,
        "full_name": state.full_name(group),
        "full_path": full_path,
        "created_at": group.created_at,
        "parent_id": group.parent_id,
        "organization_id": 1,
        "shared_runners_setting": "enabled",
        "ldap_cn": None,
        "ldap_access": None,
        "marked_for_deletion_on": group.marked_for_deletion_on,
    }
    if with_projects:
        projects = [p for p in state.projects.values() if p.namespace_id == group.id]
        data["projects"] = [project_json(state, p) for p in projects]
        data["shared_projects"] = []
    return data


def project_json(state: State, project: Project, viewer_id: int | None = None) -> dict[str, Any]:
    namespace = state.namespaces[project.namespace_id]
    full_path = state.project_path(project)
    web_url = state.url(f"/{full_path}")
    api = state.url(f"/api/v4/projects/{project.id}")
    host = (state.base_url or "http://gitlab.example.com").split("://", 1)[-1].split(":")[0]
    data: dict[str, Any] = {
        "id": project.id,
        "description": project.description,
        "name": project.name,
        "name_with_namespace": f"{state.full_name(namespace)} / {project.name}",
        "path": project.path,
        "path_with_namespace": full_path,
        "created_at": project.created_at,
        "default_branch": project.repo.default_branch,
        "tag_list": list(project.topics),
        "topics": list(project.topics),
        "ssh_url_to_repo": f"git@{host}:{full_path}.git",
        "http_url_to_repo": f"{web_url}.git",
        "web_url": web_url,
        "readme_url": f"{web_url}/-/blob/main/README.md" if _has_readme(project) else None,
        "forks_count": 0,
        "avatar_url": None,
        "star_count": 0,
        "last_activity_at": project.last_activity_at,
        "namespace": namespace_brief(state, namespace),
        "visibility": project.visibility,
        "empty_repo": project.repo.empty,
        "archived": False,
        "creator_id": project.creator_id,
        "ci_config_path": project.ci_config_path or None,
        "marked_for_deletion_at": project.marked_for_deletion_on,
        "marked_for_deletion_on": project.marked_for_deletion_on,
        "_links": {
            "self": api,
            "issues": f"{api}/issues",
            "merge_requests": f"{api}/merge_requests",
            "repo_branches": f"{api}/repository/branches",
            "labels": f"{api}/labels",
            "events": f"{api}/events",
            "members": f"{api}/members",
            "cluster_agents": f"{api}/cluster_agents",
        },
    }
    if viewer_id is not None:
        direct = project.members.get(viewer_id)
        group_level = state.group_access(viewer_id, namespace) if namespace.kind == "group" else 0
        data["permissions"] = {
            "project_access": _access(direct.access_level) if direct else None,
            "group_access": _access(group_level) if group_level else None,
        }
    return data


def _access(level: int) -> dict[str, int]:
    return {"access_level": level, "notification_level": 3}


def _has_readme(project: Project) -> bool:
    head = project.repo.resolve(None)
    return bool(head and "README.md" in head.tree)


def member_json(state: State, member: Member) -> dict[str, Any]:
    user = state.users[member.user_id]
    creator = state.users.get(member.created_by_id) if member.created_by_id else None
    data = user_basic(state, user)
    data.update(
        {
            "access_level": member.access_level,
            "created_at": member.created_at,
            "created_by": user_basic(state, creator) if creator else None,
            "expires_at": member.expires_at,
            "group_saml_identity": None,
            "membership_state": "active",
            "is_using_seat": True,
        }
    )
    return data


def hook_json(hook: Hook) -> dict[str, Any]:
    """A webhook as GitLab lists it: never the secret token."""
    data: dict[str, Any] = {
        "id": hook.id,
        "url": hook.url,
        "name": hook.name,
        "description": hook.description,
        "created_at": hook.created_at,
        "push_events_branch_filter": hook.push_events_branch_filter,
        "branch_filter_strategy": "wildcard",
        "enable_ssl_verification": hook.enable_ssl_verification,
        "repository_update_events": False,
        "alert_status": hook.alert_status(time.time()),
        "disabled_until": (
            datetime.fromtimestamp(hook.disabled_until, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            if hook.disabled_until is not None and hook.temporarily_disabled(time.time())
            else None
        ),
        "url_variables": [],
        "custom_webhook_template": "",
        "custom_headers": [],
    }
    for event in HOOK_EVENTS:
        data[event] = hook.events.get(event, False)
    if hook.project_id is not None:
        data["project_id"] = hook.project_id
    if hook.group_id is not None:
        data["group_id"] = hook.group_id
        data["subgroup_events"] = False
        data["member_events"] = False
    return data


def trigger_json(state: State, trigger: Trigger, viewer_id: int | None) -> dict[str, Any]:
    """Trigger tokens are shown in full to their owner only, shortened to 4 chars otherwise."""
    owner = state.users.get(trigger.owner_id)
    token = trigger.token if viewer_id == trigger.owner_id else trigger.token[:4]
    return {
        "id": trigger.id,
        "description": trigger.description,
        "created_at": trigger.created_at,
        "last_used": trigger.last_used,
        "token": token,
        "updated_at": trigger.updated_at,
        "owner": user_basic(state, owner) if owner else None,
        "expires_at": None,
    }


def token_json(token: AccessToken, reveal: bool = False) -> dict[str, Any]:
    """A group access token; its value only in the creation answer."""
    data: dict[str, Any] = {
        "id": token.id,
        "name": token.name,
        "description": token.description,
        "revoked": token.revoked,
        "created_at": token.created_at,
        "scopes": list(token.scopes),
        "user_id": token.user_id,
        "last_used_at": token.last_used_at,
        "active": token.active,
        "expires_at": token.expires_at,
        "access_level": token.access_level,
    }
    if reveal:
        data["token"] = token.token
    return data


def commit_json(state: State, project: Project, commit: Commit, detail: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": commit.id,
        "short_id": commit.short_id,
        "created_at": commit.created_at,
        "parent_ids": list(commit.parent_ids),
        "title": commit.title,
        "message": commit.message,
        "author_name": commit.author_name,
        "author_email": commit.author_email,
        "authored_date": commit.created_at,
        "committer_name": commit.author_name,
        "committer_email": commit.author_email,
        "committed_date": commit.created_at,
        "trailers": {},
        "extended_trailers": {},
        "web_url": state.url(f"/{state.project_path(project)}/-/commit/{commit.id}"),
    }
    if detail:
        changed = len(commit.added) + len(commit.modified) + len(commit.removed)
        pipelines = [p for p in state.pipelines.values() if p.project_id == project.id and p.sha == commit.id]
        last = max(pipelines, key=lambda p: p.id) if pipelines else None
        data.update(
            {
                "stats": {"additions": changed, "deletions": len(commit.removed), "total": changed},
                "status": last.status if last else None,
                "project_id": project.id,
                "last_pipeline": pipeline_json(state, last) if last else None,
            }
        )
    return data


def branch_json(state: State, project: Project, name: str) -> dict[str, Any]:
    commit = project.repo.commits[project.repo.branches[name]]
    return {
        "name": name,
        "merged": False,
        "protected": False,
        "default": name == project.repo.default_branch,
        "developers_can_push": False,
        "developers_can_merge": False,
        "can_push": True,
        "web_url": state.url(f"/{state.project_path(project)}/-/tree/{name}"),
        "commit": commit_json(state, project, commit),
    }


def pipeline_json(state: State, pipeline: Pipeline, detail: bool = False) -> dict[str, Any]:
    project = state.projects.get(pipeline.project_id)
    path = state.project_path(project) if project else "unknown"
    data: dict[str, Any] = {
        "id": pipeline.id,
        "iid": pipeline.iid,
        "project_id": pipeline.project_id,
        "sha": pipeline.sha,
        "ref": pipeline.ref,
        "status": pipeline.status,
        "source": pipeline.source,
        "created_at": pipeline.created_at,
        "updated_at": pipeline.updated_at,
        "web_url": state.url(f"/{path}/-/pipelines/{pipeline.id}"),
        "name": None,
    }
    if detail:
        user = state.users.get(pipeline.user_id) if pipeline.user_id else None
        data.update(
            {
                "before_sha": pipeline.before_sha,
                "tag": False,
                "yaml_errors": None,
                "user": user_basic(state, user) if user else None,
                "started_at": pipeline.started_at,
                "finished_at": pipeline.finished_at,
                "committed_at": None,
                "duration": duration(pipeline.started_at, pipeline.finished_at),
                "queued_duration": duration(pipeline.created_at, pipeline.started_at),
                "coverage": None,
                "detailed_status": detailed_status(pipeline.status, f"/{path}/-/pipelines/{pipeline.id}"),
            }
        )
    return data


def detailed_status(status: str, details_path: str) -> dict[str, Any]:
    label = {"success": "passed", "failed": "failed", "running": "running"}.get(status, status)
    return {
        "icon": f"status_{status}",
        "text": label,
        "label": label,
        "group": status,
        "tooltip": label,
        "has_details": True,
        "details_path": details_path,
        "illustration": None,
        "favicon": f"/assets/ci_favicons/favicon_status_{status}.png",
    }


def duration(start: str | None, end: str | None) -> float | None:
    from datetime import datetime

    if not start or not end:
        return None
    parsed = [datetime.fromisoformat(value.replace("Z", "+00:00")) for value in (start, end)]
    return round((parsed[1] - parsed[0]).total_seconds(), 3)


RUNNER = {
    "id": 12,
    "description": "cpn-runner-kubernetes",
    "ip_address": None,
    "active": True,
    "paused": False,
    "is_shared": True,
    "runner_type": "instance_type",
    "name": "gitlab-runner",
    "online": True,
    "status": "online",
}


def job_json(state: State, job: Job) -> dict[str, Any]:
    pipeline = state.pipelines[job.pipeline_id]
    project = state.projects.get(job.project_id)
    path = state.project_path(project) if project else "unknown"
    user = state.users.get(job.user_id) if job.user_id else None
    commit = project.repo.commits.get(pipeline.sha) if project else None
    artifacts = []
    if job.artifacts:
        size = sum(len(data) for data in job.artifacts.values())
        artifacts.append({"file_type": "archive", "size": size, "filename": "artifacts.zip", "file_format": "zip"})
    if job.trace:
        size = sum(len(line) + 1 for line in job.trace)
        artifacts.append({"file_type": "trace", "size": size, "filename": "job.log", "file_format": None})
    data: dict[str, Any] = {
        "id": job.id,
        "status": job.status,
        "stage": job.stage,
        "name": job.name,
        "ref": pipeline.ref,
        "tag": False,
        "coverage": None,
        "allow_failure": False,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "erased_at": None,
        "duration": duration(job.started_at, job.finished_at),
        "queued_duration": duration(job.queued_at, job.started_at),
        "user": user_basic(state, user) if user else None,
        "commit": commit_json(state, project, commit) if project and commit else None,
        "pipeline": pipeline_json(state, pipeline),
        "web_url": state.url(f"/{path}/-/jobs/{job.id}"),
        "project": {"ci_job_token_scope_enabled": False},
        "artifacts": artifacts,
        "runner": RUNNER if job.started_at else None,
        "runner_manager": None,
        "artifacts_expire_at": None,
        "archived": False,
        "tag_list": [],
    }
    if job.artifacts:
        data["artifacts_file"] = {"filename": "artifacts.zip", "size": artifacts[0]["size"]}
    if job.status == "failed":
        data["failure_reason"] = job.failure_reason or "script_failure"
    return data
