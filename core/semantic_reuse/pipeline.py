"""The one request pipeline: check -> single-flight -> generate what is missing -> store.

Every frontend runs its requests through `Pipeline.run`: the core API (`ReuseEngine.stream`),
the clients, LangChain, LlamaIndex and `EnhancedAsyncLLM`. A frontend contributes only a
`Backend` (how to generate) and the shape of its outputs; the steps themselves are
`PipelineSteps`, which `Pipeline` implements and a frontend may wrap (vLLM maps the seed's
hook names onto them).

`run` yields, in order: one `Decided` (what the lookups found), `Delta`s of generated or
reused text (a backend's own output object rides along in `Delta.native`), and last the
`ReuseResult`. A complete hit yields no `Delta`: the frontend renders the answer as it streams
(whole, or in chunks). Only complete answers are stored (`storable`), and the store happens
before the `ReuseResult` is yielded.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import time
from collections.abc import AsyncGenerator, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from semantic_reuse._log import logger
from semantic_reuse.analysis import Analyzer, scope_of
from semantic_reuse.answer import AnswerTooLargeError, CachedAnswer, check_answer
from semantic_reuse.backend import Backend, Delta
from semantic_reuse.errors import InvalidRequestError, InvalidTypeError
from semantic_reuse.lifecycle import StorePolicy, renewal
from semantic_reuse.options import ReuseOptions
from semantic_reuse.outcome import ReuseKind, ReuseResult
from semantic_reuse.planning import ReuseDecision, compose, storable
from semantic_reuse.request import ReuseRequest
from semantic_reuse.routes import SemanticComponent
from semantic_reuse.savings import Savings
from semantic_reuse.semantic.search import SimilaritySearchHelper
from semantic_reuse.semantic.store import ScopeFilter
from semantic_reuse.singleflight import SingleFlight


@dataclass(frozen=True, slots=True)
class Decided:
    """The first event of a run: what the lookups found (`decision.answer`: a complete hit)."""

    decision: ReuseDecision


PipelineEvent = Decided | Delta | ReuseResult
VectorItem = tuple[str, str, CachedAnswer, Any]
"""A durable record to add: id, text, answer, the lookup's vector or None."""


class PipelineSteps(Protocol):
    """The steps of one request. `Pipeline` implements them; a frontend may pass its own
    (usually delegating to the pipeline's) to observe or change one step."""

    async def check(self, request: ReuseRequest, options: ReuseOptions) -> ReuseDecision: ...

    def generate(
        self, decision: ReuseDecision, backend: Backend
    ) -> AsyncGenerator[Delta | ReuseResult, None]: ...

    def store_exact(self, decision: ReuseDecision, result: ReuseResult) -> None: ...

    def store_vectors(self, decision: ReuseDecision, result: ReuseResult) -> None: ...


