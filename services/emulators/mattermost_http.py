"""HTTP plumbing shared by the Mattermost emulator's routes: JSON answers, AppErrors, authentication."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from services.emulators.mattermost_state import JsonDict, RecordedRequest, State, is_valid_id, new_id


class MMJSONResponse(JSONResponse):
    """JSON with ``Content-Type`` exactly ``application/json``, compact like Go's encoder.

    mattermostautodriver only parses a body whose content type is exactly that string; starlette
    appends a charset to ``text/*`` types only, so this media type goes out untouched.
    """

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# Messages of the AppError ids the emulator answers (i18n/en.json of the real server).
MESSAGES: dict[str, str] = {
    "api.context.session_expired.app_error": "Invalid or expired session, please login again.",
    "api.context.permissions.app_error": "You do not have the appropriate permissions.",
    "api.context.invalid_param.app_error": "Invalid {Name} parameter.",
    "api.context.invalid_body_param.app_error": "Invalid or missing {Name} in request body.",
    "api.context.invalid_url_param.app_error": "Invalid or missing {Name} parameter in request URL.",
    "api.context.404.app_error": "Sorry, we could not find the page.",
    "api.context.405.app_error": "Method not allowed.",
    "app.user.missing_account.const": "Unable to find the user.",
    "app.team.get.find.app_error": "Unable to find the existing team.",
    "app.team.get_by_name.missing.app_error": "Unable to find the existing team.",
    "app.channel.get.existing.app_error": "Unable to find the existing channel.",
    "app.channel.get_by_name.missing.app_error": "Unable to find the existing channel.",
    "app.channel.get_member.missing.app_error": "No channel member found for that user ID and channel ID.",
    "app.post.get.app_error": "Unable to get the post.",
    "model.post.is_valid.message_length.app_error": (
        "Post Message property is longer than the maximum permitted length."
    ),
    "model.post.is_valid.props.app_error": "Invalid props.",
    "api.post.create_post.root_id.app_error": "Invalid RootId parameter.",
    "api.post.create_post.channel_root_id.app_error": "Invalid ChannelId for RootId parameter.",
    "api.post.do_action.action_id.app_error": "Invalid action id.",
    "api.post.do_action.action_integration.app_error": "Action integration error.",
    "app.submit_interactive_dialog.decode_json_error": (
        "Encountered an error decoding JSON response from interactive dialog."
    ),
    "api.command.execute_command.start.app_error": "No command trigger found.",
    "api.command.execute_command.format.app_error": ("Command trigger word is missing the leading slash character"),
    "api.command.execute_command.not_found.app_error": (
        "Command with a trigger of '{Trigger}' not found. To send a message beginning with \"/\", "
        "try adding an empty space at the beginning of the message."
    ),
    "api.command.execute_command.failed.app_error": "Command with a trigger of '{Trigger}' failed.",
    "api.command.execute_command.failed_resp.app_error": (
        "Command with a trigger of '{Trigger}' returned response {Status}."
    ),
    "api.command.execute_command.failed_empty.app_error": (
        "Command with a trigger of '{Trigger}' returned an empty response."
    ),
    "api.command.execute_command.create_post_failed.app_error": (
        "Command '{Trigger}' failed to post response. Please contact your System Administrator."
    ),
    "api.command.duplicate_trigger.app_error": ("This trigger word is already in use. Please choose another word."),
    "model.command.is_valid.trigger.app_error": "Invalid trigger.",
    "model.command.is_valid.url.app_error": "Invalid URL.",
    "model.command.is_valid.method.app_error": "Invalid method.",
    "model.command.is_valid.team_id.app_error": "Invalid team ID.",
    "web.command_webhook.parse.app_error": "Unable to parse incoming data.",
    "web.command_webhook.general.app_error": "An error occurred processing the command webhook.",
    "app.command_webhook.get.missing": "Unable to find the webhook.",
    "app.command_webhook.try_use.invalid": "Invalid webhook.",
    "interactive_message.decode_trigger_id.base64_decode_failed": (
        "Failed to decode base64 for trigger ID for interactive dialog."
    ),
    "interactive_message.decode_trigger_id.base64_decode_failed_signature": (
        "Failed to decode base64 signature of trigger ID for interactive dialog."
    ),
    "interactive_message.decode_trigger_id.missing_data": ("Trigger ID missing required data for interactive dialog."),
    "interactive_message.decode_trigger_id.verify_signature_failed": (
        "Signature verification failed of trigger ID for interactive dialog."
    ),
    "interactive_message.decode_trigger_id.expired": (
        "Trigger ID for interactive dialog is expired. Trigger IDs live for a maximum of {Seconds}s."
    ),
    "api.web_socket_router.not_authenticated.app_error": "Invalid or expired session, please login again.",
}

_GENERIC_BY_STATUS = {
    400: "api.context.invalid_param.app_error",
    401: "api.context.session_expired.app_error",
    403: "api.context.permissions.app_error",
    404: "api.context.404.app_error",
    405: "api.context.405.app_error",
}


def app_error_body(status: int, error_id: str, detailed: str = "", **params: Any) -> JsonDict:
    """The JSON of a model.AppError; ``params`` fill the message template."""
    template = MESSAGES.get(error_id, error_id)
    try:
        message = template.format(**params)
    except KeyError:
        message = template
    return {
        "id": error_id,
        "message": message,
        "detailed_error": detailed,
        "request_id": new_id(),
        "status_code": status,
    }


def app_error(status: int, error_id: str, detailed: str = "", **params: Any) -> Response:
    body = app_error_body(status, error_id, detailed, **params)
    return MMJSONResponse(body, status_code=status, headers={"X-Request-Id": body["request_id"]})


def error_body(status: int) -> JsonDict:
    """Body of a fault-injected answer (FaultMiddleware), in the AppError shape."""
    error_id = _GENERIC_BY_STATUS.get(status, f"api.emulator.status_{status}.app_error")
    return app_error_body(status, error_id, Name="request")


def ok(content: Any, status: int = 200) -> Response:
    return MMJSONResponse(content, status_code=status, headers={"X-Request-Id": new_id()})


def status_ok() -> Response:
    return ok({"status": "OK"})


def forbidden() -> Response:
    return app_error(403, "api.context.permissions.app_error")


def invalid_param(name: str, detailed: str = "") -> Response:
    return app_error(400, "api.context.invalid_param.app_error", detailed, Name=name)


def invalid_url_param(name: str) -> Response:
    return app_error(400, "api.context.invalid_url_param.app_error", Name=name)


def check_ids(request: Request, *names: str) -> Response | None:
    """400 like the real server when a path id is not a 26-char Mattermost id."""
    for name in names:
        value = request.path_params[name]
        if not (is_valid_id(value) or (name == "user_id" and value == "me")):
            return invalid_url_param(name)
    return None


def token_of(conn: HTTPConnection) -> str | None:
    """Token of ``Authorization: Bearer …`` (or the legacy ``Token …`` scheme), as the server accepts."""
    scheme, _, token = conn.headers.get("authorization", "").partition(" ")
    if scheme.lower() not in ("bearer", "token") or not token.strip():
        return None
    return token.strip()


async def read_json(request: Request, name: str) -> tuple[Any, Response | None]:
    """The decoded JSON body, or (None, 400 AppError) like json.NewDecoder failing in the handler."""
    raw = await request.body()
    try:
        return json.loads(raw or b"null"), None
    except ValueError as exc:
        return None, invalid_param(name, detailed=str(exc))


Endpoint = Callable[[Request], Awaitable[Response]]
AuthedHandler = Callable[[Request, JsonDict], Awaitable[Response]]


def authed(state: State, handler: AuthedHandler) -> Endpoint:
    """Wrap a handler needing a session (APISessionRequired): 401 AppError without a valid token."""

    async def endpoint(request: Request) -> Response:
        user = state.user_for_token(token_of(request))
        record(state, request, user is not None, user)
        if user is None:
            return app_error(401, "api.context.session_expired.app_error")
        return await handler(request, user)

    return endpoint


def public(state: State, handler: Endpoint) -> Endpoint:
    """Wrap a handler the real server serves without a session (ping, response_url, dialogs/open)."""

    async def endpoint(request: Request) -> Response:
        record(state, request, None, None)
        return await handler(request)

    return endpoint


def record(state: State, request: Request, auth_ok: bool | None, user: JsonDict | None) -> None:
    with state.lock:
        state.requests.append(RecordedRequest(request.method, request.url.path, auth_ok, user["id"] if user else ""))
