"""Sync wrappers derived from the async API, not a second copy of the logic.

`SyncRunner` owns one event loop in a daemon thread and runs coroutines on it, so a sync
call works the same inside and outside a running event loop (a Jupyter cell, a sync
LangChain callback inside an async app). An object used through the runner keeps all of its
asyncio resources on that one loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from semantic_reuse._log import logger
from semantic_reuse.errors import UsageError

T = TypeVar("T")


class SyncRunner:
    """Runs coroutines to completion on a private loop thread (started on first use)."""

    def __init__(self, name: str = "semantic-reuse-sync") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name=self._name, daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` on the private loop and return its result (or raise its error)."""
        loop = self.loop
        if threading.current_thread() is self._thread:
            coro.close()
            raise UsageError("a sync wrapper was called from its own event loop; await instead")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    def close(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            loop.close()


def close_from_sync(
    aclose: Callable[[], Coroutine[Any, Any, None]],
    loop: asyncio.AbstractEventLoop | None,
    timeout_s: float,
) -> asyncio.Task[None] | None:
    """Run `aclose()` from sync code (`AsyncLLM.shutdown`, `__del__`, atexit) for an object
    whose resources live on `loop` (None: it was never used on one).

    On `loop` itself (a coroutine on it called the sync close) the close is only scheduled:
    the task is returned. From another thread while `loop` runs, it runs there and is waited
    for up to `timeout_s`. When the loop is gone, its tasks went with it: the rest closes on
    a new loop in a thread, waited for up to `timeout_s`."""
    if loop is not None and loop.is_running():
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            return loop.create_task(aclose())
        if not loop.is_closed():
            future = asyncio.run_coroutine_threadsafe(aclose(), loop)
            try:
                future.result(timeout_s)
            except Exception as exc:
                logger.debug("closing failed: {!r}", exc)
            return None

    def close_on_a_new_loop() -> None:
        try:
            asyncio.run(aclose())
        except Exception as exc:
            logger.debug("closing failed: {!r}", exc)

    closer = threading.Thread(target=close_on_a_new_loop, daemon=True)
    closer.start()
    closer.join(timeout_s)
    return None
