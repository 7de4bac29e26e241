"""HTTP plumbing of the GitLab emulator: routing on the raw path, parameters, errors, pagination.

GitLab accepts namespaced ids URL-encoded in one path segment (``/projects/group%2Fsub%2Frepo``) and
file paths the same way (``/repository/files/src%2Fapp.py``). Starlette decodes ``%2F`` before
routing, so this module routes on ``scope["raw_path"]`` and decodes each segment itself.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import math
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

# Reason phrases GitLab puts in its ``{"message": "<code> <reason>"}`` error bodies.
REASONS = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}

DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100


class ApiError(Exception):
    """Raised by handlers; turned into GitLab's JSON error answer."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status}")
        self.status = status
        self.body = body


def error_body(status: int) -> dict[str, Any]:
    """GitLab's generic error body, e.g. ``{"message": "503 Service Unavailable"}``."""
    return {"message": f"{status} {REASONS.get(status, 'Error')}"}


def not_found(what: str = "") -> ApiError:
    """``404 Project Not Found`` style error (``what`` = "Project", "Group", "User"…)."""
    label = f"404 {what} Not Found" if what else "404 Not Found"
    return ApiError(404, {"message": label})


def forbidden() -> ApiError:
    return ApiError(403, {"message": "403 Forbidden"})


def unauthorized() -> ApiError:
    return ApiError(401, {"message": "401 Unauthorized"})


def bad_request(message: str | dict[str, Any]) -> ApiError:
    """400 with ``{"message": ...}`` (model validation errors or service messages)."""
    return ApiError(400, {"message": message})


def param_error(message: str) -> ApiError:
    """400 with ``{"error": ...}``: what Grape answers when a declared parameter is missing/invalid."""
    return ApiError(400, {"error": message})


def conflict(message: str) -> ApiError:
    return ApiError(409, {"message": message})


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # GitLab answers exactly ``application/json`` (clients compare the media type).
    return JSONResponse(data, status_code=status, headers=headers, media_type="application/json")


def accepted() -> Response:
    return json_response({"message": "202 Accepted"}, status=202)


def no_content() -> Response:
    return Response(status_code=204)


# --- parameters ------------------------------------------------------------------------------


def _assign(target: dict[str, Any], key: str, value: Any) -> None:
    """Store a form field, expanding Rails bracket notation.

    ``variables[KEY]=v`` gives a dict, ``scopes[]=a`` a list, ``actions[][file_path]=x`` a list of
    dicts (a new dict starts when a key repeats, as Rack does).
    """
    match = re.fullmatch(r"([^\[\]]+)((?:\[[^\[\]]*\])+)", key)
    if match is None:
        target[key] = value
        return
    name = match.group(1)
    subs = re.findall(r"\[([^\[\]]*)\]", match.group(2))
    if subs == [""]:
        items = target.get(name)
        target[name] = [*items, value] if isinstance(items, list) else [value]
    elif len(subs) == 1:
        mapping = target.get(name)
        if not isinstance(mapping, dict):
            mapping = target[name] = {}
        mapping[subs[0]] = value
    elif len(subs) == 2 and subs[0] == "" and subs[1]:
        rows = target.get(name)
        if not isinstance(rows, list):
            rows = target[name] = []
        if not rows or not isinstance(rows[-1], dict) or subs[1] in rows[-1]:
            rows.append({})
        rows[-1][subs[1]] = value
    else:
        target[key] = value


def _parse_multipart(content_type: str, body: bytes) -> list[tuple[str, str]]:
    """Fields of a ``multipart/form-data`` body (curl ``-F``), without python-multipart."""
    header = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + body)
    fields: list[tuple[str, str]] = []
    if not message.is_multipart():
        return fields
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        raw = payload if isinstance(payload, bytes) else b""
        fields.append((name, raw.decode("utf-8", errors="replace")))
    return fields


async def read_params(request: Request) -> dict[str, Any]:
    """Query string plus body (JSON, urlencoded or multipart), like Grape's ``params``."""
    params: dict[str, Any] = {}
    for key, value in parse_qsl(request.url.query, keep_blank_values=True):
        _assign(params, key, value)
    body = await request.body()
    if not body:
        return params
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";")[0].strip().lower()
    if media == "application/json" or (not media and body[:1] in (b"{", b"[")):
        try:
            decoded = json.loads(body)
        except ValueError as exc:
            raise param_error("The provided content-type 'application/json' is not supported.") from exc
        if isinstance(decoded, dict):
            params.update(decoded)
    elif media == "multipart/form-data":
        for key, value in _parse_multipart(content_type, body):
            _assign(params, key, value)
    else:
        for key, value in parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True):
            _assign(params, key, value)
    return params


PATH_RE = re.compile(r"^[a-zA-Z0-9_.][a-zA-Z0-9_\-.]*[a-zA-Z0-9_\-]$|^[a-zA-Z0-9_]$")
PATH_ERROR = (
    "can contain only letters, digits, '_', '-' and '.'. Cannot start with '-', end in '.git' or end in '.atom'"
)


def validate_path(path: str) -> None:
    """GitLab's namespace/project path rule, answered as a model validation error."""
    if not PATH_RE.match(path) or path.endswith((".git", ".atom")):
        raise bad_request({"path": [PATH_ERROR]})


