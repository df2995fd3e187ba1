"""`bench speed` on tiny caches: every system, every measurement, no timing assertions."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from semantic_reuse import HandlerConfig
from semantic_reuse.tools.bench import SPEED_SYSTEMS, plots
from semantic_reuse.tools.bench.speed import SpeedOptions, run_speed


async def test_tiny_speed_run(
    minilm: Any,
    splitter: Any,
    redis_url: str,
    bench_cache: Path,
    tiny_datasets: Path,
    tmp_path: Path,
) -> None:
    options = SpeedOptions(
        sizes=(40, 80), probes=5, misses=5, concurrency=(1, 4), throughput_lookups=8,
        inserts=4, redis_url=redis_url, cache_dir=bench_cache,
    )  # fmt: skip
    result = await run_speed(
        tiny_datasets, HandlerConfig(), options, embedder=minilm, splitter=splitter
    )
    rows = {(r["system"], r["entries"]): r for r in result["rows"]}
    assert set(rows) == {(s, n) for s in SPEED_SYSTEMS for n in (40, 80)}
    for (system, entries), row in rows.items():
        lookups = row["lookups"]
        # 5 paraphrases + 5 misses + 5 repeats, each classified by what was answered.
        assert sum(lookups[k]["count"] for k in ("exact", "semantic", "miss")) == 15
        if system != "gptcache":
            assert lookups["exact"]["count"] == 5  # the memory tier answers every repeat
        assert row["insert_ms_per_entry_batched"] > 0
        assert ("throughput_per_s" in row) == (entries == 80 and system != "qdrant-local")
    assert set(rows["gptcache", 80]["throughput_per_s"]) == {"1", "4"}
    assert result["redis_exact"]["tiers"] == {"redis": 16}  # the 16 spare texts, from Redis
    # The edge folders were built once, into the bench cache, for the next run.
    built = await asyncio.to_thread(lambda: list(bench_cache.glob("edge-*/done")))
    assert len(built) == 2
    # The fillers were embedded by the same model on ONNX Runtime, checked against MiniLM.
    filler = result["filler_embedding"]
    assert filler["runtime"].startswith("onnx")
    assert filler["twin_max_abs_diff"] <= 1e-5
    pngs = plots.speed_pngs(result, tmp_path)
    assert [p.name for p in pngs] == [
        "latency-vs-size.png", "latency-cdf.png", "throughput-vs-concurrency.png",
    ]  # fmt: skip
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
