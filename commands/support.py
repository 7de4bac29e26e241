"""Support for beta testers: ``/cpn ask``, questions to the bot in DMs and mentions, ``/cpn faq``,
``/cpn kb``, tickets (``/cpn support``, ``/cpn ticket``) relayed to the platform team, and
``/cpn services``, the platform's health.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.context import CommandContext, Reply
from bot.i18n import Text
from bot.interactive import ANY_USER, IN_HANDLER, Press, PressResult, action, button
from bot.knowledge import Answer, load_articles
from bot.listener import Message, on_message, on_thread_reply
from bot.outbox import Post, thread_of
from bot.render import support as render
from bot.render.safe import code, escape
from bot.render.status import status_card
from bot.rights import Access
from bot.scheduler import every
from bot.spec import Arg, ArgError, Flag, command, free_text, integer
from bot.workflows import contextual
from bot.workflows.rules import PROJECT_NAME
from bot.workflows.support import REGISTRY_NAMES, Health, Questions, Ticket, Tickets, kb_values
from services.errors import ServiceError
from services.health import Check, Probe, probes, run_probe
from services.health import Health as ServiceHealth

if TYPE_CHECKING:
    from bot.runtime import Bot

logger = logging.getLogger("cpn.support")
QUESTION = Arg(
    "question",
    Text("votre question, en toutes lettres", "your question, in plain words"),
    free_text(20_000),
    greedy=True,
)


# -- answers ----------------------------------------------------------------------------------------


def _buttons(bot: Bot, helped: bool, question_id: int, user_id: str, thread_id: str) -> list[dict[str, Any]]:
    """ "It helped" (for an answer) and "open a ticket"; ``thread_id``: the thread the card is posted in
    (none: an ephemeral answer)."""
    ephemeral = not thread_id
    actions = []
    if helped:
        actions.append(
            button(
                bot.public_url,
                bot.signer,
                name="support.helpful",
                label=bot.tr("support.helped"),
                user_id=user_id,
                data={"q": question_id},
                style="good",
                ephemeral=ephemeral,
                ttl=7 * 86400,
            )
        )
    actions.append(
        button(
            bot.public_url,
            bot.signer,
            name="support.ticket",
            label=bot.tr("support.open_ticket"),
            user_id=user_id,
            data={"q": question_id, "root": thread_id},
            style="primary",
            ephemeral=ephemeral,
            ttl=7 * 86400,
        )
    )
    return actions


def ask(bot: Bot, user_id: str, channel_id: str, question: str) -> tuple[Answer, int]:
    answer = bot.kb.answer(question)
    article = answer.best.article.id if answer.best else (answer.nearest.article.id if answer.nearest else "")
    question_id = Questions(bot.store).record(user_id, channel_id, question, article, answer.confidence, answer.known)
    bot.metrics.inc("cpn_kb_questions_total", known=str(answer.known).lower())
    return answer, question_id


def _context_card(bot: Bot, found: contextual.Found | None) -> tuple[dict[str, Any] | None, str]:
    """The card answering from the project, or ("", note): the knowledge base answers, under ``note``
    saying what the project showed (nothing failing, nothing deployed); ("", "") without a project."""
    tr = bot.tr
    if isinstance(found, contextual.Address):
        return render.address_card(found, REGISTRY_NAMES[bot.config.platform.registry], tr), ""
    if isinstance(found, contextual.PipelineFailure):
        if found.pipeline is None:
            return None, tr("support.context.no_failed_pipeline", project=escape(found.project.name))
        return render.pipeline_failure_card(found, tr), ""
    if isinstance(found, contextual.DeployFailure):
        name = escape(found.project.name)
        if not found.checked:
            return None, tr("support.context.no_deploy", project=name)
        if not found.failing:
            return None, tr.plural("support.context.no_failed_deploy", found.checked, project=name)
        return render.deploy_failure_card(found, tr), ""
    if isinstance(found, contextual.ProjectStatus):
        card = status_card(
            found.project, found.repositories, found.environments, found.extras, tr, datetime.now(), found.declared
        )
        return card, ""
    return None, ""


async def respond(bot: Bot, user_id: str, channel_id: str, question: str, thread_id: str = "") -> dict[str, Any]:
    """The answer card to a question: from the channel's project when it asks about it (bot.intents),
    else from the knowledge base; with its buttons."""
    context = await contextual.answer(bot, user_id, channel_id, question)
    card, note = _context_card(bot, context.found if context else None)
    if card is not None and context is not None:
        question_id = Questions(bot.store).record(user_id, channel_id, question, f"@{context.intent.kind}", 1.0, True)
        bot.metrics.inc("cpn_kb_questions_total", known="context")
        return {**card, "actions": _buttons(bot, True, question_id, user_id, thread_id)}
    answer, question_id = ask(bot, user_id, channel_id, question)
    card = render.answer_card(answer, question, bot.tr)
    if note:
        card = render.with_note(card, note)
    return {**card, "actions": _buttons(bot, answer.known, question_id, user_id, thread_id)}


@command(
    "ask",
    summary=Text("Pose une question sur la plateforme", "Asks a question about the platform"),
    args=[QUESTION],
    examples=["ask comment synchroniser mon dépôt ?"],
    project_arg=None,
)
async def ask_command(ctx: CommandContext) -> Reply:
    question = (ctx.args["question"] or "").strip()
    if not question.strip(" ?!.,;"):
        return Reply(ctx.tr("support.empty_question"))
    return Reply(attachments=[await respond(ctx.bot, ctx.user_id, ctx.channel_id, question)])


@on_message
async def answer_message(message: Message, bot: Bot) -> None:
    """A direct message or a mention: the answer in the message's thread."""
    question = message.text.strip()
    if not question.strip(" ?!.,;"):
        bot.outbox.enqueue(
            message.channel_id,
            Post(bot.tr("listener.hello", trigger=bot.config.mattermost.trigger)),
            root_key=thread_of(message.thread_id),
        )
        return
    card = await respond(bot, message.user_id, message.channel_id, question, message.thread_id)
    bot.outbox.enqueue(message.channel_id, Post("", (card,)), root_key=thread_of(message.thread_id))


