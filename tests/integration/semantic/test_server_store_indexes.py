"""QdrantServerStore's payload indexes and collection layout, on qdrant-client's local mode.

There is no Qdrant server here: these tests run the server code path against the real client in
local mode, which accepts index requests and ignores them (its ``payload_schema`` stays empty)
and ignores shards and replication. So they check what the store *asks* of Qdrant, through a spy
that records the real client's calls and passes them on: the indexes (the namespace as a tenant
index), the layout of a collection it creates, and that every filter it sends is on an indexed
field.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from qdrant_client import models

from semantic_reuse import HandlerConfig
from semantic_reuse.defaults import build_store
from semantic_reuse.semantic.server_collection import index_matches, payload_indexes
from semantic_reuse.semantic.server_store import QdrantServerStore
from semantic_reuse.semantic.store import ScopeFilter, VectorPoint
from tests.conftest import free_port

DIM = 8
SCOPE = ScopeFilter(namespace="tenant-a", model="m", fingerprint="fp")


class Spy:
    """Records the calls of some of a real client's methods, then makes them."""

    def __init__(self, client: Any, *names: str) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        for name in names:
            setattr(client, name, self._wrap(name, getattr(client, name)))

    def _wrap(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        async def recorded(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            return await method(*args, **kwargs)

        return recorded

    def of(self, name: str) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
        return [(args, kwargs) for called, args, kwargs in self.calls if called == name]


def _point(n: int, namespace: str = "tenant-a", created_at: float = 1000.0) -> VectorPoint:
    vector = np.random.default_rng(n).standard_normal(DIM).astype(np.float32)
    return VectorPoint(
        f"{n:032x}", vector, namespace, "m", "fp", f"question {n}", {"text": f"answer {n}"},
        created_at, created_at + 3600,
    )  # fmt: skip


async def test_a_new_collection_gets_its_layout_and_indexes() -> None:
    store = QdrantServerStore(
        ":memory:", dim=DIM, shard_number=6, replication_factor=2, write_consistency_factor=2
    )
    spy = Spy(store._client, "create_collection", "create_payload_index")
    try:
        assert await store.count() == 0  # the first call creates the collection
        [(_, created)] = spy.of("create_collection")
        assert (created["shard_number"], created["replication_factor"]) == (6, 2)
        assert created["write_consistency_factor"] == 2
        requested = {
            args[1]: kwargs["field_schema"] for args, kwargs in spy.of("create_payload_index")
        }
        assert requested == {
            "namespace": models.KeywordIndexParams(type="keyword", is_tenant=True),
            "model": models.KeywordIndexParams(type="keyword"),
            "fingerprint": models.KeywordIndexParams(type="keyword"),
            "created_at": models.FloatIndexParams(type="float"),
            "expires_at": models.FloatIndexParams(type="float"),
            "tags": models.KeywordIndexParams(type="keyword"),
            "epoch": models.IntegerIndexParams(type="integer", lookup=False, range=True),
        }
        assert all(kwargs["wait"] for _, kwargs in spy.of("create_payload_index"))
        # What local mode does with them: accepts, keeps nothing (a server lists them here).
        assert (await store._client.get_collection(store.collection)).payload_schema == {}
        await store.upsert([_point(1)])  # the collection serves after the requests
        assert len(spy.of("create_collection")) == 1  # created once per store
    finally:
        await store.aclose()


async def test_every_filter_the_store_sends_is_on_an_indexed_field() -> None:
    store = QdrantServerStore(":memory:", dim=DIM)
    spy = Spy(
        store._client,
        "query_points",
        "query_batch_points",
        "count",
        "delete",
        "create_payload_index",
    )
    try:
        await store.upsert([_point(n, namespace=f"tenant-{'ab'[n % 2]}") for n in range(6)])
        query = _point(2).vector  # tenant-a's
        assert [m.id for m in await store.search(query, SCOPE, limit=1, now=1500.0)] == [
            _point(2).id
        ]
        await store.search_batch([query, _point(4).vector], SCOPE, now=1500.0)
        assert await store.count("tenant-b") == 3
        assert await store.delete_namespace("tenant-b") == 3
        await store.delete_older_than(999.0)
        await store.delete([_point(2).id])
        assert await store.count() == 2
        # lifecycle: invalidation by tag, and the purge after an epoch bump
        await store.delete_where("tenant-a", tag="doc-1", created_before=2000.0)
        await store.delete_where("tenant-a", epoch_below=1)

        filters: list[models.Filter] = []
        for name, _args, kwargs in spy.calls:
            if name == "query_points":
                filters.append(kwargs["query_filter"])
            elif name == "query_batch_points":
                filters += [request.filter for request in kwargs["requests"]]
            elif name == "count" and kwargs["count_filter"] is not None:
                filters.append(kwargs["count_filter"])
            elif name == "delete" and isinstance(kwargs["points_selector"], models.FilterSelector):
                filters.append(kwargs["points_selector"].filter)
        # search, batch (2), count, delete_namespace (a count, then a delete), older_than,
        # delete_where (2)
        assert len(filters) == 9
        fields = {condition.key for flt in filters for condition in _conditions(flt)}
        assert fields == set(payload_indexes())
    finally:
        await store.aclose()


def _conditions(flt: models.Filter) -> list[models.FieldCondition]:
    found = []
    for clause in (flt.must, flt.should, flt.must_not):
        for condition in clause if isinstance(clause, list) else [clause] if clause else []:
            if isinstance(condition, models.Filter):
                found += _conditions(condition)
            else:
                assert isinstance(condition, models.FieldCondition), condition
                found.append(condition)
    return found


def test_an_existing_index_is_kept_only_when_it_serves() -> None:
    wanted = payload_indexes()
    keyword = models.PayloadSchemaType.KEYWORD

    def info(data_type: models.PayloadSchemaType, params: Any = None) -> models.PayloadIndexInfo:
        return models.PayloadIndexInfo(data_type=data_type, params=params, points=10)

    assert not index_matches(None, wanted["model"])
    assert index_matches(info(keyword), wanted["model"])
    assert not index_matches(info(models.PayloadSchemaType.INTEGER), wanted["created_at"])
    assert index_matches(info(models.PayloadSchemaType.FLOAT), wanted["created_at"])
    # A plain keyword index of the namespace (an older collection) is made a tenant index.
    assert not index_matches(info(keyword), wanted["namespace"])
    plain = models.KeywordIndexParams(type="keyword")
    assert not index_matches(info(keyword, plain), wanted["namespace"])
    tenant = models.KeywordIndexParams(type="keyword", is_tenant=True)
    assert index_matches(info(keyword, tenant), wanted["namespace"])


def test_the_config_sets_the_layout_of_the_collection() -> None:
    config = HandlerConfig(
        cache={
            "qdrant_url": f"http://127.0.0.1:{free_port()}", "qdrant_shards": 4,
            "qdrant_replication_factor": 3, "qdrant_write_consistency": 2,
        }
    )  # fmt: skip
    before = set(threading.enumerate())
    with warnings.catch_warnings():
        # The client asks the server for its version in a thread of its own when it is made,
        # and warns when none answers (a closed port here): wait for it, hear nothing.
        warnings.filterwarnings("ignore", "Failed to obtain server version")
        store = build_store(config, "minilm-l6-v2", DIM)  # no collection is made before a call
        for thread in set(threading.enumerate()) - before:
            thread.join()
    assert isinstance(store, QdrantServerStore)
    assert store._layout == {
        "shard_number": 4, "replication_factor": 3, "write_consistency_factor": 2,
    }  # fmt: skip
    assert store.collection == "semantic_reuse-minilm-l6-v2"
