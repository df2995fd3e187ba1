"""vLLM outputs for reused answers: `CustomRequestOutput`, streamed the way the caller asked.

A hit honours `SamplingParams.output_kind`: FINAL_ONLY gets one finished output;
CUMULATIVE and DELTA get the answer in chunks of `chunk_tokens` tokens (the whole of it
at once when 0), the last one finished, as vLLM itself would stream them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from vllm.outputs import CompletionOutput, RequestOutput
from vllm.sampling_params import RequestOutputKind

from semantic_reuse.answer import CachedAnswer
from semantic_reuse.outcome import ReuseInfo


class CustomRequestOutput(RequestOutput):
    """A `RequestOutput` whose text was reused; `.reuse` says how."""

    def __init__(self, *args: Any, reuse: ReuseInfo, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reuse = reuse


class OutputShaper:
    """Turns text (and token ids) into the outputs one request's `output_kind` asks for."""

    def __init__(
        self,
        request_id: str,
        prompt: str | None,
        prompt_token_ids: list[int] | None,
        output_kind: RequestOutputKind,
        tokenizer: Any | None,
    ) -> None:
        self.request_id = request_id
        self.prompt = prompt
        self.prompt_token_ids = prompt_token_ids
        self.output_kind = output_kind
        self.tokenizer = tokenizer
        self._text = ""
        self._tokens: list[int] = []

    def encode(self, text: str) -> list[int]:
        if self.tokenizer is None or not text:
            return []
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def delta(
        self,
        text: str,
        token_ids: Sequence[int] | None,
        info: ReuseInfo,
        *,
        finished: bool,
        finish_reason: str | None = None,
    ) -> CustomRequestOutput | None:
        """Add a delta of the answer; the output to yield for it (None under FINAL_ONLY
        until the end)."""
        tokens = list(token_ids) if token_ids is not None else self.encode(text)
        self._text += text
        self._tokens += tokens
        if self.output_kind is RequestOutputKind.FINAL_ONLY and not finished:
            return None
        if self.output_kind is RequestOutputKind.DELTA:
            out_text, out_tokens = text, tokens
        else:
            out_text, out_tokens = self._text, list(self._tokens)
        completion = CompletionOutput(
            index=0,
            text=out_text,
            token_ids=out_tokens,
            cumulative_logprob=None,
            logprobs=None,
            finish_reason=finish_reason if finished else None,
        )
        return CustomRequestOutput(
            request_id=self.request_id,
            prompt=self.prompt,
            prompt_token_ids=self.prompt_token_ids,
            prompt_logprobs=None,
            outputs=[completion],
            finished=finished,
            reuse=info,
        )

    def answer(
        self, answer: CachedAnswer, info: ReuseInfo, chunk_tokens: int
    ) -> Iterator[CustomRequestOutput]:
        """The outputs of a whole reused answer, chunked for streaming callers."""
        tokens = list(answer.token_ids) or self.encode(answer.text)
        finish = answer.finish_reason or "stop"
        chunks = _chunks(tokens, chunk_tokens)
        if (
            self.output_kind is RequestOutputKind.FINAL_ONLY
            or len(chunks) < 2
            or not self.tokenizer
        ):
            out = self.delta(answer.text, tokens, info, finished=True, finish_reason=finish)
            assert out is not None
            yield out
            return
        shown = ""
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            upto = sum(len(c) for c in chunks[: i + 1])
            text = answer.text if last else self.tokenizer.decode(tokens[:upto])
            out = self.delta(text[len(shown) :], chunk, info, finished=last, finish_reason=finish)
            shown = text
            if out is not None:
                yield out


def _chunks(tokens: list[int], size: int) -> list[list[int]]:
    if size <= 0 or len(tokens) <= size:
        return [tokens]
    return [tokens[i : i + size] for i in range(0, len(tokens), size)]
