"""RedisTier against a real Redis: values, TTLs, corrupt data, outages and recovery."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as redis_client

from semantic_reuse import CachedAnswer, SemanticReuseError
from semantic_reuse.spi import BreakerState, CircuitBreaker, RedisTier
from tests.conftest import ManualClock, PrivateRedis, eventually, free_port


async def test_round_trip_and_key_layout(redis_tier: RedisTier, redis_url: str) -> None:
    answer = CachedAnswer("Redis is an in-memory store.", (1, 2, 3), usage={"completion_tokens": 3})
    assert await redis_tier.set("tenant-a", "abc123", answer) is True
    assert await redis_tier.get("tenant-a", "abc123") == answer
    raw = redis_client.Redis.from_url(redis_url)
    try:
        assert await raw.exists(f"{redis_tier.prefix}:tenant-a:abc123") == 1
        assert 0 < await raw.pttl(f"{redis_tier.prefix}:tenant-a:abc123") <= 86_400_000
    finally:
        await raw.aclose()


async def test_ttl_expiry(redis_tier: RedisTier, redis_url: str) -> None:
    await redis_tier.set("n", "short", CachedAnswer("soon gone"), ttl_s=0.15)
    await redis_tier.set("n", "long", CachedAnswer("stays"))
    assert await redis_tier.get("n", "short") is not None
    raw = redis_client.Redis.from_url(redis_url)
    try:
        assert 0 < await raw.pttl(redis_tier.redis_key("n", "short")) <= 150
        assert await raw.pttl(redis_tier.redis_key("n", "long")) > 86_000_000  # the default 24 h
    finally:
        await raw.aclose()

    async def expired() -> bool:  # Redis expires keys on its own clock: nothing to inject
        return await redis_tier.get("n", "short") is None

    await eventually(expired, "the 150 ms key expired")
    assert await redis_tier.get("n", "long") is not None


async def test_namespaces_are_isolated_and_cleared_apart(redis_tier: RedisTier) -> None:
    await redis_tier.set("a", "k", CachedAnswer("for a"))
    await redis_tier.set("b", "k", CachedAnswer("for b"))
    assert (await redis_tier.get("a", "k")).text == "for a"  # type: ignore[union-attr]
    assert (await redis_tier.get("b", "k")).text == "for b"  # type: ignore[union-attr]
    assert await redis_tier.get("c", "k") is None
    assert await redis_tier.clear("a") == 1
    assert await redis_tier.get("a", "k") is None
    assert (await redis_tier.get("b", "k")).text == "for b"  # type: ignore[union-attr]


async def test_clear_never_reaches_another_tenant_or_prefix(
    redis_tier: RedisTier, redis_url: str
) -> None:
    other = RedisTier(redis_url, prefix=f"{redis_tier.prefix}x", timeout_s=1.0)
    try:
        for namespace in ("a", "ab", "b"):
            await redis_tier.set(namespace, "k", CachedAnswer(f"for {namespace}"))
        await other.set("a", "k", CachedAnswer("another prefix"))
        for falsy in (None, ""):
            with pytest.raises((ValueError, TypeError), match="namespace") as refused:
                await redis_tier.clear(falsy)  # type: ignore[arg-type]
            assert isinstance(refused.value, SemanticReuseError)
        with pytest.raises(ValueError, match="namespace"):
            await redis_tier.clear("*")  # a glob is no namespace
        assert await redis_tier.count() == 3
        assert await redis_tier.clear("a") == 1
        assert [await redis_tier.get(n, "k") is not None for n in ("a", "ab", "b")] == [
            False, True, True,
        ]  # fmt: skip
        assert await redis_tier.clear_all() == 2
        assert await redis_tier.count() == 0
        assert (await other.get("a", "k")).text == "another prefix"  # type: ignore[union-attr]
    finally:
        await other.clear_all()
        await other.aclose()


async def test_a_prefix_with_glob_characters_is_matched_literally(redis_url: str) -> None:
    base = f"srtest-{uuid.uuid4().hex[:8]}"
    star, plain = RedisTier(redis_url, prefix=f"{base}*"), RedisTier(redis_url, prefix=f"{base}1")
    try:
        await star.set("a", "k", CachedAnswer("star"))
        await plain.set("a", "k", CachedAnswer("plain"))
        assert await star.count("a") == 1
        assert await star.clear("a") == 1
        assert (await plain.get("a", "k")).text == "plain"  # type: ignore[union-attr]
    finally:
        for tier in (star, plain):
            await tier.clear_all()
            await tier.aclose()


async def test_corrupt_value_is_a_counted_miss(redis_tier: RedisTier, redis_url: str) -> None:
    raw = redis_client.Redis.from_url(redis_url)
    try:
        await raw.set(f"{redis_tier.prefix}:n:garbage", b"\x80\x04not an answer")
        await raw.set(f"{redis_tier.prefix}:n:truncated", b"SR\x01m\x87")
    finally:
        await raw.aclose()
    assert await redis_tier.get("n", "garbage") is None
    assert await redis_tier.get("n", "truncated") is None
    assert redis_tier.metrics.counter("decode_errors_total", tier="redis") == 2
    assert redis_tier.breaker.state is BreakerState.CLOSED  # bad data is not an outage


async def test_too_large_values_are_not_stored(redis_tier: RedisTier) -> None:
    redis_tier.codec = type(redis_tier.codec)("msgpack", 256)
    assert await redis_tier.set("n", "big", CachedAnswer("x" * 1000)) is False
    assert await redis_tier.get("n", "big") is None
    assert redis_tier.metrics.counter("too_large_total", tier="redis") == 1


async def test_closed_port_opens_the_breaker_and_later_calls_skip_redis() -> None:
    breaker = CircuitBreaker("redis L2", failure_threshold=3, reset_s=60)
    tier = RedisTier(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5, breaker=breaker)
    try:
        for i in range(10):
            assert await tier.get("n", f"k{i}") is None
            assert await tier.set("n", f"k{i}", CachedAnswer("x")) is False
        assert breaker.state is BreakerState.OPEN
        # Only the calls before the breaker opened reached the network.
        assert tier.metrics.counter("errors_total", component="redis") == 3
        skipped = tier.metrics.counter("tier_ops_total", tier="redis", op="get", outcome="skipped")
        assert (
            skipped
            + tier.metrics.counter("tier_ops_total", tier="redis", op="set", outcome="skipped")
            == 17
        )
    finally:
        await tier.aclose()


async def test_outage_and_recovery_of_a_private_server(private_redis: PrivateRedis) -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("redis L2", failure_threshold=2, reset_s=0.2, clock=clock)
    tier = RedisTier(private_redis.url, timeout_s=0.5, breaker=breaker)
    try:
        assert await tier.set("n", "before", CachedAnswer("kept"))
        private_redis.stop()
        for _ in range(5):
            assert await tier.get("n", "before") is None
        assert breaker.state is BreakerState.OPEN
        assert tier.metrics.counter("errors_total", component="redis") == 2  # then skipped
        private_redis.start()  # same port, empty data set (no persistence)
        assert not await tier.set("n", "early", CachedAnswer("skipped"))  # within the back-off
        assert breaker.state is BreakerState.OPEN
        clock.advance(0.2)  # the back-off has passed: the next call is the trial
        assert await tier.set("n", "after", CachedAnswer("back"))
        assert breaker.state is BreakerState.CLOSED
        assert (await tier.get("n", "after")).text == "back"  # type: ignore[union-attr]
    finally:
        await tier.aclose()
