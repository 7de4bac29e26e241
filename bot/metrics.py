"""Counters, gauges and histograms rendered in the Prometheus text exposition format.

Small on purpose: the bot needs a handful of series, and a scrape must not cost more than a
dictionary walk. Gauges that reflect the database (queue depths) are computed at scrape time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Labels = tuple[tuple[str, str], ...]

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _labels(labels: dict[str, str]) -> Labels:
    return tuple(sorted(labels.items()))


def _fmt(labels: Labels, extra: tuple[tuple[str, str], ...] = ()) -> str:
    pairs = labels + extra
    if not pairs:
        return ""
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
    return "{" + body + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


@dataclass
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    total: float = 0.0
    n: int = 0


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[Labels, float]] = {}
        self._histograms: dict[str, dict[Labels, _Histogram]] = {}
        self._help: dict[str, str] = {}
        self._gauges: dict[str, tuple[str, Callable[[], dict[Labels, float]]]] = {}

    def describe(self, name: str, help_text: str) -> None:
        self._help[name] = help_text

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = _labels(labels)
        with self._lock:
            series = self._counters.setdefault(name, {})
            series[key] = series.get(key, 0.0) + amount

    def observe(self, name: str, value: float, **labels: str) -> None:
        key = _labels(labels)
        with self._lock:
            hist = self._histograms.setdefault(name, {}).setdefault(key, _Histogram())
            for i, bound in enumerate(BUCKETS):
                if value <= bound:
                    hist.counts[i] += 1
            hist.total += value
            hist.n += 1

    def gauge(self, name: str, help_text: str, read: Callable[[], dict[Labels, float]]) -> None:
        """Register a gauge whose series are read at scrape time."""
        self._gauges[name] = (help_text, read)

    def value(self, name: str, **labels: str) -> float:
        return self._counters.get(name, {}).get(_labels(labels), 0.0)

    def snapshot(self) -> dict[str, Any]:
        """Counters and histograms as JSON, for another process to add to its own (the worker's)."""
        with self._lock:
            return {
                "counters": {n: [[list(map(list, k)), v] for k, v in s.items()] for n, s in self._counters.items()},
                "histograms": {
                    n: [[list(map(list, k)), h.counts, h.total, h.n] for k, h in s.items()]
                    for n, s in self._histograms.items()
                },
            }

    def _merged(
        self, others: list[dict[str, Any]]
    ) -> tuple[dict[str, dict[Labels, float]], dict[str, dict[Labels, _Histogram]]]:
        with self._lock:
            counters = {n: dict(s) for n, s in self._counters.items()}
            histograms = {
                n: {k: _Histogram(list(h.counts), h.total, h.n) for k, h in s.items()}
                for n, s in self._histograms.items()
            }
        for other in others:
            self._add(other, counters, histograms)
        return counters, histograms

    @staticmethod
    def _add(
        other: dict[str, Any], counters: dict[str, dict[Labels, float]], histograms: dict[str, dict[Labels, _Histogram]]
    ) -> None:
        for name, series in (other.get("counters") or {}).items():
            mine = counters.setdefault(name, {})
            for labels, value in series:
                key: Labels = tuple((str(k), str(v)) for k, v in labels)
                mine[key] = mine.get(key, 0.0) + float(value)
        for name, hseries in (other.get("histograms") or {}).items():
            hmine = histograms.setdefault(name, {})
            for labels, counts, total, n in hseries:
                key = tuple((str(k), str(v)) for k, v in labels)
                hist = hmine.setdefault(key, _Histogram())
                hist.counts = [a + int(b) for a, b in zip(hist.counts, counts, strict=True)]
                hist.total += float(total)
                hist.n += int(n)

    def render(self, others: list[dict[str, Any]] | None = None) -> str:
        """The exposition text; ``others`` (:meth:`snapshot` of other processes) are added in."""
        counters, histograms = self._merged(others or [])
        lines: list[str] = []
        for name, series in sorted(counters.items()):
            lines.append(f"# HELP {name} {self._help.get(name, name)}")
            lines.append(f"# TYPE {name} counter")
            for labels, value in sorted(series.items()):
                lines.append(f"{name}{_fmt(labels)} {value:g}")
        for name, hseries in sorted(histograms.items()):
            lines.append(f"# HELP {name} {self._help.get(name, name)}")
            lines.append(f"# TYPE {name} histogram")
            for labels, hist in sorted(hseries.items()):
                for bound, count in zip(BUCKETS, hist.counts, strict=True):
                    lines.append(f"{name}_bucket{_fmt(labels, (('le', f'{bound:g}'),))} {count}")
                lines.append(f"{name}_bucket{_fmt(labels, (('le', '+Inf'),))} {hist.n}")
                lines.append(f"{name}_sum{_fmt(labels)} {hist.total:g}")
                lines.append(f"{name}_count{_fmt(labels)} {hist.n}")
        for name, (help_text, read) in sorted(self._gauges.items()):
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} gauge")
            for labels, value in sorted(read().items()):
                lines.append(f"{name}{_fmt(labels)} {value:g}")
        return "\n".join(lines) + "\n"
