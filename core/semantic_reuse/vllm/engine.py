"""`EnhancedAsyncLLM`: vLLM's `AsyncLLM` whose requests gain exact, semantic and clause reuse.

A drop-in subclass: same constructors (`from_vllm_config`, `from_engine_args`, ending in
``cls(...)``), same `generate` contract. Each request runs through the reuse engine's one
pipeline (`semantic_reuse.pipeline`); this frontend contributes only a `VLLMBackend` (how to
generate) and the shape of the outputs (`OutputShaper`):

    hit                     -> CustomRequestOutput(s), honouring output_kind
    miss, whole prompt      -> vLLM's own outputs (+ .reuse); identical requests in flight
                               share one generation
    miss or partial, clauses-> the missing clauses as vLLM sub-requests, streamed back as one

The seed's names are thin, overridable hooks onto the pipeline's steps:
`_generate_hash_id` (the request's key), `_check_cache` (lookups + single-flight),
`_perform_subsentence_similarity_search` (generate what is missing: the clauses concurrently,
or the whole prompt), `_do_cache_update` (exact tiers) and `_store_similarity_context`
(vector records). Aborted, failed or unfinished outputs are never stored.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any, Self

from vllm.outputs import RequestOutput
from vllm.sampling_params import SamplingParams
from vllm.v1.engine.async_llm import AsyncLLM

from semantic_reuse.backend import Backend, Delta
from semantic_reuse.config import HandlerConfig
from semantic_reuse.engine import ReuseEngine
from semantic_reuse.errors import InvalidTypeError
from semantic_reuse.exact.tiers import MultiLevelCacheManager
from semantic_reuse.options import ReuseOptions, split_options
from semantic_reuse.outcome import ReuseInfo, ReuseKind, ReuseResult
from semantic_reuse.pipeline import Decided
from semantic_reuse.planning import ReuseDecision
from semantic_reuse.request import ReuseRequest, public_fields
from semantic_reuse.semantic.search import SimilaritySearchHelper
from semantic_reuse.vllm.backend import VLLMBackend, render_chat
from semantic_reuse.vllm.outputs import OutputShaper


class EnhancedAsyncLLM(AsyncLLM):
    """`AsyncLLM` with answer reuse; `.reuse_engine` is the `ReuseEngine` behind it."""

    def __init__(
        self,
        *args: Any,
        cache_manager: MultiLevelCacheManager | None = None,
        similarity_search_helper: SimilaritySearchHelper | None = None,
        handler_config: HandlerConfig | None = None,
        reuse_engine: ReuseEngine | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.handler_config = handler_config or HandlerConfig()
        self._owns_reuse_engine = reuse_engine is None
        self.reuse_engine = reuse_engine or ReuseEngine(
            self.handler_config, cache=cache_manager, search=similarity_search_helper
        )
        self._steps = _SeedSteps(self)
        self._reused_streams: dict[str, asyncio.Event] = {}
        self._clause_ids: dict[str, list[str]] = {}

    @classmethod
    def from_vllm_config(  # type: ignore[override]
        cls,
        vllm_config: Any,
        cache_manager: MultiLevelCacheManager | None = None,
        similarity_search_helper: SimilaritySearchHelper | None = None,
        handler_config: HandlerConfig | None = None,
        **asyncllm_kwargs: Any,
    ) -> Self:
        """`AsyncLLM.from_vllm_config` plus the reuse components (defaults when None)."""
        from vllm.v1.executor import Executor

        enable_log_requests = asyncllm_kwargs.pop("enable_log_requests", False)
        disable_log_stats = asyncllm_kwargs.pop("disable_log_stats", False)
        return cls(
            vllm_config=vllm_config,
            executor_class=Executor.get_class(vllm_config),
            log_requests=enable_log_requests,
            log_stats=not disable_log_stats,
            cache_manager=cache_manager,
            similarity_search_helper=similarity_search_helper,
            handler_config=handler_config,
            **asyncllm_kwargs,
        )

    @classmethod
    def from_engine_args(  # type: ignore[override]
        cls,
        engine_args: Any,
        cache_manager: MultiLevelCacheManager | None = None,
        similarity_search_helper: SimilaritySearchHelper | None = None,
        handler_config: HandlerConfig | None = None,
        **asyncllm_kwargs: Any,
    ) -> Self:
        """`AsyncLLM.from_engine_args` plus the reuse components (defaults when None)."""
        from vllm.usage.usage_lib import UsageContext

        usage_context = asyncllm_kwargs.pop("usage_context", UsageContext.ENGINE_CONTEXT)
        vllm_config = engine_args.create_engine_config(usage_context)
        asyncllm_kwargs.setdefault("enable_log_requests", engine_args.enable_log_requests)
        asyncllm_kwargs.setdefault("disable_log_stats", engine_args.disable_log_stats)
        return cls.from_vllm_config(
            vllm_config,
            cache_manager=cache_manager,
            similarity_search_helper=similarity_search_helper,
            handler_config=handler_config,
            usage_context=usage_context,
            **asyncllm_kwargs,
        )

    # -- the AsyncLLM contract ---------------------------------------------------------

    async def generate(
        self,
        prompt: Any,
        sampling_params: SamplingParams,
        request_id: str,
        *,
        options: ReuseOptions | None = None,
        reuse_request: ReuseRequest | None = None,
        **kwargs: Any,
    ) -> AsyncGenerator[RequestOutput, None]:
        """`AsyncLLM.generate` with reuse. The reuse options come as `options=` or as
        keywords (`namespace`, `threshold` or `max_error_rate`, `reuse`, `question`, and
        `ttl_s`, `sliding`, `tags` for the answer stored; see `ReuseOptions`); the model
        scope is the served model, the params are `sampling_params` (+ LoRA)."""
        reuse_kwargs, kwargs = split_options(kwargs)
        opts = ReuseOptions.of(options, **reuse_kwargs)
        request = reuse_request or self._generate_hash_id(
            prompt, sampling_params, kwargs.get("lora_request"), opts
        )
        if request is None or not self._reuse_enabled():
            _check_token_ids(prompt)
            plain = AsyncLLM.generate(self, prompt, sampling_params, request_id, **kwargs)
            async with contextlib.aclosing(plain):
                async for out in plain:
                    out.reuse = None  # type: ignore[attr-defined]
                    yield out
            return
        backend = VLLMBackend(
            self, sampling_params, request_id, kwargs, whole=request, prompt=prompt
        )
        self._clause_ids[request_id] = backend.sub_request_ids
        try:
            outputs = self._outputs(request, backend, opts, prompt, sampling_params, request_id)
            async with contextlib.aclosing(outputs):
                async for out in outputs:
                    yield out
        finally:
            self._clause_ids.pop(request_id, None)

    async def abort(self, request_id: str | Any, internal: bool = False) -> None:
        """Abort requests, reused ones and the clause sub-requests of compound ones too."""
        ids = [request_id] if isinstance(request_id, str) else list(request_id)
        engine_ids: list[str] = []
        for rid in ids:
            if rid in self._reused_streams:
                self._reused_streams[rid].set()
            engine_ids += [rid, *self._clause_ids.get(rid, [])]
        await super().abort(engine_ids, internal)

    async def generate_chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        sampling_params: SamplingParams,
        request_id: str,
        *,
        options: ReuseOptions | None = None,
        **kwargs: Any,
    ) -> AsyncGenerator[RequestOutput, None]:
        """Chat messages through the model's chat template. Reuse goes by the last user
        turn (or by `question` inside it: the rest of the turn, such as retrieved context,
        must then be equal); the system prompt and earlier turns are the conversation's
        fingerprint, so an answer is never replayed into another conversation."""
        reuse_kwargs, kwargs = split_options(kwargs)
        opts = ReuseOptions.of(options, **reuse_kwargs)
        scope = self._request_scope(opts, sampling_params, kwargs.get("lora_request"))
        request = ReuseRequest(messages=messages, question=opts.question, **scope)
        prompt = render_chat(self, [dict(m) for m in messages])
        outputs = self.generate(
            prompt, sampling_params, request_id, options=opts, reuse_request=request, **kwargs
        )
        async with contextlib.aclosing(outputs):
            async for out in outputs:
                yield out

    def shutdown(self, timeout: float | None = None) -> None:
        """Close the reuse engine this engine made (waiting for its background stores where
        it can: see `ReuseEngine.shutdown`), then shut vLLM down (`timeout`: vLLM's wait for
        its engine process; on a CPU its default of a few seconds can be too short)."""
        if self._owns_reuse_engine and getattr(self, "reuse_engine", None) is not None:
            self.reuse_engine.shutdown()
        super().shutdown(timeout=timeout)

    async def aclose(self, shutdown_timeout_s: float | None = None) -> None:
        """Close the reuse engine (waits for background stores) and shut vLLM down
        (`shutdown_timeout_s`: see `shutdown`)."""
        if self._owns_reuse_engine:
            await self.reuse_engine.aclose()
        self.shutdown(timeout=shutdown_timeout_s)

    # -- the seed's hooks onto the pipeline's steps (override to observe or change one) -----

    def _generate_hash_id(
        self,
        prompt: Any,
        sampling_params: SamplingParams,
        lora_request: Any,
        options: ReuseOptions,
    ) -> ReuseRequest | None:
        """The request's key, or None for a prompt reuse cannot key (multimodal, embeds)."""
        scope = self._request_scope(options, sampling_params, lora_request)
        if isinstance(prompt, str):
            return ReuseRequest(prompt, question=options.question, **scope)
        if not isinstance(prompt, Mapping) or not set(prompt) <= {"prompt", "prompt_token_ids"}:
            return None
        if isinstance(prompt.get("prompt"), str):
            return ReuseRequest(prompt["prompt"], question=options.question, **scope)
        if isinstance(prompt.get("prompt_token_ids"), list):
            return ReuseRequest(prompt_token_ids=prompt["prompt_token_ids"], **scope)
        return None

    async def _check_cache(self, request: ReuseRequest, options: ReuseOptions) -> ReuseDecision:
        """Exact tiers, then paraphrases of the whole prompt and of its clauses, then an
        identical request in flight."""
        return await self.reuse_engine.pipeline.check(request, options)

    def _perform_subsentence_similarity_search(
        self, decision: ReuseDecision, backend: Backend
    ) -> AsyncGenerator[Delta | ReuseResult, None]:
        """Generate what `decision` lacks: a compound prompt's missing clauses through vLLM
        concurrently (reused clauses as they are), streamed in clause order; or the whole
        prompt."""
        return self.reuse_engine.pipeline.generate(decision, backend)

    def _do_cache_update(self, decision: ReuseDecision, result: ReuseResult) -> None:
        """Exact tiers: the whole answer and every generated clause."""
        self.reuse_engine.pipeline.store_exact(decision, result)

    def _store_similarity_context(self, decision: ReuseDecision, result: ReuseResult) -> None:
        """Vector records (in the background), with the embeddings the lookup computed."""
        self.reuse_engine.pipeline.store_vectors(decision, result)

    # -- output shaping --------------------------------------------------------------------

    async def _outputs(
        self,
        request: ReuseRequest,
        backend: VLLMBackend,
        options: ReuseOptions,
        prompt: Any,
        sampling_params: SamplingParams,
        request_id: str,
    ) -> AsyncGenerator[RequestOutput, None]:
        """The pipeline's events as the outputs vLLM's caller expects."""
        shaper: OutputShaper | None = None
        info = ReuseInfo(ReuseKind.MISS)
        hit = native = False
        held: RequestOutput | None = None  # vLLM's finished output waits for the store
        events = self.reuse_engine.run(
            request, backend, options, steps=self._steps, request_id=request_id
        )
        async with contextlib.aclosing(events):
            async for event in events:
                if isinstance(event, Decided):
                    info, hit = event.decision.info, event.decision.answer is not None
                    if hit or event.decision.clauses:
                        shaper = self._shaper(request_id, prompt, sampling_params)
                elif isinstance(event, Delta):
                    if isinstance(event.native, RequestOutput):
                        native = True
                        event.native.reuse = info  # type: ignore[attr-defined]
                        if event.native.finished:
                            held = event.native
                        else:
                            yield event.native
                    elif shaper is not None:
                        shaped = shaper.delta(event.text, None, info, finished=False)
                        if shaped is not None:
                            yield shaped
                elif hit and shaper is not None:
                    async for reused in self._stream_hit(request_id, event, shaper):
                        yield reused
                elif native:
                    if held is not None:
                        yield held
                elif shaper is not None:
                    final = shaper.delta("", [], event.info, finished=True, finish_reason="stop")
                    if final is not None:
                        yield final

    def _request_scope(
        self, options: ReuseOptions, sampling_params: SamplingParams, lora_request: Any
    ) -> dict[str, Any]:
        """Where an answer may be reused: the tenant, the served model (answers never cross
        models) and what shapes the answer (sampling parameters, LoRA adapter)."""
        return {
            "namespace": options.namespace,
            "model": str(self.model_config.model),
            "params": self._reuse_params(sampling_params, lora_request),
        }

    # -- helpers -----------------------------------------------------------------------

    @staticmethod
    def _reuse_params(sampling_params: SamplingParams, lora_request: Any) -> dict[str, Any]:
        """What shapes the answer: the sampling parameters and the LoRA adapter."""
        params = dict(public_fields(sampling_params) or {})
        if lora_request is not None:
            params["lora"] = getattr(lora_request, "lora_name", str(lora_request))
        return params

    def _reuse_enabled(self) -> bool:
        features = self.handler_config.features
        return features.enable_exact_cache or features.enable_semantic_reuse

    def _shaper(self, request_id: str, prompt: Any, params: SamplingParams) -> OutputShaper:
        text = prompt if isinstance(prompt, str) else None
        if isinstance(prompt, Mapping) and isinstance(prompt.get("prompt"), str):
            text = prompt["prompt"]
        ids = prompt.get("prompt_token_ids") if isinstance(prompt, Mapping) else None
        tokenizer = self.tokenizer
        if ids is None and text is not None and tokenizer is not None:
            ids = list(tokenizer.encode(text))
        return OutputShaper(request_id, text, ids, params.output_kind, tokenizer)

    async def _stream_hit(
        self, request_id: str, result: ReuseResult, shaper: OutputShaper
    ) -> AsyncGenerator[RequestOutput, None]:
        """A reused answer, chunked for streaming callers; `abort` stops it."""
        aborted = self._reused_streams.setdefault(request_id, asyncio.Event())
        chunk = self.handler_config.performance.hit_stream_chunk_tokens
        try:
            for out in shaper.answer(result.answer, result.info, chunk):
                if aborted.is_set():
                    return
                yield out
                await asyncio.sleep(0)  # let an abort or a cancellation in between chunks
        finally:
            self._reused_streams.pop(request_id, None)


