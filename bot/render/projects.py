"""Cards about projects: the provisioning checklist, a project's page, the list of projects."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.i18n import Translator
from bot.model import Environment, Member, Project, Repository
from bot.render.changes import change_line
from bot.render.safe import code, escape, url
from bot.rights import ROLE_NAMES, Role
from bot.workflows.onboarding import Step

ICONS = {"pending": "⏳", "running": "🔄", "ok": "✅", "warning": "⚠️", "failed": "❌", "skipped": "➖"}
COLORS = {
    "initializing": "#0063CB",
    "created": "#18753C",
    "warning": "#B34000",
    "failed": "#CE0500",
    "archived": "#666666",
}
SERVICE_NAMES = {
    "vault": "Vault",
    "gitlab": "GitLab",
    "registry": "Quay",
    "nexus": "Nexus",
    "sonarqube": "SonarQube",
    "argocd": "ArgoCD",
}


def step_line(step: Step | dict[str, Any], tr: Translator, project: str) -> str:
    data = step if isinstance(step, dict) else step.as_json() | {"service": step.service}
    state = data.get("state", "pending")
    name = data.get("label") or SERVICE_NAMES.get(data["service"], data["service"])
    line = f"{ICONS.get(state, '❔')} **{name}**"
    if state == "failed" and data.get("reason"):
        # The parameters may come from a service's answer (the console's messages): shown, never run.
        params = {"service": name} | {k: escape(str(v), 200) for k, v in (data.get("params") or {}).items()}
        params["project"] = project  # for the hints: "`/cpn project replay <project>`"
        line += " — " + tr(data["reason"], **params)
    notes = data.get("notes") or []
    if notes:
        line += " — " + tr("onboarding.unknown_members", members=", ".join(escape(n) for n in notes), name=project)
    return line


def checklist(project: Project, steps: Sequence[Step], mode: str, status: str, tr: Translator) -> dict[str, Any]:
    """The one card a provisioning shows, edited in place as each service is done."""
    lines = [step_line(step, tr, project.name) for step in steps]
    done = status != "initializing"
    if done:
        lines.append("")
        lines.append(tr(f"onboarding.status.{status}", name=project.name))
        changes = [
            f"- {s.label or SERVICE_NAMES.get(s.service, s.service)} : {change_line(c, tr)}"
            for s in steps
            for c in s.changes
        ]
        if mode == "replay" and changes:
            lines.append(tr("onboarding.replay_changes", count=len(changes)))
        elif mode == "replay" and not any(s.state == "failed" for s in steps):
            lines.append(tr("onboarding.replay_none"))  # "all was as it should be" only when true
        if mode == "replay":
            lines += changes[:30]
            if len(changes) > 30:
                lines.append(tr("onboarding.more_changes", count=len(changes) - 30))
    return {
        "fallback": tr(f"onboarding.title.{mode}", project=project.name),
        "color": COLORS.get(status if done else "initializing", "#0063CB"),
        "title": tr(f"onboarding.title.{mode}", project=project.name),
        "text": "\n".join(lines),
    }


def project_list(entries: Sequence[tuple[Project, Role | None]], tr: Translator) -> str:
    if not entries:
        return tr("project.none")
    lines = [f"#### {tr('project.list_title')}"]
    for project, role in entries:
        role_text = f" — {ROLE_NAMES[role](tr.lang)}" if role else ""
        lines.append(
            f"- **{project.name}** {ICONS_BY_STATUS.get(project.status, '')} "
            f"{tr(f'project.status.{project.status}')}{role_text}"
        )
    return "\n".join(lines)


ICONS_BY_STATUS = {"initializing": "⏳", "created": "✅", "warning": "⚠️", "failed": "❌", "archived": "🗄️"}


def project_page(
    project: Project,
    links: dict[str, str],
    members: Sequence[Member],
    repositories: Sequence[Repository],
    environments: Sequence[Environment],
    tr: Translator,
) -> dict[str, Any]:
    services = [
        step_line({"service": name} | data, tr, project.name)
        + (f" — [{tr('project.open')}]({links[name]})" if name in links else "")
        for name, data in project.services.items()
    ]
    member_lines = [f"@{m.username} ({ROLE_NAMES[m.role](tr.lang)})" for m in members]
    repo_lines = [
        f"{code(r.name)}"
        + (f" ← {url(r.external_url)}" if r.external_url else "")
        + (" 🔒" if r.is_private else "")
        + (" 🏗️ infra" if r.is_infra else "")
        for r in repositories
    ]
    env_lines = [f"{code(e.name)} ({e.stage})" for e in environments]
    description = escape(project.description, 280) if project.description else ""
    return {
        "fallback": f"{project.name}: {project.status}",
        "color": COLORS.get(project.status, "#0063CB"),
        "title": f"{project.name} — {ICONS_BY_STATUS.get(project.status, '')} {tr(f'project.status.{project.status}')}",
        "text": description,
        "fields": [
            {"title": tr("project.services"), "value": "\n".join(services) or "—", "short": False},
            {"title": tr("project.members"), "value": ", ".join(member_lines) or "—", "short": False},
            {
                "title": tr("project.repositories"),
                "value": "\n".join(repo_lines) or tr("project.no_repositories", name=project.name),
                "short": True,
            },
            {
                "title": tr("project.environments"),
                "value": ", ".join(env_lines) or tr("project.no_environments", name=project.name),
                "short": True,
            },
            *(
                [
                    {
                        "title": tr("project.gitlab_hooks"),
                        "value": tr(f"project.gitlab_hooks_{project.gitlab_hooks}"),
                        "short": False,
                    }
                ]
                if project.gitlab_hooks in ("group", "project")
                else []
            ),
        ],
    }
