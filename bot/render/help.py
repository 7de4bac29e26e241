"""Help texts, derived from the command declarations."""

from __future__ import annotations

from collections.abc import Sequence

from bot.i18n import Translator
from bot.rights import requirement_label
from bot.spec import CommandSpec


def command_list(specs: Sequence[CommandSpec], tr: Translator, trigger: str) -> str:
    """``/cpn help``: the commands the caller may run, by group."""
    lines = [f"#### {tr('help.title')}", tr("help.intro", trigger=trigger), ""]
    current = ""
    for spec in sorted(specs, key=lambda s: s.name):
        if spec.group != current:
            current = spec.group
            lines.append(f"**{current}**")
        lines.append(f"- `{spec.usage(trigger)}` — {spec.summary(tr.lang)}")
    lines += ["", tr("help.more", trigger=trigger)]
    return "\n".join(lines)


def command_help(spec: CommandSpec, tr: Translator, trigger: str) -> str:
    """``/cpn help <command>``: usage, arguments, flags, rights, examples."""
    lang = tr.lang
    lines = [f"#### `/{trigger} {spec.name}`", spec.summary(lang)]
    if spec.description:
        lines += ["", spec.description(lang)]
    lines += ["", f"**{tr('help.usage')}** `{spec.usage(trigger)}`"]
    if spec.args:
        lines += ["", f"**{tr('help.arguments')}**"]
        lines += [f"- `{arg.usage()}` — {arg.help(lang)}" for arg in spec.args]
    if spec.flags:
        lines += ["", f"**{tr('help.options')}**"]
        lines += [f"- `{flag.usage().strip('[]')}` — {flag.help(lang)}" for flag in spec.flags]
    lines += ["", f"**{tr('help.rights')}** {requirement_label(spec.requires, lang)}"]
    if spec.examples:
        lines += ["", f"**{tr('help.examples')}**"]
        lines += [f"- `/{trigger} {example}`" for example in spec.examples]
    return "\n".join(lines)


def usage_error(message: str, spec: CommandSpec | None, tr: Translator, trigger: str) -> str:
    lines = [f"⚠️ {message}"]
    if spec is not None:
        lines += [
            f"{tr('help.usage')} `{spec.usage(trigger)}`",
            tr("help.see", trigger=trigger, name=spec.name),
        ]
    return "\n".join(lines)
