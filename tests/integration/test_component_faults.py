"""A cache component that fails never fails a request: each fault, one at a time.

Real components throughout (the bundled embedder, Qdrant Edge folders, spaCy, Redis, host
shared memory) except where the fault itself cannot be produced on demand: the embedder and
the clause splitter are wrapped (`tools.bench.faults`) to raise or hang. The full disk is a
real tmpfs filled with a ballast file; the damaged store, Redis value and shared segment are
real bytes damaged on disk, in Redis and in /dev/shm.

Each test: the requests are answered (generated), the fault is counted, it is logged once at
WARNING (no traceback), and the engine serves normally once the fault is gone. Breakers run on
a `ManualClock`; hangs use deadlines of a fraction of a second.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis_client
from loguru import logger

from semantic_reuse import CallableBackend, HandlerConfig, ReuseEngine, ReuseKind
from semantic_reuse.breaker import BreakerState, CircuitBreaker
from semantic_reuse.clauses import AsyncConjunctionExtractor
from semantic_reuse.defaults import build_search_helper_from
from semantic_reuse.exact.segment import overhead_bytes, segment_name
from semantic_reuse.tools.bench.faults import (
    FaultUnavailable,
    FaultyEmbedder,
    FaultySplitter,
    damage_edge_folder,
    damage_shared_segment,
    fill_disk,
    garbage_values,
    small_tmpfs,
)
from tests.conftest import ManualClock

SHM = Path("/dev/shm")
COMPOUND = "What is Redis and how does it store data?"
SLOW = {"breaker_failure_threshold": 3, "breaker_reset_s": 5.0, "breaker_max_reset_s": 5.0}


async def _answer(prompt: object, params: object) -> str:
    return f"answer to: {prompt}"


BACKEND = CallableBackend(_answer)


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    """The library's lines at WARNING and above, as an application that enabled them sees
    them (loguru's default format: a traceback would show)."""
    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING")
    logger.enable("semantic_reuse")
    yield lines
    logger.disable("semantic_reuse")
    logger.remove(sink)


def _one_line(lines: list[str], needle: str) -> None:
    text = "".join(lines)
    assert len(lines) == 1, text
    assert needle in lines[0], text
    assert lines[0].count("\n") == 1, text
    assert "Traceback" not in text


def _clocked(engine: ReuseEngine, clock: ManualClock) -> None:
    """The engine's semantic breaker on `clock` (threshold 3, first back-off 5 s)."""
    engine.semantic.breaker = CircuitBreaker("semantic", failure_threshold=3, reset_s=5.0,
                                             clock=clock)  # fmt: skip


class Engines:
    """ReuseEngines on the shared models, closed after the test."""

    def __init__(self, minilm: Any, splitter: Any) -> None:
        self.minilm = minilm
        self.splitter = splitter
        self.made: list[tuple[ReuseEngine, Any]] = []

    def make(self, folder: Path, *, embedder: Any = None, splitter: Any = None,
             **config: Any) -> ReuseEngine:  # fmt: skip
        cfg = HandlerConfig(**config)
        search = build_search_helper_from(cfg, embedder or self.minilm, folder)
        engine = ReuseEngine(cfg, search=search, splitter=splitter or self.splitter)
        self.made.append((engine, search))
        return engine

    async def close(self) -> None:
        for engine, search in self.made:
            await engine.aclose()
            await search.embedder.aclose()
            await search.store.aclose()


@pytest.fixture
async def engines(minilm: Any, splitter: Any) -> AsyncIterator[Engines]:
    made = Engines(minilm, splitter)
    yield made
    await made.close()


async def _generated(engine: ReuseEngine, prompts: list[str]) -> None:
    for prompt in prompts:
        result = await engine.generate(prompt, BACKEND)
        assert result.info.kind is ReuseKind.MISS, prompt
        assert result.text == f"answer to: {prompt}"


async def _paraphrase_served(engine: ReuseEngine, tag: str) -> None:
    """The semantic path works: an answer stored now is served for a paraphrase."""
    await engine.generate(f"How do I reset my {tag} password?", BACKEND)
    await engine.flush()
    hit = await engine.generate(f"How can I reset my {tag} password?", BACKEND)
    assert hit.info.kind is ReuseKind.SEMANTIC
    assert hit.text == f"answer to: How do I reset my {tag} password?"


# -- (a, b) the embedder raising or hanging ------------------------------------------------------


@pytest.mark.parametrize("mode", ["raise", "hang"])
async def test_a_failing_embedder_costs_paraphrase_reuse_only(
    engines: Engines, minilm: Any, tmp_path: Path, warnings: list[str], mode: str
) -> None:
    faulty = FaultyEmbedder(minilm)
    # A hang costs each request the semantic deadline (short here), until the breaker opens.
    deadlines = {"timeout_s": 0.2, "store_timeout_s": 0.2} if mode == "hang" else {}
    engine = engines.make(tmp_path / "edge", embedder=faulty, performance=SLOW,
                          semantic=deadlines)  # fmt: skip
    clock = ManualClock()
    _clocked(engine, clock)
    await _generated(engine, ["What is a vector database?"])
    faulty.set(mode)  # type: ignore[arg-type]
    prompts = [f"Which city hosted the {n}th summit on caching?" for n in range(6)]
    await _generated(engine, prompts)
    again = await engine.generate(prompts[0], BACKEND)
    assert again.info.kind is ReuseKind.EXACT  # memory still answers
    await engine.flush()
    assert engine.metrics.counter("errors_total", component="semantic") >= 3
    assert engine.stats()["breakers"]["semantic"] == BreakerState.OPEN.value
    _one_line(warnings, "semantic unavailable (")
    assert ("TimeoutError" if mode == "hang" else "injected fault") in warnings[0]
    faulty.set(None)
    engine.semantic.timeout_s = 5.0  # the default deadlines: a busy machine embeds slowly
    engine.config.semantic.store_timeout_s = 120.0
    clock.advance(6)  # past the back-off: the next call is the trial
    await _paraphrase_served(engine, "bank")
    assert engine.stats()["breakers"]["semantic"] == BreakerState.CLOSED.value


# -- (c, d) the clause splitter raising or hanging -----------------------------------------------


@pytest.mark.parametrize("mode", ["raise", "hang"])
async def test_a_failing_splitter_treats_prompts_as_one_question(
    engines: Engines, splitter: Any, tmp_path: Path, warnings: list[str], mode: str
) -> None:
    faulty = FaultySplitter(splitter.splitter.splitter_for("en"))
    extractor = AsyncConjunctionExtractor(max_concurrent=2, timeout_s=0.2, english=faulty)
    try:
        engine = engines.make(tmp_path / "edge", splitter=extractor)
        clock = ManualClock()
        engine.splitter.breaker = CircuitBreaker("splitter", failure_threshold=3, reset_s=5.0,
                                                 clock=clock)  # fmt: skip
        faulty.set(mode)  # type: ignore[arg-type]
        prompts = [COMPOUND, "What is Kafka and how does it order messages?",
                   "What is Qdrant and how does it index vectors?"]  # fmt: skip
        await _generated(engine, prompts)
        stats = engine.stats()["splitter"]
        assert stats["failures" if mode == "raise" else "timeouts"] == len(prompts)
        assert stats["splits"] == 0
        counters = engine.stats()["counters"]
        assert counters["errors_total"]["component=splitter"] == len(prompts)
        # The third failure opened the splitter's breaker: its one WARNING names the error.
        assert engine.stats()["breakers"]["splitter"] == BreakerState.OPEN.value
        needle = "crashed" if mode == "raise" else "timed out"
        _one_line(warnings, "splitter unavailable")
        assert needle in warnings[0], warnings
        # While it is open, compound questions skip the splitter: no deadline paid.
        await _generated(engine, ["What is Kafka and how does it store logs?"])
        assert engine.stats()["splitter"]["calls"] == len(prompts)
        assert engine.stats()["counters"]["skipped_total"]["component=splitter"] == 1
        faulty.set(None)
        clock.advance(6)  # past the back-off: the next compound question is the trial
        await engine.flush()
        # Once the splitter works: a compound question is split and its clauses reused.
        await engine.store("What is Redis?", "An in-memory store.")
        await engine.store("How does Redis store data?", "In memory, with snapshots.")
        composed = await engine.generate("What is Redis and how does Redis store data?", BACKEND)
        assert composed.info.kind is ReuseKind.COMPOSED
        assert engine.stats()["splitter"]["splits"] >= 1
        assert engine.stats()["breakers"]["splitter"] == BreakerState.CLOSED.value
    finally:
        extractor.close()


# -- (e) the Edge folder's disk full ------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 256 MiB tmpfs (the Edge files' holes take about 130 MiB of it)."""
    if os.geteuid() != 0:
        pytest.fail("the full-disk test mounts a tmpfs: run it as root (CAP_SYS_ADMIN)")
    try:
        with small_tmpfs(tmp_path / "disk", 256) as disk:
            yield disk
    except FaultUnavailable as exc:
        pytest.fail(f"{exc} (the full-disk test needs CAP_SYS_ADMIN)")


async def test_a_full_disk_pauses_vector_writes_and_never_kills_the_process(
    small_disk: Path, engines: Engines, warnings: list[str]
) -> None:
    # (small_disk first: the engines close before the tmpfs goes)
    reserve = 8 * 1024 * 1024
    engine = engines.make(small_disk / "edge", cache={"qdrant_min_free_bytes": reserve},
                          performance=SLOW)  # fmt: skip
    await _paraphrase_served(engine, "email")
    store = engine.semantic.ready.store  # type: ignore[union-attr]
    stored = await store.count()
    ballast = small_disk / "ballast"
    assert fill_disk(store.path, reserve, ballast) > 0
    prompts = [f"Which river flows through city number {n}?" for n in range(5)]
    await _generated(engine, prompts)
    await engine.flush()
    # Each refused write is counted; writes made together (one batch) fail as one.
    assert 1 <= engine.metrics.counter("errors_total", component="semantic") <= len(prompts)
    assert (await engine.generate(prompts[0], BACKEND)).info.kind is ReuseKind.EXACT
    assert await store.count() == stored  # none of the five was written
    _one_line(warnings, "is nearly full")
    ballast.unlink()  # room again
    await _paraphrase_served(engine, "phone")
    assert await store.count() == stored + 1


# -- (f) a damaged Edge folder -------------------------------------------------------------------


@pytest.mark.parametrize("how", ["truncate", "flip"])
async def test_a_damaged_edge_folder_turns_semantic_reuse_off(
    minilm: Any, splitter: Any, tmp_path: Path, warnings: list[str], how: str
) -> None:
    folder = tmp_path / "qdrant"
    config = HandlerConfig(
        cache={"qdrant_path": folder}, semantic={"embedder": "minilm"}, performance=SLOW
    )
    first = ReuseEngine(config, splitter=splitter)
    await _generated(first, [f"What is the tallest tower in city number {n}?" for n in range(4)])
    await first.aclose()
    shard = next(p for p in folder.iterdir() if p.is_dir())
    assert damage_edge_folder(shard, how)
    warnings.clear()
    engine = ReuseEngine(config, splitter=splitter)
    try:
        prompts = [f"Who designed the bridge in town number {n}?" for n in range(4)]
        await _generated(engine, prompts)
        again = await engine.generate(prompts[0], BACKEND)
        assert again.info.kind is ReuseKind.EXACT  # memory still answers
        assert engine.metrics.counter("errors_total", component="semantic") == 3
        assert engine.stats()["breakers"]["semantic"] == BreakerState.OPEN.value
        _one_line(warnings, "semantic unavailable (ComponentUnavailableError: ")
        assert "Edge" in warnings[0]
    finally:
        await engine.aclose()


# -- (g) a damaged Redis value, a damaged shared-memory segment ----------------------------------


@pytest.mark.parametrize("damage", ["garbage", "bad_body"])
async def test_a_damaged_redis_value_is_a_counted_miss(
    engines: Engines, tmp_path: Path, redis_url: str, redis_prefix: str,
    forget_prefix: None, warnings: list[str], damage: str,
) -> None:  # fmt: skip
    cache = {"redis_url": redis_url, "redis_prefix": redis_prefix}
    prompt = "What is the boiling point of water at sea level?"
    first = engines.make(tmp_path / "a", cache=cache)
    stored = await first.generate(prompt, BACKEND)
    await first.flush()
    tier = first.cache.redis
    assert tier is not None
    key = tier.redis_key("default", stored.info.hash_id)
    raw = redis_client.Redis.from_url(redis_url)
    try:
        valid = await raw.get(key)
        await raw.set(key, garbage_values(valid)[damage])
    finally:
        await raw.aclose()
    second = engines.make(tmp_path / "b", cache=cache)  # empty memory, its own Edge folder
    result = await second.generate(prompt, BACKEND)
    assert result.info.kind is ReuseKind.MISS
    assert result.text == f"answer to: {prompt}"
    assert second.metrics.counter("decode_errors_total", tier="redis") == 1
    assert second.cache.redis is not None
    assert second.cache.redis.breaker.state is BreakerState.CLOSED  # bad data is no outage
    _one_line(warnings, "undecodable value under")
    await second.flush()  # the answer generated again replaced the damaged value
    third = engines.make(tmp_path / "c", cache=cache)
    hit = await third.lookup(prompt)
    assert hit is not None
    assert (hit.info.tier, hit.text) == ("redis", f"answer to: {prompt}")


async def test_a_damaged_shared_memory_segment_falls_through(
    engines: Engines, tmp_path: Path, warnings: list[str]
) -> None:
    name = f"srfault-{uuid.uuid4().hex[:10]}"
    cache = {"shared_memory": True, "shared_memory_name": name,
             "shared_memory_bytes": 256 * 1024, "shared_memory_entries": 64,
             "shared_memory_secret": tmp_path / "secret"}  # fmt: skip
    prompts = [f"How many moons does planet number {n} have?" for n in range(4)]
    first = engines.make(tmp_path / "a", cache=cache)
    await _generated(first, prompts)
    await first.flush()
    second = engines.make(tmp_path / "b", cache=cache)  # attaches to first's segments
    hit = await second.lookup(prompts[0])
    assert hit is not None
    assert hit.info.tier == "shared"
    segments = [SHM / segment_name(f"{name}-{kind}") for kind in ("requests", "tokens")]
    assert all(path.is_file() for path in segments), segments
    for path in segments:
        damage_shared_segment(path, overhead_bytes(64))  # the answers, not the slot table
    third = engines.make(tmp_path / "c", cache=cache)  # empty memory
    for prompt in prompts:
        result = await third.generate(prompt, BACKEND)
        assert result.info.kind is ReuseKind.MISS
        assert result.text == f"answer to: {prompt}"
    counted = third.metrics.counter("integrity_failures_total", tier="shared") + (
        third.metrics.counter("errors_total", component="shared")
    )
    assert counted >= 1
    assert len(warnings) == 1, warnings
    assert "host shared memory" in warnings[0]
    assert "Traceback" not in "".join(warnings)
    # Written again over the damage: the next engine on the host reuses them exactly.
    fourth = engines.make(tmp_path / "d", cache=cache)
    hit = await fourth.lookup(prompts[1])
    assert hit is not None
    assert hit.info.kind is ReuseKind.EXACT
