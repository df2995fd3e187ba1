"""LangChain messages as the role/content dicts a `ReuseClient` takes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from semantic_reuse.spi import InvalidRequestError, InvalidTypeError

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


def to_chat(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """LangChain messages as role/content dicts (text only: a small local model reads
    nothing else; other content parts raise ValueError). An AI message's tool calls and a
    tool message's call id are kept, in the Chat Completions API's shape: they are part of
    the conversation an answer depends on."""
    chat: list[dict[str, Any]] = []
    for message in messages:
        if not isinstance(message, BaseMessage):
            raise InvalidTypeError(
                f"messages must be LangChain messages, got {type(message).__name__}"
            )
        role = getattr(message, "role", None) if message.type == "chat" else None
        role = role or _ROLES.get(message.type, message.type)
        data: dict[str, Any] = {"role": role, "content": _text(message)}
        if message.name:
            data["name"] = message.name
        if isinstance(message, AIMessage) and message.tool_calls:
            data["tool_calls"] = [
                {
                    "id": call.get("id") or "",
                    "type": "function",
                    "function": {"name": call["name"], "arguments": json.dumps(call["args"])},
                }
                for call in message.tool_calls
            ]
        if isinstance(message, ToolMessage):
            data["tool_call_id"] = message.tool_call_id
        chat.append(data)
    return chat


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for part in content:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict) and part.get("type") == "text":
            text = part.get("text", "")
            if not isinstance(text, str):
                raise InvalidTypeError(
                    f"a text part's text must be a str, got {type(text).__name__}"
                )
            parts.append(text)
        elif isinstance(part, dict) and part.get("type") in ("tool_use", "reasoning", "thinking"):
            continue  # the model's own bookkeeping from an earlier turn
        else:
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise InvalidRequestError(
                f"message content of type {kind!r} is not supported (text only)"
            )
    return "".join(parts)
