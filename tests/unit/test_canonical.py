"""Hostile values at the key builder (`semantic_reuse.canonical`, `ReuseRequest`): refused with
an error that names where, never a RecursionError, UnicodeEncodeError or OverflowError; and
`trailing_question` reads only the end of a long text, with the same result."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semantic_reuse import ReuseRequest
from semantic_reuse.canonical import MAX_NESTING, canonical, canonical_argument, data_chars
from semantic_reuse.errors import InvalidRequestError, InvalidTypeError, shown
from semantic_reuse.request import QUESTION_MAX_CHARS, trailing_question


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"k": [value]}
    return value


@pytest.mark.parametrize(
    ("value", "error", "where"),
    [
        ({"a": [1, {"b": math.nan}]}, InvalidRequestError, "params['a'][1]['b']: nan is not"),
        ({"t": -math.inf}, InvalidRequestError, "params['t']: -inf is not a finite"),
        ({"s": ["ok", "a\ud800"]}, InvalidRequestError, "params['s'][1]: the text is not valid"),
        ({"\udc80": 1}, InvalidRequestError, "not valid Unicode"),
        ({"n": 10**4000}, InvalidRequestError, "params['n']: an integer of more than"),
        ({"o": object()}, InvalidTypeError, "params['o']: cannot build a cache key"),
        ({(1, 2): "tuple key"}, InvalidTypeError, "a mapping key must be a str"),
        (nested(MAX_NESTING), InvalidRequestError, "nested more than 32 levels"),
        (nested(100_000), InvalidRequestError, "nested more than 32 levels"),
    ],
)
def test_hostile_params_are_refused_naming_where(
    value: Any, error: type[Exception], where: str
) -> None:
    with pytest.raises(error) as caught:
        canonical_argument(value, "params", finite=True)
    assert where in str(caught.value)
    with pytest.raises(error):  # the same through a request
        ReuseRequest("hi", params=value)


def test_within_the_nesting_limit_and_self_references() -> None:
    assert canonical(nested(MAX_NESTING // 2 - 1)) is not None  # a dict and a list per level
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(InvalidRequestError, match="nested"):
        canonical(loop)
    assert canonical({"t": math.nan}) == {"t": "nan"}  # outside params: its repr, as before


def test_data_chars_counts_strings_and_every_value() -> None:
    assert data_chars("abc") == 3
    assert data_chars({"ab": ["c", 1, None]}) == 1 + 2 + (1 + 1 + 1 + 1)
    assert data_chars([[]] * 1000) == 1001  # empty containers are not free


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"prompt": "a\ud800b"}, "prompt is not valid Unicode: a lone surrogate at index 1"),
        ({"prompt": "a", "model": "\udfff"}, "model is not valid Unicode"),
        ({"prompt": "a", "model": "m" * 4097}, "model must be at most 4096"),
        ({"prompt": "a \ud800", "question": "\ud800"}, "not valid Unicode"),
        (
            {"messages": [{"role": "user", "content": ["\ud800"]}]},
            r"messages\[0\]\['content'\]\[0\]",
        ),
        ({"prompt_token_ids": [-1]}, "prompt_token_ids must be ints in"),
        ({"prompt_token_ids": [2**63]}, "prompt_token_ids must be ints in"),
        ({"prompt_token_ids": []}, "prompt_token_ids must not be empty"),
    ],
)
def test_requests_that_no_key_can_hold_are_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidRequestError, match=match):
        ReuseRequest(**kwargs)


def test_control_characters_format_strings_and_injection_text_are_just_text() -> None:
    for text in ("\x00\x1b[31m\u202e", "{0} %s {__class__}", "*1\r\n$4\r\nPING\r\n", "'; DROP --"):
        request = ReuseRequest(text)
        assert request.hash_id == ReuseRequest(text).hash_id
        assert request.hash_id != ReuseRequest(text + "!").hash_id


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("short", "'short'"),
        ("x" * 1000, "'" + "x" * 56 + "..."),
        (10**5000, "a very large int"),
        (3.5, "3.5"),
        (None, "None"),
        (object(), "a object"),
        ([[[]]], "a list"),
    ],
    ids=["short", "long", "huge-int", "float", "none", "object", "nested"],
)
def test_errors_quote_values_safely(value: object, expected: str) -> None:
    assert shown(value) == expected


# -- trailing_question reads only the end of a long text ---------------------------------------


def _naive(text: str) -> str | None:
    """`trailing_question` as first written: every separator splits the whole text."""
    text = text.strip()
    if len(text) <= QUESTION_MAX_CHARS:
        return None
    tail = text
    for separator in (r"\n\s*\n", r"\n", r"(?<=[.!?。！？])\s+|(?<=[。！？])"):
        pieces = [p.strip() for p in re.split(separator, tail) if p.strip()]
        if pieces:
            tail = pieces[-1]
        if len(tail) <= QUESTION_MAX_CHARS:
            break
    if tail == text or len(tail) > QUESTION_MAX_CHARS:
        return None
    return tail


PIECES = ["a", "bb ", ". ", "\n", "\n\n", "  ", "\t", "。", "？", "!", " x" * 30, "y" * 200,
          "\n \n", "?  ", "What is it?"]  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=300))
def test_trailing_question_equals_splitting_the_whole_text(parts: list[str]) -> None:
    text = "".join(parts)
    assert trailing_question(text) == _naive(text)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "bb ", "  ", "\t", "y" * 200, " x" * 30]), max_size=40),
    st.lists(st.sampled_from(PIECES), min_size=1, max_size=40),
)
def test_trailing_question_when_only_the_end_has_separators(
    head: list[str], tail: list[str]
) -> None:
    text = "".join(head) + "".join(tail)
    assert trailing_question(text) == _naive(text)


def test_trailing_question_of_two_megabytes_of_short_sentences() -> None:
    text = "It is. " * 300_000 + "What is the question?"
    assert trailing_question(text) == "What is the question?"
