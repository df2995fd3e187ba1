"""``EdgeStore``: the vector store on Qdrant Edge (``qdrant-edge-py``), the engine in-process.

One folder holds one shard (cosine, one unnamed dense vector, payload indexes on the scope and the
clock). Edge's API is synchronous: every call runs in one dedicated worker thread per store (one
thread also serialises access), through ``run_in_executor``.

What Edge 0.9 does, measured on this kind of machine (2 cores shared with other work, 384 dims,
random unit vectors), and how this module deals with it:

- There is no background optimizer: new points stay in a plain segment and are searched exactly,
  by brute force (a filtered query took 1.5-3 ms at 10,000 points and 11-24 ms at 50,000), until
  ``optimize()`` builds the HNSW index (7-20 s for 10,000 points, 63-87 s for 50,000); then a
  query takes about 1 ms at 10,000 and 1.2-1.7 ms at 50,000 in the engine. Small plain segments
  stay unindexed whatever happens (``optimize()`` returns False for a few thousand new points).
- The bindings hold the GIL for the whole of a call (queries too, but they are short), so an
  in-process optimize freezes the entire Python process (event loop, streaming, every other
  request) for that long, whichever thread runs it.
- So :meth:`EdgeStore.optimize` runs the optimizer in a child process by default: the worker flushes
  and closes the shard, ``python -c`` loads the folder, optimizes it at a lower CPU priority and
  closes it, and the worker loads it again (0.2-0.6 s of GIL-held close and load). The event loop
  stays free; store calls made meanwhile wait in the worker's queue (the engine's timeouts turn
  waiting lookups into misses, and a cancelled call leaves the queue).
- Automatic policy: after every ``optimize_threshold`` upserted points the worker reads the shard's
  counters and queues an optimize when at least that many points are not indexed (also checked
  when a folder is opened). Below it, brute force over the unindexed points costs a few
  milliseconds. ``flush()`` only flushes; ``optimize_threshold=None`` leaves optimizing to
  explicit calls.
- HNSW is approximate: on random vectors recall@10 at Edge's default ``ef`` was 0.6 at 10,000
  points and 0.22 at 50,000 (random 384-dim data is HNSW's worst case), while the nearest stored
  vector of a paraphrase-like query (a stored vector plus noise) was found 99.5-100% of the time.
  ``hnsw_ef`` trades speed for recall (ef 256: 0.87 at 10,000, ef 512: 0.98).

One opener per folder: Edge locks a folder (a second open fails, also across processes). Use
:func:`open_edge_store` to share one live store per folder inside a process; it counts references
and the folder is closed when the last holder calls ``aclose()``. The registry is a class-level
``WeakValueDictionary`` (folder -> live store) under a lock, so a store that every holder dropped
without closing does not stay registered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Literal, ParamSpec, TypeVar

import numpy.typing as npt
from loguru import logger

from semantic_reuse.semantic.store import (
    F_CREATED_AT,
    F_EXPIRES_AT,
    F_NAMESPACE,
    FLOAT_FIELDS,
    KEYWORD_FIELDS,
    FloatVector,
    ScopeFilter,
    VectorMatch,
    VectorPoint,
    check_dim,
    check_ids,
    check_limit,
    check_points,
    check_threshold,
    decode_match,
    encode_payload,
    engine_threshold,
    finite_float,
    is_expired,
    point_uuid,
    resolve_now,
    unit_vector,
)

if TYPE_CHECKING:
    from qdrant_edge import EdgeConfig, EdgeShard, Filter, QueryRequest

__all__ = ["EdgeStore", "open_edge_store"]

P = ParamSpec("P")
T = TypeVar("T")

Optimizer = Literal["subprocess", "in_process"]

#: Run by ``python -c`` to optimize a closed shard folder: argv = [folder, niceness].
_OPTIMIZE_CHILD = """
import os, sys
try:
    os.nice(int(sys.argv[2]))
except (AttributeError, OSError, ValueError):
    pass
from qdrant_edge import EdgeShard
shard = EdgeShard.load(sys.argv[1])
try:
    changed = shard.optimize()
    shard.flush()
