"""A request to reuse against, and its canonical key.

The key (`ReuseRequest.hash_id`) is a 128-bit xxh3 of a canonical JSON document
holding the model, the namespace, the prompt (text, chat messages or token ids)
and the parameters that shape an answer. Canonical means: keys sorted, strings
NFC-normalised, numbers compared by value (``1`` and ``1.0`` are the same
temperature), ``None`` values dropped, containers turned into lists. The result
is the same in every process, run and machine (no ``hash()``, no pickle).

vLLM's ``SamplingParams`` is a msgspec Struct that cannot be hashed and whose
encoding is not canonical; it is read through its public fields
(``__struct_fields__``) without importing vLLM.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeAlias

import xxhash

from semantic_reuse.errors import InvalidRequestError, InvalidTypeError

JSONValue: TypeAlias = str | int | float | bool | list["JSONValue"] | dict[str, "JSONValue"] | None

KEY_VERSION = 1
DEFAULT_NAMESPACE = "default"
#: A text longer than this is context followed by a question: only its trailing question
#: (last paragraph, line or sentence) is compared by meaning; the rest joins the fingerprint.
QUESTION_MAX_CHARS = 500
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|(?<=[。！？])")
_NAMESPACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")

# Sampling fields that never change which answer is right for a prompt: how the
# output is delivered or scheduled, not what it says (vLLM's SamplingParams names).
# Everything else, unknown fields included, shapes the answer.
NON_SHAPING_PARAMS = frozenset(
    {
        "output_kind",
        "stream_interval",
        "skip_clone",
        "output_text_buffer_length",
        "skip_reading_prefix_cache",
        "trace_decode_token_ids",
        "routed_experts_prompt_start",
        "request_id",
    }
)


def validate_namespace(namespace: object, *, argument: str = "namespace") -> str:
    """Return `namespace` if it is a valid tenant name, else raise naming the argument."""
    if not isinstance(namespace, str):
        raise InvalidTypeError(f"{argument} must be a str, got {type(namespace).__name__}")
    if not _NAMESPACE_RE.match(namespace):
        raise InvalidRequestError(
            f"{argument} must be 1-128 characters of letters, digits, '_', '-' or '.', "
            f"starting with a letter or digit; got {namespace!r}"
        )
    return namespace


def canonical(value: object) -> JSONValue:
    """Turn a value into canonical JSON-able data (see the module docstring)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, enum.Enum):
        return canonical(value.name)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return repr(value)
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, Mapping):
        items = {str(k): canonical(v) for k, v in value.items() if v is not None}
        return dict(sorted(items.items()))
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((canonical(v) for v in value), key=_sort_key)
    fields = public_fields(value)
    if fields is not None:
        return canonical(fields)
    raise InvalidTypeError(f"cannot build a cache key from a {type(value).__name__}")


def _sort_key(value: JSONValue) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def public_fields(value: object) -> dict[str, object] | None:
    """The public fields of a msgspec Struct, dataclass or pydantic model, else None."""
    struct_fields = getattr(type(value), "__struct_fields__", None)
    if struct_fields is not None:
        return {name: getattr(value, name) for name in struct_fields if not name.startswith("_")}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: getattr(value, f.name)
            for f in dataclasses.fields(value)
            if not f.name.startswith("_")
        }
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        dumped = model_dump()
        if isinstance(dumped, dict):
            return {k: v for k, v in dumped.items() if not str(k).startswith("_")}
    return None


def answer_shaping_params(params: object) -> dict[str, JSONValue]:
    """The canonical answer-shaping part of `params` (a dict, SamplingParams, dataclass...)."""
    if params is None:
        return {}
    fields = params if isinstance(params, Mapping) else public_fields(params)
    if fields is None:
        raise InvalidTypeError(
            "params must be a mapping, a vLLM SamplingParams, a dataclass or a pydantic model; "
            f"got {type(params).__name__}"
        )
    shaped = canonical({str(k): v for k, v in fields.items() if str(k) not in NON_SHAPING_PARAMS})
    assert isinstance(shaped, dict)
    return shaped


