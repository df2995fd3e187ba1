"""`SearchCoalescer`: concurrent searches of one scope become one vector-store call.

The embedder batches the texts of concurrent requests (`MicroBatchingEmbedder`); their
searches then arrive together and would queue one by one for the store's single worker
thread. Here the searches asked while a store call of the same scope, limit and floor is in
flight wait for it to return and then go together in the next call (one `search_batch`, one
thread hop). A lone search goes at once: no added latency.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from semantic_reuse.semantic.store import ScopeFilter, VectorMatch, VectorStore

FloatVector = npt.NDArray[np.float32]
_Key = tuple[ScopeFilter, int, float | None]


@dataclass
class _Waiting:
    vectors: list[FloatVector] = field(default_factory=list)
    futures: list[tuple[asyncio.Future[list[list[VectorMatch]]], int, int]] = field(
        default_factory=list
    )


class SearchCoalescer:
    """Searches through `store`, coalescing concurrent ones of the same key."""

    def __init__(self, store: VectorStore) -> None:
        self._store = store
        self._waiting: dict[_Key, _Waiting] = {}
        self._running: set[_Key] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        #: Store calls made, and searches they carried (for stats and tests).
        self.calls = 0
        self.searches = 0

    async def search_batch(
        self,
        vectors: Sequence[FloatVector],
        scope: ScopeFilter,
        *,
        limit: int,
        score_threshold: float | None,
    ) -> list[list[VectorMatch]]:
        """`VectorStore.search_batch`, shared with the searches of the same key in flight."""
        key = (scope, limit, score_threshold)
        waiting = self._waiting.setdefault(key, _Waiting())
        start = len(waiting.vectors)
        waiting.vectors.extend(vectors)
        future: asyncio.Future[list[list[VectorMatch]]] = asyncio.get_running_loop().create_future()
        waiting.futures.append((future, start, start + len(vectors)))
        if key not in self._running:
            self._running.add(key)
            task = asyncio.ensure_future(self._drain(key))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # asyncio.wait, unlike awaiting the future, never cancels it when this caller is
        # cancelled: the others share the call.
        await asyncio.wait([future])
        return future.result()

    async def _drain(self, key: _Key) -> None:
        scope, limit, floor = key
        try:
            while (waiting := self._waiting.pop(key, None)) is not None:
                self.calls += 1
                self.searches += len(waiting.vectors)
                try:
                    results = await self._store.search_batch(
                        waiting.vectors, scope, limit=limit, score_threshold=floor
                    )
                except Exception as exc:
                    for future, _, _ in waiting.futures:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                except BaseException:
                    for future, _, _ in waiting.futures:
                        future.cancel()
                    raise
                for future, begin, end in waiting.futures:
                    if not future.done():
                        future.set_result(results[begin:end])
        finally:
            self._running.discard(key)
            leftover = self._waiting.pop(key, None)  # only when this task was cancelled
            for future, _, _ in leftover.futures if leftover else ():
                future.cancel()
