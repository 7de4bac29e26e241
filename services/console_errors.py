"""The console's errors, whatever backend answered, as :class:`ServiceError` subclasses.

The console sits behind a proxy splitting paths between a NestJS server and the legacy Fastify
one (``cloud-pi-native/console:apps/nginx-strangler/conf.d/routing.conf``); each has its own error
bodies, and the legacy server answers a refused ``x-dso-token`` with **HTTP 200** carrying
``{"status": 401, "body": {"message": …}}`` (``cloud-pi-native/console:apps/server/src/utils/
controller.ts`` throws a plain object that ts-rest sends as a payload). Reference:
``console-api.md`` §0.1.

Each error carries a ``reason``: a key of the ``[console_error]`` locale section, so that a
workflow can tell the user in French what happened and what to do. The console's own message is
kept (``console_message``, short) for matching and logs; it never holds a token (the console
never echoes one).
"""

from __future__ import annotations

from typing import Any

from services.errors import Failure, ServiceError

SERVICE = "Console"
_MAX_MESSAGE = 200


class ConsoleError(ServiceError):
    failure_kind = Failure.INVALID

    def __init__(self, reason: str, status: int | None = None, console_message: str = "") -> None:
        super().__init__(SERVICE, self.failure_kind, status, detail=reason)
        self.reason = reason
        self.console_message = console_message[:_MAX_MESSAGE]
        self.bot_token = False  # refused with the bot's admin token, not a person's (set by the client)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reason={self.reason!r}, status={self.status!r})"


class ConsoleAuthError(ConsoleError):
    """The token was refused: unknown, expired, revoked or inactive."""

    failure_kind = Failure.UNAUTHORIZED


def reader_reason(exc: ConsoleError) -> str:
    """The reason to tell the reader: a refused token is "renew yours" for a person's token, but
    ``bot_token`` (only the platform team can renew it) when it was the bot's admin token."""
    return "bot_token" if isinstance(exc, ConsoleAuthError) and exc.bot_token else exc.reason


class ConsoleForbidden(ConsoleError):
    """Known caller, refused: permissions, locked or archived project, human-only route."""

    failure_kind = Failure.FORBIDDEN


class ConsoleNotFound(ConsoleError):
    failure_kind = Failure.NOT_FOUND


