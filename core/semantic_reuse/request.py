"""A request to reuse against, and its canonical key.

The key (`ReuseRequest.hash_id`) is a 128-bit xxh3 of a canonical JSON document
holding the model, the namespace, the prompt (text, chat messages or token ids)
and the parameters that shape an answer (`semantic_reuse.canonical`). The result
is the same in every process, run and machine (no ``hash()``, no pickle).

vLLM's ``SamplingParams`` is a msgspec Struct that cannot be hashed and whose
encoding is not canonical; it is read through its public fields
(``__struct_fields__``) without importing vLLM.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import xxhash

from semantic_reuse.canonical import NON_SHAPING_PARAMS as NON_SHAPING_PARAMS  # re-exported
from semantic_reuse.canonical import JSONValue as JSONValue
from semantic_reuse.canonical import answer_shaping_params as answer_shaping_params
from semantic_reuse.canonical import canonical as canonical
from semantic_reuse.canonical import canonical_argument, check_text, data_chars, structured
from semantic_reuse.canonical import public_fields as public_fields
from semantic_reuse.errors import InvalidRequestError, InvalidTypeError, shown

KEY_VERSION = 1
DEFAULT_NAMESPACE = "default"
#: A text longer than this is context followed by a question: only its trailing question
#: (last paragraph, line or sentence) is compared by meaning; the rest joins the fingerprint.
QUESTION_MAX_CHARS = 500
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|(?<=[。！？])")
_PARAGRAPH_END = re.compile(r"\n\s*\n")
_LINE_END = re.compile(r"\n")
#: Each separator of `trailing_question`, and the characters one of its matches holds.
_SEPARATORS = ((_PARAGRAPH_END, "\n"), (_LINE_END, "\n"), (_SENTENCE_END, ".!?。！？"))
#: How much of a long text's end `trailing_question` splits (see `_last_piece`).
_TAIL_WINDOW_CHARS = 4 * QUESTION_MAX_CHARS
_NAMESPACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
#: A model name longer than this is refused (it is stored with every vector record).
MAX_MODEL_CHARS = 4096
#: Token ids are non-negative and fit 63 bits.
_MAX_TOKEN_ID = 2**63 - 1


def validate_namespace(namespace: object, *, argument: str = "namespace") -> str:
    """Return `namespace` if it is a valid tenant name, else raise naming the argument."""
    if not isinstance(namespace, str):
        raise InvalidTypeError(f"{argument} must be a str, got {type(namespace).__name__}")
    if not _NAMESPACE_RE.match(namespace):
        raise InvalidRequestError(
            f"{argument} must be 1-128 characters of letters, digits, '_', '-' or '.', "
            f"starting with a letter or digit; got {shown(namespace)}"
        )
    return namespace


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
    result = canonical_argument(data, f"messages[{index}]")
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
        if self.prompt is not None:
            if not isinstance(self.prompt, str):
                raise InvalidTypeError(f"prompt must be a str, got {type(self.prompt).__name__}")
            check_text(self.prompt, "prompt")
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
            if (
                isinstance(ids, (str, bytes))
                or not isinstance(ids, Sequence)
                or not all(isinstance(t, int) and not isinstance(t, bool) for t in ids)
            ):
                raise InvalidTypeError("prompt_token_ids must be a sequence of ints")
            if not ids:
                raise InvalidRequestError("prompt_token_ids must not be empty")
            if not all(0 <= t <= _MAX_TOKEN_ID for t in ids):
                raise InvalidRequestError("prompt_token_ids must be ints in [0, 2**63)")
        validate_namespace(self.namespace)
        if self.model is not None:
            if not isinstance(self.model, str):
                raise InvalidTypeError(
                    f"model must be a str or None, got {type(self.model).__name__}"
                )
            if len(check_text(self.model, "model")) > MAX_MODEL_CHARS:
                raise InvalidRequestError(f"model must be at most {MAX_MODEL_CHARS} characters")
        object.__setattr__(self, "_params", answer_shaping_params(self.params))
        if self.question is not None:
            if not isinstance(self.question, str) or not self.question.strip():
                raise InvalidRequestError("question must be a non-empty str or None")
            check_text(self.question, "question")
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

    @cached_property
    def prompt_chars(self) -> int:
        """The size of the prompt as the limits count it: a text's characters, the
        characters of every string in a chat's messages, or the number of token ids."""
        if self.prompt is not None:
            return len(self.prompt)
        if self.prompt_token_ids is not None:
            return len(self.prompt_token_ids)
        return sum(data_chars(m) for m in self._canonical_messages)

    @cached_property
    def params_chars(self) -> int:
        """The size of the answer-shaping parameters as the limits count it."""
        return data_chars(self._params)

    @property
    def structured(self) -> bool:
        """Whether tools, a tool choice or an output format are among its params: such a
        request is never split into clauses (a clause would be generated without them)."""
        return structured(self._params)

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
    for separator, marks in _SEPARATORS:
        tail = _last_piece(separator, marks, tail) or tail
        if len(tail) <= QUESTION_MAX_CHARS:
            break
    if tail == text or len(tail) > QUESTION_MAX_CHARS:
        return None
    return tail


def _last_piece(separator: re.Pattern[str], marks: str, text: str) -> str | None:
    """The last non-blank piece of `text` split by `separator`, stripped (None: none).

    Only the end of a long text is split: a piece that follows a separator inside that
    window is the same piece in the whole text (the separators match whitespace runs and
    the characters before them, which the window holds); the window's first piece may be
    cut, so when it is the last non-blank one the whole text is split, unless the text
    before the window holds none of the characters a separator starts with (`marks`). A
    2 MB prompt thus costs microseconds, not a list of 700,000 pieces."""
    window = text[-_TAIL_WINDOW_CHARS:]
    pieces = [p.strip() for p in separator.split(window)]
    last = max((i for i, p in enumerate(pieces) if p), default=None)
    head = text[: len(text) - len(window)]
    if len(pieces) == 1 and not any(mark in head for mark in marks):
        return text.strip() or None  # no separator anywhere: one piece
    if head and (last is None or last == 0):
        pieces = [p.strip() for p in separator.split(text)]
        last = max((i for i, p in enumerate(pieces) if p), default=None)
    return None if last is None else pieces[last]


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
