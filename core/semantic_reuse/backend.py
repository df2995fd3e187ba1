"""What the engine calls to generate an answer it cannot reuse."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from semantic_reuse.answer import CachedAnswer
from semantic_reuse.errors import InvalidRequestError, InvalidTypeError, shown
from semantic_reuse.request import ReuseRequest

PromptInput = str | Sequence[Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Delta:
    """A piece of an answer's text; `native` is the backend's own output object for it (a
    vLLM `RequestOutput`), for a frontend that passes a generated stream through as it is."""

    text: str
    native: object = None


BackendChunk = str | Delta | CachedAnswer


@runtime_checkable
class Backend(Protocol):
    """A model: yields text deltas (str or `Delta`), then exactly one final `CachedAnswer`.

    A backend may also have a ``model_name`` attribute: the model scope of its answers when
    the request names none.
    """

    def stream(self, request: ReuseRequest) -> AsyncIterator[BackendChunk]: ...


def backend_model_name(backend: object) -> str | None:
    """The model a backend says it serves (its ``model_name``), or None."""
    name = getattr(backend, "model_name", None)
    return name if isinstance(name, str) and name else None


class CallableBackend:
    """Adapts an async function ``fn(prompt_or_messages, params)`` into a `Backend`.

    ``fn`` may return the answer (a str or a `CachedAnswer`), or be an async generator
    yielding text deltas. `model` names the model scope of its answers (None: the request's
    `model`, else the engine's `cache.default_model`).
    """

    def __init__(
        self,
        fn: Callable[[PromptInput, Any], Awaitable[str | CachedAnswer] | AsyncIterator[str]],
        *,
        model: str | None = None,
    ) -> None:
        if not callable(fn):
            raise InvalidTypeError(f"fn must be an async function, got {type(fn).__name__}")
        if model is not None and (not isinstance(model, str) or not model):
            raise InvalidTypeError(f"model must be a non-empty str or None, got {shown(model)}")
        self._fn = fn
        self.model_name = model

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
