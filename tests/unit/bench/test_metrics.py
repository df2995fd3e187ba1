"""The bench's metric code on hand-made cases with known answers."""

from __future__ import annotations

import math

import pytest

from semantic_reuse.tools.bench.gptcache_baseline import (
    Lookup,
    cosine_of_threshold,
    gptcache_served,
    served_at,
)
from semantic_reuse.tools.bench.metrics import (
    Latency,
    answer_naming,
    cache_owners,
    percentile,
    score_answers,
)
from semantic_reuse.tools.bench.report import check_targets, render_markdown
from semantic_reuse.tools.bench.speed_data import build_texts
from semantic_reuse.tools.calibrate import LabelledPair


def pair(i: int, q1: str, q2: str, label: int) -> LabelledPair:
    return LabelledPair(id=str(i), q1=q1, q2=q2, label=label)


PAIRS = [
    pair(0, "reset password", "change my password", 1),
    pair(1, "capital of France", "capital of Spain", 0),
    pair(2, "learn python", "python for beginners", 1),
    pair(3, "bake bread", "make bread at home", 1),
    pair(4, "reset password", "I forgot my password", 1),  # same q1 text as pair 0
]


def test_owners_cache_identical_texts_once() -> None:
    assert cache_owners(PAIRS) == {
        "reset password": 0, "capital of France": 1, "learn python": 2, "bake bread": 3,
    }  # fmt: skip


def test_shared_cache_rule_and_rates() -> None:
    answers = [
        answer_naming(0),  # own pair, label 1: correct
        answer_naming(1),  # own pair but label 0: wrong
        answer_naming(3),  # another pair's answer: wrong, though pair 2 is a duplicate
        None,  # miss
        answer_naming(0),  # q1 shared with pair 0, whose entry it is: correct
    ]
    point = score_answers(PAIRS, answers, threshold=0.8)
    assert (point.queries, point.positives, point.hits, point.correct) == (5, 4, 4, 2)
    assert point.wrong == 2
    assert point.precision == pytest.approx(2 / 4)
    assert point.recall == pytest.approx(2 / 4)
    assert point.f1 == pytest.approx(0.5)
    assert point.hit_rate == pytest.approx(4 / 5)
    assert point.error_rate == pytest.approx(2 / 5)


def test_no_hits_is_precision_one_recall_zero() -> None:
    point = score_answers(PAIRS, [None] * 5)
    assert (point.precision, point.recall, point.f1, point.error_rate) == (1.0, 0.0, 0.0, 0.0)


def test_score_answers_needs_one_answer_per_pair() -> None:
    with pytest.raises(ValueError, match="one answer per pair"):
        score_answers(PAIRS, [None])


def test_percentile_and_latency() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0], 50) == 1.5
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 100) == 5.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError, match="q must be within"):
        percentile([1.0], 101)
    summary = Latency.of([0.001, 0.002, 0.003])
    assert summary.as_dict() == {"count": 3, "median_ms": 2.0, "p99_ms": 2.98, "mean_ms": 2.0}


def test_gptcache_threshold_is_a_cosine_of_two_t_minus_one() -> None:
    assert cosine_of_threshold(0.8) == pytest.approx(0.6)
    # rank = 4 - d, d = 2 - 2 cos: cosine 0.6 gives rank 3.2, the boundary of t = 0.8
    assert served_at(4 - (2 - 2 * 0.61), 0.8)
    assert not served_at(4 - (2 - 2 * 0.59), 0.8)
    lookups = [
        Lookup("pair:0", "pair:0", 3.9),
        Lookup(None, "pair:1", 3.0),
        Lookup(None, None, None),
    ]
    assert gptcache_served(lookups, 0.8) == ["pair:0", None, None]
    assert gptcache_served(lookups, 0.7) == ["pair:0", "pair:1", None]


