from __future__ import annotations

import dataclasses
import enum
import json
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from semantic_reuse import ReuseRequest
from semantic_reuse.request import canonical

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
param_values = st.one_of(
    st.integers(-(10**6), 10**6), finite, st.booleans(), st.text(max_size=8),
    st.lists(st.text(max_size=5), max_size=3),
)  # fmt: skip
params_st = st.dictionaries(
    st.sampled_from(
        ["temperature", "top_p", "max_tokens", "stop", "seed", "n", "logprobs", "lora"]
    ),
    param_values,
    max_size=6,
)
prompts = st.text(min_size=1, max_size=60).filter(lambda s: s.strip())
namespaces = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,15}", fullmatch=True)


@given(
    prompt=prompts, params=params_st, namespace=namespaces, model=st.none() | st.text(max_size=9)
)
def test_equal_requests_give_equal_keys(
    prompt: str, params: dict[str, object], namespace: str, model: str | None
) -> None:
    a = ReuseRequest(prompt, namespace=namespace, model=model, params=params)
    b = ReuseRequest(
        prompt, namespace=namespace, model=model, params=dict(reversed(params.items()))
    )
    assert a.hash_id == b.hash_id
    assert a.fingerprint == b.fingerprint


@given(
    prompt=prompts,
    params=params_st,
    name=st.sampled_from(["temperature", "max_tokens", "stop"]),
    value=param_values,
)
def test_changing_a_shaping_param_changes_the_key(
    prompt: str, params: dict[str, object], name: str, value: object
) -> None:
    base = ReuseRequest(prompt, params=params)
    changed = ReuseRequest(prompt, params={**params, name: value})
    # Same canonical JSON (so True and 1 differ, 1 and 1.0 do not).
    unchanged = name in params and json.dumps(canonical(params[name])) == json.dumps(
        canonical(value)
    )
    assert (base.hash_id == changed.hash_id) == unchanged
    assert (base.fingerprint == changed.fingerprint) == unchanged


@given(prompt=prompts, other=prompts)
def test_prompt_namespace_and_model_are_part_of_the_key(prompt: str, other: str) -> None:
    base = ReuseRequest(prompt, namespace="a", model="m")
    assert base.hash_id != ReuseRequest(prompt, namespace="b", model="m").hash_id
    assert base.hash_id != ReuseRequest(prompt, namespace="a", model="n").hash_id
    assert base.hash_id != ReuseRequest(prompt, namespace="a", model=None).hash_id
    if other.strip() != prompt.strip():
        assert base.hash_id != ReuseRequest(other, namespace="a", model="m").hash_id
        # The semantic scope does not depend on the text: paraphrases can match.
        assert base.fingerprint == ReuseRequest(other, namespace="a", model="m").fingerprint


def test_numbers_compare_by_value_and_none_is_absent() -> None:
    a = ReuseRequest("q", params={"temperature": 1, "top_p": None})
    b = ReuseRequest("q", params={"temperature": 1.0})
    assert a.hash_id == b.hash_id
    assert a.hash_id != ReuseRequest("q", params={"temperature": 1.5}).hash_id


def test_output_kind_does_not_shape_the_answer() -> None:
    a = ReuseRequest("q", params={"max_tokens": 5, "output_kind": "DELTA"})
    assert a.hash_id == ReuseRequest("q", params={"max_tokens": 5, "output_kind": 2}).hash_id


class Kind(enum.Enum):
    CUMULATIVE = 0
    DELTA = 1


@dataclasses.dataclass
class SamplingLike:
    temperature: float = 0.0
    max_tokens: int = 16
    stop: list[str] = dataclasses.field(default_factory=list)
    output_kind: Kind = Kind.CUMULATIVE
    _internal: int = 99


class StructLike:
    """Mimics a msgspec Struct: fields named by __struct_fields__, unhashable."""

    __struct_fields__ = ("temperature", "max_tokens", "stop", "output_kind", "_all_stop_ids")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, **kw: object) -> None:
        self.temperature = kw.get("temperature", 0.0)
        self.max_tokens = kw.get("max_tokens", 16)
        self.stop = kw.get("stop", [])
        self.output_kind = kw.get("output_kind", Kind.CUMULATIVE)
        self._all_stop_ids = {1, 2}


def test_structs_dataclasses_and_dicts_give_the_same_key() -> None:
    as_dict = ReuseRequest("q", params={"temperature": 0.0, "max_tokens": 16, "stop": []})
    as_dataclass = ReuseRequest("q", params=SamplingLike(output_kind=Kind.DELTA))
    as_struct = ReuseRequest("q", params=StructLike(output_kind=Kind.DELTA))
    assert as_dict.hash_id == as_dataclass.hash_id == as_struct.hash_id
    assert as_struct.hash_id != ReuseRequest("q", params=StructLike(max_tokens=17)).hash_id