def as_bool(value: Any, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "1", "yes", "on", "t")


def as_int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise param_error(f"{name} is invalid") from exc


def require(params: dict[str, Any], *names: str) -> None:
    """Grape's ``requires``: ``{"error": "name is missing, path is missing"}``."""
    missing = [name for name in names if params.get(name) in (None, "")]
    if missing:
        raise param_error(", ".join(f"{name} is missing" for name in missing))


# --- pagination ------------------------------------------------------------------------------


def paginate(request: Request, items: Sequence[Any]) -> tuple[list[Any], dict[str, str]]:
    """Slice ``items`` by ``page``/``per_page`` and build GitLab's pagination headers.

    python-gitlab follows ``Link: <…>; rel="next"`` for ``get_all=True`` and reads the ``X-*``
    headers for its ``GitlabList`` properties, so both are sent like GitLab does.
    """
    query = dict(parse_qsl(request.url.query, keep_blank_values=True))
    try:
        page = max(1, int(query.get("page", 1)))
    except ValueError:
        page = 1
    try:
        per_page = int(query.get("per_page", DEFAULT_PER_PAGE))
    except ValueError:
        per_page = DEFAULT_PER_PAGE
    per_page = min(max(per_page, 1), MAX_PER_PAGE)
    total = len(items)
    total_pages = max(1, math.ceil(total / per_page))
    chunk = list(items[(page - 1) * per_page : page * per_page])
    next_page = page + 1 if page < total_pages else None
    prev_page = page - 1 if page > 1 else None
    headers = {
        "X-Page": str(page),
        "X-Per-Page": str(per_page),
        "X-Total": str(total),
        "X-Total-Pages": str(total_pages),
        "X-Next-Page": str(next_page or ""),
        "X-Prev-Page": str(prev_page or ""),
    }
    base = str(request.url.replace(query=""))

    def link(target: int, rel: str) -> str:
        merged = {**query, "page": str(target), "per_page": str(per_page)}
        return f'<{base}?{urlencode(merged)}>; rel="{rel}"'

    links = []
    if prev_page:
        links.append(link(prev_page, "prev"))
    if next_page:
        links.append(link(next_page, "next"))
    links.append(link(1, "first"))
    links.append(link(total_pages, "last"))
    headers["Link"] = ", ".join(links)
    return chunk, headers


def paged_response(request: Request, items: Sequence[Any]) -> Response:
    chunk, headers = paginate(request, items)
    return json_response(chunk, headers=headers)


# --- routing ---------------------------------------------------------------------------------


@dataclass
class Ctx:
    """What a handler gets: the request, decoded path parameters, merged params, the caller."""

    request: Request
    path: dict[str, str]
    params: dict[str, Any]
    user_id: int | None = None
    scopes: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def arg(self, name: str, default: Any = None) -> Any:
        value = self.params.get(name, default)
        return default if value is None else value


# Handlers get the context and the emulator's State (typed ``Any`` here to avoid an import cycle).
Handler = Callable[[Ctx, Any], Awaitable[Response]]


@dataclass
class Route:
    method: str
    segments: list[str]
    handler: Handler
    public: bool
    premium: bool = False  # EE only (Premium/Ultimate): absent from a Free/CE instance


class Router:
    """Routes on raw path segments; ``{name}`` takes one (decoded) segment, ``{name:path}`` the rest."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, pattern: str, handler: Handler, public: bool = False, premium: bool = False) -> None:
        self.routes.append(Route(method.upper(), pattern.strip("/").split("/"), handler, public, premium))

    def route(
        self, method: str, pattern: str, public: bool = False, premium: bool = False
    ) -> Callable[[Handler], Handler]:
        def decorator(handler: Handler) -> Handler:
            for verb in method.split(","):
                self.add(verb.strip(), pattern, handler, public, premium)
            return handler

        return decorator

    def include(self, other: Router) -> None:
        self.routes.extend(other.routes)

    def match(self, method: str, raw_path: str, premium: bool = True) -> tuple[Route | None, dict[str, str], bool]:
        """The route for ``method`` and ``raw_path``, its parameters, and whether the path exists.

        ``premium=False``: EE-only routes do not exist (a Free/CE instance never mounts them).
        """
        parts = raw_path.strip("/").split("/")
        path_exists = False
        for route in self.routes:
            if route.premium and not premium:
                continue
            params = _match_segments(route.segments, parts)
            if params is None:
                continue
            path_exists = True
            if route.method == method:
                return route, params, True
        return None, {}, path_exists


def _match_segments(pattern: list[str], parts: list[str]) -> dict[str, str] | None:
    params: dict[str, str] = {}
    for index, segment in enumerate(pattern):
        if segment.startswith("{") and segment.endswith(":path}"):
            rest = parts[index:]
            if not rest or rest == [""]:
                return None
            params[segment[1:-6]] = unquote("/".join(rest))
            return params
        if index >= len(parts):
            return None
        if segment.startswith("{") and segment.endswith("}"):
            if parts[index] == "":
                return None
            params[segment[1:-1]] = unquote(parts[index])
        elif segment != parts[index]:
            return None
    return params if len(parts) == len(pattern) else None
