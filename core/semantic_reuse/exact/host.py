"""The host shared-memory tier: `SimilarRequestMemoryManager` behind the tier interface.

Several frontend processes of one user on one host (vLLM API server processes, workers)
attach to the same named segments and share exact hits without a network hop. Entries are
scoped like every other tier's: by namespace and hash id, and `clear(namespace)` removes
one tenant's entries only.

Segments another user could have written are never used: when the segments, their lock
files or the user's secret file fail the owner and mode checks (or an entry fails its MAC),
the tier refuses them: a refused open leaves the tier off for the life of the process, a
refused entry is a miss; either way requests fall through to the next tier, the refusal is
counted (`errors_total{component="shared"}`, `integrity_failures_total{tier="shared"}`) and
logged once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from semantic_reuse._log import logger
from semantic_reuse.answer import CachedAnswer
from semantic_reuse.errors import SharedMemoryRefusedError
from semantic_reuse.exact.shared import SimilarRequestMemoryConfig, SimilarRequestMemoryManager
from semantic_reuse.metrics import Metrics
from semantic_reuse.redaction import describe_error
from semantic_reuse.request import validate_namespace


class HostSharedTier:
    """Exact answers in host shared memory; entries expire `ttl_s` after their creation.

    `manager` is None when the segments were refused (`available` is False): every call is
    then a miss or a no-op."""

    name = "shared"

    def __init__(
        self,
        manager: SimilarRequestMemoryManager | None,
        *,
        ttl_s: float | None = 3600.0,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ) -> None:
        self.manager = manager
        self.ttl_s = ttl_s
        self._clock = clock
        self.metrics = metrics or Metrics()
        self.refused: str | None = None  # why the tier is off, when it is
        self._integrity_logged = False

    @classmethod
    def open(
        cls,
        config: SimilarRequestMemoryConfig | None = None,
        *,
        ttl_s: float | None = 3600.0,
        metrics: Metrics | None = None,
    ) -> HostSharedTier:
        """Create the segments, or attach to the live owner's (a dead owner's are
        recovered). Segments that cannot be trusted or used leave the tier off (logged,
        counted), never fail the caller."""
        tier = cls(None, ttl_s=ttl_s, metrics=metrics)
        try:
            tier.manager = SimilarRequestMemoryManager(config)
        except (SharedMemoryRefusedError, ValueError, OSError) as exc:
            tier._refuse(exc)
        return tier

    @property
    def available(self) -> bool:
        return self.manager is not None

    def get_nowait(self, namespace: str, key: str) -> CachedAnswer | None:
        manager = self.manager
        if manager is None:
            return None
        before = manager.integrity_failures
        try:
            answer = manager.get_tokens(key, namespace=namespace)
        except SharedMemoryRefusedError as exc:
            self._refuse(exc)
            return None
        if answer is None:
            if manager.integrity_failures != before:
                self._integrity_failure(manager.integrity_failures - before)
            return None
        if self.ttl_s is not None and answer.created_at + self.ttl_s <= self._clock():
            self._write(lambda m: m.delete(key, namespace=namespace))
            return None
        return answer

    async def get(self, namespace: str, key: str) -> CachedAnswer | None:
        return self.get_nowait(namespace, key)

    def set_nowait(self, namespace: str, key: str, answer: CachedAnswer) -> bool:
        """Store; False when the answer cannot fit or the tier is off."""
        return self._write(lambda m: m.put_tokens(key, answer, namespace=namespace))

    async def set(
        self, namespace: str, key: str, answer: CachedAnswer, ttl_s: float | None = None
    ) -> bool:
        return self.set_nowait(namespace, key, answer)

    async def delete(self, namespace: str, key: str) -> bool:
        return self.delete_nowait(namespace, key)

    def delete_nowait(self, namespace: str, key: str) -> bool:
        return self._write(lambda m: m.delete(key, namespace=namespace))

    async def clear(self, namespace: str) -> int:
        """Remove one namespace's answers (for every process of the host); how many."""
        validate_namespace(namespace)
        removed = 0

        def clear(manager: SimilarRequestMemoryManager) -> bool:
            nonlocal removed
            removed = manager.clear(namespace)
            return True

        self._write(clear)
        return removed

    async def clear_all(self) -> None:
        """Remove every namespace's answers (for every process of the host)."""

        def clear_all(manager: SimilarRequestMemoryManager) -> bool:
            manager.clear_all()
            return True

        self._write(clear_all)

    async def aclose(self) -> None:
        if self.manager is not None:
            self.manager.close()
            self.manager = None

    def _write(self, call: Callable[[SimilarRequestMemoryManager], bool]) -> bool:
        manager = self.manager
        if manager is None:
            return False
        try:
            return call(manager)
        except SharedMemoryRefusedError as exc:  # a lock file replaced under us
            self._refuse(exc)
            return False

    def _refuse(self, exc: BaseException) -> None:
        self.metrics.inc("errors_total", component=self.name)
        if self.manager is not None:
            self.manager.close()
            self.manager = None
        self.refused = describe_error(exc)
        logger.warning("host shared memory is off for this process: {}", self.refused)

    def _integrity_failure(self, count: int) -> None:
        self.metrics.inc("integrity_failures_total", count, tier=self.name)
        if not self._integrity_logged:
            self._integrity_logged = True
            logger.warning(
                "host shared memory: an entry failed its integrity check (written without "
                "this user's secret, or damaged) and was treated as a miss; further failures "
                "are counted in integrity_failures_total"
            )
