"""The ReuseEngine's `Backend` over vLLM itself: clause sub-requests through `AsyncLLM.generate`."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from vllm.sampling_params import RequestOutputKind, SamplingParams
from vllm.v1.engine.async_llm import AsyncLLM

from semantic_reuse.answer import CachedAnswer
from semantic_reuse.backend import BackendChunk
from semantic_reuse.request import ReuseRequest

if TYPE_CHECKING:
    from semantic_reuse.vllm.engine import EnhancedAsyncLLM


def render_chat(llm: AsyncLLM, messages: list[Any]) -> str:
    """Messages as the model's chat template renders them, ready for generation."""
    tokenizer = llm.get_tokenizer()
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if not isinstance(rendered, str):
        raise TypeError("the tokenizer's chat template did not render to text")
    return rendered


class VLLMBackend:
    """Generates sub-requests with the engine's own `AsyncLLM.generate` (not the reuse
    path: the engine already decided these parts are missing), so vLLM batches them."""

    def __init__(
        self,
        llm: EnhancedAsyncLLM,
        sampling_params: SamplingParams,
        request_id: str,
        generate_kwargs: dict[str, Any],
    ) -> None:
        self._llm = llm
        self._params = copy.copy(sampling_params)
        self._params.output_kind = RequestOutputKind.DELTA
        self._request_id = request_id
        self._kwargs = generate_kwargs
        self.sub_request_ids: list[str] = []

    def _prompt(self, request: ReuseRequest) -> Any:
        if request.messages is not None:
            return render_chat(self._llm, [dict(m) for m in request.messages])
        if request.prompt is not None:
            return request.prompt
        return {"prompt_token_ids": list(request.prompt_token_ids or [])}

    async def stream(self, request: ReuseRequest) -> AsyncIterator[BackendChunk]:
        sub_id = f"{self._request_id}:clause-{len(self.sub_request_ids)}"
        self.sub_request_ids.append(sub_id)
        text, tokens, finish = "", list[int](), None
        generate = super(type(self._llm), self._llm).generate
        outputs = generate(self._prompt(request), self._params, sub_id, **self._kwargs)
        async with contextlib.aclosing(outputs):  # leaving early aborts the sub-request now
            async for out in outputs:
                if not out.outputs:
                    continue
                piece = out.outputs[0]
                text += piece.text
                tokens += list(piece.token_ids)
                finish = piece.finish_reason
                if piece.text:
                    yield piece.text
        yield CachedAnswer(text, tuple(tokens), finish_reason=finish,
                           usage={"completion_tokens": len(tokens)},
                           source_prompt=request.semantic_text)  # fmt: skip
