"""Verifier files name their own columns: the English one reads the base features as it always
did, the Chinese one adds the lookup-time text features (``context_features``), and
`semantic-reuse train-verifier` chooses between them (the engine with the Chinese file:
test_routing.py). Real files, real MiniLM."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from semantic_reuse.errors import ConfigurationError
from semantic_reuse.semantic.guard import MatchGuard
from semantic_reuse.semantic.verify import FEATURE_NAMES, TEXT_EXTRAS, FeatureSet, Verifier
from semantic_reuse.semantic.verify.context_features import KNOWN_FEATURES, text_extras

from ...datasets import EN_DUPLICATES, EN_NEGATIVES, MOCK_DUPLICATES


def _bundled_data(language: str) -> dict[str, Any]:
    name = {"en": "verifier-en.json", "zh": "verifier-zh.json"}[language]
    folder = resources.files("semantic_reuse.semantic.verify").joinpath("weights")
    data: dict[str, Any] = json.loads(folder.joinpath(name).read_text(encoding="utf-8"))
    return data


# (query, [(cached question, cosine), ...]) with fixed cosines: no embedder in the way.
EN_CASES = [
    ("How can I reset my password?", [("How do I reset my password?", 0.93)]),
    (
        "How do I learn Python fast for data science?",
        [("How do I learn Python?", 0.84), ("What is data science?", 0.71),
         ("How fast is Python?", 0.66)],
    ),
    ("What is the capital of France?", [("Which city is the capital of France?", 0.9),
                                        ("What is the capital of Spain?", 0.8)]),
]  # fmt: skip
# What the English file gave on EN_CASES before verifier files named their own columns
# (commit 09e544b): the trees' raw scores, `probabilities` and `best_probability`.
EN_RAW_BEFORE = [
    [0.7712791688],
    [-0.0653676477, -3.7699087976, -4.3986831305],
    [-0.0320948207, -2.5363112197],
]
EN_BEFORE = [
    [0.7013888888888888],
    [0.43902439024390244, 0.058823529411764705, 0.006993006993006993],
    [0.43902439024390244, 0.11363636363636363],
]
EN_BEST_BEFORE = [0.7013888888888888, 0.43902439024390244, 0.43902439024390244]


def test_the_english_file_loads_unchanged_and_scores_as_before() -> None:
    data = _bundled_data("en")
    assert data["format"] == "semantic-reuse-verifier/1"
    assert data["features"] == list(FEATURE_NAMES)
    verifier = Verifier.from_dict(data)
    assert verifier.features.names == FEATURE_NAMES
    before = zip(EN_CASES, EN_RAW_BEFORE, EN_BEFORE, EN_BEST_BEFORE, strict=True)
    for (query, candidates), raw, probabilities, best in before:
        rows = verifier.features.rows(verifier.guard, verifier.weights, query, candidates)
        assert verifier.ensemble.raw(rows).tolist() == pytest.approx(raw, abs=1e-9)
        assert verifier.probabilities(query, candidates).tolist() == pytest.approx(
            probabilities, abs=1e-12
        )
        assert verifier.best_probability(query, candidates) == pytest.approx(best, abs=1e-12)
    # Written out again, it is the same document (the on-disk format did not move).
    assert json.loads(json.dumps(verifier.to_dict())) == data


def test_an_unknown_or_inconsistent_feature_list_is_refused() -> None:
    data = _bundled_data("en")
    with pytest.raises(ConfigurationError, match="vibes"):
        Verifier.from_dict({**data, "features": [*FEATURE_NAMES, "vibes"]})
    with pytest.raises(ConfigurationError, match="features"):
        Verifier.from_dict({k: v for k, v in data.items() if k != "features"})
    with pytest.raises(ConfigurationError, match="distinct"):
        Verifier.from_dict({**data, "features": [*FEATURE_NAMES, "cosine"]})
    # Fewer names than the trees read: the file contradicts itself.
    with pytest.raises(ConfigurationError, match="inconsistent"):
        Verifier.from_dict({**data, "features": list(FEATURE_NAMES[:3])})


def test_text_extras_are_the_context_of_the_best_candidate() -> None:
    guard = MatchGuard()
    query = "how do I reset my password"
    candidates = [("reset my router", 0.7), ("how to reset my password", 0.9), ("password", 0.6)]
    rows = text_extras(guard, query, candidates)
    named = [dict(zip(TEXT_EXTRAS, row.tolist(), strict=True)) for row in rows]
    assert [r["chars_candidate"] for r in named] == [15, 24, 8]
    assert {r["chars_query"] for r in named} == {len(query)}
    assert named[2]["length_ratio"] == pytest.approx(8 / len(query))
    # Second and third by cosine, whatever the order given.
    assert (named[0]["second_score"], named[0]["third_score"]) == pytest.approx((0.7, 0.6))
    assert named[0]["mean_rest"] == pytest.approx(0.65)
    # The best ("how to reset my password") against the second ("reset my router"): words
    # {my, reset} of 6, bigrams 6 of 24; the question's words {my, reset} of 7.
    assert named[0]["candidates_word_jaccard"] == pytest.approx(2 / 6)
    assert named[0]["candidates_bigram_jaccard"] == pytest.approx(6 / 24)
    assert named[0]["query_second_word_jaccard"] == pytest.approx(2 / 7)
    # Only the candidate's own length differs from row to row: the context is the query's.
    assert (rows[:, 3:] == rows[0, 3:]).all()
    alone = text_extras(guard, query, [candidates[1]])
    assert alone[0, 3:].tolist() == [0.0] * 7  # no second candidate: no context
    assert text_extras(guard, query, candidates, rows_for=[1]).tolist() == rows[[1]].tolist()


def test_a_feature_set_computes_its_columns_in_its_own_order() -> None:
    guard = MatchGuard()
    verifier = Verifier.bundled("en")
    query, candidates = EN_CASES[1]
    every = FeatureSet.of(KNOWN_FEATURES).rows(guard, verifier.weights, query, candidates)
    assert every.shape == (3, len(FEATURE_NAMES) + len(TEXT_EXTRAS))
    names = ("second_score", "cosine", "chars_query", "word_jaccard")
    picked = FeatureSet.of(names).rows(guard, verifier.weights, query, candidates)
    assert picked.tolist() == every[:, [KNOWN_FEATURES.index(n) for n in names]].tolist()
    with pytest.raises(ConfigurationError, match="cosine"):
        FeatureSet.of(("rank", "gap_to_best")).monotone_cosine()


@pytest.fixture(scope="module")
def chinese() -> Verifier:
    return Verifier.bundled("zh")


def test_the_chinese_file_reads_the_text_features_and_is_monotone_in_the_cosine(
    chinese: Verifier,
) -> None:
    assert chinese.features.names == KNOWN_FEATURES
    assert chinese.card["design"] == {"features": "text", "monotone_cosine": True}
    assert "--features text --monotone-cosine" in chinese.card["command"]
    # Monotone: on real rows, raising the cosine alone never lowers the score.
    rows = chinese.features.rows(
        chinese.guard, chinese.weights, "苹果多少钱一斤？",
        [("香蕉多少钱一斤？", 0.93), ("苹果一斤多少钱？", 0.91), ("苹果好吃吗？", 0.8)],
    )  # fmt: skip
    grid = np.linspace(0.5, 1.0, 26, dtype=np.float32)
    for row in rows:
        swept = np.repeat(row[None, :], len(grid), axis=0)
        swept[:, 0] = grid
        raw = chinese.ensemble.raw(swept)
        assert np.all(np.diff(raw) >= -1e-9)


def _write_pairs(path: Path, prefix: str, rows: list[tuple[str, str, int]]) -> Path:
    lines = [
        json.dumps({"id": f"{prefix}{i}", "q1": q1, "q2": q2, "label": label})
        for i, (q1, q2, label) in enumerate(rows)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_train_verifier_writes_the_design_it_was_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from semantic_reuse.tools.cli import build_parser, main

    monkeypatch.setenv("SEMANTIC_REUSE_BENCH_CACHE", str(tmp_path / "cache"))
    train = _write_pairs(
        tmp_path / "train.jsonl", "t",
        [(a, b, 1) for a, b in EN_DUPLICATES[:6]] + [(a, b, 0) for a, b in EN_NEGATIVES[:16]],
    )  # fmt: skip
    check = _write_pairs(
        tmp_path / "check.jsonl", "c",
        [(a, b, 1) for a, b in EN_DUPLICATES[6:] + MOCK_DUPLICATES]
        + [(a, b, 0) for a, b in EN_NEGATIVES[16:]],
    )  # fmt: skip
    out = tmp_path / "mine.json"
    args = ["train-verifier", "--pairs", str(train), "--calibrate-on", str(check),
            "--out", str(out), "--name", "mine"]  # fmt: skip
    defaults = build_parser().parse_args(args)
    assert (defaults.features, defaults.monotone_cosine) == ("base", False)

    assert main([*args, "--features", "text", "--monotone-cosine"]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["features"] == list(KNOWN_FEATURES)
    assert data["card"]["design"] == {"features": "text", "monotone_cosine": True}
    mine = Verifier.from_file(out)
    assert mine.features.names == KNOWN_FEATURES
    p = mine.probabilities("How can I reset my password?", [("How do I reset my password?", 0.9)])
    assert 0.0 <= float(p[0]) <= 1.0
