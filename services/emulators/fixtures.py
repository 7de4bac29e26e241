"""Where the shared reference payloads are, when they are (``../shared/fixtures`` beside the checkout)."""

from __future__ import annotations

import os
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]


def fixtures_dir() -> Path:
    """``$CPN_SHARED_FIXTURES``, else ``shared/fixtures`` beside the repository, else ``/work/shared/fixtures``."""
    candidates = [_ROOT.parent / "shared" / "fixtures", Path("/work/shared/fixtures")]
    if os.environ.get("CPN_SHARED_FIXTURES"):
        candidates.insert(0, Path(os.environ["CPN_SHARED_FIXTURES"]))
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return candidates[0]


def fixture(name: str) -> Path:
    return fixtures_dir() / name
