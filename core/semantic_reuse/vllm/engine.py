"""`EnhancedAsyncLLM`: vLLM's `AsyncLLM` whose requests gain exact, semantic and clause reuse.

A drop-in subclass: same constructors (`from_vllm_config`, `from_engine_args`, ending in
``cls(...)``), same `generate` contract. Each request goes through the `ReuseEngine`:

    _generate_hash_id                  the request's key (model, namespace, prompt, params, LoRA)
    _check_cache                       exact tiers, then paraphrases, then clauses
    hit                             -> CustomRequestOutput(s), honouring output_kind
    miss, whole prompt              -> vLLM's own outputs (+ .reuse); identical requests in
                                       flight share one generation
    miss or partial, compound       -> _perform_subsentence_similarity_search: the missing
                                       clauses through super().generate concurrently (vLLM
                                       batches them), streamed back as one request
    _do_cache_update                   exact tiers, once the answer finished normally
    _store_similarity_context          vector records (whole prompt and generated clauses)
    _create_task                       background work the engine tracks

Aborted, failed or unfinished outputs are never stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncGenerator, Coroutine, Mapping, Sequence
from typing import Any, Self

from vllm.outputs import RequestOutput
from vllm.sampling_params import RequestOutputKind, SamplingParams
from vllm.v1.engine.async_llm import AsyncLLM

from semantic_reuse.answer import CachedAnswer
from semantic_reuse.config import HandlerConfig
from semantic_reuse.engine import ReuseEngine
from semantic_reuse.exact.tiers import MultiLevelCacheManager
from semantic_reuse.outcome import ReuseInfo, ReuseKind, ReuseResult
from semantic_reuse.planning import ReuseDecision, compose
from semantic_reuse.request import DEFAULT_NAMESPACE, ReuseRequest, public_fields
from semantic_reuse.semantic.search import SimilaritySearchHelper, check_threshold
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
        self.reuse_engine = reuse_engine or ReuseEngine(
            self.handler_config, cache=cache_manager, search=similarity_search_helper
        )
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
        namespace: str = DEFAULT_NAMESPACE,
        reuse: bool = True,
        threshold: float | None = None,
        question: str | None = None,
        reuse_request: ReuseRequest | None = None,
        **kwargs: Any,
    ) -> AsyncGenerator[RequestOutput, None]:
        """`AsyncLLM.generate` with reuse. Extra keywords: `namespace` (tenant), `reuse`
        (False: no semantic reuse for this call; an exact hit still counts), `threshold`
        (this call's similarity threshold in [0, 1]; None: the configured one), `question`
        (the question inside a templated prompt: only it is compared by meaning)."""
        check_threshold(threshold, "threshold")
        request = reuse_request or self._generate_hash_id(
            prompt, sampling_params, kwargs.get("lora_request"), namespace
        )
        if request is not None and question is not None and reuse_request is None:
            request = dataclasses.replace(request, question=question)
        if request is None or not self._reuse_enabled():
            plain = super().generate(prompt, sampling_params, request_id, **kwargs)
            async with contextlib.aclosing(plain):
                async for out in plain:
                    out.reuse = None  # type: ignore[attr-defined]
                    yield out
            return
        decision = await self._check_cache(request, reuse, threshold)
        if decision.answer is not None or decision.clauses:
            # Only outputs made here need the prompt's token ids; a plain miss is vLLM's own.
            shaper = self._shaper(request_id, prompt, sampling_params)
        if decision.answer is not None:
            async for out in self._stream_hit(request_id, decision, shaper):
                yield out
            self.reuse_engine.record(decision, ReuseResult(decision.answer, decision.info))
            return
        if decision.clauses:
            outputs = self._perform_subsentence_similarity_search(
                decision, request_id, sampling_params, shaper, kwargs
            )
        else:
            outputs = self._generate_whole(decision, prompt, sampling_params, request_id, kwargs)
        async with contextlib.aclosing(outputs):
            async for out in outputs:
                yield out

    async def abort(self, request_id: str | Any, internal: bool = False) -> None:
        """Abort requests, reused ones and the clause sub-requests of compound ones too."""
        ids = [request_id] if isinstance(request_id, str) else list(request_id)
        engine_ids: list[str] = []
        for rid in ids:
            if rid in self._reused_streams:
                self._reused_streams[rid].set()
            engine_ids += self._clause_ids.get(rid, [rid])
        await super().abort(engine_ids, internal)

    async def generate_chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        sampling_params: SamplingParams,
        request_id: str,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        reuse: bool = True,
        threshold: float | None = None,
        question: str | None = None,
        **kwargs: Any,
    ) -> AsyncGenerator[RequestOutput, None]:
        """Chat messages through the model's chat template. Reuse goes by the last user
        turn (or by `question` inside it: the rest of the turn, such as retrieved context,
        must then be equal); the system prompt and earlier turns are the conversation's
        fingerprint, so an answer is never replayed into another conversation."""
        request = ReuseRequest(
            messages=messages,
            namespace=namespace,
            model=str(self.model_config.model),
            params=self._reuse_params(sampling_params, kwargs.get("lora_request")),
            question=question,
        )
        prompt = render_chat(self, [dict(m) for m in messages])
        outputs = self.generate(
            prompt, sampling_params, request_id, reuse=reuse, threshold=threshold,
            reuse_request=request, **kwargs,
        )  # fmt: skip
        async with contextlib.aclosing(outputs):
            async for out in outputs:
                yield out

    async def aclose(self) -> None:
        """Close the reuse engine (waits for background stores) and shut vLLM down."""
        await self.reuse_engine.aclose()
        self.shutdown()

    # -- the steps (the seed's names) ---------------------------------------------------

    def _generate_hash_id(
        self,
        prompt: Any,
        sampling_params: SamplingParams,
        lora_request: Any,
        namespace: str,
    ) -> ReuseRequest | None:
        """The request's key, or None for a prompt reuse cannot key (multimodal, embeds)."""
        params = self._reuse_params(sampling_params, lora_request)
        model = str(self.model_config.model)
        if isinstance(prompt, str):
            return ReuseRequest(prompt, namespace=namespace, model=model, params=params)
        if isinstance(prompt, Mapping) and set(prompt) <= {"prompt", "prompt_token_ids"}:
            if isinstance(prompt.get("prompt"), str):
                return ReuseRequest(prompt["prompt"], namespace=namespace, model=model,
                                    params=params)  # fmt: skip
            if isinstance(prompt.get("prompt_token_ids"), list):
                return ReuseRequest(prompt_token_ids=prompt["prompt_token_ids"],
                                    namespace=namespace, model=model, params=params)  # fmt: skip
        return None

    async def _check_cache(
        self, request: ReuseRequest, reuse: bool, threshold: float | None = None
    ) -> ReuseDecision:
        """Exact tiers, then paraphrases of the whole prompt and of its clauses, then an
        identical request in flight."""
        return await self.reuse_engine.decide(request, threshold=threshold, reuse=reuse)

    async def _perform_subsentence_similarity_search(
        self,
        decision: ReuseDecision,
        request_id: str,
        sampling_params: SamplingParams,
        shaper: OutputShaper,
        kwargs: dict[str, Any],
    ) -> AsyncGenerator[RequestOutput, None]:
        """A compound prompt: reused clauses as they are, missing ones generated through
        vLLM concurrently, streamed back in clause order as one request."""
        backend = VLLMBackend(self, sampling_params, request_id, kwargs)
        self._clause_ids[request_id] = backend.sub_request_ids
        key = decision.plan.request.hash_id
        try:
            with self.reuse_engine.flights.lead(key) as flight:
                result: ReuseResult | None = None
                parts = compose(decision, backend, self.reuse_engine.metrics)
                async with contextlib.aclosing(parts):  # leaving early cancels the clauses
                    async for item in parts:
                        if isinstance(item, ReuseResult):
                            result = item
                            continue
                        out = shaper.delta(item, None, decision.info, finished=False)
                        if out is not None:
                            yield out
                assert result is not None
                final = shaper.delta("", [], result.info, finished=True, finish_reason="stop")
                assert final is not None
                yield final
                self._do_cache_update(decision, result)
                self._store_similarity_context(decision, result)
                flight.set_result(result)
        finally:
            self._clause_ids.pop(request_id, None)

    async def _generate_whole(
        self,
        decision: ReuseDecision,
        prompt: Any,
        sampling_params: SamplingParams,
        request_id: str,
        kwargs: dict[str, Any],
    ) -> AsyncGenerator[RequestOutput, None]:
        """A miss: vLLM's own outputs with `.reuse`; the finished answer is stored."""
        info = decision.info
        key = decision.plan.request.hash_id
        delta = sampling_params.output_kind is RequestOutputKind.DELTA
        text, tokens, last = "", list[int](), None
        outputs = super().generate(prompt, sampling_params, request_id, **kwargs)
        # aclosing: leaving early aborts the vLLM request now, not when it is collected.
        with self.reuse_engine.flights.lead(key) as flight:
            async with contextlib.aclosing(outputs):
                async for out in outputs:
                    out.reuse = info  # type: ignore[attr-defined]
                    if out.outputs:
                        piece = out.outputs[0]
                        text = text + piece.text if delta else piece.text
                        tokens = tokens + list(piece.token_ids) if delta else list(piece.token_ids)
                    last = out
                    yield out
            finish = last.outputs[0].finish_reason if last and last.outputs else None
            if last is not None and last.finished and finish in ("stop", "length"):
                answer = CachedAnswer(
                    text, tuple(tokens), finish_reason=finish,
                    usage={"prompt_tokens": len(last.prompt_token_ids or []),
                           "completion_tokens": len(tokens)},
                    source_prompt=decision.plan.request.semantic_text,
                )  # fmt: skip
                result = ReuseResult(answer, info)
                self._do_cache_update(decision, result)
                self._store_similarity_context(decision, result)
                flight.set_result(result)

    def _do_cache_update(self, decision: ReuseDecision, result: ReuseResult) -> None:
        """Exact tiers: the whole answer and every generated clause."""
        self.reuse_engine.write_exact(decision.plan.exact_writes(result))

    def _store_similarity_context(self, decision: ReuseDecision, result: ReuseResult) -> None:
        """Vector records (in the background), with the embeddings the lookup computed."""
        plan = decision.plan
        self.reuse_engine.write_vectors(plan.vector_writes(result), plan.vectors)

    def _create_task(self, coro: Coroutine[Any, Any, None]) -> None:
        """Background work that `flush`/`aclose` of the reuse engine wait for."""
        self.reuse_engine.background(coro)

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
        self, request_id: str, decision: ReuseDecision, shaper: OutputShaper
    ) -> AsyncGenerator[RequestOutput, None]:
        """A reused answer, chunked for streaming callers; `abort` stops it."""
        assert decision.answer is not None
        aborted = self._reused_streams.setdefault(request_id, asyncio.Event())
        chunk = self.handler_config.performance.hit_stream_chunk_tokens
        info = decision.info
        try:
            for out in shaper.answer(decision.answer, info, chunk):
                if aborted.is_set():
                    return
                yield out
                await asyncio.sleep(0)  # let an abort or a cancellation in between chunks
        finally:
            self._reused_streams.pop(request_id, None)


def reuse_info(output: RequestOutput) -> ReuseInfo | None:
    """The ReuseInfo attached to an output of `EnhancedAsyncLLM.generate` (None if absent)."""
    info = getattr(output, "reuse", None)
    return info if isinstance(info, ReuseInfo) else None


__all__ = ["EnhancedAsyncLLM", "ReuseKind", "reuse_info"]
