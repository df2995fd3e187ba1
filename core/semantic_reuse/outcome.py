"""What a request reused: `ReuseInfo` on every answer, `ReuseHit` and `ReuseResult`."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

from semantic_reuse.answer import CachedAnswer


class ReuseKind(enum.StrEnum):
    """How an answer was obtained."""

    EXACT = "exact"  # the same request was answered before
    SEMANTIC = "semantic"  # a paraphrase was answered before
    COMPOSED = "composed"  # every clause of a compound question was answered before
    PARTIAL = "partial"  # some clauses were reused, the others generated
    MISS = "miss"  # generated from scratch


@dataclass(frozen=True, slots=True)
class ClauseOutcome:
    """One clause of a compound question and how it was answered."""

    text: str
    kind: ReuseKind
    tier: str | None = None
    similarity: float | None = None
    matched_prompt: str | None = None
    matched_id: str | None = None
    """The served entry's id (its hash id): what ``ReuseEngine.feedback`` takes."""
    probability: float | None = None
    """The verifier's probability that the served (or best refused) answer is right."""


@dataclass(frozen=True, slots=True)
class ReuseInfo:
    """Carried by every answer: what was reused, from where, how similar."""

    kind: ReuseKind
    tier: str | None = None
    similarity: float | None = None
    matched_prompt: str | None = None
    clauses: tuple[ClauseOutcome, ...] = ()
    hash_id: str | None = None
    refused_by: str | None = None
    elapsed_s: float = 0.0
    saved_s: float = 0.0
    """The generation seconds this reuse saved: reused tokens / the rate measured on misses
    (`semantic_reuse.savings`); 0 for a miss, or before any rate is known."""
    generated_tokens: int = 0
    matched_id: str | None = None
    """The id of the entry a paraphrase hit was served from: give it to
    ``ReuseEngine.feedback`` when the answer turns out wrong."""
    probability: float | None = None
    """With a verifier: its probability that the served (or best refused) answer is right."""

    @property
    def reused(self) -> bool:
        return self.kind is not ReuseKind.MISS

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, for response metadata of the integrations."""
        data = asdict(self)
        data["kind"] = self.kind.value
        data["clauses"] = [{**asdict(c), "kind": c.kind.value} for c in self.clauses]
        return data


@dataclass(frozen=True, slots=True)
class ReuseHit:
    """A reusable answer found by `ReuseEngine.lookup`."""

    answer: CachedAnswer
    info: ReuseInfo

    @property
    def text(self) -> str:
        return self.answer.text


@dataclass(frozen=True, slots=True)
class ReuseResult:
    """The answer to a request, reused or generated, with its `ReuseInfo`."""

    answer: CachedAnswer
    info: ReuseInfo
    clause_answers: tuple[CachedAnswer, ...] = field(default=())

    @property
    def text(self) -> str:
        return self.answer.text
