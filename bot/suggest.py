"""The word a person most likely meant, among the ones that exist: pure, for typo suggestions.

``craete`` → ``create``, ``deploi`` → ``deploy``, ``etatcivl`` → ``etatcivil``. difflib's ratio
rewards long common runs, which suits swapped or missing letters in short words; a cutoff keeps
unrelated words (``zzzzzz``) without a suggestion rather than offering a random one.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

CUTOFF = 0.6


def closest(word: str, candidates: Iterable[str], cutoff: float = CUTOFF) -> str | None:
    """The candidate nearest to ``word`` (case ignored), or None if none is near enough."""
    pool = sorted({c for c in candidates if c})
    if not word or not pool:
        return None
    found = difflib.get_close_matches(word.lower(), pool, n=1, cutoff=cutoff)
    return found[0] if found else None
