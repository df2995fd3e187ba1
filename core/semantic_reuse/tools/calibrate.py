"""Calibration of the reuse decision on labelled question pairs.

:func:`sweep` computes the shared-cache metrics (:mod:`~semantic_reuse.tools.shared_cache`: the
protocol and its measures) over a range of thresholds for a given margin and guard;
:func:`calibrate` picks the threshold with the best F1 among those that reach a target
precision. Everything here is a pure function of its inputs: the embedding function is
passed in, and the guard is only asked about pairs of prompts.

The pairs (:mod:`~semantic_reuse.tools.labelled_pairs`) and the protocol's names are importable
from here too, where the calibration's users have always found them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from semantic_reuse.semantic.decision import GuardLike, ReusePolicy
from semantic_reuse.semantic.guard import GuardVerdict
from semantic_reuse.tools.labelled_pairs import LabelledPair, load_pairs
from semantic_reuse.tools.shared_cache import (
    EmbedFn,
    Neighbours,
    SweepPoint,
    embed_neighbours,
    score_choices,
    shared_cache_choices,
    shared_cache_neighbours,
)

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
