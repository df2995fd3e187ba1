"""The verifier's optional columns, and which columns a verifier file reads.

:data:`TEXT_EXTRAS` are lookup-time signals beyond :data:`~.features.FEATURE_NAMES`: both
texts' lengths, the cosines of the second and third candidates, and how much the best
candidate overlaps the second (and the question the second): a cache that holds several
near-identical questions is where the best candidate is most often the wrong one. They need
nothing the lookup lacks (no vectors of the candidates). Measured (docs/benchmarks.md,
"Designs measured after the first verifier"): on LCQMC they add 0.03-0.04 of recall at
precision 0.72, outside the bootstrap's noise; on English they trade QQP recall against the
mock pairs', so the English file does without them.

A verifier file names its columns (``"features"``); :class:`FeatureSet` computes exactly
those, in that order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from semantic_reuse.errors import ConfigurationError
from semantic_reuse.semantic.guard import MatchGuard
from semantic_reuse.semantic.verify.features import (
    FEATURE_NAMES,
    FloatMatrix,
    WordWeights,
    bigrams,
    pair_features,
)

#: The columns of :func:`text_extras`, in order.
TEXT_EXTRAS: Final = (
    "chars_query",
    "chars_candidate",
    "length_ratio",
    "second_score",
    "third_score",
    "mean_rest",
    "candidates_word_jaccard",
    "candidates_bigram_jaccard",
    "query_second_word_jaccard",
    "query_second_bigram_jaccard",
)
#: Every column a verifier file may name.
KNOWN_FEATURES: Final = (*FEATURE_NAMES, *TEXT_EXTRAS)
#: The designs `semantic-reuse train-verifier --features` offers.
FEATURE_SETS: Final = {"base": FEATURE_NAMES, "text": KNOWN_FEATURES}


def _jaccard(a: set[str] | frozenset[str], b: set[str] | frozenset[str]) -> float:
    return len(a & b) / max(1, len(a | b))


def text_extras(
    guard: MatchGuard,
    query: str,
    candidates: Sequence[tuple[str, float]],
    rows_for: Sequence[int] | None = None,
) -> FloatMatrix:
    """One row of :data:`TEXT_EXTRAS` per (candidate prompt, cosine), in the order given;
    with `rows_for`, rows for those candidates only. "Second" and "third" are by cosine."""
    order = sorted(range(len(candidates)), key=lambda i: -candidates[i][1])
    scores = [candidates[i][1] for i in order]
    context = [0.0, 0.0, 0.0, 0.0]
    if len(order) > 1:
        q = guard.profile(query)
        best = guard.profile(candidates[order[0]][0])
        second = guard.profile(candidates[order[1]][0])
        context = [
            _jaccard(best.words, second.words),
            _jaccard(bigrams(best.squashed), bigrams(second.squashed)),
            _jaccard(q.words, second.words),
            _jaccard(bigrams(q.squashed), bigrams(second.squashed)),
        ]
    rest = [
        scores[1] if len(scores) > 1 else 0.0,
        scores[2] if len(scores) > 2 else 0.0,
        float(np.mean(scores[1:])) if len(scores) > 1 else 0.0,
    ]
    wanted = range(len(candidates)) if rows_for is None else rows_for
    rows = np.zeros((len(wanted), len(TEXT_EXTRAS)), dtype=np.float32)
    for i, j in enumerate(wanted):
        text = candidates[j][0]
        shorter, longer = sorted((len(query), len(text)))
        rows[i] = (len(query), len(text), shorter / max(1, longer), *rest, *context)
    return rows


@dataclass(frozen=True, slots=True)
class FeatureSet:
    """The columns a verifier reads, by name (a subset of :data:`KNOWN_FEATURES`, any
    order); build it with :meth:`of`, which refuses a name it does not know."""

    names: tuple[str, ...]
    _index: tuple[int, ...] = field(repr=False)
    _extras: bool = field(repr=False)

    @classmethod
    def of(cls, names: Sequence[str]) -> FeatureSet:
        names = tuple(names)
        unknown = [n for n in names if n not in KNOWN_FEATURES]
        if unknown:
            raise ConfigurationError(
                f"unknown verifier feature(s) {unknown}: this version computes "
                f"{list(KNOWN_FEATURES)}"
            )
        if not names or len(set(names)) != len(names):
            raise ConfigurationError(f"verifier features must be distinct and not empty: {names}")
        index = tuple(KNOWN_FEATURES.index(n) for n in names)
        return cls(names, index, any(n in TEXT_EXTRAS for n in names))

    def rows(
        self,
        guard: MatchGuard,
        weights: WordWeights,
        query: str,
        candidates: Sequence[tuple[str, float]],
        rows_for: Sequence[int] | None = None,
    ) -> FloatMatrix:
        """One row of :attr:`names` per candidate (see :func:`pair_features`)."""
        base = pair_features(guard, weights, query, candidates, rows_for)
        if self.names == FEATURE_NAMES:
            return base  # the first verifiers' columns, as they always were
        if self._extras:
            extras = text_extras(guard, query, candidates, rows_for)
            base = np.concatenate([base, extras], axis=1)
        return np.ascontiguousarray(base[:, list(self._index)])

    def monotone_cosine(self) -> list[int]:
        """``monotonic_cst`` for scikit-learn: +1 on the cosine (the probability never falls
        as the cosine rises, all else equal), 0 elsewhere."""
        if "cosine" not in self.names:
            raise ConfigurationError("a verifier monotone in the cosine must read the cosine")
        return [int(n == "cosine") for n in self.names]
