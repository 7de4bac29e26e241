"""Integration routes of the Mattermost emulator: slash commands, response_url, buttons, dialogs.

Outgoing requests (to a command's URL, a button's integration URL, a dialog's URL) are built the
way the real server builds them (server/channels/app/command.go, integration_action.go): the slash
command is a form sorted by key with ``+`` for spaces (Go's ``url.Values.Encode``), the others
are compact JSON; every one has ``State.integration_timeout``.

Buttons of ephemeral posts (never stored) are pressed with the ``cookie`` the client received on the
action (api4 doPostAction, App.DoPostActionWithCookie): the server takes channel, type and
integration from the verified cookie, a bad one is a 400, and the integration's ``update`` is sent
back to the presser only, as ``post_edited`` of an ephemeral post (App.UpdateEphemeralPost).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, urlencode

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from services.base import ssl_context
from services.emulators.mattermost_http import (
    Endpoint,
    app_error,
    authed,
    check_ids,
    forbidden,
    invalid_param,
    ok,
    public,
    read_json,
    status_ok,
)
from services.emulators.mattermost_state import (
    RETAINED_PROP_KEYS,
    CommandHook,
    JsonDict,
    State,
    channel_mentions,
    find_action,
    is_valid_id,
    new_id,
    possible_at_mentions,
)

USER_AGENT = "Mattermost-Bot/1.1"  # httpservice defaultUserAgent
_SLACK_LINK = re.compile(r"<([^<>|]+)\|([^<>]+)>")
_COMMAND_FIELDS = (
    "response_type",
    "text",
    "username",
    "channel_id",
    "icon_url",
    "type",
    "props",
    "goto_location",
    "trigger_id",
    "skip_slack_parsing",
    "attachments",
    "extra_responses",
)
_COMMAND_DEFAULTS: JsonDict = {"props": None, "attachments": None, "extra_responses": None}
_OPTIONAL_COMMAND_KEYS = (
    "username",
    "icon_url",
    "auto_complete",
    "auto_complete_desc",
    "auto_complete_hint",
    "display_name",
    "description",
)
_DIALOG_ELEMENT_TYPES = {"text", "textarea", "select", "bool", "radio", "date", "datetime"}
_TEXT_SUBTYPES = {"", "text", "email", "number", "tel", "url", "password"}
_MAX_DIALOG_ELEMENTS = 20
# mattermost/mattermost:server/channels/api4/integration_action.go InitAction registers the press as
# "/actions/{action_id:[A-Za-z0-9]+}": gorilla/mux matches no route for any other id, and the API's
# catch-all answers (api4/api.go Handle404 → web.Handle404) before any session check. The real
# server stores a post whose action ids have other characters (model.PostAction.IsValid checks no
# id; Post.GenerateActionIds only fills empty ones), so only the press fails, as here.
_ACTION_ID = re.compile(r"[A-Za-z0-9]+")


def slack_to_markdown(text: str) -> str:
    """``<url|label>`` → ``[label](url)`` (model.ParseSlackLinksToMarkdown)."""
    return _SLACK_LINK.sub(r"[\2](\1)", text)


def process_slack_text(text: str) -> str:
    """App.ProcessSlackText (app/slack.go): ``<!channel>``/``<!here>``/``<!all>`` become real
    announcements, then Slack links become markdown. Skipped with ``skip_slack_parsing``."""
    for slack, mention in (("<!channel>", "@channel"), ("<!here>", "@here"), ("<!all>", "@all")):
        text = text.replace(slack, mention)
    return slack_to_markdown(text)


def process_slack_attachments(attachments: Any) -> Any:
    """App.ProcessSlackAttachments: pretext, text, title and field values go through the same."""
    for attachment in attachments if isinstance(attachments, list) else []:
        if not isinstance(attachment, dict):
            continue
        for key in ("pretext", "text", "title"):
            if isinstance(attachment.get(key), str):
                attachment[key] = process_slack_text(attachment[key])
        for field in attachment.get("fields") or []:
            if isinstance(field, dict) and field.get("value") is not None:
                field["value"] = process_slack_text(str(field["value"]))
    return attachments


def go_form_encode(pairs: list[tuple[str, str]]) -> str:
    """Go's url.Values.Encode: keys sorted (values of a key keep their order), QueryEscape'd."""
    return urlencode(sorted(pairs, key=lambda kv: kv[0]), quote_via=quote_plus)


def command_response(raw: JsonDict) -> JsonDict:
    """A model.CommandResponse with every key the server sends back."""
    shaped: JsonDict = {key: _COMMAND_DEFAULTS.get(key, "") for key in _COMMAND_FIELDS}
    shaped["skip_slack_parsing"] = False
    shaped.update({key: raw[key] for key in _COMMAND_FIELDS if key in raw})
    return shaped


def parse_command_body(content_type: str, raw: bytes) -> JsonDict | None:
    """model.CommandResponseFromHTTPBody: JSON when declared so, else the body is the text."""
    if content_type.split(";")[0].strip() != "application/json":
        return command_response({"text": raw.decode("utf-8", "replace")})
    try:
        parsed = json.loads(raw)
    except ValueError:
        return None
    return command_response(parsed) if isinstance(parsed, dict) else None


def dialog_problems(dialog: Any) -> list[str]:
    """What model.Dialog.IsValid (and the element limit) rejects; empty when the dialog is fine."""
    if not isinstance(dialog, dict):
        return ["dialog must be an object"]
    problems: list[str] = []
    title = dialog.get("title") or ""
    if not isinstance(title, str) or not title or len(title) > 24:
        problems.append(f"invalid dialog title {title!r}")
    elements = dialog.get("elements") or []
    if not isinstance(elements, list):
        return [*problems, "elements must be a list"]
    if len(elements) > _MAX_DIALOG_ELEMENTS:
        problems.append(f"too many elements: {len(elements)} > {_MAX_DIALOG_ELEMENTS}")
    names: set[str] = set()
    for element in elements:
        problems += _element_problems(element, names)
    return problems


def _element_problems(element: Any, names: set[str]) -> list[str]:
    if not isinstance(element, dict):
        return ["element must be an object"]
    problems: list[str] = []
    name, display = str(element.get("name") or ""), str(element.get("display_name") or "")
    if not name or len(name) > 300:
        problems.append(f"invalid element name {name!r}")
    if name in names:
        problems.append(f"duplicate dialog element {name!r}")
    names.add(name)
    if not display or len(display) > 24:
        problems.append(f"{name!r}: invalid display_name {display!r}")
    if len(str(element.get("help_text") or "")) > 150:
        problems.append(f"{name!r}: help_text longer than 150 characters")
    kind = element.get("type")
    if kind not in _DIALOG_ELEMENT_TYPES:
        problems.append(f"{name!r}: invalid element type {kind!r}")
    if kind in ("text", "textarea") and element.get("subtype", "") not in _TEXT_SUBTYPES:
        problems.append(f"{name!r}: invalid subtype {element.get('subtype')!r}")
    if kind in ("select", "radio") and not element.get("data_source"):
        values = {o.get("value") for o in element.get("options") or [] if isinstance(o, dict)}
        default = element.get("default") or ""
        if default and default not in values and not element.get("multiselect"):
            problems.append(f"{name!r}: default value {default!r} doesn't exist in options")
    return problems


@dataclass
class _CommandArgs:
    """Where a command (or its response_url) answers: model.CommandArgs."""

    user_id: str
    channel_id: str
    team_id: str
    root_id: str
    trigger: str


def _action_id_route(handler: Endpoint) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        if _ACTION_ID.fullmatch(request.path_params["action_id"]) is None:
            return app_error(404, "api.context.404.app_error")
        return await handler(request)

    return endpoint


class IntegrationRoutes:
    def __init__(self, state: State) -> None:
        self.state = state

    def routes(self) -> list[BaseRoute]:
        s = self.state
        return [
            Route("/api/v4/commands/execute", authed(s, self.execute_command), methods=["POST"]),
            Route("/api/v4/commands", authed(s, self.create_command), methods=["POST"]),
            Route("/api/v4/commands", authed(s, self.list_commands), methods=["GET"]),
            Route("/hooks/commands/{hook_id}", public(s, self.command_hook), methods=["POST"]),
            Route(
                "/api/v4/posts/{post_id}/actions/{action_id}",
                _action_id_route(authed(s, self.post_action)),
                methods=["POST"],
            ),
            Route("/api/v4/actions/dialogs/open", public(s, self.open_dialog), methods=["POST"]),
            Route("/api/v4/actions/dialogs/submit", authed(s, self.submit_dialog), methods=["POST"]),
        ]

    # ------------------------------------------------------------------ outgoing requests
    def _client(self) -> httpx.AsyncClient:
        # A client per request, as Mattermost makes one per integration call (mattermost/mattermost:
        # server/channels/app/command.go DoCommandRequest, HTTPService().MakeClient): no connection
        # reuse. Go builds its transport in microseconds; httpx loads its CA bundle (~25 ms) unless
        # given a context, which would count as the integration's time. trust_env=False: integrations
        # are reached directly, never through a proxy of the test host.
        return httpx.AsyncClient(timeout=self.state.integration_timeout, trust_env=False, verify=ssl_context())

    async def _post_json(self, url: str, payload: JsonDict) -> httpx.Response | Response:
        """POST like App.DoActionRequest; 400 AppError if unreachable or not exactly 200."""
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        body = json.dumps(payload, separators=(",", ":")).encode()
        try:
            async with self._client() as client:
                answer = await client.post(url, content=body, headers=headers)
        except (httpx.HTTPError, ValueError):
            return app_error(400, "api.post.do_action.action_integration.app_error")
        if answer.status_code != 200:
            return app_error(400, "api.post.do_action.action_integration.app_error", f"status={answer.status_code}")
        return answer

    # ------------------------------------------------------------------ commands
    async def create_command(self, request: Request, me: JsonDict) -> Response:
        body, bad = await read_json(request, "command")
        if bad:
            return bad
        if not isinstance(body, dict):
            return invalid_param("command")
        if not self.state.is_admin(me):
            return forbidden()
        if problem := self._command_problem(body):
            return app_error(400, problem)
        extra = {k: body[k] for k in _OPTIONAL_COMMAND_KEYS if k in body}
        command = self.state.register_command(
            body["team_id"], body["trigger"], body["url"], method=body["method"], creator_id=me["id"], **extra
        )
        return ok(command, status=201)

    def _command_problem(self, body: JsonDict) -> str | None:
        team_id, trigger = str(body.get("team_id") or ""), str(body.get("trigger") or "").lower()
        with self.state.lock:
            if team_id not in self.state.db.teams:
                return "model.command.is_valid.team_id.app_error"
            taken = any(c["trigger"] == trigger and c["team_id"] == team_id for c in self.state.db.commands.values())
        if not trigger or len(trigger) > 128 or trigger.startswith("/") or " " in trigger:
            return "model.command.is_valid.trigger.app_error"
        if not str(body.get("url") or "").startswith(("http://", "https://")):
            return "model.command.is_valid.url.app_error"
        if body.get("method") not in ("P", "G"):
            return "model.command.is_valid.method.app_error"
        return "api.command.duplicate_trigger.app_error" if taken else None

    async def list_commands(self, request: Request, me: JsonDict) -> Response:
        team_id = request.query_params.get("team_id", "")
        custom_only = request.query_params.get("custom_only", "").lower() == "true"
        if not self.state.is_admin(me):
            # Only users managing slash commands see custom ones (and their tokens).
            return forbidden() if custom_only else ok([])
        with self.state.lock:
            found = [dict(c) for c in self.state.db.commands.values() if c["team_id"] == team_id]
        return ok(found)

    async def execute_command(self, request: Request, me: JsonDict) -> Response:
        body, bad = await read_json(request, "command_args")
        if bad:
            return bad
        body = body if isinstance(body, dict) else {}
        command, channel_id = str(body.get("command") or ""), str(body.get("channel_id") or "")
        if len(command) <= 1 or not command.startswith("/") or not is_valid_id(channel_id):
            return app_error(400, "api.command.execute_command.start.app_error")
        with self.state.lock:
            channel = dict(self.state.db.channels.get(channel_id) or {})
        if not channel or not (self.state.is_admin(me) or self.state.is_channel_member(channel_id, me["id"])):
            return forbidden()
        # Outside DMs the team is the channel's, whatever the client says (api4/command.go).
        team_id = channel["team_id"] or str(body.get("team_id") or "")
        if not (self.state.is_admin(me) or self.state.is_team_member(team_id, me["id"])):
            return forbidden()
        trigger, text = _split_command(command)
        args = _CommandArgs(me["id"], channel_id, team_id, str(body.get("root_id") or ""), trigger)
        return await self._run_command(request, args, me, channel, text)

    async def _run_command(
        self, request: Request, args: _CommandArgs, me: JsonDict, channel: JsonDict, text: str
    ) -> Response:
        with self.state.lock:
            team = dict(self.state.db.teams.get(args.team_id) or {})
            command = next(
                (
                    dict(c)
                    for c in self.state.db.commands.values()
                    if c["team_id"] == args.team_id and c["trigger"] == args.trigger
                ),
                None,
            )
        if command is None or not team:
            return app_error(404, "api.command.execute_command.not_found.app_error", Trigger=args.trigger)
        client_trigger_id, trigger_id = self.state.new_trigger_id(me["id"])
        hook = self._new_hook(command["id"], args)
        site_url = self.state.site_url or str(request.base_url).rstrip("/")
        pairs = [
            ("token", command["token"]),
            ("team_id", command["team_id"]),
            ("team_domain", team["name"]),
            ("channel_id", channel["id"]),
            ("channel_name", channel["name"]),
            ("user_id", me["id"]),
            ("user_name", me["username"]),
            ("command", "/" + args.trigger),
            ("text", text),
            ("trigger_id", trigger_id),
            *self._mention_pairs(text, team["id"]),
            ("response_url", f"{site_url}/hooks/commands/{hook.id}"),
        ]
        response = await self._call_command(command, pairs)
        if isinstance(response, Response):
            return response
        response["trigger_id"] = client_trigger_id
        if failed := self._handle_command_response(args, response):
            return failed
        return ok(response)

    def _new_hook(self, command_id: str, args: _CommandArgs) -> CommandHook:
        hook = CommandHook(new_id(), command_id, args.user_id, args.channel_id, args.root_id, time.monotonic())
        with self.state.lock:
            self.state.db.hooks[hook.id] = hook
        return hook

    def _mention_pairs(self, text: str, team_id: str) -> list[tuple[str, str]]:
        """user_mentions(_ids) for @team members, channel_mentions(_ids) for ~public channels."""
        users = self._user_mentions(text, team_id)
        channels = [
            (name, ch["id"])
            for name in channel_mentions(text)
            if (ch := self.state.find_channel(name, team_id=team_id)) is not None and ch["type"] == "O"
        ]
        pairs: list[tuple[str, str]] = []
        for key, found in (("user_mentions", users), ("channel_mentions", channels)):
            pairs += [(key, name) for name, _ in found]
            pairs += [(f"{key}_ids", item_id) for _, item_id in found]
        return pairs

    def _user_mentions(self, text: str, team_id: str) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        for mention in possible_at_mentions(text):
            candidate = mention
            # Like App.MentionsToTeamMembers: retry without trailing '.', '-' or '_'.
            while candidate:
                user = self.state.find_user(candidate)
                if user is not None:
                    if self.state.is_team_member(team_id, user["id"]):
                        found.append((candidate, user["id"]))
                    break
                if candidate[-1] not in ".-_":
                    break
                candidate = candidate[:-1]
        return found

    async def _call_command(self, command: JsonDict, pairs: list[tuple[str, str]]) -> JsonDict | Response:
        """Send the command to its URL like App.DoCommandRequest and parse the answer."""
        trigger = command["trigger"]
        encoded = go_form_encode(pairs)
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT, "Accept-Encoding": "gzip"}
        if command["token"]:
            headers["Authorization"] = "Token " + command["token"]
        try:
            async with self._client() as client:
                if command["method"] == "G":
                    separator = "&" if "?" in command["url"] else "?"
                    answer = await client.get(command["url"] + separator + encoded, headers=headers)
                else:
                    headers["Content-Type"] = "application/x-www-form-urlencoded"
                    answer = await client.post(command["url"], content=encoded.encode(), headers=headers)
        except (httpx.HTTPError, ValueError):
            return app_error(500, "api.command.execute_command.failed.app_error", Trigger=trigger)
        if answer.status_code != 200:
            status = f"{answer.status_code} {answer.reason_phrase}"
            return app_error(
                500,
                "api.command.execute_command.failed_resp.app_error",
                answer.text,
                Trigger=trigger,
                Status=status,
            )
        content_type = answer.headers.get("content-type", "")
        if content_type.split(";")[0].strip() != "application/json":
            return command_response({"text": answer.text})
        try:
            parsed = json.loads(answer.content)
        except ValueError:
            return app_error(500, "api.command.execute_command.failed.app_error", Trigger=trigger)
        if parsed is None:
            return app_error(500, "api.command.execute_command.failed_empty.app_error", Trigger=trigger)
        if not isinstance(parsed, dict):
            return app_error(500, "api.command.execute_command.failed.app_error", Trigger=trigger)
        return command_response(parsed)

    def _handle_command_response(self, args: _CommandArgs, response: JsonDict) -> Response | None:
        """Post the response and its extra_responses (App.HandleCommandResponse)."""
        items = [response, *(response.get("extra_responses") or [])]
        failed = [item for item in items if not isinstance(item, dict) or not self._command_post(args, item)]
        if failed:
            return app_error(500, "api.command.execute_command.create_post_failed.app_error", Trigger=args.trigger)
        return None

    def _command_post(self, args: _CommandArgs, raw: JsonDict) -> bool:
        """In-channel post or ephemeral, both by the invoking user, marked from_webhook."""
        response = command_response(raw)
        channel_id = args.channel_id
        if response["channel_id"]:
            if not self.state.is_channel_member(response["channel_id"], args.user_id):
                return False
            channel_id = response["channel_id"]
        props = dict(response["props"] or {}, from_webhook="true")
        text = str(response["text"] or "")
        # app/command.go HandleCommandResponsePost: Slack text replacements unless skip_slack_parsing.
        message = text if response["skip_slack_parsing"] else process_slack_text(text)
        if response["attachments"]:
            attachments = response["attachments"]
            skip = response["skip_slack_parsing"]
            props["attachments"] = attachments if skip else process_slack_attachments(attachments)
        if response["response_type"] == "in_channel":
            self.state.create_post(args.user_id, channel_id, message, args.root_id, props)
        elif response["response_type"] in ("", "ephemeral") and (message or response["attachments"]):
            post = {
                "user_id": args.user_id,
                "channel_id": channel_id,
                "root_id": args.root_id,
                "message": message,
                "props": props,
                "type": response["type"],
            }
            self.state.send_ephemeral(args.user_id, post)
        return True

    async def command_hook(self, request: Request) -> Response:
        """The response_url: at most ``response_url_max_uses`` answers within ``response_url_ttl``."""
        response = parse_command_body(request.headers.get("content-type", ""), await request.body())
        if response is None:
            return app_error(400, "web.command_webhook.parse.app_error")
        with self.state.lock:
            hook = self.state.db.hooks.get(request.path_params["hook_id"])
            if hook is None or time.monotonic() - hook.created > self.state.response_url_ttl:
                return app_error(404, "web.command_webhook.general.app_error", "app.command_webhook.get.missing")
            if hook.use_count >= self.state.response_url_max_uses:
                return app_error(400, "web.command_webhook.general.app_error", "app.command_webhook.try_use.invalid")
            hook.use_count += 1
            command = self.state.db.commands.get(hook.command_id)
            team_id = command["team_id"] if command else ""
        trigger = command["trigger"] if command else ""
        args = _CommandArgs(hook.user_id, hook.channel_id, team_id, hook.root_id, trigger)
        if failed := self._handle_command_response(args, response):
            return app_error(failed.status_code, "web.command_webhook.general.app_error")
        return Response(b"ok", headers={"Content-Type": "text/plain"})

    # ------------------------------------------------------------------ buttons
    async def post_action(self, request: Request, me: JsonDict) -> Response:
        if bad := check_ids(request, "post_id"):
            return bad
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            body = {}  # The real server only logs an undecodable body.
        body = body if isinstance(body, dict) else {}
        selected = str(body.get("selected_option") or "")
        raw_cookie = body.get("cookie") if isinstance(body.get("cookie"), str) else ""
        cookie: JsonDict | None = None
        if raw_cookie:
            cookie = self.state.open_action_cookie(raw_cookie)
            if cookie is None:
                return app_error(400, "api.post.do_action.action_integration.app_error")
            cookie_channel = self.state.db.channels.get(str(cookie.get("channel_id") or ""))
            if cookie_channel is None:
                return app_error(404, "app.channel.get.existing.app_error")
            if not self.state.can_read_channel(me, cookie_channel):
                return forbidden()
        post_id, action_id = request.path_params["post_id"], request.path_params["action_id"]
        with self.state.lock:
            post = self.state.posts.get(post_id)
            post = json.loads(json.dumps(post)) if post and not post["delete_at"] else None
        if post is None:
            # Not in the database: an ephemeral post, known only through the cookie.
            if cookie is None:
                return app_error(404, "app.post.get.app_error")
            return await self._ephemeral_action(me, post_id, cookie, selected)
        channel = self.state.db.channels[post["channel_id"]]
        if cookie is None and not self.state.can_read_channel(me, channel):
            return forbidden()
        action = find_action(post, action_id)
        if action is None or not isinstance(action.get("integration"), dict):
            return app_error(404, "api.post.do_action.action_id.app_error")
        answer = await self._call_action(me, post, channel, action, selected)
        if isinstance(answer, Response):
            return answer
        client_trigger_id, result = answer
        self._apply_action_result(me, post, result)
        return ok({"status": "OK", "trigger_id": client_trigger_id})

    async def _ephemeral_action(self, me: JsonDict, post_id: str, cookie: JsonDict, selected: str) -> Response:
        """A press on an ephemeral post: everything comes from the cookie (setupFromLegacyCookie)."""
        integration = cookie.get("integration")
        if not isinstance(integration, dict):
            return app_error(400, "api.post.do_action.action_integration.app_error", "no Integration in action cookie")
        if cookie.get("post_id") != post_id:
            return app_error(400, "api.post.do_action.action_integration.app_error", "postId doesn't match")
        channel = self.state.db.channels[str(cookie["channel_id"])]
        root_post_id = str(cookie.get("root_post_id") or "")
        post = {"id": post_id, "channel_id": channel["id"], "root_id": "" if root_post_id == post_id else root_post_id}
        action = {
            "type": cookie.get("type") or "",
            "data_source": cookie.get("data_source") or "",
            "integration": integration,
        }
        answer = await self._call_action(me, post, channel, action, selected)
        if isinstance(answer, Response):
            return answer
        client_trigger_id, result = answer
        self._apply_ephemeral_result(me, post, cookie, result)
        return ok({"status": "OK", "trigger_id": client_trigger_id})

    async def _call_action(
        self, me: JsonDict, post: JsonDict, channel: JsonDict, action: JsonDict, selected: str
    ) -> tuple[str, JsonDict] | Response:
        """POST to the action's integration; (client trigger id, decoded answer) or the AppError."""
        client_trigger_id, trigger_id = self.state.new_trigger_id(me["id"])
        payload = self._action_payload(me, post, channel, action, trigger_id, selected)
        answer = await self._post_json(str(action["integration"].get("url") or ""), payload)
        if isinstance(answer, Response):
            return answer
        try:
            result = json.loads(answer.content) if answer.content.strip() else {}
        except ValueError:
            return app_error(400, "api.post.do_action.action_integration.app_error")
        return client_trigger_id, result if isinstance(result, dict) else {}

    def _action_payload(
        self,
        me: JsonDict,
        post: JsonDict,
        channel: JsonDict,
        action: JsonDict,
        trigger_id: str,
        selected: str,
    ) -> JsonDict:
        """model.PostActionIntegrationRequest."""
        team = self.state.db.teams.get(channel["team_id"], {"name": ""})
        context = action["integration"].get("context")
        data_source = ""
        if action.get("type") == "select" and selected:
            context = dict(context or {}, selected_option=selected)
            data_source = str(action.get("data_source") or "")
        payload: JsonDict = {
            "user_id": me["id"],
            "user_name": me["username"],
            "channel_id": channel["id"],
            "channel_name": channel["name"],
            "team_id": channel["team_id"],
            "team_domain": team["name"],
            "post_id": post["id"],
            "trigger_id": trigger_id,
            "type": action.get("type", ""),
            "data_source": data_source,
        }
        if context:
            payload["context"] = context
        return payload

    def _apply_action_result(self, me: JsonDict, post: JsonDict, result: JsonDict) -> None:
        """Apply ``update`` (whole post: a missing message empties it) and ``ephemeral_text``."""
        original = post.get("props") or {}
        retained = {key: original[key] for key in RETAINED_PROP_KEYS if key in original}
        update = result.get("update")
        if isinstance(update, dict):
            props = update.get("props")
            if isinstance(props, dict):
                props = {k: v for k, v in props.items() if k not in RETAINED_PROP_KEYS} | retained
            else:
                props = original
            self.state.update_post(post["id"], str(update.get("message") or ""), props)
        self._send_ephemeral_text(me, post["channel_id"], post["root_id"] or post["id"], retained, result)

    def _apply_ephemeral_result(self, me: JsonDict, post: JsonDict, cookie: JsonDict, result: JsonDict) -> None:
        """``update`` replaces the ephemeral post for the presser only (applyPostActionUpdate)."""
        retained = cookie.get("retain_props")
        retained = dict(retained) if isinstance(retained, dict) else {}
        removed = cookie.get("remove_props")
        removed = set(removed) if isinstance(removed, list) else set()
        update = result.get("update")
        if isinstance(update, dict):
            props = update.get("props")
            if isinstance(props, dict):
                props = {k: v for k, v in props.items() if k not in removed} | retained
            else:
                props = retained
            changed = dict(update, id=post["id"], channel_id=post["channel_id"], props=props, is_pinned=False)
            if not changed.get("root_id") and post["root_id"]:
                changed["root_id"] = post["root_id"]
            if not changed.get("user_id"):
                changed["user_id"] = me["id"]
            self.state.update_ephemeral(me["id"], changed)
        self._send_ephemeral_text(me, post["channel_id"], post["root_id"] or post["id"], retained, result)

    def _send_ephemeral_text(
        self, me: JsonDict, channel_id: str, root_id: str, retained: JsonDict, result: JsonDict
    ) -> None:
        text = result.get("ephemeral_text")
        if isinstance(text, str) and text:
            message = text if result.get("skip_slack_parsing") else slack_to_markdown(text)
            ephemeral = {
                "user_id": me["id"],
                "channel_id": channel_id,
                "root_id": root_id,
                "message": message,
                "props": dict(retained),
            }
            self.state.send_ephemeral(me["id"], ephemeral)

    # ------------------------------------------------------------------ dialogs
    async def open_dialog(self, request: Request) -> Response:
        body, bad = await read_json(request, "dialog")
        if bad:
            return bad
        if not isinstance(body, dict):
            return invalid_param("dialog")
        url = str(body.get("url") or "")
        if not url:
            return invalid_param("url")
        decoded = self.state.decode_trigger_id(str(body.get("trigger_id") or ""))
        if isinstance(decoded, str):
            return app_error(400, decoded, Seconds=int(self.state.trigger_ttl))
        client_trigger_id, user_id = decoded
        if problems := dialog_problems(body.get("dialog")):
            return invalid_param("dialog", detailed="; ".join(problems))
        opened = {"trigger_id": client_trigger_id, "url": url, "dialog": body["dialog"]}
        with self.state.lock:
            self.state.dialogs_opened.append({"user_id": user_id, **opened})
        data = {"dialog": json.dumps(opened, separators=(",", ":"))}
        self.state.publish("open_dialog", data, {"user_id": user_id}, {user_id})
        return status_ok()

    async def submit_dialog(self, request: Request, me: JsonDict) -> Response:
        body, bad = await read_json(request, "dialog")
        if bad:
            return bad
        if not isinstance(body, dict):
            return invalid_param("dialog")
        url = str(body.get("url") or "")
        if not url:
            return invalid_param("url")
        channel_id = str(body.get("channel_id") or "")
        channel = self.state.db.channels.get(channel_id)
        if channel is None or not self.state.can_read_channel(me, channel):
            return forbidden()
        # The server takes the team from the channel; DMs keep the client's value.
        team_id = channel["team_id"] or str(body.get("team_id") or "")
        if team_id and not (self.state.is_admin(me) or self.state.is_team_member(team_id, me["id"])):
            return forbidden()
        payload = {
            "type": "dialog_submission",
            "callback_id": str(body.get("callback_id") or ""),
            "state": str(body.get("state") or ""),
            "user_id": me["id"],
            "channel_id": channel_id,
            "team_id": team_id,
            "submission": body.get("submission") or {},
            "cancelled": bool(body.get("cancelled")),
        }
        answer = await self._post_json(url, payload)
        if isinstance(answer, Response):
            return answer
        if not answer.content.strip():
            return ok({})
        try:
            parsed = json.loads(answer.content)
        except ValueError:
            return app_error(500, "app.submit_interactive_dialog.decode_json_error")
        parsed = parsed if isinstance(parsed, dict) else {}
        return ok({k: parsed[k] for k in ("error", "errors", "type", "form") if parsed.get(k)})


def _split_command(command: str) -> tuple[str, str]:
    """(trigger without '/', lower-cased; text after the first whitespace) like App.ExecuteCommand."""
    match = re.search(r"\s", command)
    if match is None:
        return command.lower()[1:], ""
    return command[: match.start()].lower()[1:], command[match.start() + 1 :]
