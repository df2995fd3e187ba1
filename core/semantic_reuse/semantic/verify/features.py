"""What the verifier sees of a (question, cached question) pair: cheap signals, no model call.

Every signal comes from what the lookup already has: the cosine of each candidate and its
place among the others (rank, gap to the best and to the next), and the match guard's cached
analysis of each text (words and their stems, Chinese segments, numbers, negation, names).
Words are weighted by how rare they are (:class:`WordWeights`, fitted on the training
questions): two questions that share their rare words ask about the same thing far more often
than two that share only "how", "best" and "way".
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from semantic_reuse.semantic.guard import MatchGuard
from semantic_reuse.semantic.guard.profile import TextProfile

FloatMatrix = npt.NDArray[np.float32]

#: The columns of :func:`pair_features`, in order (a trained model names them in its file).
FEATURE_NAMES: Final = (
    "cosine",
    "rank",
    "gap_to_best",
    "gap_to_next",
    "candidates",
    "word_jaccard",
    "shared_weight_of_query",
    "shared_weight_of_candidate",
    "unshared_weight_query",
    "unshared_weight_candidate",
    "rarest_unshared_query",
    "rarest_unshared_candidate",
    "words_query",
    "words_candidate",
    "char_bigram_jaccard",
    "numbers_differ",
    "numbers_one_sided",
    "negation_differs",
    "names_unshared_query",
    "names_unshared_candidate",
    "direction_swapped",
    "same_first_word",
)


@dataclass(frozen=True, slots=True)
class WordWeights:
    """Inverse document frequency of words (and stems, Chinese segments) in lower case."""

    weights: Mapping[str, float]
    unknown: float

    def __call__(self, word: str) -> float:
        return self.weights.get(word, self.unknown)

    @classmethod
    def fit(cls, profiles: Iterable[TextProfile], *, min_count: int = 2) -> WordWeights:
        """Weights from the texts' profiles; words seen fewer than `min_count` times count as
        unknown (the rarest weight), which also keeps the shipped table small."""
        counts: Counter[str] = Counter()
        n = 0
        for profile in profiles:
            counts.update(profile.words)
            n += 1
        weights = {
            word: round(math.log((n + 1) / (c + 1)) + 1.0, 3)
            for word, c in counts.items()
            if c >= min_count
        }
        return cls(weights, round(math.log((n + 1) / 1.0) + 1.0, 3))

    def to_dict(self) -> dict[str, Any]:
        return {"unknown": self.unknown, "weights": dict(sorted(self.weights.items()))}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WordWeights:
        return cls({str(k): float(v) for k, v in data["weights"].items()}, float(data["unknown"]))


def bigrams(text: str) -> set[str]:
    """The text's character bigrams (the text itself when shorter than two characters)."""
    return {text[i : i + 2] for i in range(len(text) - 1)} or {text}


def pair_features(
    guard: MatchGuard,
    weights: WordWeights,
    query: str,
    candidates: Sequence[tuple[str, float]],
    rows_for: Sequence[int] | None = None,
) -> FloatMatrix:
    """One row of :data:`FEATURE_NAMES` per (candidate prompt, cosine), best first or not;
    with `rows_for`, rows for those candidates only (the others still give rank and gaps)."""
    scores = sorted((s for _, s in candidates), reverse=True)
    best = scores[0] if scores else 0.0
    q = guard.profile(query)
    q_weight = sum(weights(w) for w in q.words) or 1.0
    q_bigrams = bigrams(q.squashed)
    wanted = range(len(candidates)) if rows_for is None else rows_for
    rows = np.zeros((len(wanted), len(FEATURE_NAMES)), dtype=np.float32)
    for i, (prompt, score) in enumerate(candidates[j] for j in wanted):
        c = guard.profile(prompt)
        rank = sum(1 for s in scores if s > score)
        below = [s for s in scores if s < score]
        shared, only_q, only_c = q.words & c.words, q.words - c.words, c.words - q.words
        c_weight = sum(weights(w) for w in c.words) or 1.0
        shared_weight = sum(weights(w) for w in shared)
        c_bigrams = bigrams(c.squashed)
        verdict_numbers = guard.compare_numbers(q, c)
        rows[i] = (
            score,
            rank,
            best - score,
            score - (below[0] if below else 0.0),
            len(candidates),
            len(shared) / max(1, len(q.words | c.words)),
            shared_weight / q_weight,
            shared_weight / c_weight,
            sum(weights(w) for w in only_q),
            sum(weights(w) for w in only_c),
            max((weights(w) for w in only_q), default=0.0),
            max((weights(w) for w in only_c), default=0.0),
            len(q.words),
            len(c.words),
            len(q_bigrams & c_bigrams) / max(1, len(q_bigrams | c_bigrams)),
            float(not verdict_numbers.allowed),
            float(bool(q.numbers) != bool(c.numbers)),
            float(q.negated != c.negated),
            len(q.entities - c.entities),
            len(c.entities - q.entities),
            float(bool(q.directions ^ c.directions) and bool(q.directions and c.directions)),
            float(_first_word(query) == _first_word(prompt)),
        )
    return rows


def _first_word(text: str) -> str:
    for token in text.split():
        word = token.strip("¿¡\"'(").lower()
        if word:
            return word
    return ""
