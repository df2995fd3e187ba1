"""`semantic-reuse bench speed`: lookup latency, throughput, insert cost and memory.

For each cache size and each system (:mod:`.speed_systems`), the filler entries are loaded
with precomputed vectors (not timed), the probes' questions are stored through the system's
own insert path (timed: the insert cost), then, one lookup at a time:

- exact: a stored question asked again (the engine's memory tier; GPTCache has no exact
  tier, so its repeat pays embedding and search like any lookup);
- semantic: a labelled paraphrase of a stored question;
- miss: a question with nothing close in the cache.

Each latency is classified by what the system answered. Throughput runs the same mixed
questions at 1, 8 and 64 concurrent lookups (asyncio tasks for the engine, a thread pool of
that size for GPTCache). Memory per entry is the process's RSS growth while the fillers
load, divided by their number, and the store's bytes on disk per entry.

The fillers' vectors are computed once per machine (:func:`.embeddings.embed_bulk`: the same
model on ONNX Runtime, checked against the embedder) and kept in the bench cache.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semantic_reuse.clauses import AsyncConjunctionExtractor
from semantic_reuse.config import HandlerConfig
from semantic_reuse.defaults import build_embedder, build_search_helper_from, build_splitter
from semantic_reuse.engine import ReuseEngine
from semantic_reuse.semantic.embedder import Embedder
from semantic_reuse.semantic.sentence_transformer import Backend, SentenceTransformerEmbedder
from semantic_reuse.tools.bench import SPEED_SYSTEMS
from semantic_reuse.tools.bench.embeddings import bench_cache_dir, embed_bulk
from semantic_reuse.tools.bench.metrics import Latency
from semantic_reuse.tools.bench.speed_data import SpeedTexts, load_speed_texts
from semantic_reuse.tools.bench.speed_systems import EngineTarget, GPTCacheTarget, Target

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class SpeedOptions:
    sizes: tuple[int, ...] = (1_000, 10_000, 100_000)
    systems: tuple[str, ...] = SPEED_SYSTEMS
    probes: int = 100
    misses: int = 100
    concurrency: tuple[int, ...] = (1, 8, 64)
    throughput_lookups: int = 192
    inserts: int = 128
    insert_batch: int = 32
    #: qdrant-client's local mode is brute force in Python (it filters payloads point by
    #: point): hundreds of ms a lookup at 5k points, so it stops at 10k and runs no throughput.
    qdrant_local_max: int = 10_000
    redis_url: str | None = None
    cache_dir: Path = field(default_factory=bench_cache_dir)


def _rss() -> int:
    psutil = importlib.import_module("psutil")  # untyped; vLLM and rich's users have it
    return int(psutil.Process().memory_info().rss)


def _rss_anon() -> int | None:
    """Anonymous resident memory (Linux): what the process owns, without the pages of
    memory-mapped files that the kernel can drop (RSS counts both)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


async def _timed(target: Target, texts: Sequence[str], group: str) -> list[tuple[str, float]]:
    """Each lookup's latency, keyed by `group` when it was served and by "miss" when not."""
    out = []
    for text in texts:
        start = time.perf_counter()
        kind = await target.lookup(text)
        out.append(("miss" if kind == "miss" else group, time.perf_counter() - start))
    return out


def _by_kind(samples: Sequence[tuple[str, float]]) -> dict[str, list[float]]:
    groups: dict[str, list[float]] = {"exact": [], "semantic": [], "miss": []}
    for kind, seconds in samples:
        groups[kind].append(seconds)
    return groups


async def _throughput(target: Target, texts: Sequence[str], concurrency: int) -> float:
    """Lookups per second with `concurrency` lookups in flight."""
    target.forget_embeddings()
    start = time.perf_counter()
    if isinstance(target, GPTCacheTarget):
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(target.lookup_blocking, texts))
    else:
        gate = asyncio.Semaphore(concurrency)

        async def one(text: str) -> None:
            async with gate:
                await target.lookup(text)

        await asyncio.gather(*(one(t) for t in texts))
    return len(texts) / (time.perf_counter() - start)


