"""Answers from the knowledge base, ticket cards, the platform's health (pure)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from bot.i18n import Translator
from bot.knowledge import Answer, Article
from bot.render.deploys import HEALTH_ICONS as ARGOCD_HEALTH_ICONS
from bot.render.deploys import argocd_state, resource_line
from bot.render.pipelines import failure_reply
from bot.render.safe import code, escape
from bot.workflows.contextual import Address, DeployFailure, PipelineFailure
from bot.workflows.support import Ticket

HEALTH_ICONS = {"ok": "🟢", "degraded": "🟠", "failing": "🔴", "unknown": "⚪"}
TICKET_ICONS = {"open": "🆕", "taken": "🛠️", "resolved": "✅", "closed": "📁"}
_MENTION = re.compile(r"@(?=[\w.\-])")


def _article_markdown(text: str, max_len: int) -> str:
    """An article's own markdown (the platform team writes kb/): its code spans kept, on one line,
    with mentions broken all the same (an ``@channel`` in an article must not ping anybody)."""
    text = " ".join(text.split())
    if len(text) > max_len:
        text = text[: max_len - 1] + "…"
    return _MENTION.sub("@\u2060", text)


def _article_link(article: Article) -> str:
    if article.links:
        return f"[{escape(article.links[0].title, 80)}]({article.links[0].url})"
    return ""


def answer_card(answer: Answer, question: str, tr: Translator) -> dict[str, Any]:
    """The best article (title, short answer, link) and up to two related ones; or "I don't know"."""
    if not answer.known or answer.best is None:
        return {
            "color": "#B34000",
            "title": tr("support.unknown_title"),
            "text": tr("support.unknown_text", question=escape(question, 200)),
        }
    article = answer.best.article
    lines = [_article_markdown(article.summary, 600)]
    if article.commands:
        lines.append(tr("support.commands", commands=", ".join(f"`{c}`" for c in article.commands[:4])))
    link = _article_link(article)
    if link:
        lines.append(tr("support.read_more", link=link))
    if answer.related:
        lines.append(
            tr("support.related", titles=" · ".join(f"« {escape(h.article.title, 80)} »" for h in answer.related))
        )
    return {"color": "#000091", "title": f"📘 {escape(article.title, 150)}", "text": "\n".join(lines)}


SERVICE_NAMES = {
    "gitlab": "GitLab",
    "sonarqube": "SonarQube",
    "argocd": "ArgoCD",
    "vault": "Vault",
    "nexus": "Nexus",
    "console": "Console",
}
RED = "#CE0500"


def _article_reference(article: Article) -> str:
    """The article's title, linked to its documentation page when it has one."""
    if article.links:
        return f"[{escape(article.title, 120)}]({article.links[0].url})"
    return f"« {escape(article.title, 120)} »"


def pipeline_failure_card(failure: PipelineFailure, tr: Translator) -> dict[str, Any]:
    """The failed pipeline: its first failed job with the masked end of its log, the others by name and
    stage, each with the knowledge base's article for it."""
    state = failure.pipeline
    assert state is not None
    pipeline = f"[#{int(state.pipeline_id)}]({state.url})" if state.url else f"#{int(state.pipeline_id)}"
    title = tr(
        "support.context.pipeline_title",
        project=escape(failure.project.name),
        repo=escape(state.repo),
        pipeline=f"#{int(state.pipeline_id)}",
        ref=code(state.ref, 60),
    )
    lines = []
    for index, failed in enumerate(failure.jobs):
        job = failed.job
        if index == 0:  # one log is what fits in a post; the other jobs are named with their stage
            lines.append(failure_reply(job, failed.trace, tr, skipped=failed.skipped))
        else:
            link = f"[{tr('pipeline.job')} #{int(job.id)}]({job.url})" if job.url else f"#{int(job.id)}"
            lines.append(tr("pipeline.job_failed", job=code(job.name), stage=code(job.stage), link=link))
        if failed.article is not None:
            lines.append(tr("support.context.article", link=_article_reference(failed.article)))
    more = len(state.failed_jobs) - len(failure.jobs)
    if more > 0:
        lines.append(tr.plural("support.context.more_jobs", more))
    if not failure.jobs:
        lines.append(pipeline)
    return {"fallback": title, "color": RED, "title": title, "title_link": state.url, "text": "\n".join(lines)}


def deploy_failure_card(failure: DeployFailure, tr: Translator) -> dict[str, Any]:
    """Each failing application: ArgoCD's health and sync, the failed operation, the degraded resources."""
    project = escape(failure.project.name)
    title = tr("support.context.deploy_title", project=project)
    lines = []
    for app in failure.failing:
        lines.append(
            tr(
                "support.context.app_line",
                env=escape(app.env),
                app=f"[{escape(app.app)}]({app.url})" if app.url else code(app.app),
                health=f"{ARGOCD_HEALTH_ICONS.get(app.health, '❔')} {argocd_state(app.health, tr)}",
                sync=argocd_state(app.sync, tr),
            )
        )
        if app.health == "Missing" and not app.phase:
            lines.append("- " + tr("support.context.app_missing", project=project))
        if app.message:
            lines.append(
                tr("support.context.operation", phase=argocd_state(app.phase, tr), message=escape(app.message, 300))
            )
        if app.unhealthy:
            lines.append(tr("deploy.unhealthy"))
            lines += [resource_line(item, tr) for item in app.unhealthy[:10]]
    envs = sorted({app.env for app in failure.failing})
    if envs:
        lines.append(tr("support.context.rollback", project=project, env=escape(envs[0])))
    return {"fallback": title, "color": RED, "title": title, "text": "\n".join(lines)}


