"""The pipeline's `Backend` over vLLM itself: `AsyncLLM.generate`, never the reuse path.

The whole prompt is generated as the caller asked (its prompt, `SamplingParams`, request id
and keywords), and vLLM's own `RequestOutput`s ride along as `Delta.native`, so a plain miss
looks exactly like `AsyncLLM.generate`. The missing clauses of a compound question are
sub-requests (`<request id>:clause-<n>`, delta outputs) that vLLM batches.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import AsyncIterator
from typing import Any

from vllm.sampling_params import RequestOutputKind, SamplingParams
from vllm.v1.engine.async_llm import AsyncLLM

from semantic_reuse.answer import CachedAnswer
from semantic_reuse.backend import BackendChunk, Delta
from semantic_reuse.errors import InvalidRequestError, InvalidTypeError
from semantic_reuse.redaction import describe_error
from semantic_reuse.request import ReuseRequest


def render_chat(llm: AsyncLLM, messages: list[Any]) -> str:
    """Messages as the model's chat template renders them, ready for generation; messages
    the template cannot render (a role that is not text, content of a shape it does not
    know) are an `InvalidRequestError`, not the template engine's own error."""
    for index, message in enumerate(messages):
        if not isinstance(message.get("role"), str):
            raise InvalidTypeError(f"messages[{index}]['role'] must be a str")
    tokenizer = llm.get_tokenizer()
    try:
        rendered = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
    except Exception as exc:  # jinja2's TemplateError, or a TypeError inside the template
        raise InvalidRequestError(
            f"the model's chat template cannot render these messages: {describe_error(exc)}"
        ) from exc
    if not isinstance(rendered, str):
        raise TypeError("the tokenizer's chat template did not render to text")
    return rendered


class VLLMBackend:
    """Generation through `AsyncLLM.generate` of `llm` for one caller's request.

    `whole` and `prompt`: the caller's request and its prompt as vLLM takes it; that request
    is generated as it is, with vLLM's outputs passed through. Any other request (a clause,
    or every request when `whole` is None) is rendered from its `ReuseRequest`.
    """

    def __init__(
        self,
        llm: AsyncLLM,
        sampling_params: SamplingParams,
        request_id: str,
        generate_kwargs: dict[str, Any] | None = None,
        *,
        whole: ReuseRequest | None = None,
        prompt: Any = None,
    ) -> None:
        if (whole is None) != (prompt is None):
            raise InvalidRequestError("give both whole and prompt, or neither")
        self._llm = llm
        self._whole = whole
        self._prompt = prompt
        self._params = sampling_params
        self._clause_params = copy.copy(sampling_params)
        self._clause_params.output_kind = RequestOutputKind.DELTA
        self._request_id = request_id
        self._kwargs = dict(generate_kwargs or {})
        self.model_name = str(llm.model_config.model)
        self.sub_request_ids: list[str] = []

    def stream(self, request: ReuseRequest) -> AsyncIterator[BackendChunk]:
        if self._whole is not None and request.hash_id == self._whole.hash_id:
            return self._generate_whole(self._whole)
        return self._generate_clause(request)

    def _clause_prompt(self, request: ReuseRequest) -> Any:
        if request.messages is not None:
            return render_chat(self._llm, [dict(m) for m in request.messages])
        if request.prompt is not None:
            return request.prompt
        return {"prompt_token_ids": list(request.prompt_token_ids or [])}

    async def _generate_whole(self, whole: ReuseRequest) -> AsyncIterator[BackendChunk]:
        """vLLM's outputs as they come (`Delta.native`), then the answer they make."""
        delta = self._params.output_kind is RequestOutputKind.DELTA
        text, tokens, finish, finished, prompt_tokens = "", list[int](), None, False, 0
        # AsyncLLM.generate, by name: a subclass of EnhancedAsyncLLM must not loop into reuse.
        outputs = AsyncLLM.generate(
            self._llm, self._prompt, self._params, self._request_id, **self._kwargs
        )
        async with contextlib.aclosing(outputs):  # leaving early aborts the request now
            async for out in outputs:
                piece_text = ""
                if out.outputs:
                    piece = out.outputs[0]
                    piece_text = piece.text if delta else piece.text[len(text) :]
                    text = text + piece.text if delta else piece.text
                    tokens = tokens + list(piece.token_ids) if delta else list(piece.token_ids)
                    finish = piece.finish_reason
                prompt_tokens = len(out.prompt_token_ids or ()) or prompt_tokens
                finished = finished or bool(out.finished)
                yield Delta(piece_text, out)
        yield CachedAnswer(
            text, tuple(tokens), finish_reason=finish if finished else "abort",
            usage={"prompt_tokens": prompt_tokens, "completion_tokens": len(tokens)},
            source_prompt=whole.semantic_text,
        )  # fmt: skip

    async def _generate_clause(self, request: ReuseRequest) -> AsyncIterator[BackendChunk]:
        sub_id = f"{self._request_id}:clause-{len(self.sub_request_ids)}"
        self.sub_request_ids.append(sub_id)
        text, tokens, finish = "", list[int](), None
        outputs = AsyncLLM.generate(
            self._llm, self._clause_prompt(request), self._clause_params, sub_id, **self._kwargs
        )
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
