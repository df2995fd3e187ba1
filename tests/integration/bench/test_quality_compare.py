"""`bench quality --baseline gptcache`: both systems on the same vectors (real models)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from semantic_reuse import HandlerConfig
from semantic_reuse.tools.bench import plots
from semantic_reuse.tools.bench.gptcache_baseline import GPTCacheBaseline
from semantic_reuse.tools.bench.quality_compare import compare_quality
from semantic_reuse.tools.calibrate import LabelledPair, load_pairs

KNOWN = [
    LabelledPair("0", "How do I reset my password?", "How can I reset my password?", 1),
    LabelledPair("1", "What is the capital of France?", "What is the capital city of France?", 1),
    LabelledPair("2", "How do I bake sourdough bread?", "Who painted the Mona Lisa?", 0),
    LabelledPair("3", "Is 7 a prime number?", "Is 9 a prime number?", 0),
]


def test_known_pairs_both_systems(minilm: Any) -> None:
    result = compare_quality(KNOWN, HandlerConfig(), embedder=minilm)
    assert [s.system for s in result.systems] == [
        "semantic-reuse", "semantic-reuse (cosine)", "gptcache"
    ]  # fmt: skip
    ours, cosine, gptcache = (s.default for s in result.systems)
    # Two paraphrases served their own answers; nothing close to the Mona Lisa question.
    assert (ours.hits, ours.correct) == (2, 2)  # the verifier (the default)
    assert (cosine.hits, cosine.correct) == (2, 2)  # the threshold rule, replayed
    # GPTCache has no guard: "Is 9 a prime number?" gets 7's answer (cosine well above 0.6).
    assert (gptcache.hits, gptcache.correct) == (3, 2)
    assert result.systems[2].notes["sweep_replays_run"] is True
    verified = result.systems[0]
    assert verified.notes["threshold_scale"] == "verifier probability"
    assert verified.notes["max_error_rate"] == 0.2
    # A higher probability bar never serves more questions.
    hits = [p.hits for p in verified.sweep]
    assert hits == sorted(hits, reverse=True)
    assert hits[0] >= 2
    assert result.engine.kinds == {"semantic": 2}


def test_a_pair_file_and_the_plot(minilm: Any, tiny_datasets: Path, tmp_path: Path) -> None:
    pairs = load_pairs(tiny_datasets / "qqp_dev_5k.jsonl")
    result = compare_quality(pairs, HandlerConfig(), embedder=minilm, pairs_file="qqp")
    data = result.as_dict()
    assert [s["system"] for s in data["systems"]] == [
        "semantic-reuse", "semantic-reuse (cosine)", "gptcache"
    ]  # fmt: skip
    for system in data["systems"]:
        assert system["default"]["queries"] == len(pairs)
        assert len(system["sweep"]) >= 20
        for point in system["sweep"]:
            assert 0.0 <= point["error_rate"] <= point["hit_rate"] <= 1.0
    # A lower threshold never serves fewer questions (GPTCache's sweep, from its own ranks).
    hits = [p["hits"] for p in data["systems"][2]["sweep"]]
    assert hits == sorted(hits, reverse=True)
    png = plots.quality_png(data, tmp_path / "q.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_gptcache_baseline_is_private_and_cleans_up(minilm: Any) -> None:
    with GPTCacheBaseline(minilm) as one, GPTCacheBaseline(minilm) as two:
        one.put("What is Redis?", "a")
        assert one.get("What is Redis?") == "a"
        assert two.get("What is Redis?") is None  # no shared global cache
        folder = one.folder
        assert (folder / "sqlite.db").is_file()
    assert not folder.exists()


def test_auto_compares_a_chinese_file_on_e5_and_refuses_a_mixed_one() -> None:
    from semantic_reuse.tools.bench.quality_compare import route_config

    from ...datasets import ZH_PAIRS

    zh = [LabelledPair(str(i), q1, q2, label) for i, (q1, q2, label) in enumerate(ZH_PAIRS)]
    # The engine routes Chinese to e5: the shared vectors must be e5's, not MiniLM's.
    assert route_config(HandlerConfig(), zh).semantic.embedder == "e5"
    assert route_config(HandlerConfig(), KNOWN).semantic.embedder == "minilm"
    chosen = HandlerConfig.model_validate({"semantic": {"embedder": "minilm"}})
    assert route_config(chosen, zh) is chosen  # an explicit choice is kept
    with pytest.raises(ValueError, match="embedder"):
        route_config(HandlerConfig(), KNOWN + zh)
    result = compare_quality(zh, HandlerConfig(), baseline=True)
    assert result.embedder.startswith("multilingual-e5")
    ours = result.systems[0].default
    # With e5 and the Chinese verifier the paraphrases are served, the look-alikes are not.
    assert ours.correct >= 2
    assert ours.hits - ours.correct == 0
