"""Calibration of the reuse decision on labelled question pairs.

The measure is the *shared-cache protocol*: every ``q1`` of a pair file goes into one
cache (identical texts stored once, as an exact-key cache would), with an answer that
names its pair; then every ``q2`` is asked against the whole cache. A hit is *correct*
only when the cached prompt it returns is its own pair's ``q1`` (the same text) and the
pair's label is 1; serving another pair's answer is wrong even when the pair's label is 1.

- precision = correct hits / hits
- recall = correct hits / pairs labelled 1
- F1 = their harmonic mean
- hit rate = hits / queries
- error rate = wrong hits / queries

:func:`sweep` computes these over a range of thresholds for a given margin and guard;
:func:`calibrate` picks the threshold with the best F1 among those that reach a target
precision. Everything here is a pure function of its inputs: the embedding function is
passed in, and the guard is only asked about pairs of prompts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from semantic_reuse.semantic.decision import Candidate, GuardLike, ReusePolicy
from semantic_reuse.semantic.guard import GuardVerdict

__all__ = [
    "Calibration",
    "LabelledPair",
    "Neighbours",
    "SweepPoint",
    "calibrate",
    "calibrate_from_neighbours",
    "choose_threshold",
    "default_thresholds",
    "embed_neighbours",
    "load_pairs",
    "score_choices",
    "shared_cache_choices",
    "shared_cache_neighbours",
    "sweep",
    "sweep_neighbours",
]

FloatArray = npt.NDArray[np.float32]
EmbedFn = Callable[[Sequence[str]], "npt.ArrayLike"]


@dataclass(frozen=True, slots=True)
class LabelledPair:
    """Two questions and whether a cached answer to ``q1`` correctly answers ``q2``."""

    id: str
    q1: str
    q2: str
    label: int
    lang: str = "en"


def load_pairs(path: str | Path) -> list[LabelledPair]:
    """Read a pair file: one JSON object a line with ``q1``, ``q2``, ``label`` (0 or 1)
    and optionally ``id`` and ``lang``."""
    pairs: list[LabelledPair] = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            try:
                label = int(row["label"])
                pair = LabelledPair(
                    id=str(row.get("id", number)),
                    q1=str(row["q1"]),
                    q2=str(row["q2"]),
                    label=label,
                    lang=str(row.get("lang", "en")),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{path}:{number}: not a labelled pair ({exc})") from exc
            if label not in (0, 1):
                raise ValueError(f"{path}:{number}: label must be 0 or 1, not {label}")
            pairs.append(pair)
    return pairs


@dataclass(frozen=True, slots=True)
class SweepPoint:
    """The shared-cache metrics at one threshold and margin."""

    threshold: float
    margin: float
    queries: int
    positives: int
    hits: int
    correct: int

    @property
    def wrong(self) -> int:
        return self.hits - self.correct

    @property
    def precision(self) -> float:
        return self.correct / self.hits if self.hits else 1.0

    @property
    def recall(self) -> float:
        return self.correct / self.positives if self.positives else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r > 0 else 0.0

    @property
    def hit_rate(self) -> float:
        return self.hits / self.queries if self.queries else 0.0

    @property
    def error_rate(self) -> float:
        return self.wrong / self.queries if self.queries else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "threshold": round(self.threshold, 4),
            "margin": round(self.margin, 4),
            "queries": self.queries,
            "positives": self.positives,
            "hits": self.hits,
            "correct": self.correct,
            "wrong": self.wrong,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "hit_rate": round(self.hit_rate, 4),
            "error_rate": round(self.error_rate, 4),
        }


@dataclass(frozen=True, slots=True)
class Calibration:
    """The chosen threshold (``None`` when no threshold reaches the target) and the sweep."""

    target_precision: float
    margin: float
    threshold: float | None
    point: SweepPoint | None
    sweep: tuple[SweepPoint, ...]

    @property
    def met(self) -> bool:
        return self.point is not None

    @property
    def best_f1(self) -> SweepPoint | None:
        """The point with the best F1 whatever its precision (for reporting)."""
        return max(self.sweep, key=lambda p: p.f1, default=None)


@dataclass(frozen=True, slots=True)
class Neighbours:
    """For each query (``q2``), its ``k`` nearest cache entries, best first.

    ``entries`` are the cached prompts (the distinct ``q1`` texts), ``owner[i]`` the
    entry that holds pair ``i``'s ``q1``, ``indices[i]`` / ``scores[i]`` the nearest
    entries of pair ``i``'s ``q2`` and their cosine similarities."""

    entries: tuple[str, ...]
    owner: tuple[int, ...]
    indices: npt.NDArray[np.int64]
    scores: FloatArray