finally:
    shard.close()
print("optimized" if changed else "unchanged")
"""


def _existing_dim(folder: Path) -> int | None:
    """The vector size recorded in an Edge folder's ``edge_config.json``, when readable."""
    try:
        config = json.loads((folder / "edge_config.json").read_text(encoding="utf-8"))
        return int(config["vectors"][""]["size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _has_shard(folder: Path) -> bool:
    return (folder / "edge_config.json").exists() or (folder / "segments").is_dir()


def _folder_key(path: str | Path) -> tuple[Path, str]:
    folder = Path(path).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    resolved = folder.resolve()
    return resolved, str(resolved)


class EdgeStore:
    """A :class:`~semantic_reuse.semantic.store.VectorStore` on Qdrant Edge, in one folder.

    Args:
        path: the shard folder, created on first use and loaded afterwards; None for a temporary
            folder deleted on close. A folder can be open once per process: share it with
            :func:`open_edge_store`.
        dim: the vector dimension; a folder created with another one raises ValueError.
        optimize_threshold: queue an HNSW build once this many points are not indexed (checked
            every that many upserted points, and on open); None: only explicit :meth:`optimize`.
        optimizer: ``"subprocess"`` (default) builds the index in a child process so that this
            process keeps running; ``"in_process"`` calls Edge directly, which holds the GIL and
            freezes the whole process meanwhile (fine for scripts and tests).
        optimize_nice: niceness added to the optimizing child process (POSIX).
        hnsw_ef: candidates examined per HNSW search (None: Edge's default); more is
            slower and closer to exact. Brute-forced (unindexed) points are always exact.

    Opening a folder is done in the constructor (fast: about 0.1 s for 20,000 points).
    """

    _live: ClassVar[weakref.WeakValueDictionary[str, EdgeStore]] = weakref.WeakValueDictionary()
    #: Folders whose last holder is closing them: an open waits for that close to finish.
    _closing_folders: ClassVar[dict[str, Future[None]]] = {}
    _live_lock: ClassVar[threading.RLock] = threading.RLock()

    dim: int

    def __init__(
        self,
        path: str | Path | None,
        dim: int,
        *,
        optimize_threshold: int | None = 20_000,
        optimizer: Optimizer = "subprocess",
        optimize_nice: int = 10,
        hnsw_ef: int | None = None,
    ) -> None:
        import qdrant_edge  # noqa: F401  (fail here, not in the worker, when it is missing)

        self.dim = check_dim(dim)
        if optimize_threshold is not None and (
            isinstance(optimize_threshold, bool)
            or not isinstance(optimize_threshold, int)
            or optimize_threshold < 1
        ):
            raise ValueError(
                f"optimize_threshold must be a positive int or None, got {optimize_threshold!r}"
            )
        if optimizer not in ("subprocess", "in_process"):
            raise ValueError(f"optimizer must be 'subprocess' or 'in_process', got {optimizer!r}")
        self._optimize_threshold = optimize_threshold
        self._optimizer: Optimizer = optimizer
        self._optimize_nice = int(optimize_nice)
        if hnsw_ef is not None and (
            isinstance(hnsw_ef, bool) or not isinstance(hnsw_ef, int) or hnsw_ef < 1
        ):
            raise ValueError(f"hnsw_ef must be a positive int or None, got {hnsw_ef!r}")
        self._hnsw_ef = hnsw_ef
        self._shard: EdgeShard | None = None
        self._refs = 1
        self._closing = False
        self._since_check = 0
        self._optimize_queued = False
        self._cleanup: weakref.finalize[..., Any] | None = None
        self._key: str | None
        if path is None:
            self._folder = Path(tempfile.mkdtemp(prefix="semantic-reuse-edge-"))
            self._key = None
            self._cleanup = weakref.finalize(
                self, shutil.rmtree, str(self._folder), ignore_errors=True
            )
        else:
            self._folder, self._key = _folder_key(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="semantic-reuse-edge")
        try:
            with self._live_lock:
                if self._key is not None and self._key in self._live:
                    raise RuntimeError(
                        f"the Edge store at {self._folder} is already open in this process; "
                        "use open_edge_store() to share it"
                    )
                if self._key is not None and (pending := self._closing_folders.get(self._key)):
                    with contextlib.suppress(Exception):
                        pending.result()
                self._executor.submit(self._w_open).result()
                if self._key is not None:
                    self._live[self._key] = self
        except BaseException:
            self._executor.shutdown(wait=False)
            if self._cleanup is not None:
                self._cleanup()
            raise

    # --- the protocol ---------------------------------------------------------------------------

    async def upsert(self, points: Sequence[VectorPoint]) -> None:
        check_points(points, self.dim)
        items = [(point_uuid(p.id), p.vector, encode_payload(p)) for p in points]
        if items:
            await self._run(self._w_upsert, items)

    async def search(
        self,
        vector: npt.ArrayLike,
        scope: ScopeFilter,
        *,
        limit: int = 10,
        score_threshold: float | None = None,
        now: float | None = None,
    ) -> list[VectorMatch]:
        return (
            await self.search_batch(
                [vector], scope, limit=limit, score_threshold=score_threshold, now=now
            )
        )[0]

    async def search_batch(
        self,
        vectors: Sequence[npt.ArrayLike],
        scope: ScopeFilter,
        *,
        limit: int = 10,
        score_threshold: float | None = None,
        now: float | None = None,
    ) -> list[list[VectorMatch]]:
        if not isinstance(scope, ScopeFilter):
            raise TypeError(f"scope must be a ScopeFilter, got {type(scope).__name__}")
        queries = [unit_vector(v, self.dim, name="vector") for v in vectors]
        if not queries:
            return []
        return await self._run(
            self._w_search,
            queries,
            scope,
            check_limit(limit),
            engine_threshold(check_threshold(score_threshold)),
            resolve_now(now),
        )

    async def get(self, id: str, *, now: float | None = None) -> VectorMatch | None:
        if not isinstance(id, str):
            raise TypeError(f"id must be a str, got {type(id).__name__}")
        return await self._run(self._w_get, id, resolve_now(now))

    async def delete(self, ids: Sequence[str]) -> None:
        uuids = [point_uuid(i) for i in check_ids(ids)]
        if uuids:
            await self._run(self._w_delete, uuids)

    async def delete_namespace(self, namespace: str) -> int | None:
        if not isinstance(namespace, str):
            raise TypeError(f"namespace must be a str, got {type(namespace).__name__}")
        return await self._run(self._w_delete_namespace, namespace)

    async def delete_older_than(self, timestamp: float) -> None:
        await self._run(self._w_delete_older_than, finite_float(timestamp, "timestamp"))

    async def count(self, namespace: str | None = None) -> int:
        if namespace is not None and not isinstance(namespace, str):
            raise TypeError(f"namespace must be a str or None, got {type(namespace).__name__}")
        return await self._run(self._w_count, namespace)

    async def flush(self) -> None:
        await self._run(self._w_flush)

    async def aclose(self) -> None:
        """Release this handle; the folder is flushed and closed when the last holder releases."""
        with self._live_lock:
            if self._closing:
                return
            self._refs -= 1
            if self._refs > 0:
                return
            self._closing = True
            done = self._executor.submit(self._w_close)
            self._executor.shutdown(wait=False)
            if self._key is not None:
                if self._live.get(self._key) is self:
                    del self._live[self._key]
                self._closing_folders[self._key] = done
        try:
            await asyncio.wrap_future(done)
        finally:
            if self._key is not None:
                with self._live_lock:
                    if self._closing_folders.get(self._key) is done:
                        del self._closing_folders[self._key]

    async def __aenter__(self) -> EdgeStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- beyond the protocol --------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The shard folder."""
        return self._folder

    @property
    def closed(self) -> bool:
        return self._closing

    async def optimize(self) -> bool:
        """Build the HNSW index now (see the module notes); True when anything changed."""
        return await self._run(self._w_optimize)

    async def stats(self) -> dict[str, int]:
        """Edge's counters: ``points``, ``indexed_vectors`` (in HNSW) and ``segments``."""
        return await self._run(self._w_stats)

    def __repr__(self) -> str:
        state = "closed" if self._closing else f"refs={self._refs}"
        return f"EdgeStore(path={str(self._folder)!r}, dim={self.dim}, {state})"

    # --- plumbing -------------------------------------------------------------------------------

    async def _run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self._closing:
            raise RuntimeError(f"{self!r} is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    def _config(self) -> EdgeConfig:
        from qdrant_edge import Distance, EdgeConfig, EdgeVectorParams

        return EdgeConfig(vectors=EdgeVectorParams(size=self.dim, distance=Distance.Cosine))

    def _scope_filter(self, scope: ScopeFilter, now: float) -> Filter:
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

    # --- worker-thread side: only these touch the shard -----------------------------------------

    def _shard_or_reopen(self) -> EdgeShard:
        if self._shard is None:
            from qdrant_edge import EdgeShard

            self._shard = EdgeShard.load(str(self._folder))
        return self._shard

    def _w_open(self) -> None:
        from qdrant_edge import EdgeShard, PayloadSchemaType, UpdateOperation

        folder = str(self._folder)
        if _has_shard(self._folder):
            existing = _existing_dim(self._folder)
            if existing is not None and existing != self.dim:
                raise ValueError(
                    f"dim={self.dim} does not match the Edge store at {folder}, "
                    f"which holds {existing}-dimensional vectors"
                )
            try:
                shard = EdgeShard.load(folder, self._config())
            except Exception as exc:
                if "ncompatible" in str(exc):
                    raise ValueError(
                        f"dim={self.dim} (cosine) does not match the Edge store at {folder}: {exc}"
                    ) from exc
                raise RuntimeError(
                    f"cannot open the Edge store at {folder} (is it open in another process?): "
                    f"{exc}"
                ) from exc
        else:
            shard = EdgeShard.create(folder, self._config())
        try:
            indexed = shard.info().payload_schema
            for name in KEYWORD_FIELDS:
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
        if self._optimize_threshold is not None:
            self._since_check = self._optimize_threshold
            self._maybe_queue_optimize()

    def _w_upsert(self, items: list[tuple[uuid.UUID, FloatVector, dict[str, Any]]]) -> None:
        from qdrant_edge import Point, UpdateOperation

        shard = self._shard_or_reopen()
        shard.update(
            UpdateOperation.upsert_points(
                [Point(pid, vector.tolist(), payload) for pid, vector, payload in items]
            )
        )
        self._since_check += len(items)
        self._maybe_queue_optimize()

    def _w_search(
        self,
        vectors: list[FloatVector],
        scope: ScopeFilter,
        limit: int,
        score_threshold: float | None,
        now: float,
    ) -> list[list[VectorMatch]]:
        from qdrant_edge import Query, QueryBatchRequest, QueryRequest, SearchParams

        shard = self._shard_or_reopen()
        flt = self._scope_filter(scope, now)
        params = None if self._hnsw_ef is None else SearchParams(hnsw_ef=self._hnsw_ef)
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
        out: list[list[VectorMatch]] = []
        for scored in results:
            matches = [decode_match(p.payload, p.score) for p in scored]
            out.append([m for m in matches if m is not None])
        return out

    def _w_get(self, id: str, now: float) -> VectorMatch | None:
        records = self._shard_or_reopen().retrieve([point_uuid(id)], True, False)
        for record in records:
            match = decode_match(record.payload, 1.0)
            if match is not None and match.id == id and not is_expired(match, now):
                return match
        return None

    def _w_delete(self, uuids: list[uuid.UUID]) -> None:
        from qdrant_edge import UpdateOperation

        self._shard_or_reopen().update(UpdateOperation.delete_points(list(uuids)))

    def _w_delete_namespace(self, namespace: str) -> int:
        from qdrant_edge import CountRequest, UpdateOperation

        shard = self._shard_or_reopen()
        flt = self._namespace_filter(namespace)
        found = shard.count(CountRequest(exact=True, filter=flt))
        if found:
            shard.update(UpdateOperation.delete_points_by_filter(flt))
        return found

    def _w_delete_older_than(self, timestamp: float) -> None:
        from qdrant_edge import FieldCondition, Filter, RangeFloat, UpdateOperation

        flt = Filter(must=[FieldCondition(F_CREATED_AT, range=RangeFloat(lt=timestamp))])
        self._shard_or_reopen().update(UpdateOperation.delete_points_by_filter(flt))

    def _w_count(self, namespace: str | None) -> int:
        from qdrant_edge import CountRequest

        flt = None if namespace is None else self._namespace_filter(namespace)
        return self._shard_or_reopen().count(CountRequest(exact=True, filter=flt))

    def _w_flush(self) -> None:
        self._shard_or_reopen().flush()

    def _w_stats(self) -> dict[str, int]:
        info = self._shard_or_reopen().info()
        return {
            "points": info.points_count,
            "indexed_vectors": info.indexed_vectors_count,
            "segments": info.segments_count,
        }

    def _maybe_queue_optimize(self) -> None:
        threshold = self._optimize_threshold
        if threshold is None or self._optimize_queued or self._since_check < threshold:
            return
        self._since_check = 0
        info = self._shard_or_reopen().info()
        if info.points_count - info.indexed_vectors_count < threshold:
            return
        self._optimize_queued = True
        with contextlib.suppress(RuntimeError):  # the executor is shutting down
            self._executor.submit(self._w_auto_optimize)

    def _w_auto_optimize(self) -> None:
        self._optimize_queued = False
        if self._closing:
            return
        try:
            self._w_optimize()
        except Exception as exc:
            logger.warning("Edge store {}: automatic optimize failed: {}", self._folder, exc)

    def _w_optimize(self) -> bool:
        shard = self._shard_or_reopen()
        if self._optimizer == "in_process":
            changed = shard.optimize()
            shard.flush()
            return changed
        from qdrant_edge import EdgeShard

        shard.flush()
        shard.close()
        self._shard = None
        try:
            proc = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    _OPTIMIZE_CHILD,
                    str(self._folder),
                    str(self._optimize_nice),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
        finally:
            self._shard = EdgeShard.load(str(self._folder))
        if proc.returncode != 0:
            raise RuntimeError(
                f"optimizing the Edge store at {self._folder} failed "
                f"(exit {proc.returncode}): {proc.stderr.strip()[-2000:]}"
            )
        return proc.stdout.strip().endswith("optimized")

    def _w_close(self) -> None:
        try:
            if self._shard is not None:
                self._shard.flush()
                self._shard.close()
        finally:
            self._shard = None
            if self._cleanup is not None:
                self._cleanup()


def open_edge_store(
    path: str | Path,
    dim: int,
    *,
    optimize_threshold: int | None = 20_000,
    optimizer: Optimizer = "subprocess",
    optimize_nice: int = 10,
    hnsw_ef: int | None = None,
) -> EdgeStore:
    """The live :class:`EdgeStore` of this folder in this process, opened on first use.

    Every call takes a reference that one ``aclose()`` gives back; the folder is closed when the
    last reference is given back (an open that comes while that close runs waits for it). The
    keyword options are those of :class:`EdgeStore`: they apply when the folder is opened and are
    ignored for a store already open. A ``dim`` that differs from the open store's, or from the
    folder's, raises ValueError. Thread-safe.
    """
    dim = check_dim(dim)
    _, key = _folder_key(path)
    with EdgeStore._live_lock:
        store = EdgeStore._live.get(key)
        if store is not None and not store.closed:
            if store.dim != dim:
                raise ValueError(
                    f"dim={dim} does not match the Edge store open at {key} (dim={store.dim})"
                )
            store._refs += 1
            return store
        return EdgeStore(
            key,
            dim,
            optimize_threshold=optimize_threshold,
            optimizer=optimizer,
            optimize_nice=optimize_nice,
            hnsw_ef=hnsw_ef,
        )