@action("support.helpful")
async def helpful(press: Press, bot: Bot) -> PressResult:
    Questions(bot.store).feedback(int(press.data["q"]), True)
    return PressResult(ephemeral=bot.tr("support.thanks"))


@action("support.ticket")
async def ticket_from_answer(press: Press, bot: Bot) -> PressResult:
    row = bot.store.db.execute("SELECT question FROM kb_questions WHERE id = ?", (int(press.data["q"]),)).fetchone()
    if row is None:
        return PressResult(ephemeral=bot.tr("actions.unknown"))
    # The answer's thread (a question written to the bot); none for an ephemeral answer to /cpn ask.
    root = str(press.data.get("root") or "")
    channel = press.channel_id
    if not root:
        # Only the asker saw that answer: the ticket stays between them and the platform team, its
        # thread in their direct conversation with the bot rather than in the channel.
        try:
            channel = str((await bot.mm.direct_channel(bot.mm.bot_user_id, press.user_id))["id"])
        except ServiceError as exc:
            return PressResult(ephemeral=bot.tr("errors.service", service=exc.service))
    Questions(bot.store).feedback(int(press.data["q"]), False)
    ticket, opened = await open_ticket(
        bot,
        press.user_id,
        press.user_name,
        channel_project(bot, press.channel_id),
        row[0],
        channel,
        press.team_id,
        root,
    )
    if not opened:
        return PressResult(ephemeral=bot.tr("support.ticket_already_open", id=ticket.id))
    return PressResult(
        ephemeral=bot.tr("support.ticket_opened" if root else "support.ticket_opened_private", id=ticket.id)
    )


def channel_project(bot: Bot, channel_id: str) -> str:
    """The project of a channel linked to exactly one: what a ticket from there is about ('' if none)."""
    linked = bot.projects.linked_to(channel_id)
    return linked[0].name if len(linked) == 1 else ""


