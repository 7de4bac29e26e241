"""Trivy results in the channel: reports fetched from the scan job's artifacts (or pushed by CI to
``/hooks/trivy``), summarised against the project's policy and waivers, compared with the previous
scan of the same image or repository, and posted in the pipeline's thread.
"""

from __future__ import annotations

import fnmatch
import json
import logging
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bot.inbox import InboundEvent, inbox_handler
from bot.model import Project
from bot.operations import Operation, operation
from bot.outbox import Post
from bot.render import scans as render
from bot.results import pipeline_threads, publish_result
from bot.rights import Role
from bot.scheduler import every
from bot.spool import REPORT_FILE_HEADER, report_file
from bot.store import now
from bot.workflows import scans
from services.errors import ServiceError

if TYPE_CHECKING:
    from bot.runtime import Bot

logger = logging.getLogger("cpn.scans")


def policy_of(bot: Bot, project_id: int) -> scans.Policy:
    row = bot.store.db.execute(
        "SELECT max_critical, max_high, ignore_unfixed FROM policies WHERE project_id = ?", (project_id,)
    ).fetchone()
    if row is None:
        return scans.Policy()
    return scans.Policy(row[0], row[1], bool(row[2]))


def waivers_of(bot: Bot, project_id: int) -> dict[str, date]:
    rows = bot.store.db.execute("SELECT vuln_id, until FROM waivers WHERE project_id = ?", (project_id,)).fetchall()
    found: dict[str, date] = {}
    for vuln, until in rows:
        day = date.fromisoformat(until)
        found[vuln.upper()] = max(day, found.get(vuln.upper(), day))
    return found


def owners_mention(bot: Bot, project: Project) -> str:
    owners = [m.username for m in bot.projects.members(project.id) if m.role in (Role.OWNER, Role.ADMIN)]
    return " ".join(f"@{name}" for name in owners)


def image_name(artifact: str) -> str:
    """``registry/ns/app:1.4.2`` or ``…@sha256:…`` → ``registry/ns/app``: one history per image, not per tag."""
    name = artifact.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name.rsplit(":", 1)[0] if ":" in last else name


def harbor_reference(bot: Bot, slug: str, repository: str, tag: str, digest: str) -> str:
    """``harbor.example/alpha/api:1.4.2@sha256:0123456789ab``: the image as people pull it, with
    the registry host the pipelines push to (``[harbor] host``, else its URL's)."""
    harbor = bot.config.harbor
    host = (harbor.host or urlsplit(str(harbor.url)).hostname or "") if harbor else ""
    short = digest[: len("sha256:") + 12] if digest.startswith("sha256:") else digest
    path = f"{host}/{slug}/{repository}" if host else f"{slug}/{repository}"
    return f"{path}:{tag}@{short}" if tag else f"{path}@{short}"


def is_scan_job(bot: Bot, name: str) -> bool:
    pattern = bot.config.gitlab.trivy_job_pattern if bot.config.gitlab else "trivy*"
    return fnmatch.fnmatchcase(name, pattern)


def process_report(bot: Bot, project: Project, repo: str, raw: bytes | Path, ref: str, sha: str) -> str:
    """Summarise and post one report (bytes, or a spooled file); the verdict ("unreadable" when it
    cannot be read)."""
    try:
        report = scans.parse_report_file(raw) if isinstance(raw, Path) else scans.parse_report(raw)
    except scans.ReportUnreadable as exc:
        bot.metrics.inc("cpn_scans_total", verdict="unreadable")
        publish_result(
            bot, project, repo, sha, "scan", ref or "main", True, Post(render.unreadable(exc.reason, bot.tr))
        )
        return "unreadable"
    return publish_scan(bot, project, repo, report, ref, sha)


