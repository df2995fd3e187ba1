from __future__ import annotations

import json
from dataclasses import dataclass, field

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from semantic_reuse import CachedAnswer
from semantic_reuse.spi import AnswerCodec, AnswerDecodeError, AnswerTooLargeError

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.text(max_size=10),
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
)  # fmt: skip
answers = st.builds(
    CachedAnswer,
    text=st.text(max_size=200),
    token_ids=st.lists(st.integers(0, 2**31 - 1), max_size=50).map(tuple),
    finish_reason=st.sampled_from([None, "stop", "length", "abort"]),
    usage=st.dictionaries(
        st.sampled_from(["prompt_tokens", "completion_tokens"]), st.integers(0, 10**6)
    ),
    created_at=st.floats(0, 4e9),
    source_prompt=st.none() | st.text(max_size=50),
    metadata=st.dictionaries(st.text(min_size=1, max_size=8), json_scalars, max_size=4),
)


@pytest.mark.parametrize("fmt", ["msgpack", "json"])
@given(answer=answers)
def test_round_trip(fmt: str, answer: CachedAnswer) -> None:
    codec = AnswerCodec(fmt)  # type: ignore[arg-type]
    assert codec.decode(codec.encode(answer)) == answer


def test_either_codec_reads_the_other() -> None:
    answer = CachedAnswer("hi", (1, 2), usage={"completion_tokens": 2})
    assert AnswerCodec("json").decode(AnswerCodec("msgpack").encode(answer)) == answer
    assert AnswerCodec("msgpack").decode(AnswerCodec("json").encode(answer)) == answer


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"garbage",
        b"SR",
        b"SR\x01m\xc1\xc1",  # msgpack reserved byte
        b"SR\x01j{not json",
        b"SR\x09m" + msgpack.packb({"text": "future"}),  # another version
        b"SR\x01x{}",  # unknown format
        b"SR\x01j" + json.dumps([1, 2]).encode(),
        b"SR\x01j" + json.dumps({"text": 5}).encode(),
        b"SR\x01j" + json.dumps({"no_text": "x"}).encode(),
        b"SR\x01m" + msgpack.packb({"text": "x", "token_ids": ["a"]}),
        b"\x80\x04\x95pickle-protocol-4",
    ],
)
def test_corrupt_or_foreign_values_fail_with_decode_error(blob: bytes) -> None:
    with pytest.raises(AnswerDecodeError):
        AnswerCodec().decode(blob)


def test_size_cap() -> None:
    codec = AnswerCodec(max_bytes=200)
    codec.encode(CachedAnswer("small"))
    with pytest.raises(AnswerTooLargeError, match="200"):
        codec.encode(CachedAnswer("x" * 500))


def test_never_pickles() -> None:
    blob = AnswerCodec().encode(CachedAnswer("x", metadata={"k": [1, "a"]}))
    assert blob.startswith(b"SR\x01m")
    assert b"\x80\x04" not in blob[:6]


@dataclass
class CompletionLike:
    """Has the fields of vLLM's CompletionOutput that an answer keeps."""

    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: None
    finish_reason: str | None = None


@dataclass
class RequestOutputLike:
    """Has the fields of vLLM's RequestOutput that an answer keeps."""

    request_id: str
    prompt: str | None
    prompt_token_ids: list[int] | None
    outputs: list[CompletionLike] = field(default_factory=list)
    finished: bool = True


def test_normalises_text_tokens_and_request_outputs() -> None:
    assert CachedAnswer.from_any("hello").text == "hello"
    tokens = CachedAnswer.from_any([5, 6, 7])
    assert tokens.token_ids == (5, 6, 7)
    assert tokens.text == ""
    output = RequestOutputLike(
        "r1", "What is Redis?", [1, 2, 3, 4],
        [CompletionLike(0, "An in-memory store.", [9, 8, 7], -1.0, None, "stop")],
    )  # fmt: skip
    answer = CachedAnswer.from_any(output)
    assert answer.text == "An in-memory store."
    assert answer.token_ids == (9, 8, 7)
    assert answer.finish_reason == "stop"
    assert answer.source_prompt == "What is Redis?"
    assert dict(answer.usage) == {"prompt_tokens": 4, "completion_tokens": 3}
    same = CachedAnswer.from_any(output.outputs[0])
    assert (same.text, same.token_ids) == (answer.text, answer.token_ids)
    assert CachedAnswer.from_any(answer) is answer


@pytest.mark.parametrize("value", [3.5, b"bytes", ["a", "b"], object()])
def test_unsupported_answers_raise_type_error(value: object) -> None:
    with pytest.raises(TypeError, match="answer"):
        CachedAnswer.from_any(value)
