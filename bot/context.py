"""What a command handler receives (:class:`CommandContext`) and returns (:class:`Reply`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.i18n import Lang, Translator
from bot.rights import Role

if TYPE_CHECKING:
    from bot.model import Project
    from bot.runtime import Bot
    from bot.spec import CommandSpec


@dataclass(frozen=True)
class Identity:
    """A Mattermost user as the platform knows them."""

    user_id: str
    username: str
    email: str
    is_platform_admin: bool
    locale: str = ""


@dataclass
class Reply:
    """The immediate answer to a slash command (ephemeral unless ``in_channel``)."""

    text: str = ""
    attachments: list[dict[str, Any]] = field(default_factory=list)
    in_channel: bool = False
    props: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "response_type": "in_channel" if self.in_channel else "ephemeral",
            "text": self.text,
            # Text is already markdown: without this the server turns "<!channel>" (in echoed
            # user text) into @channel and "<url|x>" into links (app/command.go, app/slack.go).
            "skip_slack_parsing": True,
        }
        # Top-level "attachments": Mattermost shows an ephemeral answer only with text or these.
        if self.attachments:
            body["attachments"] = self.attachments
        if self.props:
            body["props"] = dict(self.props)
        return body


@dataclass
class CommandContext:
    """One slash-command invocation: who, where, and the parsed arguments."""

    bot: Bot
    user_id: str
    user_name: str
    channel_id: str
    channel_name: str = ""
    team_id: str = ""
    team_domain: str = ""
    trigger_id: str = ""
    response_url: str = ""
    mentions: dict[str, str] = field(default_factory=dict)  # username -> user id, from the request
    lang: Lang = "fr"
    args: dict[str, Any] = field(default_factory=dict)
    spec: CommandSpec | None = None
    _identity: Identity | None = None

    @property
    def tr(self) -> Translator:
        return Translator(self.lang)

    async def identity(self) -> Identity:
        if self._identity is None:
            self._identity = await self.bot.identities.get(self.user_id, fallback_username=self.user_name)
        return self._identity

    def project(self) -> Project:
        """The project the command's ``<project>`` argument names. The dispatcher's rights check
        has already refused an unknown one, so its absence here is a bug."""
        found = self.bot.projects.get(self.args["project"])
        if found is None:
            raise LookupError(f"the project {self.args['project']!r} passed the rights check but is gone")
        return found

    async def role_in(self, project: str) -> Role | None:
        return self.bot.projects_roles(project, self.user_id)

    def submit(self, kind: str, params: dict[str, Any], root_key: str = "") -> int:
        """Queue long work as an operation row; its result is posted in this channel."""
        return self.bot.operations.submit(
            kind,
            params,
            channel_id=self.channel_id,
            team_id=self.team_id,
            user_id=self.user_id,
            root_key=root_key,
            response_url=self.response_url,
        )
