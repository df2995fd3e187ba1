"""What the engine calls to generate an answer it cannot reuse."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from semantic_reuse.answer import CachedAnswer
from semantic_reuse.errors import InvalidRequestError, InvalidTypeError
from semantic_reuse.request import ReuseRequest

BackendChunk = str | CachedAnswer
PromptInput = str | Sequence[Mapping[str, Any]]


@runtime_checkable
class Backend(Protocol):
    """A model: yields text deltas, then exactly one final `CachedAnswer`."""

    def stream(self, request: ReuseRequest) -> AsyncIterator[BackendChunk]: ...


class CallableBackend:
    """Adapts an async function ``fn(prompt_or_messages, params)`` into a `Backend`.

    ``fn`` may return the answer (a str or a `CachedAnswer`), or be an async generator
    yielding text deltas.
    """

    def __init__(
        self,
        fn: Callable[[PromptInput, Any], Awaitable[str | CachedAnswer] | AsyncIterator[str]],
    ) -> None:
        if not callable(fn):
            raise InvalidTypeError(f"fn must be an async function, got {type(fn).__name__}")
        self._fn = fn

    async def stream(self, request: ReuseRequest) -> AsyncIterator[BackendChunk]:
        prompt: PromptInput
        if request.prompt is not None:
            prompt = request.prompt
        elif request.messages is not None:
            prompt = request.messages
        else:
            raise InvalidRequestError("CallableBackend needs a text or chat prompt, not token ids")
        result = self._fn(prompt, request.params)
        if inspect.isasyncgen(result) or isinstance(result, AsyncIterator):
            parts: list[str] = []
            async for delta in result:
                if not isinstance(delta, str):
                    raise InvalidTypeError(f"a streaming backend must yield str, got {type(delta)}")
                parts.append(delta)
                yield delta
            yield CachedAnswer("".join(parts), source_prompt=request.semantic_text)
            return
        if not inspect.isawaitable(result):
            raise InvalidTypeError("fn must be an async function or an async generator function")
        value = await result
        answer = CachedAnswer.from_any(value, source_prompt=request.semantic_text)
        if answer.text:
            yield answer.text
        yield answer
