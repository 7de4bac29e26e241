"""Queues are kept for a while for the operator's eyes, then cleared, so the database stays small."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from bot.scheduler import every
from bot.store import now

if TYPE_CHECKING:
    from bot.runtime import Bot

KEEP_DAYS = 7.0


@every(3600.0, "store.retention")
async def clear_old_rows(bot: Bot) -> None:
    cutoff = now() - KEEP_DAYS * 86400
    with bot.store.transaction():
        bot.store.db.execute("DELETE FROM outbox WHERE status != 'pending' AND created_at < ?", (cutoff,))
        bot.store.db.execute("DELETE FROM inbox_done WHERE processed_at < ?", (cutoff,))
        bot.store.db.execute("DELETE FROM operations WHERE status IN ('done', 'failed') AND created_at < ?", (cutoff,))

    def clear_inbox(inbox: sqlite3.Connection) -> None:
        inbox.execute("DELETE FROM inbox WHERE status != 'pending' AND received_at < ?", (cutoff,))
        # Bodies of events processed before bodies were dropped on processing (bot.inbox).
        inbox.execute("UPDATE inbox SET body = '', headers = '{}' WHERE status != 'pending' AND body != ''")

    await bot.store.inbox_write(clear_inbox)
