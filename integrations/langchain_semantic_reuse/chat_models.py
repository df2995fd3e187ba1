"""`ChatSemanticReuse`: a LangChain chat model whose every call goes through reuse.

    from langchain_semantic_reuse import ChatSemanticReuse
    model = ChatSemanticReuse()                      # in-process vLLM, the default model
    model = ChatSemanticReuse(base_url="http://127.0.0.1:8000/v1", model="my-model")

Unlike a LangChain cache (which `.stream()` never consults), reuse here covers `invoke`,
`batch`, `stream` and their async twins. Each answer's `response_metadata["reuse"]` says
what was reused (`ReuseInfo.to_dict()`); `usage_metadata` counts the answer's tokens.

`bind_tools` (and `with_structured_output`, built on it) sends the tools and the tool choice
to an endpoint backend (`base_url`); they are part of the exact key and the fingerprint, so
a tool call is reused only by a request with the same tools and tool choice, and the
`AIMessage` carries `tool_calls` whether they were generated or reused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.language_models.base import LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.output_parsers.openai_tools import make_invalid_tool_call, parse_tool_call
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from langchain_semantic_reuse._messages import to_chat
from semantic_reuse import Completion, GenerationParams, ReuseOptions
from semantic_reuse.spi import ReuseModelSettings, redact_url

PROVIDER = "semantic-reuse"


class ChatSemanticReuse(ReuseModelSettings, BaseChatModel):
    """A chat model that reuses earlier answers to the same or paraphrased questions.

    The last human message is compared by meaning; the system prompt and earlier turns
    must be equal for an answer to transfer (the conversation fingerprint). See
    `ReuseModelSettings` for the backends and settings, docs/langchain.md for a guide.
    """

    @property
    def _llm_type(self) -> str:
        return "semantic-reuse-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.resolved_model_name(),
            "base_url": self.base_url and redact_url(self.base_url),
            **self.sampling().as_dict(),
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        return ls_params(self, "chat", stop, kwargs)

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """This model with `tools` (OpenAI tool schemas, pydantic models, functions or
        LangChain tools) sent with every call. `tool_choice`: ``"auto"``, ``"none"``,
        ``"any"``/``"required"``/True (call one of them), a tool's name (call that one) or
        the API's dict. Needs an endpoint backend (`base_url`) whose server calls tools
        (vLLM: ``--enable-auto-tool-choice --tool-call-parser ...``; a named choice or
        ``"required"`` works with any model, vLLM constrains the output to a call)."""
        formatted = [convert_to_openai_tool(t) for t in tools]
        if tool_choice is not None and tool_choice is not False:
            kwargs["tool_choice"] = openai_tool_choice(tool_choice)
        return super().bind(tools=formatted, **kwargs)

    # -- one call ------------------------------------------------------------------------

    def _request(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], GenerationParams, ReuseOptions]:
        options = self.call_options(kwargs)
        return to_chat(messages), self.sampling(stop, **kwargs), options

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        chat, params, options = self._request(messages, stop, kwargs)
        completion = self.reuse_client().complete_sync(chat, params, options=options)
        return _result(completion)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        chat, params, options = self._request(messages, stop, kwargs)
        completion = await self.reuse_client().acomplete(chat, params, options=options)
        return _result(completion)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        chat, params, options = self._request(messages, stop, kwargs)
        for item in self.reuse_client().stream_sync(chat, params, options=options):
            chunk = _chunk(item)
            if run_manager is not None and isinstance(item, str):
                run_manager.on_llm_new_token(item, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        chat, params, options = self._request(messages, stop, kwargs)
        async for item in self.reuse_client().astream(chat, params, options=options):
            chunk = _chunk(item)
            if run_manager is not None and isinstance(item, str):
                await run_manager.on_llm_new_token(item, chunk=chunk)
            yield chunk


def ls_params(
    model: ReuseModelSettings, model_type: Literal["chat", "llm"], stop: list[str] | None,
    kwargs: dict[str, Any],
) -> LangSmithParams:  # fmt: skip
    """The tracing parameters of one call (the call's model, sampling and stop words win)."""
    params = model.sampling(stop, **kwargs)
    ls = LangSmithParams(
        ls_provider=PROVIDER,
        ls_model_name=model.resolved_model_name(kwargs.get("model")),
        ls_model_type=model_type,
    )
    if params.temperature is not None:
        ls["ls_temperature"] = params.temperature
    if params.max_tokens is not None:
        ls["ls_max_tokens"] = params.max_tokens
    if params.stop:
        ls["ls_stop"] = list(params.stop)
    return ls


def usage_metadata(completion: Completion) -> UsageMetadata:
    return UsageMetadata(
        input_tokens=completion.prompt_tokens,
        output_tokens=completion.completion_tokens,
        total_tokens=completion.prompt_tokens + completion.completion_tokens,
    )


def response_metadata(completion: Completion) -> dict[str, Any]:
    return {
        "model_name": completion.model,
        "model_provider": PROVIDER,
        "finish_reason": completion.finish_reason,
        "reuse": completion.info.to_dict(),
    }


def openai_tool_choice(choice: str | dict[str, Any] | bool) -> str | dict[str, Any]:
    """LangChain's tool choice as the Chat Completions API's."""
    if choice is True or choice in ("any", "required"):
        return "required"
    if choice in ("auto", "none"):
        return str(choice)
    if isinstance(choice, str) and choice:
        return {"type": "function", "function": {"name": choice}}
    if isinstance(choice, dict):
        return choice
    raise TypeError(f"tool_choice must be a str, a dict or a bool, got {choice!r}")


def _tool_calls(calls: Sequence[Mapping[str, Any]]) -> tuple[list[Any], list[Any]]:
    """(tool_calls, invalid_tool_calls) of an `AIMessage`, from the API's calls."""
    valid, invalid = [], []
    for call in calls:
        raw = {"id": call.get("id"), "function": dict(call.get("function") or {})}
        try:
            parsed = parse_tool_call(raw, return_id=True)
        except Exception as exc:  # arguments that are not JSON: LangChain's invalid call
            invalid.append(make_invalid_tool_call(raw, str(exc)))
            continue
        if parsed is not None and not isinstance(parsed.get("args"), dict):
            # JSON that is not an object (a model's bare "Paris"): not a call's arguments
            invalid.append(make_invalid_tool_call(raw, "the arguments are not a JSON object"))
        elif parsed is not None:
            valid.append(parsed)
    return valid, invalid


def _result(completion: Completion) -> ChatResult:
    calls, invalid = _tool_calls(completion.tool_calls)
    message = AIMessage(
        content=completion.text,
        tool_calls=calls,
        invalid_tool_calls=invalid,
        usage_metadata=usage_metadata(completion),
        response_metadata=response_metadata(completion),
    )
    return ChatResult(
        generations=[ChatGeneration(message=message)],
        llm_output={"model_name": completion.model, "token_usage": completion.usage},
    )


def _chunk(item: str | Completion) -> ChatGenerationChunk:
    if isinstance(item, str):
        return ChatGenerationChunk(message=AIMessageChunk(content=item))
    # The final chunk: no text, the tool calls, the usage and the metadata, once.
    chunks = [
        tool_call_chunk(
            name=(call.get("function") or {}).get("name"),
            args=(call.get("function") or {}).get("arguments"),
            id=call.get("id"),
            index=i,
        )
        for i, call in enumerate(item.tool_calls)
    ]
    message = AIMessageChunk(
        content="",
        tool_call_chunks=chunks,
        usage_metadata=usage_metadata(item),
        response_metadata=response_metadata(item),
        chunk_position="last",
    )
    return ChatGenerationChunk(
        message=message, generation_info={"finish_reason": item.finish_reason}
    )


__all__: Sequence[str] = ["ChatSemanticReuse"]
