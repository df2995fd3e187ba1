"""A circuit breaker: skip a failing component at once, try it again later.

A cache component that fails (Redis down, a Qdrant error, a stuck embedder) must
not cost every request a timeout. After `failure_threshold` consecutive failures
the breaker opens and `allow()` answers False without touching the component;
after a back-off (doubling up to a cap) it lets one trial call through
(half-open); a success closes it, a failure opens it again. State changes are
logged once each, not per request.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable

from semantic_reuse._log import logger
from semantic_reuse.config import PerformanceConfig
from semantic_reuse.errors import InvalidRequestError
from semantic_reuse.redaction import describe_error


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Consecutive-failure breaker with exponential back-off; thread- and task-safe."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 3,
        reset_s: float = 1.0,
        max_reset_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise InvalidRequestError("failure_threshold must be >= 1")
        max_reset_s = max(30.0, reset_s) if max_reset_s is None else max_reset_s
        if reset_s <= 0 or max_reset_s < reset_s:
            raise InvalidRequestError("need 0 < reset_s <= max_reset_s")
        self.name = name
        self._threshold = failure_threshold
        self._base_reset = reset_s
        self._max_reset = max_reset_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._reset_after = reset_s
        self._retry_at = 0.0
        self.opened_count = 0
        self.rejected_count = 0

    @classmethod
    def from_config(cls, name: str, performance: PerformanceConfig) -> CircuitBreaker:
        """A breaker with the configured threshold and back-off."""
        return cls(
            name,
            failure_threshold=performance.breaker_failure_threshold,
            reset_s=performance.breaker_reset_s,
            max_reset_s=performance.breaker_max_reset_s,
        )

    @property
    def state(self) -> BreakerState:
        return self._state

    def allow(self) -> bool:
        """May the component be called now? In half-open state, one trial at a time."""
        with self._lock:
            if self._state is BreakerState.CLOSED:
                return True
            now = self._clock()
            if now >= self._retry_at:
                # One trial; another only if this one never reports back within a back-off.
                self._set_state(BreakerState.HALF_OPEN)
                self._retry_at = now + self._reset_after
                return True
            self.rejected_count += 1
            return False

    def record_success(self) -> None:
        with self._lock:
            if self._state is BreakerState.OPEN:
                # A call let through before the breaker opened, ending late: the trial call
                # (half-open) decides recovery, or every late success would close and reopen
                # it (one WARNING each time).
                return
            self._failures = 0
            self._reset_after = self._base_reset
            if self._state is not BreakerState.CLOSED:
                self._set_state(BreakerState.CLOSED)

    def record_failure(self, error: BaseException | None = None) -> None:
        with self._lock:
            self._failures += 1
            if self._state is BreakerState.HALF_OPEN:
                self._reset_after = min(self._reset_after * 2, self._max_reset)
                self._open(error)
            elif self._state is BreakerState.CLOSED and self._failures >= self._threshold:
                self._open(error)

    def _open(self, error: BaseException | None) -> None:
        self._retry_at = self._clock() + self._reset_after
        self.opened_count += 1
        self._set_state(BreakerState.OPEN, error)

    def _set_state(self, state: BreakerState, error: BaseException | None = None) -> None:
        if state is self._state:
            return
        previous, self._state = self._state, state
        if state is BreakerState.OPEN:
            logger.warning(
                "{} unavailable ({}); skipping it for {:.1f}s",
                self.name,
                describe_error(error),
                self._reset_after,
            )
        elif state is BreakerState.CLOSED:
            logger.info("{} recovered", self.name)
        else:
            logger.debug("{} breaker {} -> {}", self.name, previous.value, state.value)
