"""A Redis Cluster master killed (SIGKILL) during a run of requests through ReuseEngine: every
request is answered (through the breaker), and exact hits come from Redis again once the
master's replica has taken over its slots.

The cluster is real: 3 masters and 3 replicas of redis-server on loopback ports, with a
1 s node timeout. The engines run the exact path alone (semantic reuse and clause splitting
off), so every answer is an exact hit or a generation.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from semantic_reuse import CallableBackend, HandlerConfig, ReuseEngine
from tests.conftest import eventually
from tests.redis_cluster import LocalRedisCluster

NAMESPACE = "tenant"
PROMPTS = [f"What is fact number {i}?" for i in range(40)]


class Run:
    """Requests through one engine, tallied: where each answer came from, and failures."""

    def __init__(self, engine: ReuseEngine) -> None:
        self.engine = engine
        self.backend = CallableBackend(self._generate)
        self.sent = 0
        self.failed = 0
        self.wrong = 0
        self.sources: Counter[str] = Counter()

    async def _generate(self, prompt: object, _params: object) -> str:
        return f"generated: {prompt}"

    async def one(self) -> str:
        prompt = PROMPTS[self.sent % len(PROMPTS)]
        self.sent += 1
        try:
            result = await self.engine.generate(
                prompt, self.backend, model="m", namespace=NAMESPACE
            )
        except Exception:
            self.failed += 1
            return "failed"
        source = f"{result.info.kind.value}/{result.info.tier}"
        # The writer's answer, or this engine's own (generated while Redis was away; its
        # background write may land once Redis is back): never another prompt's.
        self.wrong += result.text not in (f"written: {prompt}", f"generated: {prompt}")
        self.sources[source] += 1
        return source

    async def batch(self, n: int, concurrency: int = 8) -> Counter[str]:
        """`n` requests, `concurrency` at a time; where their answers came from."""
        seen: Counter[str] = Counter()
        for start in range(0, n, concurrency):
            sources = await asyncio.gather(
                *(self.one() for _ in range(min(concurrency, n - start)))
            )
            seen.update(sources)
        return seen


def _config(cluster: LocalRedisCluster, **cache: Any) -> HandlerConfig:
    return HandlerConfig(
        features={"enable_semantic_reuse": False, "enable_nlp_enhancement": False},
        cache={"redis_url": cluster.url, "redis_cluster": True, "redis_prefix": "fault", **cache},
        # Short back-offs: the run comes back to Redis soon after the failover.
        performance={"redis_timeout_s": 1.0, "breaker_reset_s": 0.05, "breaker_max_reset_s": 0.2},
    )


async def test_a_master_killed_mid_run(redis_clusters: Callable[..., LocalRedisCluster]) -> None:
    cluster = redis_clusters(masters=3, replicas=1)
    writer = ReuseEngine(_config(cluster))
    # One entry of L1: every request but a repeat of the last goes to Redis.
    reader = ReuseEngine(_config(cluster, memory_max_entries=1))
    try:
        stored = await writer.store_many(
            [(p, f"written: {p}") for p in PROMPTS], model="m", namespace=NAMESPACE
        )
        await writer.flush()
        assert reader.cache.redis is not None
        victim = cluster.master_of(reader.cache.redis.namespace_prefix(NAMESPACE))
        cluster.replicate(victim)  # the replica holds every stored answer
        assert len(stored) == len(PROMPTS)

        run = Run(reader)
        before = await run.batch(120)
        assert before == Counter({"exact/redis": 120})

        cluster.kill(victim)  # the master of the namespace's slot: all of its answers
        during: Counter[str] = Counter()

        async def failed_over() -> bool:
            during.update(await run.batch(8))  # requests keep coming while the cluster heals
            return await cluster.failed_over(victim)

        await eventually(failed_over, "a replica took over the killed master's slots", 30)

        async def redis_serves_again() -> bool:
            during.update([source := await run.one()])
            return source == "exact/redis"

        await eventually(redis_serves_again, "an exact hit from Redis after the failover")
        after = await run.batch(120)

        figures = {
            "requests": run.sent, "failed": run.failed, "wrong": run.wrong,
            "before_kill": dict(before), "kill_to_first_redis_hit": dict(during),
            "after_failover": dict(after),
            "breaker_opened": reader.cache.redis.breaker.opened_count,
        }  # fmt: skip
        print(f"\nredis cluster fault run: {json.dumps(figures)}")
        if report := os.environ.get("SEMANTIC_REUSE_CLUSTER_REPORT"):
            await asyncio.to_thread(Path(report).write_text, json.dumps(figures, indent=2))
        assert run.failed == 0
        assert run.wrong == 0
        assert after["exact/redis"] > 0
        assert set(after) <= {"exact/redis", "exact/memory", "miss/None"}
    finally:
        await writer.aclose()
        await reader.aclose()
