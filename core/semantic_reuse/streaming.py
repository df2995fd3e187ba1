"""`ReuseStream`: text deltas as they come, then the `ReuseResult`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Self

from semantic_reuse.errors import UsageError
from semantic_reuse.outcome import ReuseResult


class ReuseStream:
    """Async-iterate for text deltas; afterwards `.result` holds the answer and its info.

    Leaving the loop early (or `aclose()`) cancels the generation that was under way;
    nothing partial is stored.
    """

    def __init__(self, source: AsyncIterator[str | ReuseResult]) -> None:
        self._source = source
        self._result: ReuseResult | None = None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> str:
        if self._result is not None:
            raise StopAsyncIteration
        item = await self._source.__anext__()
        if isinstance(item, ReuseResult):
            self._result = item
            await self.aclose()
            raise StopAsyncIteration
        return item

    @property
    def result(self) -> ReuseResult:
        if self._result is None:
            raise UsageError("the stream has not finished: iterate it to the end first")
        return self._result

    async def aclose(self) -> None:
        aclose = getattr(self._source, "aclose", None)
        if aclose is not None:
            await aclose()
