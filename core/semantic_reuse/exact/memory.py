"""L1: a per-process LRU of answers with an entry budget, a byte budget and TTLs."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from semantic_reuse.answer import CachedAnswer
from semantic_reuse.errors import InvalidRequestError
from semantic_reuse.request import validate_namespace


@dataclass(frozen=True, slots=True)
class _Entry:
    answer: CachedAnswer
    nbytes: int
    expires_at: float | None


class MemoryTier:
    """LRU keyed by (namespace, hash id); O(1) get/put.

    Every operation runs without an ``await`` inside, so it is atomic for asyncio
    tasks; a lock makes it safe for threads too (the sync wrappers run in threads).
    """

    name = "memory"

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        ttl_s: float | None = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise InvalidRequestError("max_entries must be >= 1")
        if max_bytes < 1:
            raise InvalidRequestError("max_bytes must be >= 1")
        if ttl_s is not None and ttl_s <= 0:
            raise InvalidRequestError("ttl_s must be > 0 or None")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.evictions = 0
        self.expirations = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return self._bytes

    async def get(self, namespace: str, key: str) -> CachedAnswer | None:
        return self.get_nowait(namespace, key)

    def get_nowait(self, namespace: str, key: str) -> CachedAnswer | None:
        with self._lock:
            entry = self._entries.get((namespace, key))
            if entry is None:
                return None
            if entry.expires_at is not None and entry.expires_at <= self._clock():
                self._remove((namespace, key))
                self.expirations += 1
                return None
            self._entries.move_to_end((namespace, key))
            return entry.answer

    async def set(
        self, namespace: str, key: str, answer: CachedAnswer, ttl_s: float | None = None
    ) -> bool:
        return self.set_nowait(namespace, key, answer, ttl_s)

    def set_nowait(
        self, namespace: str, key: str, answer: CachedAnswer, ttl_s: float | None = None
    ) -> bool:
        """Store; False when the answer alone exceeds the byte budget."""
        size = answer.nbytes
        if size > self.max_bytes:
            return False
        ttl = self.ttl_s if ttl_s is None else ttl_s
        expires = None if ttl is None else self._clock() + ttl
        with self._lock:
            self._remove((namespace, key))
            self._entries[(namespace, key)] = _Entry(answer, size, expires)
            self._bytes += size
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                oldest = next(iter(self._entries))
                self._remove(oldest)
                self.evictions += 1
        return True

    async def delete(self, namespace: str, key: str) -> bool:
        return self.delete_nowait(namespace, key)

    def delete_nowait(self, namespace: str, key: str) -> bool:
        with self._lock:
            return self._remove((namespace, key))

    async def clear(self, namespace: str) -> int:
        """Remove one namespace's answers; how many. A falsy namespace is refused (every
        namespace's answers: `clear_all`)."""
        validate_namespace(namespace)
        with self._lock:
            doomed = [k for k in self._entries if k[0] == namespace]
            for k in doomed:
                self._remove(k)
            return len(doomed)

    async def clear_all(self) -> None:
        """Remove every namespace's answers."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    async def drop_created_before(self, timestamp: float) -> int:
        """Remove answers created before `timestamp` (wall clock, `CachedAnswer.created_at`)."""
        return self.drop_where(lambda _ns, answer: answer.created_at < timestamp)

    def drop_where(self, doomed: Callable[[str, CachedAnswer], bool]) -> int:
        """Remove the answers for which `doomed(namespace, answer)` holds; how many."""
        with self._lock:
            keys = [k for k, e in self._entries.items() if doomed(k[0], e.answer)]
            for k in keys:
                self._remove(k)
            return len(keys)

    async def aclose(self) -> None:
        await self.clear_all()

    def _remove(self, key: tuple[str, str]) -> bool:
        entry = self._entries.pop(key, None)
        if entry is None:
            return False
        self._bytes -= entry.nbytes
        return True
