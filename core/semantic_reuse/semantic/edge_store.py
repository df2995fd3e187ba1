"""``EdgeStore``: the vector store on Qdrant Edge (``qdrant-edge-py``), the engine in-process.

One folder holds one shard (:class:`~semantic_reuse.semantic.edge_folder.EdgeFolder`). Edge's
API is synchronous and holds the GIL: every call runs on the store's one worker thread
(:class:`~semantic_reuse.semantic.edge_worker.EdgeWorker`), and the HNSW index is built on a copy
in a child process and swapped in (:mod:`~semantic_reuse.semantic.edge_rebuild`; the policy in
:mod:`~semantic_reuse.semantic.edge_optimize`).

One process per folder: it holds ``<folder>.lock`` while the folder is open. Another process
gets StoreInUseError, or with ``if_in_use="private"`` a private folder beside it that is merged
back later (:mod:`~semantic_reuse.semantic.edge_private`). Inside a process,
:func:`open_edge_store` shares one live store per folder, counting references (the class-level
registry of :mod:`~semantic_reuse.semantic.edge_sharing`); the last ``aclose()`` closes the
folder.

Durability: a write is in Edge's memory-mapped write-ahead log when its call returns (it
survives the process being killed); ``flush()`` writes it to the disk (it survives the machine
going down). A write runs in its turn even if its caller stopped waiting.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
import tempfile
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, ParamSpec, TypeVar

import numpy.typing as npt

from semantic_reuse.errors import (
    ComponentUnavailableError,
    ConfigurationError,
    InvalidRequestError,
    StoreInUseError,
)
from semantic_reuse.request import validate_namespace
from semantic_reuse.semantic.edge_files import FolderLock
from semantic_reuse.semantic.edge_folder import EdgeFolder, EdgeItem
from semantic_reuse.semantic.edge_optimize import OptimizePolicy, Optimizer
from semantic_reuse.semantic.edge_private import hand_back, merge_steps, open_private, take
from semantic_reuse.semantic.edge_rebuild import COPY_CHUNK, Optimizations
from semantic_reuse.semantic.edge_sharing import LiveFolders, folder_key
from semantic_reuse.semantic.edge_space import DiskRoom
from semantic_reuse.semantic.edge_worker import EdgeWorker
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
from semantic_reuse.semantic.store_payload import check_points, encode_payload, point_uuid
from semantic_reuse.semantic.store_query import search_args

__all__ = ["EdgeStore", "InUse", "open_edge_store"]

P = ParamSpec("P")
T = TypeVar("T")

#: What a store does when another process has its folder open.
InUse = Literal["raise", "private"]
#: Room kept free on the folder's disk by default (`DiskRoom`): more than a new log file.
DEFAULT_MIN_FREE_BYTES = 64 * 1024 * 1024


class EdgeStore(AsyncCloseable):
    """A :class:`~semantic_reuse.semantic.store.VectorStore` on Qdrant Edge, in one folder.

    Args:
        path: the shard folder, created on first use and loaded afterwards; None for a temporary
            folder deleted on close. A folder can be open once per process: share it with
            :func:`open_edge_store`.
        dim: the vector dimension; a folder created with another one raises ValueError.
        optimize_threshold: start an HNSW build once this many points are not indexed (checked
            every that many upserted points, and on open); None: only explicit :meth:`optimize`.
        optimizer: ``"subprocess"`` (default) builds the index on a copy in a child process and
            swaps it in, so that this process keeps answering; ``"in_process"`` calls Edge
            directly, which holds the GIL and freezes the whole process meanwhile (fine for
            scripts and tests).
        optimize_nice: niceness added to the optimizing child process (POSIX).
        hnsw_ef: candidates examined per HNSW search (None: Edge's default); more is
            slower and closer to exact. Brute-forced (unindexed) points are always exact.
        if_in_use: when another process has the folder open: ``"raise"`` StoreInUseError, or
            ``"private"``: open a private folder beside it, with one WARNING log line
            (:mod:`~semantic_reuse.semantic.edge_private`).
        min_free_bytes: the open and every write raise DiskFullError (a
            ComponentUnavailableError) unless the folder's disk keeps this much room beyond what
            the store's files may still fill (:mod:`~semantic_reuse.semantic.edge_space`: a
            full disk kills a process that writes through Edge's memory maps); 0: no check.

    Opening a folder is done in the constructor (fast: about 0.1 s for 20,000 points).
    """

    #: The live stores of this process, one per folder.
    _folders: ClassVar[LiveFolders[EdgeStore]] = LiveFolders()

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
        if_in_use: InUse = "raise",
        min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
    ) -> None:
        import qdrant_edge  # noqa: F401  (fail here, not in the worker, when it is missing)

        self.dim = check_dim(dim)
        self._policy = OptimizePolicy(optimize_threshold, optimizer, optimize_nice)
        if hnsw_ef is not None and (
            isinstance(hnsw_ef, bool) or not isinstance(hnsw_ef, int) or hnsw_ef < 1
        ):
            raise InvalidRequestError(f"hnsw_ef must be a positive int or None, got {hnsw_ef!r}")
        if if_in_use not in ("raise", "private"):
            raise InvalidRequestError(f"if_in_use must be 'raise' or 'private', got {if_in_use!r}")
        self._hnsw_ef = hnsw_ef
        self._refs = 1
        self._closing = False
        self._cleanup: weakref.finalize[..., Any] | None = None
        self._lock: FolderLock | None = None
        self._shared: Path | None = None  # the folder in use elsewhere, when this one is private
        self._key: str | None
        if path is None:
            root = Path(tempfile.mkdtemp(prefix="semantic-reuse-edge-"))
            folder = root / "shard"
            self._key = None
            self._cleanup = weakref.finalize(self, shutil.rmtree, str(root), ignore_errors=True)
        else:
            folder, self._key = folder_key(path)
        self._edge = EdgeFolder(folder, self.dim, hnsw_ef)
        self._room = DiskRoom(lambda: self._edge.folder, min_free_bytes)
        self._worker = EdgeWorker(lambda: self._edge.folder)
        self._optimizing = Optimizations(self._worker, self._policy)
        try:
            with self._folders.lock:
                if self._key is not None and self._folders.get(self._key) is not None:
                    raise ComponentUnavailableError(
                        f"the Edge store at {folder} is already open in this process; "
                        "use open_edge_store() to share it"
                    )
                if self._key is not None:
                    self._folders.wait_closed(self._key)
                self._worker.call(self._w_open, if_in_use).result()
                if self._key is not None:
                    self._folders.add(self._key, self)
        except BaseException:
            self._worker.shutdown()
            if self._cleanup is not None:
                self._cleanup()
            raise

    # --- the protocol ---------------------------------------------------------------------------

    async def upsert(self, points: Sequence[VectorPoint]) -> None:
        check_points(points, self.dim)
        items = [(point_uuid(p.id), p.vector, encode_payload(p)) for p in points]
        if items:
            await self._write_room(self._w_upsert, items)

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
        args = search_args(vectors, scope, self.dim, limit, score_threshold, now)
        if not args.queries:
            return []
        return await self._run(
            self._edge.search, args.queries, args.scope, args.limit, args.threshold, args.now
        )

    async def get(self, id: str, *, now: float | None = None) -> VectorMatch | None:
        check_type(id, str, "id")
        return await self._run(self._edge.get, id, resolve_now(now))

    async def delete(self, ids: Sequence[str]) -> None:
        uuids = [point_uuid(i) for i in check_ids(ids)]
        if uuids:
            await self._write_room(self._edge.delete, uuids)

    async def delete_namespace(self, namespace: str) -> int | None:
        validate_namespace(namespace)  # never a falsy one: that is no tenant
        return await self._write_room(self._edge.delete_namespace, namespace)

    async def delete_older_than(self, timestamp: float) -> None:
        await self._write_room(self._edge.delete_older_than, finite_float(timestamp, "timestamp"))

    async def count(self, namespace: str | None = None) -> int:
        return await self._run(self._edge.count, check_optional_namespace(namespace))

    async def scroll(
        self, namespace: str, *, offset: str | None = None, limit: int = 256
    ) -> tuple[list[VectorMatch], str | None]:
        validate_namespace(namespace)
        return await self._run(
            self._edge.scroll_namespace, namespace, check_offset(offset), check_limit(limit)
        )

    async def delete_where(
        self,
        namespace: str,
        *,
        tag: str | None = None,
        created_before: float | None = None,
        epoch_below: int | None = None,
    ) -> None:
        validate_namespace(namespace)
        if created_before is not None:
            created_before = finite_float(created_before, "created_before")
        await self._write_room(self._edge.delete_where, namespace, tag, created_before, epoch_below)

    async def set_expiry(self, ids: Sequence[str], expires_at: float) -> None:
        uuids = [point_uuid(i) for i in check_ids(ids)]
        if uuids:
            await self._write_room(
                self._edge.set_expiry, uuids, finite_float(expires_at, "expires_at")
            )

    async def flush(self) -> None:
        """Write everything stored so far to the disk (it survives a crash of the machine)."""
        await self._write(self._edge.flush)

    async def aclose(self) -> None:
        """Release this handle; the folder is flushed and closed when the last holder releases."""
        with self._folders.lock:
            if self._closing:
                return
            self._refs -= 1
            if self._refs > 0:
                return
            self._closing = True
            done = self._worker.call(self._w_close)
            self._worker.shutdown()
            if self._key is not None:
                self._folders.closing(self._key, self, done)
        try:
            await asyncio.wrap_future(done)
        finally:
            if self._key is not None:
                self._folders.closed(self._key, done)

    # --- beyond the protocol --------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The shard folder (a private one when the folder asked for was in use)."""
        return self._edge.folder

    @property
    def private(self) -> bool:
        """Whether this store opened a private folder because another process held its own."""
        return self._shared is not None

    @property
    def closed(self) -> bool:
        return self._closing

    async def optimize(self) -> bool:
        """Build the HNSW index now (see :mod:`~semantic_reuse.semantic.edge_optimize`); joins
        an optimize already running. True when anything changed."""
        if self._policy.optimizer == "in_process":
            return await self._run(self._edge.optimize)
        done = await self._run(self._optimizing.start, self._edge)
        return await asyncio.wrap_future(done)

    async def stats(self) -> dict[str, int]:
        """Edge's counters: ``points``, ``indexed_vectors`` (in HNSW) and ``segments``."""
        return await self._run(self._edge.stats)

    def __repr__(self) -> str:
        state = "closed" if self._closing else f"refs={self._refs}"
        return f"EdgeStore(path={str(self._edge.folder)!r}, dim={self.dim}, {state})"

    # --- plumbing -------------------------------------------------------------------------------

    async def _run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """A call on the worker; cancelling the caller takes a call still queued off the queue."""
        if self._closing:
            raise ComponentUnavailableError(f"{self!r} is closed")
        return await self._worker.run(fn, *args, **kwargs)

    async def _write(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """A write on the worker: it runs in its turn even if the caller stops waiting."""
        if self._closing:
            raise ComponentUnavailableError(f"{self!r} is closed")
        return await self._worker.write(fn, *args, **kwargs)

    async def _write_room(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`_write` of a change: on the worker, refused first when the disk is nearly full."""
        return await self._write(self._w_room_then, functools.partial(fn, *args, **kwargs))

    def _w_room_then(self, call: Callable[[], T]) -> T:
        self._room.check()
        return call()

    # --- worker-thread side: only these (and the EdgeFolder methods) touch the shard ------------

    def _w_open(self, if_in_use: InUse) -> None:
        self._room.check()
        try:
            self._lock = take(self._edge)
        except StoreInUseError:
            if if_in_use == "raise" or self._key is None:
                raise
            shared = self._edge
            self._edge, self._lock = open_private(shared, self._hnsw_ef)
            self._shared = shared.folder
        else:
            if self._key is not None:
                merging = merge_steps(self._edge, self._edge.folder, COPY_CHUNK)
                self._worker.steps(merging, "merging private folders")
        self._policy.opened()
        self._optimizing.maybe_start(self._edge)

    def _w_upsert(self, items: Sequence[EdgeItem]) -> None:
        self._edge.upsert(items)
        self._policy.added(len(items))
        self._optimizing.maybe_start(self._edge)

    def _w_close(self) -> None:
        unlink = False
        try:
            self._worker.stop_steps()
            self._optimizing.stop(ComponentUnavailableError(f"{self!r} is closed"))
            self._edge.close()
            if self._shared is not None:
                unlink = hand_back(self._edge, self._shared, COPY_CHUNK)
        finally:
            if self._lock is not None:
                self._lock.release(unlink=unlink)
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
    if_in_use: InUse = "raise",
    min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
) -> EdgeStore:
    """The live :class:`EdgeStore` of this folder in this process, opened on first use.

    Every call takes a reference that one ``aclose()`` gives back; the folder is closed when the
    last reference is given back (an open that comes while that close runs waits for it). The
    keyword options are those of :class:`EdgeStore`: they apply when the folder is opened and are
    ignored for a store already open (a private one too). A ``dim`` that differs from the open
    store's, or from the folder's, raises ValueError. Thread-safe.
    """
    dim = check_dim(dim)
    _, key = folder_key(path)
    with EdgeStore._folders.lock:
        store = EdgeStore._folders.get(key)
        if store is not None and not store.closed:
            if store.dim != dim:
                raise ConfigurationError(
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
            if_in_use=if_in_use,
            min_free_bytes=min_free_bytes,
        )
