"""The reuse decision: may a new prompt take the answer of one of its nearest neighbours?

Given the prompt and its nearest cached prompts (best first, cosine similarity on
normalised embeddings, 1.0 = same), :class:`ReusePolicy` serves the best neighbour that

1. scores at least ``threshold``;
2. passes the :class:`~semantic_reuse.semantic.guard.MatchGuard` (numbers, negation,
   direction, entities). By default only the best neighbour is examined
   (``max_checks=1``): when the guard refuses it, the request is a miss. Walking on to
   the next neighbour (``max_checks > 1``) earned nothing on QQP and served more wrong
   answers on the GPTCache paraphrase set (``benchmarks/guard_study.py``);
3. is not ambiguous: no other neighbour with a *different* answer scores within
   ``margin`` of it. When two cached questions with different answers are about equally
   close, the embedding cannot tell which one was asked, and serving either is a guess.
   Neighbours that the guard refuses are not rivals (they differ in a way that the guard
   already saw); neighbours whose answer is the same (``answer_key`` equal) are not rivals
   either.

With a ``verifier`` (the default engine has one: :mod:`semantic_reuse.semantic.verify`), the
rule is instead: the verifier scores the best candidate at or above ``threshold`` (its cosine
floor), the others above it as its context (rank, gaps), and the best is served when its
probability of being right reaches ``min_probability`` (what the error budget asked for) and
the guard allows it. The margin rule is the verifier's job then: it sees the best's gap to
the others. A lower candidate is never served: doing so when the verifier preferred it gained
nothing on QQP and tripled the wrong answers on GPTCache's mock pairs (docs/benchmarks.md).

The function is pure: it sees the candidates it is given and nothing else, so the engine
calls it after the vector search and the calibration code calls it on labelled data.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from semantic_reuse.errors import InvalidRequestError
from semantic_reuse.semantic.guard import GuardVerdict

__all__ = ["Candidate", "GuardLike", "MatchDecision", "ReusePolicy", "decide_reuse"]


class GuardLike(Protocol):
    """Anything with the guard's ``check`` (a :class:`MatchGuard`, or a test double)."""

    def check(self, query: str, candidate: str) -> GuardVerdict: ...


class VerifierLike(Protocol):
    """Anything that scores candidates (a :class:`~semantic_reuse.semantic.verify.Verifier`)."""

    def best_probability(self, query: str, candidates: Sequence[tuple[str, float]]) -> float: ...

    def threshold_for(self, max_error_rate: float | None) -> float: ...


class Candidate(NamedTuple):
    """A cached prompt found by the vector search."""

    prompt: str
    score: float
    answer_key: Hashable | None = None
    """Identifies the cached answer; candidates with equal keys are not rivals. ``None``:
    every candidate's answer counts as different."""


CandidateLike = Candidate | tuple[str, float] | tuple[str, float, Hashable | None]


@dataclass(frozen=True, slots=True)
class MatchDecision:
    """What the policy decided, and why."""

    index: int | None
    """Position of the served candidate in the input, or ``None`` for no reuse."""
    score: float | None = None
    reason: str = "hit"
    """``hit``, ``no_candidates``, ``below_threshold``, ``guard:<check>`` (every candidate
    above the threshold was refused; the best one's check is named), ``ambiguous`` or
    ``unverified`` (the verifier's best candidate is not probable enough)."""
    detail: str | None = None
    probability: float | None = None
    """The verifier's probability that the served (or best refused) candidate is right."""

    @property
    def hit(self) -> bool:
        return self.index is not None


