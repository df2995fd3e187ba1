"""``EdgeWorker``: the one thread that touches an Edge store's shard.

Edge's API is synchronous and holds the GIL, so every call of an
:class:`~semantic_reuse.semantic.edge_store.EdgeStore` runs on one dedicated thread (which also
serialises them), in the order they came. Long jobs (copying the points of an optimize, merging
private folders) run as generators, one ``next()`` per job, so that the calls queued meanwhile
get their turn in between.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from semantic_reuse._log import logger
from semantic_reuse.errors import ComponentUnavailableError
from semantic_reuse.redaction import describe_error

__all__ = ["EdgeWorker"]

P = ParamSpec("P")
T = TypeVar("T")


class EdgeWorker:
    """One worker thread; ``where`` names the store in log lines."""

    def __init__(self, where: Callable[[], object]) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="semantic-reuse-edge")
        self._where = where
        self._steps: set[Generator[Any, None, None]] = set()

    def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """``fn`` queued on the worker (RuntimeError once the worker is shut down)."""
        return self._executor.submit(lambda: _no_panic(fn, *args, **kwargs))

    def submit(self, fn: Callable[[], object]) -> None:
        """``fn`` queued on the worker; nothing when the worker is shutting down."""
        with contextlib.suppress(RuntimeError):
            self._executor.submit(_no_panic, fn)

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """A call on the worker; cancelling the caller takes a call still queued off the queue."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: _no_panic(fn, *args, **kwargs))

    async def write(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """A write on the worker: it runs in its turn even if the caller stops waiting."""
        future = asyncio.wrap_future(self._executor.submit(lambda: _no_panic(fn, *args, **kwargs)))
        future.add_done_callback(_retrieve)
        return await asyncio.shield(future)

    def steps(self, steps: Generator[Any, None, None], what: str) -> None:
        """Run ``steps`` one ``next()`` per job, letting the calls queued meanwhile in; an error
        ends them with one WARNING line naming ``what``."""
        self._steps.add(steps)

        def step() -> None:
            if steps not in self._steps:
                return
            try:
                next(steps)
            except StopIteration:
                self._steps.discard(steps)
                return
            except Exception as exc:
                self._steps.discard(steps)
                logger.warning(
                    "Edge store {}: {} failed: {}", self._where(), what, describe_error(exc)
                )
                return
            self.submit(step)

        self.submit(step)

    def stop_steps(self) -> None:
        """Close every generator still running (on the worker, before the shard closes)."""
        for steps in list(self._steps):
            self._steps.discard(steps)
            steps.close()

    def shutdown(self) -> None:
        """Refuse new jobs; the queued ones still run."""
        self._executor.shutdown(wait=False)


def _no_panic(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(...)``, with a panic of Edge's Rust code (pyo3's PanicException, a BaseException
    that ``except Exception`` lets through: a truncated storage file panics the load) raised
    as the ComponentUnavailableError every caller falls through on."""
    try:
        return fn(*args, **kwargs)
    except BaseException as exc:
        if type(exc).__name__ != "PanicException":
            raise
        raise ComponentUnavailableError(f"Qdrant Edge failed: {describe_error(exc)}") from exc


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a write's error as seen when nobody waits for it any more."""
    if not future.cancelled():
        future.exception()
