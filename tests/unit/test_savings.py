"""The savings ledger and its report, without an engine: counts, the rate, money, the history
file and what `semantic-reuse stats` makes of it."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from semantic_reuse import CachedAnswer, ReuseKind
from semantic_reuse.config import SavingsConfig
from semantic_reuse.metrics import Metrics
from semantic_reuse.savings import Savings, answer_tokens, estimate_tokens
from semantic_reuse.tools.savings_report import read_history, series, table, totals


def test_token_counts_come_from_the_backend_else_an_estimate() -> None:
    assert answer_tokens(CachedAnswer("ignored", token_ids=(1, 2, 3))) == 3
    assert answer_tokens(CachedAnswer("ignored", usage={"completion_tokens": 7})) == 7
    assert estimate_tokens("a" * 40) == 10
    assert estimate_tokens("怎么重置密码") == 6
    assert answer_tokens(CachedAnswer("abcdefgh")) == 2


def test_record_counts_per_namespace_kind_and_tier() -> None:
    metrics = Metrics()
    savings = Savings(SavingsConfig(price_per_1k_tokens=2.0), metrics=metrics)
    ten = CachedAnswer("x", token_ids=tuple(range(10)))
    savings.record("acme", ReuseKind.MISS, None, (), [ten], generation_s=0.5)  # 20 tokens/s
    savings.record("acme", ReuseKind.EXACT, "memory", [ten])
    savings.record("acme", ReuseKind.SEMANTIC, "vector", [ten])
    savings.record("globex", ReuseKind.PARTIAL, None, [ten], [ten], generation_s=0.5)
    stats = savings.stats()
    assert stats["tokens_per_second"] == 20.0
    acme = stats["namespaces"]["acme"]
    assert acme["requests"] == 3
    assert acme["kinds"] == {"exact": 1, "miss": 1, "semantic": 1}
    assert acme["tiers"] == {"memory": 1, "none": 1, "vector": 1}
    assert (acme["hits"], acme["reused_tokens"], acme["generated_tokens"]) == (2, 20, 10)
    assert acme["hit_rate"] == 2 / 3
    assert acme["saved_s"] == 1.0  # 20 tokens at 20 tokens/s
    assert acme["saved_money"] == 0.04
    globex = stats["namespaces"]["globex"]
    assert (globex["kinds"], globex["tiers"], globex["hits"]) == ({"partial": 1}, {"clauses": 1}, 0)
    assert metrics.counter("savings_requests_total", namespace="acme", kind="exact",
                           tier="memory") == 1  # fmt: skip
    assert metrics.counter("savings_reused_tokens_total", namespace="acme") == 20
    gauges = metrics.snapshot()["gauges"]
    assert gauges["saved_seconds"]["namespace=acme"] == 1.0
    assert gauges["saved_money"]["namespace=acme"] == 0.04


def test_before_any_miss_the_configured_rate_is_used() -> None:
    assert Savings().rate() is None
    savings = Savings(SavingsConfig(tokens_per_second=50))
    savings.record("n", ReuseKind.EXACT, "redis", [CachedAnswer("x", token_ids=(1,) * 100)])
    assert savings.stats()["namespaces"]["n"]["saved_s"] == 2.0
    assert savings.stats()["namespaces"]["n"]["saved_money"] is None  # no price given


def test_history_snapshots_and_the_report(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    clock = iter(range(1_000, 2_000, 10))
    first = Savings(SavingsConfig(history_path=path, price_per_1k_tokens=1.0),
                    clock=lambda: float(next(clock)))  # fmt: skip
    second = Savings(SavingsConfig(history_path=path), clock=lambda: float(next(clock)))
    second._engine_id = "other"
    hit = CachedAnswer("x", token_ids=(1,) * 1000)
    first.record("acme", ReuseKind.MISS, None, (), [hit], generation_s=10.0)
    first.write_history()
    first.record("acme", ReuseKind.EXACT, "memory", [hit])
    first.write_history()
    second.record("acme", ReuseKind.SEMANTIC, "vector", [hit])
    second.write_history()
    path.write_text(path.read_text() + "{not json\n")  # a line cut by a crash is skipped
    snapshots = read_history(path)
    assert len(snapshots) == 3
    latest = {s["engine"]: s for s in snapshots}
    figures = totals(latest.values())["acme"]
    assert (figures["requests"], figures["hits"], figures["reused_tokens"]) == (3, 2, 2000)
    assert figures["kinds"] == {"exact": 1, "miss": 1, "semantic": 1}
    assert figures["saved_money"] == 1.0  # only the first process had a price
    points = series(snapshots, "acme")
    assert [p["hit_rate"] for p in points] == [0.0, 0.5, 2 / 3]
    assert points[-1]["saved_s"] == 10.0  # 1000 tokens at 100 tokens/s
    out = Console(width=200, record=True)
    out.print(table(totals(latest.values()), "USD"))
    text = out.export_text()
    assert "acme" in text
    assert "66.7%" in text
    assert "memory=1 vector=1" in text
    assert json.loads(path.read_text().splitlines()[0])["currency"] == "USD"
