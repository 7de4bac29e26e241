"""The ``whoami`` card."""

from __future__ import annotations

from typing import Any

from bot.context import Identity
from bot.i18n import Translator
from bot.render.safe import escape
from bot.rights import ROLE_NAMES, Role


def whoami_card(identity: Identity, memberships: list[tuple[str, Role]], tr: Translator) -> dict[str, Any]:
    projects = (
        "\n".join(f"- **{escape(name)}** — {ROLE_NAMES[role](tr.lang)}" for name, role in memberships)
        if memberships
        else tr("whoami.none")
    )
    return {
        "fallback": f"{identity.username} ({identity.email})",
        "color": "#000091",  # bleu France
        "title": tr("whoami.title"),
        "fields": [
            {"title": tr("whoami.user"), "value": f"@{escape(identity.username)}", "short": True},
            {
                "title": tr("whoami.email"),
                "value": escape(identity.email, mentions=False) or "—",
                "short": True,
            },
            {
                "title": tr("whoami.platform_admin"),
                "value": tr("whoami.yes") if identity.is_platform_admin else tr("whoami.no"),
                "short": True,
            },
            {"title": tr("whoami.projects"), "value": projects, "short": False},
        ],
    }
