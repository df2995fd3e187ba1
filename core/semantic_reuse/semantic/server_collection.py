"""The collection a :class:`~semantic_reuse.semantic.server_store.QdrantServerStore` runs on:
created when missing, checked when it exists, and given the payload indexes it lacks.

The collection holds one unnamed cosine vector; on a cluster it is created with the shards,
replication factor and write consistency given (an existing one keeps its own). Its payload
indexes: namespace as a keyword *tenant* index (Qdrant keeps each tenant's points together), model
and fingerprint as keyword indexes, created_at and expires_at as float indexes, and for the
lifecycle tags (keyword) and epoch (integer, ranges). Every filter the store sends is on these
fields alone. Local mode accepts the index requests and ignores them. An existing collection with
another vector size raises ValueError naming ``dim``; an existing namespace index that is not a
tenant index is made one.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, TypedDict

from semantic_reuse.errors import ConfigurationError
from semantic_reuse.semantic.store_payload import (
    F_EPOCH,
    F_NAMESPACE,
    F_TAGS,
    FLOAT_FIELDS,
    KEYWORD_FIELDS,
)

if TYPE_CHECKING:
    from qdrant_client import AsyncQdrantClient
    from qdrant_client.http.models import PayloadIndexInfo, PayloadSchemaParams

__all__ = ["CollectionLayout", "ensure_collection", "index_matches", "payload_indexes"]


class CollectionLayout(TypedDict):
    """How a collection the store creates is spread over a cluster (None: the server's
    default)."""

    shard_number: int | None
    replication_factor: int | None
    write_consistency_factor: int | None


async def ensure_collection(
    client: AsyncQdrantClient, collection: str, dim: int, layout: CollectionLayout
) -> None:
    """Create ``collection`` when missing, check its vectors, add the payload indexes it lacks."""
    from qdrant_client import models

    if not await client.collection_exists(collection):
        try:
            await client.create_collection(
                collection,
                vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE),
                shard_number=layout["shard_number"],
                replication_factor=layout["replication_factor"],
                write_consistency_factor=layout["write_consistency_factor"],
            )
        except Exception:
            # Another client may have created it meanwhile; anything else is a real error.
            if not await client.collection_exists(collection):
                raise
    info = await client.get_collection(collection)
    vectors: Any = info.config.params.vectors
    if not isinstance(vectors, models.VectorParams):
        raise ConfigurationError(
            f"collection {collection!r} has named vectors; it was not made by this store"
        )
    if vectors.size != dim:
        raise ConfigurationError(
            f"dim={dim} does not match collection {collection!r}, "
            f"which holds {vectors.size}-dimensional vectors"
        )
    if vectors.distance != models.Distance.COSINE:
        raise ConfigurationError(
            f"collection {collection!r} uses {vectors.distance} distance, not cosine"
        )
    existing = info.payload_schema or {}
    for name, schema in payload_indexes().items():
        if index_matches(existing.get(name), schema):
            continue
        with warnings.catch_warnings():
            # Local mode says once that its indexes do nothing: known, and documented.
            warnings.filterwarnings("ignore", "Payload indexes have no effect")
            await client.create_payload_index(collection, name, field_schema=schema, wait=True)


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
