"""What can be reused for a request: exact tiers, then paraphrases and clauses.

`Analyzer.analyze` runs the lookup half of the engine's flow and returns a
`ReuseDecision` without generating anything: exact tiers (memory, Redis, the vector
store's record by id); the reuse policy; then, in parallel, the whole prompt's
similarity search and its split into clauses; for a compound question whose whole
prompt was not reusable, each clause through the exact tiers and one batched search.
"""

from __future__ import annotations

import asyncio
import time

from semantic_reuse.answer import CachedAnswer
from semantic_reuse.clauses import AsyncConjunctionExtractor, may_be_compound
from semantic_reuse.components import Guarded
from semantic_reuse.config import HandlerConfig
from semantic_reuse.exact.lifecycle import LifecycleStore
from semantic_reuse.exact.tiers import MultiLevelCacheManager
from semantic_reuse.lifecycle import NamespaceState
from semantic_reuse.metrics import Metrics
from semantic_reuse.planning import Plan, ReuseDecision
from semantic_reuse.request import QUESTION_MAX_CHARS, ReuseRequest
from semantic_reuse.routes import SemanticComponent, SemanticRoutes
from semantic_reuse.semantic.search import TOO_LONG, SimilaritySearchResult
from semantic_reuse.semantic.store import ScopeFilter

#: Joins the epoch to a fingerprint (`scope_of`): never part of a fingerprint's own digest.
EPOCH_MARK = "@epoch"


def scope_of(request: ReuseRequest, epoch: int = 0) -> ScopeFilter:
    """Where a semantic match for `request` may come from. The namespace's epoch joins the
    fingerprint (from epoch 1 on): a search never meets an answer of another epoch."""
    fingerprint = request.fingerprint if not epoch else f"{request.fingerprint}{EPOCH_MARK}{epoch}"
    return ScopeFilter(request.namespace, request.model or "", fingerprint)


class Admission:
    """The lifecycle check of one lookup: the namespace's record, at the time it began."""

    __slots__ = ("now", "state")

    def __init__(self, state: NamespaceState, now: float) -> None:
        self.state = state
        self.now = now

    def __call__(self, key: str, answer: CachedAnswer) -> bool:
        return self.state.admits(answer, key, self.now)


def _number(value: object, default: float) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return default


