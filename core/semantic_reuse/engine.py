"""ReuseEngine: look up, store and generate around any backend.

The engine owns the components (exact tiers, embedder + vector store, clause splitter, each
behind a circuit breaker) and the one request pipeline (`pipeline.Pipeline`: check ->
single-flight -> generate what is missing -> store) that every frontend runs its requests
through. Its own API (store, lookup, analyze, stream, generate, invalidate, clear) is async;
the `*_sync` wrappers derive from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import time
import uuid
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
    Sequence,
)
from typing import Any, Self, TypeVar

from semantic_reuse._log import logger
from semantic_reuse.analysis import Analyzer
from semantic_reuse.answer import CachedAnswer, check_answer
from semantic_reuse.backend import Backend, PromptInput, backend_model_name
from semantic_reuse.breaker import CircuitBreaker
from semantic_reuse.clauses import AsyncConjunctionExtractor
from semantic_reuse.components import Guarded
from semantic_reuse.config import HandlerConfig
from semantic_reuse.defaults import build_splitter, lifecycle_path
from semantic_reuse.errors import InvalidRequestError, InvalidTypeError, UsageError, shown
from semantic_reuse.exact.lifecycle import LifecycleStore
from semantic_reuse.exact.tiers import MultiLevelCacheManager
from semantic_reuse.lifecycle import NamespaceState, StorePolicy
from semantic_reuse.maintenance import LoadReport, Maintenance
from semantic_reuse.metrics import Metrics
from semantic_reuse.options import ReuseOptions, check_limits, check_message_count
from semantic_reuse.outcome import ReuseHit, ReuseKind, ReuseResult
from semantic_reuse.pipeline import Pipeline, PipelineEvent, PipelineSteps
from semantic_reuse.planning import ReuseDecision
from semantic_reuse.request import DEFAULT_NAMESPACE, ReuseRequest, validate_namespace
from semantic_reuse.routes import SemanticRoutes
from semantic_reuse.savings import Savings
from semantic_reuse.semantic.search import SimilaritySearchHelper
from semantic_reuse.streaming import ReuseStream
from semantic_reuse.sync import SyncRunner, close_from_sync

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
        self.routes = SemanticRoutes.from_config(self.config, self.metrics, search=search)
        self.splitter: Guarded[AsyncConjunctionExtractor] = Guarded(
            "splitter",
            breaker=CircuitBreaker.from_config("splitter", self.config.performance),
            metrics=self.metrics,
            instance=splitter,
            build=functools.partial(build_splitter, self.config),
        )
        self.lifecycle = LifecycleStore(
            redis=self.cache.redis,
            path=lifecycle_path(self.config, own_stores=search is None),
            refresh_s=self.config.lifecycle.state_refresh_s,
        )
        analyzer = Analyzer(
            self.config, self.cache, self.routes, self.splitter, self.metrics, self.lifecycle
        )
        self.savings = Savings(self.config.savings, metrics=self.metrics)
        self.pipeline = Pipeline(analyzer, self.savings)
        self.maintenance = Maintenance(
            self.config, self.cache, self.routes, self.lifecycle, self.metrics
        )
        self._runner = SyncRunner()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None  # where it was first used
        self._closing: asyncio.Task[None] | None = None

    @classmethod
    def from_config(cls, config: HandlerConfig | None = None, **components: Any) -> Self:
        """The embedded defaults for `config`; components given by keyword replace them."""
        return cls(config, **components)

    async def warm_up(self) -> None:
        """Load the embedder, open the vector store and load the splitter now rather than
        on the first request."""
        await asyncio.gather(self.semantic.get(), self.splitter.get())

    @property
    def semantic(self) -> Guarded[SimilaritySearchHelper]:
        """The semantic component of English text (with one embedder: of every text)."""
        return self.routes.primary

    # -- public API ------------------------------------------------------------------
    # Each method takes the per-request options as `options=` or as keywords
    # (namespace, model, params, threshold, reuse, question, ttl_s, sliding, tags): see
    # `ReuseOptions`.

    def request(
        self, prompt: PromptInput, options: ReuseOptions, backend: object = None
    ) -> ReuseRequest:
        """The `ReuseRequest` for `prompt`: its model scope is `options.model`, else the
        backend's `model_name`, else `config.cache.default_model` (never empty)."""
        model = options.model or backend_model_name(backend) or self.config.cache.default_model
        check_message_count(prompt, self.config.limits)
        text: str | None = None
        messages: Sequence[Any] | None = None
        if isinstance(prompt, str):
            if not prompt.strip():
                raise InvalidRequestError("prompt must not be empty")
            text = prompt
        elif isinstance(prompt, Sequence) and not isinstance(prompt, (bytes, bytearray)):
            messages = prompt
        else:
            raise InvalidTypeError(
                f"prompt must be a str or a list of messages, got {type(prompt).__name__}"
            )
        request = ReuseRequest(
            text, messages, namespace=options.namespace, model=model, params=options.params,
            question=options.question,
        )  # fmt: skip
        return check_limits(request, self.config.limits)

    async def store(
        self, prompt: PromptInput, answer: object, *, options: ReuseOptions | None = None,
        **option_kwargs: Any,
    ) -> str:  # fmt: skip
        """Store `answer` for `prompt` in every tier and the vector store; return its hash id."""
        (key,) = await self.store_many([(prompt, answer)], options=options, **option_kwargs)
        return key

    async def store_many(
        self, items: Sequence[tuple[PromptInput, object]], *,
        options: ReuseOptions | None = None, **option_kwargs: Any,
    ) -> list[str]:  # fmt: skip
        """`store` for many (prompt, answer) pairs: one embedding batch, one upsert. The
        options' `ttl_s`, `sliding` and `tags` are stored with the answers."""
        opts = ReuseOptions.of(options, **option_kwargs)
        if (
            not isinstance(items, Sequence)
            or isinstance(items, str)
            or not all(isinstance(item, tuple | list) and len(item) == 2 for item in items)
        ):
            raise InvalidTypeError("items must be a sequence of (prompt, answer) pairs")
        requests = [self.request(p, opts) for p, _ in items]
        now = time.time()
        sliding = self.config.lifecycle.sliding if opts.sliding is None else opts.sliding
        epoch = (await self.lifecycle.state(opts.namespace)).epoch
        policy = StorePolicy(epoch, opts.ttl_s, sliding, opts.tags)
        answers = [
            check_answer(
                CachedAnswer.from_any(a, source_prompt=r.semantic_text), self.config.limits
            )
            for r, (_, a) in zip(requests, items, strict=True)
        ]
        writes = [(r, policy.stamp(a, now)) for r, a in zip(requests, answers, strict=True)]
        self._bind_loop()
        self.pipeline.write_exact(writes)
        await self.pipeline.add_vectors(writes)
        return [r.hash_id for r in requests]

    async def analyze(
        self, prompt: PromptInput, *, options: ReuseOptions | None = None, **option_kwargs: Any
    ) -> ReuseDecision:
        """What could be reused for `prompt`, clause by clause, without generating."""
        opts = ReuseOptions.of(options, **option_kwargs)
        self._bind_loop()
        return await self.pipeline.analyzer.analyze(
            self.request(prompt, opts), opts.threshold, opts.reuse, opts.max_error_rate
        )

    async def lookup(
        self, prompt: PromptInput, *, options: ReuseOptions | None = None, **option_kwargs: Any
    ) -> ReuseHit | None:
        """A complete reusable answer (exact, semantic or composed), or None."""
        decision = await self.analyze(prompt, options=options, **option_kwargs)
        namespace = decision.plan.request.namespace
        if decision.answer is None:  # the caller generates all of it
            self.savings.record(namespace, ReuseKind.MISS, None)
            return None
        result = self.pipeline.account(decision, ReuseResult(decision.answer, decision.info))
        self.pipeline.renew(decision, result)
        return ReuseHit(decision.answer, result.info)

    async def lookup_many(
        self, prompts: Sequence[PromptInput], **kwargs: Any
    ) -> list[ReuseHit | None]:
        """`lookup` for many prompts, concurrently (their embeddings share batches)."""
        if not isinstance(prompts, Sequence) or isinstance(prompts, str):
            raise InvalidTypeError("prompts must be a sequence of prompts")
        return list(await asyncio.gather(*(self.lookup(p, **kwargs) for p in prompts)))

    def stream(
        self, prompt: PromptInput, backend: Backend, *, options: ReuseOptions | None = None,
        request_id: str | None = None, **option_kwargs: Any,
    ) -> ReuseStream:  # fmt: skip
        """Reuse what can be reused, generate the rest; iterate for text deltas, then
        read `.result`."""
        if not isinstance(backend, Backend):
            raise InvalidTypeError("backend must have an async stream(request) method (a Backend)")
        opts = ReuseOptions.of(options, **option_kwargs)
        request = self.request(prompt, opts, backend)
        return ReuseStream(self.run(request, backend, opts, request_id=request_id))

    async def generate(self, prompt: PromptInput, backend: Backend, **kwargs: Any) -> ReuseResult:
        """`stream` to the end; the answer and its ReuseInfo."""
        stream = self.stream(prompt, backend, **kwargs)
        async for _ in stream:
            pass
        return stream.result

    async def run(
        self, request: ReuseRequest, backend: Backend, options: ReuseOptions | None = None, *,
        steps: PipelineSteps | None = None, request_id: str | None = None,
    ) -> AsyncGenerator[PipelineEvent, None]:  # fmt: skip
        """The pipeline's events for one request (`pipeline.Pipeline.run`): what frontends
        build on. `steps` replaces the pipeline's steps (see `PipelineSteps`)."""
        if self._closed:
            raise UsageError("the ReuseEngine is closed")
        check_limits(request, self.config.limits)
        self._bind_loop()
        opts = options or ReuseOptions(namespace=request.namespace, model=request.model)
        with logger.contextualize(request_id=request_id or uuid.uuid4().hex[:16]):
            events = self.pipeline.run(request, backend, opts, steps)
            async with contextlib.aclosing(events):
                async for event in events:
                    yield event

    async def invalidate(
        self, prompt: PromptInput, *, options: ReuseOptions | None = None, **option_kwargs: Any
    ) -> None:
        """Forget the answer stored for exactly this request, in every tier."""
        request = self.request(prompt, ReuseOptions.of(options, **option_kwargs))
        await self.maintenance.invalidate_ids([request.hash_id], request.namespace)

    async def invalidate_id(self, hash_id: str, namespace: str = DEFAULT_NAMESPACE) -> None:
        """Forget the answer stored under `hash_id` (``ReuseInfo.hash_id``) in `namespace`,
        in every tier, vector store and process (its lifecycle record)."""
        if not isinstance(hash_id, str) or not hash_id:
            raise InvalidRequestError(f"hash_id must be a non-empty str, got {shown(hash_id)}")
        await self.maintenance.invalidate_ids([hash_id], namespace)

    async def invalidate_tag(
        self, tags: str | Sequence[str], *, namespace: str = DEFAULT_NAMESPACE
    ) -> None:
        """Retire every answer of the namespace stored with one of `tags` (before now), in
        every tier and process (docs/operations.md, "Answer lifecycle")."""
        await self.maintenance.invalidate_tags([tags] if isinstance(tags, str) else tags, namespace)

    async def bump_epoch(self, namespace: str = DEFAULT_NAMESPACE) -> int:
        """Retire every answer of the namespace at once (a new model version, a changed
        prompt template): its epoch goes up by one; returns the new epoch."""
        return await self.maintenance.bump_epoch(namespace)

    async def lifecycle_state(self, namespace: str = DEFAULT_NAMESPACE) -> NamespaceState:
        """The namespace's lifecycle record (epoch, retirements) as this process sees it."""
        return await self.lifecycle.state(validate_namespace(namespace))

    def export(self, namespace: str = DEFAULT_NAMESPACE) -> AsyncIterator[dict[str, Any]]:
        """The namespace's servable answers as JSON-able records (`load`'s format)."""
        return self.maintenance.export(namespace)

    async def load(
        self, records: Iterable[Mapping[str, Any]], *, namespace: str = DEFAULT_NAMESPACE,
        model: str | None = None, tags: Sequence[str] = (), ttl_s: float | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> LoadReport:  # fmt: skip
        """Seed the namespace with curated question/answer records (`export`'s format)."""
        self._bind_loop()
        return await self.maintenance.load(
            records, namespace=namespace, model=model, tags=tags, ttl_s=ttl_s, progress=progress
        )

    async def feedback(self, matched_id: str, correct: bool) -> bool:
        """Report whether an answer served as a paraphrase was right.

        `matched_id` is the served entry's id (``ReuseInfo.matched_id``, also in the framework
        classes' response metadata). A wrong report withdraws that entry from paraphrase reuse
        at once, for every later request; it still answers its own question exactly. Both
        kinds are counted (``feedback_total{verdict}``). Returns False when no entry has
        that id (already gone, never stored) or the vector store could not be reached."""
        return await self.maintenance.feedback(matched_id, correct)

    async def clear(self, namespace: str) -> None:
        """Forget every answer of a namespace (tenant): its exact answers in every tier and
        its vector points (and, through its lifecycle record, the copies other processes
        hold in memory). Other namespaces keep theirs; a falsy namespace is refused."""
        await self.maintenance.clear(namespace)

    async def forget_older_than(self, age_s: float, *, namespace: str | None = None) -> None:
        """Retire answers created more than `age_s` seconds ago. With `namespace`: in every
        tier and process (its lifecycle record). Without: in every namespace, deleted from
        this process's memory and the vector stores (Redis and host shared memory entries
        then end on their TTL)."""
        await self.maintenance.forget_older_than(age_s, namespace)

    async def flush(self) -> None:
        """Wait for background stores (to Redis and the vector store), then have the vector
        store write them to disk: every answer stored before the call is then durable
        (operations.md, Durability); a store that failed is counted in `errors_total`."""
        await self.pipeline.flush()
        await self.cache.flush()
        for route in self.routes.routes:
            if route.ready is not None:
                await route.call(lambda search: search.store.flush())

    def stats(self) -> dict[str, Any]:
        """Lookups and hits per kind and tier, stage latencies, errors per component, and
        what reuse saved per namespace (``"savings"``: `Savings.stats`)."""
        stats = self.cache.stats()
        breakers = [c.breaker for c in self.routes.routes] + [self.splitter.breaker]
        stats["breakers"] = {b.name: b.state.value for b in breakers}
        if (search := self.semantic.ready) is not None:
            stats["embedder"] = dataclasses.asdict(search.embedder.stats())
        for route in self.routes.routes[1:]:
            if (search := route.ready) is not None:
                stats[f"embedder:{route.name}"] = dataclasses.asdict(search.embedder.stats())
        if (splitter := self.splitter.ready) is not None:
            stats["splitter"] = dataclasses.asdict(splitter.stats)
        stats["savings"] = self.savings.stats()
        stats["lifecycle"] = {"records": self.lifecycle.backend}
        return stats

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.flush()
        self.savings.write_history()
        await self.cache.aclose()
        for route in self.routes.routes:
            await route.cancel_build()
        await self.splitter.cancel_build()
        # Components given by the caller may be shared: closing them is the caller's job.
        for route in self.routes.routes:
            if (search := route.ready) is not None and route.owned:
                await search.embedder.aclose()
                await search.store.aclose()
        if (splitter := self.splitter.ready) is not None and self.splitter.owned:
            splitter.close()

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Close from sync code (`AsyncLLM.shutdown`, `__del__`, atexit): waits up to
        `timeout_s` for background stores when the loop the engine ran on still runs in
        another thread; from a coroutine on that loop, `await aclose()` instead (here the
        close is only scheduled)."""
        if not self._closed:
            self._closing = close_from_sync(self.aclose, self._loop, timeout_s)

    @property
    def closed(self) -> bool:
        return self._closed

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

    def feedback_sync(self, matched_id: str, correct: bool) -> bool:
        return self.run_sync(self.feedback(matched_id, correct))

    def analyze_sync(self, *args: Any, **kwargs: Any) -> ReuseDecision:
        return self._runner.run(self.analyze(*args, **kwargs))

    def generate_sync(self, *args: Any, **kwargs: Any) -> ReuseResult:
        return self._runner.run(self.generate(*args, **kwargs))

    def close_sync(self) -> None:
        self._runner.run(self.aclose())
        self._runner.close()

    def _bind_loop(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
