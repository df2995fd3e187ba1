"""RedisTier on a real Redis Cluster (3 masters of redis-server on loopback ports): hash-tagged
keys, a namespace in one slot, clears without cross-slot errors, one node scanned per clear."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio

from semantic_reuse import CachedAnswer, HandlerConfig
from semantic_reuse.spi import MultiLevelCacheManager, RedisTier
from tests.redis_cluster import LocalRedisCluster


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    """One 3-master cluster for this module's tests (each test has a prefix of its own)."""
    cluster = LocalRedisCluster(tmp_path_factory.mktemp("cluster"), masters=3)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
async def tier(redis_cluster: LocalRedisCluster) -> AsyncIterator[RedisTier]:
    tier = RedisTier(
        redis_cluster.url, prefix=f"srtest-{uuid.uuid4().hex[:12]}", timeout_s=2.0, cluster=True
    )
    yield tier
    await tier.clear_all()
    await tier.aclose()


def _scans(cluster: LocalRedisCluster) -> dict[int, int]:
    """SCAN calls each master has served so far (its own INFO commandstats)."""
    counts = {}
    for server in cluster.servers:
        with server.client() as node:
            stats = node.info("commandstats").get("cmdstat_scan", {"calls": 0})
            counts[server.port] = int(stats["calls"])
    return counts


async def test_round_trip_with_the_namespace_as_hash_tag(
    tier: RedisTier, redis_cluster: LocalRedisCluster
) -> None:
    answer = CachedAnswer("Redis Cluster shards by hash slot.", (1, 2), usage={"x": 1})
    assert await tier.set("tenant-a", "abc123", answer) is True
    assert await tier.get("tenant-a", "abc123") == answer
    key = f"{{{tier.prefix}:tenant-a}}:abc123"
    assert tier.redis_key("tenant-a", "abc123") == key
    master = redis_cluster.master_of(key)
    with master.client() as node:  # the key lives on the master of its slot, with a TTL
        assert node.exists(key) == 1
        assert 0 < node.pttl(key) <= 86_400_000
        slots = {node.cluster("KEYSLOT", tier.redis_key("tenant-a", k)) for k in "abcdefgh"}
    assert len(slots) == 1  # a namespace's keys share one slot
    assert await tier.delete("tenant-a", "abc123") is True
    assert await tier.get("tenant-a", "abc123") is None


async def test_clears_by_namespace_and_all_without_cross_slot_errors(
    tier: RedisTier, redis_cluster: LocalRedisCluster
) -> None:
    namespaces = [f"tenant-{i}" for i in range(24)]
    for namespace in namespaces:
        for k in range(5):
            assert await tier.set(namespace, f"k{k}", CachedAnswer(f"{namespace}/{k}")) is True
    masters = {redis_cluster.master_of(tier.namespace_prefix(n)).port for n in namespaces}
    assert len(masters) == 3  # the namespaces spread over every master
    other = RedisTier(redis_cluster.url, prefix=f"{tier.prefix}x", timeout_s=2.0, cluster=True)
    try:
        await other.set("tenant-0", "k0", CachedAnswer("another prefix"))
        assert await tier.count() == 120
        assert await tier.count("tenant-3") == 5

        before = _scans(redis_cluster)
        assert await tier.clear("tenant-3") == 5  # one UNLINK in one slot
        after = _scans(redis_cluster)
        scanned = {port for port in before if after[port] > before[port]}
        assert scanned == {redis_cluster.master_of(tier.namespace_prefix("tenant-3")).port}
        assert await tier.get("tenant-3", "k0") is None
        assert (await tier.get("tenant-4", "k0")).text == "tenant-4/0"  # type: ignore[union-attr]
        with pytest.raises(ValueError, match="namespace"):
            await tier.clear("")

        assert await tier.clear_all() == 115  # every master scanned, unlinked slot by slot
        assert await tier.count() == 0
        assert tier.breaker.opened_count == 0  # no call failed (a cross-slot error would)
        assert (await other.get("tenant-0", "k0")).text == "another prefix"  # type: ignore[union-attr]
    finally:
        await other.clear_all()
        await other.aclose()


async def test_the_manager_from_config_uses_the_cluster(redis_cluster: LocalRedisCluster) -> None:
    prefix = f"srtest-{uuid.uuid4().hex[:12]}"
    config = HandlerConfig(
        cache={"redis_url": redis_cluster.url, "redis_cluster": True, "redis_prefix": prefix},
        performance={"redis_max_connections": 4, "redis_timeout_s": 5.0},
    )
    writer = MultiLevelCacheManager.from_config(config)
    reader = MultiLevelCacheManager.from_config(config)
    try:
        assert writer.redis is not None
        assert writer.redis.cluster
        # 200 writes at once through pools of 4 connections a node: each waits for a turn
        # (the cluster client's own pools would refuse the fifth with MaxConnectionsError).
        for i in range(200):
            writer.set_nowait(f"k{i}", CachedAnswer(f"answer {i}"), namespace="shared")
        await writer.flush()
        assert writer.metrics.counter("stores_total", tier="redis", outcome="ok") == 200
        hit = await reader.get("k7", namespace="shared")
        assert hit is not None
        assert (hit.tier, hit.answer.text) == ("redis", "answer 7")
        await reader.clear("shared")
        assert await reader.get("k8", namespace="shared") is None
        assert await writer.redis.count("shared") == 0
    finally:
        await writer.aclose()
        await reader.aclose()


async def test_a_fresh_tier_takes_a_burst_of_concurrent_calls(
    redis_cluster: LocalRedisCluster,
) -> None:
    """The first calls of a tier arrive together (a burst of background writes): the slot map
    is loaded once before any of them (redis-py's client, left to load it from inside many
    concurrent commands, broke connections others were opening: up to 39 of 40 failed)."""
    for _ in range(5):
        tier = RedisTier(
            redis_cluster.url, prefix=f"srtest-{uuid.uuid4().hex[:12]}", timeout_s=2.0,
            cluster=True,
        )  # fmt: skip
        try:
            stored = await asyncio.gather(
                *(tier.set("burst", f"k{i}", CachedAnswer(f"{i}")) for i in range(60))
            )
            assert stored == [True] * 60
            assert tier.metrics.counter("errors_total", component="redis") == 0
        finally:
            await tier.clear_all()
            await tier.aclose()


async def test_a_client_of_ones_own_must_be_a_cluster_client(redis_url: str) -> None:
    plain = redis.asyncio.Redis.from_url(redis_url)
    try:
        with pytest.raises(TypeError, match="client must be a RedisCluster"):
            RedisTier(redis_url, client=plain, cluster=True)
    finally:
        await plain.aclose()
