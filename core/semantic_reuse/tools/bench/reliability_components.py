"""Component faults under requests: each fault against a fresh engine, N requests each.

``python -m semantic_reuse.tools.bench.reliability_components --out DIR`` (or
`run_component_faults`) runs, one at a time: the embedder raising and hanging, the clause
splitter raising and hanging, the Edge folder's disk full (a real tmpfs filled with a ballast
file), a truncated and a byte-flipped Edge folder, a garbage and a bad-body Redis value, and a
damaged host shared-memory segment (`faults`). The components are real (the bundled embedder,
spaCy, Qdrant Edge, Redis at ``$REDIS_URL``); the backend is a deterministic in-process
function, since the faults are in the cache components. Per fault: requests, failed (must be 0),
generated, the fault as counted by the engine, the library's log lines at WARNING and above, and
p50/p99 latency. Writes ``component_faults.json`` and ``component_faults.md`` to DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semantic_reuse.backend import CallableBackend
from semantic_reuse.config import HandlerConfig
from semantic_reuse.engine import ReuseEngine
from semantic_reuse.outcome import ReuseKind
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

#: The requests of every fault: single and compound questions, each asked twice in a run.
PROMPTS = [
    "What is a vector database?",
    "What is Redis and how does it store data?",
    "How do I reset my password?",
    "Which river flows through Paris?",
    "What is Kafka and how does it order messages?",
    "How tall is the Eiffel tower?",
    "What is Qdrant and how does it index vectors?",
    "Who wrote the first web browser?",
]
PERFORMANCE: dict[str, Any] = {"breaker_failure_threshold": 3, "breaker_reset_s": 1.0}
Counter = Callable[[ReuseEngine], float]


async def _answer(prompt: object, params: object) -> str:
    await asyncio.sleep(0.005)  # a fast model: the faults' cost stays visible
    return f"answer to: {prompt}"


@dataclass
class Setup:
    engine: ReuseEngine
    counted: Counter
    what: str


def _p(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class _Bench:
    def __init__(self, root: Path, redis_url: str) -> None:
        from semantic_reuse.clauses import AsyncConjunctionExtractor
        from semantic_reuse.semantic.sentence_transformer import SentenceTransformerEmbedder

        self.root = root
        self.redis_url = redis_url
        self.minilm = SentenceTransformerEmbedder()
        self.minilm.load()
        self.splitter = AsyncConjunctionExtractor(max_concurrent=4, timeout_s=2.0)
        self.splitter.warm_up()
        self.helpers: list[Any] = []

    def folder(self, name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.root))

    def engine(self, folder: Path, *, embedder: Any = None, splitter: Any = None,
               **config: Any) -> ReuseEngine:  # fmt: skip
        from semantic_reuse.defaults import build_search_helper_from

        cfg = HandlerConfig.model_validate({"performance": PERFORMANCE, **config})
        search = build_search_helper_from(cfg, embedder or self.minilm, folder)
        self.helpers.append(search)
        return ReuseEngine(cfg, search=search, splitter=splitter or self.splitter)

    async def close_helpers(self) -> None:
        for search in self.helpers:
            await search.embedder.aclose()
            await search.store.aclose()
        self.helpers.clear()


def _semantic_errors(engine: ReuseEngine) -> float:
    return engine.metrics.counter("errors_total", component="semantic")


@contextlib.asynccontextmanager
async def _fault(bench: _Bench, name: str) -> AsyncIterator[Setup]:
    """A fresh engine with `name`'s fault in place, and how the engine counts it."""
    if name in ("embedder_raise", "embedder_hang"):
        faulty = FaultyEmbedder(bench.minilm)
        deadlines = {"timeout_s": 0.2, "store_timeout_s": 0.2} if name.endswith("hang") else {}
        engine = bench.engine(bench.folder(name), embedder=faulty, semantic=deadlines)
        faulty.set("raise" if name.endswith("raise") else "hang")
        try:
            yield Setup(engine, _semantic_errors, "errors_total{component=semantic}")
        finally:
            faulty.set(None)
            await engine.aclose()
    elif name in ("splitter_raise", "splitter_hang"):
        from semantic_reuse.clauses import AsyncConjunctionExtractor

        split = FaultySplitter(bench.splitter.splitter.splitter_for("en"))
        extractor = AsyncConjunctionExtractor(max_concurrent=4, timeout_s=0.2, english=split)
        engine = bench.engine(bench.folder(name), splitter=extractor)
        split.set("raise" if name.endswith("raise") else "hang")
        stat = "failures" if name.endswith("raise") else "timeouts"
        try:
            yield Setup(engine, lambda e: float(e.stats()["splitter"][stat]), f"splitter.{stat}")
        finally:
            split.set(None)
            await engine.aclose()
            extractor.close()
    elif name == "disk_full":
        reserve = 8 * 1024 * 1024
        with small_tmpfs(bench.folder(name), 256) as disk:
            engine = bench.engine(disk / "edge", cache={"qdrant_min_free_bytes": reserve})
            try:
                await engine.generate("What is the disk for?", CallableBackend(_answer))
                await engine.flush()
                store: Any = engine.semantic.ready.store  # type: ignore[union-attr]
                fill_disk(store.path, reserve, disk / "ballast")
                yield Setup(engine, _semantic_errors, "errors_total{component=semantic}")
            finally:
                await engine.aclose()
                await bench.close_helpers()
    elif name in ("edge_truncated", "edge_flipped"):
        folder = bench.folder(name)
        config = HandlerConfig.model_validate(
            {"cache": {"qdrant_path": folder}, "semantic": {"embedder": "minilm"},
             "performance": PERFORMANCE}
        )  # fmt: skip
        first = ReuseEngine(config, splitter=bench.splitter)
        for prompt in PROMPTS:
            await first.generate(prompt, CallableBackend(_answer))
        await first.aclose()
        shard = next(p for p in folder.iterdir() if p.is_dir())
        damage_edge_folder(shard, "truncate" if name == "edge_truncated" else "flip")
        engine = ReuseEngine(config, splitter=bench.splitter)
        try:
            yield Setup(engine, _semantic_errors, "errors_total{component=semantic}")
        finally:
            await engine.aclose()
    elif name in ("redis_garbage", "redis_bad_body"):
        import redis.asyncio as redis_client

        cache = {"redis_url": bench.redis_url, "redis_prefix": f"srbench-{uuid.uuid4().hex[:8]}"}
        first = bench.engine(bench.folder(name), cache=cache)
        keys = []
        for prompt in PROMPTS:
            result = await first.generate(prompt, CallableBackend(_answer))
            assert first.cache.redis is not None
            keys.append(first.cache.redis.redis_key("default", str(result.info.hash_id)))
        await first.flush()
        raw = redis_client.Redis.from_url(bench.redis_url)
        try:
            for key in keys:
                valid = await raw.get(key)
                assert isinstance(valid, bytes), key
                await raw.set(
                    key, garbage_values(valid)["garbage" if "garbage" in name else "bad_body"]
                )
            engine = bench.engine(bench.folder(name), cache=cache)
            try:
                yield Setup(
                    engine,
                    lambda e: e.metrics.counter("decode_errors_total", tier="redis"),
                    "decode_errors_total{tier=redis}",
                )
            finally:
                await engine.aclose()
                await first.cache.clear_all()
                await first.aclose()
        finally:
            await raw.aclose()
    elif name == "shared_damaged":
        from semantic_reuse.exact.segment import overhead_bytes, segment_name

        tag = f"srbench-{uuid.uuid4().hex[:8]}"
        entries = 256
        shared: dict[str, Any] = {
            "shared_memory": True,
            "shared_memory_name": tag,
            "shared_memory_bytes": 1 << 20,
            "shared_memory_entries": entries,
            "shared_memory_secret": bench.folder(name) / "secret",
        }
        first = bench.engine(bench.folder(name), cache=shared)
        for prompt in PROMPTS:
            await first.generate(prompt, CallableBackend(_answer))
        for kind in ("requests", "tokens"):
            damage_shared_segment(
                Path("/dev/shm") / segment_name(f"{tag}-{kind}"), overhead_bytes(entries)
            )
        engine = bench.engine(bench.folder(name), cache=shared)
        try:
            yield Setup(
                engine,
                lambda e: e.metrics.counter("integrity_failures_total", tier="shared"),
                "integrity_failures_total{tier=shared}",
            )
        finally:
            await engine.aclose()
            await first.aclose()
    else:
        raise ValueError(f"unknown fault {name!r}")


