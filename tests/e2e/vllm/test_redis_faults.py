"""Redis SIGKILLed and restarted while requests run through the session's EnhancedAsyncLLM
(the short form of `semantic-reuse bench reliability`'s vLLM run): no request fails, and
answers generated after the restart reach the new Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from vllm import SamplingParams

from semantic_reuse.breaker import CircuitBreaker
from semantic_reuse.spi import RedisTier
from semantic_reuse.tools.bench.reliability import vllm_call
from semantic_reuse.tools.bench.reliability_load import KillRedis, LoadOptions, run_scenario
from semantic_reuse.tools.bench.reliability_proxy import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.reliability, pytest.mark.asyncio(loop_scope="session")]

OPTIONS = LoadOptions(requests=60, concurrency=20, duration_s=3.0, fault_at_s=0.8, fault_s=1.0)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis").running() as running:
        yield running


async def test_redis_killed_under_load(enhanced_llm: Any, server: RedisServer) -> None:
    engine = enhanced_llm.reuse_engine
    prefix, namespace = f"rel-{uuid.uuid4().hex[:8]}", f"t{uuid.uuid4().hex[:12]}"
    breaker = CircuitBreaker("redis L2", reset_s=0.05, max_reset_s=0.1)
    tier = RedisTier(server.url, prefix=prefix, breaker=breaker, metrics=engine.metrics)
    before, engine.cache.redis = engine.cache.redis, tier  # this test's Redis, then back
    try:
        call = vllm_call(enhanced_llm, SamplingParams(temperature=0.0, max_tokens=8),
                         namespace=namespace)  # fmt: skip
        report = await run_scenario(engine, call, KillRedis(server), OPTIONS,
                                    keys=lambda: server.keys(f"{prefix}:*"))  # fmt: skip
    finally:
        engine.cache.redis = before
        await tier.aclose()
    assert report["failed"] == 0, report["errors"]
    assert report["requests"] == OPTIONS.requests
    assert report["breaker"]["opened"] >= 1
    assert report["breaker"]["final"] == "closed"
    assert report["redis_keys_at_end"] > 0  # written after the restart (it came back empty)
    assert all(how != "plain" for how in report["phases"]["during"]["answers"])
