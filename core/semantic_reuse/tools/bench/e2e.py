"""`semantic-reuse bench e2e`: one workload through plain `AsyncLLM` and `EnhancedAsyncLLM`.

Both run on the same engine in one process (the plain path is `AsyncLLM.generate` called
on it, the base class's method), so model, machine and batching are the same. The
workload comes from the dev pair files: new questions, exact repeats, labelled
paraphrases and compound questions whose parts were asked before, sent with a fixed
concurrency. Reported: latency (mean, p50, p99), throughput, hits per kind, and what a
miss pays for the reuse lookups, as a share of its latency.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semantic_reuse.config import CacheConfig, HandlerConfig


@dataclass(frozen=True)
class Item:
    kind: str  # new | repeat | paraphrase | compound
    question: str


@dataclass
class RunStats:
    latencies: list[float] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)
    miss_lookup_s: list[float] = field(default_factory=list)
    miss_total_s: list[float] = field(default_factory=list)
    tokens: int = 0
    wall_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else 0.0
        overhead = [
            lookup / total
            for lookup, total in zip(self.miss_lookup_s, self.miss_total_s, strict=True)
            if total > 0
        ]
        return {
            "requests": len(self.latencies),
            "mean_s": round(statistics.fmean(self.latencies), 3) if self.latencies else None,
            "p50_s": round(statistics.median(self.latencies), 3) if self.latencies else None,
            "p99_s": round(p99, 3),
            "wall_s": round(self.wall_s, 2),
            "requests_per_s": round(len(self.latencies) / self.wall_s, 3) if self.wall_s else None,
            "tokens_out": self.tokens,
            "kinds": dict(sorted(self.kinds.items())),
            "miss_reuse_overhead_median": round(statistics.median(overhead), 4)
            if overhead
            else None,
        }


def build_workload(datasets: Path, n_new: int, seed: int = 7) -> tuple[list[Item], list[Item]]:
    """(warm-up items that seed the cache, measured items). Paraphrases are labelled
    duplicates of a warm-up question; compounds join two warm-up questions."""
    rng = random.Random(seed)
    lines = (datasets / "qqp_dev_5k.jsonl").read_text(encoding="utf-8").splitlines()
    pairs = [json.loads(line) for line in lines if line.strip()]
    dupes = [p for p in pairs if p["label"] == 1 and len(p["q1"]) < 90 and len(p["q2"]) < 90]
    rng.shuffle(dupes)
    seeded = dupes[:n_new]
    fresh = dupes[n_new : 2 * n_new]
    warm = [Item("new", p["q1"]) for p in seeded]
    measured = (
        [Item("new", p["q1"]) for p in fresh]
        + [Item("repeat", p["q1"]) for p in seeded[: n_new // 2]]
        + [Item("paraphrase", p["q2"]) for p in seeded[n_new // 2 :]]
        + [
            Item("compound", f"{a['q1'].rstrip('?')}? Also, {b['q1'][0].lower()}{b['q1'][1:]}")
            for a, b in zip(seeded[0:4:2], seeded[1:4:2], strict=True)
        ]
    )
    rng.shuffle(measured)
    return warm, measured


async def _drive(
    items: list[Item], run: Callable[[Item], Awaitable[tuple[float, Any]]], concurrency: int
) -> tuple[list[tuple[float, Any]], float]:
    gate = asyncio.Semaphore(concurrency)

    async def one(item: Item) -> tuple[float, Any]:
        async with gate:
            return await run(item)

    start = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in items))
    return list(results), time.perf_counter() - start


async def run_e2e(
    datasets: Path, *, n_new: int = 12, concurrency: int = 4, max_tokens: int = 48
) -> dict[str, Any]:
    """Plain and enhanced on one engine; returns the report as plain data."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from vllm.engine.arg_utils import AsyncEngineArgs

    from semantic_reuse.vllm import EnhancedAsyncLLM
    from semantic_reuse.vllm.model import prepare_default_model

    warm, measured = build_workload(datasets, n_new)
    with tempfile.TemporaryDirectory(prefix="sr-e2e-") as folder:
        config = HandlerConfig(cache=CacheConfig(qdrant_path=Path(folder)))
        args = AsyncEngineArgs(
            model=str(prepare_default_model()), dtype="bfloat16", enforce_eager=True,
            max_model_len=2048, disable_log_stats=True,
        )  # fmt: skip
        llm = EnhancedAsyncLLM.from_engine_args(args, handler_config=config)
        try:
            await llm.reuse_engine.warm_up()
            return await _measure(llm, warm, measured, concurrency, max_tokens)
        finally:
            await llm.aclose()
            del llm  # shut vLLM down now, not in a finalizer at interpreter exit


async def _measure(
    llm: Any, warm: list[Item], measured: list[Item], concurrency: int, max_tokens: int
) -> dict[str, Any]:
    from vllm import SamplingParams
    from vllm.v1.engine.async_llm import AsyncLLM

    from semantic_reuse.vllm.backend import render_chat

    params = SamplingParams(temperature=0.0, max_tokens=max_tokens)
    counter = iter(range(10**9))

    def chat(question: str) -> list[dict[str, str]]:
        return [{"role": "user", "content": question}]

    async def plain(item: Item) -> tuple[float, Any]:
        start = time.perf_counter()
        prompt = render_chat(llm, chat(item.question))
        last = None
        async for out in AsyncLLM.generate(llm, prompt, params, f"p{next(counter)}"):
            last = out
        return time.perf_counter() - start, last

    async def enhanced(item: Item) -> tuple[float, Any]:
        start = time.perf_counter()
        last = None
        async for out in llm.generate_chat(chat(item.question), params,
                                           f"e{next(counter)}"):  # fmt: skip
            last = out
        return time.perf_counter() - start, last

    report: dict[str, Any] = {}
    for name, run in (("plain AsyncLLM", plain), ("EnhancedAsyncLLM", enhanced)):
        if name == "EnhancedAsyncLLM":
            await _drive(warm, run, concurrency)  # seed the cache (not measured)
            await llm.reuse_engine.flush()
        stats = RunStats()
        results, stats.wall_s = await _drive(measured, run, concurrency)
        for seconds, out in results:
            stats.latencies.append(seconds)
            stats.tokens += len(out.outputs[0].token_ids) if out and out.outputs else 0
            info = getattr(out, "reuse", None)
            kind = info.kind.value if info is not None else "generated"
            stats.kinds[kind] = stats.kinds.get(kind, 0) + 1
            if info is not None and not info.reused:
                stats.miss_lookup_s.append(info.elapsed_s)
                stats.miss_total_s.append(seconds)
        report[name] = stats.summary()
    report["workload"] = {
        "warm_up": len(warm),
        "measured": len(measured),
        "by_kind": {k: sum(i.kind == k for i in measured) for k in
                    ("new", "repeat", "paraphrase", "compound")},
        "concurrency": concurrency,
        "max_tokens": max_tokens,
    }  # fmt: skip
    return report
