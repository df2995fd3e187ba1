"""MultiLevelCacheManager over the real memory tier and a real Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as redis_client

from semantic_reuse import CachedAnswer, HandlerConfig, ReuseRequest, SemanticReuseError
from semantic_reuse.spi import (
    BreakerState,
    CircuitBreaker,
    MemoryTier,
    MultiLevelCacheManager,
    RedisTier,
)
from tests.conftest import ManualClock, PrivateRedis, eventually


@pytest.fixture
async def manager(redis_url: str, redis_prefix: str) -> AsyncIterator[MultiLevelCacheManager]:
    config = HandlerConfig(cache={"redis_url": redis_url, "redis_prefix": redis_prefix})
    manager = MultiLevelCacheManager.from_config(config)
    assert manager.redis is not None
    yield manager
    await manager.clear_all()
    await manager.aclose()


async def test_write_both_read_l1_then_promote_from_l2(manager: MultiLevelCacheManager) -> None:
    key = ReuseRequest("What is Redis?", model="m").hash_id
    answer = CachedAnswer("An in-memory data store.")
    await manager.set(key, answer, namespace="default")
    hit = await manager.get(key, namespace="default")
    assert hit is not None
    assert (hit.tier, hit.answer) == ("memory", answer)
    await manager.flush()
    assert manager.redis is not None
    assert await manager.redis.get("default", key) == answer
    await manager.memory.clear_all()
    hit = await manager.get(key, namespace="default")
    assert hit is not None
    assert (hit.tier, hit.answer) == ("redis", answer)
    hit = await manager.get(key, namespace="default")
    assert hit is not None
    assert hit.tier == "memory"
    counters = manager.stats()["counters"]["lookups_total"]
    assert counters["outcome=hit,tier=memory"] == 2
    assert counters["outcome=hit,tier=redis"] == 1


async def test_namespaces_never_cross(manager: MultiLevelCacheManager) -> None:
    await manager.set("k", CachedAnswer("tenant a's answer"), namespace="a")
    await manager.flush()
    assert await manager.get("k", namespace="b") is None
    await manager.memory.clear_all()
    assert await manager.get("k", namespace="b") is None
    await manager.clear("a")
    assert await manager.get("k", namespace="a") is None


async def test_last_write_wins_in_every_tier(manager: MultiLevelCacheManager) -> None:
    for i in range(20):
        await manager.set("k", CachedAnswer(f"v{i}"), namespace="n")
    await manager.flush()
    assert manager.redis is not None
    assert (await manager.redis.get("n", "k")).text == "v19"  # type: ignore[union-attr]
    assert (await manager.get("k", namespace="n")).answer.text == "v19"  # type: ignore[union-attr]


async def test_invalidate_removes_from_every_tier(manager: MultiLevelCacheManager) -> None:
    await manager.set("k", CachedAnswer("stale"), namespace="n")
    await manager.invalidate("k", namespace="n")  # waits for the pending L2 write first
    assert await manager.get("k", namespace="n") is None
    assert manager.redis is not None
    assert await manager.redis.get("n", "k") is None


async def test_ttl_applies_to_both_tiers(redis_url: str, redis_prefix: str) -> None:
    clock = ManualClock()
    redis = RedisTier(redis_url, prefix=redis_prefix, timeout_s=1.0)
    manager = MultiLevelCacheManager(MemoryTier(clock=clock), redis)
    try:
        await manager.set("k", CachedAnswer("brief"), namespace="n", ttl_s=0.15)
        await manager.flush()
        raw = redis_client.Redis.from_url(redis_url)
        try:
            assert 0 < await raw.pttl(redis.redis_key("n", "k")) <= 150
        finally:
            await raw.aclose()
        clock.advance(0.1)
        assert manager.memory.get_nowait("n", "k") is not None
        clock.advance(0.1)
        assert manager.memory.get_nowait("n", "k") is None  # L1 expired on its clock

        async def gone() -> bool:  # L2: Redis expires the key on its own clock
            return await redis.get("n", "k") is None

        await eventually(gone, "the 150 ms answer expired in Redis")
        assert await manager.get("k", namespace="n") is None
    finally:
        await manager.clear_all()
        await manager.aclose()


async def test_redis_outage_leaves_memory_answering(private_redis: PrivateRedis) -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("redis L2", failure_threshold=2, reset_s=0.2, clock=clock)
    manager = MultiLevelCacheManager(
        MemoryTier(), RedisTier(private_redis.url, timeout_s=0.5, breaker=breaker)
    )
    try:
        await manager.set("hot", CachedAnswer("in L1 and L2"), namespace="n")
        await manager.flush()
        private_redis.stop()
        for i in range(10):
            hit = await manager.get("hot", namespace="n")
            assert hit is not None
            assert hit.tier == "memory"
            assert await manager.get(f"cold{i}", namespace="n") is None
            await manager.set(f"new{i}", CachedAnswer("kept in L1"), namespace="n")
        await manager.flush()  # background writes to a dead Redis finish without raising
        assert breaker.state is BreakerState.OPEN
        assert all([await manager.get(f"new{i}", namespace="n") for i in range(10)])
        assert manager.stats()["tiers"]["redis"]["breaker"] == "open"

        private_redis.start()
        clock.advance(0.2)  # the back-off has passed: the next Redis call is the trial
        await manager.set("later", CachedAnswer("reaches Redis again"), namespace="n")
        await manager.flush()
        assert breaker.state is BreakerState.CLOSED
        await manager.memory.clear_all()
        hit = await manager.get("later", namespace="n")
        assert hit is not None
        assert hit.tier == "redis"
    finally:
        await manager.aclose()


async def test_memory_only_without_redis() -> None:
    manager = MultiLevelCacheManager.from_config(HandlerConfig())
    assert manager.redis is None
    await manager.set("k", CachedAnswer("x"), namespace="n")
    assert (await manager.get("k", namespace="n")).tier == "memory"  # type: ignore[union-attr]
    await manager.aclose()


async def test_bad_input_at_the_edge() -> None:
    manager = MultiLevelCacheManager()
    with pytest.raises(ValueError, match="namespace"):
        await manager.get("k", namespace="bad namespace")
    with pytest.raises(TypeError, match="answer"):
        await manager.set("k", "not an answer", namespace="n")  # type: ignore[arg-type]


async def test_a_burst_of_writes_larger_than_the_pool_loses_nothing(
    redis_url: str, redis_prefix: str
) -> None:
    """More background writes than Redis connections wait for one instead of failing."""
    redis = RedisTier(redis_url, prefix=redis_prefix, max_connections=4)
    burst = MultiLevelCacheManager(MemoryTier(), redis)
    for i in range(200):
        burst.set_nowait(f"k{i}", CachedAnswer(f"answer {i}"), namespace="burst")
    await burst.flush()
    answers = await asyncio.gather(*(redis.get("burst", f"k{i}") for i in range(200)))
    assert [a.text if a else None for a in answers] == [f"answer {i}" for i in range(200)]
    assert burst.stats()["counters"]["stores_total"]["outcome=ok,tier=redis"] == 200.0
    await burst.clear("burst")
    await burst.aclose()


async def test_clear_is_scoped_in_every_tier_and_refuses_a_falsy_namespace(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    """Memory, host shared memory and Redis: clear("a") leaves "ab" and "b" (a namespace
    that the first one prefixes included); None and "" are refused before any tier is
    touched; clear_all() is the one way to empty them all."""
    config = HandlerConfig(
        cache={"redis_url": redis_url, "redis_prefix": redis_prefix, "shared_memory": True,
               "shared_memory_name": f"srtest-{uuid.uuid4().hex[:8]}",
               "shared_memory_bytes": 1 << 20, "shared_memory_entries": 64,
               "shared_memory_secret": tmp_path / "secret"}
    )  # fmt: skip
    manager = MultiLevelCacheManager.from_config(config)
    key = ReuseRequest("What is Redis?").hash_id
    try:
        assert [t.name for t in manager.tiers] == ["memory", "shared", "redis"]
        for namespace in ("a", "ab", "b"):
            await manager.set(key, CachedAnswer(f"for {namespace}"), namespace=namespace)
        await manager.flush()
        for falsy in (None, ""):
            with pytest.raises((ValueError, TypeError), match="namespace") as refused:
                await manager.clear(falsy)  # type: ignore[arg-type]
            assert isinstance(refused.value, SemanticReuseError)
            for tier in manager.tiers:
                with pytest.raises((ValueError, TypeError), match="namespace"):
                    await tier.clear(falsy)  # type: ignore[arg-type]
        await manager.clear("a")
        for tier in manager.tiers:
            assert await tier.get("a", key) is None, tier.name
            for namespace in ("ab", "b"):
                found = await tier.get(namespace, key)
                assert found is not None, (tier.name, namespace)
                assert found.text == f"for {namespace}"
        await manager.clear_all()
        for tier in manager.tiers:
            assert [await tier.get(n, key) for n in ("a", "ab", "b")] == [None] * 3, tier.name
    finally:
        await manager.clear_all()
        await manager.aclose()
