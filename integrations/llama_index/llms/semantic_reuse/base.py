"""`SemanticReuseLLM`: a LlamaIndex LLM whose every call goes through reuse.

    from llama_index.core import Settings
    from llama_index.llms.semantic_reuse import SemanticReuseLLM
    Settings.llm = SemanticReuseLLM()                 # in-process vLLM, the default model

All eight methods (complete, chat, their stream and async forms) reuse exact repeats and
paraphrases of the last user message within the same conversation, model and tenant. Each
response's `additional_kwargs["reuse"]` says what was reused; streams say it on their last
response.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator, Sequence
from typing import Any, TypeVar, cast

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.llm import LLM
from llama_index.core.prompts import BasePromptTemplate

from semantic_reuse import Completion
from semantic_reuse.spi import InvalidTypeError, PromptInput, ReuseModelSettings

R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])

#: When neither the setting nor the backend says (an endpoint without a model list).
FALLBACK_CONTEXT_WINDOW = 4096
#: `ChatMessage.additional_kwargs` key: the question inside a templated user message.
QUESTION_KEY = "reuse_question"


def _checked_prompt(method: F) -> F:
    """Refuse a prompt that is not a str before LlamaIndex's callbacks read it (they call
    ``str()`` on it, which a deeply nested value ends in a RecursionError)."""
    return _checked(method, _check_prompt)


def _checked_messages(method: F) -> F:
    """Refuse messages that are not a sequence of `ChatMessage` before the callbacks."""
    return _checked(method, _check_messages)


def _check_prompt(prompt: object) -> None:
    if not isinstance(prompt, str):
        raise InvalidTypeError(f"prompt must be a str, got {type(prompt).__name__}")


def _check_messages(messages: object) -> None:
    if isinstance(messages, str) or not isinstance(messages, Sequence):
        raise InvalidTypeError(
            f"messages must be a list of ChatMessage, got {type(messages).__name__}"
        )
    for message in messages:
        if not isinstance(message, ChatMessage):
            raise InvalidTypeError(f"messages must be ChatMessage, got {type(message).__name__}")


def _checked(method: F, check: Callable[[object], None]) -> F:
    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def checked_async(self: Any, first: Any, *args: Any, **kwargs: Any) -> Any:
            check(first)
            return await method(self, first, *args, **kwargs)

        return cast(F, checked_async)

    @functools.wraps(method)
    def checked(self: Any, first: Any, *args: Any, **kwargs: Any) -> Any:
        check(first)
        return method(self, first, *args, **kwargs)

    return cast(F, checked)


class SemanticReuseLLM(ReuseModelSettings, LLM):
    """A LlamaIndex LLM that reuses earlier answers (see `ReuseModelSettings` for backends:
    an in-process `EnhancedAsyncLLM` by default, or `base_url` for an OpenAI-compatible
    endpoint)."""

    context_window: int | None = None
    """Override the context length the model reports (LlamaIndex sizes prompts by it)."""

    @classmethod
    def class_name(cls) -> str:
        return "SemanticReuseLLM"

    @property
    def metadata(self) -> LLMMetadata:
        client = self.reuse_client()
        window = self.context_window or client.known_context_window or FALLBACK_CONTEXT_WINDOW
        return LLMMetadata(
            context_window=window,
            num_output=self.max_tokens or 256,
            is_chat_model=True,
            model_name=self.resolved_model_name(),
        )

    def _get_messages(self, prompt: BasePromptTemplate, **prompt_args: Any) -> list[ChatMessage]:
        """LlamaIndex's templated messages, the question marked in the last user message.

        Query engines put retrieved text and the question into one message. Compared whole,
        two different questions over the same text look alike; so only `query_str` is
        compared by meaning, and the text around it must be equal (`ReuseRequest.question`).
        """
        messages = super()._get_messages(prompt, **prompt_args)
        # Response synthesizers bind the question early (`partial_format(query_str=...)`).
        query = prompt_args.get("query_str", getattr(prompt, "kwargs", {}).get("query_str"))
        if isinstance(query, str) and query.strip():
            for message in reversed(messages):
                if message.role == MessageRole.USER:
                    if query.strip() in (message.content or ""):
                        message.additional_kwargs[QUESTION_KEY] = query.strip()
                    break
        return messages

    # -- chat ------------------------------------------------------------------------------

    @_checked_messages
    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        prompt, params, options = self._call(to_chat(messages), kwargs, _question(messages))
        return _chat_response(self.reuse_client().complete_sync(prompt, params, options=options))

    @_checked_messages
    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        prompt, params, options = self._call(to_chat(messages), kwargs, _question(messages))
        return _chat_response(await self.reuse_client().acomplete(prompt, params, options=options))

    @_checked_messages
    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        prompt, params, options = self._call(to_chat(messages), kwargs, _question(messages))
        items = self.reuse_client().stream_sync(prompt, params, options=options)
        return _responses(items, _chat_step)

    @_checked_messages
    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        prompt, params, options = self._call(to_chat(messages), kwargs, _question(messages))
        items = self.reuse_client().astream(prompt, params, options=options)
        return _aresponses(items, _chat_step)

    # -- completion: the prompt as one user message -------------------------------------------

    @_checked_prompt
    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        chat, params, options = self._call(self._as_messages(prompt, formatted), kwargs)
        return _completion_response(
            self.reuse_client().complete_sync(chat, params, options=options)
        )

    @_checked_prompt
    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        chat, params, options = self._call(self._as_messages(prompt, formatted), kwargs)
        completion = await self.reuse_client().acomplete(chat, params, options=options)
        return _completion_response(completion)

    @_checked_prompt
    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        chat, params, options = self._call(self._as_messages(prompt, formatted), kwargs)
        items = self.reuse_client().stream_sync(chat, params, options=options)
        return _responses(items, _completion_step)

    @_checked_prompt
    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        chat, params, options = self._call(self._as_messages(prompt, formatted), kwargs)
        items: AsyncIterator[str | Completion] = self.reuse_client().astream(
            chat, params, options=options
        )
        return _aresponses(items, _completion_step)

    # -- helpers -----------------------------------------------------------------------------

    def _as_messages(self, prompt: str, formatted: bool) -> list[dict[str, Any]]:
        if not isinstance(prompt, str):
            raise InvalidTypeError(f"prompt must be a str, got {type(prompt).__name__}")
        if not formatted and self.completion_to_prompt is not None:
            prompt = self.completion_to_prompt(prompt)
        messages = [{"role": "user", "content": prompt}]
        if self.system_prompt:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        return messages

    def _call(
        self, prompt: PromptInput, kwargs: dict[str, Any], question: str | None = None
    ) -> tuple[PromptInput, Any, Any]:
        kwargs = {k: v for k, v in kwargs.items() if k != "formatted"}
        options = self.call_options(kwargs, question)
        return prompt, self.sampling(kwargs.pop("stop", None), **kwargs), options


def to_chat(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """LlamaIndex messages as role/content dicts (text blocks only)."""
    chat: list[dict[str, Any]] = []
    for message in messages:
        if not isinstance(message, ChatMessage):
            raise InvalidTypeError(f"messages must be ChatMessage, got {type(message).__name__}")
        role = message.role.value if isinstance(message.role, MessageRole) else str(message.role)
        chat.append({"role": role, "content": message.content or ""})
    return chat


def _question(messages: Sequence[ChatMessage]) -> str | None:
    for message in reversed(messages):
        if message.role == MessageRole.USER:
            value = message.additional_kwargs.get(QUESTION_KEY)
            return value if isinstance(value, str) and value else None
    return None


def _extra(completion: Completion) -> dict[str, Any]:
    return {
        "reuse": completion.info.to_dict(),
        "model_name": completion.model,
        "finish_reason": completion.finish_reason,
        "usage": completion.usage,
    }


def _chat_response(completion: Completion) -> ChatResponse:
    extra = _extra(completion)
    message = ChatMessage(role=MessageRole.ASSISTANT, content=completion.text,
                          additional_kwargs={"reuse": extra["reuse"]})  # fmt: skip
    return ChatResponse(message=message, raw=extra, additional_kwargs=extra)


def _completion_response(completion: Completion) -> CompletionResponse:
    extra = _extra(completion)
    return CompletionResponse(text=completion.text, raw=extra, additional_kwargs=extra)


def _responses(
    items: Iterator[str | Completion], step: Callable[[str, str | Completion], tuple[str, R]]
) -> Generator[R, None, None]:
    """LlamaIndex stream responses (each with the text so far) from a client's items."""
    text = ""
    for item in items:
        text, response = step(text, item)
        yield response


async def _aresponses(
    items: AsyncIterator[str | Completion],
    step: Callable[[str, str | Completion], tuple[str, R]],
) -> AsyncGenerator[R, None]:
    """`_responses` for async streams."""
    text = ""
    async for item in items:
        text, response = step(text, item)
        yield response


def _chat_step(text: str, item: str | Completion) -> tuple[str, ChatResponse]:
    if isinstance(item, Completion):
        response = _chat_response(item)
        response.delta = ""
        return item.text, response
    text += item
    message = ChatMessage(role=MessageRole.ASSISTANT, content=text)
    return text, ChatResponse(message=message, delta=item)


def _completion_step(text: str, item: str | Completion) -> tuple[str, CompletionResponse]:
    if isinstance(item, Completion):
        response = _completion_response(item)
        response.delta = ""
        return item.text, response
    text += item
    return text, CompletionResponse(text=text, delta=item)


__all__: Sequence[str] = ["SemanticReuseLLM", "to_chat"]
