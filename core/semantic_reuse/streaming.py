"""`ReuseStream`: text deltas as they come, then the `ReuseResult`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Self

from semantic_reuse.backend import Delta
from semantic_reuse.errors import UsageError
from semantic_reuse.outcome import ReuseResult
from semantic_reuse.pipeline import Decided, PipelineEvent
from semantic_reuse.planning import ReuseDecision


class ReuseStream:
    """Async-iterate for text deltas; afterwards `.result` holds the answer and its info.

    A reused answer comes as one delta. Leaving the loop early (or `aclose()`) cancels the
    generation that was under way; nothing partial is stored.
    """

    def __init__(self, events: AsyncIterator[PipelineEvent]) -> None:
        self._events = events
        self._decision: ReuseDecision | None = None
        self._result: ReuseResult | None = None
        self._streamed = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> str:
        while self._result is None:
            event = await self._events.__anext__()
            if isinstance(event, Decided):
                self._decision = event.decision
            elif isinstance(event, Delta):
                self._streamed = True
                if event.text:
                    return event.text
            else:
                self._result = event
                await self.aclose()
                if not self._streamed and event.text:
                    return event.text  # a reused answer, whole
        raise StopAsyncIteration

    @property
    def decision(self) -> ReuseDecision | None:
        """What the lookups found, once the stream has started (None before)."""
        return self._decision

    @property
    def result(self) -> ReuseResult:
        if self._result is None:
            raise UsageError("the stream has not finished: iterate it to the end first")
        return self._result

    async def aclose(self) -> None:
        aclose = getattr(self._events, "aclose", None)
        if aclose is not None:
            await aclose()
