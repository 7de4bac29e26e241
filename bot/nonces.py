"""Single-use contexts: the nonce of a button or dialog, recorded as used by the press that acted.

Signed contexts stay valid until they expire, so without this one secret dialog submitted three
times gave three Vault versions and a prod confirmation pressed twice deployed twice. The use is
a row in ``used_nonces`` (its primary key makes a concurrent second claim fail), written in the
transaction of the press's SQLite effects, or on its own just before an effect elsewhere. Rows are
pruned once their context has expired: an expired context is refused anyway.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from bot.interactive import AlreadyUsed, NonceUse, Signed
from bot.store import Store, now

# Contexts are refused from their expiry on; their rows are kept a little longer, for clocks.
PRUNE_MARGIN = 60.0


class Nonces:
    def __init__(self, store: Store) -> None:
        self.store = store

    def use_of(self, nonce: str) -> NonceUse | None:
        row = self.store.db.execute(
            "SELECT user_id, action, label, used_at FROM used_nonces WHERE nonce = ?", (nonce,)
        ).fetchone()
        return NonceUse(row[0], row[1], row[2], row[3]) if row else None

    def claim(self, signed: Signed, user_id: str) -> None:
        """Record ``signed``'s nonce as used by ``user_id`` (joining the open transaction, if any).

        ``AlreadyUsed`` if it already was: in a transaction of effects, raising it rolls them back.
        """
        with self.store.transaction():
            self.store.db.execute("DELETE FROM used_nonces WHERE expires_at < ?", (now() - PRUNE_MARGIN,))
            try:
                self.store.db.execute(
                    "INSERT INTO used_nonces (nonce, used_at, user_id, action, label, expires_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (signed.nonce, now(), user_id, signed.action, signed.label, float(signed.expires)),
                )
            except sqlite3.IntegrityError:
                raise AlreadyUsed(self.use_of(signed.nonce)) from None

    def release(self, signed: Signed, user_id: str) -> None:
        """Undo a claim whose press turned out to have no effect (a dialog's field errors)."""
        with self.store.transaction():
            self.store.db.execute("DELETE FROM used_nonces WHERE nonce = ? AND user_id = ?", (signed.nonce, user_id))


class PressOnce:
    """The :class:`bot.interactive.Once` of one press: claims its context at most once."""

    def __init__(self, nonces: Nonces, signed: Signed, user_id: str) -> None:
        self.nonces = nonces
        self.signed = signed
        self.user_id = user_id
        self.claimed = False

    def claim(self) -> None:
        if not self.claimed:
            self.nonces.claim(self.signed, self.user_id)
            self.claimed = True

    @contextmanager
    def effect(self) -> Iterator[None]:
        if self.claimed:  # already used up by this very press: its effects go on alone
            with self.nonces.store.transaction():
                yield
            return
        with self.nonces.store.transaction():
            self.nonces.claim(self.signed, self.user_id)
            yield
        self.claimed = True
