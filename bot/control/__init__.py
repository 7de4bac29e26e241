"""Who provisions the platform: the bot itself (``direct``) or the Cloud π Native console.

``platform.control`` picks one :class:`~bot.control.base.Control`; commands and their operations
call ``bot.control`` and never ask which one it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.control.base import Control, Placement, PlacementChoice

if TYPE_CHECKING:
    from bot.runtime import Bot


def build(bot: Bot) -> Control:
    """The control of ``platform.control`` (the config checked that console mode has [console])."""
    if bot.config.platform.control == "console":
        from bot.control.console import ConsoleControl

        return ConsoleControl.from_config(bot)
    from bot.control.direct import DirectControl

    return DirectControl(bot)


__all__ = ["Control", "Placement", "PlacementChoice", "build"]