def _canonical_message(message: object, index: int) -> dict[str, JSONValue]:
    if isinstance(message, Mapping):
        data: dict[str, object] = {str(k): v for k, v in message.items()}
    elif hasattr(message, "role") and hasattr(message, "content"):
        data = {"role": message.role, "content": message.content}
    else:
        raise InvalidTypeError(
            f"messages[{index}] must be a mapping with 'role' and 'content', "
            f"got {type(message).__name__}"
        )
    if "role" not in data or "content" not in data:
        raise InvalidRequestError(f"messages[{index}] needs both 'role' and 'content'")
    result = canonical(data)
    assert isinstance(result, dict)
    return result


def _message_text(content: JSONValue) -> str:
    """The text of a message content: a string, or the text parts of a content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""


@dataclass(frozen=True)
class ReuseRequest:
    """One request: exactly one of `prompt`, `messages` or `prompt_token_ids`."""

    prompt: str | None = None
    messages: Sequence[Mapping[str, Any]] | None = None
    prompt_token_ids: Sequence[int] | None = None
    namespace: str = DEFAULT_NAMESPACE
    model: str | None = None
    params: object = None
    question: str | None = None
    """The question inside a templated prompt (the last user message, or the prompt): only it
    is compared by meaning, and the text around it (retrieved context, instructions) must be
    equal for an answer to transfer. None: the whole message is the question, unless it is
    longer than `QUESTION_MAX_CHARS`: then its trailing question (`trailing_question`) is, so
    that a long shared context never makes different questions look alike."""
    _canonical_messages: tuple[dict[str, JSONValue], ...] = field(
        init=False, repr=False, compare=False, default=()
    )
    _params: dict[str, JSONValue] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        given = [x is not None for x in (self.prompt, self.messages, self.prompt_token_ids)]
        if sum(given) != 1:
            raise InvalidRequestError("give exactly one of prompt, messages or prompt_token_ids")
        if self.prompt is not None and not isinstance(self.prompt, str):
            raise InvalidTypeError(f"prompt must be a str, got {type(self.prompt).__name__}")
        if self.messages is not None:
            if isinstance(self.messages, (str, bytes)) or not isinstance(self.messages, Sequence):
                raise InvalidTypeError(
                    "messages must be a sequence of {'role', 'content'} mappings"
                )
            if not self.messages:
                raise InvalidRequestError("messages must not be empty")
            msgs = tuple(_canonical_message(m, i) for i, m in enumerate(self.messages))
            object.__setattr__(self, "_canonical_messages", msgs)
        if self.prompt_token_ids is not None:
            ids = self.prompt_token_ids
            if isinstance(ids, (str, bytes)) or not all(
                isinstance(t, int) and not isinstance(t, bool) for t in ids
            ):
                raise InvalidTypeError("prompt_token_ids must be a sequence of ints")
        validate_namespace(self.namespace)
        if self.model is not None and not isinstance(self.model, str):
            raise InvalidTypeError(f"model must be a str or None, got {type(self.model).__name__}")
        object.__setattr__(self, "_params", answer_shaping_params(self.params))
        if self.question is not None:
            if not isinstance(self.question, str) or not self.question.strip():
                raise InvalidRequestError("question must be a non-empty str or None")
            if self.prompt_token_ids is not None:
                raise InvalidRequestError("question needs a text or chat prompt, not token ids")
            if _normal(self.question) not in self._full_text():
                raise InvalidRequestError(
                    "question must occur in the prompt (its last user message)"
                )
        elif self.prompt_token_ids is None:
            tail = trailing_question(self._full_text())
            if tail is not None:
                object.__setattr__(self, "question", tail)

    def with_text(self, text: str) -> ReuseRequest:
        """The same request asking `text` instead (a clause of a compound question).

        A chat keeps its context: `text` replaces the last user message.
        """
        if self.question is not None:  # the clause takes the question's place in the template
            framed = _replace_last(self._full_text(), _normal(self.question), text.strip())
            if self.messages is None:
                return ReuseRequest(framed, namespace=self.namespace, model=self.model,
                                    params=self.params, question=text)  # fmt: skip
            messages = [dict(m) for m in self.messages]
            last_user = max(i for i, m in enumerate(messages) if m.get("role") == "user")
            messages[last_user] = {"role": "user", "content": framed}
            return ReuseRequest(messages=messages, namespace=self.namespace, model=self.model,
                                params=self.params, question=text)  # fmt: skip
        if self.messages is None:
            return ReuseRequest(
                text, namespace=self.namespace, model=self.model, params=self.params
            )
        messages = [dict(m) for m in self.messages]
        last_user = max(
            (i for i, m in enumerate(messages) if m.get("role") == "user"), default=len(messages)
        )
        messages[last_user : last_user + 1] = [{"role": "user", "content": text}]
        return ReuseRequest(
            messages=messages, namespace=self.namespace, model=self.model, params=self.params
        )

    def _full_text(self) -> str:
        """The prompt, or the last user message's text, normalised (before `question`)."""
        if self.prompt is not None:
            return _normal(self.prompt)
        for message in reversed(self._canonical_messages):
            if message.get("role") == "user":
                return _normal(_message_text(message.get("content")))
        return ""

    @property
    def answer_params(self) -> dict[str, JSONValue]:
        """The canonical answer-shaping parameters."""
        return dict(self._params)

    @cached_property
    def semantic_text(self) -> str:
        """The text compared by meaning: the question, else the prompt or the last user
        message of a chat."""
        if self.question is not None:
            return _normal(self.question)
        if self.prompt is not None:
            return unicodedata.normalize("NFC", self.prompt).strip()
        for message in reversed(self._canonical_messages):
            if message.get("role") == "user":
                return _message_text(message.get("content")).strip()
        return ""

    def _context(self) -> JSONValue:
        """What must be equal for an answer to transfer, apart from the semantic text."""
        if self.messages is None:
            context: JSONValue = None
        else:
            last_user = max(
                (i for i, m in enumerate(self._canonical_messages) if m.get("role") == "user"),
                default=len(self._canonical_messages),
            )
            context = [
                *self._canonical_messages[:last_user],
                *self._canonical_messages[last_user + 1 :],
            ]
        scope: dict[str, JSONValue] = {
            "v": KEY_VERSION,
            "namespace": self.namespace,
            "model": self.model,
            "params": self._params,
            "context": context,
            "tokens": self.prompt_token_ids is not None,
        }
        if self.question is not None:  # the template and its context around the question
            scope["framing"] = _replace_last(self._full_text(), _normal(self.question), "\x00")
        return scope

    @cached_property
    def hash_id(self) -> str:
        """The exact key: equal for equal requests, different if any shaping field differs."""
        document: dict[str, JSONValue] = {"scope": self._context()}
        if self.prompt is not None:
            document["prompt"] = unicodedata.normalize("NFC", self.prompt).strip()
        elif self.prompt_token_ids is not None:
            document["tokens"] = list(self.prompt_token_ids)
        else:
            document["messages"] = list(self._canonical_messages)
        return _digest(document)

    @cached_property
    def fingerprint(self) -> str:
        """The validity scope of a semantic match: namespace, model, params, conversation."""
        return _digest(self._context())


def trailing_question(text: str) -> str | None:
    """The question at the end of a long text (its last paragraph, else line, else sentence,
    the first that is at most `QUESTION_MAX_CHARS`), or None when `text` is short or has no
    such tail (it is then compared whole, if it fits the embedder's window)."""
    text = text.strip()
    if len(text) <= QUESTION_MAX_CHARS:
        return None
    tail = text
    for separator in (re.compile(r"\n\s*\n"), re.compile(r"\n"), _SENTENCE_END):
        pieces = [p.strip() for p in separator.split(tail) if p.strip()]
        if pieces:
            tail = pieces[-1]
        if len(tail) <= QUESTION_MAX_CHARS:
            break
    if tail == text or len(tail) > QUESTION_MAX_CHARS:
        return None
    return tail


def _replace_last(text: str, old: str, new: str) -> str:
    head, found, rest = text.rpartition(old)
    return head + new + rest if found else text


def _normal(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip()


#: The canonical encoding of a key's document (one encoder, built once: not per request).
_CANONICAL = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _digest(document: JSONValue) -> str:
    encoded = _CANONICAL.encode(document)
    return xxhash.xxh3_128_hexdigest(encoded.encode("utf-8"))
