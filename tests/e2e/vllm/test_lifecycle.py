"""Per-request lifecycle options through EnhancedAsyncLLM (the real vLLM CPU engine): a
request's `ttl_s` and `tags` reach the stored answer, and invalidating the tag retires it."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from vllm import SamplingParams

from semantic_reuse import ReuseKind, ReuseOptions
from semantic_reuse.vllm import EnhancedAsyncLLM, reuse_info

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]


async def last(stream: Any) -> Any:
    return [out async for out in stream][-1]


async def test_ttl_and_tags_per_request(enhanced_llm: EnhancedAsyncLLM) -> None:
    namespace = f"lc-{uuid.uuid4().hex[:8]}"
    question = [{"role": "user", "content": "What is the boiling point of water?"}]
    params = SamplingParams(temperature=0.0, max_tokens=16)
    before = time.time()
    first = await last(
        enhanced_llm.generate_chat(
            question, params, "lc-1", namespace=namespace, ttl_s=300, tags=["doc-5"]
        )
    )
    info = reuse_info(first)
    assert info is not None
    assert info.kind is ReuseKind.MISS
    engine = enhanced_llm.reuse_engine
    await engine.flush()
    assert info.hash_id is not None
    stored = engine.cache.memory.get_nowait(namespace, info.hash_id)
    assert stored is not None
    assert stored.tags == ("doc-5",)
    assert stored.expires_at is not None
    assert before + 300 <= stored.expires_at <= time.time() + 300
    options = ReuseOptions(namespace=namespace)
    again = await last(enhanced_llm.generate_chat(question, params, "lc-2", options=options))
    assert reuse_info(again).kind is ReuseKind.EXACT  # type: ignore[union-attr]
    await engine.invalidate_tag("doc-5", namespace=namespace)
    third = await last(enhanced_llm.generate_chat(question, params, "lc-3", options=options))
    assert reuse_info(third).kind is ReuseKind.MISS  # type: ignore[union-attr]
