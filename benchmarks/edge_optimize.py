"""Lookups and stores while an Edge store optimizes (builds its HNSW index beside itself).

    .venv/bin/python benchmarks/edge_optimize.py                   # 30,000 entries
    .venv/bin/python benchmarks/edge_optimize.py --entries 50000 --lookup-every-ms 5

Fills a fresh Edge folder (the layout new folders get) with ``--entries`` random 384-dimensional
unit vectors and payloads of a real answer's size, then starts ``EdgeStore.optimize()`` (a copy
built between other calls, indexed in a child process, swapped in) while one task looks up a
stored vector plus noise every ``--lookup-every-ms`` (100 a second by default: a busy service,
not a saturated one, so that the niced child gets its share of 2 cores) and another stores a
new point every ``--store-every-ms``.
Each lookup is timed from the caller (queueing for the store's worker included), and the event
loop's lag is sampled every millisecond. Prints the phases of the optimize, the longest lookup and
the longest loop lag in each, the lookup percentiles over the whole optimize, and checks that
every store acknowledged during it is found afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from semantic_reuse.semantic.edge_store import EdgeStore
from semantic_reuse.semantic.store import ScopeFilter, VectorPoint

DIM = 384
SCOPE = ScopeFilter("bench", "model", "fp")
ANSWER = {"text": "An answer of about the size of a real one. " * 12}


def _points(vectors: np.ndarray, first: int) -> list[VectorPoint]:
    return [
        VectorPoint(
            id=f"{first + i:032x}",
            vector=v,
            namespace=SCOPE.namespace,
            model=SCOPE.model,
            fingerprint=SCOPE.fingerprint,
            prompt=f"A question of a usual length, number {first + i}?",
            answer=ANSWER,
            created_at=time.time(),
        )
        for i, v in enumerate(vectors)
    ]


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _phase(store: EdgeStore) -> str:
    optimizing = getattr(store, "_optimizing", None)
    if optimizing is None:  # a version that optimized in place (for comparison)
        return "in place"
    rebuild = optimizing.current
    if rebuild is None:
        return "after"
    if rebuild._proc is None:
        return "copy"
    return "index (child)" if rebuild._output is None else "swap"


async def run(entries: int, lookup_every_s: float, store_every_s: float, folder: Path) -> None:
    rng = np.random.default_rng(0)
    vectors = _unit(rng, entries)
    store = EdgeStore(folder, DIM, optimize_threshold=None)
    started = time.perf_counter()
    for first in range(0, entries, 2048):
        await store.upsert(_points(vectors[first : first + 2048], first))
    print(f"filled {entries} entries in {time.perf_counter() - started:.1f} s")

    lookups: list[tuple[str, float]] = []
    lags: list[tuple[str, float]] = []
    acked: list[int] = []
    phases: dict[str, float] = {}
    begin = time.perf_counter()
    optimizing = asyncio.ensure_future(store.optimize())

    async def look() -> None:
        while not optimizing.done():
            i = int(rng.integers(entries))
            query = vectors[i] + 0.02 * _unit(rng, 1)[0]
            phase, t = _phase(store), time.perf_counter()
            found = await store.search(query, SCOPE, limit=5)
            if _phase(store) != phase:
                phase = "swap" if phase == "index (child)" else phase  # waited for the swap
            lookups.append((phase, time.perf_counter() - t))
            assert found[0].id == f"{i:032x}"
            await asyncio.sleep(max(0.0, lookup_every_s - (time.perf_counter() - t)))

    async def write() -> None:
        n = entries
        while not optimizing.done():
            await store.upsert(_points(_unit(rng, 1), n))
            acked.append(n)
            n += 1
            await asyncio.sleep(store_every_s)

    async def lag() -> None:
        while not optimizing.done():
            phase = _phase(store)
            phases.setdefault(phase, round(time.perf_counter() - begin, 2))
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            if _phase(store) != phase:
                phase = "swap" if phase == "index (child)" else phase
            lags.append((phase, time.perf_counter() - t - 0.001))

    await asyncio.gather(look(), write(), lag())
    phases.pop("after", None)
    changed = await optimizing
    total = time.perf_counter() - begin
    print(f"optimize: {total:.1f} s, changed={changed}; phases began at (s): {phases}")
    for phase in ("copy", "index (child)", "swap", "in place"):
        times = [d for p, d in lookups if p == phase]
        worst_lag = max((d for p, d in lags if p == phase), default=0.0)
        if times:
            print(
                f"  {phase:14} {len(times):6} lookups, longest {max(times) * 1000:7.1f} ms; "
                f"longest loop lag {worst_lag * 1000:7.1f} ms"
            )
    all_times = sorted(d for _, d in lookups)
    q = statistics.quantiles(all_times * 2, n=100)  # (doubled: one lookup is a quantile too)
    print(
        f"lookups during the optimize: {len(all_times)}, p50 {q[49] * 1000:.2f} ms, "
        f"p99 {q[98] * 1000:.2f} ms, longest {all_times[-1] * 1000:.1f} ms"
    )
    missing = [n for n in acked if await store.get(f"{n:032x}") is None]
    stats = await store.stats()
    print(f"stores acknowledged during the optimize: {len(acked)}, missing after: {len(missing)}")
    print(f"after: {stats}")
    await store.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=30_000)
    parser.add_argument("--lookup-every-ms", type=float, default=10.0)
    parser.add_argument("--store-every-ms", type=float, default=50.0)
    parser.add_argument("--folder", type=Path, default=None, help="default: a temporary one")
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="edge-optimize-bench-")) / "edge"
    try:
        asyncio.run(
            run(args.entries, args.lookup_every_ms / 1000, args.store_every_ms / 1000, folder)
        )
    finally:
        if args.folder is None:
            shutil.rmtree(folder.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
