"""From lookups to a decision, and from a decision to an answer.

`Plan` collects what the lookups found for a request (the whole prompt and, for a
compound question, each clause); `Plan.decision()` names the outcome; `compose()`
generates what is missing through the backend (clauses concurrently) and streams the
answer in clause order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from semantic_reuse.answer import CachedAnswer
from semantic_reuse.backend import Backend, Delta
from semantic_reuse.lifecycle import StorePolicy, joined
from semantic_reuse.metrics import Metrics
from semantic_reuse.outcome import ClauseOutcome, ReuseInfo, ReuseKind, ReuseResult
from semantic_reuse.request import ReuseRequest
from semantic_reuse.semantic.search import SimilaritySearchResult

CLAUSE_SEPARATOR = "\n\n"
FloatVector = npt.NDArray[np.float32]


@dataclass
class _Part:
    """The whole prompt or one clause: its request and what was found for it."""

    request: ReuseRequest
    answer: CachedAnswer | None = None
    kind: ReuseKind = ReuseKind.MISS
    tier: str | None = None
    similarity: float | None = None
    matched_prompt: str | None = None
    matched_id: str | None = None
    probability: float | None = None
    refused_by: str | None = None

    def outcome(self) -> ClauseOutcome:
        return ClauseOutcome(
            self.request.semantic_text, self.kind, self.tier, self.similarity,
            self.matched_prompt, self.matched_id, self.probability,
        )  # fmt: skip


@dataclass
class Plan:
    """What the lookups found; filled in by the engine's analysis."""

    request: ReuseRequest
    whole: _Part = field(init=False)
    clauses: list[_Part] = field(default_factory=list)
    vectors: dict[str, FloatVector] = field(default_factory=dict)
    refused_by: str | None = None
    epoch: int = 0
    """The namespace's epoch when the lookup began (what stored answers are stamped with)."""
    started_at: float | None = None
    """Wall-clock time the lookup began."""
    store_as: StorePolicy | None = None
    """What the answers this request stores carry (set by the pipeline from its options)."""

    def __post_init__(self) -> None:
        self.whole = _Part(self.request)

    @property
    def answer(self) -> CachedAnswer | None:
        return self.whole.answer

    def set_exact(self, answer: CachedAnswer, tier: str) -> None:
        self.whole = _Part(self.request, answer, ReuseKind.EXACT, tier, 1.0)

    def set_whole(self, result: SimilaritySearchResult, *, refuse: str | None = None) -> None:
        """Record the whole prompt's search; `refuse` names a reason to serve nothing."""
        self._apply(self.whole, result, refuse)

    def set_clauses(
        self, requests: list[ReuseRequest], exacts: list[tuple[CachedAnswer, str] | None]
    ) -> None:
        self.clauses = []
        for request, exact in zip(requests, exacts, strict=True):
            part = _Part(request)
            if exact is not None:
                part.answer, part.tier = exact
                part.kind, part.similarity = ReuseKind.EXACT, 1.0
            self.clauses.append(part)

    def set_clause_search(self, index: int, result: SimilaritySearchResult) -> None:
        self._apply(self.clauses[index], result)

    def _apply(
        self, part: _Part, result: SimilaritySearchResult, refuse: str | None = None
    ) -> None:
        if result.vector is not None:
            self.vectors[part.request.hash_id] = result.vector
        best = result.best
        part.probability = result.decision.probability
        if best is None or refuse is not None:
            part.refused_by = refuse or result.decision.reason
            if result.candidates:
                part.similarity = result.candidates[0].similarity
                part.matched_prompt = result.candidates[0].prompt
            return
        part.answer, part.kind, part.tier = best.answer, ReuseKind.SEMANTIC, "vector"
        part.similarity, part.matched_prompt = best.similarity, best.prompt
        part.matched_id = best.id

    @property
    def kind(self) -> ReuseKind:
        if self.whole.answer is not None:
            return self.whole.kind
        found = sum(c.answer is not None for c in self.clauses)
        if self.clauses and found == len(self.clauses):
            return ReuseKind.COMPOSED
        return ReuseKind.PARTIAL if found else ReuseKind.MISS

    def decision(self, elapsed_s: float) -> ReuseDecision:
        kind = self.kind
        answer = self.whole.answer
        if kind is ReuseKind.COMPOSED:
            answer = join_answers([c.answer for c in self.clauses if c.answer], self.request)
        info = ReuseInfo(
            kind=kind,
            tier=self.whole.tier,
            similarity=self.whole.similarity,
            matched_prompt=self.whole.matched_prompt,
            clauses=tuple(c.outcome() for c in self.clauses),
            hash_id=self.request.hash_id,
            refused_by=self.refused_by or self.whole.refused_by,
            elapsed_s=elapsed_s,
            matched_id=self.whole.matched_id,
            probability=self.whole.probability,
        )
        return ReuseDecision(kind, answer, info, self)

    def _generated(self, result: ReuseResult) -> list[tuple[ReuseRequest, CachedAnswer]]:
        return [
            (part.request, answer)
            for part, answer in zip(self.clauses, result.clause_answers, strict=False)
            if part.answer is None
        ]

    def policy(self) -> StorePolicy:
        """`store_as`, else the lookup's epoch and start alone."""
        return self.store_as or StorePolicy(epoch=self.epoch, started_at=self.started_at)

    def reused(self, result: ReuseResult) -> list[CachedAnswer]:
        """The answers this request took from the cache (the whole, or reused clauses)."""
        if result.info.kind in (ReuseKind.EXACT, ReuseKind.SEMANTIC):
            return [result.answer]
        return [c.answer for c in self.clauses if c.answer is not None]

    def generated(self, result: ReuseResult) -> list[CachedAnswer]:
        """The answers this request generated (the whole, or the missing clauses)."""
        if result.info.kind is ReuseKind.MISS:
            return [result.answer]
        return [answer for _, answer in self._generated(result)]

    def exact_writes(self, result: ReuseResult) -> list[tuple[ReuseRequest, CachedAnswer]]:
        """Exact-tier entries to write after answering: the whole (unless it came from an
        exact tier already) and every generated clause."""
        whole = [] if result.info.kind is ReuseKind.EXACT else [(self.request, result.answer)]
        return [w for w in whole + self._generated(result) if storable(w[1])]

    def vector_writes(self, result: ReuseResult) -> list[tuple[ReuseRequest, CachedAnswer]]:
        """Durable records to write: the whole unless it was itself a reused record
        (chains of paraphrases drift), and every generated clause."""
        reused = result.info.kind in (ReuseKind.EXACT, ReuseKind.SEMANTIC)
        whole = [] if reused else [(self.request, result.answer)]
        return [w for w in whole + self._generated(result) if storable(w[1])]