@command(
    "faq",
    summary=Text("Liste les sujets de la base de connaissances", "Lists the knowledge base's topics"),
    project_arg=None,
)
async def faq_command(ctx: CommandContext) -> Reply:
    return Reply(render.faq(ctx.bot.kb.articles, ctx.tr))


@command(
    "kb stats",
    summary=Text(
        "Questions posées, taux de réponse, questions sans réponse",
        "Questions asked, answer rate, unanswered questions",
    ),
    requires=Access.PLATFORM_ADMIN,
    project_arg=None,
)
async def kb_stats(ctx: CommandContext) -> Reply:
    return Reply(render.kb_stats(Questions(ctx.bot.store).stats(), ctx.tr))


@command(
    "kb reload",
    summary=Text("Relit les articles de la base de connaissances", "Reloads the knowledge base"),
    requires=Access.PLATFORM_ADMIN,
    project_arg=None,
)
async def kb_reload(ctx: CommandContext) -> Reply:
    try:
        count = ctx.bot.kb.index(load_articles(ctx.bot.kb_dir, kb_values(ctx.bot.config)))
    except (OSError, ValueError) as exc:
        return Reply(ctx.tr("support.kb_invalid", error=escape(str(exc), 300)))
    ctx.bot.store.audit(ctx.user_id, ctx.user_name, "kb.reload", str(ctx.bot.kb_dir), "ok", {"articles": count})
    return Reply(ctx.tr.plural("support.kb_reloaded", count))


# -- tickets ----------------------------------------------------------------------------------------


async def support_channel(bot: Bot, team_id: str) -> str:
    """The support channel's id, from its name in the config (cached)."""
    name = bot.config.platform.support_channel
    if not name:
        return ""
    if bot.support_channel_id:
        return bot.support_channel_id
    try:
        teams = [team_id] if team_id else [t["id"] for t in await bot.mm.teams_of(bot.mm.bot_user_id)]
        for team in teams:
            channel = await bot.mm.channel_by_name(team, name)
            if channel:
                bot.support_channel_id = str(channel["id"])
                return bot.support_channel_id
    except ServiceError:
        return ""
    return ""


def _staff_buttons(bot: Bot, ticket: Ticket) -> list[dict[str, Any]]:
    """Take while nobody has; resolve while open. Any staff member may press (checked on press)."""
    offered = [("ticket.take", "support.take", "primary")] if ticket.status == "open" else []
    if ticket.open:
        offered.append(("ticket.resolve", "support.resolve", "good"))
    return [
        button(
            bot.public_url,
            bot.signer,
            name=name,
            label=bot.tr(label),
            user_id=ANY_USER,
            data={"id": ticket.id},
            style=style,
            ttl=30 * 86400,
        )
        for name, label, style in offered
    ]


def _support_card(bot: Bot, ticket: Ticket) -> Post:
    card = render.ticket_card(ticket, bot.tr)
    card["actions"] = _staff_buttons(bot, ticket)
    return Post("", (card,))


async def _can_post(bot: Bot, channel_id: str) -> bool:
    """Whether the bot may write in the reporter's channel, where the ticket's thread goes."""
    try:
        return await bot.mm.is_member(channel_id, bot.mm.bot_user_id)
    except ServiceError:
        return True  # Mattermost hiccup: the outbox retries the posts


def _invite_bot(bot: Bot) -> str:
    return bot.tr("subscribe.invite_bot", bot=f"@{bot.mm.bot_username or 'cpn-bot'}")


