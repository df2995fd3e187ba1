"""Canonical data for cache keys: what a request's parts become before they are hashed.

Canonical means: keys sorted, strings NFC-normalised, numbers compared by value (``1`` and
``1.0`` are the same temperature), ``None`` values dropped, containers turned into lists.
Building it is where hostile input is refused, with an error that names the argument and
the place inside it: text that is not valid Unicode, containers nested deeper than
`MAX_NESTING`, huge integers, non-finite parameters, objects that are not data.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import unicodedata
from collections.abc import Mapping
from typing import TypeAlias, TypeVar

from semantic_reuse.errors import InvalidRequestError, InvalidTypeError

JSONValue: TypeAlias = str | int | float | bool | list["JSONValue"] | dict[str, "JSONValue"] | None

#: Containers nested deeper than this in messages, params or answer metadata are refused
#: (keys are built by recursion: Python's own limit would end it with a RecursionError).
MAX_NESTING = 32
#: Python prints no integer of more than 4,300 digits: wider ones are refused (~3,000 digits).
_MAX_INT_BITS = 10_000
_PATH = "_reuse_path"
E = TypeVar("E", bound=Exception)

#: Request fields that make an answer depend on more than its text (tools, a tool choice, an
#: output format): with any of them set, a request is never split into clauses (a clause
#: would be generated without them).
STRUCTURED_FIELDS = frozenset(
    {"tools", "tool_choice", "functions", "function_call", "response_format",
     "structured_outputs", "guided_json", "guided_regex", "guided_choice", "guided_grammar"}
)  # fmt: skip


def structured(fields: Mapping[str, object]) -> bool:
    """Whether `fields` (a request body, answer-shaping params) set one of `STRUCTURED_FIELDS`."""
    return any(fields.get(name) not in (None, [], {}) for name in STRUCTURED_FIELDS)


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


def check_text(value: str, argument: str) -> str:
    """`value` if it is valid Unicode (no lone surrogate, which no encoding, tokenizer or
    store takes), else an `InvalidRequestError` naming `argument`."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidRequestError(
                f"{argument} is not valid Unicode: a lone surrogate at index {exc.start}"
            ) from None
    return value


def canonical(value: object, *, finite: bool = False, _depth: int = 0) -> JSONValue:
    """Turn a value into canonical JSON-able data (see the module docstring).

    Refused (the error says where, e.g. ``['logit_bias']['7']``): text that is not valid
    Unicode, containers nested deeper than `MAX_NESTING`, integers of more than ~3,000
    digits, objects that are not data; with `finite`, NaN and infinities too (otherwise
    they become their repr)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return unicodedata.normalize("NFC", check_text(value, "the text"))
    if isinstance(value, enum.Enum):
        return canonical(value.name)
    if isinstance(value, int):
        if value.bit_length() > _MAX_INT_BITS:
            raise InvalidRequestError("an integer of more than 3,000 digits")
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            if finite:
                raise InvalidRequestError(f"{value} is not a finite number")
            return repr(value)
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if _depth >= MAX_NESTING:
        raise InvalidRequestError(f"containers nested more than {MAX_NESTING} levels deep")
    deeper = _depth + 1
    if isinstance(value, Mapping):
        items: dict[str, JSONValue] = {}
        for k, v in value.items():
            if v is not None:
                if not isinstance(k, str | int | float | enum.Enum) and k is not None:
                    raise InvalidTypeError(f"a mapping key must be a str, got {type(k).__name__}")
                key = check_text(k if isinstance(k, str) else str(k), "a key")  # not normalised
                try:
                    items[key] = canonical(v, finite=finite, _depth=deeper)
                except (InvalidRequestError, InvalidTypeError) as exc:
                    raise _at(exc, f"[{key!r:.40}]") from None
        return dict(sorted(items.items()))
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, (list, tuple)):
        listed: list[JSONValue] = []
        for i, v in enumerate(value):
            try:
                listed.append(canonical(v, finite=finite, _depth=deeper))
            except (InvalidRequestError, InvalidTypeError) as exc:
                raise _at(exc, f"[{i}]") from None
        return listed
    if isinstance(value, (set, frozenset)):
        members = [canonical(v, finite=finite, _depth=deeper) for v in value]
        return sorted(members, key=_sort_key)
    fields = public_fields(value)
    if fields is not None:
        return canonical(fields, finite=finite, _depth=_depth)
    raise InvalidTypeError(
        f"cannot build a cache key from a {type(value).__name__} (not str, number, bool, None, "
        "list, mapping or dataclass)"
    )


def _at(exc: E, step: str) -> E:
    """`exc`, with `step` prefixed to where it happened (see `canonical_argument`)."""
    setattr(exc, _PATH, step + getattr(exc, _PATH, ""))
    return exc


def canonical_argument(value: object, argument: str, *, finite: bool = False) -> JSONValue:
    """`canonical(value)`, its errors naming `argument` and where in it they are."""
    try:
        return canonical(value, finite=finite)
    except (InvalidRequestError, InvalidTypeError) as exc:
        where = f"{argument}{getattr(exc, _PATH, '')}"
        raise type(exc)(f"{where}: {exc}") from None


def check_json(value: object, argument: str) -> None:
    """Refuse, naming `argument` and where in it, what a JSON store cannot hold as it is: only
    str (valid Unicode), int (at most ~3,000 digits), finite float, bool, None, lists or
    tuples, and mappings with str keys, nested at most `MAX_NESTING` deep (answer metadata:
    it is stored in Redis and the vector store unchanged)."""
    try:
        _check_json(value, 0)
    except (InvalidRequestError, InvalidTypeError) as exc:
        raise type(exc)(f"{argument}{getattr(exc, _PATH, '')}: {exc}") from None


def _check_json(value: object, depth: int) -> None:
    if isinstance(value, str):
        check_text(value, "the text")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidRequestError(f"{value} is not a finite number")
    elif isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > _MAX_INT_BITS:
            raise InvalidRequestError("an integer of more than 3,000 digits")
    elif value is None or isinstance(value, bool):
        return
    elif depth >= MAX_NESTING:
        raise InvalidRequestError(f"containers nested more than {MAX_NESTING} levels deep")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidTypeError(f"a key must be a str, got {type(key).__name__}")
            check_text(key, "a key")
            try:
                _check_json(item, depth + 1)
            except (InvalidRequestError, InvalidTypeError) as exc:
                raise _at(exc, f"[{key!r:.40}]") from None
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            try:
                _check_json(item, depth + 1)
            except (InvalidRequestError, InvalidTypeError) as exc:
                raise _at(exc, f"[{i}]") from None
    else:
        raise InvalidTypeError(f"not JSON data: a {type(value).__name__}")


def data_chars(value: object) -> int:
    """The size of canonical data as the limits count it: the characters of its strings and
    keys, one for every other value and container."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, Mapping):
        return 1 + sum(len(str(k)) + data_chars(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return 1 + sum(data_chars(v) for v in value)
    return 1


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
    shaped = canonical_argument(
        {k: v for k, v in fields.items() if not (isinstance(k, str) and k in NON_SHAPING_PARAMS)},
        "params",
        finite=True,
    )
    assert isinstance(shaped, dict)
    return shaped
