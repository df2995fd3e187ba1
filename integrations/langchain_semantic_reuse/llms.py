"""`SemanticReuseLLM`: a LangChain string LLM whose every call goes through reuse.

By default a prompt is sent as one user message through the model's chat template (an
instruct model answers well only that way); `as_chat=False` sends it as raw text to
complete. Each generation's `generation_info["reuse"]` says what was reused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import LLM, LangSmithParams
from langchain_core.outputs import Generation, GenerationChunk, LLMResult

from langchain_semantic_reuse.chat_models import ls_params, response_metadata
from semantic_reuse import Completion
from semantic_reuse.spi import InvalidTypeError, PromptInput, ReuseModelSettings, redact_url


class SemanticReuseLLM(ReuseModelSettings, LLM):
    """A text-in, text-out LLM that reuses earlier answers to the same or paraphrased
    prompts (see `ReuseModelSettings` for backends and settings)."""

    as_chat: bool = True
    """Send the prompt as one user message through the chat template (False: raw text)."""

    @property
    def _llm_type(self) -> str:
        return "semantic-reuse-llm"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.resolved_model_name(),
            "base_url": self.base_url and redact_url(self.base_url),
            "as_chat": self.as_chat,
            **self.sampling().as_dict(),
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        return ls_params(self, "llm", stop, kwargs)

    def _prompt(self, prompt: str) -> PromptInput:
        if not isinstance(prompt, str):
            raise InvalidTypeError(f"prompt must be a str, got {type(prompt).__name__}")
        return [{"role": "user", "content": prompt}] if self.as_chat else prompt

    def _call(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> str:
        return self._generate([prompt], stop, run_manager, **kwargs).generations[0][0].text

    def _generate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        params, options = self.sampling(stop, **kwargs), self.call_options(kwargs)
        client = self.reuse_client()
        completions = [
            client.complete_sync(self._prompt(p), params, options=options) for p in prompts
        ]
        return _result(completions)

    async def _agenerate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        params, options = self.sampling(stop, **kwargs), self.call_options(kwargs)
        client = self.reuse_client()
        completions = [
            await client.acomplete(self._prompt(p), params, options=options) for p in prompts
        ]
        return _result(completions)

    def _stream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[GenerationChunk]:
        params, options = self.sampling(stop, **kwargs), self.call_options(kwargs)
        for item in self.reuse_client().stream_sync(self._prompt(prompt), params, options=options):
            chunk = _chunk(item)
            if run_manager is not None and isinstance(item, str):
                run_manager.on_llm_new_token(item, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[GenerationChunk]:
        params, options = self.sampling(stop, **kwargs), self.call_options(kwargs)
        async for item in self.reuse_client().astream(
            self._prompt(prompt), params, options=options
        ):
            chunk = _chunk(item)
            if run_manager is not None and isinstance(item, str):
                await run_manager.on_llm_new_token(item, chunk=chunk)
            yield chunk


def _info(completion: Completion) -> dict[str, Any]:
    return {**response_metadata(completion), "usage": completion.usage}


def _result(completions: list[Completion]) -> LLMResult:
    return LLMResult(
        generations=[[Generation(text=c.text, generation_info=_info(c))] for c in completions],
        llm_output={"model_name": completions[0].model if completions else None},
    )


def _chunk(item: str | Completion) -> GenerationChunk:
    if isinstance(item, str):
        return GenerationChunk(text=item)
    return GenerationChunk(text="", generation_info=_info(item))
