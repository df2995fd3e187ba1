"""`ServedAsyncLLM`: the `EnhancedAsyncLLM` that vLLM's OpenAI server runs on.

vLLM's serving layer renders a chat itself and calls `generate` with the rendered tokens
(a ``{"type": "token", ...}`` input). This subclass keys that call by what the client sent
instead, read from the request's `RequestSlot`: the chat messages (so that the last user
turn is compared by meaning and the rest of the conversation is the fingerprint) or the
completion prompt, the sampling parameters, and every answer-shaping body field (tools,
tool_choice, response_format...). vLLM still generates the prompt it rendered.

Per request: the tenant's namespace, the threshold or error budget header,
``Cache-Control: no-cache`` (no lookup, store the fresh answer) and ``no-store`` (no store).
Requests reuse cannot answer faithfully are generated as they are: several choices
(``n > 1``), log probabilities, beam search, batched completion prompts, multimodal or
embedding inputs.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

from vllm.outputs import RequestOutput
from vllm.sampling_params import RequestOutputKind, SamplingParams
from vllm.v1.engine.async_llm import AsyncLLM

from semantic_reuse.options import ReuseOptions
from semantic_reuse.outcome import ReuseKind, ReuseResult
from semantic_reuse.planning import Plan, ReuseDecision
from semantic_reuse.request import ReuseRequest
from semantic_reuse.server.slot import CHAT, RequestSlot, current_slot
from semantic_reuse.vllm.engine import EnhancedAsyncLLM, reuse_info


class ServedAsyncLLM(EnhancedAsyncLLM):
    """`EnhancedAsyncLLM` whose requests take their reuse scope from the HTTP request."""

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
        slot = current_slot()
        if slot is None or options is not None or reuse_request is not None:
            outputs = super().generate(
                prompt, sampling_params, request_id,
                options=options, reuse_request=reuse_request, **kwargs,
            )  # fmt: skip
        else:
            outputs = self._served(slot, prompt, sampling_params, request_id, kwargs)
        async with contextlib.aclosing(outputs):
            async for out in outputs:
                yield out

    async def _served(
        self, slot: RequestSlot, prompt: Any, params: SamplingParams, request_id: str,
        kwargs: dict[str, Any],
    ) -> AsyncGenerator[RequestOutput, None]:  # fmt: skip
        refusal = self._refusal(slot, prompt, params)
        if refusal is not None:
            slot.bypass(refusal)
            outputs = AsyncLLM.generate(self, prompt, params, request_id, **kwargs)
        else:
            request = self._reuse_request(slot, prompt, params, kwargs.get("lora_request"))
            opts = ReuseOptions(
                namespace=slot.namespace, threshold=slot.threshold, ttl_s=slot.ttl_s,
                tags=slot.tags, max_error_rate=slot.max_error_rate,
            )  # fmt: skip
            outputs = super().generate(
                prompt, params, request_id, options=opts, reuse_request=request, **kwargs
            )
        delta = params.output_kind is RequestOutputKind.DELTA
        async with contextlib.aclosing(outputs):
            async for out in outputs:
                slot.note(reuse_info(out))
                if out.outputs:
                    tokens = len(out.outputs[0].token_ids)
                    slot.completion_tokens = slot.completion_tokens + tokens if delta else tokens
                yield out

    def _refusal(self, slot: RequestSlot, prompt: Any, params: SamplingParams) -> str | None:
        """Why this request is generated without reuse, or None."""
        if not slot.reusable:
            return "endpoint"
        if not isinstance(prompt, Mapping) or prompt.get("type") != "token":
            return "input"  # multimodal, embeddings, or a raw prompt
        if params.n != 1:
            return "n>1"
        if params.logprobs is not None or params.prompt_logprobs is not None:
            return "logprobs"
        if slot.endpoint == CHAT and not _text_only(slot.body.get("messages") or []):
            return "input"
        if slot.endpoint != CHAT and _batched(slot.body.get("prompt")):
            return "batch"
        return None

    def _reuse_request(
        self, slot: RequestSlot, prompt: Mapping[str, Any], params: SamplingParams, lora: Any
    ) -> ReuseRequest:
        scope = self._request_scope(
            ReuseOptions(namespace=slot.namespace), params, lora
        )  # namespace, model, sampling params (+ LoRA)
        scope["params"] = {**scope["params"], "request": slot.request_params()}
        if slot.endpoint == CHAT:
            messages = [_message(m) for m in slot.body.get("messages") or []]
            return ReuseRequest(messages=messages, **scope)
        text = slot.body.get("prompt")
        if isinstance(text, list) and len(text) == 1 and isinstance(text[0], str):
            text = text[0]
        if isinstance(text, str):
            return ReuseRequest(text, **scope)
        return ReuseRequest(prompt_token_ids=list(prompt["prompt_token_ids"]), **scope)

    # -- the seed's hooks, per request ------------------------------------------------------

    async def _check_cache(self, request: ReuseRequest, options: ReuseOptions) -> ReuseDecision:
        slot = current_slot()
        if slot is not None and slot.no_cache:
            plan = Plan(request)
            plan.refused_by = "no-cache"
            return plan.decision(0.0)
        decision = await super()._check_cache(request, options)
        if slot is not None and slot.structured() and decision.kind in _CLAUSE_KINDS:
            # A clause is generated without the tools or the format: never split these.
            decision.plan.clauses = []
            decision.plan.refused_by = "structured"
            return decision.plan.decision(decision.info.elapsed_s)
        return decision

    def _do_cache_update(self, decision: ReuseDecision, result: ReuseResult) -> None:
        if not _no_store():
            super()._do_cache_update(decision, result)

    def _store_similarity_context(self, decision: ReuseDecision, result: ReuseResult) -> None:
        if not _no_store():
            super()._store_similarity_context(decision, result)


_CLAUSE_KINDS = (ReuseKind.COMPOSED, ReuseKind.PARTIAL)


def _no_store() -> bool:
    slot = current_slot()
    return slot is not None and slot.no_store


def _batched(prompt: object) -> bool:
    """Several prompts in one completion request (a list of texts or of token lists)."""
    if not isinstance(prompt, list) or len(prompt) < 2:
        return False
    return not all(isinstance(p, int) for p in prompt)


def _message(message: object) -> dict[str, Any]:
    """A chat message as the key reads it (a tool-call turn may carry no content)."""
    if not isinstance(message, Mapping):
        return {"role": None, "content": message}
    return {"content": None, **message}


def _text_only(messages: Sequence[object]) -> bool:
    """True when every message's content is a string or text parts only."""
    for message in messages:
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, list) and any(
            not isinstance(p, Mapping) or p.get("type") != "text" for p in content
        ):
            return False
    return True