async def measure_target(
    target: Target, texts: SpeedTexts, fillers: int, vectors: Any, options: SpeedOptions,
    *, throughput: bool,
) -> dict[str, Any]:  # fmt: skip
    """Everything the bench measures for one system at one size."""
    gc.collect()
    rss, anon = _rss(), _rss_anon()
    start = time.perf_counter()
    await target.populate(texts.fillers[:fillers], vectors[:fillers])
    populate_s = time.perf_counter() - start
    gc.collect()
    rss_per_entry = max(0.0, float(_rss() - rss)) / max(1, fillers)
    anon_after = _rss_anon()
    anon_per_entry = (
        None if anon is None or anon_after is None else max(0, anon_after - anon) / max(1, fillers)
    )
    q1 = [a for a, _ in texts.probes]
    start = time.perf_counter()
    await target.insert(q1, batch=options.insert_batch)
    insert_s = time.perf_counter() - start
    await _timed(target, texts.spare[:8], "warm-up")  # first-call costs, not counted
    samples = await _timed(target, [b for _, b in texts.probes], "semantic")
    samples += await _timed(target, list(texts.misses), "semantic")
    samples += await _timed(target, q1, "exact")
    groups = _by_kind(samples)
    row: dict[str, Any] = {
        "system": target.name,
        "entries": fillers,
        "populate_s": round(populate_s, 2),
        "insert_ms_per_entry_batched": round(1000 * insert_s / max(1, len(q1)), 3),
        "rss_bytes_per_entry": round(rss_per_entry, 1),
        "anon_bytes_per_entry": None if anon_per_entry is None else round(anon_per_entry, 1),
        "disk_bytes_per_entry": round(target.disk_bytes() / max(1, fillers + len(q1)), 1),
        "lookups": {k: Latency.of(v).as_dict() for k, v in sorted(groups.items())},
        "samples_ms": {k: [round(s * 1000, 3) for s in v] for k, v in groups.items()},
    }
    if throughput:
        mixed = [b for _, b in texts.probes] + list(texts.misses) + list(texts.spare)
        mixed = mixed[: options.throughput_lookups]
        row["throughput_per_s"] = {
            str(c): round(await _throughput(target, mixed, c), 1) for c in options.concurrency
        }
        single = list(texts.spare[-options.inserts :])
        start = time.perf_counter()
        await target.insert(single, batch=1)
        row["insert_ms_per_entry_single"] = round(
            1000 * (time.perf_counter() - start) / max(1, len(single)), 3
        )
    return row


async def redis_exact(
    config: HandlerConfig, embedder: Embedder, splitter: AsyncConjunctionExtractor,
    url: str, texts: Sequence[str],
) -> dict[str, Any]:  # fmt: skip
    """Exact hits served by Redis: stored, flushed, the memory tier emptied, asked once each."""
    cfg = config.model_copy(deep=True)
    cfg.cache.redis_url = url
    cfg.cache.redis_prefix = f"sr-bench-{time.time_ns()}"
    cfg.features.enable_redis = True
    with tempfile.TemporaryDirectory(prefix="sr-speed-redis-") as folder:
        cfg.cache.qdrant_path = Path(folder)
        search = await asyncio.to_thread(build_search_helper_from, cfg, embedder)
        engine = ReuseEngine(cfg, search=search, splitter=splitter)
        try:
            for first in range(0, len(texts), 32):
                chunk = texts[first : first + 32]
                await engine.store_many([(t, "a cached answer") for t in chunk])
            await engine.flush()
            await engine.cache.memory.clear_all()
            samples: list[float] = []
            tiers: dict[str, int] = {}
            for text in texts:
                start = time.perf_counter()
                hit = await engine.lookup(text)
                samples.append(time.perf_counter() - start)
                tier = "none" if hit is None else str(hit.info.tier)
                tiers[tier] = tiers.get(tier, 0) + 1
            if engine.cache.redis is not None:
                await engine.cache.redis.clear_all()
            return {"lookups": Latency.of(samples).as_dict(), "tiers": tiers}
        finally:
            await engine.aclose()
            await search.embedder.aclose()
            await search.store.aclose()


