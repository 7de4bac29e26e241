"""``/cpn scan``, ``scan waive``, ``scan waivers`` and ``policy``: vulnerability scans and their rules."""

from __future__ import annotations

import json
from datetime import date
from typing import TYPE_CHECKING, Any

from bot.context import CommandContext, Reply
from bot.i18n import Text
from bot.refusal import forbidden
from bot.render.safe import code, escape
from bot.rights import Role
from bot.spec import Arg, ArgError, Flag, Kind, command, free_text, integer, iso_date
from bot.store import now
from commands.project import PROJECT

if TYPE_CHECKING:
    pass


def _vuln(value: str) -> str:
    cleaned = value.strip().upper()
    if not (4 <= len(cleaned) <= 64) or not all(c.isalnum() or c in "-_." for c in cleaned):
        raise ArgError("rules.vuln_id", value=value)
    return cleaned


VULN = Kind("cve", _vuln)


@command(
    "scan",
    summary=Text("Dernier scan Trivy de chaque image et l'historique", "Last Trivy scan of each image, and history"),
    args=[PROJECT, Arg("repo", Text("dépôt (tous par défaut)", "repository (all by default)"), required=False)],
    requires=Role.READONLY,
    examples=["scan alpha", "scan alpha api"],
)
async def scan_command(ctx: CommandContext) -> Reply:
    bot = ctx.bot
    project = ctx.project()
    where, params = "project_id = ?", [project.id]
    if ctx.args["repo"]:
        where += " AND repo = ?"
        params.append(ctx.args["repo"])
    rows = list(bot.store.db.table("scans").rows_where(where, params, order_by="id desc", limit=50))
    if not rows:
        return Reply(ctx.tr("scan.none", project=code(project.name)))
    lines = [f"#### {ctx.tr('scan.list_title', project=project.name)}"]
    by_subject: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_subject.setdefault(row["subject"], []).append(row)
    for subject, history in by_subject.items():
        latest = json.loads(history[0]["summary"])
        icon = {"ok": "✅", "warn": "⚠️", "fail": "❌"}.get(latest["verdict"], "❔")
        counts = latest["counts"]
        lines.append(
            f"{icon} **{escape(subject, 120)}** — "
            + ctx.tr(
                "scan.latest",
                critical=counts.get("CRITICAL", 0),
                high=counts.get("HIGH", 0),
                medium=counts.get("MEDIUM", 0),
                low=counts.get("LOW", 0),
                fixable=latest["fixable"],
                waived=latest["waived"],
            )
        )
        # Oldest to newest: the way the eye reads a trend.
        totals = [str(json.loads(row["summary"])["total"]) for row in reversed(history[:5])]
        new, fixed = latest.get("new", 0), latest.get("fixed", 0)
        change = ctx.tr("scan.history", trail=" → ".join(totals), new=new, fixed=fixed)
        lines[-1] += f" — {change}"
    lines.append(f"_{ctx.tr('scan.history_legend')}_")
    return Reply("\n".join(lines))


