"""Calibration metrics under the shared-cache protocol, on tiny hand-made pair sets whose
answers are worked out by hand. The embedding function is a table of hand-placed unit
vectors (an input of the calibration functions, like any embedder)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from semantic_reuse.semantic.guard import MatchGuard
from semantic_reuse.tools.calibrate import (
    LabelledPair,
    SweepPoint,
    calibrate,
    choose_threshold,
    default_thresholds,
    embed_neighbours,
    load_pairs,
    score_choices,
    shared_cache_neighbours,
    sweep,
)

DIM = 8


def unit(*parts: tuple[int, float]) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    for axis, value in parts:
        v[axis] = value
    return v / np.linalg.norm(v)


def side(c: float) -> float:
    return math.sqrt(1 - c * c)


# Four pairs, one cache of their q1s:
#  A: a paraphrase (label 1); A2's nearest entry is A1 (0.99)           -> correct hit
#  B: a non-duplicate (label 0); B2's nearest is B1 (0.94)              -> wrong hit
#  C: a duplicate (label 1), but C2 is nearer A1 (0.96) than C1 (0.90)  -> wrong hit
#  D: a duplicate (label 1) that embeds far apart (0.5)                 -> miss
PAIRS = [
    LabelledPair(
        "A", "How do I reset my password?", "I forgot my password, how do I change it?", 1
    ),
    LabelledPair("B", "What is 2+2?", "What is 2+3?", 0),
    LabelledPair("C", "How do I learn Python?", "What's the best way to learn Python?", 1),
    LabelledPair("D", "Where is Paris?", "Where is Paris located?", 1),
]
VECTORS = {
    PAIRS[0].q1: unit((0, 1.0)),
    PAIRS[0].q2: unit((0, 0.99), (1, side(0.99))),
    PAIRS[1].q1: unit((2, 1.0)),
    PAIRS[1].q2: unit((2, 0.94), (3, side(0.94))),
    PAIRS[2].q1: unit((0, 0.9375), (6, side(0.9375))),
    PAIRS[2].q2: unit((0, 0.96), (5, side(0.96))),
    PAIRS[3].q1: unit((7, 1.0)),
    PAIRS[3].q2: unit((7, 0.5), (1, side(0.5))),
}


def embed(texts: Sequence[str]) -> np.ndarray:
    return np.stack([VECTORS[t] for t in texts])


def point(threshold: float, margin: float = 0.0, guard: MatchGuard | None = None) -> SweepPoint:
    (p,) = sweep(PAIRS, embed, thresholds=[threshold], margin=margin, guard=guard)
    return p


def test_fixture_geometry() -> None:
    nb = embed_neighbours(PAIRS, embed, k=4)
    assert nb.owner == (0, 1, 2, 3)
    assert [int(r[0]) for r in nb.indices] == [0, 1, 0, 3]
    assert nb.scores[:, 0] == pytest.approx([0.99, 0.94, 0.96, 0.5], abs=1e-5)
    assert nb.scores[2, 1] == pytest.approx(0.9, abs=1e-5)  # C2 -> C1
    assert nb.scores[0, 1] == pytest.approx(0.99 * 0.9375, abs=1e-5)  # A2 -> C1


def test_metrics_by_hand() -> None:
    p = point(0.8)
    # hits: A (correct), B (label 0), C (another pair's answer); D misses
    assert (p.queries, p.positives, p.hits, p.correct, p.wrong) == (4, 3, 3, 1, 2)
    assert p.precision == pytest.approx(1 / 3)
    assert p.recall == pytest.approx(1 / 3)
    assert p.f1 == pytest.approx(1 / 3)
    assert p.hit_rate == pytest.approx(3 / 4)
    assert p.error_rate == pytest.approx(2 / 4)


def test_another_pairs_answer_is_wrong_even_when_the_label_is_1() -> None:
    p = point(0.95)  # B (0.94) misses; A and C hit, C with A's answer
    assert (p.hits, p.correct) == (2, 1)
    assert p.precision == pytest.approx(0.5)
    assert p.recall == pytest.approx(1 / 3)
    assert p.f1 == pytest.approx(0.4)
    assert p.error_rate == pytest.approx(1 / 4)


def test_high_thresholds() -> None:
    p = point(0.97)
    assert (p.hits, p.correct, p.precision) == (1, 1, 1.0)
    assert p.recall == pytest.approx(1 / 3)
    assert p.f1 == pytest.approx(0.5)
    none = point(0.999)
    assert (none.hits, none.correct, none.precision, none.recall, none.f1) == (0, 0, 1.0, 0.0, 0.0)
    assert (none.hit_rate, none.error_rate) == (0.0, 0.0)


def test_guard_refuses_the_number_change() -> None:
    p = point(0.8, guard=MatchGuard())  # "2+2" / "2+3" is no longer served
    assert (p.hits, p.correct) == (2, 1)
    assert p.precision == pytest.approx(0.5)
    assert p.error_rate == pytest.approx(1 / 4)


def test_margin_refuses_ambiguous_matches() -> None:
    # A2: A1 0.99 vs C1 0.928 (gap 0.062); C2: A1 0.96 vs C1 0.90 (gap 0.06)
    assert point(0.8, margin=0.05).hits == 3
    p = point(0.8, margin=0.07)  # both ambiguous, B alone is served (and wrong)
    assert (p.hits, p.correct, p.precision, p.error_rate) == (1, 0, 0.0, 0.25)


def test_calibrate_picks_the_best_f1_that_reaches_the_target() -> None:
    grid = [0.8, 0.9, 0.95, 0.97, 0.999]
    result = calibrate(PAIRS, embed, 0.5, thresholds=grid)
    assert result.met
    assert result.threshold == 0.97
    assert result.point is not None
    assert result.point.f1 == pytest.approx(0.5)
    assert [p.threshold for p in result.sweep] == grid
    assert [p.hits for p in result.sweep] == [3, 3, 2, 1, 0]
    best = result.best_f1
    assert best is not None
    assert best.threshold == 0.97
    # A lower target still prefers the better F1; precision 1.0 is reachable too.
    assert calibrate(PAIRS, embed, 0.3, thresholds=grid).threshold == 0.97
    assert calibrate(PAIRS, embed, 1.0, thresholds=grid).threshold == 0.97


def test_calibrate_reports_an_unreachable_target() -> None:
    wrong_only = [PAIRS[1], PAIRS[2]]  # at 0.5: B wrong, C right (P 0.5); at 0.95: no hit
    result = calibrate(wrong_only, embed, 0.9, thresholds=[0.5, 0.95])
    assert not result.met
    assert result.threshold is None
    assert result.point is None
    assert len(result.sweep) == 2
    with pytest.raises(ValueError, match="target_precision"):
        calibrate(PAIRS, embed, 1.5)


def test_choose_threshold_ties_prefer_the_lower_threshold() -> None:
    a = SweepPoint(0.8, 0.0, 10, 5, 4, 3)
    b = SweepPoint(0.9, 0.0, 10, 5, 4, 3)
    assert choose_threshold([b, a], 0.7) is a
    assert choose_threshold([a, b], 0.8) is None


def test_identical_q1_texts_are_cached_once_and_serve_both_pairs() -> None:
    pairs = [
        LabelledPair("1", "What is Redis?", "What's Redis?", 1),
        LabelledPair("2", "what is  redis?", "Tell me what Redis is", 1),
        LabelledPair("3", "What is Qdrant?", "What's Qdrant?", 0),
    ]
    base = {
        "What is Redis?": unit((0, 1.0)),
        "what is  redis?": unit((0, 1.0)),
        "What's Redis?": unit((0, 0.98), (1, side(0.98))),
        "Tell me what Redis is": unit((0, 0.95), (2, side(0.95))),
        "What is Qdrant?": unit((3, 1.0)),
        "What's Qdrant?": unit((3, 0.97), (4, side(0.97))),
    }

    def table(texts: Sequence[str]) -> np.ndarray:
        return np.stack([base[t] for t in texts])

    nb = embed_neighbours(pairs, table, k=2)
    assert nb.entries == ("What is Redis?", "What is Qdrant?")
    assert nb.owner == (0, 0, 1)
    (p,) = sweep(pairs, table, thresholds=[0.9])
    assert (p.hits, p.correct, p.positives) == (3, 2, 2)
    assert p.recall == 1.0
    assert p.precision == pytest.approx(2 / 3)


def test_score_choices_directly() -> None:
    owner = [0, 1, 2, 3]
    p = score_choices(PAIRS, owner, [0, None, 0, 3], threshold=0.5, margin=0.01)
    # A correct, B miss, C wrong (A's entry), D correct
    assert (p.hits, p.correct, p.wrong, p.threshold, p.margin) == (3, 2, 1, 0.5, 0.01)
    assert p.as_dict()["error_rate"] == 0.25
    with pytest.raises(ValueError, match="shorter"):
        score_choices(PAIRS, owner, [0, None])


def test_a_hit_on_the_very_text_asked_is_correct_whatever_the_label() -> None:
    """LCQMC has q2 texts equal to another pair's q1: that pair's answer answers the
    question asked, even when this pair is labelled 0, and such a pair counts as answerable."""
    pairs = [
        LabelledPair("X", "How tall is Everest?", "How high is Mount Everest?", 1),
        LabelledPair("Y", "What is the capital of Peru?", "how tall is  everest?", 0),
        LabelledPair("Z", "Who wrote Hamlet?", "Who wrote Macbeth?", 0),
    ]
    owner = [0, 1, 2]
    p = score_choices(pairs, owner, [0, 0, 2])
    # X right (own, label 1); Y right (the entry holding its own text); Z wrong
    assert (p.hits, p.correct, p.positives) == (3, 2, 2)
    assert score_choices(pairs, owner, [None, 1, None]).correct == 0  # Y's own q1: wrong


def test_neighbours_validate_their_input() -> None:
    q = embed([p.q1 for p in PAIRS])
    with pytest.raises(ValueError, match="one q1 and one q2"):
        shared_cache_neighbours(PAIRS, q[:2], q)
    with pytest.raises(ValueError, match="2-D"):
        shared_cache_neighbours(PAIRS, q[0], q)
    with pytest.raises(ValueError, match="k must be"):
        shared_cache_neighbours(PAIRS, q, q, k=0)
    with pytest.raises(ValueError, match="no pairs"):
        embed_neighbours([], embed)
    # Vectors need not be normalised: they are scaled to unit length.
    nb = shared_cache_neighbours(PAIRS, q * 3.0, embed([p.q2 for p in PAIRS]) * 0.5, k=1)
    assert nb.scores[0, 0] == pytest.approx(0.99, abs=1e-5)


def test_load_pairs(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    rows = [
        {"id": "x", "q1": "a", "q2": "b", "label": 1, "lang": "en"},
        {"q1": "c", "q2": "d", "label": 0},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    assert load_pairs(path) == [
        LabelledPair("x", "a", "b", 1, "en"),
        LabelledPair("2", "c", "d", 0, "en"),
    ]
    path.write_text(json.dumps({"q1": "a", "q2": "b", "label": 2}), encoding="utf-8")
    with pytest.raises(ValueError, match="label must be 0 or 1"):
        load_pairs(path)
    path.write_text(json.dumps({"q1": "a", "label": 1}), encoding="utf-8")
    with pytest.raises(ValueError, match="not a labelled pair"):
        load_pairs(path)


def test_default_thresholds() -> None:
    grid = default_thresholds()
    assert grid[0] == 0.5
    assert grid[-1] == 0.99
    assert len(grid) == 50
    assert default_thresholds(0.9, 1.0, 0.05) == [0.9, 0.95, 1.0]


def test_a_cached_text_is_served_exactly_before_any_policy_and_left_out_of_training() -> None:
    """As the engine answers a question whose very text is cached from its exact tiers, the
    replays serve it with probability 1 whatever the policy, and the verifier's training and
    calibration leave it out (it never sees it; counting it wrong taught it the opposite)."""
    from semantic_reuse.semantic.decision import ReusePolicy
    from semantic_reuse.semantic.verify import Verifier
    from semantic_reuse.tools.shared_cache import exact_entries, shared_cache_decisions
    from semantic_reuse.tools.train_verifier import TrainOptions, replay

    pairs = [
        LabelledPair("X", "How tall is Everest?", "How high is Mount Everest?", 1),
        LabelledPair("Y", "What is the capital of Peru?", "how tall is  everest?", 0),
    ]
    vectors = {
        pairs[0].q1: unit((0, 1.0)),
        pairs[0].q2: unit((0, 0.95), (1, side(0.95))),
        pairs[1].q1: unit((2, 1.0)),
        pairs[1].q2: unit((0, 1.0)),
    }
    q1 = np.stack([vectors[p.q1] for p in pairs])
    q2 = np.stack([vectors[p.q2] for p in pairs])
    neighbours = shared_cache_neighbours(pairs, q1, q2, k=2)
    assert exact_entries(pairs, neighbours.owner) == [None, 0]
    verifier = Verifier.bundled("en")
    # A bar no candidate can reach: only the exact answer is served.
    never = ReusePolicy(verifier.floor, 0.0, MatchGuard(), verifier=verifier, min_probability=1.5)
    decisions = shared_cache_decisions(pairs, neighbours, never)
    assert decisions[0][0] is None
    assert decisions[1] == (0, 1.0)
    rows = replay(pairs, np.concatenate([q1, q2]), MatchGuard(), verifier.weights,
                  TrainOptions(name="t"))  # fmt: skip
    assert set(rows.query.tolist()) == {0}  # Y's question is not a training row
    assert rows.positives == 1