async def open_ticket(
    bot: Bot, user_id: str, user_name: str, project: str, message: str, channel_id: str, team_id: str, root_id: str
) -> tuple[Ticket, bool]:
    """The ticket opened, and True; or the reporter's open ticket with the same request, and False."""
    tickets = Tickets(bot.store)
    existing = tickets.find_open(user_id, project, message)
    if existing is not None:
        return existing, False
    support = await support_channel(bot, team_id)
    ticket = tickets.open_ticket(user_id, user_name, project, message, channel_id, root_id, support)
    if root_id:
        reporter_thread = thread_of(root_id)
    else:
        reporter_thread = ticket.reporter_key
        bot.outbox.enqueue(
            channel_id,
            Post(bot.tr("support.ticket_root", id=ticket.id, user=f"@{user_name}", message=escape(message, 500))),
            post_key=ticket.reporter_key,
        )
    bot.outbox.enqueue(channel_id, Post(bot.tr("support.ticket_ack", id=ticket.id)), root_key=reporter_thread)
    if support:
        bot.outbox.enqueue(support, _support_card(bot, ticket), post_key=ticket.support_key)
    bot.store.audit(user_id, user_name, "ticket.open", f"#{ticket.id}", "ok", {"project": project})
    bot.metrics.inc("cpn_tickets_total", event="opened")
    return ticket, True


def _reporter_thread(ticket: Ticket) -> str:
    return thread_of(ticket.reporter_root_id) if ticket.reporter_root_id else ticket.reporter_key


# ``--project P`` before or after the message: the parser leaves it in the greedy message either way.
PROJECT_IN_MESSAGE = (
    re.compile(r"^--project(?:=|\s+)(\S+)(?:\s+|$)", re.IGNORECASE),
    re.compile(r"(?:^|\s)--project(?:=|\s+)(\S+)\s*$", re.IGNORECASE),
)


def _project_flag(message: str) -> tuple[str, str] | None:
    """The project named by a ``--project`` left in the message, and the message without it."""
    for pattern in PROJECT_IN_MESSAGE:
        found = pattern.search(message)
        if found:
            return found.group(1), (message[: found.start()] + " " + message[found.end() :]).strip()
    return None


@command(
    "support",
    summary=Text("Ouvre un ticket auprès de l'équipe plateforme", "Opens a ticket with the platform team"),
    args=[Arg("message", Text("votre demande", "your request"), free_text(4000), greedy=True)],
    flags=[Flag("project", Text("le projet concerné", "the project concerned"), PROJECT_NAME)],
    examples=['support --project alpha mon pipeline reste bloqué sur "pending"'],
    project_arg=None,
)
async def support_command(ctx: CommandContext) -> Reply:
    message = (ctx.args["message"] or "").strip()
    project = ctx.args["project"] or ""
    flag = _project_flag(message) if not project else None
    if not project and flag is None:
        project = channel_project(ctx.bot, ctx.channel_id)
    if flag is not None:
        try:
            project = PROJECT_NAME.validate(flag[0])
        except ArgError as exc:
            return Reply(ctx.tr(exc.key, **{**exc.params, "value": code(flag[0], 40)}))
        message = flag[1]
    if not message.strip(" ?!.,;"):
        return Reply(ctx.tr("support.empty_ticket"))
    if not await _can_post(ctx.bot, ctx.channel_id):
        # The staff's answers could not reach the reporter: nothing is opened that nobody would see.
        return Reply(_invite_bot(ctx.bot))
    ticket, opened = await open_ticket(
        ctx.bot, ctx.user_id, ctx.user_name, project, message, ctx.channel_id, ctx.team_id, ""
    )
    return Reply(ctx.tr("support.ticket_opened" if opened else "support.ticket_already_open", id=ticket.id))


async def _is_staff(bot: Bot, user_id: str) -> bool:
    return (await bot.identities.get(user_id)).is_platform_admin


async def _ticket_for_staff(press: Press, bot: Bot) -> Ticket | PressResult:
    """The open ticket a support-card button is about, or the answer to give whoever pressed it."""
    if not await _is_staff(bot, press.user_id):
        return PressResult(ephemeral=bot.tr("support.staff_only"))
    ticket = Tickets(bot.store).get(int(press.data["id"]))
    if ticket is None or not ticket.open:
        return PressResult(ephemeral=bot.tr("support.ticket_closed"))
    return ticket


