"""An optimize builds the index on a copy beside the live Edge folder and swaps it in: lookups and
stores go on meanwhile, and nothing stored is lost, whether the optimize ends, the store
closes, or the process is killed in the middle. Real Edge folders and real child processes.

The folders here are created with a tiny indexing threshold (persisted in the folder's
``edge_config.json`` and inherited by the copy), so that a few thousand 16-dimensional points
get a real HNSW index in about a second; the store's own folders index past about 20,000
384-dimensional points (``benchmarks/edge_optimize.py`` measures that size).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from semantic_reuse.errors import ComponentUnavailableError
from semantic_reuse.semantic.edge_files import siblings
from semantic_reuse.semantic.edge_store import EdgeStore
from semantic_reuse.semantic.store import ScopeFilter, VectorPoint
from tests.integration.semantic.processes import Child

DIM = 16
SCOPE = ScopeFilter("ns", "m", "fp")
START = 3000

#: argv: folder, count. Stores `count` points, starts an optimize, then stores one point at a
#: time, printing "ack <n>" once each is acknowledged, until it is killed.
WRITER = """
import asyncio, sys
from tests.integration.semantic.test_edge_swap import point
from semantic_reuse.semantic.edge_store import EdgeStore

async def main():
    store = EdgeStore(sys.argv[1], 16, optimize_threshold=None)
    count = int(sys.argv[2])
    await store.upsert([point(n) for n in range(count)])
    optimizing = asyncio.ensure_future(store.optimize())
    print("optimizing", flush=True)
    n = count
    while True:
        await store.upsert([point(n)])
        print("ack", n, flush=True)
        n += 1

asyncio.run(main())
"""


def vector(n: int) -> np.ndarray:
    v = np.random.default_rng(n).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def point(n: int) -> VectorPoint:
    return VectorPoint(
        id=f"{n:032x}", vector=vector(n), namespace="ns", model="m", fingerprint="fp",
        prompt=f"prompt {n}", answer={"text": f"answer {n}"}, created_at=1.0,
    )  # fmt: skip


def small_index_folder(folder: Path) -> Path:
    """A new Edge folder that indexes any segment over 10 KB."""
    from qdrant_edge import (
        Distance,
        EdgeConfig,
        EdgeOptimizersConfig,
        EdgeShard,
        EdgeVectorParams,
    )

    config = EdgeConfig(
        vectors=EdgeVectorParams(size=DIM, distance=Distance.Cosine),
        optimizers=EdgeOptimizersConfig(indexing_threshold=10),
    )
    EdgeShard.create(str(folder), config).close()
    return folder


def leftovers(folder: Path) -> list[str]:
    kinds = ("rebuild", "replaced", "trash", "private")
    return [p.name for kind in kinds for p in siblings(folder, kind)]


async def test_lookups_and_stores_go_on_during_an_optimize_and_none_is_lost(
    tmp_path: Path,
) -> None:
    folder = small_index_folder(tmp_path / "edge")
    store = EdgeStore(folder, DIM, optimize_threshold=None)
    try:
        await store.upsert([point(n) for n in range(START)])
        assert (await store.stats())["indexed_vectors"] == 0
        optimizing = asyncio.ensure_future(store.optimize())
        n, during, deleted = START, 0, set()
        while not optimizing.done():
            await store.upsert([point(n)])
            during += store._optimizing.current is not None
            found = await store.search(vector(n - 7), SCOPE, limit=1)
            assert [m.id for m in found] == [point(n - 7).id]  # an older point: answered
            if n % 50 == 0:
                await store.delete([point(n - 20).id])
                deleted.add(n - 20)
            n += 1
        assert await optimizing is True
        assert during > 0  # stores really came while the copy was built and indexed
        stats = await store.stats()
        assert stats["indexed_vectors"] >= START
        assert await store.count() == n - len(deleted)
        for m in range(n):  # every store acknowledged during the optimize survived the swap
            got = await store.get(point(m).id)
            assert (got is None) == (m in deleted), m
    finally:
        await store.aclose()
    reopened = EdgeStore(folder, DIM, optimize_threshold=None)
    try:
        assert await reopened.count() == n - len(deleted)
        assert (await reopened.stats())["indexed_vectors"] >= START
        assert leftovers(folder) == []  # the old folder and the export are gone by now
    finally:
        await reopened.aclose()


async def test_closing_during_an_optimize_abandons_it(tmp_path: Path) -> None:
    folder = small_index_folder(tmp_path / "edge")
    store = EdgeStore(folder, DIM, optimize_threshold=None)
    await store.upsert([point(n) for n in range(START)])
    optimizing = asyncio.ensure_future(store.optimize())
    await store.upsert([point(START)])  # runs after the first copy step: the optimize runs
    await store.aclose()
    with pytest.raises(ComponentUnavailableError, match="closed"):
        await optimizing
    assert leftovers(folder) == []
    reopened = EdgeStore(folder, DIM, optimize_threshold=None)
    try:
        assert await reopened.count() == START + 1
    finally:
        await reopened.aclose()


def test_a_process_killed_during_an_optimize_loses_no_acknowledged_store(
    tmp_path: Path,
) -> None:
    folder = small_index_folder(tmp_path / "edge")
    with Child(WRITER, str(folder), str(START), log=tmp_path / "writer.log") as child:
        child.expect("optimizing")
        for _ in range(300):
            last = int(child.expect("ack").split()[1])
        child.kill()

    async def check() -> None:
        store = EdgeStore(folder, DIM, optimize_threshold=None)
        try:
            for m in range(last + 1):
                assert await store.get(point(m).id) is not None, m
        finally:
            await store.aclose()

    asyncio.run(check())
    assert leftovers(folder) == []


async def test_a_swap_cut_short_is_undone_from_the_replaced_folder(tmp_path: Path) -> None:
    """What a process killed between the two renames of a swap leaves: the replaced folder
    (complete) beside an incomplete copy in its place, and a half-built copy."""
    folder = small_index_folder(tmp_path / "edge")
    store = EdgeStore(folder, DIM, optimize_threshold=None)
    await store.upsert([point(n) for n in range(100)])
    await store.aclose()
    os.rename(folder, folder.with_name("edge.replaced-4242-abcdef"))
    partial = EdgeStore(folder, DIM, optimize_threshold=None)  # the copy, short of the journal
    await partial.upsert([point(n) for n in range(10)])
    await partial.aclose()
    shutil.copytree(folder, folder.with_name("edge.rebuild-4242-012345"))
    recovered = EdgeStore(folder, DIM, optimize_threshold=None)
    try:
        assert await recovered.count() == 100
    finally:
        await recovered.aclose()
    assert leftovers(folder) == []
