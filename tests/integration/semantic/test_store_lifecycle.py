"""The vector store's lifecycle operations, on every implementation (Qdrant Edge, qdrant-client
local mode in memory and in a folder): scroll a namespace, delete by tag / age / epoch, move
an expiry. Real engines, no mocks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from semantic_reuse.semantic.store import ScopeFilter, VectorStore
from tests.integration.semantic.test_store_contract import NOW, SCOPE, _backend, point, unit

OTHER = ScopeFilter("tenant-b", SCOPE.model, SCOPE.fingerprint)


@pytest.fixture(params=["edge", "client-memory", "client-path"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[VectorStore]:
    opened = _backend(request.param, tmp_path).open()
    yield opened
    await opened.aclose()


async def test_scroll_pages_through_one_namespace(store: VectorStore) -> None:
    await store.upsert([point(f"a{i}", unit(i)) for i in range(7)])
    await store.upsert([point(f"b{i}", unit(i), OTHER) for i in range(3)])
    seen: list[str] = []
    offset: str | None = None
    pages = 0
    while True:
        matches, offset = await store.scroll("tenant-a", offset=offset, limit=3)
        pages += 1
        seen += [m.id for m in matches]
        assert all(m.namespace == "tenant-a" and m.score == 1.0 for m in matches)
        if offset is None:
            break
    assert sorted(seen) == [f"a{i}" for i in range(7)]
    assert pages == 3
    assert (await store.scroll("nobody"))[0] == []


async def test_scroll_includes_expired_points(store: VectorStore) -> None:
    """Scrolling is for export and maintenance: the caller decides what is live."""
    await store.upsert([point("old", unit(1), expires_at=NOW - 1), point("live", unit(2))])
    matches, _ = await store.scroll("tenant-a")
    assert {m.id for m in matches} == {"old", "live"}


async def test_delete_where_tag_within_a_namespace_and_before_a_time(store: VectorStore) -> None:
    tagged = replace(point("t-old", unit(1), created_at=NOW - 50), tags=("doc-7", "doc-8"))
    fresh = replace(point("t-new", unit(2), created_at=NOW + 5), tags=("doc-7",))
    other_tag = replace(point("u", unit(3), created_at=NOW - 50), tags=("doc-9",))
    other_ns = replace(point("b", unit(4), OTHER, created_at=NOW - 50), tags=("doc-7",))
    await store.upsert([tagged, fresh, other_tag, other_ns])
    await store.delete_where("tenant-a", tag="doc-7", created_before=NOW)
    left, _ = await store.scroll("tenant-a")
    assert {m.id for m in left} == {"t-new", "u"}
    assert await store.count("tenant-b") == 1  # another tenant's tag is not touched


async def test_delete_where_age_and_epoch(store: VectorStore) -> None:
    points = [
        replace(point(f"e{i}", unit(i), created_at=NOW - 10 * i), epoch=i % 3) for i in range(6)
    ]
    await store.upsert(points)
    await store.delete_where("tenant-a", epoch_below=2)  # epochs 0 and 1 go
    left = {m.id for m in (await store.scroll("tenant-a"))[0]}
    assert left == {"e2", "e5"}
    await store.delete_where("tenant-a", created_before=NOW - 30)  # e5 was created 50 s ago
    assert {m.id for m in (await store.scroll("tenant-a"))[0]} == {"e2"}


async def test_set_expiry_moves_the_live_window(store: VectorStore) -> None:
    await store.upsert([point("s", unit(1), expires_at=NOW + 10)])
    assert await store.get("s", now=NOW + 20) is None
    await store.set_expiry(["s", "unknown"], NOW + 100)
    found = await store.get("s", now=NOW + 20)
    assert found is not None
    assert found.expires_at == NOW + 100
    assert [m.id for m in await store.search(unit(1), SCOPE, now=NOW + 50)] == ["s"]
    assert await store.search(unit(1), SCOPE, now=NOW + 101) == []


async def test_lifecycle_operations_check_their_arguments(store: VectorStore) -> None:
    with pytest.raises(ValueError, match="namespace"):
        await store.scroll("")
    with pytest.raises(TypeError, match="offset"):
        await store.scroll("tenant-a", offset=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="namespace"):
        await store.delete_where("")
    with pytest.raises(ValueError, match="expires_at"):
        await store.set_expiry(["a"], float("nan"))
