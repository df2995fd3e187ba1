"""``QdrantServerStore``: the vector store on a Qdrant server or cluster, through ``qdrant-client``.

``AsyncQdrantClient`` speaks to a server by URL (REST, or gRPC with ``prefer_grpc``). Its local
mode (``location=":memory:"`` or ``path=...``) runs in-process and serves the tests of this path;
it is brute-force numpy that runs on the event loop, ignores payload indexes and allows one client
per folder, so it is not a production store (use :class:`~semantic_reuse.semantic.edge_store.
EdgeStore` for an embedded one).

The collection (one unnamed cosine vector; on a cluster with the shards, replication factor and
write consistency given) and its payload indexes are created on first use when missing: namespace
as a keyword *tenant* index (Qdrant keeps each tenant's points together), model and fingerprint
as keyword indexes, created_at and expires_at as float indexes. Every filter the store sends is
on these fields alone. Local mode accepts the index requests and ignores them. An existing
collection with another vector size raises ValueError naming ``dim``; an existing namespace index
that is not a tenant index is made one.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy.typing as npt

from semantic_reuse.errors import (
    ComponentUnavailableError,
    ConfigurationError,
    InvalidRequestError,
    InvalidTypeError,
)
from semantic_reuse.request import validate_namespace
from semantic_reuse.semantic.store import (
    F_CREATED_AT,
    F_EPOCH,
    F_EXPIRES_AT,
    F_NAMESPACE,
    F_TAGS,
    FLOAT_FIELDS,
    KEYWORD_FIELDS,
    AsyncCloseable,
    ScopeFilter,
    VectorMatch,
    VectorPoint,
    check_dim,
    check_ids,
    check_limit,
    check_offset,
    check_points,
    check_threshold,
    check_type,
    decode_match,
    decode_matches,
    encode_payload,
    engine_threshold,
    finite_float,
    live_match,
    point_uuid,
    resolve_now,
    unit_vector,
)

if TYPE_CHECKING:
    from qdrant_client import AsyncQdrantClient
    from qdrant_client.http.models import Filter, PayloadIndexInfo, PayloadSchemaParams

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
        self._layout = {
            "shard_number": shard_number,
            "replication_factor": replication_factor,
            "write_consistency_factor": write_consistency_factor,
        }
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
        query = unit_vector(vector, self.dim, name="vector")
        limit = check_limit(limit)
        threshold = engine_threshold(check_threshold(score_threshold))
        flt = self._scope_filter(scope, resolve_now(now))
        client = await self._ensure()
        response = await client.query_points(
            self.collection,
            query=query.tolist(),
            query_filter=flt,
            limit=limit,
            score_threshold=threshold,
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

        queries = [unit_vector(v, self.dim, name="vector") for v in vectors]
        limit = check_limit(limit)
        threshold = engine_threshold(check_threshold(score_threshold))
        flt = self._scope_filter(scope, resolve_now(now))
        if not queries:
            return []
        client = await self._ensure()
        responses = await client.query_batch_points(
            self.collection,
            requests=[
                models.QueryRequest(
                    query=q.tolist(),
                    filter=flt,
                    limit=limit,
                    score_threshold=threshold,
                    with_payload=True,
                    with_vector=False,
                )
                for q in queries
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

        flt = self._namespace_filter(validate_namespace(namespace))
        client = await self._ensure()
        found = (await client.count(self.collection, count_filter=flt, exact=True)).count
        if found:
            await client.delete(
                self.collection, points_selector=models.FilterSelector(filter=flt), wait=True
            )
        return found

    async def delete_older_than(self, timestamp: float) -> None:
        from qdrant_client import models

        flt = self._older_than_filter(finite_float(timestamp, "timestamp"))
        client = await self._ensure()
        await client.delete(
            self.collection, points_selector=models.FilterSelector(filter=flt), wait=True
        )

    async def count(self, namespace: str | None = None) -> int:
        if namespace is not None and not isinstance(namespace, str):
            raise InvalidTypeError(
                f"namespace must be a str or None, got {type(namespace).__name__}"
            )
        flt = None if namespace is None else self._namespace_filter(namespace)
        client = await self._ensure()
        return (await client.count(self.collection, count_filter=flt, exact=True)).count

    async def scroll(
        self, namespace: str, *, offset: str | None = None, limit: int = 256
    ) -> tuple[list[VectorMatch], str | None]:
        flt = self._namespace_filter(validate_namespace(namespace))
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

        must: list[models.Condition] = [
            models.FieldCondition(key=F_NAMESPACE, match=models.MatchValue(value=namespace))
        ]
        validate_namespace(namespace)
        if tag is not None:
            must.append(models.FieldCondition(key=F_TAGS, match=models.MatchValue(value=tag)))
        if created_before is not None:
            limit = finite_float(created_before, "created_before")
            must.append(models.FieldCondition(key=F_CREATED_AT, range=models.Range(lt=limit)))
        must_not: list[models.Condition] = []
        if epoch_below is not None:  # points written before epochs existed count as epoch 0
            must_not.append(models.FieldCondition(key=F_EPOCH, range=models.Range(gte=epoch_below)))
        flt = models.Filter(must=must, must_not=must_not or None)
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
                await self._create_collection()
                self._ready = True
        return self._client

    async def _create_collection(self) -> None:
        from qdrant_client import models

        client = self._client
        if not await client.collection_exists(self.collection):
            try:
                await client.create_collection(
                    self.collection,
                    vectors_config=models.VectorParams(
                        size=self.dim, distance=models.Distance.COSINE
                    ),
                    shard_number=self._layout["shard_number"],
                    replication_factor=self._layout["replication_factor"],
                    write_consistency_factor=self._layout["write_consistency_factor"],
                )
            except Exception:
                # Another client may have created it meanwhile; anything else is a real error.
                if not await client.collection_exists(self.collection):
                    raise
        info = await client.get_collection(self.collection)
        vectors: Any = info.config.params.vectors
        if not isinstance(vectors, models.VectorParams):
            raise ConfigurationError(
                f"collection {self.collection!r} has named vectors; it was not made by this store"
            )
        if vectors.size != self.dim:
            raise ConfigurationError(
                f"dim={self.dim} does not match collection {self.collection!r}, "
                f"which holds {vectors.size}-dimensional vectors"
            )
        if vectors.distance != models.Distance.COSINE:
            raise ConfigurationError(
                f"collection {self.collection!r} uses {vectors.distance} distance, not cosine"
            )
        existing = info.payload_schema or {}
        for name, schema in payload_indexes().items():
            if index_matches(existing.get(name), schema):
                continue
            with warnings.catch_warnings():
                # Local mode says once that its indexes do nothing: known, and documented.
                warnings.filterwarnings("ignore", "Payload indexes have no effect")
                await client.create_payload_index(
                    self.collection, name, field_schema=schema, wait=True
                )

    @staticmethod
    def _scope_filter(scope: ScopeFilter, now: float) -> Filter:
        from qdrant_client import models

        check_type(scope, ScopeFilter, "scope")
        return models.Filter(
            must=[
                models.FieldCondition(key=key, match=models.MatchValue(value=value))
                for key, value in zip(
                    KEYWORD_FIELDS, (scope.namespace, scope.model, scope.fingerprint), strict=True
                )
            ],
            must_not=[models.FieldCondition(key=F_EXPIRES_AT, range=models.Range(lt=now))],
        )

    @staticmethod
    def _namespace_filter(namespace: str) -> Filter:
        from qdrant_client import models

        return models.Filter(
            must=[models.FieldCondition(key=F_NAMESPACE, match=models.MatchValue(value=namespace))]
        )

    @staticmethod
    def _older_than_filter(timestamp: float) -> Filter:
        from qdrant_client import models

        return models.Filter(
            must=[models.FieldCondition(key=F_CREATED_AT, range=models.Range(lt=timestamp))]
        )


def payload_indexes() -> dict[str, PayloadSchemaParams]:
    """The payload index of each field the store filters on: the namespace as a tenant index."""
    from qdrant_client import models

    keyword = models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD)
    indexes: dict[str, PayloadSchemaParams] = {
        name: keyword for name in KEYWORD_FIELDS if name != F_NAMESPACE
    }
    indexes[F_NAMESPACE] = models.KeywordIndexParams(
        type=models.KeywordIndexType.KEYWORD, is_tenant=True
    )
    indexes.update(
        (name, models.FloatIndexParams(type=models.FloatIndexType.FLOAT)) for name in FLOAT_FIELDS
    )
    # Lifecycle: invalidation by tag and the purge after an epoch bump delete by filter.
    indexes[F_TAGS] = keyword
    indexes[F_EPOCH] = models.IntegerIndexParams(
        type=models.IntegerIndexType.INTEGER, lookup=False, range=True
    )
    return indexes


def index_matches(existing: PayloadIndexInfo | None, wanted: PayloadSchemaParams) -> bool:
    """Does a collection's index of a field (None: none) serve as `wanted`?"""
    if existing is None or existing.data_type.value != wanted.type.value:
        return False
    return not getattr(wanted, "is_tenant", False) or bool(
        getattr(existing.params, "is_tenant", False)
    )
