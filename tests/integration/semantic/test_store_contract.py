"""One contract for every VectorStore: Qdrant Edge in a folder, qdrant-client local mode in memory
and in a folder. Real engines, no mocks."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from semantic_reuse.semantic.store import (
    ScopeFilter,
    VectorMatch,
    VectorPoint,
    VectorStore,
)
from semantic_reuse.semantic.store_payload import point_uuid

DIM = 16
SCOPE = ScopeFilter(namespace="tenant-a", model="model-x", fingerprint="fp-1")
NOW = 1_800_000_000.0


@dataclass
class Backend:
    name: str
    persistent: bool
    open: Callable[[], VectorStore]


def _edge(folder: Path) -> Callable[[], VectorStore]:
    from semantic_reuse.semantic.edge_store import EdgeStore

    return lambda: EdgeStore(folder, DIM, optimize_threshold=None)


def _client(**kwargs: Any) -> Callable[[], VectorStore]:
    from semantic_reuse.semantic.server_store import QdrantServerStore

    return lambda: QdrantServerStore(dim=DIM, **kwargs)


def _backend(name: str, tmp_path: Path) -> Backend:
    if name == "edge":
        return Backend("edge", True, _edge(tmp_path / "edge"))
    if name == "client-memory":
        return Backend("client-memory", False, _client(location=":memory:"))
    return Backend("client-path", True, _client(path=str(tmp_path / "qdrant")))


@pytest.fixture(params=["edge", "client-memory", "client-path"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return _backend(request.param, tmp_path)


@pytest.fixture(params=["edge", "client-path"])
def persistent_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The implementations that keep their points in a folder."""
    return _backend(request.param, tmp_path)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[VectorStore]:
    opened = backend.open()
    yield opened
    await opened.aclose()


def unit(seed: int | np.ndarray, dim: int = DIM) -> np.ndarray:
    if isinstance(seed, np.ndarray):
        v = seed.astype(np.float32)
    else:
        v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def at_angle(base: np.ndarray, cosine: float, seed: int = 99) -> np.ndarray:
    """A unit vector whose cosine with the unit vector ``base`` is ``cosine``."""
    other = unit(seed)
    other = other - float(other @ base) * base
    other /= np.linalg.norm(other)
    return unit(cosine * base + math.sqrt(max(0.0, 1 - cosine * cosine)) * other)


def point(
    id: str,
    vector: np.ndarray,
    scope: ScopeFilter = SCOPE,
    *,
    created_at: float = NOW - 100,
    expires_at: float | None = None,
    answer: dict[str, Any] | None = None,
) -> VectorPoint:
    return VectorPoint(
        id=id,
        vector=vector,
        namespace=scope.namespace,
        model=scope.model,
        fingerprint=scope.fingerprint,
        prompt=f"prompt of {id}",
        answer=answer if answer is not None else {"text": f"answer of {id}"},
        created_at=created_at,
        expires_at=expires_at,
    )


def hexid(n: int) -> str:
    return f"{n:032x}"


def ids(matches: list[VectorMatch]) -> list[str]:
    return [m.id for m in matches]


# --- search ---------------------------------------------------------------------------------------


async def test_own_vector_scores_one(store: VectorStore) -> None:
    answer = {
        "text": "Réinitialisez le mot de passe — 密码",
        "tokens": [1, 2, 3],
        "meta": {"n": 1.5},
    }
    p = point(hexid(1), unit(1), answer=answer)
    await store.upsert([p, point(hexid(2), unit(2))])
    found = await store.search(unit(1), SCOPE, now=NOW)
    assert found[0].id == hexid(1)
    assert found[0].score == pytest.approx(1.0, abs=1e-5)
    assert found[0].score <= 1.0
    assert found[0].answer == answer
    assert found[0].prompt == p.prompt
    assert (found[0].namespace, found[0].model, found[0].fingerprint) == (
        SCOPE.namespace,
        SCOPE.model,
        SCOPE.fingerprint,
    )
    assert found[0].created_at == p.created_at
    assert found[0].expires_at is None


