"""Help texts, derived from the command declarations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bot.i18n import Translator
from bot.rights import requirement_label
from bot.spec import CommandSpec


def command_list(specs: Sequence[CommandSpec], tr: Translator, trigger: str) -> str:
    """``/cpn help <group>``: the commands of a group the caller may run, with their usage."""
    lines = [f"#### {tr('help.title')}", tr("help.intro", trigger=trigger), ""]
    current = ""
    for spec in sorted(specs, key=lambda s: s.name):
        if spec.group != current:
            current = spec.group
            lines.append(f"**{current}**")
        lines.append(f"- `{spec.usage(trigger, tr.lang)}` — {spec.summary(tr.lang)}")
    lines += ["", tr("help.group_more", trigger=trigger)]
    return "\n".join(lines)


def overview(sections: Mapping[str, Sequence[str]], specs: Sequence[CommandSpec], tr: Translator, trigger: str) -> str:
    """``/cpn help``: one line per section the caller may use, with the verbs they may run there.

    A group no section names gets its own line (described by its first command), so none is ever left out.
    """
    by_group: dict[str, list[CommandSpec]] = {}
    for spec in sorted(specs, key=lambda s: s.name):
        by_group.setdefault(spec.group, []).append(spec)
    named = {group for groups in sections.values() for group in groups}
    lines = [f"#### {tr('help.title')}", tr("help.intro", trigger=trigger)]
    for key, groups in sections.items():
        mine = [spec for group in groups for spec in by_group.get(group, [])]
        if mine:
            lines.append(_section_line(tr, tr(f"help.sections.{key}"), mine))
    for group, mine in by_group.items():
        if group not in named:
            lines.append(_section_line(tr, mine[0].summary(tr.lang), mine))
    lines.append(tr("help.more", trigger=trigger))
    return "\n".join(lines)


def _section_line(tr: Translator, description: str, specs: Sequence[CommandSpec]) -> str:
    """``description : `project` create, list · `sync```: each group once, then its verbs."""
    verbs: dict[str, list[str]] = {}
    for spec in specs:
        verbs.setdefault(spec.group, []).extend(spec.path[1:2] if len(spec.path) > 1 else [])
    listed = " · ".join(f"`{group}` {', '.join(words)}".strip() for group, words in verbs.items())
    return tr("help.section_line", description=description, verbs=listed)


def command_help(spec: CommandSpec, tr: Translator, trigger: str) -> str:
    """``/cpn help <command>``: usage, arguments, flags, rights, examples."""
    lang = tr.lang
    lines = [f"#### `/{trigger} {spec.name}`", spec.summary(lang)]
    if spec.description:
        lines += ["", spec.description(lang)]
    lines += ["", f"**{tr('help.usage')}** `{spec.usage(trigger, tr.lang)}`"]
    if spec.args:
        lines += ["", f"**{tr('help.arguments')}**"]
        lines += [f"- `{arg.usage(lang)}` — {arg.help(lang)}" for arg in spec.args]
    if spec.flags:
        lines += ["", f"**{tr('help.options')}**"]
        lines += [f"- `{flag.usage(lang).strip('[]')}` — {flag.help(lang)}" for flag in spec.flags]
    lines += ["", f"**{tr('help.rights')}** {requirement_label(spec.requires, lang)}"]
    if spec.examples:
        lines += ["", f"**{tr('help.examples')}**"]
        lines += [f"- `/{trigger} {example}`" for example in spec.examples]
    return "\n".join(lines)


def usage_error(message: str, spec: CommandSpec | None, tr: Translator, trigger: str) -> str:
    lines = [f"⚠️ {message}"]
    if spec is not None:
        lines += [
            f"{tr('help.usage')} `{spec.usage(trigger, tr.lang)}`",
            tr("help.see", trigger=trigger, name=spec.name),
        ]
    return "\n".join(lines)
