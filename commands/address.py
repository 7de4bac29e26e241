"""The refusal of a repository address (bot/netpolicy.py), as people read it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.netpolicy import Verdict
from bot.render.safe import code


def address_refusal(tr: Callable[..., str], verdict: Verdict) -> str:
    params: dict[str, Any] = {"host": code(verdict.host), "address": code(verdict.address or verdict.host)}
    return tr(f"repo.address_{verdict.reason}", **params)