class Pipeline:
    """The request flow of one `ReuseEngine` (its components, single-flight, background
    stores). Frontends call `run`; the steps are public for `PipelineSteps` wrappers."""

    def __init__(self, analyzer: Analyzer, savings: Savings | None = None) -> None:
        self.analyzer = analyzer
        self.config = analyzer.config
        self.cache = analyzer.cache
        self.routes = analyzer.routes
        self.metrics = analyzer.metrics
        self.savings = savings or Savings(metrics=analyzer.metrics)
        self._flights: SingleFlight[ReuseResult] = SingleFlight()
        self._background: set[asyncio.Task[None]] = set()

    async def run(
        self,
        request: ReuseRequest,
        backend: Backend,
        options: ReuseOptions,
        steps: PipelineSteps | None = None,
    ) -> AsyncGenerator[PipelineEvent, None]:
        """One request, start to end (see the module docstring for the events)."""
        step = steps or self
        decision = await step.check(request, options)
        yield Decided(decision)
        if decision.answer is not None:
            result = ReuseResult(decision.answer, decision.info)
            step.store_exact(decision, result)
            step.store_vectors(decision, result)
            yield self.account(decision, result)
            return
        started = time.perf_counter()
        with self._flights.lead(request.hash_id) as flight:
            final: ReuseResult | None = None
            parts = step.generate(decision, backend)
            async with contextlib.aclosing(parts):  # leaving early cancels the generation
                async for item in parts:
                    if isinstance(item, ReuseResult):
                        final = item
                    else:
                        yield item
            if final is None:
                raise RuntimeError("the generate step ended without a ReuseResult")
            step.store_exact(decision, final)
            step.store_vectors(decision, final)
            if storable(final.answer):
                flight.set_result(final)
        yield self.account(decision, final, time.perf_counter() - started)

    async def check(self, request: ReuseRequest, options: ReuseOptions) -> ReuseDecision:
        """The analysis of `request`, then single-flight: when nothing was reusable but an
        identical request is generating, its answer; when one finished while this one was
        analysed, that answer (an exact hit on tier "inflight")."""
        start = time.perf_counter()
        while True:
            decision = await self.analyzer.analyze(
                request, options.threshold, options.reuse, options.max_error_rate
            )
            plan = decision.plan
            sliding = self.config.lifecycle.sliding if options.sliding is None else options.sliding
            plan.store_as = StorePolicy(
                plan.epoch, options.ttl_s, sliding, options.tags, plan.started_at
            )
            if decision.answer is not None:
                return decision
            if request.hash_id in self._flights:
                shared = await self._flights.follow(request.hash_id)
                if shared is None:
                    continue  # the leader failed: look again, maybe lead
                answer: CachedAnswer | None = shared.answer
            else:
                answer = self.cache.memory.get_nowait(request.namespace, request.hash_id)
            if answer is None:
                return decision
            decision.plan.set_exact(answer, "inflight")
            self.metrics.inc("inflight_shared_total")
            return decision.plan.decision(time.perf_counter() - start)

    def generate(
        self, decision: ReuseDecision, backend: Backend
    ) -> AsyncGenerator[Delta | ReuseResult, None]:
        """What `decision` lacks, through `backend`: the whole prompt, or the missing clauses
        concurrently, streamed in clause order."""
        return compose(decision, backend, self.metrics)

    def store_exact(self, decision: ReuseDecision, result: ReuseResult) -> None:
        """The exact tiers: the whole answer and every generated clause (L1 now, L2 in the
        cache's background), stamped with the request's lifecycle (`StorePolicy`); a sliding
        answer served again is renewed (`renew`)."""
        plan, now = decision.plan, time.time()
        policy = plan.policy()
        self.write_exact(
            [(r, policy.stamp(a, now)) for r, a in self.admitted(plan.exact_writes(result))]
        )
        if result.info.kind in (ReuseKind.EXACT, ReuseKind.SEMANTIC):
            self.renew(decision, result, policy)

    def store_vectors(self, decision: ReuseDecision, result: ReuseResult) -> None:
        """Durable vector records in the background, with the embeddings the lookup made."""
        plan, now = decision.plan, time.time()
        policy = plan.policy()
        writes = [(r, policy.stamp(a, now)) for r, a in self.admitted(plan.vector_writes(result))]
        if writes:
            self._track(self.add_vectors(writes, plan.vectors))

    def account(
        self, decision: ReuseDecision, result: ReuseResult, generation_s: float | None = None
    ) -> ReuseResult:
        """Record what this request reused and generated (`Savings`); `result` with the
        generation seconds its reuse saved (`ReuseInfo.saved_s`, an estimate)."""
        plan, info = decision.plan, result.info
        saved = self.savings.record(
            plan.request.namespace, info.kind, info.tier, plan.reused(result),
            plan.generated(result), generation_s,
        )  # fmt: skip
        if not saved:
            return result
        return dataclasses.replace(result, info=dataclasses.replace(info, saved_s=saved))

    def renew(
        self, decision: ReuseDecision, result: ReuseResult, policy: StorePolicy | None = None
    ) -> None:
        """A sliding answer just served lives `ttl_s` from now: written again in the exact
        tiers under this request's key, its durable records' expiry moved (in the
        background). Only when due (`lifecycle.renewal`)."""
        now = time.time()
        fresh = renewal(result.answer, now)
        if fresh is None or fresh.expires_at is None:
            return
        request, expires_at = decision.plan.request, fresh.expires_at
        if policy is not None:
            fresh = policy.stamp(fresh, now)
        self.write_exact([(request, fresh)])
        ids = list(dict.fromkeys(i for i in (request.hash_id, result.info.matched_id) if i))
        route = self.routes.for_text(request.semantic_text)
        self._track(_set_expiry(route, ids, expires_at))
        self.metrics.inc("renewals_total")

    def admitted(
        self, writes: Sequence[tuple[ReuseRequest, CachedAnswer]]
    ) -> list[tuple[ReuseRequest, CachedAnswer]]:
        """The writes whose answers may be stored (`check_answer`): a generated answer above
        ``limits.max_answer_chars`` or not valid Unicode is served, not stored; counted as
        ``not_stored_total{reason}``."""
        kept: list[tuple[ReuseRequest, CachedAnswer]] = []
        for request, answer in writes:
            try:
                check_answer(answer, self.config.limits)
            except (AnswerTooLargeError, InvalidRequestError, InvalidTypeError) as exc:
                reason = "too_large" if isinstance(exc, AnswerTooLargeError) else "invalid"
                self.metrics.inc("not_stored_total", reason=reason)
                logger.debug("answer {} not stored: {}", request.hash_id, exc)
                continue
            kept.append((request, answer))
        return kept

    # -- shared with ReuseEngine.store ----------------------------------------------------

    def write_exact(self, writes: Sequence[tuple[ReuseRequest, CachedAnswer]]) -> None:
        for request, answer in writes:
            self.cache.set_nowait(request.hash_id, answer, namespace=request.namespace)

    async def add_vectors(
        self,
        items: Sequence[tuple[ReuseRequest, CachedAnswer]],
        known: Mapping[str, Any] | None = None,
    ) -> None:
        """Upsert durable records, grouped by scope. Failures are counted, never raised."""
        known = known or {}
        groups: dict[tuple[SemanticComponent, ScopeFilter], list[VectorItem]] = {}
        for request, answer in items:
            route = self.routes.for_text(request.semantic_text)
            groups.setdefault((route, scope_of(request, answer.epoch)), []).append(
                (request.hash_id, request.semantic_text, answer, known.get(request.hash_id))
            )
        ttl = self.config.cache.vector_ttl_s
        # Not on any request's path: a batch embedded on a loaded machine may take longer than
        # a lookup's deadline, and an answer dropped here is lost for paraphrase reuse.
        deadline = self.config.semantic.store_timeout_s
        for (route, scope), group in groups.items():
            await route.call(functools.partial(_add_many, group, scope, ttl), timeout_s=deadline)

    async def flush(self) -> None:
        """Wait for the background stores of this pipeline."""
        while self._background:
            await asyncio.wait(list(self._background))

    def _track(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


async def _set_expiry(route: SemanticComponent, ids: list[str], expires_at: float) -> None:
    await route.call(lambda s: s.store.set_expiry(ids, expires_at))


async def _add_many(
    group: list[VectorItem],
    scope: ScopeFilter,
    ttl_s: float | None,
    search: SimilaritySearchHelper,
) -> None:
    await search.add_many(group, scope=scope, ttl_s=ttl_s)