@command(
    "policy",
    summary=Text("Politique de scan du projet (seuils)", "The project's scan policy (thresholds)"),
    description=Text(
        "Sans option : affiche la politique. Un scan qui la dépasse est signalé ❌ et mentionne les propriétaires.",
        "Without options: shows the policy. A scan breaking it is flagged ❌ and mentions the owners.",
    ),
    args=[PROJECT],
    flags=[
        Flag("max-critical", Text("vulnérabilités critiques tolérées", "critical vulnerabilities allowed"), integer(0)),
        Flag("max-high", Text("vulnérabilités hautes tolérées", "high vulnerabilities allowed"), integer(0)),
        Flag("ignore-unfixed", Text("ne pas compter celles sans correctif", "do not count those without a fix")),
        Flag("reset", Text("retirer toute limite", "remove every limit")),
    ],
    requires=Role.READONLY,
    examples=["policy alpha --max-critical 0 --max-high 5 --ignore-unfixed"],
)
async def policy_command(ctx: CommandContext) -> Reply:
    bot = ctx.bot
    project = ctx.project()
    changing = (
        ctx.args["max-critical"] is not None
        or ctx.args["max-high"] is not None
        or ctx.args["ignore-unfixed"]
        or ctx.args["reset"]
    )
    if changing:
        if not await bot.rights.may(ctx.user_id, project.name, Role.ADMIN):
            return Reply(forbidden(bot, ctx.tr, "policy", Role.ADMIN, ctx.user_id, project.name))
        values = {
            "project_id": project.id,
            "max_critical": ctx.args["max-critical"],
            "max_high": ctx.args["max-high"],
            "ignore_unfixed": int(bool(ctx.args["ignore-unfixed"])),
            "updated_by": ctx.user_id,
        }
        if ctx.args["reset"]:
            values |= {"max_critical": None, "max_high": None, "ignore_unfixed": 0}
        bot.store.db.table("policies").upsert(values, pk="project_id")
        bot.store.audit(
            ctx.user_id,
            ctx.user_name,
            "scan.policy",
            project.name,
            "ok",
            {k: v for k, v in values.items() if k != "updated_by"},
        )
    from bot.scans import policy_of

    policy = policy_of(bot, project.id)
    none = ctx.tr("scan.no_limit")
    text = ctx.tr(
        "scan.policy",
        project=code(project.name),
        critical=none if policy.max_critical is None else policy.max_critical,
        high=none if policy.max_high is None else policy.max_high,
        unfixed=ctx.tr("whoami.yes") if policy.ignore_unfixed else ctx.tr("whoami.no"),
    )
    return Reply(text, in_channel=bool(changing))


@command(
    "scan waive",
    summary=Text(
        "Accorde une dérogation pour une vulnérabilité, jusqu'à une date", "Waives a vulnerability until a date"
    ),
    args=[PROJECT, Arg("vuln", Text("identifiant (CVE-…, GHSA-…)", "identifier (CVE-…, GHSA-…)"), VULN)],
    flags=[
        Flag(
            "until",
            Text("date de fin, incluse (AAAA-MM-JJ)", "end date, included (YYYY-MM-DD)"),
            iso_date(),
            required=True,
        ),
        Flag("reason", Text("justification", "justification"), free_text(500), required=True),
    ],
    requires=Role.ADMIN,
    examples=['scan waive alpha CVE-2019-14697 --until 2026-12-31 --reason "pas exploitable : musl non exposé"'],
)
async def waive(ctx: CommandContext) -> Reply:
    bot = ctx.bot
    project = ctx.project()
    until: date = ctx.args["until"]
    if until < date.today():
        return Reply(ctx.tr("scan.past_date"))
    if (until - date.today()).days > 366:
        return Reply(ctx.tr("scan.too_far"))
    bot.store.db.table("waivers").insert(
        {
            "project_id": project.id,
            "vuln_id": ctx.args["vuln"],
            "until": until.isoformat(),
            "reason": ctx.args["reason"],
            "created_by": ctx.user_name,
            "created_at": now(),
        }
    )
    bot.store.audit(
        ctx.user_id,
        ctx.user_name,
        "scan.waive",
        f"{project.name}/{ctx.args['vuln']}",
        "ok",
        {"until": until.isoformat(), "reason": ctx.args["reason"][:200]},
    )
    return Reply(
        ctx.tr(
            "scan.waiver_recorded",
            vuln=code(ctx.args["vuln"]),
            until=until.isoformat(),
            reason=escape(ctx.args["reason"], 200),
        ),
        in_channel=True,
    )


@command(
    "scan waivers",
    summary=Text("Dérogations du projet", "The project's waivers"),
    args=[PROJECT],
    requires=Role.READONLY,
)
async def waivers(ctx: CommandContext) -> Reply:
    bot = ctx.bot
    project = ctx.project()
    rows = list(bot.store.db.table("waivers").rows_where("project_id = ?", [project.id], order_by="until desc"))
    if not rows:
        return Reply(ctx.tr("scan.no_waivers", project=code(project.name)))
    today = date.today().isoformat()
    lines = [f"#### {ctx.tr('scan.waivers_title', project=project.name)}"]
    for row in rows:
        state = ctx.tr("scan.waiver_active") if row["until"] >= today else ctx.tr("scan.waiver_expired_short")
        lines.append(
            f"- {code(row['vuln_id'])} — {state}, {row['until']} — {escape(row['reason'], 150)} "
            f"(@{escape(row['created_by'], 40)})"
        )
    return Reply("\n".join(lines))