async def test_ranking_is_best_first_with_cosine_scores(store: VectorStore) -> None:
    query = unit(7)
    cosines = [0.95, 0.2, 0.8, -0.3, 0.5]
    await store.upsert([point(hexid(i), at_angle(query, c)) for i, c in enumerate(cosines)])
    found = await store.search(query, SCOPE, limit=10, now=NOW)
    expected = sorted(range(len(cosines)), key=lambda i: -cosines[i])
    assert ids(found) == [hexid(i) for i in expected]
    for match, i in zip(found, expected, strict=True):
        assert match.score == pytest.approx(cosines[i], abs=1e-4)
    assert ids(await store.search(query, SCOPE, limit=2, now=NOW)) == [hexid(0), hexid(2)]


async def test_matches_exact_cosine_ranking(store: VectorStore) -> None:
    rng = np.random.default_rng(5)
    data = rng.standard_normal((300, DIM)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    await store.upsert([point(hexid(i), data[i]) for i in range(len(data))])
    for q in range(5):
        query = unit(1000 + q)
        expected = np.argsort(-(data @ query), kind="stable")[:10]
        found = await store.search(query, SCOPE, limit=10, now=NOW)
        assert ids(found) == [hexid(int(i)) for i in expected]


async def test_scope_is_isolated(store: VectorStore) -> None:
    v = unit(3)
    await store.upsert([point(hexid(1), v)])
    others = [
        ScopeFilter("tenant-b", SCOPE.model, SCOPE.fingerprint),
        ScopeFilter(SCOPE.namespace, "model-y", SCOPE.fingerprint),
        ScopeFilter(SCOPE.namespace, SCOPE.model, "fp-2"),
        ScopeFilter("", "", ""),
    ]
    for scope in others:
        await store.upsert([point(f"{scope}-near", at_angle(v, 0.999), scope)])
    for scope in others:
        for threshold in (None, 0.0, -1.0):
            found = await store.search(v, scope, score_threshold=threshold, limit=50, now=NOW)
            assert ids(found) == [f"{scope}-near"], (scope, threshold)
            assert all(m.namespace == scope.namespace for m in found)
    found = await store.search(v, SCOPE, score_threshold=0.0, limit=50, now=NOW)
    assert ids(found) == [hexid(1)]
    batch = await store.search_batch([v, v], others[0], score_threshold=0.0, now=NOW)
    assert [ids(b) for b in batch] == [[f"{others[0]}-near"]] * 2


async def test_score_threshold_is_honoured(store: VectorStore) -> None:
    query = unit(11)
    cosines = {"same": 1.0, "close": 0.9995, "half": 0.5, "away": -0.5, "opposite": -1.0}
    await store.upsert(
        [point(name, at_angle(query, c) if c > -1 else -query) for name, c in cosines.items()]
    )

    async def names(threshold: float | None) -> set[str]:
        found = await store.search(query, SCOPE, score_threshold=threshold, limit=10, now=NOW)
        assert all(threshold is None or m.score >= threshold - 1e-6 for m in found)
        return set(ids(found))

    assert await names(None) == set(cosines)
    assert await names(-1.0) == set(cosines)
    assert await names(0.0) == {"same", "close", "half"}
    assert await names(0.999) == {"same", "close"}
    assert await names(0.9999) == {"same"}
    assert (await names(1.0)) <= {"same"}
    for bad in (1.5, -1.01, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="score_threshold"):
            await store.search(query, SCOPE, score_threshold=bad)


async def test_expired_points_are_never_returned(store: VectorStore) -> None:
    v = unit(4)
    await store.upsert(
        [
            point("forever", v),
            point("expired", at_angle(v, 0.99), expires_at=NOW - 1),
            point("alive", at_angle(v, 0.98), expires_at=NOW + 60),
        ]
    )
    found = await store.search(v, SCOPE, score_threshold=0.0, now=NOW)
    assert ids(found) == ["forever", "alive"]
    assert await store.get("expired", now=NOW) is None
    assert (await store.get("alive", now=NOW)) is not None
    # the same points at an earlier moment: nothing has expired yet
    assert ids(await store.search(v, SCOPE, now=NOW - 10)) == ["forever", "expired", "alive"]
    assert (await store.get("expired", now=NOW - 10)) is not None
    # at a later moment both dated points are gone
    assert ids(await store.search(v, SCOPE, now=NOW + 61)) == ["forever"]
    batch = await store.search_batch([v], SCOPE, now=NOW)
    assert [ids(b) for b in batch] == [["forever", "alive"]]
    assert await store.count() == 3  # count is about storage: expired points until deleted


async def test_search_with_the_real_clock(store: VectorStore) -> None:
    v = unit(5)
    wall = time.time()
    await store.upsert(
        [
            point("old", v, created_at=wall - 10, expires_at=wall - 5),
            point("new", v, created_at=wall, expires_at=wall + 3600),
        ]
    )
    assert ids(await store.search(v, SCOPE)) == ["new"]
    assert await store.get("old") is None


async def test_batch_search_equals_individual_searches(store: VectorStore) -> None:
    rng = np.random.default_rng(8)
    data = rng.standard_normal((60, DIM)).astype(np.float32)
    await store.upsert([point(hexid(i), unit(data[i])) for i in range(len(data))])
    queries = [unit(200 + i) for i in range(6)]
    for threshold in (None, 0.1):
        batch = await store.search_batch(
            queries, SCOPE, limit=5, score_threshold=threshold, now=NOW
        )
        single = [
            await store.search(q, SCOPE, limit=5, score_threshold=threshold, now=NOW)
            for q in queries
        ]
        assert [ids(b) for b in batch] == [ids(s) for s in single]
        for b, s in zip(batch, single, strict=True):
            assert [m.score for m in b] == pytest.approx([m.score for m in s], abs=1e-6)
    assert await store.search_batch([], SCOPE) == []


async def test_empty_store_and_empty_inputs(store: VectorStore) -> None:
    assert await store.search(unit(1), SCOPE) == []
    assert await store.get(hexid(1)) is None
    assert await store.count() == 0
    await store.upsert([])
    await store.delete([])
    assert await store.delete_namespace("nobody") == 0
    await store.delete_older_than(NOW)
    await store.flush()


# --- by id, delete, count ---------------------------------------------------------------------


async def test_get_by_id(store: VectorStore) -> None:
    answer = {"text": "hello", "list": [1, {"a": None}], "flag": True}
    await store.upsert(
        [
            point(hexid(1), unit(1), answer=answer, expires_at=NOW + 5),
            point("not-a-hash: any string", unit(2)),
            point(hexid(0xABC3).upper(), unit(3)),
        ]
    )
    got = await store.get(hexid(1), now=NOW)
    assert got is not None
    assert got.id == hexid(1)
    assert got.score == 1.0
    assert got.answer == answer
    assert got.prompt == f"prompt of {hexid(1)}"
    assert got.expires_at == NOW + 5
    other = await store.get("not-a-hash: any string", now=NOW)
    assert other is not None
    assert other.id == "not-a-hash: any string"
    # upper-case hex is another id than its lower-case spelling
    assert (await store.get(hexid(0xABC3).upper(), now=NOW)) is not None
    assert await store.get(hexid(0xABC3), now=NOW) is None
    assert await store.get(hexid(99), now=NOW) is None


async def test_upsert_replaces_by_id(store: VectorStore) -> None:
    await store.upsert([point(hexid(1), unit(1), answer={"text": "first"})])
    await store.upsert([point(hexid(1), unit(2), answer={"text": "second"})])
    assert await store.count() == 1
    got = await store.get(hexid(1), now=NOW)
    assert got is not None
    assert got.answer == {"text": "second"}
    assert ids(await store.search(unit(2), SCOPE, score_threshold=0.999, now=NOW)) == [hexid(1)]


async def test_delete_by_id(store: VectorStore) -> None:
    await store.upsert([point(hexid(i), unit(i)) for i in range(5)])
    await store.delete([hexid(1), hexid(3), hexid(77)])
    assert await store.count() == 3
    assert await store.get(hexid(1)) is None
    assert (await store.get(hexid(2))) is not None
    found = await store.search(unit(1), SCOPE, limit=10, now=NOW)
    assert set(ids(found)) == {hexid(0), hexid(2), hexid(4)}


async def test_delete_namespace(store: VectorStore) -> None:
    other = ScopeFilter("tenant-b", SCOPE.model, SCOPE.fingerprint)
    await store.upsert([point(f"a{i}", unit(i)) for i in range(4)])
    await store.upsert([point(f"b{i}", unit(i), other) for i in range(3)])
    assert await store.count("tenant-a") == 4
    assert await store.count(other.namespace) == 3
    assert await store.count() == 7
    assert await store.delete_namespace("tenant-a") == 4
    assert await store.count("tenant-a") == 0
    assert await store.count() == 3
    assert await store.search(unit(1), SCOPE, now=NOW) == []
    assert len(await store.search(unit(1), other, now=NOW)) == 3


async def test_delete_older_than(store: VectorStore) -> None:
    await store.upsert([point(f"p{i}", unit(i), created_at=NOW - 10 * i) for i in range(5)])
    await store.delete_older_than(NOW - 25)  # removes created_at 30 and 40 seconds ago
    assert await store.count() == 3
    assert {m.id for m in await store.search(unit(0), SCOPE, now=NOW)} == {"p0", "p1", "p2"}
    await store.delete_older_than(NOW + 1)
    assert await store.count() == 0


# --- bad input ---------------------------------------------------------------------------------


async def test_dimension_and_value_errors(store: VectorStore) -> None:
    assert store.dim == DIM
    with pytest.raises(ValueError, match="vector"):
        await store.upsert([point("short", unit(1, DIM - 1))])
    with pytest.raises(ValueError, match="vector"):
        await store.search(unit(1, DIM + 1), SCOPE)
    with pytest.raises(ValueError, match="vector"):
        await store.search(np.ones((2, DIM), dtype=np.float32), SCOPE)
    with pytest.raises(ValueError, match="vector"):
        await store.search_batch([unit(1), unit(1, 3)], SCOPE)
    bad = unit(1).copy()
    bad[0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        await store.search(bad, SCOPE)
    bad[0] = np.inf
    with pytest.raises(ValueError, match="finite"):
        await store.search(bad, SCOPE)
    with pytest.raises(ValueError, match="zero"):
        await store.search(np.zeros(DIM), SCOPE)
    with pytest.raises(ValueError, match="limit"):
        await store.search(unit(1), SCOPE, limit=0)
    with pytest.raises(TypeError):
        await store.search(unit(1), ("a", "b", "c"), limit=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="answer"):
        await store.upsert([point("bad-answer", unit(1), answer={"x": float("nan")})])
    with pytest.raises(TypeError):
        await store.upsert(point("single", unit(1)))  # type: ignore[arg-type]
    assert await store.count() == 0


def test_vector_point_checks_its_fields() -> None:
    p = point("x", np.arange(1, DIM + 1, dtype=np.float64))
    assert p.vector.dtype == np.float32
    assert float(np.linalg.norm(p.vector)) == pytest.approx(1.0, abs=1e-6)
    assert not p.vector.flags.writeable
    with pytest.raises(ValueError, match="vector"):
        point("x", np.full(DIM, np.nan))
    with pytest.raises(ValueError, match="vector"):
        point("x", np.zeros(DIM))
    with pytest.raises(ValueError, match="vector"):
        point("x", np.ones((2, 2)))
    with pytest.raises(ValueError, match="id"):
        point("", unit(1))
    with pytest.raises(ValueError, match="expires_at"):
        point("x", unit(1), expires_at=float("inf"))
    with pytest.raises(ValueError, match="created_at"):
        point("x", unit(1), created_at=float("nan"))


def test_point_ids_are_deterministic() -> None:
    assert str(point_uuid(hexid(255))) == "00000000-0000-0000-0000-0000000000ff"
    assert point_uuid("some key") == point_uuid("some key")
    assert point_uuid("some key") != point_uuid("some key ")
    assert point_uuid(hexid(10).upper()) != point_uuid(hexid(10))


# --- lifecycle --------------------------------------------------------------------------------


async def test_persistence_across_reopen(persistent_backend: Backend) -> None:
    backend = persistent_backend
    rng = np.random.default_rng(3)
    data = rng.standard_normal((40, DIM)).astype(np.float32)
    points = [
        point(
            hexid(i),
            unit(data[i]),
            answer={"text": f"answer {i} ✓", "tokens": list(range(i % 5)), "nested": {"i": i}},
            expires_at=None if i % 2 else NOW + i,
        )
        for i in range(len(data))
    ]
    first = backend.open()
    await first.upsert(points)
    await first.flush()
    await first.aclose()
    with pytest.raises(RuntimeError):
        await first.count()

    second = backend.open()
    try:
        assert await second.count() == len(points)
        for p in points:
            got = await second.get(p.id, now=NOW)
            assert got is not None
            assert (got.answer, got.prompt, got.created_at, got.expires_at) == (
                p.answer,
                p.prompt,
                p.created_at,
                p.expires_at,
            )
            found = await second.search(p.vector, SCOPE, limit=1, now=NOW)
            assert ids(found) == [p.id]
    finally:
        await second.aclose()


async def test_closed_store_refuses_calls(backend: Backend) -> None:
    s = backend.open()
    await s.aclose()
    await s.aclose()  # idempotent
    with pytest.raises(RuntimeError):
        await s.search(unit(1), SCOPE)
    with pytest.raises(RuntimeError):
        await s.upsert([point("x", unit(1))])


# --- Edge only: one opener per folder, optimize ---------------------------------------------------


@pytest.fixture
def edge_store_module() -> Any:
    from semantic_reuse.semantic import edge_store

    return edge_store


async def test_open_edge_store_shares_one_instance(edge_store_module: Any, tmp_path: Path) -> None:
    open_edge_store = edge_store_module.open_edge_store
    folder = tmp_path / "shared"
    a = open_edge_store(folder, DIM)
    b = open_edge_store(str(folder / "." / ".." / "shared"), DIM)
    assert a is b
    with pytest.raises(RuntimeError, match="open_edge_store"):
        edge_store_module.EdgeStore(folder, DIM)
    with pytest.raises(ValueError, match="dim"):
        open_edge_store(folder, DIM + 1)
    await a.upsert([point(hexid(1), unit(1))])
    await a.aclose()  # b still holds it
    assert await b.count() == 1
    c = open_edge_store(folder, DIM)
    assert c is b
    await b.aclose()
    assert await c.count() == 1
    await c.aclose()  # last holder: really closed
    assert c.closed
    with pytest.raises(RuntimeError):
        await c.count()
    d = open_edge_store(folder, DIM)
    try:
        assert d is not c
        assert await d.count() == 1
    finally:
        await d.aclose()
    with pytest.raises(ValueError, match="dim"):
        open_edge_store(folder, DIM * 2)  # checked against the folder on disk
    e = open_edge_store(folder, DIM)  # the failed open left nothing behind
    await e.aclose()


async def test_open_while_the_last_holder_closes(edge_store_module: Any, tmp_path: Path) -> None:
    folder = tmp_path / "race"
    a = edge_store_module.open_edge_store(folder, DIM)
    await a.upsert([point(hexid(1), unit(1))])
    closing = asyncio.create_task(a.aclose())
    await asyncio.sleep(0)  # the close has started; the folder is still locked
    b = edge_store_module.open_edge_store(folder, DIM)  # waits for that close, then opens
    await closing
    try:
        assert b is not a
        assert await b.count() == 1
    finally:
        await b.aclose()


async def test_edge_calls_cancelled_while_queued_never_run(
    edge_store_module: Any, tmp_path: Path
) -> None:
    s = edge_store_module.EdgeStore(tmp_path / "queue", DIM)
    try:
        ran: list[int] = []
        release = threading.Event()
        busy = asyncio.ensure_future(s._run(release.wait, 30))  # the worker is busy (an optimize)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(s._run(ran.append, 1), 0.05)  # cancelled while queued
        release.set()
        assert await busy
        assert await s.count() == 0
        assert ran == []
        assert isinstance(s, VectorStore)
    finally:
        await s.aclose()


async def test_edge_temporary_folder_is_removed(edge_store_module: Any) -> None:
    s = edge_store_module.EdgeStore(None, DIM)
    folder = s.path
    await s.upsert([point(hexid(1), unit(1))])
    assert folder.is_dir()
    await s.aclose()
    assert not folder.exists()


@pytest.mark.parametrize("optimizer", ["subprocess", "in_process"])
async def test_edge_optimize_keeps_everything(
    edge_store_module: Any, tmp_path: Path, optimizer: str
) -> None:
    s = edge_store_module.EdgeStore(tmp_path / "opt", DIM, optimizer=optimizer)
    try:
        await s.upsert([point(hexid(i), unit(i)) for i in range(50)])
        assert isinstance(await s.optimize(), bool)
        assert await s.count() == 50
        assert ids(await s.search(unit(7), SCOPE, limit=1, now=NOW)) == [hexid(7)]
        stats = await s.stats()
        assert stats["points"] == 50
    finally:
        await s.aclose()


async def test_edge_automatic_optimize_is_queued_and_harmless(
    edge_store_module: Any, tmp_path: Path
) -> None:
    s = edge_store_module.EdgeStore(tmp_path / "auto", DIM, optimize_threshold=10)
    try:
        await s.upsert([point(hexid(i), unit(i)) for i in range(25)])
        # the optimize queued by that upsert runs before this search, in the same worker
        assert ids(await s.search(unit(3), SCOPE, limit=1, now=NOW)) == [hexid(3)]
        assert await s.count() == 25
    finally:
        await s.aclose()
    with pytest.raises(ValueError, match="optimize_threshold"):
        edge_store_module.EdgeStore(None, DIM, optimize_threshold=0)


def test_importing_the_store_is_cheap() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import semantic_reuse.semantic\n"
        "before = set(sys.modules)\n"
        "import semantic_reuse.semantic.store\n"
        "new = set(sys.modules) - before\n"
        "print(sorted(m for m in new if m.split('.')[0] in ('qdrant_edge', 'qdrant_client')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


async def test_client_collection_of_another_dim(tmp_path: Path) -> None:
    from semantic_reuse.semantic.server_store import QdrantServerStore

    first = QdrantServerStore(path=str(tmp_path / "q"), dim=DIM)
    await first.upsert([point(hexid(1), unit(1))])
    await first.aclose()
    second = QdrantServerStore(path=str(tmp_path / "q"), dim=DIM + 1)
    try:
        with pytest.raises(ValueError, match="dim"):
            await second.count()
    finally:
        await second.aclose()


# --- Edge only: the memory layout of new folders ----------------------------------------------


def _edge_config(folder: Path) -> dict[str, Any]:
    import json

    config: dict[str, Any] = json.loads((folder / "edge_config.json").read_text(encoding="utf-8"))
    return config


def _quantized_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("segments/*/vector_storage/quantized.data"))


async def test_edge_new_folder_is_quantized_and_keeps_it(
    edge_store_module: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "layout"
    for _ in range(2):  # created, then reopened: loading must not rewrite the folder's config
        s = edge_store_module.EdgeStore(folder, DIM, optimize_threshold=None)
        await s.upsert([point(hexid(i), unit(i)) for i in range(5)])
        await s.aclose()
        config = _edge_config(folder)
        vectors = config["vectors"][""]
        assert (vectors["size"], vectors["distance"]) == (DIM, "Cosine")
        assert vectors["memory"] == "cold"  # the float32 originals: mmapped, not preloaded
        assert vectors["quantization_config"] == {
            "scalar": {"type": "int8", "quantile": 0.99, "memory": "pinned"}
        }
        assert config["payload_memory"] == "cold"


def _optimize_small(folder: Path) -> None:
    """Optimize a closed folder whose few points Edge would otherwise leave unindexed."""
    from qdrant_edge import EdgeConfig, EdgeOptimizersConfig, EdgeShard

    from semantic_reuse.semantic.edge_layout import _plain_config, new_folder_config

    own = _edge_config(folder)["vectors"][""]  # loading with a config replaces these: keep them
    layout = new_folder_config if "quantization_config" in own else _plain_config
    vectors = layout(own["size"]).vectors
    shard = EdgeShard.load(
        str(folder),
        EdgeConfig(vectors=vectors, optimizers=EdgeOptimizersConfig(indexing_threshold=1)),
    )
    try:
        assert shard.optimize()
        shard.flush()
    finally:
        shard.close()


async def test_edge_quantized_search_equals_the_unquantized_store(
    edge_store_module: Any, tmp_path: Path
) -> None:
    """Int8 copies find the candidates, the originals score them: the same ids, order and
    scores as a folder of the old layout (float32 in RAM, no quantization)."""
    from qdrant_edge import EdgeShard

    from semantic_reuse.semantic.edge_layout import _plain_config

    dim, topics, per_topic = 384, 40, 30
    rng = np.random.default_rng(11)
    centres = rng.standard_normal((topics, dim)).astype(np.float32)
    # tight topics: the ten best of a query differ in the third decimal, where int8 errs
    data = np.repeat(centres, per_topic, axis=0) + 0.35 * rng.standard_normal(
        (topics * per_topic, dim)
    ).astype(np.float32)
    points = [point(hexid(i), unit(v)) for i, v in enumerate(data)]
    queries = [unit(centres[t] + 0.35 * rng.standard_normal(dim)) for t in range(topics)]

    old = tmp_path / "old"
    EdgeShard.create(str(old), _plain_config(dim)).close()  # a folder of the previous layout
    new = tmp_path / "new"
    for folder in (old, new):
        s = edge_store_module.EdgeStore(folder, dim, optimize_threshold=None)
        await s.upsert(points)
        await s.aclose()
        _optimize_small(folder)
    assert _quantized_files(new)
    assert not _quantized_files(old)
    assert "quantization_config" not in _edge_config(old)["vectors"][""]  # kept as created

    quantized = edge_store_module.EdgeStore(new, dim, optimize_threshold=None)
    plain = edge_store_module.EdgeStore(old, dim, optimize_threshold=None)
    try:
        assert (await quantized.stats())["indexed_vectors"] == len(points)
        want = await plain.search_batch(queries, SCOPE, limit=10, now=NOW)
        got = await quantized.search_batch(queries, SCOPE, limit=10, now=NOW)
        for a, b in zip(want, got, strict=True):
            assert ids(b) == ids(a)
            assert [m.score for m in b] == pytest.approx([m.score for m in a], abs=1e-5)
        exact = np.stack([unit(v) for v in data]) @ np.stack(queries).T
        for q, found in enumerate(got):
            best = np.argsort(-exact[:, q], kind="stable")[:10]
            assert ids(found) == [hexid(int(i)) for i in best]

        # the int8 copies are really what is searched: without rescoring the scores move
        from qdrant_edge import QuantizationSearchParams, Query, QueryRequest, SearchParams

        raw = quantized._edge.shard().query(
            QueryRequest(
                limit=10,
                query=Query.Nearest(queries[0].tolist()),
                params=SearchParams(quantization=QuantizationSearchParams(rescore=False)),
            )
        )
        rescored = {m.id: m.score for m in got[0]}
        errors = [abs(p.score - rescored[m]) for p in raw if (m := _hex(p.id)) in rescored]
        assert errors
        assert max(errors) > 1e-4
    finally:
        await quantized.aclose()
        await plain.aclose()


def _hex(point_id: Any) -> str:
    return str(point_id).replace("-", "")