class Analyzer:
    """The lookup half of the engine."""

    def __init__(
        self,
        config: HandlerConfig,
        cache: MultiLevelCacheManager,
        routes: SemanticRoutes,
        splitter: Guarded[AsyncConjunctionExtractor],
        metrics: Metrics,
        lifecycle: LifecycleStore | None = None,
    ) -> None:
        self.config = config
        self.cache = cache
        self.routes = routes
        self.splitter = splitter
        self.metrics = metrics
        self.lifecycle = lifecycle or LifecycleStore()

    def semantic_refusal(self, request: ReuseRequest, reuse: bool) -> str | None:
        """Why this request must not take a semantic answer, or None when it may.

        Requests that want fresh samples (n > 1, hot sampling, logprobs) or opt out may
        still take an exact hit: the same request asked again.
        """
        params = request.answer_params
        if not reuse:
            return "opt_out"
        if not self.config.features.enable_semantic_reuse:
            return "disabled"
        if _number(params.get("n"), 1) > 1:
            return "n>1"
        if _number(params.get("temperature"), 0) > self.config.semantic_max_temperature:
            return "temperature"
        if params.get("logprobs") is not None or params.get("prompt_logprobs") is not None:
            return "logprobs"
        return None

    async def analyze(
        self,
        request: ReuseRequest,
        threshold: float | None,
        reuse: bool,
        max_error_rate: float | None = None,
    ) -> ReuseDecision:
        """`threshold` and `max_error_rate`: this request's rule (`ReuseOptions`), for the
        whole prompt and its clauses alike."""
        start = time.perf_counter()
        state = await self.lifecycle.state(request.namespace)
        admit = Admission(state, time.time())
        plan = Plan(request, epoch=state.epoch, started_at=admit.now)
        exact = await self.tier_exact(request, admit)
        refused = self.semantic_refusal(request, reuse)
        if exact is None and refused is not None:
            exact = await self.durable_exact(request, admit)
        if exact is not None:
            plan.set_exact(*exact)
            return self._finish(plan, start)
        if refused is not None:
            plan.refused_by = refused
            return self._finish(plan, start)
        scope = scope_of(request, state.epoch)
        top_k = self.config.semantic.top_k
        want_clauses = (
            self.config.features.enable_nlp_enhancement
            and self.config.compound_strategy == "decompose"
            and len(request.semantic_text) <= QUESTION_MAX_CHARS  # not a document to parse
            and may_be_compound(request.semantic_text)  # else no splitter could cut it
            and not request.structured  # tools or a format: a clause would lose them
        )
        split = asyncio.ensure_future(self.split(request.semantic_text)) if want_clauses else None
        try:
            route = self.routes.for_text(request.semantic_text)
            found = await route.call(
                lambda s: s.search_many(
                    [request.semantic_text],
                    top_k,
                    threshold,
                    scope=scope,
                    admit=admit,
                    max_error_rate=max_error_rate,
                )
            )
            # The durable record of this very request, when there is one, is among the
            # candidates (cosine 1, same scope): no separate read by id on the common path.
            exact = self._durable_among(request, found)
            if exact is None and found and found[0].decision.reason == TOO_LONG:
                exact = await self.durable_exact(request, admit)  # not searched: read by id
            if exact is not None:
                plan.set_exact(*exact)
                return self._finish(plan, start)
            clauses = await split if split is not None else []
        finally:
            if split is not None and not split.done():
                split.cancel()
        if found:
            whole = found[0]
            # A compound question is not answered by the answer to one of its parts.
            part_only = (
                len(clauses) >= 2
                and whole.best is not None
                and len(await self.split(whole.best.prompt)) < 2
            )
            plan.set_whole(whole, refuse="compound" if part_only else None)
            if plan.answer is not None:
                return self._finish(plan, start)
        if len(clauses) >= 2:
            await self._analyze_clauses(plan, clauses, (threshold, max_error_rate), scope, admit)
        return self._finish(plan, start)

    async def _analyze_clauses(
        self, plan: Plan, clauses: list[str], rule: tuple[float | None, float | None],
        scope: ScopeFilter, admit: Admission,
    ) -> None:  # fmt: skip
        """`rule`: the request's (threshold, max_error_rate)."""
        threshold, max_error_rate = rule
        subs = [plan.request.with_text(c) for c in clauses]
        exacts = await asyncio.gather(*(self.exact(s, admit) for s in subs))
        plan.set_clauses(subs, exacts)
        todo = [i for i, e in enumerate(exacts) if e is None]
        if not todo:
            return
        texts = [subs[i].semantic_text for i in todo]
        top_k = self.config.semantic.top_k

        async def search(route: SemanticComponent, which: list[int]) -> None:
            part = [texts[j] for j in which]
            found = await route.call(
                lambda s: s.search_many(
                    part, top_k, threshold, scope=scope, admit=admit, max_error_rate=max_error_rate
                )
            )
            for j, result in zip(which, found or [], strict=False):
                plan.set_clause_search(todo[j], result)

        # Clauses of one question may be in two scripts: each route searches its own, at once.
        await asyncio.gather(*(search(r, which) for r, which in self.routes.partition(texts)))

    def _finish(self, plan: Plan, start: float) -> ReuseDecision:
        elapsed = time.perf_counter() - start
        decision = plan.decision(elapsed)
        self.metrics.inc("requests_total", kind=decision.kind.value)
        self.metrics.observe("stage_seconds", elapsed, stage="lookup")
        return decision

    async def exact(
        self, request: ReuseRequest, admit: Admission
    ) -> tuple[CachedAnswer, str] | None:
        """The answer stored for exactly this request, and the tier that held it."""
        return await self.tier_exact(request, admit) or await self.durable_exact(request, admit)

    async def tier_exact(
        self, request: ReuseRequest, admit: Admission
    ) -> tuple[CachedAnswer, str] | None:
        """The exact tiers' answer (memory, host shared memory, Redis)."""
        if not self.config.features.enable_exact_cache:
            return None
        key = request.hash_id
        hit = await self.cache.get(
            key, namespace=request.namespace, accept=lambda answer: admit(key, answer)
        )
        return None if hit is None else (hit.answer, hit.tier)

    async def durable_exact(
        self, request: ReuseRequest, admit: Admission
    ) -> tuple[CachedAnswer, str] | None:
        """The vector store's point by hash id: the durable record, it survives restarts."""
        if not self.config.features.enable_exact_cache:
            return None
        route = self.routes.for_text(request.semantic_text)
        answer = await route.call(lambda s: s.get(request.hash_id))
        if answer is None or not admit(request.hash_id, answer):
            return None
        return self._promote(request, answer)

    def _durable_among(
        self, request: ReuseRequest, found: list[SimilaritySearchResult] | None
    ) -> tuple[CachedAnswer, str] | None:
        if not self.config.features.enable_exact_cache or not found:
            return None
        for candidate in found[0].candidates:
            if candidate.id == request.hash_id:
                return self._promote(request, candidate.answer)
        return None

    def _promote(self, request: ReuseRequest, answer: CachedAnswer) -> tuple[CachedAnswer, str]:
        self.metrics.inc("lookups_total", tier="vector", outcome="hit")
        self.cache.set_nowait(request.hash_id, answer, namespace=request.namespace)
        return answer, "vector"

    async def split(self, text: str) -> list[str]:
        """Self-contained clauses of `text`, or [] (also when the splitter fails)."""
        start = time.perf_counter()
        # Raising, the splitter's failures and timeouts reach its breaker (a hang then costs
        # a few requests, not every compound question).
        clauses = await self.splitter.call(
            lambda s: s.extract_conjunctions_async(text, raise_on_failure=True)
        )
        self.metrics.observe("stage_seconds", time.perf_counter() - start, stage="clauses")
        return clauses or []
