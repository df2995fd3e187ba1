"""L2: answers in Redis, shared by processes and hosts, behind a circuit breaker.

Keys are ``{prefix}:{namespace}:{hash id}``; values are `AnswerCodec` bytes with a
TTL. `clear(namespace)` removes one tenant's keys (a namespace holds no ``:``, so no
tenant's pattern matches another's); a falsy namespace is refused, and removing every
tenant's keys of the prefix takes `clear_all()`. Every call has a deadline (connect
included) and goes through a breaker, so when Redis is down the requests skip it at once
instead of each paying a timeout; a trial call after a back-off closes the breaker again
when Redis is back.

On a Redis Cluster (``cluster=True``, redis-py's cluster client) keys are
``{{prefix}:{namespace}}:{hash id}``: the braces are a hash tag, so one namespace's keys
share a hash slot, hence a master, and `clear(namespace)` scans that one node and unlinks
in one slot (no cross-slot command, ever). `clear_all()` scans every master and unlinks
per slot. A failed master costs the requests that reach it an error each (the breaker
opens after a few) until a replica takes over; the client then reloads the slot map.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from semantic_reuse._log import logger
from semantic_reuse.answer import AnswerCodec, AnswerDecodeError, AnswerTooLargeError, CachedAnswer
from semantic_reuse.breaker import CircuitBreaker
from semantic_reuse.errors import ConfigurationError, InvalidRequestError, InvalidTypeError
from semantic_reuse.metrics import Metrics
from semantic_reuse.redaction import redact_url
from semantic_reuse.request import validate_namespace

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

    from semantic_reuse.config import HandlerConfig

T = TypeVar("T")


class _Skipped:
    """Marker: the breaker was open or the call failed; the caller falls through."""


SKIPPED = _Skipped()
Skipped = _Skipped  # for isinstance checks outside this module
_GLOB = re.compile(r"[\\*?\[\]^]")  # what Redis' glob patterns give a meaning to


class RedisTier:
    """Async Redis tier with pooled connections, deadlines, TTLs and a breaker."""

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "semantic_reuse",
        ttl_s: float | None = 86_400.0,
        timeout_s: float = 0.25,
        max_connections: int = 64,
        codec: AnswerCodec | None = None,
        breaker: CircuitBreaker | None = None,
        metrics: Metrics | None = None,
        client: Redis | RedisCluster | None = None,
        cluster: bool = False,
        tls_ca_file: str | Path | None = None,
        tls_cert_file: str | Path | None = None,
        tls_key_file: str | Path | None = None,
    ) -> None:
        if not isinstance(url, str):
            raise InvalidTypeError(f"url must be a str, got {type(url).__name__}")
        tls = _tls_options(url, tls_ca_file, tls_cert_file, tls_key_file)
        if timeout_s <= 0:
            raise InvalidRequestError("timeout_s must be > 0")
        if ttl_s is not None and ttl_s <= 0:
            raise InvalidRequestError("ttl_s must be > 0 or None")
        if cluster and client is not None:
            from redis.asyncio.cluster import RedisCluster

            if not isinstance(client, RedisCluster):
                raise InvalidTypeError(
                    f"client must be a RedisCluster with cluster=True, got {type(client).__name__}"
                )
        if client is None and cluster:
            client = _cluster_client(url, timeout_s, max_connections, tls)
        elif client is None:
            from redis.asyncio import BlockingConnectionPool, Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            # One immediate retry replaces a pooled connection that a Redis restart broke;
            # anything slower is the breaker's job, not a per-request wait. A blocking pool:
            # more concurrent calls than connections wait (up to the timeout) for one,
            # instead of failing with MaxConnectionsError (a burst of background writes).
            pool = BlockingConnectionPool.from_url(
                url,
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                retry=Retry(NoBackoff(), 1),
                max_connections=max_connections,
                timeout=timeout_s,
                decode_responses=False,
                **tls,
            )
            client = Redis.from_pool(pool)  # the client owns the pool: aclose() closes it
        self.url = url
        self.cluster = cluster
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self.codec = codec or AnswerCodec()
        self.breaker = breaker or CircuitBreaker("redis L2")
        self.metrics = metrics or Metrics()
        self._client = client
        self._decode_errors = 0
        # The cluster client's per-node pools refuse a connection past their size instead of
        # waiting: calls wait here for a turn instead (under their deadline).
        self._turns = asyncio.Semaphore(max_connections) if cluster else None

    @classmethod
    def from_config(cls, config: HandlerConfig, *, metrics: Metrics | None = None) -> RedisTier:
        """A tier for ``config.cache.redis_url`` (which must be set)."""
        cache, perf = config.cache, config.performance
        if cache.redis_url is None:
            raise ConfigurationError("cache.redis_url is not set")
        return cls(
            cache.redis_url,
            prefix=cache.redis_prefix,
            ttl_s=cache.redis_ttl_s,
            timeout_s=perf.redis_timeout_s,
            max_connections=perf.redis_max_connections,
            codec=AnswerCodec(cache.codec, cache.max_value_bytes),
            breaker=CircuitBreaker.from_config("redis L2", perf),
            metrics=metrics,
            tls_ca_file=cache.redis_tls_ca_file,
            tls_cert_file=cache.redis_tls_cert_file,
            tls_key_file=cache.redis_tls_key_file,
            cluster=cache.redis_cluster,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={redact_url(self.url)!r}, prefix={self.prefix!r})"

    def namespace_prefix(self, namespace: str) -> str:
        """What every key of `namespace` starts with; on a cluster, a hash tag that puts
        them in one slot (keys of a namespace's own that an operation needs together, such
        as an index, should start with it too)."""
        if self.cluster:
            return f"{{{self.prefix}:{namespace}}}"
        return f"{self.prefix}:{namespace}"

    def redis_key(self, namespace: str, key: str) -> str:
        return f"{self.namespace_prefix(namespace)}:{key}"

    async def _call(self, op: str, call: Callable[[], Awaitable[T]]) -> T | _Skipped:
        """Run one Redis call under the breaker and the deadline; errors become SKIPPED."""
        if not self.breaker.allow():
            self.metrics.inc("tier_ops_total", tier=self.name, op=op, outcome="skipped")
            return SKIPPED
        start = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_s):
                if self._turns is None:
                    result = await call()
                else:
                    async with self._turns:
                        await self._cluster_map()
                        result = await call()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any client or network error: degrade, never fail the request
            self.breaker.record_failure(exc)
            self.metrics.inc("errors_total", component=self.name)
            self.metrics.inc("tier_ops_total", tier=self.name, op=op, outcome="error")
            logger.debug("redis {} failed: {!r}", op, exc)
            return SKIPPED
        self.breaker.record_success()
        self.metrics.observe("tier_seconds", time.perf_counter() - start, tier=self.name, op=op)
        return result

    async def _cluster_map(self) -> None:
        """Load the cluster's slot map (again after a failure) before a command, with
        concurrent callers waiting for one load: redis-py's cluster client, left to load it
        from inside many concurrent commands, breaks connections that others are opening."""
        from redis.asyncio.cluster import RedisCluster

        assert isinstance(self._client, RedisCluster)
        await self._client.initialize()  # a no-op while the map is loaded

    async def get(self, namespace: str, key: str) -> CachedAnswer | None:
        blob = await self._call("get", lambda: self._client.get(self.redis_key(namespace, key)))
        if isinstance(blob, _Skipped) or blob is None:
            return None
        try:
            if not isinstance(blob, bytes):
                raise AnswerDecodeError(f"expected bytes from Redis, got {type(blob).__name__}")
            return self.codec.decode(blob)
        except AnswerDecodeError as exc:
            self._decode_errors += 1
            self.metrics.inc("decode_errors_total", tier=self.name)
            if self._decode_errors == 1 or self._decode_errors % 1000 == 0:
                logger.warning(
                    "undecodable value under {} treated as a miss ({} so far): {}",
                    self.redis_key(namespace, key),
                    self._decode_errors,
                    exc,
                )
            return None

    async def set(
        self, namespace: str, key: str, answer: CachedAnswer, ttl_s: float | None = None
    ) -> bool:
        """Store; False when skipped (too large, Redis unavailable)."""
        try:
            blob = self.codec.encode(answer)
        except AnswerTooLargeError:
            self.metrics.inc("too_large_total", tier=self.name)
            return False
        ttl = self.ttl_s if ttl_s is None else ttl_s
        px = None if ttl is None else max(1, int(ttl * 1000))
        result = await self._call(
            "set", lambda: self._client.set(self.redis_key(namespace, key), blob, px=px)
        )
        return not isinstance(result, _Skipped)

    async def delete(self, namespace: str, key: str) -> bool:
        result = await self._call(
            "delete", lambda: self._client.unlink(self.redis_key(namespace, key))
        )
        return not isinstance(result, _Skipped) and bool(result)

    def _pattern(self, namespace: str | None) -> str:
        """The SCAN pattern of one namespace's keys (None: every namespace's)."""
        prefix = _GLOB.sub(r"\\\g<0>", self.prefix)  # a prefix is matched literally
        if namespace is None:
            return f"{{{prefix}:*" if self.cluster else f"{prefix}:*"  # braces: literal
        namespace = validate_namespace(namespace)
        return f"{{{prefix}:{namespace}}}:*" if self.cluster else f"{prefix}:{namespace}:*"

    async def _scan(self, pattern: str, namespace: str | None, count: int) -> AsyncIterator[bytes]:
        """SCAN for `pattern`: on a cluster, one namespace's keys on the master of its slot
        alone, every namespace's on every master."""
        if self.cluster and namespace is not None:
            from redis.asyncio.cluster import RedisCluster

            assert isinstance(self._client, RedisCluster)
            await self._client.initialize()  # the slot map (a no-op once loaded)
            node = self._client.get_node_from_key(self.namespace_prefix(namespace))
            names = self._client.scan_iter(match=pattern, count=count, target_nodes=node)
        else:
            names = self._client.scan_iter(match=pattern, count=count)
        async for name in names:
            yield name

    async def clear(self, namespace: str) -> int:
        """Remove one namespace's keys of this prefix; how many, -1 when Redis is
        unavailable. A falsy namespace is refused (every namespace's keys: `clear_all`)."""
        validate_namespace(namespace)
        return await self._scan_unlink(self._pattern(namespace), namespace)

    async def clear_all(self) -> int:
        """Remove every namespace's keys of this prefix (other prefixes are untouched)."""
        return await self._scan_unlink(self._pattern(None), None)

    async def _scan_unlink(self, pattern: str, namespace: str | None) -> int:
        async def scan_and_unlink() -> int:
            removed = 0
            batch: list[bytes] = []
            async for name in self._scan(pattern, namespace, 500):
                batch.append(name)
                if len(batch) >= 500:
                    removed += await self._client.unlink(*batch)
                    batch.clear()
            if batch:
                removed += await self._client.unlink(*batch)
            return removed

        # Scanning a large keyspace may outlast one op deadline: give it its own.
        if not self.breaker.allow():
            return -1
        try:
            removed = await scan_and_unlink()
        except Exception as exc:
            self.breaker.record_failure(exc)
            self.metrics.inc("errors_total", component=self.name)
            return -1
        self.breaker.record_success()
        return removed

    async def count(self, namespace: str | None = None) -> int:
        """Number of this prefix's keys of one namespace, or of all when None (a SCAN: for
        stats and tests, not the hot path)."""
        pattern = self._pattern(namespace)
        try:
            return sum([1 async for _ in self._scan(pattern, namespace, 1000)])
        except Exception:
            return -1

    async def command(
        self, op: str, call: Callable[[Redis | RedisCluster], Awaitable[T]]
    ) -> T | _Skipped:
        """`call(client)` under this tier's breaker and deadline (the lifecycle records use
        it: one key per call, so a Redis Cluster takes it too); `SKIPPED` when the breaker is
        open or the call failed."""
        return await self._call(op, lambda: call(self._client))

    async def ping(self) -> bool:
        return (await self._call("ping", self._client.ping)) is True

    async def aclose(self) -> None:
        await self._client.aclose()


