"""Single-flight: identical requests in flight at once cause one generation.

The first request of a key leads; the others await its result. A waiter that is
cancelled leaves the leader and the other waiters alone (the wait is shielded); when
the leader fails or is cancelled, its waiters get None and go on by themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """The flights in progress, by key; one per engine, bound to its event loop."""

    def __init__(self) -> None:
        self._flights: dict[str, asyncio.Future[T]] = {}

    def __contains__(self, key: str) -> bool:
        return key in self._flights

    async def follow(self, key: str) -> T | None:
        """The result of the flight under `key`; None if there is none or it failed."""
        flight = self._flights.get(key)
        if flight is None:
            return None
        try:
            return await asyncio.shield(flight)
        except (asyncio.CancelledError, Exception):
            if not flight.done():
                raise  # this waiter was cancelled; the leader goes on
            return None

    @contextmanager
    def lead(self, key: str) -> Iterator[asyncio.Future[T]]:
        """Lead the flight of `key`: set the yielded future's result when done. Leaving
        without a result (an error, a cancellation) releases the waiters."""
        flight: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._flights[key] = flight
        try:
            yield flight
        finally:
            if not flight.done():
                flight.cancel()
            if self._flights.get(key) is flight:
                del self._flights[key]
