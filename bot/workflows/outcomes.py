"""The worst of everything in a card's thread (pure): what a top-level card must show.

A sync's thread holds the build it caused, that build's jobs, its quality gate and its scan; a
collapsed thread shows only the top-level card, so that card carries the worst of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

Outcome = Literal["ok", "running", "warn", "failed"]
Source = Literal["sync", "build", "quality", "scan"]
# Ranked: a failure hides a warning, a warning hides work still running, which hides success.
RANKED: tuple[Outcome, ...] = ("ok", "running", "warn", "failed")

_PIPELINE: dict[str, Outcome] = {"success": "ok", "skipped": "ok", "failed": "failed", "canceled": "warn"}
_GATE: dict[str, Outcome] = {"OK": "ok", "NONE": "ok", "WARN": "warn", "ERROR": "failed"}
# Against the project's policy: findings within it (``warn``) are the scan card's news, in the
# thread; only a breach of the policy (``fail``) is the outcome of the whole thread.
_SCAN: dict[str, Outcome] = {"ok": "ok", "warn": "ok", "fail": "failed"}


@dataclass(frozen=True)
class Result:
    source: Source
    outcome: Outcome
    jobs: Sequence[str] = field(default_factory=tuple)  # a pipeline's failed jobs, by name


def pipeline_outcome(status: str) -> Outcome:
    """A GitLab status as an outcome; anything not final is still running."""
    return _PIPELINE.get(status, "running")


def gate_outcome(status: str) -> Outcome:
    return _GATE.get(status, "ok")


def scan_outcome(verdict: str) -> Outcome:
    return _SCAN.get(verdict, "ok")


def worst(results: Iterable[Result]) -> Result | None:
    """The highest-ranked result; between equals, the first given (the card's own comes first)."""
    found: Result | None = None
    for result in results:
        if found is None or RANKED.index(result.outcome) > RANKED.index(found.outcome):
            found = result
    return found


def bad(results: Iterable[Result]) -> list[Result]:
    """Failures then warnings, each in the order given: the card's first line."""
    kept = [r for r in results if r.outcome in ("failed", "warn")]
    return sorted(kept, key=lambda r: -RANKED.index(r.outcome))
