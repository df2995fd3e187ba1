"""ReuseEngine: look up, store and generate around any backend.

The flow of one request (DESIGN.md, "One request"):

    key -> exact tiers (memory, Redis, the vector store's point by id)
        -> single-flight (an identical request already generating? await it)
        -> reuse policy (may this request take a semantic answer?)
        -> in parallel: embed + vector search | split into clauses
        -> decide: EXACT | SEMANTIC | COMPOSED | PARTIAL | MISS
        -> generate what is missing (clauses concurrently), stream it
        -> store in the background; every result carries ReuseInfo

Every optional component (Redis, embedder + store, splitter) sits behind a circuit
breaker: when one fails it is skipped for that request, counted and logged once per
state change, and the request falls through to generation.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from typing import Any, Self, TypeVar

from loguru import logger

from semantic_reuse.analysis import Analyzer, scope_of
from semantic_reuse.answer import CachedAnswer
from semantic_reuse.backend import Backend, PromptInput
from semantic_reuse.breaker import CircuitBreaker
from semantic_reuse.clauses import AsyncConjunctionExtractor
from semantic_reuse.components import Guarded
from semantic_reuse.config import HandlerConfig
from semantic_reuse.defaults import build_search_helper, build_splitter
from semantic_reuse.errors import InvalidRequestError, InvalidTypeError
from semantic_reuse.exact.tiers import MultiLevelCacheManager
from semantic_reuse.metrics import Metrics
from semantic_reuse.outcome import ReuseHit, ReuseResult
from semantic_reuse.planning import ReuseDecision, compose
from semantic_reuse.request import DEFAULT_NAMESPACE, ReuseRequest
from semantic_reuse.semantic.search import SimilaritySearchHelper, check_threshold
from semantic_reuse.semantic.store import ScopeFilter
from semantic_reuse.singleflight import SingleFlight
from semantic_reuse.streaming import ReuseStream
from semantic_reuse.sync import SyncRunner

T = TypeVar("T")


class ReuseEngine:
    """Framework-neutral reuse of earlier answers; async first, `*_sync` derived."""

    def __init__(
        self,
        config: HandlerConfig | None = None,
        *,
        cache: MultiLevelCacheManager | None = None,
        search: SimilaritySearchHelper | None = None,
        splitter: AsyncConjunctionExtractor | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config or HandlerConfig()
        if metrics is None:
            metrics = cache.metrics if cache else search.metrics if search else Metrics()
        self.metrics = metrics
        self.cache = cache or MultiLevelCacheManager.from_config(self.config, metrics=self.metrics)
        self.semantic: Guarded[SimilaritySearchHelper] = Guarded(
            "semantic",
            breaker=CircuitBreaker.from_config("semantic", self.config.performance),
            metrics=self.metrics,
            instance=search,
            build=(
                functools.partial(build_search_helper, self.config, self.metrics)
                if self.config.features.enable_semantic_reuse
                else None
            ),
            timeout_s=self.config.semantic.timeout_s,
        )
        self.splitter: Guarded[AsyncConjunctionExtractor] = Guarded(
            "splitter",
            breaker=CircuitBreaker.from_config("splitter", self.config.performance),
            metrics=self.metrics,
            instance=splitter,
            build=functools.partial(build_splitter, self.config),
        )
        self._analyzer = Analyzer(
            self.config, self.cache, self.semantic, self.splitter, self.metrics
        )
        self.flights: SingleFlight[ReuseResult] = SingleFlight()
        self._background: set[asyncio.Task[None]] = set()
        self._runner = SyncRunner()
        self._closed = False

    @classmethod
    def from_config(cls, config: HandlerConfig | None = None, **components: Any) -> Self:
        """The embedded defaults for `config`; components given by keyword replace them."""
        return cls(config, **components)

    async def warm_up(self) -> None:
        """Load the embedder, open the vector store and load the splitter now rather than
        on the first request."""
        await asyncio.gather(self.semantic.get(), self.splitter.get())

    # -- public API ------------------------------------------------------------------

    async def store(
        self,
        prompt: PromptInput,
        answer: object,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        model: str | None = None,
        params: object = None,
    ) -> str:
        """Store `answer` for `prompt` in every tier and the vector store; return its hash id."""
        (key,) = await self.store_many(
            [(prompt, answer)], namespace=namespace, model=model, params=params
        )
        return key

    async def store_many(
        self,
        items: Sequence[tuple[PromptInput, object]],
        *,
        namespace: str = DEFAULT_NAMESPACE,
        model: str | None = None,
        params: object = None,
    ) -> list[str]:
        """`store` for many (prompt, answer) pairs: one embedding batch, one upsert."""
        requests = [self._request(p, namespace, model, params) for p, _ in items]
        answers = [
            CachedAnswer.from_any(a, source_prompt=r.semantic_text)
            for r, (_, a) in zip(requests, items, strict=True)
        ]
        writes = list(zip(requests, answers, strict=True))
        self.write_exact(writes)
        await self._add_vectors(writes)
        return [r.hash_id for r in requests]

    async def analyze(
        self,
        prompt: PromptInput,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        model: str | None = None,
        params: object = None,
        threshold: float | None = None,
        reuse: bool = True,
        question: str | None = None,
    ) -> ReuseDecision:
        """What could be reused for `prompt`, clause by clause, without generating.
        `question`: the question inside a templated prompt (see `ReuseRequest.question`)."""
        check_threshold(threshold, "threshold")
        request = self._request(prompt, namespace, model, params, question)
        return await self._analyzer.analyze(request, threshold, reuse)

    async def lookup(
        self,
        prompt: PromptInput,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        model: str | None = None,
        params: object = None,
        threshold: float | None = None,
        reuse: bool = True,
        question: str | None = None,
    ) -> ReuseHit | None:
        """A complete reusable answer (exact, semantic or composed), or None."""
        decision = await self.analyze(
            prompt, namespace=namespace, model=model, params=params, threshold=threshold,
            reuse=reuse, question=question,
        )  # fmt: skip
        if decision.answer is None:
            return None
        return ReuseHit(decision.answer, decision.info)

    async def lookup_many(
        self, prompts: Sequence[PromptInput], **kwargs: Any
    ) -> list[ReuseHit | None]:
        """`lookup` for many prompts, concurrently (their embeddings share batches)."""
        return list(await asyncio.gather(*(self.lookup(p, **kwargs) for p in prompts)))

    def stream(
        self,
        prompt: PromptInput,
        backend: Backend,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        model: str | None = None,
        params: object = None,
        threshold: float | None = None,
        reuse: bool = True,
        request_id: str | None = None,
        question: str | None = None,
    ) -> ReuseStream:
        """Reuse what can be reused, generate the rest; iterate for text deltas, then
        read `.result`. `question`: the question inside a templated prompt (retrieved
        context around it must then be equal; see `ReuseRequest.question`)."""
        check_threshold(threshold, "threshold")
        if not isinstance(backend, Backend):
            raise InvalidTypeError("backend must have an async stream(request) method (a Backend)")
        request = self._request(prompt, namespace, model, params, question)
        rid = request_id or uuid.uuid4().hex[:16]
        return ReuseStream(self._run(request, backend, threshold, reuse, rid))

    async def generate(self, prompt: PromptInput, backend: Backend, **kwargs: Any) -> ReuseResult:
        """`stream` to the end; the answer and its ReuseInfo."""
        stream = self.stream(prompt, backend, **kwargs)
        async for _ in stream:
            pass
        return stream.result

    async def invalidate(
        self, prompt: PromptInput, *, namespace: str = DEFAULT_NAMESPACE,
        model: str | None = None, params: object = None,
    ) -> None:  # fmt: skip
        """Forget the answer stored for exactly this request, in every tier."""
        request = self._request(prompt, namespace, model, params)
        await self.cache.invalidate(request.hash_id, namespace=request.namespace)
        await self.semantic.call(lambda s: s.store.delete([request.hash_id]))

    async def clear(self, namespace: str) -> None:
        """Forget every answer of a namespace (tenant)."""
        await self.cache.clear(namespace)
        await self.semantic.call(lambda s: s.store.delete_namespace(namespace))

    async def forget_older_than(self, age_s: float) -> None:
        """Delete answers stored more than `age_s` seconds ago from memory and the vector
        store (Redis entries expire on their TTL: scanning a shared Redis is not cheap)."""
        if isinstance(age_s, bool) or not isinstance(age_s, (int, float)) or age_s < 0:
            raise InvalidRequestError(f"age_s must be a number >= 0, got {age_s!r}")
        cutoff = time.time() - age_s
        await self.cache.memory.drop_created_before(cutoff)
        await self.semantic.call(lambda s: s.store.delete_older_than(cutoff))

    async def flush(self) -> None:
        """Wait for background stores (to Redis and the vector store)."""
        while self._background:
            await asyncio.wait(list(self._background))
        await self.cache.flush()

    def stats(self) -> dict[str, Any]:
        """Lookups and hits per kind and tier, stage latencies, errors per component."""
        stats = self.cache.stats()
        stats["breakers"] = {c.name: c.breaker.state.value for c in (self.semantic, self.splitter)}
        if (search := self.semantic.ready) is not None:
            stats["embedder"] = dataclasses.asdict(search.embedder.stats())
        if (splitter := self.splitter.ready) is not None:
            stats["splitter"] = dataclasses.asdict(splitter.stats)
        return stats

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.flush()
        await self.cache.aclose()
        await self.semantic.cancel_build()
        await self.splitter.cancel_build()
        # Components given by the caller may be shared: closing them is the caller's job.
        if (search := self.semantic.ready) is not None and self.semantic.owned:
            await search.embedder.aclose()
            await search.store.aclose()
        if (splitter := self.splitter.ready) is not None and self.splitter.owned:
            splitter.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- sync wrappers (derived: each runs its coroutine on the engine's loop thread) --

    @property
    def runner(self) -> SyncRunner:
        """The engine's own loop thread, where its sync wrappers run."""
        return self._runner

    def run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine that uses this engine from sync code (inside or outside a
        running event loop): on the engine's own loop thread, where its resources live."""
        return self._runner.run(coro)

    def store_sync(self, *args: Any, **kwargs: Any) -> str:
        return self._runner.run(self.store(*args, **kwargs))

    def lookup_sync(self, *args: Any, **kwargs: Any) -> ReuseHit | None:
        return self._runner.run(self.lookup(*args, **kwargs))

    def analyze_sync(self, *args: Any, **kwargs: Any) -> ReuseDecision:
        return self._runner.run(self.analyze(*args, **kwargs))

    def generate_sync(self, *args: Any, **kwargs: Any) -> ReuseResult:
        return self._runner.run(self.generate(*args, **kwargs))

    def close_sync(self) -> None:
        self._runner.run(self.aclose())
        self._runner.close()

    # -- the flow ------------------------------------------------------------------------

    def _request(
        self, prompt: PromptInput, namespace: str, model: str | None, params: object,
        question: str | None = None,
    ) -> ReuseRequest:  # fmt: skip
        if isinstance(prompt, str):
            if not prompt.strip():
                raise InvalidRequestError("prompt must not be empty")
            return ReuseRequest(prompt, namespace=namespace, model=model, params=params,
                                question=question)  # fmt: skip
        if isinstance(prompt, Sequence) and not isinstance(prompt, (str, bytes, bytearray)):
            return ReuseRequest(messages=prompt, namespace=namespace, model=model, params=params,
                                question=question)  # fmt: skip
        raise InvalidTypeError(
            f"prompt must be a str or a list of messages, got {type(prompt).__name__}"
        )

    async def _run(
        self, request: ReuseRequest, backend: Backend, threshold: float | None, reuse: bool,
        request_id: str,
    ) -> AsyncIterator[str | ReuseResult]:  # fmt: skip
        """The body of `stream`: yields text deltas, then the ReuseResult."""
        with logger.contextualize(request_id=request_id):
            decision = await self.decide(request, threshold=threshold, reuse=reuse)
            if decision.answer is not None:
                result = ReuseResult(decision.answer, decision.info)
                self.record(decision, result)
                yield result.text
                yield result
                return
            with self.flights.lead(request.hash_id) as flight:
                async for item in compose(decision, backend, self.metrics):
                    if isinstance(item, ReuseResult):
                        result = item
                    else:
                        yield item
                self.record(decision, result)
                flight.set_result(result)
            yield result

    async def decide(
        self, request: ReuseRequest, *, threshold: float | None = None, reuse: bool = True
    ) -> ReuseDecision:
        """The analysis of `request`, then single-flight: when nothing was reusable but an
        identical request is generating, its answer; when one finished while this one was
        analysed, that answer (an exact hit on tier "inflight"). A MISS left from here
        should be generated under `flights.lead(request.hash_id)`."""
        start = time.perf_counter()
        while True:
            decision = await self._analyzer.analyze(request, threshold, reuse)
            if decision.answer is not None:
                return decision
            if request.hash_id in self.flights:
                shared = await self.flights.follow(request.hash_id)
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

    def record(self, decision: ReuseDecision, result: ReuseResult) -> None:
        """Store the whole answer and every generated clause (exact tiers now, vector
        records in the background)."""
        self.write_exact(decision.plan.exact_writes(result))
        self.write_vectors(decision.plan.vector_writes(result), decision.plan.vectors)

    def write_exact(self, writes: Sequence[tuple[ReuseRequest, CachedAnswer]]) -> None:
        """L1 at once (the next identical request hits), L2 in the cache's background."""
        for request, answer in writes:
            self.cache.set_nowait(request.hash_id, answer, namespace=request.namespace)

    def write_vectors(
        self,
        writes: Sequence[tuple[ReuseRequest, CachedAnswer]],
        vectors: Mapping[str, Any] | None = None,
    ) -> None:
        """Durable records in the background (`vectors`: embeddings already computed)."""
        if writes:
            self.background(self._add_vectors(list(writes), vectors))

    def background(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` as a tracked background task (`flush()` and `aclose()` wait for it)."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _add_vectors(
        self,
        items: list[tuple[ReuseRequest, CachedAnswer]],
        known: Mapping[str, Any] | None = None,
    ) -> None:
        """Upsert durable records; grouped by scope. Failures are counted, never raised."""
        groups: dict[ScopeFilter, list[tuple[str, str, CachedAnswer, Any]]] = {}
        for request, answer in items:
            vector = (known or {}).get(request.hash_id)
            groups.setdefault(scope_of(request), []).append(
                (request.hash_id, request.semantic_text, answer, vector)
            )
        ttl = self.config.cache.vector_ttl_s
        for scope, group in groups.items():
            await self.semantic.call(functools.partial(_add_many, group, scope, ttl))


async def _add_many(
    group: list[tuple[str, str, CachedAnswer, Any]],
    scope: ScopeFilter,
    ttl_s: float | None,
    search: SimilaritySearchHelper,
) -> None:
    await search.add_many(group, scope=scope, ttl_s=ttl_s)