FAULTS = (
    "embedder_raise", "embedder_hang", "splitter_raise", "splitter_hang", "disk_full",
    "edge_truncated", "edge_flipped", "redis_garbage", "redis_bad_body", "shared_damaged",
)  # fmt: skip


async def _run_one(bench: _Bench, name: str, n: int) -> dict[str, Any]:
    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING", format="{level}|{name}|{message}")
    logger.enable("semantic_reuse")
    latencies: list[float] = []
    failed = generated = reused = 0
    errors: list[str] = []
    try:
        async with _fault(bench, name) as setup:
            lines.clear()  # what the setup logged is not the fault's
            backend = CallableBackend(_answer)
            for i in range(n):
                prompt = PROMPTS[i % len(PROMPTS)]
                start = time.perf_counter()
                try:
                    result = await setup.engine.generate(prompt, backend)
                except Exception as exc:  # the bench counts it; it must not happen
                    failed += 1
                    errors.append(repr(exc)[:200])
                    continue
                finally:
                    latencies.append(time.perf_counter() - start)
                if result.info.kind is ReuseKind.MISS:
                    generated += 1
                else:
                    reused += 1
            await setup.engine.flush()
            counted = setup.counted(setup.engine)
            what = setup.what
    except FaultUnavailable as exc:
        return {"fault": name, "skipped": str(exc)}
    finally:
        logger.remove(sink)
        logger.disable("semantic_reuse")
    return {
        "fault": name,
        "requests": n,
        "failed": failed,
        "generated": generated,
        "reused": reused,
        "counted": counted,
        "counter": what,
        "warning_lines": len(lines),
        "tracebacks": sum("Traceback" in line for line in lines),
        "first_warning": lines[0].strip()[:300] if lines else None,
        "p50_ms": round(1000 * _p(latencies, 0.5), 2),
        "p99_ms": round(1000 * _p(latencies, 0.99), 2),
        "mean_ms": round(1000 * statistics.fmean(latencies), 2) if latencies else 0.0,
        "errors": errors[:5],
    }