async def _staff_moves(press: Press, bot: Bot, event: str) -> PressResult:
    """A support-card button pressed by the platform team: the ticket moves on, its reporter is told."""
    found = await _ticket_for_staff(press, bot)
    if isinstance(found, PressResult):
        return found
    tickets = Tickets(bot.store)
    # Any staff member may press: the button is used up only by one who may, with the move itself.
    with press.effect():
        if event == "take":
            tickets.take(found.id, press.user_id, press.user_name)
            notice = bot.tr("support.taken_notice", id=found.id, user=f"@{press.user_name}")
        else:
            tickets.resolve(found.id, press.user_id, press.user_name)
            notice = bot.tr("support.resolved_notice", id=found.id, user=f"@{found.reporter_name}")
        ticket = tickets.get(found.id)
        assert ticket is not None
        bot.outbox.enqueue(ticket.reporter_channel_id, Post(notice), root_key=_reporter_thread(ticket))
        bot.store.audit(press.user_id, press.user_name, f"ticket.{event}", f"#{ticket.id}", "ok")
    if event == "resolve":
        bot.metrics.inc("cpn_tickets_total", event="resolved")
    return PressResult(update=_support_card(bot, ticket))


@action("ticket.take", use=IN_HANDLER)
async def take(press: Press, bot: Bot) -> PressResult:
    return await _staff_moves(press, bot, "take")


@action("ticket.resolve", use=IN_HANDLER)
async def resolve(press: Press, bot: Bot) -> PressResult:
    return await _staff_moves(press, bot, "resolve")


@on_thread_reply
async def relay(message: Message, bot: Bot) -> bool:
    """Staff's replies in the support thread go to the reporter's thread, and the reporter's back."""
    found = Tickets(bot.store).by_thread(message.root_id)
    if found is None:
        return False
    ticket, side = found
    text = escape(message.text, 3000)
    if side == "support":
        if not await _is_staff(bot, message.user_id):
            return True  # a bystander's remark in the support thread is not the platform team's answer
        bot.outbox.enqueue(
            ticket.reporter_channel_id,
            Post(bot.tr("support.relay_staff", user=f"@{message.username}", text=text)),
            root_key=_reporter_thread(ticket),
        )
    elif ticket.support_channel_id:
        if ticket.status == "resolved" and message.user_id == ticket.reporter_id:
            # "Reply in this thread if a problem remains" (support.resolved_notice): the ticket reopens.
            tickets = Tickets(bot.store)
            tickets.reopen(ticket.id)
            reopened = tickets.get(ticket.id)
            assert reopened is not None
            bot.outbox.enqueue(ticket.support_channel_id, _support_card(bot, reopened), post_key=ticket.support_key)
            bot.store.audit(message.user_id, message.username, "ticket.reopen", f"#{ticket.id}", "ok")
            bot.metrics.inc("cpn_tickets_total", event="reopened")
        bot.outbox.enqueue(
            ticket.support_channel_id,
            Post(bot.tr("support.relay_reporter", user=f"@{message.username}", text=text)),
            root_key=ticket.support_key,
        )
    bot.metrics.inc("cpn_tickets_total", event="relayed")
    return True


@command(
    "ticket list",
    summary=Text(
        "Vos tickets (tous les tickets ouverts pour l'équipe plateforme)",
        "Your tickets (every open ticket for the platform team)",
    ),
    project_arg=None,
)
async def ticket_list(ctx: CommandContext) -> Reply:
    staff = (await ctx.identity()).is_platform_admin
    tickets = Tickets(ctx.bot.store).listing(None if staff else ctx.user_id, only_open=staff)
    return Reply(render.ticket_list(tickets, ctx.tr))


TICKET_ID = Arg("id", Text("numéro du ticket", "ticket number"), integer(1))


async def _visible_ticket(ctx: CommandContext) -> Ticket | None:
    ticket = Tickets(ctx.bot.store).get(ctx.args["id"])
    if ticket is None:
        return None
    if ticket.reporter_id == ctx.user_id or (await ctx.identity()).is_platform_admin:
        return ticket
    return None


