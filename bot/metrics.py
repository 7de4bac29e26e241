"""Counters, gauges and histograms rendered in the Prometheus text exposition format.

Small on purpose: the bot needs a handful of series, and a scrape must not cost more than a
dictionary walk. Gauges that reflect the database (queue depths) are computed at scrape time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

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

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for name, series in sorted(self._counters.items()):
                lines.append(f"# HELP {name} {self._help.get(name, name)}")
                lines.append(f"# TYPE {name} counter")
                for labels, value in sorted(series.items()):
                    lines.append(f"{name}{_fmt(labels)} {value:g}")
            for name, hseries in sorted(self._histograms.items()):
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
