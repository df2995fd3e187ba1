"""``EdgeFolder``: one Qdrant Edge shard in a folder, called synchronously from one thread.

The shard holds one unnamed cosine vector, with payload indexes on the scope (keyword) and the
clock (float). Every method calls Edge directly and holds the GIL while it runs, so
:class:`~semantic_reuse.semantic.edge_store.EdgeStore` calls them from its worker thread only.
``qdrant_edge`` is imported by the methods, not by this module.

Memory layout (:func:`new_folder_config`, fixed when a folder is created): the optimized (HNSW)
segments keep a scalar int8 copy of every vector in RAM (384 bytes for 384 dimensions, against
1,536 for float32) and the original float32 vectors in a memory-mapped file that is not preloaded
(``Memory.Cold``); payloads are on disk. A search walks the index on the int8 copies, takes
``RESCORE_OVERSAMPLING`` times the requested candidates and rescores them with the originals, so
the scores returned are exact cosines, as without quantization. Points not yet optimized (the
appendable segment) are searched exactly, without quantization. A folder created before this
layout keeps the one it was created with (its ``edge_config.json`` is left as it is).
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from semantic_reuse.errors import (
    ComponentUnavailableError,
    ConfigurationError,
    StoreInUseError,
)
from semantic_reuse.semantic.store import (
    F_CREATED_AT,
    F_EPOCH,
    F_EXPIRES_AT,
    F_NAMESPACE,
    F_TAGS,
    FLOAT_FIELDS,
    KEYWORD_FIELDS,
    FloatVector,
    ScopeFilter,
    VectorMatch,
    decode_match,
    decode_matches,
    live_match,
    point_uuid,
)

if TYPE_CHECKING:
    from qdrant_edge import EdgeConfig, EdgeShard, Filter, QueryRequest, SearchParams

__all__ = ["FOLDER_LAYOUT", "EdgeFolder", "new_folder_config"]

#: A point as Edge takes it: its uuid, unit vector (or list of floats) and payload.
EdgeItem = tuple[uuid.UUID | int | str, FloatVector | list[float], dict[str, Any]]
#: A point as a scroll returns it.
PointItem = tuple[uuid.UUID | int | str, list[float], dict[str, Any]]
#: A write as the journal keeps it: ("upsert", items), ("delete", uuids), ("namespace", name),
#: ("older", timestamp), ("where", (namespace, tag, created_before, epoch_below)),
#: ("expiry", (uuids, expires_at)).
JournalOp = tuple[str, Any]

#: Names the layout of :func:`new_folder_config` (the benches key their prebuilt folders on it).
FOLDER_LAYOUT = "int8-ram.f32-cold"
#: The quantile of the values that bounds the int8 range (the extreme 1% are clipped).
QUANTIZATION_QUANTILE = 0.99
#: A quantized search rescores this many times the requested candidates with the originals.
RESCORE_OVERSAMPLING = 2.0


def new_folder_config(dim: int) -> EdgeConfig:
    """The configuration of a new folder: int8 copies in RAM, originals and payloads on disk."""
    from qdrant_edge import (
        Distance,
        EdgeConfig,
        EdgeVectorParams,
        Memory,
        ScalarQuantizationConfig,
        ScalarType,
    )

    return EdgeConfig(
        vectors=EdgeVectorParams(
            size=dim,
            distance=Distance.Cosine,
            memory=Memory.Cold,
            quantization_config=ScalarQuantizationConfig(
                ScalarType.Int8, quantile=QUANTIZATION_QUANTILE, memory=Memory.Pinned
            ),
        ),
        payload_memory=Memory.Cold,
    )


def _plain_config(dim: int) -> EdgeConfig:
    """The vector parameters alone (what folders were created with before quantization)."""
    from qdrant_edge import Distance, EdgeConfig, EdgeVectorParams

    return EdgeConfig(vectors=EdgeVectorParams(size=dim, distance=Distance.Cosine))


def _floats(vector: FloatVector | list[float]) -> list[float]:
    return vector if isinstance(vector, list) else vector.tolist()


def _existing_dim(folder: Path) -> int | None:
    """The vector size recorded in an Edge folder's ``edge_config.json``, when readable."""
    try:
        config = json.loads((folder / "edge_config.json").read_text(encoding="utf-8"))
        return int(config["vectors"][""]["size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _has_shard(folder: Path) -> bool:
    return (folder / "edge_config.json").exists() or (folder / "segments").is_dir()


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
        """Load the folder's shard, or create it (laid out as the shard in ``template`` when
        given, else as :func:`new_folder_config`); add the payload indexes it lacks.

        StoreInUseError when another process has the folder open."""
        from qdrant_edge import EdgeShard, PayloadSchemaType, UpdateOperation

        folder = str(self.folder)
        if _has_shard(self.folder):
            existing = _existing_dim(self.folder)
            if existing is not None and existing != self.dim:
                raise ConfigurationError(
                    f"dim={self.dim} does not match the Edge store at {folder}, "
                    f"which holds {existing}-dimensional vectors"
                )
            # Loading with a config overwrites the folder's vector parameters (quantization
            # and memory placement included), so a folder whose own config is readable (and
            # checked above) is loaded as it is; an older folder without one is checked
            # against its segments with the plain vector parameters, as it was created.
            config = None if existing is not None else _plain_config(self.dim)
            try:
                shard = EdgeShard.load(folder, config)
            except Exception as exc:
                if "ncompatible" in str(exc):
                    raise ConfigurationError(
                        f"dim={self.dim} (cosine) does not match the Edge store at {folder}: {exc}"
                    ) from exc
                if "WouldBlock" in str(exc):
                    raise StoreInUseError(
                        f"the Edge store at {folder} is open in another process"
                    ) from exc
                raise ComponentUnavailableError(
                    f"cannot open the Edge store at {folder}: {exc}"
                ) from exc
        elif template is not None and (template / "edge_config.json").is_file():
            self.folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(template / "edge_config.json", self.folder / "edge_config.json")
            shard = EdgeShard.load(folder)  # an empty shard laid out as the template
        elif template is not None:
            shard = EdgeShard.create(folder, _plain_config(self.dim))
        else:
            shard = EdgeShard.create(folder, new_folder_config(self.dim))
        try:
            indexed = shard.info().payload_schema
            for name in (*KEYWORD_FIELDS, F_TAGS):
                if name not in indexed:
                    shard.update(
                        UpdateOperation.create_field_index(name, PayloadSchemaType.Keyword)
                    )
            for name in FLOAT_FIELDS:
                if name not in indexed:
                    shard.update(UpdateOperation.create_field_index(name, PayloadSchemaType.Float))
        except BaseException:
            shard.close()
            raise
        self._shard = shard

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
        flt = self._scope_filter(scope, now)
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

        flt = self._namespace_filter(namespace)
        found = self.shard().count(CountRequest(exact=True, filter=flt))
        if found:
            self._delete_where(flt)
        if self.journal is not None:
            self.journal.append(("namespace", namespace))
        return found

    def delete_older_than(self, timestamp: float) -> None:
        from qdrant_edge import FieldCondition, Filter, RangeFloat

        flt = Filter(must=[FieldCondition(F_CREATED_AT, range=RangeFloat(lt=timestamp))])
        self._delete_where(flt)
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
        from qdrant_edge import FieldCondition, Filter, MatchValue, RangeFloat

        must: list[Any] = [FieldCondition(F_NAMESPACE, match=MatchValue(namespace))]
        if tag is not None:
            must.append(FieldCondition(F_TAGS, match=MatchValue(tag)))
        if created_before is not None:
            must.append(FieldCondition(F_CREATED_AT, range=RangeFloat(lt=created_before)))
        must_not: list[Any] = []
        if epoch_below is not None:  # points written before epochs existed count as epoch 0
            must_not.append(FieldCondition(F_EPOCH, range=RangeFloat(gte=float(epoch_below))))
        self._delete_where(Filter(must=must, must_not=must_not or None))
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
                filter=self._namespace_filter(namespace),
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

        flt = None if namespace is None else self._namespace_filter(namespace)
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
        """``hnsw_ef``, and rescoring with the originals where a segment is quantized (ignored
        where it is not): the scores are exact cosines either way."""
        if self._params is None:
            from qdrant_edge import QuantizationSearchParams, SearchParams

            self._params = SearchParams(
                hnsw_ef=self._hnsw_ef,
                quantization=QuantizationSearchParams(
                    rescore=True, oversampling=RESCORE_OVERSAMPLING
                ),
            )
        return self._params

    @staticmethod
    def _scope_filter(scope: ScopeFilter, now: float) -> Filter:
        from qdrant_edge import FieldCondition, Filter, MatchValue, RangeFloat

        return Filter(
            must=[
                FieldCondition(key, match=MatchValue(value))
                for key, value in zip(
                    KEYWORD_FIELDS, (scope.namespace, scope.model, scope.fingerprint), strict=True
                )
            ],
            must_not=[FieldCondition(F_EXPIRES_AT, range=RangeFloat(lt=now))],
        )

    @staticmethod
    def _namespace_filter(namespace: str) -> Filter:
        from qdrant_edge import FieldCondition, Filter, MatchValue

        return Filter(must=[FieldCondition(F_NAMESPACE, match=MatchValue(namespace))])