def test_speed_texts_keep_probes_out_of_the_fillers() -> None:
    pairs = [pair(i, f"question number {i} about topic {i}", f"q {i} on topic {i}?", i % 2)
             for i in range(200)]  # fmt: skip
    texts = build_texts(pairs, n_probes=10, n_misses=10, n_fillers=500, n_spare=5)
    assert len(texts.probes) == 10
    assert len(texts.misses) == 10
    assert len(texts.spare) == 5
    assert len(texts.fillers) == 500 == len(set(texts.fillers))
    asked = {q for p in texts.probes for q in p} | set(texts.misses) | set(texts.spare)
    assert not asked & set(texts.fillers)
    assert build_texts(pairs, n_probes=10, n_misses=10, n_fillers=500, n_spare=5) == texts


def test_targets_from_a_results_document() -> None:
    def system(name: str, precision: float, recall: float, hits: int = 10) -> dict[str, object]:
        default = {"threshold": 0.8, "margin": 0.0, "precision": precision, "recall": recall,
                   "f1": recall, "hit_rate": 0.5, "error_rate": 0.1, "hits": hits}  # fmt: skip
        return {"system": name, "default": default, "cosine_threshold": 0.6}

    def row(
        system: str, entries: int, semantic: float, exact: float, rate: float
    ) -> dict[str, object]:
        return {
            "system": system, "entries": entries, "insert_ms_per_entry_batched": 1.0,
            "rss_bytes_per_entry": 1.0, "disk_bytes_per_entry": 1.0,
            "lookups": {"semantic": {"median_ms": semantic, "p99_ms": semantic, "count": 1},
                        "miss": {"median_ms": semantic * 2, "p99_ms": semantic, "count": 1},
                        "exact": {"median_ms": exact, "p99_ms": exact, "count": 1}},
            "throughput_per_s": {"64": rate},
        }  # fmt: skip

    results = {
        "quality": [
            {"pairs_file": "qqp_dev_5k.jsonl",
             "systems": [system("semantic-reuse", 0.79, 0.56), system("gptcache", 0.4, 0.54)]},
            {"pairs_file": "lcqmc_dev.jsonl",  # precision short of 0.72
             "systems": [system("semantic-reuse", 0.7, 0.6), system("gptcache", 0.4, 0.6)]},
            {"pairs_file": "gptcache_mock_pairs.jsonl",  # 2% wrong: over the 1%
             "systems": [system("semantic-reuse", 0.98, 0.85), system("gptcache", 0.9, 0.9)]},
        ],
        "compound": {
            "en/full": {"queries": 9, "split_ok": 1.0, "full_reuse": 0.65, "wrong": 0.0},
            "en/partial": {"queries": 9, "split_ok": 1.0, "one_reused": 0.6, "wrong": 0.01},
            "en/single": {"queries": 9, "split_ok": 0.97, "wrong": 0.0},
            "zh/full": {"queries": 9, "split_ok": 1.0, "full_reuse": 0.55, "wrong": 0.0},
            "zh/partial": {"queries": 9, "split_ok": 1.0, "one_reused": 0.6, "wrong": 0.0},
            "zh/single": {"queries": 9, "split_ok": 1.0, "wrong": 0.0},
        },
        "speed": {
            "sizes": [1000, 10000, 100000],
            "rows": [row("edge", 10000, 6.0, 0.04, 600.0),
                     row("gptcache", 10000, 20.0, 20.0, 100.0),
                     row("edge", 100000, 12.0, 0.04, 600.0)],
            "redis_exact": {"lookups": {"median_ms": 0.3, "p99_ms": 1.0}, "tiers": {"redis": 5}},
        },
        "e2e": {"EnhancedAsyncLLM": {"miss_reuse_overhead_median": 0.004}},
    }  # fmt: skip
    met = {t.name: t.met for t in check_targets(results)}
    assert met == {
        "quality qqp_dev_5k": True,
        "quality lcqmc_dev": False,
        "quality gptcache_mock_pairs": False,
        "compound en": True,
        "compound zh": False,
        "exact hit, memory": True,
        "exact hit, Redis": True,
        "semantic lookup at 10000": True,  # 6 ms against 20
        "miss at 10000": True,  # 12 ms against 40
        "lookups/s at 64 concurrent": True,
        "semantic lookup, 100000 vs 10000": False,  # 2x
        "RAM per entry at 100000": True,
        "vLLM e2e: what a miss pays for reuse": True,
    }
    assert "| exact hit, Redis | median <= 2 ms | 0.300 ms | yes |" in render_markdown(results)