async def run_component_faults(out_dir: Path, requests_per_fault: int = 50) -> dict[str, Any]:
    """Each fault against a fresh engine, `requests_per_fault` requests; writes
    component_faults.json and component_faults.md to `out_dir` and returns the JSON's data."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    results = []
    with tempfile.TemporaryDirectory(prefix="semantic-reuse-faults-") as tmp:
        bench = _Bench(Path(tmp), redis_url)
        try:
            for name in FAULTS:
                results.append(await _run_one(bench, name, requests_per_fault))
                await bench.close_helpers()
        finally:
            await bench.close_helpers()
            bench.splitter.close()
    report = {
        "requests_per_fault": requests_per_fault,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "faults": results,
    }
    (out_dir / "component_faults.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "component_faults.md").write_text(markdown(report))
    return report


def markdown(report: dict[str, Any]) -> str:
    rows = [
        "| fault | requests | failed | generated | reused | counted (counter) | WARNING+ lines "
        "| p50 ms | p99 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["faults"]:
        if "skipped" in r:
            rows.append(f"| {r['fault']} | skipped: {r['skipped']} | | | | | | | |")
            continue
        rows.append(
            f"| {r['fault']} | {r['requests']} | {r['failed']} | {r['generated']} | {r['reused']} "
            f"| {r['counted']:g} (`{r['counter']}`) | {r['warning_lines']} | {r['p50_ms']} "
            f"| {r['p99_ms']} |"
        )
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, required=True, help="folder for the result files")
    parser.add_argument("--requests", type=int, default=50, help="requests per fault")
    args = parser.parse_args(argv)
    report = asyncio.run(run_component_faults(args.out, args.requests))
    print(markdown(report), end="")
    return 1 if any(r.get("failed") for r in report["faults"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
