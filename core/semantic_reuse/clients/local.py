"""`VLLMClient`: an in-process `EnhancedAsyncLLM` behind the framework model classes.

Reuse happens inside the engine (`EnhancedAsyncLLM.generate` / `generate_chat`). Given no
engine, the client starts one on the default model (`semantic-reuse prepare-model`) the
first time it is used, on a loop thread of its own, and shuts it down on `close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from semantic_reuse.backend import PromptInput
from semantic_reuse.clients.base import Completion, GenerationParams, ReuseClient
from semantic_reuse.clients.loop import HomeLoop
from semantic_reuse.config import HandlerConfig
from semantic_reuse.engine import ReuseEngine
from semantic_reuse.errors import ConfigurationError, InvalidRequestError, InvalidTypeError
from semantic_reuse.options import ReuseOptions
from semantic_reuse.outcome import ReuseInfo, ReuseKind
from semantic_reuse.vllm.model import DEFAULT_MAX_MODEL_LEN

if TYPE_CHECKING:
    from semantic_reuse.vllm.engine import EnhancedAsyncLLM


class VLLMClient(ReuseClient):
    """Generation through an in-process `EnhancedAsyncLLM`.

    Args:
        llm: a running engine (its owner closes it); None: the client starts its own.
        model: the model folder for an engine the client starts (default: the default model).
        engine_options: `AsyncEngineArgs` fields for an engine the client starts.
        handler_config: the reuse configuration of an engine the client starts.
    """

    def __init__(
        self,
        llm: EnhancedAsyncLLM | None = None,
        *,
        model: str | Path | None = None,
        engine_options: Mapping[str, Any] | None = None,
        handler_config: HandlerConfig | None = None,
    ) -> None:
        super().__init__()
        if llm is not None and (model is not None or engine_options or handler_config):
            raise ConfigurationError("model, engine_options and handler_config are for an "
                                     "engine the client starts: give them or llm, "
                                     "not both")  # fmt: skip
        if llm is not None and not hasattr(llm, "generate_chat"):
            raise InvalidTypeError(f"llm must be an EnhancedAsyncLLM, got {type(llm).__name__}")
        self._llm = llm
        self._owns_llm = llm is None
        self._model = model
        self._engine_options = dict(engine_options or {})
        self._handler_config = handler_config
        self._starting: asyncio.Lock | None = None

    @property
    def model_name(self) -> str:
        if self._llm is not None:
            return Path(str(self._llm.model_config.model)).name
        if self._model is not None:
            return Path(str(self._model)).name
        from semantic_reuse.vllm.model import MODEL_NAME

        return MODEL_NAME

    def home(self) -> HomeLoop:
        """A given engine's home is the loop its output handler runs on (vLLM binds it to the
        loop of its first request); an engine the client starts lives on a private one."""
        if self._home_loop is None:
            handler = getattr(self._llm, "output_handler", None)
            self._home_loop = HomeLoop(handler.get_loop()) if handler is not None else None
        return super().home()

    async def engine(self) -> EnhancedAsyncLLM:
        """The engine, started on first use when the client owns it (home loop)."""
        if self._llm is not None:
            return self._llm
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._llm is None:
                from semantic_reuse.vllm.engine import EnhancedAsyncLLM
                from semantic_reuse.vllm.model import default_engine_args

                args = default_engine_args(self._model, **self._engine_options)
                self._llm = EnhancedAsyncLLM.from_engine_args(
                    args, handler_config=self._handler_config
                )
        return self._llm

    async def reuse_engine(self) -> ReuseEngine:
        return (await self.engine()).reuse_engine

    async def context_window(self) -> int | None:
        llm = await self.engine()
        return int(llm.model_config.max_model_len)

    @property
    def known_context_window(self) -> int | None:
        if self._llm is not None:
            return int(self._llm.model_config.max_model_len)
        length = self._engine_options.get("max_model_len", DEFAULT_MAX_MODEL_LEN)
        return int(length) if isinstance(length, int) else None

    async def _stream(
        self, prompt: PromptInput, params: GenerationParams, options: ReuseOptions
    ) -> AsyncIterator[str | Completion]:
        from vllm.sampling_params import RequestOutputKind, SamplingParams

        from semantic_reuse.vllm.engine import reuse_info

        if params.structured:
            raise InvalidRequestError(
                "tools, tool_choice and response_format need an OpenAI-compatible endpoint "
                "backend (base_url=..., e.g. `semantic-reuse serve`); the in-process engine "
                "takes text and chat prompts only"
            )
        llm = await self.engine()
        sampling = SamplingParams(
            max_tokens=params.max_tokens,
            temperature=1.0 if params.temperature is None else params.temperature,
            top_p=1.0 if params.top_p is None else params.top_p,
            stop=list(params.stop) or None,
            seed=params.seed,
            output_kind=RequestOutputKind.DELTA,
        )
        request_id = f"sr-{uuid.uuid4().hex[:16]}"
        if isinstance(prompt, str):
            outputs = llm.generate(prompt, sampling, request_id, options=options)
        else:
            outputs = llm.generate_chat(list(prompt), sampling, request_id, options=options)
        text, completion_tokens, prompt_tokens = "", 0, 0
        info: ReuseInfo | None = None
        finish: str | None = None
        async with contextlib.aclosing(outputs):  # leaving early aborts the request
            async for out in outputs:
                info = reuse_info(out) or info
                prompt_tokens = len(out.prompt_token_ids or ()) or prompt_tokens
                if not out.outputs:
                    continue
                piece = out.outputs[0]
                completion_tokens += len(piece.token_ids)
                finish = piece.finish_reason or finish
                if piece.text:
                    text += piece.text
                    yield piece.text
        yield Completion(
            text,
            info or ReuseInfo(ReuseKind.MISS),
            model=self.model_name,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            finish_reason=finish,
        )

    async def _aclose(self) -> None:
        if self._owns_llm and self._llm is not None:
            llm, self._llm = self._llm, None
            await llm.aclose()
