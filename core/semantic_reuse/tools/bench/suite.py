"""`semantic-reuse bench all`: every bench, one folder of results.

Writes ``<out>/results.json``, ``<out>/report.md`` and the PNGs: per pair file, quality
(error rate against hit rate, precision against recall); for speed, latency against cache size,
latency CDFs and throughput against concurrency. Samples kept for the CDF plot are dropped from
the JSON, so a results folder stays a few hundred KB.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import importlib.util
import json
import os
import platform
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from semantic_reuse.config import HandlerConfig
from semantic_reuse.defaults import build_embedder
from semantic_reuse.semantic.embedder import Embedder
from semantic_reuse.tools.bench import plots
from semantic_reuse.tools.bench.compound import compound
from semantic_reuse.tools.bench.embeddings import bench_cache_dir
from semantic_reuse.tools.bench.quality_compare import compare_quality
from semantic_reuse.tools.bench.report import check_targets, render_markdown
from semantic_reuse.tools.bench.speed import SpeedOptions, run_speed
from semantic_reuse.tools.calibrate import load_pairs

Progress = Callable[[str, int, int], None]

#: (pair file, embedder) measured by `bench all`.
QUALITY_RUNS = (
    ("qqp_dev_5k.jsonl", "minilm"),
    ("gptcache_mock_pairs.jsonl", "minilm"),
    ("lcqmc_dev.jsonl", "e5"),
)


@dataclass(frozen=True, slots=True)
class SuiteOptions:
    datasets: Path
    out: Path
    e2e: bool = True
    speed: SpeedOptions = field(default_factory=SpeedOptions)
    quality_limit: int | None = None
    compound_limit: int | None = None
    command: str = "semantic-reuse bench all"


def machine() -> dict[str, Any]:
    cores = os.cpu_count() or 0
    memory = ""
    if importlib.util.find_spec("psutil") is not None:
        psutil = importlib.import_module("psutil")  # untyped
        memory = f", {psutil.virtual_memory().total / 2**30:.0f} GiB"
    description = (
        f"{cores} cores{memory}, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}, no GPU used"
    )
    return {"description": description, "cores": cores, "python": platform.python_version()}


def redis_if_up(url: str = "redis://127.0.0.1:6379/0") -> str | None:
    """`$REDIS_URL`, else the local Redis when it answers, else None."""
    if env := os.environ.get("REDIS_URL"):
        return env
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
    except OSError:
        return None
    return url


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def _quality(
    options: SuiteOptions, embedders: dict[str, Embedder], progress: Progress | None
) -> list[dict[str, Any]]:
    out = []
    for name, embedder in QUALITY_RUNS:
        path = options.datasets / name
        config = HandlerConfig()
        config.semantic.embedder = embedder
        if embedder not in embedders:
            embedders[embedder] = build_embedder(config)
        pairs = load_pairs(path)[: options.quality_limit]

        def step(label: str, done: int, total: int, name: str = name) -> None:
            if progress:
                progress(f"quality {name}: {label}", done, total)

        result = compare_quality(
            pairs, config, pairs_file=name, embedder=embedders[embedder],
            cache_dir=bench_cache_dir() / "vectors", progress=step,
        ).as_dict()  # fmt: skip
        plots.quality_png(result, options.out / f"quality-{Path(name).stem}.png")
        out.append(result)
    return out


def _compound(options: SuiteOptions, progress: Progress | None) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for lang, embedder in (("en", "minilm"), ("zh", "e5")):
        config = HandlerConfig()
        config.semantic.embedder = embedder

        def step(done: int, total: int, lang: str = lang) -> None:
            if progress:
                progress(f"compound {lang}", done, total)

        report.update(
            compound(options.datasets / "compound_dev.jsonl", config, lang=lang,
                     limit=options.compound_limit, progress=step)
        )  # fmt: skip
    return report


def _speed_plots(speed: dict[str, Any], out: Path) -> None:
    """The speed PNGs (named in ``speed["plots"]``); then the samples leave the JSON."""
    speed["plots"] = [p.name for p in plots.speed_pngs(speed, out)]
    for r in speed["rows"]:
        r.pop("samples_ms", None)


def run_all(options: SuiteOptions, progress: Progress | None = None) -> dict[str, Any]:
    """Every bench; returns the results and writes them under `options.out`."""
    options.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "machine": machine(),
        "command": options.command,
    }
    embedders: dict[str, Embedder] = {}  # loaded once, shared by the quality and speed runs
    seconds: dict[str, float] = {}  # wall time of each part, for the report
    start = clock = time.perf_counter()

    def lap(part: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[part] = round(now - clock, 1)
        clock = now

    results["quality"] = _quality(options, embedders, progress)
    lap("quality")
    results["compound"] = _compound(options, progress)
    lap("compound")
    speed_options = options.speed
    if speed_options.redis_url is None:
        speed_options = replace(speed_options, redis_url=redis_if_up())
    speed = asyncio.run(run_speed(options.datasets, HandlerConfig(), speed_options,
                                  embedder=embedders.get("minilm"), progress=progress))  # fmt: skip
    _speed_plots(speed, options.out)
    results["speed"] = speed
    lap("speed")
    if options.e2e and vllm_available():
        from semantic_reuse.tools.bench.e2e import run_e2e

        if progress:
            progress("e2e through vLLM", 0, 1)
        results["e2e"] = asyncio.run(run_e2e(options.datasets))
        lap("e2e")
    seconds["total"] = round(time.perf_counter() - start, 1)
    results["seconds"] = seconds
    results["targets"] = [t.as_dict() for t in check_targets(results)]
    (options.out / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    (options.out / "report.md").write_text(render_markdown(results), encoding="utf-8")
    return results


def default_out(root: Path = Path("results")) -> Path:
    return root / dt.date.today().isoformat()