@command("ticket show", summary=Text("Montre un ticket", "Shows a ticket"), args=[TICKET_ID], project_arg=None)
async def ticket_show(ctx: CommandContext) -> Reply:
    ticket = await _visible_ticket(ctx)
    if ticket is None:
        return Reply(ctx.tr("support.no_such_ticket", id=ctx.args["id"]))
    return Reply(attachments=[render.ticket_card(ticket, ctx.tr)])


@command("ticket close", summary=Text("Ferme un ticket", "Closes a ticket"), args=[TICKET_ID], project_arg=None)
async def ticket_close(ctx: CommandContext) -> Reply:
    ticket = await _visible_ticket(ctx)
    if ticket is None:
        return Reply(ctx.tr("support.no_such_ticket", id=ctx.args["id"]))
    tickets = Tickets(ctx.bot.store)
    tickets.close(ticket.id)
    closed = tickets.get(ticket.id)
    assert closed is not None
    notice = Post(ctx.bot.tr("support.closed_notice", id=closed.id, user=f"@{ctx.user_name}"))
    if closed.support_channel_id:
        ctx.bot.outbox.enqueue(closed.support_channel_id, _support_card(ctx.bot, closed), post_key=closed.support_key)
        if ctx.user_id == closed.reporter_id:
            ctx.bot.outbox.enqueue(closed.support_channel_id, notice, root_key=closed.support_key)
    if ctx.user_id != closed.reporter_id:
        # The platform team closed it: the reporter learns it where they asked.
        ctx.bot.outbox.enqueue(closed.reporter_channel_id, notice, root_key=_reporter_thread(closed))
    ctx.bot.store.audit(ctx.user_id, ctx.user_name, "ticket.close", f"#{ticket.id}", "ok")
    return Reply(ctx.tr("support.ticket_closed_now", id=ticket.id))


@every(300.0, "support.reminders")
async def remind(bot: Bot) -> None:
    """Tickets nobody took after the configured delay are brought up again in the support channel."""
    tickets = Tickets(bot.store)
    delay = bot.config.support.ticket_reminder_minutes * 60
    for ticket in tickets.to_remind(delay):
        if ticket.support_channel_id:
            bot.outbox.enqueue(
                ticket.support_channel_id, Post(bot.tr("support.reminder", id=ticket.id)), root_key=ticket.support_key
            )
        tickets.reminded(ticket.id)


# -- platform health ------------------------------------------------------------------------------


async def _probe(name: str, probe: Probe) -> Check:
    """One service's check; an answer the probe cannot read makes it unknown, not the whole check fail."""
    started = time.perf_counter()
    try:
        return await run_probe(name, probe)
    except Exception as exc:
        logger.warning("health probe failed", extra={"fields": {"service": name, "error": type(exc).__name__}})
        return Check(name, ServiceHealth.UNKNOWN, (time.perf_counter() - started) * 1000, "unexpected answer")


async def check_platform(bot: Bot) -> list[dict[str, Any]]:
    """Every service checked now; a change of status is announced once in the support channel."""
    health = Health(bot.store)
    support = await support_channel(bot, "")
    checks = await asyncio.gather(*(_probe(name, probe) for name, probe in probes(bot.config).items()))
    for check in checks:
        before = health.update(check.service, check.health.value, check.latency_ms, check.detail)
        if before is not None and support:
            bot.outbox.enqueue(
                support, Post(render.health_change(check.service, before, check.health.value, check.detail, bot.tr))
            )
            bot.metrics.inc("cpn_health_changes_total", service=check.service)
    return health.all()


@every(300.0, "support.health")
async def refresh_health(bot: Bot) -> None:
    await check_platform(bot)


@command(
    "services", summary=Text("État des services de la plateforme", "State of the platform's services"), project_arg=None
)
async def services_command(ctx: CommandContext) -> Reply:
    return Reply(attachments=[render.health_card(await check_platform(ctx.bot), ctx.tr)])
