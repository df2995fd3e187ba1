"""Counters, gauges and latency histograms, per engine (no process-global registry).

`Metrics.snapshot()` is what `stats()` returns; `Metrics.register(registry)` exposes
the same numbers to a prometheus_client ``CollectorRegistry`` under the names
``semantic_reuse_<name>`` (counters get ``_total``), so several engines in one
process do not collide unless the caller puts them in one registry.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

LabelKey = tuple[tuple[str, str], ...]

# 50 us .. ~100 s, roughly x2 per bucket: covers a memory hit and a CPU generation.
DEFAULT_BUCKETS: tuple[float, ...] = tuple(5e-5 * 2**i for i in range(22))


@dataclass
class Histogram:
    """Fixed-bucket latency histogram (seconds)."""

    bounds: tuple[float, ...] = DEFAULT_BUCKETS
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def quantile(self, q: float) -> float | None:
        """Upper bound of the bucket holding quantile `q` (None when empty)."""
        if self.count == 0:
            return None
        rank = q * self.count
        seen = 0
        for i, n in enumerate(self.counts):
            seen += n
            if seen >= rank and n:
                return self.bounds[i] if i < len(self.bounds) else float("inf")
        return float("inf")

    def summary(self) -> dict[str, float | int | None]:
        return {
            "count": self.count,
            "mean_s": self.total / self.count if self.count else None,
            "p50_s": self.quantile(0.5),
            "p99_s": self.quantile(0.99),
        }


def _key(labels: dict[str, str]) -> LabelKey:
    if len(labels) == 1:  # the common case: no sorting
        ((name, value),) = labels.items()
        return ((name, str(value)),)
    return tuple(sorted((k, str(v)) for k, v in labels.items()))


class Metrics:
    """Thread-safe counters, histograms and gauge callbacks."""

    def __init__(self, prefix: str = "semantic_reuse") -> None:
        self.prefix = prefix
        self._lock = threading.Lock()
        self._counters: dict[str, dict[LabelKey, float]] = {}
        self._histograms: dict[str, dict[LabelKey, Histogram]] = {}
        self._gauges: dict[str, dict[LabelKey, Callable[[], float]]] = {}

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        with self._lock:
            series = self._counters.setdefault(name, {})
            key = _key(labels)
            series[key] = series.get(key, 0.0) + amount

    def observe(self, name: str, seconds: float, **labels: str) -> None:
        with self._lock:
            series = self._histograms.setdefault(name, {})
            key = _key(labels)
            hist = series.get(key)
            if hist is None:
                hist = series[key] = Histogram()
            hist.observe(seconds)

    @contextmanager
    def timer(self, name: str, **labels: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.observe(name, time.perf_counter() - start, **labels)

    def gauge(self, name: str, read: Callable[[], float], **labels: str) -> None:
        """Register a gauge read at snapshot / scrape time."""
        with self._lock:
            self._gauges.setdefault(name, {})[_key(labels)] = read

    def counter(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._counters.get(name, {}).get(_key(labels), 0.0)

    def snapshot(self) -> dict[str, Any]:
        """Plain data: counters, histogram summaries and gauges, keyed "label=value,..."."""
        with self._lock:
            counters = {n: {_fmt(k): v for k, v in s.items()} for n, s in self._counters.items()}
            hists = {
                n: {_fmt(k): h.summary() for k, h in s.items()} for n, s in self._histograms.items()
            }
            gauges = dict(self._gauges)
        return {
            "counters": counters,
            "histograms": hists,
            "gauges": {n: {_fmt(k): read() for k, read in s.items()} for n, s in gauges.items()},
        }

    def register(self, registry: CollectorRegistry) -> None:
        """Expose these metrics through a prometheus_client registry."""
        registry.register(_PrometheusCollector(self))

    def _collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        with self._lock:
            counters = {n: dict(s) for n, s in self._counters.items()}
            hists = {
                n: {k: (list(h.counts), h.total, h.bounds) for k, h in s.items()}
                for n, s in self._histograms.items()
            }
            gauges = {n: dict(s) for n, s in self._gauges.items()}
        for name, c_series in counters.items():
            labels = _label_names(c_series)
            counter = CounterMetricFamily(f"{self.prefix}_{name}", name, labels=labels)
            for key, value in c_series.items():
                counter.add_metric([dict(key).get(label, "") for label in labels], value)
            yield counter
        for name, h_series in hists.items():
            labels = _label_names(h_series)
            family = HistogramMetricFamily(f"{self.prefix}_{name}", name, labels=labels)
            for key, (counts, total, bounds) in h_series.items():
                cumulative, buckets = 0, []
                for bound, n in zip((*bounds, float("inf")), counts, strict=True):
                    cumulative += n
                    buckets.append((_le(bound), cumulative))
                family.add_metric([dict(key).get(label, "") for label in labels], buckets, total)
            yield family
        for name, g_series in gauges.items():
            labels = _label_names(g_series)
            gauge = GaugeMetricFamily(f"{self.prefix}_{name}", name, labels=labels)
            for key, read in g_series.items():
                gauge.add_metric([dict(key).get(label, "") for label in labels], read())
            yield gauge


class _PrometheusCollector:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Any]:
        return self._metrics._collect()


def _fmt(key: LabelKey) -> str:
    return ",".join(f"{k}={v}" for k, v in key) or "_"


def _label_names(series: dict[LabelKey, Any]) -> list[str]:
    return sorted({k for key in series for k, _ in key})


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)
