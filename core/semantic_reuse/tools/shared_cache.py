"""The *shared-cache protocol*: how a reuse decision is measured on labelled question pairs.

Every ``q1`` of a pair file goes into one cache (identical texts stored once, as an exact-key
cache would), with an answer that names its pair; then every ``q2`` is asked against the whole
cache. A hit is *correct* when the cached prompt it returns is its own pair's ``q1`` and the
pair's label is 1, or when it is the very text asked (case and spaces folded): in LCQMC a ``q2``
may be another pair's ``q1``, and that pair's answer is the answer to the question asked. Any
other hit is wrong, another pair's answer for a duplicate question included.

- precision = correct hits / hits
- recall = correct hits / pairs with a correct answer in the cache (labelled 1, or whose
  ``q2`` is a cached text)
- F1 = their harmonic mean
- hit rate = hits / queries
- error rate = wrong hits / queries

:func:`shared_cache_neighbours` finds each ``q2``'s nearest cache entries,
:func:`shared_cache_choices` what a policy serves from them, and :func:`score_choices` the
metrics (:class:`SweepPoint`). Everything here is a pure function of its inputs: the embedding
function is passed in. The sweep over thresholds and the choice of one:
:mod:`~semantic_reuse.tools.calibrate`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from semantic_reuse.semantic.decision import Candidate, ReusePolicy
from semantic_reuse.tools.labelled_pairs import LabelledPair

__all__ = [
    "EmbedFn",
    "Neighbours",
    "SweepPoint",
    "embed_neighbours",
    "exact_entries",
    "score_choices",
    "shared_cache_choices",
    "shared_cache_decisions",
    "shared_cache_neighbours",
]

FloatArray = npt.NDArray[np.float32]
EmbedFn = Callable[[Sequence[str]], "npt.ArrayLike"]


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


def embed_neighbours(pairs: Sequence[LabelledPair], embed: EmbedFn, k: int = 5) -> Neighbours:
    """Embed every ``q1`` and ``q2`` and find each ``q2``'s nearest cache entries."""
    if not pairs:
        raise ValueError("no pairs to calibrate on")
    q1 = embed([p.q1 for p in pairs])
    q2 = embed([p.q2 for p in pairs])
    return shared_cache_neighbours(pairs, q1, q2, k=k)


def exact_entries(pairs: Sequence[LabelledPair], owner: Sequence[int]) -> list[int | None]:
    """For every ``q2``: the cache entry that holds its very text (case and spaces folded), or
    ``None``. In LCQMC a ``q2`` may be another pair's ``q1``; the engine answers it exactly."""
    entry_of_text = {_normalise_text(p.q1): own for p, own in zip(pairs, owner, strict=True)}
    return [entry_of_text.get(_normalise_text(p.q2)) for p in pairs]


def shared_cache_decisions(
    pairs: Sequence[LabelledPair], neighbours: Neighbours, policy: ReusePolicy
) -> list[tuple[int | None, float | None]]:
    """For every ``q2``: the cache entry ``policy`` serves (``None``: a miss) and the
    verifier's probability of its best candidate (``None`` without a verifier). A ``q2`` whose
    very text is cached is served that entry, probability 1: the engine answers it from its
    exact tiers before any policy (:func:`exact_entries`)."""
    decisions: list[tuple[int | None, float | None]] = []
    exact = exact_entries(pairs, neighbours.owner)
    for i, pair in enumerate(pairs):
        if exact[i] is not None:
            decisions.append((exact[i], 1.0))
            continue
        row = neighbours.indices[i]
        cands = [
            Candidate(neighbours.entries[j], float(s), int(j))
            for j, s in zip(row, neighbours.scores[i], strict=True)
        ]
        decision = policy.decide(pair.q2, cands)
        chosen = None if decision.index is None else int(row[decision.index])
        decisions.append((chosen, decision.probability))
    return decisions


def shared_cache_choices(
    pairs: Sequence[LabelledPair], neighbours: Neighbours, policy: ReusePolicy
) -> list[int | None]:
    """The cache entry that ``policy`` serves for every ``q2`` (``None``: a miss)."""
    return [chosen for chosen, _ in shared_cache_decisions(pairs, neighbours, policy)]


def score_choices(
    pairs: Sequence[LabelledPair],
    owner: Sequence[int],
    choices: Sequence[int | None],
    threshold: float = 0.0,
    margin: float = 0.0,
) -> SweepPoint:
    """Count hits and correct hits: a hit is correct when it is the pair's own ``q1``
    entry and the pair is labelled 1, or the entry holding the ``q2`` text itself."""
    if len(owner) != len(pairs):
        raise ValueError(f"need one owner per pair: {len(owner)} for {len(pairs)} pairs")
    identical = exact_entries(pairs, owner)
    hits = correct = positives = 0
    for pair, own, same, choice in zip(pairs, owner, identical, choices, strict=True):
        positives += pair.label == 1 or same is not None
        if choice is None:
            continue
        hits += 1
        if (choice == own and pair.label == 1) or choice == same:
            correct += 1
    return SweepPoint(
        threshold=threshold,
        margin=margin,
        queries=len(pairs),
        positives=positives,
        hits=hits,
        correct=correct,
    )