def _normalise_text(text: str) -> str:
    return " ".join(text.casefold().split())


def _normalise_rows(vectors: npt.ArrayLike) -> FloatArray:
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D array, not shape {array.shape}")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.asarray(array / norms, dtype=np.float32)


def shared_cache_neighbours(
    pairs: Sequence[LabelledPair],
    q1_vectors: npt.ArrayLike,
    q2_vectors: npt.ArrayLike,
    k: int = 5,
    batch: int = 2048,
) -> Neighbours:
    """Nearest cache entries of every ``q2`` (cosine on normalised vectors).

    ``q1_vectors[i]`` / ``q2_vectors[i]`` embed ``pairs[i].q1`` / ``pairs[i].q2``. The
    cache holds each distinct ``q1`` text once (case and spaces folded), the first pair's
    vector standing for it."""
    if k < 1:
        raise ValueError(f"k must be >= 1, not {k}")
    a = _normalise_rows(q1_vectors)
    b = _normalise_rows(q2_vectors)
    if len(a) != len(pairs) or len(b) != len(pairs):
        raise ValueError("need one q1 and one q2 vector per pair")
    first: dict[str, int] = {}
    owner: list[int] = []
    keep: list[int] = []
    for i, pair in enumerate(pairs):
        key = _normalise_text(pair.q1)
        if key not in first:
            first[key] = len(keep)
            keep.append(i)
        owner.append(first[key])
    cache = a[keep]
    k = min(k, len(keep))
    indices = np.zeros((len(pairs), k), dtype=np.int64)
    scores = np.zeros((len(pairs), k), dtype=np.float32)
    for start in range(0, len(pairs), batch):
        sims = b[start : start + batch] @ cache.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(sims, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        indices[start : start + batch] = np.take_along_axis(top, order, axis=1)
        scores[start : start + batch] = np.take_along_axis(top_scores, order, axis=1)
    return Neighbours(
        entries=tuple(pairs[i].q1 for i in keep),
        owner=tuple(owner),
        indices=indices,
        scores=np.clip(scores, -1.0, 1.0),
    )


class _MemoGuard:
    """Remembers the verdicts of a guard, so a sweep asks about each pair once."""

    def __init__(self, guard: GuardLike) -> None:
        self._guard = guard
        self._verdicts: dict[tuple[str, str], GuardVerdict] = {}

    def check(self, query: str, candidate: str) -> GuardVerdict:
        key = (query, candidate)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._guard.check(query, candidate)
            self._verdicts[key] = verdict
        return verdict


def shared_cache_choices(
    pairs: Sequence[LabelledPair], neighbours: Neighbours, policy: ReusePolicy
) -> list[int | None]:
    """The cache entry that ``policy`` serves for every ``q2`` (``None``: a miss)."""
    choices: list[int | None] = []
    for i, pair in enumerate(pairs):
        row = neighbours.indices[i]
        cands = [
            Candidate(neighbours.entries[j], float(s), int(j))
            for j, s in zip(row, neighbours.scores[i], strict=True)
        ]
        decision = policy.decide(pair.q2, cands)
        choices.append(None if decision.index is None else int(row[decision.index]))
    return choices


def score_choices(
    pairs: Sequence[LabelledPair],
    owner: Sequence[int],
    choices: Sequence[int | None],
    threshold: float = 0.0,
    margin: float = 0.0,
) -> SweepPoint:
    """Count hits and correct hits: a hit is correct when it is the pair's own ``q1``
    entry and the pair is labelled 1."""
    hits = correct = 0
    for pair, own, choice in zip(pairs, owner, choices, strict=True):
        if choice is None:
            continue
        hits += 1
        if choice == own and pair.label == 1:
            correct += 1
    return SweepPoint(
        threshold=threshold,
        margin=margin,
        queries=len(pairs),
        positives=sum(1 for p in pairs if p.label == 1),
        hits=hits,
        correct=correct,
    )


def default_thresholds(start: float = 0.5, stop: float = 0.99, step: float = 0.01) -> list[float]:
    """An evenly spaced grid of thresholds, inclusive of both ends."""
    count = round((stop - start) / step)
    return [round(start + i * step, 6) for i in range(count + 1)]


def sweep_neighbours(
    pairs: Sequence[LabelledPair],
    neighbours: Neighbours,
    *,
    thresholds: Iterable[float],
    margin: float = 0.0,
    guard: GuardLike | None = None,
    max_checks: int = 1,
) -> list[SweepPoint]:
    """Shared-cache metrics at each threshold, from precomputed neighbours."""
    memo = _MemoGuard(guard) if guard is not None else None
    points: list[SweepPoint] = []
    for threshold in thresholds:
        policy = ReusePolicy(threshold, margin, memo, max_checks)
        choices = shared_cache_choices(pairs, neighbours, policy)
        points.append(score_choices(pairs, neighbours.owner, choices, threshold, margin))
    return points


def sweep(
    pairs: Sequence[LabelledPair],
    embed: EmbedFn,
    *,
    thresholds: Iterable[float] | None = None,
    margin: float = 0.0,
    guard: GuardLike | None = None,
    k: int = 5,
) -> list[SweepPoint]:
    """Embed the pairs with ``embed`` (texts -> 2-D array) and sweep the thresholds."""
    neighbours = embed_neighbours(pairs, embed, k=k)
    grid = default_thresholds() if thresholds is None else thresholds
    return sweep_neighbours(pairs, neighbours, thresholds=grid, margin=margin, guard=guard)


def embed_neighbours(pairs: Sequence[LabelledPair], embed: EmbedFn, k: int = 5) -> Neighbours:
    """Embed every ``q1`` and ``q2`` and find each ``q2``'s nearest cache entries."""
    if not pairs:
        raise ValueError("no pairs to calibrate on")
    q1 = embed([p.q1 for p in pairs])
    q2 = embed([p.q2 for p in pairs])
    return shared_cache_neighbours(pairs, q1, q2, k=k)


def choose_threshold(points: Sequence[SweepPoint], target_precision: float) -> SweepPoint | None:
    """The point with the best F1 among those whose precision reaches the target (ties:
    the lower threshold, which serves more)."""
    eligible = [p for p in points if p.hits > 0 and p.precision >= target_precision]
    if not eligible:
        return None
    return max(eligible, key=lambda p: (round(p.f1, 9), -p.threshold))


def calibrate_from_neighbours(
    pairs: Sequence[LabelledPair],
    neighbours: Neighbours,
    target_precision: float,
    *,
    thresholds: Iterable[float] | None = None,
    margin: float = 0.0,
    guard: GuardLike | None = None,
) -> Calibration:
    """:func:`calibrate` on precomputed neighbours."""
    if not 0.0 <= target_precision <= 1.0:
        raise ValueError(f"target_precision must be in [0, 1], not {target_precision!r}")
    grid = default_thresholds() if thresholds is None else list(thresholds)
    points = sweep_neighbours(pairs, neighbours, thresholds=grid, margin=margin, guard=guard)
    point = choose_threshold(points, target_precision)
    return Calibration(
        target_precision=target_precision,
        margin=margin,
        threshold=None if point is None else point.threshold,
        point=point,
        sweep=tuple(points),
    )


def calibrate(
    pairs: Sequence[LabelledPair],
    embed: EmbedFn,
    target_precision: float,
    *,
    thresholds: Iterable[float] | None = None,
    margin: float = 0.0,
    guard: GuardLike | None = None,
    k: int = 5,
) -> Calibration:
    """The threshold that reaches ``target_precision`` with the best F1, and the sweep.

    Args:
        pairs: labelled pairs (see :func:`load_pairs`).
        embed: texts -> 2-D array of embeddings (normalised here).
        target_precision: the least precision acceptable, in [0, 1].
        thresholds: the grid to try (default 0.50 to 0.99 by 0.01).
        margin: the policy's ambiguity margin.
        guard: the match guard (``None``: similarity alone).
        k: how many neighbours the policy sees per query.
    """
    neighbours = embed_neighbours(pairs, embed, k=k)
    return calibrate_from_neighbours(
        pairs, neighbours, target_precision, thresholds=thresholds, margin=margin, guard=guard
    )