class _SeedSteps:
    """The pipeline's steps, routed through the engine's seed-named hooks."""

    def __init__(self, llm: EnhancedAsyncLLM) -> None:
        self._llm = llm

    async def check(self, request: ReuseRequest, options: ReuseOptions) -> ReuseDecision:
        return await self._llm._check_cache(request, options)

    def generate(
        self, decision: ReuseDecision, backend: Backend
    ) -> AsyncGenerator[Delta | ReuseResult, None]:
        return self._llm._perform_subsentence_similarity_search(decision, backend)

    def store_exact(self, decision: ReuseDecision, result: ReuseResult) -> None:
        self._llm._do_cache_update(decision, result)

    def store_vectors(self, decision: ReuseDecision, result: ReuseResult) -> None:
        self._llm._store_similarity_context(decision, result)


def _check_token_ids(prompt: Any) -> None:
    """Refuse token ids that are not plain ints before vLLM sees them. vLLM 0.32 takes
    ``[False]`` as a token prompt, and its engine process then fails to decode the request
    in the thread that reads every request: the engine hangs for good (found by fuzzing)."""
    ids = prompt.get("prompt_token_ids") if isinstance(prompt, Mapping) else prompt
    if isinstance(ids, list) and any(isinstance(t, bool) or not isinstance(t, int) for t in ids):
        raise InvalidTypeError("prompt token ids must be ints (not bool)")


def reuse_info(output: RequestOutput) -> ReuseInfo | None:
    """The ReuseInfo attached to an output of `EnhancedAsyncLLM.generate` (None if absent)."""
    info = getattr(output, "reuse", None)
    return info if isinstance(info, ReuseInfo) else None


__all__ = ["EnhancedAsyncLLM", "ReuseKind", "reuse_info"]
