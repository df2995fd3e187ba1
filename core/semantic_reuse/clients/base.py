"""What framework model classes need from a model behind reuse: `ReuseClient`.

A client generates through reuse (exact repeats, paraphrases, clauses) and reports what it
reused. The logic is written once, as `_stream` on the client's home loop; the public
`astream`/`stream_sync`/`acomplete`/`complete_sync` derive from it and work from any thread
or event loop (`HomeLoop`).
"""

from __future__ import annotations

import abc
import math
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from semantic_reuse.backend import PromptInput
from semantic_reuse.canonical import check_text
from semantic_reuse.clients.loop import HomeLoop
from semantic_reuse.engine import ReuseEngine
from semantic_reuse.errors import InvalidRequestError, InvalidTypeError, shown
from semantic_reuse.options import ReuseOptions
from semantic_reuse.outcome import ReuseInfo
from semantic_reuse.request import validate_namespace


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """The sampling parameters a framework model passes on (None: the backend's default).

    `tools`, `tool_choice` and `response_format` are the Chat Completions API's (an endpoint
    backend sends them on; the in-process engine refuses them). Like every field here they
    shape the answer, so they join the exact key and the fingerprint: a tool call is never
    replayed to a request with other tools or another tool choice."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    tools: tuple[Mapping[str, Any], ...] | None = None
    tool_choice: str | Mapping[str, Any] | None = None
    response_format: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        _check_number("max_tokens", self.max_tokens, integer=True, low=1)
        _check_number("temperature", self.temperature, low=0.0)
        _check_number("top_p", self.top_p, low=0.0, high=1.0)
        _check_number("seed", self.seed, integer=True)
        stop = self.stop
        if (
            isinstance(stop, str)
            or not isinstance(stop, Sequence)
            or not all(isinstance(s, str) and s for s in stop)
        ):
            raise InvalidTypeError("stop must be a sequence of non-empty strings")
        object.__setattr__(self, "stop", tuple(check_text(s, "stop") for s in stop))
        if self.tools is not None:
            tools = self.tools
            if isinstance(tools, (str, Mapping)) or not isinstance(tools, Sequence):
                raise InvalidTypeError(f"tools must be a list of dicts, got {type(tools).__name__}")
            if not all(isinstance(t, Mapping) for t in tools):
                raise InvalidTypeError("tools must be a list of dicts (OpenAI tool schemas)")
            object.__setattr__(self, "tools", tuple(tools) or None)
        choice = self.tool_choice
        if choice is not None and not isinstance(choice, (str, Mapping)):
            raise InvalidTypeError(
                f"tool_choice must be a str or a dict, got {type(choice).__name__}"
            )
        if self.response_format is not None and not isinstance(self.response_format, Mapping):
            raise InvalidTypeError(
                f"response_format must be a dict, got {type(self.response_format).__name__}"
            )

    @property
    def structured(self) -> bool:
        """Whether tools, a tool choice or an output format shape the answer."""
        return bool(self.tools or self.tool_choice or self.response_format)

    def as_dict(self) -> dict[str, Any]:
        """The parameters that are set (they shape the answer, so they scope reuse)."""
        data: dict[str, Any] = {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
        }
        if self.stop:
            data["stop"] = list(self.stop)
        if self.tools:
            data["tools"] = [dict(t) for t in self.tools]
        data["tool_choice"] = self.tool_choice
        data["response_format"] = self.response_format
        return {k: v for k, v in data.items() if v is not None}


def _check_number(
    name: str, value: object, *, integer: bool = False, low: float | None = None,
    high: float | None = None,
) -> None:  # fmt: skip
    if value is None:
        return
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "an int" if integer else "a number"
        raise InvalidTypeError(f"{name} must be {kind} or None, got {type(value).__name__}")
    if (
        (isinstance(value, float) and not math.isfinite(value))
        or (low is not None and value < low)
        or (high is not None and value > high)
        or abs(value) >= 2**63  # no backend takes more (and floats overflow on the way)
    ):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        bounds = "finite and below 2**63" if low is None and high is None else bounds
        raise InvalidRequestError(f"{name} must be {bounds}, got {shown(value)}")


@dataclass(frozen=True, slots=True)
class Completion:
    """The end of one generation: the whole text, what was reused, token counts."""

    text: str
    info: ReuseInfo
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = "stop"
    extra: Mapping[str, Any] = field(default_factory=dict)
    tool_calls: tuple[Mapping[str, Any], ...] = ()
    """The tool calls of the answer, generated or reused, as the Chat Completions API gives
    them (``{"id", "type": "function", "function": {"name", "arguments"}}``)."""

    @property
    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


class ReuseClient(abc.ABC):
    """A model behind reuse, callable from sync code and from any event loop."""

    def __init__(self, home: HomeLoop | None = None) -> None:
        self._home_loop = home

    @property
    @abc.abstractmethod
    def model_name(self) -> str:
        """The model's name as the backend knows it."""

    @abc.abstractmethod
    async def context_window(self) -> int | None:
        """The model's context length in tokens, when the backend says (home loop)."""

    @property
    def known_context_window(self) -> int | None:
        """The context length if known without asking the backend (callable anywhere)."""
        return None

    @abc.abstractmethod
    def _stream(
        self, prompt: PromptInput, params: GenerationParams, options: ReuseOptions
    ) -> AsyncIterator[str | Completion]:
        """Text deltas, then one `Completion`; runs on the home loop."""

    @abc.abstractmethod
    async def reuse_engine(self) -> ReuseEngine:
        """The `ReuseEngine` that decides for this client (home loop)."""

    @abc.abstractmethod
    async def _aclose(self) -> None:
        """Release what this client owns (home loop)."""

    def home(self) -> HomeLoop:
        """The loop this client's resources live on (a private loop thread by default)."""
        if self._home_loop is None:
            self._home_loop = HomeLoop.private()
        return self._home_loop

    # -- derived: any thread, any loop -----------------------------------------------------

    def astream(
        self, prompt: PromptInput, params: GenerationParams | None = None, *,
        options: ReuseOptions | None = None, **option_kwargs: Any,
    ) -> AsyncIterator[str | Completion]:  # fmt: skip
        """Text deltas, then one `Completion` (from any event loop). The reuse options come
        as `options=` or as keywords (namespace, threshold or max_error_rate, reuse, question,
        ttl_s, sliding, tags: `ReuseOptions`)."""
        return self.home().iterate(self._checked(prompt, params, options, option_kwargs))

    def stream_sync(
        self, prompt: PromptInput, params: GenerationParams | None = None, *,
        options: ReuseOptions | None = None, **option_kwargs: Any,
    ) -> Iterator[str | Completion]:  # fmt: skip
        """`astream` for sync code."""
        return self.home().iterate_sync(self._checked(prompt, params, options, option_kwargs))

    async def acomplete(
        self, prompt: PromptInput, params: GenerationParams | None = None, *,
        options: ReuseOptions | None = None, **option_kwargs: Any,
    ) -> Completion:  # fmt: skip
        """The whole answer (from any event loop)."""
        source = self._checked(prompt, params, options, option_kwargs)
        return await self.home().run(_last(source))

    def complete_sync(
        self, prompt: PromptInput, params: GenerationParams | None = None, *,
        options: ReuseOptions | None = None, **option_kwargs: Any,
    ) -> Completion:  # fmt: skip
        """`acomplete` for sync code."""
        return self.home().run_sync(_last(self._checked(prompt, params, options, option_kwargs)))

    async def aclear_namespace(self, namespace: str) -> None:
        """Forget every answer of one tenant (its documents changed, it left)."""
        namespace = validate_namespace(namespace)
        await self.home().run(_clear(self, namespace))

    def clear_namespace(self, namespace: str) -> None:
        """`aclear_namespace` for sync code."""
        namespace = validate_namespace(namespace)
        self.home().run_sync(_clear(self, namespace))

    async def aclose(self) -> None:
        """Release the engine or connection this client owns, then its loop thread."""
        await self.home().run(self._aclose())
        self.home().close()

    def close(self) -> None:
        self.home().run_sync(self._aclose())
        self.home().close()

    def _checked(
        self, prompt: PromptInput, params: GenerationParams | None,
        options: ReuseOptions | None, option_kwargs: dict[str, Any],
    ) -> AsyncIterator[str | Completion]:  # fmt: skip
        if params is not None and not isinstance(params, GenerationParams):
            raise InvalidTypeError(f"params must be GenerationParams, got {type(params).__name__}")
        if isinstance(prompt, str):
            if not prompt.strip():
                raise InvalidRequestError("prompt must not be empty")
        elif not isinstance(prompt, list | tuple) or not prompt:
            raise InvalidTypeError("prompt must be a non-empty str or a non-empty list of messages")
        opts = ReuseOptions.of(options, **option_kwargs)
        return self._stream(prompt, params or GenerationParams(), opts)


async def _clear(client: ReuseClient, namespace: str) -> None:
    await (await client.reuse_engine()).clear(namespace)


async def _last(source: AsyncIterator[str | Completion]) -> Completion:
    final: Completion | None = None
    async for item in source:
        if isinstance(item, Completion):
            final = item
    if final is None:
        raise RuntimeError("the client's stream ended without a Completion")
    return final
