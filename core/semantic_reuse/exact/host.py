"""The host shared-memory tier: `SimilarRequestMemoryManager` behind the tier interface.

Several frontend processes on one host (vLLM API server processes, workers) attach to the
same named segments and share exact hits without a network hop. A hash id already holds
the namespace, model and params, so entries are keyed by it alone; clearing a namespace
clears the whole segment (the other tiers keep their copies, nothing is served wrongly).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from semantic_reuse.answer import CachedAnswer
from semantic_reuse.exact.shared import SimilarRequestMemoryConfig, SimilarRequestMemoryManager


class HostSharedTier:
    """Exact answers in host shared memory; entries expire `ttl_s` after their creation."""

    name = "shared"

    def __init__(
        self,
        manager: SimilarRequestMemoryManager,
        *,
        ttl_s: float | None = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.manager = manager
        self.ttl_s = ttl_s
        self._clock = clock

    @classmethod
    def open(
        cls, config: SimilarRequestMemoryConfig | None = None, *, ttl_s: float | None = 3600.0
    ) -> HostSharedTier:
        """Create the segments, or attach to the live owner's (a dead owner's are recovered)."""
        return cls(SimilarRequestMemoryManager(config), ttl_s=ttl_s)

    def get_nowait(self, namespace: str, key: str) -> CachedAnswer | None:
        answer = self.manager.get_tokens(key)
        if answer is None:
            return None
        if self.ttl_s is not None and answer.created_at + self.ttl_s <= self._clock():
            self.manager.delete(key)
            return None
        return answer

    async def get(self, namespace: str, key: str) -> CachedAnswer | None:
        return self.get_nowait(namespace, key)

    async def set(
        self, namespace: str, key: str, answer: CachedAnswer, ttl_s: float | None = None
    ) -> bool:
        return self.manager.put_tokens(key, answer)

    async def delete(self, namespace: str, key: str) -> bool:
        return self.manager.delete(key)

    async def clear(self, namespace: str | None = None) -> int:
        self.manager.clear()
        return -1

    async def aclose(self) -> None:
        self.manager.close()