def _tls_options(
    url: str,
    ca_file: str | Path | None,
    cert_file: str | Path | None,
    key_file: str | Path | None,
) -> dict[str, str]:
    """redis-py's TLS arguments for a ``rediss://`` URL: the CA that signed the server's
    certificate (else the system's CAs) and a client certificate and key (for servers that
    ask for one, ``tls-auth-clients``). They are refused with any other URL."""
    options = {
        "ssl_ca_certs": ca_file,
        "ssl_certfile": cert_file,
        "ssl_keyfile": key_file,
    }
    given = {name: str(value) for name, value in options.items() if value is not None}
    if given and not url.startswith("rediss://"):
        raise ConfigurationError("TLS files need a rediss:// URL")
    if key_file is not None and cert_file is None:
        raise ConfigurationError("a TLS key file needs its certificate file")
    return given


def _cluster_client(
    url: str, timeout_s: float, max_connections: int, tls: dict[str, str]
) -> RedisCluster:
    """redis-py's cluster client for the node `url` names (it discovers the others)."""
    from redis.asyncio.cluster import RedisCluster
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    from semantic_reuse.config import cluster_url_problem

    problem = cluster_url_problem(url)
    if problem:
        raise ConfigurationError(f"url of a Redis Cluster: {problem}")
    # One immediate retry after a connection error, on a reloaded slot map: a failed-over
    # slot is served by its new master at once; anything slower is the breaker's job.
    return RedisCluster.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 1),
        max_connections=max_connections,
        decode_responses=False,
        **tls,
    )
