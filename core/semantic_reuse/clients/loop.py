"""`HomeLoop`: the one event loop where a client's asyncio resources live.

vLLM's `AsyncLLM`, an `openai.AsyncOpenAI` client and the reuse engine's Redis pool all bind
to the event loop that first used them. Framework model classes are called from anywhere: a
sync `invoke` in a script or a worker thread, an async `ainvoke` in some application's loop,
a Jupyter cell. `HomeLoop` runs every coroutine of a client on its home loop and hands the
result back to whoever asked, so each caller gets what it expects:

- called on the home loop itself: awaited directly;
- the home loop runs in another thread: submitted there (awaited or waited for);
- the home loop is idle and the calling thread runs no loop (a sync call between two
  `asyncio.run`-style sessions that reuse one loop): driven with `run_until_complete`.

Anything else (a sync call on the home loop's own thread, an async call from another loop
while the home loop is idle) cannot complete and raises a `RuntimeError` that says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

from semantic_reuse.errors import ConfigurationError, UsageError
from semantic_reuse.sync import SyncRunner

T = TypeVar("T")


class HomeLoop:
    """Runs coroutines and async iterators on one home loop, from any thread or loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, *,
                 runner: SyncRunner | None = None) -> None:  # fmt: skip
        if loop is not None and runner is not None:
            raise ConfigurationError("give either loop or runner, not both")
        self._loop = loop
        self._runner = runner if runner is not None or loop is not None else SyncRunner()
        self._owns_runner = runner is None and loop is None
        # Held while a sync caller drives the idle home loop: one driver at a time, and no
        # one hands work to a loop that only runs until its driver's call returns.
        self._driving = threading.Lock()

    @classmethod
    def private(cls) -> HomeLoop:
        """A loop thread of its own (started on first use)."""
        return cls()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is not None:
            return self._loop
        assert self._runner is not None
        return self._runner.loop

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await `coro` on the home loop from a coroutine on any loop."""
        home = self.loop
        if asyncio.get_running_loop() is home:
            return await coro
        if home.is_running():
            return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, home))
        coro.close()
        raise UsageError(
            "the event loop this model's engine lives on is not running, and an async call "
            "from another loop cannot drive it: call it from that loop, or from sync code"
        )

    def run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the home loop from sync code and return its result."""
        home = self.loop
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if current is home:
            coro.close()
            raise UsageError(
                "a sync method was called on the event loop its engine lives on, where it "
                "would wait for itself: use the async method (ainvoke, acomplete, ...)"
            )
        with self._driving:
            if home.is_running():  # run by its owner (drivers hold the lock): hand it over
                future = asyncio.run_coroutine_threadsafe(coro, home)
            elif current is None and not home.is_closed():
                return home.run_until_complete(coro)
            else:
                coro.close()
                raise UsageError("the event loop this model's engine lives on is closed or busy")
        return future.result()

    async def iterate(self, source: AsyncIterator[T]) -> AsyncIterator[T]:
        """`source`'s items, `source` itself run by one task on the home loop."""
        task, queue = await self.run(_start(source))
        try:
            while True:
                kind, value = await self.run(queue.get())
                if kind == "end":
                    return
                if kind == "error":
                    raise value
                yield value
        finally:
            await self.run(_stop(task))

    def iterate_sync(self, source: AsyncIterator[T]) -> Iterator[T]:
        """`iterate` for sync code."""
        task, queue = self.run_sync(_start(source))
        try:
            while True:
                kind, value = self.run_sync(queue.get())
                if kind == "end":
                    return
                if kind == "error":
                    raise value
                yield value
        finally:
            self.run_sync(_stop(task))

    def close(self) -> None:
        """Stop the private loop thread, if this home loop owns one."""
        if self._owns_runner and self._runner is not None:
            self._runner.close()


_Queue = asyncio.Queue[tuple[str, Any]]


async def _start(source: AsyncIterator[Any]) -> tuple[asyncio.Task[None], _Queue]:
    """A task on the running (home) loop that pumps `source` into a one-slot queue.

    One task runs the whole iterator, start to end: stepping it from a new task per item
    would split its context (context variables set in one step could not be reset in the
    next) and its cancellation scope.
    """
    queue: _Queue = asyncio.Queue(maxsize=1)

    async def pump() -> None:
        try:
            async for item in source:
                await queue.put(("item", item))
            await queue.put(("end", None))
        except Exception as exc:  # handed to the consumer, raised there
            await queue.put(("error", exc))
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()  # when the consumer left early: the iterator's cleanup runs

    return asyncio.get_running_loop().create_task(pump()), queue


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
