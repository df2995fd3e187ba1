"""The async front of an embedder: micro-batching, an LRU, encoding off the event loop.

:class:`MicroBatchingEmbedder` wraps any :class:`~semantic_reuse.semantic.embedder.Embedder`:
encoding runs on a worker thread, concurrent callers share forward passes, and recent texts come
from an LRU.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from semantic_reuse.errors import (
    ComponentUnavailableError,
    InvalidRequestError,
    InvalidTypeError,
    UsageError,
)
from semantic_reuse.semantic.embedder import (
    Embedder,
    FloatMatrix,
    FloatVector,
    check_texts,
    fits_window,
    normalised,
)

__all__ = ["EmbedderClosedError", "EmbedderStats", "MicroBatchingEmbedder"]


class EmbedderClosedError(ComponentUnavailableError):
    """The micro-batching embedder was closed."""


@dataclass(frozen=True, slots=True)
class EmbedderStats:
    """Counters of a :class:`MicroBatchingEmbedder` since it was made."""

    #: Texts asked for, over all ``embed``/``embed_one`` calls.
    requested: int
    #: Texts answered from the LRU.
    cache_hits: int
    #: Texts that joined an identical text already queued or being encoded.
    coalesced: int
    #: Texts sent to the inner embedder (each distinct text of a batch once).
    texts_encoded: int
    #: Calls of the inner embedder's ``encode`` (forward passes).
    batches: int
    #: Batches whose encode raised.
    failed_batches: int
    #: Entries in the LRU now.
    cache_entries: int


_Row = asyncio.Future[FloatVector]


class MicroBatchingEmbedder:
    """The async front of an :class:`Embedder`: batching, an LRU, off-loop encoding.

    - Encoding runs in ``executor`` (default: a single worker thread of its own), never on the
      event loop.
    - Texts asked while the encoder is idle are collected for up to ``max_wait_ms`` (or until
      ``max_batch_size`` texts wait) and encoded in one forward pass; texts asked while it is
      busy are collected until it is free, then go in the next pass (at most
      ``max_batch_size`` texts each). ``max_wait_ms=0`` still batches callers of the same
      event-loop turn and those arriving during a pass, at no added latency.
    - An LRU of at most ``cache_size`` embeddings and ``cache_max_bytes`` bytes (vector, text
      and bookkeeping; keyed by the exact text) avoids re-encoding; a text
      that is already queued or being encoded is not encoded twice.
    - If the inner ``encode`` raises, every caller waiting on that batch gets the exception; the
      texts are not cached and later batches run as usual. Cancelling one caller leaves the
      others and the batch alone.

    Bound to the event loop that uses it; it moves to another loop when idle or when the
    previous loop was closed (successive ``asyncio.run`` calls work).
    """

    def __init__(
        self,
        inner: Embedder,
        *,
        max_batch_size: int = 32,
        max_wait_ms: float = 2.0,
        cache_size: int = 4096,
        cache_max_bytes: int = 8 * 1024 * 1024,
        executor: Executor | None = None,
        max_concurrent_batches: int = 1,
    ) -> None:
        if max_batch_size < 1:
            raise InvalidRequestError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if not max_wait_ms >= 0:
            raise InvalidRequestError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        if cache_size < 0:
            raise InvalidRequestError(f"cache_size must be >= 0, got {cache_size}")
        if cache_max_bytes < 0:
            raise InvalidRequestError(f"cache_max_bytes must be >= 0, got {cache_max_bytes}")
        if max_concurrent_batches < 1:
            raise InvalidRequestError(
                f"max_concurrent_batches must be >= 1, got {max_concurrent_batches}"
            )
        self._inner = inner
        self._max_batch = max_batch_size
        self._max_wait_s = max_wait_ms / 1000.0
        self._cache_size = cache_size
        self._cache_max_bytes = cache_max_bytes
        self._cache_bytes = 0
        self._max_running = max_concurrent_batches
        self._executor = executor
        self._own_executor = executor is None
        self._cache: OrderedDict[str, FloatVector] = OrderedDict()
        self._futures: dict[str, _Row] = {}  # queued or being encoded
        self._queue: list[str] = []  # queued, in arrival order
        self._timer: asyncio.Handle | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dim: int | None = None
        self._closed = False
        self._requested = 0
        self._cache_hits = 0
        self._coalesced = 0
        self._texts_encoded = 0
        self._batches = 0
        self._failed_batches = 0

    @property
    def inner(self) -> Embedder:
        return self._inner

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def dim(self) -> int:
        """The inner embedder's dim (which may load its model, blocking, the first time)."""
        if self._dim is None:
            self._dim = self._inner.dim
        return self._dim

    def fits(self, text: str) -> bool:
        """Whether the inner embedder sees all of `text` (see `fits_window`)."""
        return fits_window(self._inner, text)

    @property
    def closed(self) -> bool:
        return self._closed

    def stats(self) -> EmbedderStats:
        return EmbedderStats(
            requested=self._requested,
            cache_hits=self._cache_hits,
            coalesced=self._coalesced,
            texts_encoded=self._texts_encoded,
            batches=self._batches,
            failed_batches=self._failed_batches,
            cache_entries=len(self._cache),
        )

    def clear_cache(self) -> None:
        self._cache.clear()
        self._cache_bytes = 0

    async def embed_one(self, text: str) -> FloatVector:
        """One text's unit vector, shape ``(dim,)``."""
        if not isinstance(text, str):
            raise InvalidTypeError(f"text must be str, got {type(text).__name__}")
        row: FloatVector = (await self.embed([text]))[0]
        return row

    async def embed(self, texts: Sequence[str]) -> FloatMatrix:
        """Unit vectors of `texts`, shape ``(len(texts), dim)``, float32, in order."""
        items = check_texts(texts)
        self._check_open()
        loop = self._bind_loop()
        if not items:
            if self._dim is None:
                self._dim = await loop.run_in_executor(self._get_executor(), _dim_of, self._inner)
            return np.zeros((0, self._dim), dtype=np.float32)
        self._requested += len(items)
        rows: list[FloatVector | _Row] = []
        for text in items:
            cached = self._cache.get(text)
            if cached is not None:
                self._cache.move_to_end(text)
                self._cache_hits += 1
                rows.append(cached)
                continue
            fut = self._futures.get(text)
            if fut is not None:
                self._coalesced += 1
            else:
                fut = loop.create_future()
                fut.add_done_callback(_mark_retrieved)
                self._futures[text] = fut
                self._queue.append(text)
            rows.append(fut)
        self._schedule(loop)
        pending = {r for r in rows if isinstance(r, asyncio.Future)}
        if pending:
            # asyncio.wait, unlike gather or awaiting the futures, never cancels them when this
            # caller is cancelled: other callers share them.
            await asyncio.wait(pending)
        return np.stack([r.result() if isinstance(r, asyncio.Future) else r for r in rows])

    async def aclose(self) -> None:
        """Refuse new calls, fail queued texts, let running batches finish, stop the worker."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        error = EmbedderClosedError("the embedder was closed")
        for text in self._queue:
            fut = self._futures.pop(text)
            if not fut.done():
                fut.set_exception(error)
        self._queue.clear()
        if self._running:
            await asyncio.wait(set(self._running))
        if self._own_executor and self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    # -- internals (all on the event loop's thread) -------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise EmbedderClosedError("the embedder was closed")

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            old = self._loop
            if old is not None and (self._futures or self._running):
                if not old.is_closed():
                    raise UsageError("MicroBatchingEmbedder is in use by another event loop")
                # That loop is gone (asyncio.run ended with texts queued): they can never
                # complete, and their futures belong to it.
                self._futures.clear()
                self._queue.clear()
                self._running.clear()
            self._loop = loop
            self._timer = None
        return loop

    def _get_executor(self) -> Executor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self._max_running, thread_name_prefix="semantic-reuse-embed"
            )
        return self._executor

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start a batch now if one is full, else make sure a timer will start it."""
        if len(self._queue) >= self._max_batch:
            self._dispatch(loop)
        if self._queue and self._timer is None and len(self._running) < self._max_running:
            if self._max_wait_s > 0:
                self._timer = loop.call_later(self._max_wait_s, self._on_timer, loop)
            else:
                self._timer = loop.call_soon(self._on_timer, loop)

    def _on_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        self._dispatch(loop)

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start batches while the queue is not empty and a worker is free."""
        while self._queue and len(self._running) < self._max_running and not self._closed:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            task = loop.create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, texts: list[str]) -> None:
        loop = asyncio.get_running_loop()
        self._batches += 1
        self._texts_encoded += len(texts)
        cancelled = False
        try:
            rows = await loop.run_in_executor(
                self._get_executor(), _encode_checked, self._inner, texts
            )
        except BaseException as exc:
            # Every waiter of the batch gets the error; a cancelled batch (loop shutting down)
            # is reported to them as an error, not as their own cancellation.
            self._failed_batches += 1
            error = (
                exc
                if isinstance(exc, Exception)
                else EmbedderClosedError("the embedding batch was cancelled")
            )
            for text in texts:
                fut = self._futures.pop(text, None)
                if fut is not None and not fut.done():
                    fut.set_exception(error)
            if error is not exc:
                cancelled = True
                raise
        else:
            if self._dim is None:
                self._dim = int(rows.shape[1])
            for text, matrix_row in zip(texts, rows, strict=True):
                # A copy: a view would keep the whole batch's matrix alive in the LRU.
                row = matrix_row.copy()
                row.flags.writeable = False  # shared by the cache and every caller
                self._remember(text, row)
                fut = self._futures.pop(text, None)
                if fut is not None and not fut.done():
                    fut.set_result(row)
        finally:
            # Free this task's slot now (its done callback comes later) and start what was
            # queued meanwhile at once: it has waited a whole pass already. Not when cancelled:
            # the loop is shutting down.
            task = asyncio.current_task()
            if task is not None:
                self._running.discard(task)
            if not cancelled:
                self._dispatch(loop)

    def _remember(self, text: str, row: FloatVector) -> None:
        cost = _entry_bytes(text, row)
        if self._cache_size == 0 or cost > self._cache_max_bytes:
            return
        previous = self._cache.pop(text, None)
        if previous is not None:
            self._cache_bytes -= _entry_bytes(text, previous)
        self._cache[text] = row
        self._cache_bytes += cost
        while len(self._cache) > self._cache_size or self._cache_bytes > self._cache_max_bytes:
            old_text, old_row = self._cache.popitem(last=False)
            self._cache_bytes -= _entry_bytes(old_text, old_row)


def _entry_bytes(text: str, row: FloatVector) -> int:
    """What one LRU entry holds: the vector, the text (its key) and the bookkeeping."""
    return int(row.nbytes) + len(text.encode("utf-8")) + 200


def _dim_of(embedder: Embedder) -> int:
    return embedder.dim


def _encode_checked(embedder: Embedder, texts: list[str]) -> FloatMatrix:
    """Runs in the worker thread: the inner encode, its shape and norms made sure of."""
    rows = embedder.encode(texts)
    return normalised(rows, len(texts), embedder.dim)


def _mark_retrieved(fut: asyncio.Future[Any]) -> None:
    """Retrieve a shared future's exception, so that one whose callers all went away is not
    reported as "never retrieved"."""
    if not fut.cancelled():
        fut.exception()