def publish_scan(bot: Bot, project: Project, repo: str, report: scans.ScanReport, ref: str, sha: str) -> str:
    """The scan card of a read report (from a Trivy JSON or from Harbor), its verdict."""
    waived = scans.active_waivers(waivers_of(bot, project.id), date.today())
    summary = scans.summarize(report, waived, policy_of(bot, project.id))
    subject = summary.artifact_name or repo
    # The previous scan of the same image (whatever its tag) or repository, in this repository.
    lineage = image_name(subject)
    previous = bot.store.db.execute(
        "SELECT keys, summary FROM scans WHERE project_id = ? AND repo = ? AND subject = ? ORDER BY id DESC LIMIT 1",
        (project.id, repo, lineage),
    ).fetchone()
    change = scans.diff(set(json.loads(previous[0])) if previous else None, summary)
    shown = {
        "counts": dict(summary.counts),
        "fixable": summary.fixable,
        "waived": summary.waived,
        "verdict": summary.verdict,
        "total": summary.total,
        "kind": summary.kind,
        "licenses": dict(summary.license_counts),
    }
    keys = sorted(summary.keys)
    bot.store.db.table("scans").insert(
        {
            "project_id": project.id,
            "repo": repo,
            "subject": lineage,
            "ref": ref,
            "sha": sha,
            "pipeline_key": "",
            "summary": json.dumps(shown | {"new": change.new_count, "fixed": change.fixed_count}),
            "keys": json.dumps(keys),
            "created_at": now(),
        }
    )
    failure = summary.verdict != "ok"
    if previous and json.loads(previous[0]) == keys and _same_summary(json.loads(previous[1] or "{}"), shown):
        # A rescan that finds exactly what the previous one did: one line, no table, no mention again.
        line = render.scan_unchanged(summary, subject, bot.tr)
        publish_result(bot, project, repo, sha, "scan", ref or "main", failure, Post(line))
        bot.metrics.inc("cpn_scans_total", verdict=summary.verdict)
        return summary.verdict
    card = render.scan_card(summary, change, subject, bot.tr)
    message = ""
    if summary.verdict == "fail":
        message = bot.tr("scan.policy_mention", owners=owners_mention(bot, project) or "—")
    publish_result(bot, project, repo, sha, "scan", ref or "main", failure, Post(message, (card,)))
    if summary.total or summary.misconfigs or summary.secrets or summary.licenses:
        # The full list goes in the thread of the pipeline, never as a wall of text in the channel.
        for channel_id, root_key in pipeline_threads(bot, project.id, repo, sha).items():
            bot.outbox.enqueue(channel_id, Post(render.full_list(summary, bot.tr, subject=subject)), root_key=root_key)
    bot.metrics.inc("cpn_scans_total", verdict=summary.verdict)
    return summary.verdict


def _same_summary(previous: dict[str, Any], shown: dict[str, Any]) -> bool:
    """The previous scan's summary says what this one would (older rows lack some fields: not the same)."""
    return all(previous.get(key) == value for key, value in shown.items())


@operation("scan.fetch")
async def fetch_report(op: Operation, bot: Bot) -> dict[str, Any]:
    """The scan job finished: its report, from the job's artifacts."""
    gitlab = bot.platform.gitlab
    project = bot.projects.get(op.params["project"])
    if gitlab is None or project is None:
        return {"status": "gone"}
    path = bot.config.gitlab.trivy_artifact if bot.config.gitlab else "trivy-report.json"
    try:
        raw = await gitlab.job_artifact(int(op.params["gitlab_project_id"]), int(op.params["job_id"]), path)
    except ServiceError as exc:
        if exc.transient:
            raise  # the operation runs again after a restart; GitLab may be back
        raw = None
    verdict = process_report(
        bot, project, op.params["repo"], raw or b"", op.params.get("ref", ""), op.params.get("sha", "")
    )
    return {"verdict": verdict}


@inbox_handler("trivy")
async def on_pushed_report(event: InboundEvent, bot: Bot) -> None:
    meta = json.loads(event.headers.get("meta", "{}"))
    project = bot.projects.get(event.project_key)
    if project is None:
        return
    spooled = event.headers.get(REPORT_FILE_HEADER)
    # A large report was spooled to a file by the web process (bot.spool): read mapped, then removed.
    raw = report_file(bot.config.store.path, spooled) if spooled else event.body.encode("utf-8")
    try:
        process_report(bot, project, meta.get("repo", ""), raw, meta.get("ref", ""), meta.get("sha", ""))
    except FileNotFoundError:
        process_report(bot, project, meta.get("repo", ""), b"", meta.get("ref", ""), meta.get("sha", ""))
    if isinstance(raw, Path):
        raw.unlink(missing_ok=True)


def _pipeline_of(bot: Bot, project: Project, repository: str, tag: str) -> tuple[str, str]:
    """(repo, sha) of the pipeline that pushed the image: its tag is the commit's sha (full or
    short, as ``CI_COMMIT_SHA``/``CI_COMMIT_SHORT_SHA``); else the bot's repository the image is
    named after (``api`` for ``api`` or ``api/worker``) and no sha: no thread to post in."""
    if len(tag) >= 7 and all(c in "0123456789abcdef" for c in tag):
        row = bot.store.db.execute(
            "SELECT repo, sha FROM pipelines WHERE project_id = ? AND sha LIKE ? ORDER BY updated_at DESC LIMIT 1",
            (project.id, f"{tag}%"),
        ).fetchone()
        if row is not None:
            return str(row[0]), str(row[1])
    head = repository.split("/", 1)[0]
    return (head if bot.projects.repository(project.id, head) is not None else repository), ""