class ConsoleInvalid(ConsoleError):
    """A 400: validation (``field_errors`` name each bad field) or a duplicate."""

    failure_kind = Failure.INVALID

    def __init__(
        self,
        reason: str,
        status: int | None = None,
        console_message: str = "",
        field_errors: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__(reason, status, console_message)
        self.field_errors = field_errors or {}


class ConsoleProvisioningError(ConsoleError):
    """The write was recorded but a plugin failed (422, or 500 ``Echec des services…``):
    the fix is a replay (``PUT …/hooks``), not a new write."""

    failure_kind = Failure.UNAVAILABLE


class ConsoleUnavailable(ConsoleError):
    failure_kind = Failure.UNAVAILABLE


# Exact texts of the servers (console-api.md §0.1, §1.2, §2), message -> reason.
_EXACT = {
    "Not authenticated": "not_authenticated",
    "Expired": "token_expired",
    "Token revoked": "token_revoked",
    "Not active": "token_inactive",
    "Cannot find requestor in request context": "human_only",
    "Require to be requested from user not api key": "human_only",
    "Cannot find requestor in database": "human_only",
    "État de verrouillage invalide": "locked",
    "Le projet est verrouillé": "locked",
    "Veuillez déverrouiller le projet pour le mettre à jour": "locked",
    "Statut de projet invalide": "archived",
    "Le projet est archivé": "archived",
    "Projet introuvable": "project_not_found",
    "Utilisateur introuvable": "user_not_found",
    "Permissions administrateur insuffisantes": "admin_only",
}


# Every reason an adapter error may carry: each is a key of the [console_error] locale section.
REASONS = (
    *sorted(set(_EXACT.values())),
    "token_expired",
    "not_found",
    "forbidden",
    "invalid",
    "duplicate",
    "provisioning_failed",
    "server_error",
    "timeout",
    "unreachable",
    "create_unconfirmed",
    "pat_required",
    "token_unknown",
)


def error_message(body: Any) -> str:
    """The message of any error body: ``message`` | ``body.message`` | ``error`` | first field or
    form error | ZodError ``issues[0].message`` (console-api.md §0.1, adapter rule)."""
    if not isinstance(body, dict):
        return str(body)[:_MAX_MESSAGE] if isinstance(body, str) else ""
    wrapped = body["body"] if isinstance(body.get("body"), dict) else {}
    for candidate in (body.get("message"), wrapped.get("message")):
        if isinstance(candidate, str) and candidate:
            return candidate
    fields = _field_errors(body)
    for messages in fields.values():
        if messages:
            return messages[0]
    forms = body.get("formErrors")
    if isinstance(forms, list) and forms:
        return str(forms[0])
    for key in ("bodyErrors", "queryParameterErrors", "pathParameterErrors", "headerErrors"):
        zod = body.get(key)
        if isinstance(zod, dict) and isinstance(zod.get("issues"), list) and zod["issues"]:
            first = zod["issues"][0]
            if isinstance(first, dict):
                return str(first.get("message") or "")
    error = body.get("error")
    return error if isinstance(error, str) else ""


def _field_errors(body: dict[str, Any]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    fields = body.get("fieldErrors")
    if isinstance(fields, dict):
        for name, messages in fields.items():
            if isinstance(messages, list):
                found[str(name)] = [str(m) for m in messages]
    zod = body.get("bodyErrors")
    if isinstance(zod, dict) and isinstance(zod.get("issues"), list):
        for issue in zod["issues"]:
            if isinstance(issue, dict):
                path = ".".join(str(p) for p in issue.get("path") or []) or "(body)"
                found.setdefault(path, []).append(str(issue.get("message") or ""))
    return found


def error_status(http_status: int, body: Any) -> int | None:
    """The error's status, or None when the answer is a success.

    An error is HTTP ≥ 400, or a JSON object with a numeric top-level ``status`` ≥ 400 and a
    ``body`` object: the legacy server's 200-wrapped auth refusal.
    """
    if http_status >= 400:
        return http_status
    if isinstance(body, dict) and isinstance(body.get("body"), dict):
        status = body.get("status")
        if isinstance(status, int) and not isinstance(status, bool) and status >= 400:
            return status
    return None


def to_error(status: int, body: Any) -> ConsoleError:
    """The :class:`ConsoleError` for an error answer (``status`` from :func:`error_status`)."""
    message = error_message(body)
    reason = _EXACT.get(message)
    if reason is None and message.startswith("Token expired"):
        reason = "token_expired"  # NestJS: "Token expired: <Date.toString()>"
    if reason is None and message.startswith("Seuls les admins"):
        reason = "admin_only"
    if status == 401:
        return ConsoleAuthError(reason or "not_authenticated", status, message)
    if status == 403:
        return ConsoleForbidden(reason or "forbidden", status, message)
    if status == 404:
        return ConsoleNotFound(reason or "not_found", status, message)
    if status == 422 or (status >= 500 and message.startswith("Echec des services")):
        return ConsoleProvisioningError("provisioning_failed", status, message)
    if status >= 500:
        return ConsoleUnavailable("server_error", status, message)
    fields = _field_errors(body) if isinstance(body, dict) else {}
    duplicate = "existe déjà" in message or "déjà pris" in message
    return ConsoleInvalid("duplicate" if duplicate else "invalid", status, message, fields)


__all__ = [
    "REASONS",
    "SERVICE",
    "ConsoleAuthError",
    "ConsoleError",
    "ConsoleForbidden",
    "ConsoleInvalid",
    "ConsoleNotFound",
    "ConsoleProvisioningError",
    "ConsoleUnavailable",
    "error_message",
    "error_status",
    "reader_reason",
    "to_error",
]
