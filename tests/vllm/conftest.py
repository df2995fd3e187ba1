"""One real vLLM engine (CPU build, the default SmolLM2 model) for the whole test session."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def model_path() -> Path:
    """The default model folder (converted once per machine, reused afterwards)."""
    from semantic_reuse.vllm.model import prepare_default_model

    return prepare_default_model()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def enhanced_llm(
    model_path: Path, tmp_path_factory: pytest.TempPathFactory, minilm: Any, splitter: Any
) -> AsyncIterator[Any]:
    """The seed's usage: `from_vllm_config` with explicit reuse components."""
    from vllm.engine.arg_utils import AsyncEngineArgs

    from semantic_reuse import HandlerConfig, MultiLevelCacheManager
    from semantic_reuse.defaults import build_search_helper_from
    from semantic_reuse.vllm import EnhancedAsyncLLM

    handler_config = HandlerConfig(performance={"hit_stream_chunk_tokens": 4})
    cache_manager = MultiLevelCacheManager.from_config(handler_config)
    similarity_search_helper = build_search_helper_from(
        handler_config, minilm, tmp_path_factory.mktemp("vllm-edge")
    )
    engine_args = AsyncEngineArgs(
        model=str(model_path), dtype="bfloat16", enforce_eager=True, max_model_len=2048
    )
    vllm_config = engine_args.create_engine_config()
    llm = EnhancedAsyncLLM.from_vllm_config(
        vllm_config,
        cache_manager=cache_manager,
        similarity_search_helper=similarity_search_helper,
        handler_config=handler_config,
    )
    yield llm
    await llm.aclose()
    await similarity_search_helper.embedder.aclose()
    await similarity_search_helper.store.aclose()
