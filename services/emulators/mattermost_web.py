"""A web view of the Mattermost emulator: a small page mirroring Mattermost's web client (the sandbox's).

The page (``web_static/``: plain HTML, CSS and JavaScript, no build step) is served by the emulator
itself, on the same origin as API v4: it talks to the emulator exactly as Mattermost's webapp does
(``Client4`` with a user's token as ``Authorization: Bearer``, the websocket authenticated with an
``authentication_challenge``), so the bot behind the emulator cannot tell it from the real client.

Off until :func:`enable` is called: every ``/web`` route answers the API's 404 before that, so an
emulator without a view looks like any Mattermost server. Enabling draws a random key; the page's
URL carries it in its fragment (never sent in a request line, so in no access log) and the page
sends it back in ``X-Web-Key`` to get the session: the team and the people it may act as, with
their tokens (what logging in as each of them would give). The page's texts are handed over by
whoever enables the view (the sandbox gives its catalog's ``[web]`` section): the emulator knows
nothing of the bot.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from services.emulators.mattermost_http import app_error, ok
from services.emulators.mattermost_state import JsonDict, State

STATIC = Path(__file__).with_name("web_static")
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css"}
# The page runs no inline script or style and loads nothing from elsewhere: a post that slipped
# markup through the renderer still could not run it. 'self' covers the same-origin websocket.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass
class WebView:
    """What :func:`enable` set: the key of the session document, the page's language and texts."""

    key: str
    language: str
    texts: dict[str, str] = field(default_factory=dict)


def enable(state: State, texts: dict[str, str], language: str = "fr") -> str:
    """Turn the view on; returns its key (the page's URL is ``{site}/web/#key={key}``)."""
    view = WebView(secrets.token_urlsafe(24), language, dict(texts))
    state.web = view
    return view.key


def web_url(base_url: str, key: str) -> str:
    return f"{base_url.rstrip('/')}/web/#key={key}"


class WebRoutes:
    def __init__(self, state: State) -> None:
        self.state = state
        self.files = {p.name: p for p in STATIC.iterdir() if p.suffix in _TYPES}

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/web", self.root, methods=["GET"]),
            Route("/web/", self.index, methods=["GET"]),
            Route("/web/static/{name}", self.static, methods=["GET"]),
            Route("/web/texts", self.texts, methods=["GET"]),
            Route("/web/session", self.session, methods=["GET"]),
        ]

    def _view(self) -> WebView | None:
        view = self.state.web
        return view if isinstance(view, WebView) else None

    @staticmethod
    def _missing() -> Response:
        return app_error(404, "api.context.404.app_error")

    async def root(self, request: Request) -> Response:
        return RedirectResponse("/web/", status_code=302) if self._view() else self._missing()

    async def index(self, request: Request) -> Response:
        return self._file("index.html")

    async def static(self, request: Request) -> Response:
        # Only the files of web_static/ by their plain name: no path reaches the file system.
        return self._file(request.path_params["name"])

    def _file(self, name: str) -> Response:
        path = self.files.get(name)
        if self._view() is None or path is None:
            return self._missing()
        return FileResponse(path, media_type=_TYPES[path.suffix], headers=_HEADERS)

    async def texts(self, request: Request) -> Response:
        """The page's texts, needing no key: the page says why when its key is refused."""
        view = self._view()
        return ok({"language": view.language, "texts": view.texts}) if view else self._missing()

    async def session(self, request: Request) -> Response:
        view = self._view()
        if view is None:
            return self._missing()
        given = request.headers.get("x-web-key", "")
        if not hmac.compare_digest(given.encode(), view.key.encode()):
            return app_error(401, "api.context.session_expired.app_error")
        answer = ok(self._session(view))
        answer.headers.update({"Cache-Control": "no-store"})
        return answer

    def _session(self, view: WebView) -> JsonDict:
        with self.state.lock:
            db = self.state.db
            team = next(iter(db.teams.values()), None)
            token_of: dict[str, str] = {}
            for token, user_id in db.tokens.items():
                token_of.setdefault(user_id, token)
            people = [
                {
                    "id": user["id"],
                    "username": user["username"],
                    "first_name": user["first_name"],
                    "last_name": user["last_name"],
                    "token": token_of[user["id"]],
                }
                for user in db.users.values()
                if not user.get("is_bot") and user["id"] in token_of
            ]
        return {
            "team": {"id": team["id"], "name": team["name"], "display_name": team["display_name"]} if team else None,
            "users": people,
            "teammate_name_display": self.state.teammate_name_display,
        }
