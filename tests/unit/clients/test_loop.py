"""HomeLoop: a client's coroutines and streams run on its home loop, called from anywhere."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from semantic_reuse.spi import HomeLoop

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


@pytest.fixture
def home() -> Iterator[HomeLoop]:
    loop = HomeLoop.private()
    yield loop
    loop.close()


async def where() -> str:
    return threading.current_thread().name


class Source:
    """An async iterator that sets a context variable around its items (as a logger's
    contextualize() does) and records whether its cleanup ran, and on which thread."""

    def __init__(self, items: int, fail_at: int | None = None) -> None:
        self.items, self.fail_at = items, fail_at
        self.closed_on: str | None = None

    async def __call__(self) -> AsyncIterator[str]:
        token = REQUEST_ID.set("r1")
        try:
            for i in range(self.items):
                if i == self.fail_at:
                    raise ValueError("backend failed")
                await asyncio.sleep(0)
                yield f"{i}:{REQUEST_ID.get()}"
        finally:
            REQUEST_ID.reset(token)  # fails if steps ran in different contexts
            self.closed_on = threading.current_thread().name


def test_sync_calls_run_on_the_private_loop_thread(home: HomeLoop) -> None:
    assert home.run_sync(where()) == "semantic-reuse-sync"
    source = Source(3)
    assert list(home.iterate_sync(source())) == ["0:r1", "1:r1", "2:r1"]
    assert source.closed_on == "semantic-reuse-sync"


def test_sync_call_inside_a_running_loop_works(home: HomeLoop) -> None:
    async def notebook_cell() -> list[str]:
        return list(home.iterate_sync(Source(2)()))  # blocking, as a sync API would

    assert asyncio.run(notebook_cell()) == ["0:r1", "1:r1"]


async def test_async_calls_from_another_loop_and_early_exit(home: HomeLoop) -> None:
    assert await home.run(where()) == "semantic-reuse-sync"
    source = Source(10)
    stream = home.iterate(source())
    assert [await anext(stream), await anext(stream)] == ["0:r1", "1:r1"]
    await stream.aclose()  # type: ignore[attr-defined]
    assert source.closed_on == "semantic-reuse-sync"


async def test_errors_of_the_source_reach_the_caller(home: HomeLoop) -> None:
    items: list[str] = []

    async def consume() -> None:
        async for item in home.iterate(Source(5, fail_at=2)()):
            items.append(item)

    with pytest.raises(ValueError, match="backend failed"):
        await consume()
    assert items == ["0:r1", "1:r1"]
    with pytest.raises(ValueError, match="backend failed"):
        list(home.iterate_sync(Source(5, fail_at=0)()))


async def test_the_current_loop_as_home() -> None:
    home = HomeLoop(asyncio.get_running_loop())
    assert await home.run(where()) == threading.current_thread().name
    assert [x async for x in home.iterate(Source(2)())] == ["0:r1", "1:r1"]
    with pytest.raises(RuntimeError, match="use the async method"):
        home.run_sync(where())  # would wait for itself


def test_an_idle_home_loop_is_driven_by_a_sync_caller() -> None:
    loop = asyncio.new_event_loop()
    try:
        home = HomeLoop(loop)
        assert home.run_sync(where()) == threading.current_thread().name
        assert list(home.iterate_sync(Source(2)())) == ["0:r1", "1:r1"]

        async def from_another_loop() -> None:
            with pytest.raises(RuntimeError, match="not running"):
                await home.run(where())

        asyncio.run(from_another_loop())
    finally:
        loop.close()


def test_loop_and_runner_are_exclusive() -> None:
    from semantic_reuse.sync import SyncRunner

    loop = asyncio.new_event_loop()
    with pytest.raises(ValueError, match="either loop or runner"):
        HomeLoop(loop, runner=SyncRunner())
    loop.close()


def test_many_threads_share_an_idle_home_loop() -> None:
    """LangChain's sync batch calls from a thread pool while no one runs the home loop:
    the callers take turns driving it, and none waits on a loop that stopped."""
    loop = asyncio.new_event_loop()
    try:
        home = HomeLoop(loop)

        async def work(i: int) -> int:
            await asyncio.sleep(0.001)
            return i

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda i: home.run_sync(work(i)), range(200)))
            streams = list(pool.map(lambda _: list(home.iterate_sync(Source(3)())), range(16)))
        assert results == list(range(200))
        assert streams == [["0:r1", "1:r1", "2:r1"]] * 16

        # A long call arriving while a short one drives the loop: it must not be handed to
        # a loop that stops when the short one returns. The short call's 0.1 s is the window
        # in which the long one arrives (a wider window only makes the check stricter).
        driving = threading.Event()

        async def slow(seconds: float) -> float:
            driving.set()
            await asyncio.sleep(seconds)
            return seconds

        with ThreadPoolExecutor(2) as pool:
            short = pool.submit(home.run_sync, slow(0.1))
            assert driving.wait(timeout=30)  # the short call drives the loop now
            long = pool.submit(home.run_sync, slow(0.3))
            assert short.result(timeout=30) == 0.1
            assert long.result(timeout=30) == 0.3
    finally:
        loop.close()
