"""Tool calls of a streamed chat answer: put together from the stream's deltas, stored in the
answer's metadata, and read back from a reused answer.

The Chat Completions API streams a tool call in pieces: the first delta of each call (by
``index``) carries its id and function name, the next ones append to its JSON arguments.
`ToolCallAssembler` joins them; the result is stored as ``metadata["tool_calls"]`` of the
`CachedAnswer` (JSON data, never pickled), in the API's own shape, so that a reused answer
gives back the calls the model made.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Final

from semantic_reuse.answer import CachedAnswer

#: The key of `CachedAnswer.metadata` that holds an answer's tool calls.
TOOL_CALLS: Final = "tool_calls"


class ToolCallAssembler:
    """Joins the tool-call deltas of one streamed choice."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, str]] = {}

    def add(self, deltas: Iterable[Any] | None) -> None:
        """One chunk's ``choice.delta.tool_calls`` (SDK objects or dicts; None: no call)."""
        for delta in deltas or ():
            index = int(_get(delta, "index") or 0)
            call = self._calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
            call["id"] = call["id"] or str(_get(delta, "id") or "")
            function = _get(delta, "function")
            if function is not None:
                call["name"] += str(_get(function, "name") or "")
                call["arguments"] += str(_get(function, "arguments") or "")

    def __bool__(self) -> bool:
        return bool(self._calls)

    def calls(self) -> list[dict[str, Any]]:
        """The calls, in the API's shape; a call the endpoint gave no id gets one."""
        return [
            {
                "id": call["id"] or f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {"name": call["name"], "arguments": call["arguments"]},
            }
            for _, call in sorted(self._calls.items())
        ]


def tool_calls_of(answer: CachedAnswer) -> tuple[Mapping[str, Any], ...]:
    """The tool calls stored with `answer` (none when its metadata holds none or garbage)."""
    calls = answer.metadata.get(TOOL_CALLS)
    if not isinstance(calls, list):
        return ()
    valid: list[Mapping[str, Any]] = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(call, dict) and isinstance(function, dict) and "name" in function:
            valid.append(call)
    return tuple(valid)


def _get(value: Any, name: str) -> Any:
    return value.get(name) if isinstance(value, Mapping) else getattr(value, name, None)