def test_key_is_stable_across_processes() -> None:
    code = (
        "from semantic_reuse import ReuseRequest;"
        "print(ReuseRequest('Où est la gare?', model='m', namespace='t1',"
        " params={'temperature': 0.7, 'stop': ['\\n']}).hash_id)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    here = ReuseRequest(
        "Où est la gare?", model="m", namespace="t1", params={"temperature": 0.7, "stop": ["\n"]}
    )
    assert out.stdout.strip() == here.hash_id
    # A fixed value: the key format is part of the cache's on-disk contract.
    assert here.hash_id == KNOWN_KEY


KNOWN_KEY = "f6e58151a45d5cf4080b330e6ce93fd0"


def test_chat_semantic_text_and_fingerprint() -> None:
    history = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
    ]
    a = ReuseRequest(messages=[*history, {"role": "user", "content": "What is Redis?"}])
    b = ReuseRequest(messages=[*history, {"role": "user", "content": "Explain Redis"}])
    other_system = [{"role": "system", "content": "You are verbose."}, *history[1:]]
    c = ReuseRequest(messages=[*other_system, {"role": "user", "content": "What is Redis?"}])
    assert a.semantic_text == "What is Redis?"
    assert a.fingerprint == b.fingerprint
    assert a.hash_id != b.hash_id
    assert a.fingerprint != c.fingerprint
    assert a.hash_id != c.hash_id


def test_content_parts_give_text() -> None:
    request = ReuseRequest(
        messages=[{"role": "user", "content": [{"type": "text", "text": "What is Qdrant?"}]}]
    )
    assert request.semantic_text == "What is Qdrant?"


def test_token_prompts() -> None:
    a = ReuseRequest(prompt_token_ids=[1, 2, 3])
    assert a.hash_id == ReuseRequest(prompt_token_ids=(1, 2, 3)).hash_id
    assert a.hash_id != ReuseRequest(prompt_token_ids=[1, 2, 4]).hash_id


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, ValueError, "exactly one"),
        (
            {"prompt": "a", "messages": [{"role": "user", "content": "a"}]},
            ValueError,
            "exactly one",
        ),
        ({"prompt": 3}, TypeError, "prompt"),
        ({"prompt": "a", "namespace": "has space"}, ValueError, "namespace"),
        ({"prompt": "a", "namespace": "a:b"}, ValueError, "namespace"),
        ({"prompt": "a", "namespace": 7}, TypeError, "namespace"),
        ({"prompt": "a", "model": 7}, TypeError, "model"),
        ({"messages": "hello"}, TypeError, "messages"),
        ({"messages": []}, ValueError, "messages"),
        ({"messages": [{"content": "x"}]}, ValueError, "messages\\[0\\]"),
        ({"prompt_token_ids": ["a"]}, TypeError, "prompt_token_ids"),
        ({"prompt": "a", "params": 5}, TypeError, "params"),
        ({"prompt": "a b", "question": "c"}, ValueError, "question must occur"),
        ({"prompt": "a b", "question": " "}, ValueError, "question"),
        ({"prompt_token_ids": [1], "question": "a"}, ValueError, "question"),
    ],
)
def test_bad_input_names_the_argument(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        ReuseRequest(**kwargs)  # type: ignore[arg-type]


def test_question_inside_a_template() -> None:
    template = "Context: {context}\nQuery: {question}\nAnswer:"
    a = ReuseRequest(template.format(context="doc 1", question="How?"), question="How?")
    b = ReuseRequest(template.format(context="doc 1", question="Why?"), question="Why?")
    c = ReuseRequest(template.format(context="doc 2", question="How?"), question="How?")
    assert a.semantic_text == "How?"
    assert a.fingerprint == b.fingerprint  # same template, same context
    assert a.fingerprint != c.fingerprint  # other retrieved text: another scope
    assert a.hash_id != b.hash_id
    whole = ReuseRequest(template.format(context="doc 1", question="How?"))
    assert whole.semantic_text.startswith("Context:")
    chat = ReuseRequest(messages=[{"role": "user", "content": a.prompt}], question="How?")
    clause = chat.with_text("When?")
    assert clause.semantic_text == "When?"
    assert clause.fingerprint == chat.fingerprint  # the clause keeps the context around it
    assert clause.messages is not None
    assert "Query: When?" in clause.messages[-1]["content"]
