"""Mattermost user id → the platform user (username, e-mail, platform admin or not).

The e-mail is what GitLab, Keycloak and the platform know people by. Lookups are cached in memory
for a few minutes and in SQLite, so that a Mattermost hiccup does not make everyone a stranger.
"""

from __future__ import annotations

import time

from bot.context import Identity
from bot.store import Store, now
from services.errors import ServiceError
from services.mattermost import Mattermost


class Identities:
    def __init__(self, store: Store, mattermost: Mattermost, admins: list[str], ttl: float = 300.0) -> None:
        self.store = store
        self.mm = mattermost
        self.admins = {a.lower() for a in admins}
        self.ttl = ttl
        self._cache: dict[str, tuple[float, Identity]] = {}

    def _make(self, user_id: str, username: str, email: str, locale: str = "") -> Identity:
        admin = username.lower() in self.admins or (email != "" and email.lower() in self.admins)
        return Identity(user_id, username, email, admin, locale)

    async def get(self, user_id: str, fallback_username: str = "") -> Identity:
        cached = self._cache.get(user_id)
        if cached and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        try:
            user = await self.mm.get_user(user_id)
        except ServiceError:
            row = self.store.db.execute(
                "SELECT username, email, locale FROM identities WHERE user_id = ?", (user_id,)
            ).fetchone()
            if row:
                return self._make(user_id, row[0], row[1], row[2])
            # Unknown and unreachable: the name from the request, no e-mail, no admin rights.
            return Identity(user_id, fallback_username, "", False)
        identity = self._make(
            user_id, user.get("username", fallback_username), user.get("email", ""), user.get("locale", "")
        )
        self._cache[user_id] = (time.monotonic(), identity)
        self.store.db.table("identities").upsert(
            {
                "user_id": user_id,
                "username": identity.username,
                "email": identity.email,
                "locale": identity.locale,
                "fetched_at": now(),
            },
            pk="user_id",
        )
        return identity
