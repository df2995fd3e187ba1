"""``EdgeFolder``: one Qdrant Edge shard in a folder, called synchronously from one thread.

Every method calls Edge directly and holds the GIL while it runs, so
:class:`~semantic_reuse.semantic.edge_store.EdgeStore` calls them from its worker thread only.
The folder's layout and how it is opened: :mod:`~semantic_reuse.semantic.edge_layout`; the
filters of the queries: :mod:`~semantic_reuse.semantic.store_query` (translated here by
:func:`edge_filter`). While an optimize builds a copy, every write is also kept in a journal, to
be replayed on the copy (:meth:`EdgeFolder.replay`). ``qdrant_edge`` is imported by the methods,
not by this module.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from semantic_reuse.semantic.edge_layout import (
    FOLDER_LAYOUT,
    new_folder_config,
    open_shard,
    search_params,
)
from semantic_reuse.semantic.store import ScopeFilter, VectorMatch
from semantic_reuse.semantic.store_checks import FloatVector
from semantic_reuse.semantic.store_payload import (
    F_EXPIRES_AT,
    decode_match,
    decode_matches,
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
)

if TYPE_CHECKING:
    from qdrant_edge import EdgeShard, Filter, QueryRequest, SearchParams

# FOLDER_LAYOUT and new_folder_config live in edge_layout; named here as they always were.
__all__ = ["FOLDER_LAYOUT", "EdgeFolder", "edge_filter", "new_folder_config"]

#: A point as Edge takes it: its uuid, unit vector (or list of floats) and payload.
EdgeItem = tuple[uuid.UUID | int | str, FloatVector | list[float], dict[str, Any]]
#: A point as a scroll returns it.
PointItem = tuple[uuid.UUID | int | str, list[float], dict[str, Any]]
#: A write as the journal keeps it: ("upsert", items), ("delete", uuids), ("namespace", name),
#: ("older", timestamp), ("where", (namespace, tag, created_before, epoch_below)),
#: ("expiry", (uuids, expires_at)).
JournalOp = tuple[str, Any]


def _floats(vector: FloatVector | list[float]) -> list[float]:
    return vector if isinstance(vector, list) else vector.tolist()


class EdgeFolder:
    """The shard of ``folder`` (``dim``-dimensional vectors); ``hnsw_ef`` as in ``EdgeStore``.

    Nothing is opened before :meth:`open`; after :meth:`close`, or an optimize whose reload
    failed, the next call loads the folder again.
    """

    def __init__(self, folder: Path, dim: int, hnsw_ef: int | None) -> None:
        self.folder = folder
        self.dim = dim
        self._hnsw_ef = hnsw_ef
        self._shard: EdgeShard | None = None
        self._params: SearchParams | None = None
        #: While an optimize builds a copy, every write is also kept here to replay on the copy.
        self.journal: list[JournalOp] | None = None
        #: ``flush()`` was called while the journal was on: a replay must be flushed too.
        self.journal_flushed = False

    def open(self, template: Path | None = None) -> None:
        """Load the folder's shard, or create it (see
        :func:`~semantic_reuse.semantic.edge_layout.open_shard`).

        StoreInUseError when another process has the folder open."""
        self._shard = open_shard(self.folder, self.dim, template)

    def shard(self) -> EdgeShard:
        """The open shard, loaded again when it is not."""
        if self._shard is None:
            from qdrant_edge import EdgeShard

            self._shard = EdgeShard.load(str(self.folder))
        return self._shard

    def upsert(self, items: Sequence[EdgeItem]) -> None:
        from qdrant_edge import Point, UpdateOperation

        self.shard().update(
            UpdateOperation.upsert_points(
                [Point(pid, _floats(vector), payload) for pid, vector, payload in items]
            )
        )
        if self.journal is not None:
            self.journal.append(("upsert", items))

    def search(
        self,
        vectors: list[FloatVector],
        scope: ScopeFilter,
        limit: int,
        score_threshold: float | None,
        now: float,
    ) -> list[list[VectorMatch]]:
        from qdrant_edge import Query, QueryBatchRequest, QueryRequest

        shard = self.shard()
        flt = edge_filter(scope_filter(scope, now))
        params = self._search_params()
        requests: list[QueryRequest] = [
            QueryRequest(
                limit=limit,
                query=Query.Nearest(vector.tolist()),
                filter=flt,
                score_threshold=score_threshold,
                params=params,
                with_payload=True,
                with_vector=False,
            )
            for vector in vectors
        ]
        if len(requests) == 1:
            results = [shard.query(requests[0])]
        else:
            results = shard.query_batch(QueryBatchRequest(requests))
        return [decode_matches(scored) for scored in results]

    def get(self, id: str, now: float) -> VectorMatch | None:
        return live_match(self.shard().retrieve([point_uuid(id)], True, False), id, now)

    def delete(self, uuids: list[uuid.UUID]) -> None:
        from qdrant_edge import UpdateOperation

        self.shard().update(UpdateOperation.delete_points(list(uuids)))
        if self.journal is not None:
            self.journal.append(("delete", list(uuids)))

    def delete_namespace(self, namespace: str) -> int:
        from qdrant_edge import CountRequest

        flt = edge_filter(namespace_filter(namespace))
        found = self.shard().count(CountRequest(exact=True, filter=flt))
        if found:
            self._delete_where(flt)
        if self.journal is not None:
            self.journal.append(("namespace", namespace))
        return found

    def delete_older_than(self, timestamp: float) -> None:
        self._delete_where(edge_filter(older_than_filter(timestamp)))
        if self.journal is not None:
            self.journal.append(("older", timestamp))

    def _delete_where(self, flt: Filter) -> None:
        from qdrant_edge import UpdateOperation

        self.shard().update(UpdateOperation.delete_points_by_filter(flt))

    def delete_where(
        self,
        namespace: str,
        tag: str | None,
        created_before: float | None,
        epoch_below: int | None,
    ) -> None:
        flt = delete_where_filter(namespace, tag, created_before, epoch_below)
        self._delete_where(edge_filter(flt))
        if self.journal is not None:
            self.journal.append(("where", (namespace, tag, created_before, epoch_below)))

    def set_expiry(self, uuids: list[uuid.UUID], expires_at: float) -> None:
        from qdrant_edge import Filter, HasIdCondition, UpdateOperation

        # By filter: unknown ids are skipped (set_payload by ids fails on the first one).
        flt = Filter(must=[HasIdCondition(set(uuids))])
        self.shard().update(UpdateOperation.set_payload_by_filter(flt, {F_EXPIRES_AT: expires_at}))
        if self.journal is not None:
            self.journal.append(("expiry", (list(uuids), expires_at)))

    def scroll_namespace(
        self, namespace: str, offset: str | None, limit: int
    ) -> tuple[list[VectorMatch], str | None]:
        """A page of one namespace's records (payloads only) and the next page's offset."""
        from qdrant_edge import ScrollRequest

        records, following = self.shard().scroll(
            ScrollRequest(
                offset=None if offset is None else uuid.UUID(offset),
                limit=limit,
                filter=edge_filter(namespace_filter(namespace)),
                with_payload=True,
                with_vector=False,
            )
        )
        matches = [decode_match(r.payload, 1.0) for r in records]
        return [m for m in matches if m is not None], None if following is None else str(following)

    def replay(self, journal: list[JournalOp]) -> None:
        """Apply writes another folder's journal recorded, in order (consecutive upserts in
        one update)."""
        pending: list[EdgeItem] = []
        for kind, arg in journal:
            if kind == "upsert":
                pending.extend(arg)
                continue
            if pending:
                self.upsert(pending)
                pending = []
            if kind == "delete":
                self.delete(arg)
            elif kind == "namespace":
                self.delete_namespace(arg)
            elif kind == "where":
                self.delete_where(*arg)
            elif kind == "expiry":
                self.set_expiry(*arg)
            else:
                self.delete_older_than(arg)
        if pending:
            self.upsert(pending)

    def scroll(self, offset: Any, limit: int) -> tuple[list[PointItem], Any]:
        """Up to ``limit`` points, from id ``offset`` on (None: the first), with their vectors
        and payloads; and the offset of the next ones (None: no more)."""
        from qdrant_edge import ScrollRequest

        records, after = self.shard().scroll(
            ScrollRequest(offset=offset, limit=limit, with_payload=True, with_vector=True)
        )
        items = [(r.id, cast("list[float]", r.vector), dict(r.payload or {})) for r in records]
        return items, after

    def copy_into(self, target: EdgeFolder, offset: Any, limit: int) -> tuple[int, Any]:
        """Copy up to ``limit`` points from ``offset`` on into ``target``; the number copied
        and the offset of the next ones (None: done)."""
        items, after = self.scroll(offset, limit)
        if items:
            target.upsert(items)
        return len(items), after

    def count(self, namespace: str | None) -> int:
        from qdrant_edge import CountRequest

        flt = None if namespace is None else edge_filter(namespace_filter(namespace))
        return self.shard().count(CountRequest(exact=True, filter=flt))

    def flush(self) -> None:
        self.shard().flush()
        if self.journal is not None:
            self.journal_flushed = True

    def stats(self) -> dict[str, int]:
        """Edge's counters: ``points``, ``indexed_vectors`` (in HNSW) and ``segments``."""
        info = self.shard().info()
        return {
            "points": info.points_count,
            "indexed_vectors": info.indexed_vectors_count,
            "segments": info.segments_count,
        }

    def optimize(self) -> bool:
        """Build the HNSW index here, holding the GIL meanwhile; True if anything changed
        (an ``EdgeStore`` optimizes a copy in a child process instead: ``edge_rebuild.py``)."""
        shard = self.shard()
        changed = shard.optimize()
        shard.flush()
        return changed

    def close(self, *, flush: bool = True) -> None:
        """Flush (unless told not to: a folder about to be thrown away) and close the shard."""
        try:
            if self._shard is not None:
                if flush:
                    self._shard.flush()
                self._shard.close()
        finally:
            self._shard = None

    def _search_params(self) -> SearchParams:
        if self._params is None:
            self._params = search_params(self._hnsw_ef)
        return self._params


def edge_filter(flt: PayloadFilter) -> Filter:
    """A :class:`~semantic_reuse.semantic.store_query.PayloadFilter` as Edge takes it."""
    from qdrant_edge import FieldCondition, Filter, MatchValue, RangeFloat

    def condition(c: Match | Bound) -> FieldCondition:
        if isinstance(c, Match):
            return FieldCondition(c.key, match=MatchValue(c.value))
        return FieldCondition(
            c.key,
            range=RangeFloat(
                lt=None if c.lt is None else float(c.lt),
                gte=None if c.gte is None else float(c.gte),
            ),
        )

    return Filter(
        must=[condition(c) for c in flt.must],
        must_not=[condition(c) for c in flt.must_not] or None,
    )
