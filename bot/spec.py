"""Commands are declared once, here-style, and everything else follows from the declaration.

A declaration names the command (``"project create"``), its positional arguments and flags with their
validators, its help text in French and English, and the requirement (role) to run it. The parser,
the usage line, ``/cpn help``, ``/cpn help <command>``, typo suggestions and the rights check are all
derived from it::

    @command(
        "project create",
        summary=Text("Crée un projet", "Creates a project"),
        args=[Arg("name", Text("nom du projet", "project name"), project_name)],
        flags=[Flag("description", Text("description", "description"), value=free_text(280))],
        requires=Access.CREATOR,
    )
    async def create(ctx: CommandContext) -> Reply: ...
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from bot.i18n import DEFAULT_LANG, LANGS, Lang, Text, t
from bot.rights import ROLE_NAMES, Access, ConsoleRule, Requirement, Role

if TYPE_CHECKING:
    from bot.context import CommandContext, Reply


class ArgError(Exception):
    """A value does not follow its rule; ``key`` and ``params`` name the rule in the catalog."""

    def __init__(self, key: str, **params: Any) -> None:
        super().__init__(key)
        self.key = key
        self.params = params


Validator = Callable[[str], Any]


def declared_word(table: str, word: str) -> Text:
    """A declared word in both languages: its entry in the catalogs' ``[table]`` (``args.project`` is
    « projet »), or the word itself when it has none (a literal shape such as ``dev|prod``)."""
    key = f"{table}.{word}"
    return Text(*(shown if (shown := t(key, lang)) != key else word for lang in LANGS))


@dataclass(frozen=True)
class Kind:
    """How a value is written (``placeholder``) and checked (``validate``).

    ``placeholder`` is a key of the catalogs' ``[placeholders]`` (``text`` is TEXTE / TEXT), a literal
    shape shown as is (``https://….git``), or a Text already in both languages."""

    placeholder: str | Text
    validate: Validator

    def shown(self, lang: Lang) -> str:
        if isinstance(self.placeholder, Text):
            return self.placeholder(lang)
        return declared_word("placeholders", self.placeholder)(lang)


def _text(value: str) -> str:
    return value


def free_text(max_len: int = 10_000, placeholder: str = "text") -> Kind:
    def validate(value: str) -> str:
        if len(value) > max_len:
            raise ArgError("rules.too_long", max=max_len)
        return value

    return Kind(placeholder, validate)


def named(pattern: str, min_len: int, max_len: int, rule: str, placeholder: str) -> Kind:
    """A name checked against ``pattern`` and a length; ``rule`` is the catalog key explaining it."""
    compiled = re.compile(pattern)

    def validate(value: str) -> str:
        if not (min_len <= len(value) <= max_len) or not compiled.fullmatch(value):
            raise ArgError(rule, value=value, min=min_len, max=max_len)
        return value

    return Kind(placeholder, validate)


def integer(minimum: int | None = None, maximum: int | None = None, placeholder: str = "number") -> Kind:
    def validate(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise ArgError("rules.integer", value=value) from None
        if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
            raise ArgError("rules.range", value=value, min=minimum, max=maximum)
        return number

    return Kind(placeholder, validate)


def choice(*values: str) -> Kind:
    def validate(value: str) -> str:
        if value.lower() not in values:
            raise ArgError("rules.choice", value=value, choices=", ".join(values))
        return value.lower()

    return Kind("|".join(values), validate)


def role_choice(*allowed: Role) -> Kind:
    """One of ``allowed``, typed in French or English (``développeur``, ``developer``); a bad one is
    answered with the accepted names in the reader's language (the dispatcher resolves the Text)."""

    def validate(value: str) -> Role:
        found = Role.from_typed(value)
        if found is None or found not in allowed:
            names = Text(*(", ".join(ROLE_NAMES[r](lang) for r in allowed) for lang in ("fr", "en")))
            raise ArgError("rules.choice", value=value, choices=names)
        return found

    # A role shown with a space (« lecture seule ») is typed with a dash: the parser splits on spaces.
    shown = Text(*("|".join(ROLE_NAMES[r](lang).replace(" ", "-") for r in allowed) for lang in ("fr", "en")))
    return Kind(shown, validate)


def iso_date() -> Kind:
    def validate(value: str) -> date:
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ArgError("rules.date", value=value) from None

    return Kind("date", validate)


def mention() -> Kind:
    """``@username``; resolved to a user id by the dispatcher from the command's mention list."""

    def validate(value: str) -> str:
        name = value.removeprefix("@")
        if not re.fullmatch(r"[a-z0-9._\-]{1,64}", name, flags=re.IGNORECASE):
            raise ArgError("rules.mention", value=value)
        return name.lower()

    return Kind("user", validate)


def csv_list(item: Kind | None = None, placeholder: str | Text = "list") -> Kind:
    def validate(value: str) -> list[Any]:
        parts = [part.strip() for part in value.split(",") if part.strip()]
        if not parts:
            raise ArgError("rules.empty_list")
        return [item.validate(part) for part in parts] if item else parts

    return Kind(placeholder, validate)


WORD = Kind("word", _text)


@dataclass(frozen=True)
class Arg:
    name: str
    help: Text
    kind: Kind = WORD
    required: bool = True
    greedy: bool = False  # takes the rest of the line (a question, a message)

    def label_text(self) -> Text:
        """The argument's name in both languages (« projet », project), as usage lines and errors show it."""
        return declared_word("args", self.name)

    def label(self, lang: Lang = DEFAULT_LANG) -> str:
        return self.label_text()(lang)

    def usage(self, lang: Lang = DEFAULT_LANG) -> str:
        name = self.label(lang)
        shown = f"<{name}…>" if self.greedy else f"<{name}>"
        return shown if self.required else f"[{shown}]"


@dataclass(frozen=True)
class Flag:
    name: str
    help: Text
    value: Kind | None = None  # None: a boolean switch
    default: Any = None
    excludes: tuple[str, ...] = ()
    required: bool = False

    def usage(self, lang: Lang = DEFAULT_LANG) -> str:
        if self.value is None:
            return f"[--{self.name}]"
        shown = f"--{self.name} {self.value.shown(lang)}"
        return shown if self.required else f"[{shown}]"


Handler = Callable[["CommandContext"], Awaitable["Reply"]]


@dataclass(frozen=True)
class CommandSpec:
    name: str  # "project create"
    summary: Text
    handler: Handler
    args: tuple[Arg, ...] = ()
    flags: tuple[Flag, ...] = ()
    requires: Requirement = Access.ANYONE
    description: Text | None = None
    examples: tuple[str, ...] = ()
    project_arg: str | None = "project"  # the argument that names the project rights are checked on
    hidden: bool = False
    # The console's check in console mode, where finer than the one ``requires`` stands for.
    console_rule: ConsoleRule | None = None

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.name.split())

    @property
    def group(self) -> str:
        return self.path[0]

    def usage(self, trigger: str = "cpn", lang: Lang = DEFAULT_LANG) -> str:
        """The usage line in the reader's language: names and flags as typed, placeholders translated."""
        parts = [f"/{trigger}", self.name]
        parts += [arg.usage(lang) for arg in self.args]
        parts += [flag.usage(lang) for flag in self.flags]
        return " ".join(parts)

    def flag(self, name: str) -> Flag | None:
        return next((f for f in self.flags if f.name == name), None)

    @property
    def scoped(self) -> bool:
        """Whether the rights check looks at a project given as an argument."""
        return self.project_arg is not None and any(a.name == self.project_arg for a in self.args)


@dataclass
class Registry:
    """Every declared command, by path."""

    commands: dict[tuple[str, ...], CommandSpec] = field(default_factory=dict)

    def add(self, spec: CommandSpec) -> None:
        if spec.path in self.commands:
            raise ValueError(f"command {spec.name!r} declared twice")
        self.commands[spec.path] = spec

    def all(self) -> list[CommandSpec]:
        return sorted(self.commands.values(), key=lambda s: s.name)

    def groups(self) -> dict[str, list[CommandSpec]]:
        grouped: dict[str, list[CommandSpec]] = {}
        for spec in self.all():
            grouped.setdefault(spec.group, []).append(spec)
        return grouped

    def match(self, words: Sequence[str]) -> tuple[CommandSpec | None, int]:
        """The command the leading ``words`` name (longest match) and how many words it took."""
        for size in (3, 2, 1):
            spec = self.commands.get(tuple(w.lower() for w in words[:size]))
            if spec is not None and len(words) >= size:
                return spec, size
        return None, 0


REGISTRY = Registry()


def command(
    name: str,
    *,
    summary: Text,
    args: Sequence[Arg] = (),
    flags: Sequence[Flag] = (),
    requires: Requirement = Access.ANYONE,
    description: Text | None = None,
    examples: Sequence[str] = (),
    project_arg: str | None = "project",
    hidden: bool = False,
    console_rule: ConsoleRule | None = None,
    registry: Registry | None = None,
) -> Callable[[Handler], Handler]:
    """Declare a command; the decorated coroutine handles it."""

    def decorate(handler: Handler) -> Handler:
        (registry or REGISTRY).add(
            CommandSpec(
                name=name,
                summary=summary,
                handler=handler,
                args=tuple(args),
                flags=tuple(flags),
                requires=requires,
                description=description,
                examples=tuple(examples),
                project_arg=project_arg,
                hidden=hidden,
                console_rule=console_rule,
            )
        )
        return handler

    return decorate