@inbox_handler("harbor")
async def on_harbor_event(event: InboundEvent, bot: Bot) -> None:
    """Harbor scanned an image itself: its report is fetched (an operation, as the scan job's is)
    and posted as the Trivy card is. A failed scan is one short line; a push only triggers the
    scan, nothing is posted."""
    project = bot.projects.get(event.project_key)
    if project is None or event.event_type not in ("SCANNING_COMPLETED", "SCANNING_FAILED"):
        return
    data = event.json()["event_data"]
    repository = str(data["repository"]["name"])  # without the project: ``api``, ``team/web``
    for resource in data["resources"]:
        digest, tag = str(resource["digest"]), str(resource.get("tag") or "")
        repo, sha = _pipeline_of(bot, project, repository, tag)
        image = harbor_reference(bot, project.slug, repository, tag, digest)
        if event.event_type == "SCANNING_FAILED":
            text = bot.tr("scan.harbor_failed", image=image)
            publish_result(bot, project, repo, sha, "scan", "main", True, Post(text))
            bot.metrics.inc("cpn_scans_total", verdict="failed")
            continue
        params = {"project": project.name, "repository": repository, "digest": digest, "image": image}
        bot.operations.submit("scan.harbor", {**params, "repo": repo, "sha": sha})


@operation("scan.harbor")
async def fetch_harbor_report(op: Operation, bot: Bot) -> dict[str, Any]:
    from services.harbor import Harbor

    registry = bot.platform.registry
    project = bot.projects.get(op.params["project"])
    if not isinstance(registry, Harbor) or project is None:
        return {"status": "gone"}  # the platform's registry is another one now: nothing to fetch
    try:
        # The digest, not the tag: the tag may have moved to another image since the scan.
        answer = await registry.vulnerabilities(project.slug, op.params["repository"], op.params["digest"])
    except ServiceError as exc:
        if exc.transient:
            raise  # the operation runs again after a restart; Harbor may be back
        return {"status": "gone"}  # the artifact was deleted since its scan: nothing left to report
    repo, sha = op.params["repo"], op.params["sha"]
    try:
        report = scans.harbor_report(answer, op.params["image"])
    except scans.ReportUnreadable as exc:
        publish_result(bot, project, repo, sha, "scan", "main", True, Post(render.unreadable(exc.reason, bot.tr)))
        return {"verdict": "unreadable"}
    return {"verdict": publish_scan(bot, project, repo, report, "", sha)}


@every(3600.0, "scan.waivers")
async def expire_waivers(bot: Bot) -> None:
    """A waiver past its date counts again: the owners are told, once."""
    today = date.today().isoformat()
    rows = bot.store.db.execute(
        "SELECT id, project_id, vuln_id, until FROM waivers WHERE until < ? AND expired_notified = 0", (today,)
    ).fetchall()
    for waiver_id, project_id, vuln, until in rows:
        project = next((p for p in bot.projects.all() if p.id == project_id), None)
        if project is not None:
            text = bot.tr("scan.waiver_expired", vuln=vuln, until=until, owners=owners_mention(bot, project) or "—")
            for channel_id in bot.projects.channels(project.id):
                bot.outbox.enqueue(channel_id, Post(text))
        bot.store.db.execute("UPDATE waivers SET expired_notified = 1 WHERE id = ?", (waiver_id,))


def scan_lines(bot: Bot, project: Any) -> dict[str, list[str]]:
    """``/cpn status``: the last scan of each repository."""
    lines: dict[str, list[str]] = {}
    rows = bot.store.db.execute(
        "SELECT repo, subject, summary FROM scans WHERE id IN (SELECT MAX(id) FROM scans WHERE project_id = ? "
        "GROUP BY repo)",
        (project.id,),
    ).fetchall()
    for repo, subject, summary_json in rows:
        summary = json.loads(summary_json)
        icon = {"ok": "✅", "warn": "⚠️", "fail": "❌"}.get(summary.get("verdict"), "❔")
        counts = summary.get("counts", {})
        lines.setdefault(repo, []).append(
            bot.tr(
                "scan.status_line",
                icon=icon,
                subject=subject,
                critical=counts.get("CRITICAL", 0),
                high=counts.get("HIGH", 0),
                total=summary.get("total", 0),
            )
        )
    return lines