def address_card(found: Address, registry: str, tr: Translator) -> dict[str, Any]:
    """The project's own page on a service, or the platform's address, or that there is no such service."""
    service = registry if found.service == "registry" else SERVICE_NAMES.get(found.service, found.service)
    if not found.url:
        return {"color": "#666666", "text": tr("support.context.address_missing", service=service)}
    if found.project is not None:
        title = tr("support.context.address_project", service=service, project=escape(found.project.name))
    else:
        title = tr("support.context.address_platform", service=service)
    return {"color": "#000091", "title": title, "title_link": found.url, "text": found.url}


def with_note(card: dict[str, Any], note: str) -> dict[str, Any]:
    """``card`` (a knowledge base answer) under a first line saying what the project showed."""
    return {**card, "pretext": note}


def faq(articles: Sequence[Article], tr: Translator) -> str:
    lines = [f"#### {tr('support.faq_title')}", tr("support.faq_intro")]
    lines += [f"- {escape(a.title, 120)}" for a in sorted(articles, key=lambda a: a.title)]
    return "\n".join(lines)


def ticket_card(ticket: Ticket, tr: Translator, reporter_link: str = "") -> dict[str, Any]:
    status = tr(f"support.ticket_status.{ticket.status}")
    lines = [
        tr("support.ticket_from", user=f"@{escape(ticket.reporter_name, 60)}", project=escape(ticket.project) or "—"),
        "> " + escape(ticket.message, 1500),
    ]
    if ticket.assignee_name:
        lines.append(tr("support.ticket_assignee", user=f"@{escape(ticket.assignee_name, 60)}"))
    if reporter_link:
        lines.append(tr("support.ticket_conversation", link=reporter_link))
    return {
        "color": {"open": "#B34000", "taken": "#0063CB", "resolved": "#18753C"}.get(ticket.status, "#666666"),
        "title": f"{TICKET_ICONS.get(ticket.status, '🎫')} " + tr("support.ticket_title", id=ticket.id, status=status),
        "text": "\n".join(lines),
    }


def ticket_list(tickets: Sequence[Ticket], tr: Translator) -> str:
    if not tickets:
        return tr("support.no_tickets")
    lines = [f"#### {tr('support.tickets_title')}"]
    for ticket in tickets:
        lines.append(
            f"- {TICKET_ICONS.get(ticket.status, '🎫')} #{ticket.id} — {tr(f'support.ticket_status.{ticket.status}')}"
            f" — @{escape(ticket.reporter_name, 40)} : {escape(ticket.message, 80)}"
        )
    return "\n".join(lines)


def health_label(health: str, tr: Translator) -> str:
    """The platform's own words: OK, Dégradé, En échec, Inconnu (platform-facts §1.8)."""
    key = f"support.health.{health}"
    label = tr(key)
    return health if label == key else label


# The fixed words of the probes' details (services/health.py, in English for check-config and the
# logs), said in the reader's language; route names and HTTP statuses are kept as they are.
HEALTH_WORDS = (
    ("admin token refused", "admin_token_refused"),
    ("credentials refused", "credentials_refused"),
    ("token lacks rights", "token_lacks_rights"),
    ("console sees", "console_sees"),
    ("unexpected answer", "unexpected_answer"),
    ("unreachable", "unreachable"),
    ("read-only", "read_only"),
    ("sealed", "sealed"),
    ("no answer within", "no_answer_within"),
)


def health_detail(detail: str, tr: Translator) -> str:
    """A probe's detail in the reader's words (pure: the same detail, the same words)."""
    for english, key in HEALTH_WORDS:
        detail = detail.replace(english, tr(f"support.health_words.{key}"))
    return detail


def health_card(rows: Sequence[dict[str, Any]], tr: Translator) -> dict[str, Any]:
    lines = []
    worst = "ok"
    for row in rows:
        health = row["health"]
        if health in ("failing", "degraded") and worst != "failing":
            worst = health
        detail = f" — {escape(health_detail(row['detail'], tr), 120)}" if row.get("detail") else ""
        lines.append(
            f"{HEALTH_ICONS.get(health, '⚪')} **{row['service']}** : {health_label(health, tr)}"
            f" ({row['latency_ms']:.0f} ms){detail}"
        )
    if worst != "ok":
        lines += ["", tr(f"support.health_hint.{worst}")]  # what to do while a service is down
    return {
        "color": {"ok": "#18753C", "degraded": "#B34000", "failing": "#CE0500"}.get(worst, "#666666"),
        "title": tr("support.health_title"),
        "text": "\n".join(lines),
    }


def health_change(service: str, before: str, after: str, detail: str, tr: Translator) -> str:
    return tr(
        "support.health_change",
        icon=HEALTH_ICONS.get(after, "⚪"),
        service=service,
        before=health_label(before, tr),
        after=health_label(after, tr),
        detail=f" — {escape(health_detail(detail, tr), 150)}" if detail else "",
    )


def kb_stats(stats: dict[str, Any], tr: Translator) -> str:
    total = stats["total"] or 0
    rate = f"{100 * stats['known'] / total:.0f} %" if total else "—"
    lines = [
        f"#### {tr('support.stats_title')}",
        tr(
            "support.stats_line",
            questions=tr.plural("support.stats_questions", total),
            rate=rate,
            helped=stats["helped"],
            tickets=tr.plural("support.stats_tickets", stats["ticketed"] or 0),
        ),
    ]
    if stats["top"]:
        lines.append(tr("support.stats_top") + " " + ", ".join(f"`{a}` ({n})" for a, n in stats["top"]))
    if stats["unanswered"]:
        lines.append(tr("support.stats_unanswered"))
        lines += [f"- {escape(q, 150)}" for q in stats["unanswered"]]
    return "\n".join(lines)
