"""The exact cache across tiers: L1 memory, host shared memory and L2 Redis (both optional).

Every tier keys its answers by namespace and hash id, and `clear(namespace)` removes one
tenant's answers from each; a falsy namespace is refused (`clear_all()` empties every tier).
Reads go L1 -> L2 and promote an L2 hit into L1. Writes go to L1 at once and to
L2 in the background, so the answer is never delayed by Redis; `flush()` waits
for the background writes (the engine calls it on close). A later write or an
invalidation of the same key waits for the pending write first, so the tiers
never end up holding an older answer than the last one written.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from semantic_reuse._log import logger
from semantic_reuse.answer import CachedAnswer
from semantic_reuse.config import HandlerConfig
from semantic_reuse.errors import InvalidTypeError
from semantic_reuse.exact.host import HostSharedTier
from semantic_reuse.exact.memory import MemoryTier
from semantic_reuse.exact.redis import RedisTier
from semantic_reuse.exact.shared import SimilarRequestMemoryConfig
from semantic_reuse.exact.slot_table import TableStats
from semantic_reuse.metrics import Metrics
from semantic_reuse.request import validate_namespace


@runtime_checkable
class CacheTier(Protocol):
    """What a byte- or object-holding exact tier provides."""

    name: str

    async def get(self, namespace: str, key: str) -> CachedAnswer | None: ...

    async def set(
        self, namespace: str, key: str, answer: CachedAnswer, ttl_s: float | None = None
    ) -> bool: ...

    async def delete(self, namespace: str, key: str) -> bool: ...

    async def clear(self, namespace: str) -> int: ...

    async def clear_all(self) -> object: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ExactHit:
    """An exact hit and the tier that held it."""

    answer: CachedAnswer
    tier: str


class MultiLevelCacheManager:
    """Exact lookups and writes across the tiers, namespaced, with metrics."""

    def __init__(
        self,
        memory: MemoryTier | None = None,
        redis: RedisTier | None = None,
        *,
        shared: HostSharedTier | None = None,
        metrics: Metrics | None = None,
        detailed_logging: bool = False,
        background_write_limit: int = 1024,
    ) -> None:
        self.memory = memory if memory is not None else MemoryTier()  # an empty tier is falsy
        self.shared = shared
        self.redis = redis
        self.metrics = metrics or Metrics()
        self.detailed_logging = detailed_logging
        self._pending: dict[tuple[str, str], asyncio.Task[bool]] = {}
        self._write_slots = asyncio.Semaphore(background_write_limit)
        self.metrics.gauge("entries", lambda: float(len(self.memory)), tier=self.memory.name)
        self.metrics.gauge("bytes", lambda: float(self.memory.nbytes), tier=self.memory.name)

    @classmethod
    def from_config(
        cls, config: HandlerConfig | None = None, *, metrics: Metrics | None = None
    ) -> MultiLevelCacheManager:
        """L1 from the budgets; L2 when Redis is configured and enabled."""
        config = config or HandlerConfig()
        metrics = metrics or Metrics()
        cache = config.cache
        memory = MemoryTier(
            max_entries=cache.memory_max_entries,
            max_bytes=cache.memory_max_bytes,
            ttl_s=cache.memory_ttl_s,
        )
        redis = None
        if config.features.enable_redis and cache.redis_url:
            redis = RedisTier.from_config(config, metrics=metrics)
        shared = None
        if cache.shared_memory:
            shared = HostSharedTier.open(
                SimilarRequestMemoryConfig(
                    request_mapping_memory_size=cache.shared_memory_bytes,
                    token_mapping_memory_size=cache.shared_memory_bytes,
                    max_entries=cache.shared_memory_entries,
                    request_mapping_shared_name=f"{cache.shared_memory_name}-requests",
                    token_mapping_shared_name=f"{cache.shared_memory_name}-tokens",
                    secret_path=cache.shared_memory_secret,
                ),
                ttl_s=cache.memory_ttl_s,
                metrics=metrics,
            )
        return cls(
            memory,
            redis,
            shared=shared,
            metrics=metrics,
            detailed_logging=config.features.enable_detailed_logging,
            background_write_limit=config.performance.background_write_limit,
        )

    @property
    def tiers(self) -> tuple[CacheTier, ...]:
        """Fastest first: memory, host shared memory, Redis (those configured)."""
        return tuple(t for t in (self.memory, self.shared, self.redis) if t is not None)

    async def get(
        self, key: str, *, namespace: str, accept: Callable[[CachedAnswer], bool] | None = None
    ) -> ExactHit | None:
        """The answer stored under `key` in `namespace`, from the fastest tier holding it.

        `accept` (the namespace's lifecycle: `NamespaceState.admits`) rules on every answer
        found; one it refuses (expired, retired) is removed from that tier and the next tier
        is asked, so a retired copy never hides a newer answer further down."""
        validate_namespace(namespace)
        start = time.perf_counter()
        answer = self._accepted(self.memory, self.memory.get_nowait(namespace, key), key,
                                namespace, accept)  # fmt: skip
        if answer is not None:
            return self._hit(answer, self.memory.name, key, start)
        self.metrics.inc("lookups_total", tier=self.memory.name, outcome="miss")
        if self.shared is not None:
            answer = self._accepted(self.shared, self.shared.get_nowait(namespace, key), key,
                                    namespace, accept)  # fmt: skip
            if answer is not None:
                self.memory.set_nowait(namespace, key, answer, self._memory_ttl(answer))
                return self._hit(answer, self.shared.name, key, start)
            self.metrics.inc("lookups_total", tier=self.shared.name, outcome="miss")
        if self.redis is not None:
            found = await self.redis.get(namespace, key)
            answer = self._accepted(self.redis, found, key, namespace, accept)
            if answer is not None:
                self.memory.set_nowait(namespace, key, answer, self._memory_ttl(answer))
                if self.shared is not None:
                    self.shared.set_nowait(namespace, key, answer)
                return self._hit(answer, self.redis.name, key, start)
            self.metrics.inc("lookups_total", tier=self.redis.name, outcome="miss")
        self.metrics.observe("stage_seconds", time.perf_counter() - start, stage="exact")
        if self.detailed_logging:
            logger.debug("exact miss {} in {}", key, namespace)
        return None

    def _accepted(
        self,
        tier: CacheTier,
        answer: CachedAnswer | None,
        key: str,
        namespace: str,
        accept: Callable[[CachedAnswer], bool] | None,
    ) -> CachedAnswer | None:
        if answer is None:
            return None
        if accept is None and not answer.expired(time.time()):
            return answer
        if accept is not None and accept(answer):
            return answer
        self.metrics.inc("retired_reads_total", tier=tier.name)
        if tier is self.memory:
            self.memory.delete_nowait(namespace, key)
        elif tier is self.shared and self.shared is not None:
            self.shared.delete_nowait(namespace, key)
        # Redis: the key expires on its TTL, or a later write replaces it; not deleted here,
        # where a newer answer written meanwhile by another process could be lost.
        return None

    def _memory_ttl(self, answer: CachedAnswer) -> float | None:
        """The memory tier's lifetime for `answer`: its own, within the tier's."""
        return _within(self.memory.ttl_s, answer)

    def _hit(self, answer: CachedAnswer, tier: str, key: str, start: float) -> ExactHit:
        self.metrics.inc("lookups_total", tier=tier, outcome="hit")
        self.metrics.observe("stage_seconds", time.perf_counter() - start, stage="exact")
        if self.detailed_logging:
            logger.debug("exact hit {} from {}", key, tier)
        return ExactHit(answer, tier)

    async def set(
        self,
        key: str,
        answer: CachedAnswer,
        *,
        namespace: str,
        ttl_s: float | None = None,
    ) -> None:
        """Store in L1 now and in L2 in the background."""
        self.set_nowait(key, answer, namespace=namespace, ttl_s=ttl_s)

    def set_nowait(
        self,
        key: str,
        answer: CachedAnswer,
        *,
        namespace: str,
        ttl_s: float | None = None,
    ) -> None:
        """`set` without awaiting: L1 before returning, L2 scheduled (needs a running loop)."""
        validate_namespace(namespace)
        if not isinstance(answer, CachedAnswer):
            raise InvalidTypeError(f"answer must be a CachedAnswer, got {type(answer).__name__}")
        if answer.expired(time.time()):
            return  # each tier keeps an answer no longer than it lives (`_within`)
        if not self.memory.set_nowait(
            namespace, key, answer, _within(self.memory.ttl_s, answer, ttl_s)
        ):
            self.metrics.inc("too_large_total", tier=self.memory.name)
        self.metrics.inc("stores_total", tier=self.memory.name)
        if (
            self.shared is not None
            and self.shared.available
            and not self.shared.set_nowait(namespace, key, answer)
        ):
            self.metrics.inc("too_large_total", tier=self.shared.name)
        if self.redis is not None:
            previous = self._pending.get((namespace, key))
            task = asyncio.create_task(self._write_l2(previous, namespace, key, answer, ttl_s))
            self._pending[(namespace, key)] = task
            task.add_done_callback(functools.partial(self._forget, (namespace, key)))

    async def _write_l2(
        self,
        previous: asyncio.Task[bool] | None,
        namespace: str,
        key: str,
        answer: CachedAnswer,
        ttl_s: float | None,
    ) -> bool:
        assert self.redis is not None
        if previous is not None:
            await asyncio.wait([previous])
        async with self._write_slots:
            ttl = _within(self.redis.ttl_s, answer, ttl_s)
            stored = await self.redis.set(namespace, key, answer, ttl)
        self.metrics.inc("stores_total", tier=self.redis.name, outcome="ok" if stored else "skip")
        return stored

    def _forget(self, key: tuple[str, str], task: asyncio.Task[bool]) -> None:
        if self._pending.get(key) is task:
            del self._pending[key]

    async def flush(self) -> None:
        """Wait until every background write has finished."""
        while self._pending:
            await asyncio.wait(list(self._pending.values()))

    async def invalidate(self, key: str, *, namespace: str) -> None:
        """Remove one answer from every tier (after any pending write of it)."""
        validate_namespace(namespace)
        pending = self._pending.get((namespace, key))
        if pending is not None:
            await asyncio.wait([pending])
        for tier in self.tiers:
            await tier.delete(namespace, key)

    async def drop_where(self, namespace: str, retired: Callable[[CachedAnswer], bool]) -> int:
        """Remove from this process's memory the namespace's answers `retired` names (the
        other tiers refuse them on read: see `get`); how many."""
        validate_namespace(namespace)
        return self.memory.drop_where(lambda ns, answer: ns == namespace and retired(answer))

    async def clear(self, namespace: str) -> None:
        """Remove one namespace's answers from every tier. A falsy namespace is refused:
        emptying every tenant's answers takes `clear_all()`."""
        validate_namespace(namespace)
        await self.flush()
        for tier in self.tiers:
            await tier.clear(namespace)

    async def clear_all(self) -> None:
        """Remove every namespace's answers from every tier (Redis: this prefix's keys)."""
        await self.flush()
        for tier in self.tiers:
            await tier.clear_all()

    def stats(self) -> dict[str, Any]:
        """Lookups, hits, errors, latencies, entries and bytes per tier."""
        snapshot = self.metrics.snapshot()
        snapshot["tiers"] = {
            self.memory.name: {
                "entries": len(self.memory),
                "bytes": self.memory.nbytes,
                "evictions": self.memory.evictions,
                "expirations": self.memory.expirations,
            }
        }
        if self.shared is not None:
            manager = self.shared.manager
            tokens: TableStats | None = None if manager is None else manager.stats().tokens
            snapshot["tiers"][self.shared.name] = {
                "available": manager is not None,
                "refused": self.shared.refused,
                "entries": None if tokens is None else tokens.entries,
                "integrity_failures": None if manager is None else manager.integrity_failures,
            }
        if self.redis is not None:
            snapshot["tiers"][self.redis.name] = {
                "breaker": self.redis.breaker.state.value,
                "opened": self.redis.breaker.opened_count,
                "pending_writes": len(self._pending),
            }
        return snapshot

    async def aclose(self) -> None:
        await self.flush()
        if self.shared is not None:
            await self.shared.aclose()
        if self.redis is not None:
            await self.redis.aclose()


def _within(
    tier_ttl_s: float | None, answer: CachedAnswer, ttl_s: float | None = None
) -> float | None:
    """The shortest of a tier's own lifetime, `ttl_s`, and what is left of `answer`'s."""
    limits = [t for t in (tier_ttl_s, ttl_s) if t is not None]
    if answer.expires_at is not None:
        limits.append(max(1e-3, answer.expires_at - time.time()))
    return min(limits) if limits else None
