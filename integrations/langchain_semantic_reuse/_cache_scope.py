"""What LangChain hands a cache, read as a reuse request: `scope_of(prompt, llm_string)`.

`prompt` is a string LLM's text, or a chat model's messages as `langchain_core.load.dumps`
JSON (read back without reviving any object); `llm_string` gives the model's identity and the
answer-shaping parameters (`parse_llm_string`). What does not parse is an opaque scope of its
own: exact reuse only, never matched by meaning against anything else.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import xxhash

from semantic_reuse import ReuseRequest
from semantic_reuse.spi import InvalidTypeError, JSONValue, answer_shaping_params

# LangChain message types -> chat roles (ReuseRequest takes the last "user" message as the
# text compared by meaning).
_ROLES: Final = {
    "human": "user",
    "HumanMessageChunk": "user",
    "ai": "assistant",
    "AIMessageChunk": "assistant",
    "system": "system",
    "SystemMessageChunk": "system",
    "tool": "tool",
    "ToolMessageChunk": "tool",
    "function": "function",
    "FunctionMessageChunk": "function",
    "HumanMessage": "user",
    "AIMessage": "assistant",
    "SystemMessage": "system",
    "ToolMessage": "tool",
    "FunctionMessage": "function",
}

# Keys of a parsed llm_string that name the model (the first present wins) and its class.
_MODEL_KEYS: Final = ("model_name", "model")
_TYPE_KEY: Final = "_type"


@dataclass(frozen=True, slots=True)
class CacheScope:
    """What the engine is asked for one (prompt, llm_string) pair."""

    prompt: str | list[dict[str, Any]]
    semantic_text: str
    model: str | None
    params: dict[str, JSONValue] | None
    reuse: bool  # may take a semantic (not only an exact) answer
    chat: bool


def scope_of(prompt: str, llm_string: str) -> CacheScope | None:
    """The request for (prompt, llm_string); None when there is nothing to look up."""
    if not isinstance(prompt, str) or not isinstance(llm_string, str):
        raise InvalidTypeError("prompt and llm_string must be str")
    model, params = parse_llm_string(llm_string)
    try:
        messages = _chat_messages(prompt)
        request = (
            None
            if messages is None
            else ReuseRequest(messages=messages, model=model, params=params)
        )
    except (TypeError, ValueError):
        # LangChain JSON the key cannot read as a chat: the serialized prompt, exact reuse
        # only, in a scope of its own (no plain prompt ever matches it by meaning).
        return CacheScope(prompt, prompt, f"{model}#serialized", params, reuse=False, chat=True)
    if messages is not None and request is not None:
        text = request.semantic_text
        reuse = bool(text) and _text_only(messages)
        return CacheScope(messages, text, model, params, reuse=reuse, chat=True)
    if not prompt.strip():
        return None  # the engine takes no empty prompt; LangChain then just calls the model
    return CacheScope(prompt, prompt.strip(), model, params, reuse=True, chat=False)


def parse_llm_string(llm_string: str) -> tuple[str, dict[str, JSONValue] | None]:
    """(model key, answer-shaping params) of an llm_string.

    LangChain writes `str(sorted(params.items()))`, preceded by `json.dumps(model) + "---"`
    for serializable models. The model key joins the class (`_type`, or the serialized id)
    and the model name (`model_name` or `model`); every other key is a parameter (the
    constructor's, then the call's, which win). A string that does not parse this way
    (non-literal values, anything else) is an opaque scope: its hash is the model key.
    """
    text = llm_string
    init: dict[str, Any] = {}
    kind: str | None = None
    if text.startswith("{"):
        try:
            serialized, end = json.JSONDecoder().raw_decode(text)
        except ValueError:
            return _opaque(llm_string)
        if not isinstance(serialized, dict) or not text[end:].startswith("---"):
            return _opaque(llm_string)
        text = text[end + 3 :]
        ident = serialized.get("id")
        if isinstance(ident, list):
            kind = ".".join(str(part) for part in ident)
        kwargs = serialized.get("kwargs")
        if isinstance(kwargs, dict):
            init = dict(kwargs)
    try:
        call = dict(ast.literal_eval(text))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _opaque(llm_string)
    params = {**init, **call}
    if not all(isinstance(k, str) for k in params):
        return _opaque(llm_string)
    type_name = params.pop(_TYPE_KEY, None)
    if kind is None and type_name is not None:
        kind = str(type_name)
    name = next((params.pop(k) for k in _MODEL_KEYS if isinstance(params.get(k), str)), None)
    if params.get("logprobs") is False:
        del params["logprobs"]  # "no logprobs": the engine's policy reads any value as wanting them
    try:
        shaped = answer_shaping_params(params)
    except (TypeError, ValueError):  # not data, NaN, nested too deep, not valid Unicode
        return _opaque(llm_string)
    model = "/".join(part for part in (kind, name) if part) or None
    return (model or _opaque(llm_string)[0]), shaped


def _opaque(llm_string: str) -> tuple[str, None]:
    digest = xxhash.xxh3_128_hexdigest(llm_string.encode("utf-8", "surrogatepass"))
    return f"llm-string:{digest}", None


def _chat_messages(prompt: str) -> list[dict[str, Any]] | None:
    """The chat of a prompt that is `dumps(messages)`, as role/content dicts; else None.

    Read from the JSON rather than revived: LangChain's own cache hits carry messages that
    do not validate again (`usage_metadata={"total_cost": 0}`), and nothing is built.
    Raises `_NotAChat` for LangChain JSON that is not all messages.
    """
    if not prompt.startswith("["):
        return None
    try:
        data = json.loads(prompt)
    except (ValueError, RecursionError):
        return None
    if not (
        isinstance(data, list)
        and data
        and all(isinstance(d, dict) and d.get("lc") == 1 for d in data)
    ):
        return None
    return [_message(item) for item in data]


class _NotAChat(ValueError):
    """LangChain JSON that is not a list of serialized messages."""


def _message(item: Mapping[str, Any]) -> dict[str, Any]:
    """What the model sees of a serialized message: role, content, name, tool calls and ids
    (not its id, response metadata or usage, which differ between a fresh answer and a
    cached one)."""
    ident, kwargs = item.get("id"), item.get("kwargs")
    if not (
        item.get("type") == "constructor"
        and isinstance(ident, list)
        and ident
        and str(ident[-1]).endswith(("Message", "MessageChunk"))
        and isinstance(kwargs, dict)
    ):
        raise _NotAChat(f"not a serialized message: {str(ident)[:80]}")
    kind = kwargs.get("type") or str(ident[-1])
    role = kwargs.get("role") if kind in ("chat", "ChatMessage", "ChatMessageChunk") else None
    data: dict[str, Any] = {
        "role": role if isinstance(role, str) else _ROLES.get(str(kind), str(kind)),
        "content": kwargs.get("content", ""),
    }
    if kwargs.get("name") is not None:
        data["name"] = kwargs["name"]
    tool_calls = kwargs.get("tool_calls")
    if isinstance(tool_calls, list) and tool_calls:
        data["tool_calls"] = [
            {"name": c.get("name"), "args": c.get("args"), "id": c.get("id")}
            if isinstance(c, dict)
            else c
            for c in tool_calls
        ]
    if kwargs.get("tool_call_id") is not None:
        data["tool_call_id"] = kwargs["tool_call_id"]
    if kwargs.get("additional_kwargs"):
        data["additional_kwargs"] = kwargs["additional_kwargs"]
    return data


def _text_only(messages: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the last user message is only text (its other parts are not compared)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            return isinstance(content, str) or all(
                isinstance(p, str) or (isinstance(p, Mapping) and p.get("type") == "text")
                for p in content or ()
            )
    return False
