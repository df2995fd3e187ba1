"""The numbers every bench reports: shared-cache scoring and latency summaries.

Pure functions of their inputs, so the tests check them on hand-made cases.

The shared-cache rule (../shared/datasets/README.md): every distinct ``q1`` is cached with an
answer naming its pair (the first pair that holds that text); every ``q2`` is asked. A hit is
*correct* when it returns its own pair's answer and the pair's label is 1, or the answer of the
very text asked (another pair's ``q1`` equal to this ``q2``, as LCQMC has); any other hit is
*wrong*, including another pair's answer for a duplicate question (tools/shared_cache.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from semantic_reuse.tools.calibrate import LabelledPair, SweepPoint, score_choices


def answer_naming(pair_index: int) -> str:
    """The cached answer of the pair at `pair_index` (it names the pair)."""
    return f"pair:{pair_index}"


def cache_owners(pairs: Sequence[LabelledPair]) -> dict[str, int]:
    """Each distinct ``q1`` text and the first pair holding it (identical texts cached once)."""
    owners: dict[str, int] = {}
    for index, pair in enumerate(pairs):
        owners.setdefault(pair.q1, index)
    return owners


def score_answers(
    pairs: Sequence[LabelledPair],
    answers: Sequence[str | None],
    *,
    threshold: float = 0.0,
    margin: float = 0.0,
) -> SweepPoint:
    """Score the answer served for every ``q2`` (None: a miss) under the shared-cache rule."""
    if len(answers) != len(pairs):
        raise ValueError(f"need one answer per pair: {len(answers)} for {len(pairs)} pairs")
    owners = cache_owners(pairs)
    entry_of = {answer_naming(entry): entry for entry in set(owners.values())}
    # A served answer names the entry it came from; one naming no entry is a wrong hit (-1).
    choices = [None if answer is None else entry_of.get(answer, -1) for answer in answers]
    return score_choices(
        pairs, [owners[p.q1] for p in pairs], choices, threshold=threshold, margin=margin
    )


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError(f"q must be within [0, 100], got {q}")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass(frozen=True, slots=True)
class Latency:
    """A latency sample summarised, in milliseconds."""

    count: int
    median_ms: float
    p99_ms: float
    mean_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        ms = [s * 1000.0 for s in seconds]
        mean = sum(ms) / len(ms) if ms else math.nan
        return cls(len(ms), percentile(ms, 50), percentile(ms, 99), mean)

    def as_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "median_ms": _round(self.median_ms),
            "p99_ms": _round(self.p99_ms),
            "mean_ms": _round(self.mean_ms),
        }


def _round(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 3)
