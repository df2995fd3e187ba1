"""Answer lifecycle through the engine, on real tiers: memory, host shared memory, Redis and
Qdrant Edge (real embedder, verifier on). Per-entry TTL (absolute and sliding), and
invalidation by tag, hash id, age and epoch, seen by a second engine that shares Redis (a
second process: its own memory and store, the same Redis)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from semantic_reuse import CachedAnswer, CallableBackend, ReuseEngine, ReuseKind, ReuseRequest
from semantic_reuse.analysis import scope_of
from tests.conftest import EngineFactory

Q = "How do I reset my password?"
PARA = "How can I reset my password?"
OTHER = "What is the capital of France?"


def request(prompt: str, namespace: str = "default") -> ReuseRequest:
    return ReuseRequest(prompt, namespace=namespace, model="default")


@pytest.fixture
def shared_redis(redis_url: str, redis_prefix: str, forget_prefix: None) -> dict[str, Any]:
    """Config of engines that share one Redis (and its lifecycle records), each reading the
    records again on every lookup (a refresh interval far below one request)."""
    return {
        "cache": {"redis_url": redis_url, "redis_prefix": redis_prefix},
        "lifecycle": {"state_refresh_s": 1e-9},
    }


async def kind(engine: ReuseEngine, prompt: str, **options: Any) -> str | None:
    hit = await engine.lookup(prompt, **options)
    return None if hit is None else f"{hit.info.kind.value}:{hit.info.tier}"


# -- per-entry TTL ----------------------------------------------------------------------------


async def test_store_with_ttl_sets_the_lifetime_in_every_tier(
    make_engine: EngineFactory, shared_redis: dict[str, Any], redis_url: str
) -> None:
    from redis.asyncio import Redis

    engine: ReuseEngine = make_engine(**shared_redis)
    before = time.time()
    key = await engine.store(Q, "Use the reset link.", ttl_s=120, tags=["doc-1"])
    await engine.flush()
    held = engine.cache.memory.get_nowait("default", key)
    assert held is not None
    assert held.expires_at is not None
    assert before + 120 <= held.expires_at <= time.time() + 120
    assert (held.tags, held.ttl_s, held.sliding) == (("doc-1",), 120.0, False)
    assert engine.cache.redis is not None
    client = Redis.from_url(redis_url)
    pttl = await client.pttl(engine.cache.redis.redis_key("default", key))
    await client.aclose()
    assert 0 < pttl <= 120_000  # the shorter of redis_ttl_s and the answer's
    record = await engine.semantic.ready.store.get(key)
    assert record is not None
    assert record.expires_at == pytest.approx(held.expires_at, abs=1.0)
    assert record.answer["tags"] == ["doc-1"]


async def test_an_expired_answer_is_never_served_from_any_tier(
    make_engine: EngineFactory, redis_url: str, redis_prefix: str, forget_prefix: None,
    tmp_path: Path,
) -> None:  # fmt: skip
    """An answer whose lifetime ended while a tier still held it (each tier written directly,
    as a clock that moved on would leave it) is refused by every tier, and the request falls
    through to the next tier or to a miss."""
    engine: ReuseEngine = make_engine(
        cache={"redis_url": redis_url, "redis_prefix": redis_prefix, "shared_memory": True,
               "shared_memory_name": f"lc-{redis_prefix}",
               "shared_memory_secret": tmp_path / "secret"},
    )  # fmt: skip
    assert engine.cache.shared is not None
    assert engine.cache.redis is not None
    past = time.time() - 1
    for prompt, tier in [(Q, "memory"), (OTHER, "shared"), ("What is Redis?", "redis")]:
        key = request(prompt).hash_id
        dead = CachedAnswer(f"stale from {tier}", expires_at=past)
        if tier == "memory":
            engine.cache.memory.set_nowait("default", key, dead, 3600)
        elif tier == "shared":
            assert engine.cache.shared.set_nowait("default", key, dead)
        else:
            assert await engine.cache.redis.set("default", key, dead, 3600)
        assert await engine.lookup(prompt) is None, tier
    # the vector store: the durable record, both by id and as a paraphrase candidate
    search = engine.semantic.ready
    assert search is not None
    req = request("What is Qdrant?")
    await search.add(id=req.hash_id, prompt=req.semantic_text,
                     answer=CachedAnswer("stale record", expires_at=past),
                     scope=scope_of(req))  # fmt: skip
    assert await engine.lookup("What is Qdrant?") is None
    assert await engine.lookup("What is Qdrant?", reuse=False) is None  # read by id
    assert await engine.lookup("Tell me what Qdrant is", threshold=0.0) is None
    assert engine.metrics.counter("retired_reads_total", tier="memory") >= 1


async def test_sliding_answers_are_renewed_when_used(
    make_engine: EngineFactory, shared_redis: dict[str, Any]
) -> None:
    engine: ReuseEngine = make_engine(**shared_redis)
    now = time.time()
    # A sliding answer near the end of its window (95 of its 100 seconds have passed).
    ending = CachedAnswer("Use the reset link.", ttl_s=100.0, sliding=True, expires_at=now + 5)
    key = await engine.store(Q, ending)
    await engine.flush()
    search = engine.semantic.ready
    assert search is not None
    assert (await search.store.get(key)).expires_at == pytest.approx(now + 5, abs=1)
    hit = await engine.lookup(PARA)  # a paraphrase: its record is renewed
    assert hit is not None
    assert hit.info.kind is ReuseKind.SEMANTIC
    await engine.pipeline.flush()
    await engine.flush()
    record = await search.store.get(key)
    assert record is not None
    assert record.expires_at is not None
    assert record.expires_at >= now + 99
    copy = engine.cache.memory.get_nowait("default", request(PARA).hash_id)
    assert copy is None or copy.expires_at is None or copy.expires_at >= now + 99
    # An exact hit renews the exact tiers' entry (Redis included) and the record.
    engine.cache.memory.set_nowait("default", key, ending)  # back near the end
    exact = await engine.lookup(Q)
    assert exact is not None
    assert exact.info.tier == "memory"
    await engine.flush()
    renewed = engine.cache.memory.get_nowait("default", key)
    assert renewed is not None
    assert renewed.expires_at is not None
    assert renewed.expires_at >= now + 99
    assert engine.metrics.counter("renewals_total") >= 2
    # A fresh sliding answer is not written again on every use (10 % of its window first).
    before = engine.metrics.counter("renewals_total")
    assert await engine.lookup(Q) is not None
    assert engine.metrics.counter("renewals_total") == before


# -- invalidation -----------------------------------------------------------------------------


async def test_invalidate_by_tag_in_every_tier_and_process(
    make_engine: EngineFactory, shared_redis: dict[str, Any], tmp_path: Path
) -> None:
    a: ReuseEngine = make_engine(folder=tmp_path / "a", **shared_redis)
    b: ReuseEngine = make_engine(folder=tmp_path / "b", **shared_redis)
    await a.store(Q, "Old: use the reset link.", tags=["doc-1"])
    await a.store(OTHER, "Paris.", tags=["doc-2"])
    await a.flush()
    assert await kind(a, PARA) == "semantic:vector"
    await a.flush()
    assert await kind(b, Q) == "exact:redis"  # now in b's memory as well
    assert await kind(b, Q) == "exact:memory"
    await a.invalidate_tag("doc-1")
    for engine in (a, b):
        assert await engine.lookup(Q) is None
        assert await engine.lookup(PARA) is None  # the paraphrase's copy carries the tag
    assert await kind(b, OTHER) == "exact:redis"  # another tag is untouched
    assert await a.semantic.ready.store.count("default") == 1
    # The document changed: its new answer, stored after, is served again.
    await a.store(Q, "New: use the account page.", tags=["doc-1"])
    await a.flush()
    hit = await b.lookup(Q)
    assert hit is not None
    assert hit.text == "New: use the account page."


async def test_invalidate_by_id_and_by_age(
    make_engine: EngineFactory, shared_redis: dict[str, Any], tmp_path: Path
) -> None:
    a: ReuseEngine = make_engine(folder=tmp_path / "a", **shared_redis)
    b: ReuseEngine = make_engine(folder=tmp_path / "b", **shared_redis)
    old = CachedAnswer("Paris.", created_at=time.time() - 600)
    key = await a.store(OTHER, old)
    await a.store(Q, "Use the reset link.")
    await a.flush()
    assert await kind(b, OTHER) == "exact:redis"
    await a.forget_older_than(300, namespace="default")
    assert await b.lookup(OTHER) is None  # b held it in memory: the record retires it
    assert await a.lookup(OTHER) is None
    assert await kind(b, Q) == "exact:redis"
    hit = await a.lookup(Q)
    assert hit is not None
    assert hit.info.hash_id is not None
    await a.invalidate_id(hit.info.hash_id)
    assert await b.lookup(Q) is None
    assert await a.lookup(Q) is None
    assert await a.semantic.ready.store.count("default") == 0
    with pytest.raises(ValueError, match="namespace"):
        await a.invalidate_id(key, namespace="")


async def test_bumping_the_epoch_retires_everything_at_once(
    make_engine: EngineFactory, shared_redis: dict[str, Any], tmp_path: Path
) -> None:
    a: ReuseEngine = make_engine(folder=tmp_path / "a", **shared_redis)
    b: ReuseEngine = make_engine(folder=tmp_path / "b", **shared_redis)
    await a.store(Q, "From model v1.")
    await a.store(OTHER, "Paris (v1).", namespace="other")
    await a.flush()
    assert await kind(b, Q) == "exact:redis"
    assert await a.bump_epoch() == 1
    assert (await b.lifecycle_state()).epoch == 1
    for engine in (a, b):
        assert await engine.lookup(Q) is None
        assert await engine.lookup(PARA, threshold=0.0) is None
    assert await kind(a, OTHER, namespace="other") == "exact:memory"  # another namespace
    # A request that began before the bump and finished after: its answer is of the old epoch.
    generating, gate = asyncio.Event(), asyncio.Event()

    async def slow(prompt: object, params: object) -> str:
        generating.set()  # the lookup is done: it read the epoch before this
        await gate.wait()
        return "begun under v1"

    late = asyncio.create_task(a.generate("What is Redis?", CallableBackend(slow)))
    await generating.wait()
    assert await a.bump_epoch() == 2
    gate.set()
    assert (await late).info.kind is ReuseKind.MISS
    await a.flush()
    assert await a.lookup("What is Redis?") is None
    # Answers of the new epoch are served, by paraphrase too, in both processes.
    await a.store(Q, "From model v2.")
    await a.flush()
    para = await a.lookup(PARA)
    assert para is not None
    assert (para.info.kind, para.text) == (ReuseKind.SEMANTIC, "From model v2.")
    hit = await b.lookup(Q)
    assert hit is not None
    assert (hit.info.tier, hit.text) == ("redis", "From model v2.")


async def test_records_in_a_file_without_redis_survive_a_restart(
    make_engine: EngineFactory, tmp_path: Path
) -> None:
    records = {"lifecycle": {"state_path": tmp_path / "lifecycle.json", "state_refresh_s": 1e-9}}
    first: ReuseEngine = make_engine(folder=tmp_path / "edge", **records)
    await first.store(Q, "v1", tags=["doc-1"])
    await first.store(OTHER, "Paris.")
    assert await first.bump_epoch() == 1
    await first.store(OTHER, "Paris (v2).", tags=["doc-2"])
    await first.invalidate_tag("doc-2")
    await first.aclose()
    await first.semantic.ready.store.aclose()
    again: ReuseEngine = make_engine(folder=tmp_path / "edge", **records)
    assert (await again.lifecycle_state()).epoch == 1
    assert await again.lookup(Q) is None
    assert await again.lookup(OTHER) is None
    await again.store(Q, "v2")
    hit = await again.lookup(Q)
    assert hit is not None
    assert hit.text == "v2"


async def test_options_are_checked_at_the_edge(make_engine: EngineFactory) -> None:
    engine: ReuseEngine = make_engine()
    with pytest.raises(ValueError, match="ttl_s"):
        await engine.store(Q, "x", ttl_s=0)
    with pytest.raises(TypeError, match="ttl_s"):
        await engine.store(Q, "x", ttl_s="1h")
    with pytest.raises(TypeError, match="tags"):
        await engine.store(Q, "x", tags="doc-1")
    with pytest.raises(ValueError, match="tags"):
        await engine.store(Q, "x", tags=[""])
    with pytest.raises(TypeError, match="sliding"):
        await engine.store(Q, "x", ttl_s=5, sliding="yes")
    with pytest.raises(ValueError, match="tags"):
        await engine.invalidate_tag([])
    with pytest.raises(ValueError, match="namespace"):
        await engine.bump_epoch("")