#: Systems that are the default engine with MiniLM on another runtime.
VARIANT_BACKENDS: dict[str, Backend] = {"edge-onnx": "onnx", "edge-torch": "torch"}


def _with_backend(
    config: HandlerConfig, inner: Embedder, backend: Backend
) -> tuple[HandlerConfig, Embedder]:
    """`config` with MiniLM on `backend`, and its embedder. An embedder that is not MiniLM's
    (a test's, a custom folder's on the same runtime) stands for every variant."""
    variant = config.model_copy(deep=True)
    variant.semantic.embedder_backend = backend
    if not isinstance(inner, SentenceTransformerEmbedder) or inner.backend == backend:
        return variant, inner
    return variant, build_embedder(variant)


async def run_speed(
    datasets: Path, config: HandlerConfig, options: SpeedOptions,
    *, embedder: Embedder | None = None, splitter: AsyncConjunctionExtractor | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The whole speed bench (see the module docstring)."""
    inner = embedder or build_embedder(config)
    split = splitter if splitter is not None else await asyncio.to_thread(build_splitter, config)
    largest = max(options.sizes)
    texts = load_speed_texts(
        datasets, n_probes=options.probes, n_misses=options.misses, n_fillers=largest,
        n_spare=max(options.throughput_lookups, options.inserts) + 8,
    )  # fmt: skip
    if len(texts.fillers) < largest:
        raise ValueError(f"only {len(texts.fillers)} filler texts for {largest} entries")

    def report(label: str) -> Callable[[int, int], None] | None:
        return None if progress is None else (lambda d, t: progress(label, d, t))

    vectors, filler_embedding = await asyncio.to_thread(
        embed_bulk, inner, list(texts.fillers), cache_dir=options.cache_dir / "vectors",
        progress=report(f"embedding {largest} filler texts (cached for later runs)"),
    )  # fmt: skip
    # The same MiniLM on other runtimes, for each lever's share: float ONNX Runtime (the default
    # before int8), PyTorch (the engine before ONNX, and GPTCache as its users run
    # sentence-transformers: its SBERT embedding is PyTorch). The default engine is `edge`.
    wanted = set(options.systems) | ({"edge-torch"} if "gptcache" in options.systems else set())
    variants = {
        name: _with_backend(config, inner, backend)
        for name, backend in VARIANT_BACKENDS.items()
        if name in wanted
    }
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    plan = [(n, s) for n in sorted(options.sizes) for s in options.systems]
    middle = sorted(options.sizes)[len(options.sizes) // 2]
    for done, (size, system) in enumerate(plan):
        if progress:
            progress(f"{system} at {size} entries", done, len(plan))
        if system == "qdrant-local" and size > options.qdrant_local_max:
            skipped.append(f"qdrant-local at {size}: brute force in Python, too slow (not run)")
            continue
        target: Target
        if system == "gptcache":
            target = GPTCacheTarget(variants["edge-torch"][1])
        elif system == "edge-cosine":  # the default without the verifier: what it costs
            cosine = config.model_copy(deep=True)
            cosine.semantic.verifier = "off"
            target = EngineTarget("edge", cosine, inner, split, options.cache_dir, system)
        elif system in VARIANT_BACKENDS:
            variant_config, variant_inner = variants[system]
            target = EngineTarget(
                "edge", variant_config, variant_inner, split, options.cache_dir, system
            )
        else:
            target = EngineTarget(system, config, inner, split, options.cache_dir)
        try:
            rows.append(
                await measure_target(target, texts, size, vectors, options,
                                     throughput=size == middle and system != "qdrant-local")
            )  # fmt: skip
        finally:
            await target.close()
    result: dict[str, Any] = {
        "embedder": inner.name,
        "backend": config.semantic.embedder_backend,
        "sizes": list(options.sizes),
        "filler_embedding": filler_embedding,
        "rows": rows,
        "skipped": skipped,
    }
    if options.redis_url:
        result["redis_exact"] = await redis_exact(
            config, inner, split, options.redis_url, texts.spare[:100]
        )
    if progress:
        progress("done", len(plan), len(plan))
    return result