#: Finish reasons of answers worth keeping: a natural stop, or the token limit the request set
#: (the same request asks for the same limit). Aborted, failed, filtered answers and tool calls
#: are never stored.
STORABLE_FINISH_REASONS = frozenset({"stop", "length", "tool_calls"})


def storable(answer: CachedAnswer) -> bool:
    """Only complete answers are stored (see `STORABLE_FINISH_REASONS`), and never empty ones
    (an answer that is only tool calls, in its metadata, is not empty)."""
    filled = bool(answer.text.strip()) or bool(answer.metadata.get("tool_calls"))
    return filled and answer.finish_reason in STORABLE_FINISH_REASONS


@dataclass(frozen=True)
class ReuseDecision:
    """What `ReuseEngine.analyze` found: the kind, the complete answer if any, per-clause
    outcomes in `info.clauses`."""

    kind: ReuseKind
    answer: CachedAnswer | None
    info: ReuseInfo
    plan: Plan = field(repr=False, compare=False)

    @property
    def clauses(self) -> tuple[ClauseOutcome, ...]:
        return self.info.clauses


def join_answers(answers: list[CachedAnswer], request: ReuseRequest) -> CachedAnswer:
    """One answer from clause answers, in order (token ids are per clause, so not kept)."""
    usage = {"completion_tokens": sum(a.usage.get("completion_tokens", 0) for a in answers)}
    answer = CachedAnswer(
        CLAUSE_SEPARATOR.join(a.text.strip() for a in answers),
        finish_reason="stop",
        usage=usage,
        source_prompt=request.semantic_text,
        metadata={"composed_of": len(answers)},
    )
    return joined(answer, answers)


async def _pump(backend: Backend, request: ReuseRequest, queue: asyncio.Queue[object]) -> None:
    try:
        async for item in backend.stream(request):
            await queue.put(item)
    except BaseException as exc:
        await queue.put(exc)
        raise


async def compose(
    decision: ReuseDecision, backend: Backend, metrics: Metrics
) -> AsyncGenerator[Delta | ReuseResult, None]:
    """Generate what `decision` lacks; yield `Delta`s, then the `ReuseResult`. The backend's
    own output objects ride along (`Delta.native`) when the whole prompt is generated."""
    plan = decision.plan
    parts = plan.clauses or [plan.whole]
    queues: dict[int, asyncio.Queue[object]] = {}
    tasks: list[asyncio.Task[None]] = []
    for i, part in enumerate(parts):
        if part.answer is None:
            queues[i] = asyncio.Queue()
            tasks.append(asyncio.ensure_future(_pump(backend, part.request, queues[i])))
    answers: list[CachedAnswer] = []
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        for i, part in enumerate(parts):
            if i:
                yield Delta(CLAUSE_SEPARATOR)
            if part.answer is not None:
                answers.append(part.answer)
                yield Delta(part.answer.text.strip() if plan.clauses else part.answer.text)
                continue
            while True:
                item = await queues[i].get()
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, CachedAnswer):
                    answers.append(item)
                    break
                if isinstance(item, str) and item:
                    yield Delta(item)
                elif isinstance(item, Delta):
                    yield item if not plan.clauses else Delta(item.text)
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
    metrics.observe("stage_seconds", loop.time() - start, stage="generate")
    answer = join_answers(answers, plan.request) if plan.clauses else answers[0]
    generated = sum(
        len(a.token_ids) or a.usage.get("completion_tokens", 0)
        for p, a in zip(parts, answers, strict=True)
        if p.answer is None
    )
    info = ReuseInfo(
        kind=decision.kind,
        clauses=decision.info.clauses,
        hash_id=plan.request.hash_id,
        refused_by=decision.info.refused_by,
        elapsed_s=decision.info.elapsed_s + loop.time() - start,
        generated_tokens=generated,
    )
    yield ReuseResult(answer, info, tuple(answers) if plan.clauses else ())
