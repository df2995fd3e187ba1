from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from semantic_reuse.spi import Metrics


def test_counters_histograms_and_gauges_in_snapshot() -> None:
    metrics = Metrics()
    metrics.inc("lookups_total", tier="memory", outcome="hit")
    metrics.inc("lookups_total", 2, tier="memory", outcome="hit")
    for ms in (0.1, 0.2, 0.3, 50):
        metrics.observe("stage_seconds", ms / 1000, stage="exact")
    metrics.gauge("entries", lambda: 7.0, tier="memory")
    snap = metrics.snapshot()
    assert snap["counters"]["lookups_total"]["outcome=hit,tier=memory"] == 3
    summary = snap["histograms"]["stage_seconds"]["stage=exact"]
    assert summary["count"] == 4
    assert 0.0001 <= summary["p50_s"] <= 0.0004
    assert summary["p99_s"] >= 0.05
    assert snap["gauges"]["entries"]["tier=memory"] == 7.0


def test_prometheus_exposition_uses_our_names() -> None:
    metrics = Metrics()
    metrics.inc("lookups_total", tier="redis", outcome="miss")
    metrics.observe("stage_seconds", 0.002, stage="exact")
    metrics.gauge("bytes", lambda: 1234.0, tier="memory")
    registry = CollectorRegistry()
    metrics.register(registry)
    text = generate_latest(registry).decode()
    assert 'semantic_reuse_lookups_total{outcome="miss",tier="redis"} 1.0' in text
    assert 'semantic_reuse_stage_seconds_count{stage="exact"} 1.0' in text
    assert 'semantic_reuse_stage_seconds_bucket{le="+Inf",stage="exact"} 1.0' in text
    assert 'semantic_reuse_bytes{tier="memory"} 1234.0' in text


def test_two_engines_do_not_share_metrics() -> None:
    a, b = Metrics(), Metrics()
    a.inc("errors_total", component="redis")
    assert b.counter("errors_total", component="redis") == 0
