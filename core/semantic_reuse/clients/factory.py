"""`build_client`: the client a framework model's settings ask for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from semantic_reuse.clients.base import ReuseClient
from semantic_reuse.clients.local import VLLMClient
from semantic_reuse.clients.openai_compat import OpenAICompatibleClient
from semantic_reuse.config import HandlerConfig
from semantic_reuse.engine import ReuseEngine
from semantic_reuse.errors import ConfigurationError


def build_client(
    *,
    llm: Any = None,
    base_url: str | None = None,
    model: str | Path | None = None,
    api_key: str | None = None,
    engine: ReuseEngine | None = None,
    config: HandlerConfig | None = None,
    timeout_s: float | None = None,
    max_retries: int = 2,
) -> ReuseClient:
    """The client for a framework model's settings.

    `base_url` given: an OpenAI-compatible endpoint serving `model`, reuse through `engine`
    (or one built from `config`). Otherwise an in-process `EnhancedAsyncLLM`: `llm` when
    given, else one the client starts on `model` (a folder; default: the default model).
    """
    if base_url is not None:
        if llm is not None:
            raise ConfigurationError(
                "give either llm (in-process) or base_url (an endpoint), not both"
            )
        if model is None:
            raise ConfigurationError(
                "model is required with base_url: the name the endpoint serves"
            )
        return OpenAICompatibleClient(
            base_url, str(model), api_key, engine=engine, config=config,
            timeout_s=timeout_s or 120.0, max_retries=max_retries,
        )  # fmt: skip
    if engine is not None:
        raise ConfigurationError("engine is for an endpoint (base_url); an in-process "
                                 "EnhancedAsyncLLM has its own reuse_engine")  # fmt: skip
    if llm is not None:
        return VLLMClient(llm)
    return VLLMClient(model=model, handler_config=config)
