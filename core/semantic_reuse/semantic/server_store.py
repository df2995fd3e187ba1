"""``QdrantServerStore``: the vector store on a Qdrant server or cluster, through ``qdrant-client``.

``AsyncQdrantClient`` speaks to a server by URL (REST, or gRPC with ``prefer_grpc``). Its local
mode (``location=":memory:"`` or ``path=...``) runs in-process and serves the tests of this path;
it is brute-force numpy that runs on the event loop, ignores payload indexes and allows one client
per folder, so it is not a production store (use :class:`~semantic_reuse.semantic.edge_store.
EdgeStore` for an embedded one).

This module turns the protocol's calls into the client's requests (the filters of
:mod:`~semantic_reuse.semantic.store_query`, translated by :func:`client_filter`). The collection
and its payload indexes are created on first use when missing
(:mod:`~semantic_reuse.semantic.server_collection`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy.typing as npt

from semantic_reuse.errors import (
    ComponentUnavailableError,
    InvalidRequestError,
)
from semantic_reuse.request import validate_namespace
from semantic_reuse.semantic.server_collection import CollectionLayout, ensure_collection
from semantic_reuse.semantic.store import AsyncCloseable, ScopeFilter, VectorMatch, VectorPoint
from semantic_reuse.semantic.store_checks import (
    check_dim,
    check_ids,
    check_limit,
    check_offset,
    check_optional_namespace,
    check_type,
    finite_float,
    resolve_now,
)
from semantic_reuse.semantic.store_payload import (
    F_EXPIRES_AT,
    check_points,
    decode_match,
    decode_matches,
    encode_payload,
    live_match,
    point_uuid,
)
from semantic_reuse.semantic.store_query import (
    Bound,
    Match,
    PayloadFilter,
    delete_where_filter,
    namespace_filter,
    older_than_filter,
    scope_filter,
    search_args,
)

if TYPE_CHECKING:
    from qdrant_client import AsyncQdrantClient
    from qdrant_client.http.models import Filter

__all__ = ["QdrantServerStore"]

#: Points per upsert request (keeps requests well under the server's 32 MB default).
_UPSERT_CHUNK = 256


class QdrantServerStore(AsyncCloseable):
    """A :class:`~semantic_reuse.semantic.store.VectorStore` on a Qdrant collection.

    Args:
        location: ``":memory:"`` (local mode, in memory) or a URL; None with ``url`` or ``path``.
        url: the server's URL, e.g. ``"http://localhost:6333"``.
        api_key: for Qdrant Cloud or a server that requires one.
        path: a folder for local mode (persistent; one client per folder).
        collection: the collection's name.
        dim: the vector dimension.
        timeout: request timeout in seconds (the client's default is 5).
        prefer_grpc: use gRPC where the client can.
        shard_number, replication_factor, write_consistency_factor: of a collection this store
            creates (None: the server's defaults); an existing collection keeps its own.

    Nothing is sent before the first call, which creates the collection when it is missing.
    """

    dim: int

    def __init__(
        self,
        location: str | None = None,
        *,
        url: str | None = None,
        api_key: str | None = None,
        path: str | None = None,
        collection: str = "semantic_reuse",
        dim: int,
        timeout: int | None = None,
        prefer_grpc: bool = False,
        shard_number: int | None = None,
        replication_factor: int | None = None,
        write_consistency_factor: int | None = None,
    ) -> None:
        from qdrant_client import AsyncQdrantClient

        self.dim = check_dim(dim)
        if not isinstance(collection, str) or not collection:
            raise InvalidRequestError(f"collection must be a non-empty str, got {collection!r}")
        self.collection = collection
        self._layout = CollectionLayout(
            shard_number=shard_number,
            replication_factor=replication_factor,
            write_consistency_factor=write_consistency_factor,
        )
        for name, value in self._layout.items():
            if value is not None and (not isinstance(value, int) or value < 1):
                raise InvalidRequestError(f"{name} must be an int >= 1 or None, got {value!r}")
        self._client: AsyncQdrantClient = AsyncQdrantClient(
            location=location,
            url=url,
            api_key=api_key,
            path=path,
            timeout=timeout,
            prefer_grpc=prefer_grpc,
        )
        self._ready = False
        self._ready_lock = asyncio.Lock()
        self._closed = False

    # --- the protocol ---------------------------------------------------------------------------

    async def upsert(self, points: Sequence[VectorPoint]) -> None:
        from qdrant_client import models

        check_points(points, self.dim)
        structs = [
            models.PointStruct(
                id=str(point_uuid(p.id)), vector=p.vector.tolist(), payload=encode_payload(p)
            )
            for p in points
        ]
        if not structs:
            return
        client = await self._ensure()
        for start in range(0, len(structs), _UPSERT_CHUNK):
            await client.upsert(
                self.collection, points=structs[start : start + _UPSERT_CHUNK], wait=True
            )

    async def search(
        self,
        vector: npt.ArrayLike,
        scope: ScopeFilter,
        *,
        limit: int = 10,
        score_threshold: float | None = None,
        now: float | None = None,
    ) -> list[VectorMatch]:
        args = search_args([vector], scope, self.dim, limit, score_threshold, now)
        client = await self._ensure()
        response = await client.query_points(
            self.collection,
            query=args.queries[0].tolist(),
            query_filter=client_filter(scope_filter(args.scope, args.now)),
            limit=args.limit,
            score_threshold=args.threshold,
            with_payload=True,
            with_vectors=False,
        )
        return decode_matches(response.points)

    async def search_batch(
        self,
        vectors: Sequence[npt.ArrayLike],
        scope: ScopeFilter,
        *,
        limit: int = 10,
        score_threshold: float | None = None,
        now: float | None = None,
    ) -> list[list[VectorMatch]]:
        from qdrant_client import models

        args = search_args(vectors, scope, self.dim, limit, score_threshold, now)
        if not args.queries:
            return []
        flt = client_filter(scope_filter(args.scope, args.now))
        client = await self._ensure()
        responses = await client.query_batch_points(
            self.collection,
            requests=[
                models.QueryRequest(
                    query=q.tolist(),
                    filter=flt,
                    limit=args.limit,
                    score_threshold=args.threshold,
                    with_payload=True,
                    with_vector=False,
                )
                for q in args.queries
            ],
        )
        return [decode_matches(r.points) for r in responses]

    async def get(self, id: str, *, now: float | None = None) -> VectorMatch | None:
        check_type(id, str, "id")
        moment = resolve_now(now)
        client = await self._ensure()
        records = await client.retrieve(
            self.collection, ids=[str(point_uuid(id))], with_payload=True, with_vectors=False
        )
        return live_match(records, id, moment)

    async def delete(self, ids: Sequence[str]) -> None:
        from qdrant_client import models

        point_ids: list[models.ExtendedPointId] = [str(point_uuid(i)) for i in check_ids(ids)]
        if not point_ids:
            return
        client = await self._ensure()
        await client.delete(
            self.collection, points_selector=models.PointIdsList(points=point_ids), wait=True
        )

    async def delete_namespace(self, namespace: str) -> int | None:
        """Delete a namespace; the count is taken just before, so concurrent writes blur it."""
        from qdrant_client import models

        flt = client_filter(namespace_filter(validate_namespace(namespace)))
        client = await self._ensure()
        found = (await client.count(self.collection, count_filter=flt, exact=True)).count
        if found:
            await client.delete(
                self.collection, points_selector=models.FilterSelector(filter=flt), wait=True
            )
        return found

    async def delete_older_than(self, timestamp: float) -> None:
        from qdrant_client import models

        flt = client_filter(older_than_filter(finite_float(timestamp, "timestamp")))
        client = await self._ensure()
        await client.delete(
            self.collection, points_selector=models.FilterSelector(filter=flt), wait=True
        )

    async def count(self, namespace: str | None = None) -> int:
        namespace = check_optional_namespace(namespace)
        flt = None if namespace is None else client_filter(namespace_filter(namespace))
        client = await self._ensure()
        return (await client.count(self.collection, count_filter=flt, exact=True)).count

    async def scroll(
        self, namespace: str, *, offset: str | None = None, limit: int = 256
    ) -> tuple[list[VectorMatch], str | None]:
        flt = client_filter(namespace_filter(validate_namespace(namespace)))
        client = await self._ensure()
        records, following = await client.scroll(
            self.collection,
            scroll_filter=flt,
            limit=check_limit(limit),
            offset=check_offset(offset),
            with_payload=True,
            with_vectors=False,
        )
        matches = [decode_match(r.payload, 1.0) for r in records]
        return [m for m in matches if m is not None], None if following is None else str(following)

    async def delete_where(
        self,
        namespace: str,
        *,
        tag: str | None = None,
        created_before: float | None = None,
        epoch_below: int | None = None,
    ) -> None:
        from qdrant_client import models

        validate_namespace(namespace)
        if created_before is not None:
            created_before = finite_float(created_before, "created_before")
        flt = client_filter(delete_where_filter(namespace, tag, created_before, epoch_below))
        client = await self._ensure()
        await client.delete(
            self.collection, points_selector=models.FilterSelector(filter=flt), wait=True
        )

    async def set_expiry(self, ids: Sequence[str], expires_at: float) -> None:
        from qdrant_client import models

        point_ids: list[Any] = [str(point_uuid(i)) for i in check_ids(ids)]
        payload = {F_EXPIRES_AT: finite_float(expires_at, "expires_at")}
        if not point_ids:
            return
        client = await self._ensure()
        # By filter: unknown ids are skipped (by ids, the first unknown one fails the call).
        flt = models.Filter(must=[models.HasIdCondition(has_id=point_ids)])
        await client.set_payload(self.collection, payload=payload, points=flt, wait=True)

    async def flush(self) -> None:
        """Nothing to do: every write is sent with ``wait=True`` (the server's WAL has it)."""
        self._check_open()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._client.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"QdrantServerStore(collection={self.collection!r}, dim={self.dim}, {state})"

    # --- plumbing -------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ComponentUnavailableError(f"{self!r} is closed")

    async def _ensure(self) -> AsyncQdrantClient:
        """The client, once the collection and its payload indexes exist."""
        self._check_open()
        if self._ready:
            return self._client
        async with self._ready_lock:
            if not self._ready:
                await ensure_collection(self._client, self.collection, self.dim, self._layout)
                self._ready = True
        return self._client


def client_filter(flt: PayloadFilter) -> Filter:
    """A :class:`~semantic_reuse.semantic.store_query.PayloadFilter` as the client sends it."""
    from qdrant_client import models

    def condition(c: Match | Bound) -> models.Condition:
        if isinstance(c, Match):
            return models.FieldCondition(key=c.key, match=models.MatchValue(value=c.value))
        return models.FieldCondition(key=c.key, range=models.Range(lt=c.lt, gte=c.gte))

    return models.Filter(
        must=[condition(c) for c in flt.must],
        must_not=[condition(c) for c in flt.must_not] or None,
    )
