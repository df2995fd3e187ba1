"""An optional component of the engine: built lazily off the loop, behind a breaker.

The semantic path (embedder + vector store) and the clause splitter load models that
take seconds; a request must neither block the event loop on that nor fail when the
component does. `Guarded` builds the component once in a thread (no deadline: the
first request waits for the load), then runs every call under the component's circuit
breaker and deadline, turning failures into ``None`` that the engine falls through on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, Literal, TypeVar

from semantic_reuse._log import logger
from semantic_reuse.breaker import CircuitBreaker
from semantic_reuse.errors import ComponentDisabledError
from semantic_reuse.metrics import Metrics
from semantic_reuse.redaction import describe_error

C = TypeVar("C")
T = TypeVar("T")


class Guarded(Generic[C]):
    """One component: `instance` if given (the caller owns it), else `build()` on first use."""

    def __init__(
        self,
        name: str,
        *,
        breaker: CircuitBreaker,
        metrics: Metrics,
        instance: C | None = None,
        build: Callable[[], C] | None = None,
        timeout_s: float | None = None,
    ) -> None:
        self.name = name
        self.breaker = breaker
        self.metrics = metrics
        self.timeout_s = timeout_s
        self.owned = instance is None
        self._instance = instance
        self._build = build
        self._building: asyncio.Future[C] | None = None
        self._failing = False  # the last call failed

    @property
    def ready(self) -> C | None:
        """The component if it is built, without building it."""
        return self._instance

    async def get(self) -> C | None:
        """The component, built on first use in a thread; None when it cannot be built."""
        if self._instance is not None:
            return self._instance
        if self._build is None:
            return None
        if self._building is None:
            self._building = asyncio.ensure_future(asyncio.to_thread(self._build))
        try:
            self._instance = await asyncio.shield(self._building)
        except asyncio.CancelledError:
            raise
        except ComponentDisabledError as exc:
            # Off for the life of the process: said once, never built again.
            self._build = self._building = None
            self.metrics.inc("errors_total", component=self.name)
            logger.warning("{} off: {}", self.name, describe_error(exc, limit=600))
            return None
        except Exception as exc:
            self.failed(exc)
            self._building = None  # the breaker decides when a new attempt is made
            return None
        return self._instance

    async def call(
        self,
        fn: Callable[[C], Awaitable[T]],
        *,
        timeout_s: float | Literal["default"] | None = "default",
    ) -> T | None:
        """`fn(component)` under the breaker and the deadline (the component's, unless
        `timeout_s` names another: writes off the request path get a longer one); None if
        skipped or failed."""
        deadline = self.timeout_s if timeout_s == "default" else timeout_s
        if not self.breaker.allow():
            self.metrics.inc("skipped_total", component=self.name)
            return None
        component = await self.get()
        if component is None:
            return None
        try:
            async with asyncio.timeout(deadline):
                result = await fn(component)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failed(exc)
            return None
        self._failing = False
        self.breaker.record_success()
        return result

    def failed(self, exc: BaseException) -> None:
        """Count and report a failure (the breaker logs state changes once each; the traceback
        of the first failure in a row is logged at DEBUG, the next ones in one line)."""
        self.breaker.record_failure(exc)
        self.metrics.inc("errors_total", component=self.name)
        if self._failing:
            logger.debug("{} failed again; falling through: {}", self.name, describe_error(exc))
        else:
            logger.opt(exception=exc).debug("{} failed; falling through", self.name)
        self._failing = True

    async def cancel_build(self) -> None:
        if self._building is not None and not self._building.done():
            self._building.cancel()
