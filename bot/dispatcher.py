"""From a slash command's text to a :class:`~bot.context.Reply`: parse, check rights, run.

Everything that can go wrong with what a user typed ends here as an ephemeral message with the
command's usage; a handler's crash ends as a short apology with a reference, never a traceback.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.context import CommandContext, Reply
from bot.i18n import Text
from bot.logs import log, request_id_var
from bot.parser import UsageError, clean, parse_args, tokenize
from bot.render import help as help_render
from bot.render.safe import code, escape
from bot.rights import Role
from bot.spec import CommandSpec, Registry
from bot.suggest import closest
from services.console_errors import ConsoleError, reader_reason
from services.errors import ServiceError

if TYPE_CHECKING:
    from bot.runtime import Bot

logger = logging.getLogger("cpn.dispatcher")


def _param(key: str, value: object, lang: str) -> object:
    """A usage error's parameter as shown: typed values quoted, texts declared in both languages resolved."""
    if isinstance(value, Text):
        return value(lang)
    return code(str(value)) if key in ("value", "flag", "extra") else value


class Dispatcher:
    def __init__(self, bot: Bot, registry: Registry) -> None:
        self.bot = bot
        self.registry = registry

    @property
    def trigger(self) -> str:
        return self.bot.config.mattermost.trigger

    async def run(self, ctx: CommandContext, text: str) -> Reply:
        tr = ctx.tr
        try:
            cleaned = clean(text)
            tokens = tokenize(cleaned)
            words = [t.word for t in tokens]
            if not words:
                words, tokens = ["help"], []
            spec, used = self.registry.match(words)
            if spec is None:
                return Reply(self._unknown(words, ctx))
            ctx.spec = spec
            ctx.args = parse_args(spec, tokens[used:], cleaned)
        except UsageError as exc:
            message = tr(
                exc.key,
                **{k: _param(k, v, ctx.lang) for k, v in exc.params.items()},
            )
            self.bot.metrics.inc("cpn_command_errors_total", reason="usage")
            return Reply(help_render.usage_error(message, exc.spec, tr, self.trigger))

        refusal = await self.refusal(spec, ctx)
        if refusal is not None:
            self.bot.metrics.inc("cpn_command_errors_total", reason="rights")
            return Reply(refusal)
        self.bot.metrics.inc("cpn_commands_total", command=spec.name)
        try:
            unknown = await self._adopted(spec, ctx)
            if unknown is not None:
                return unknown
            return await spec.handler(ctx)
        except ConsoleError as exc:
            # The console's refusal, whatever its backend's error shape, said in the reader's words.
            self.bot.metrics.inc("cpn_command_errors_total", reason="console")
            named = str(ctx.args.get(spec.project_arg or "", "") or "")
            message = escape(exc.console_message, 200)
            return Reply(tr(f"console_error.{reader_reason(exc)}", message=message, project=named or "…"))
        except ServiceError as exc:
            self.bot.metrics.inc("cpn_command_errors_total", reason="service")
            return Reply(tr("errors.service", service=exc.service))
        except Exception as exc:
            self.bot.metrics.inc("cpn_command_errors_total", reason="internal")
            log(logger, logging.ERROR, "command crashed", command=spec.name, error=type(exc).__name__)
            logger.debug("command crash", exc_info=True)
            return Reply(tr("errors.internal", ref=request_id_var.get() or "-"))

    async def _adopted(self, spec: CommandSpec, ctx: CommandContext) -> Reply | None:
        """The project a command names, brought into the bot at its first command when the
        provisioner has it but the bot does not (a console project made in the console's UI): its
        hooks are wired by an ``adopt`` reconcile, whose card says so. A reply if there is none."""
        name = str(ctx.args.get(spec.project_arg or "", "") or "") if spec.scoped else ""
        if not name or not isinstance(spec.requires, Role):
            return None
        known = self.bot.projects.get(name)
        if known is not None:
            # What was added in the provisioner's UI since: the command sees it, the bot follows it.
            # Best effort: a console down must not stop a command that does not need it (status).
            try:
                if await self.bot.control.refresh(known):
                    ctx.submit("project.reconcile", {"project": known.name, "mode": "adopt"})
            except (ServiceError, ConsoleError) as exc:
                log(logger, logging.WARNING, "refresh from the provisioner failed", error=type(exc).__name__)
            return None
        project = await self.bot.control.adopt(name, ctx.user_id)
        if project is None:
            return Reply(ctx.tr("errors.unknown_project", project=code(name)))
        ctx.submit("project.reconcile", {"project": project.name, "mode": "adopt"})
        return None

    # -- rights -------------------------------------------------------------------------------

    async def refusal(self, spec: CommandSpec, ctx: CommandContext) -> str | None:
        """Why the caller may not run ``spec`` on these arguments, or None if they may."""
        return await self.bot.rights.refusal(spec, ctx)

    async def visible(self, ctx: CommandContext) -> list[CommandSpec]:
        """The commands ``/cpn help`` shows this caller: those they may run somewhere."""
        return await self.bot.rights.visible(ctx, [spec for spec in self.registry.all() if not spec.hidden])

    # -- typos --------------------------------------------------------------------------------

    def _unknown(self, words: list[str], ctx: CommandContext) -> str:
        """No command has these leading words: the nearest group and verb, with that command's usage.

        ``project craete`` → ``project create``; ``deploi etatcivil`` → ``deploy`` (the rest of the
        line is the command's arguments, not part of its name)."""
        tr = ctx.tr
        lowered = [w.lower() for w in words]
        groups = self.registry.groups()
        group = lowered[0] if lowered[0] in groups else closest(lowered[0], groups)
        if group is None:
            return tr("errors.unknown_command", typed=code(words[0]), trigger=self.trigger)
        single = next((s for s in groups[group] if len(s.path) == 1), None)
        verbs = {s.path[1]: s for s in groups[group] if len(s.path) > 1}
        second = lowered[1] if len(lowered) > 1 else ""
        spec: CommandSpec | None
        if group == lowered[0]:
            # The group is right and has no command of its own: the verb is what was mistyped.
            spec = verbs.get(closest(second, verbs) or "")
            if spec is None:
                listed = ", ".join(f"`{s.name}`" for s in groups[group])
                return tr("errors.unknown_verb", group=code(words[0]), verbs=listed, trigger=self.trigger)
            message = tr("errors.unknown_verb_suggest", typed=code(words[1]), suggestion=code(spec.name))
        else:
            # A mistyped group: its verb may follow, typed right or (if the group takes no arguments
            # of its own, so the word cannot be one) mistyped too.
            spec = verbs.get(second) or (single or verbs.get(closest(second, verbs) or ""))
            if spec is None:
                return tr(
                    "errors.unknown_command_suggest",
                    typed=code(words[0]),
                    suggestion=code(group),
                    trigger=self.trigger,
                )
            message = tr("errors.unknown_command_suggest", typed=code(words[0]), suggestion=code(spec.name))
        return help_render.usage_error(message, spec, tr, self.trigger)