@dataclass(frozen=True, slots=True)
class ReusePolicy:
    """Threshold + guard + margin. See the module docstring for the rule.

    Args:
        threshold: minimum cosine similarity, in [0, 1].
        margin: a rival with another answer within this distance of the chosen candidate
            makes the match ambiguous (0 disables the check).
        guard: the match guard, or ``None`` to serve on similarity alone.
        max_checks: how many candidates above the threshold the guard may examine, best
            first (1: only the best; if the guard refuses it, no reuse).
        verifier: the second stage, or ``None`` for the threshold/margin rule.
        min_probability: with a verifier, the probability a served candidate needs
            (``inf``: serve nothing).
    """

    threshold: float
    margin: float = 0.0
    guard: GuardLike | None = None
    max_checks: int = 1
    verifier: VerifierLike | None = None
    min_probability: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise InvalidRequestError(f"threshold must be in [0, 1], not {self.threshold!r}")
        if not 0.0 <= self.margin <= 1.0:
            raise InvalidRequestError(f"margin must be in [0, 1], not {self.margin!r}")
        if self.max_checks < 1:
            raise InvalidRequestError(f"max_checks must be >= 1, not {self.max_checks!r}")
        if not self.min_probability >= 0.0:  # NaN fails too
            raise InvalidRequestError(f"min_probability must be >= 0, not {self.min_probability!r}")

    def decide(self, query: str, candidates: Sequence[CandidateLike]) -> MatchDecision:
        """Pick the candidate to serve for ``query``; ``candidates`` in any order."""
        if not candidates:
            return MatchDecision(None, None, "no_candidates")
        cands = [_as_candidate(c) for c in candidates]
        order = sorted(range(len(cands)), key=lambda i: -cands[i].score)
        best = cands[order[0]].score
        if best < self.threshold:
            return MatchDecision(None, best, "below_threshold")
        if self.verifier is not None:
            return self._verified(self.verifier, query, cands, order)

        verdicts: dict[int, GuardVerdict] = {}

        def allowed(i: int) -> GuardVerdict:
            if self.guard is None:
                return GuardVerdict(True)
            if i not in verdicts:
                verdicts[i] = self.guard.check(query, cands[i].prompt)
            return verdicts[i]

        chosen: int | None = None
        first_refusal: GuardVerdict | None = None
        for i in order[: self.max_checks]:
            if cands[i].score < self.threshold:
                break
            verdict = allowed(i)
            if verdict.allowed:
                chosen = i
                break
            if first_refusal is None:
                first_refusal = verdict
        if chosen is None:
            if first_refusal is not None:
                return MatchDecision(
                    None, best, f"guard:{first_refusal.reason}", first_refusal.detail
                )
            return MatchDecision(None, best, "below_threshold")

        top = cands[chosen]
        if self.margin > 0.0:
            for i in order:
                if i == chosen:
                    continue
                rival = cands[i]
                if rival.score < top.score - self.margin:
                    break
                if top.answer_key is not None and rival.answer_key == top.answer_key:
                    continue
                if rival.prompt == top.prompt:
                    continue
                if not allowed(i).allowed:
                    continue
                return MatchDecision(
                    None, top.score, "ambiguous", f"{rival.score:.3f} vs {top.score:.3f}"
                )
        return MatchDecision(chosen, top.score, "hit")

    def _verified(
        self, verifier: VerifierLike, query: str, cands: list[Candidate], order: list[int]
    ) -> MatchDecision:
        eligible = [i for i in order if cands[i].score >= self.threshold]
        chosen = eligible[0]  # the best by cosine; the others are the verifier's context
        probability = verifier.best_probability(
            query, [(cands[i].prompt, cands[i].score) for i in eligible]
        )
        top = cands[chosen]
        # The guard vetoes a verified candidate, and names why an unverified one differs:
        # "guard:numbers" tells a user more than "unverified".
        verdict = self.guard.check(query, top.prompt) if self.guard is not None else None
        if verdict is not None and not verdict.allowed:
            reason = f"guard:{verdict.reason}"
            return MatchDecision(None, top.score, reason, verdict.detail, probability)
        if probability < self.min_probability:
            return MatchDecision(None, top.score, "unverified", None, probability)
        return MatchDecision(chosen, top.score, "hit", None, probability)


def decide_reuse(
    query: str,
    candidates: Sequence[CandidateLike],
    threshold: float,
    margin: float = 0.0,
    guard: GuardLike | None = None,
) -> int | None:
    """The index of the candidate to serve for ``query``, or ``None``.

    A shorthand for ``ReusePolicy(threshold, margin, guard).decide(...).index``.
    """
    return ReusePolicy(threshold, margin, guard).decide(query, candidates).index


def _as_candidate(value: CandidateLike) -> Candidate:
    if isinstance(value, Candidate):
        return value
    if len(value) == 2:
        return Candidate(value[0], float(value[1]))
    return Candidate(value[0], float(value[1]), value[2])
