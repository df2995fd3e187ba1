"""Hostile input through `EnhancedAsyncLLM.generate` (and `generate_chat`) on the session's
real vLLM engine: text prompts (control characters, lone surrogates, 2 MB, format strings,
injection text), token prompts (out of range, empty), wrong-typed prompts, hostile chats and
reuse options. Every call returns in
time and ends in outputs or a documented error (ours, or vLLM's own `VLLMClientError` for a
request it refuses, such as a prompt longer than the model's context); the engine still
serves afterwards. Kept short: `SEMANTIC_REUSE_FUZZ_EXAMPLES` scales it (each example that
reaches the model generates at most 4 tokens)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from vllm import SamplingParams
from vllm.exceptions import VLLMClientError
from vllm.v1.engine.exceptions import EngineGenerateError

from semantic_reuse import ReuseKind
from semantic_reuse.spi import InvalidTypeError
from semantic_reuse.vllm import EnhancedAsyncLLM, reuse_info
from tests.hostile import Outcome, bounded, fuzz_settings, messages, options, texts, values

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]


def vllm_prompts() -> st.SearchStrategy[Any]:
    tokens = st.one_of(
        st.lists(st.integers(0, 40_000), min_size=1, max_size=8),
        st.lists(st.integers(-(2**70), 2**70), max_size=4),
    )
    return st.one_of(
        texts(),
        texts(),
        st.lists(st.one_of(st.integers(0, 40_000), st.booleans()), min_size=1, max_size=4),
        st.fixed_dictionaries({"prompt": texts()}),
        st.fixed_dictionaries({"prompt_token_ids": tokens}),
        st.dictionaries(
            st.sampled_from(["prompt", "prompt_token_ids", "other"]), values(), max_size=2
        ),
        values(),
    )


def sampling() -> st.SearchStrategy[SamplingParams]:
    return st.builds(
        SamplingParams,
        temperature=st.sampled_from([0.0, 0.7, 2.0]),
        max_tokens=st.integers(1, 4),
        stop=st.one_of(st.none(), st.lists(texts(big=False).filter(bool), max_size=2)),
        seed=st.one_of(st.none(), st.integers(0, 2**31)),
    )


async def _generate(
    llm: EnhancedAsyncLLM, prompt: Any, params: SamplingParams, kwargs: dict[str, Any], chat: bool
) -> list[Any]:
    request_id = uuid.uuid4().hex
    if chat:
        return [out async for out in llm.generate_chat(prompt, params, request_id, **kwargs)]
    return [out async for out in llm.generate(prompt, params, request_id, **kwargs)]


def _keyed(prompt: Any) -> bool:
    """Whether reuse keys this prompt (`EnhancedAsyncLLM._generate_hash_id`)."""
    if isinstance(prompt, str):
        return True
    if not isinstance(prompt, Mapping) or not set(prompt) <= {"prompt", "prompt_token_ids"}:
        return False
    return isinstance(prompt.get("prompt"), str) or isinstance(prompt.get("prompt_token_ids"), list)


def _raised_by_vllm(error: BaseException) -> bool:
    frame = error.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    return frame is not None and f"{os.sep}vllm{os.sep}" in frame.tb_frame.f_code.co_filename


@fuzz_settings()
@given(data=st.data())
async def test_generate_survives_hostile_input(
    data: st.DataObject, enhanced_llm: EnhancedAsyncLLM
) -> None:
    chat = data.draw(st.booleans(), label="generate_chat")
    prompt = data.draw(messages() if chat else vllm_prompts(), label="prompt")
    params = data.draw(sampling(), label="sampling_params")
    kwargs = {k: v for k, v in data.draw(options(), label="options").items() if k != "params"}
    outcome = Outcome()
    try:
        await bounded(
            "generate", lambda: _generate(enhanced_llm, prompt, params, kwargs, chat), outcome
        )
    except VLLMClientError as refused:  # vLLM's own refusal of the request (documented)
        outcome.refuse(refused)
    except (TypeError, ValueError, EngineGenerateError) as refused:
        # A prompt reuse does not key (multimodal, embeddings... or garbage) goes to vLLM
        # untouched, and vLLM's own input checks answer it (a TypeError, which AsyncLLM
        # wraps in its EngineGenerateError).
        cause = refused.__cause__ if isinstance(refused, EngineGenerateError) else refused
        if chat or _keyed(prompt) or cause is None or not _raised_by_vllm(cause):
            raise
        outcome.refuse(cause)
    # The engine still serves: a normal request, twice (the second from the cache).
    question = [{"role": "user", "content": "Name a colour."}]
    greedy = SamplingParams(temperature=0.0, max_tokens=4)
    first = [o async for o in enhanced_llm.generate_chat(question, greedy, uuid.uuid4().hex)]
    assert first[-1].finished
    await enhanced_llm.reuse_engine.flush()
    again = [o async for o in enhanced_llm.generate_chat(question, greedy, uuid.uuid4().hex)]
    assert reuse_info(again[-1]) is not None
    assert reuse_info(again[-1]).kind is ReuseKind.EXACT  # type: ignore[union-attr]
    breakers = enhanced_llm.reuse_engine.stats()["breakers"]
    assert breakers == {"semantic": "closed", "splitter": "closed"}


@pytest.mark.parametrize("prompt", [[False], [1, True], {"prompt_token_ids": [True]}])
async def test_boolean_token_ids_are_refused_before_they_stop_vllm(
    enhanced_llm: EnhancedAsyncLLM, prompt: Any
) -> None:
    """Found by the fuzzing: vLLM 0.32 takes ``[False]`` as a token prompt, and its engine
    process then fails to decode the request in the thread that reads all requests, so
    every later request hangs. Refused here first, the engine keeps serving."""
    with pytest.raises(InvalidTypeError, match=r"token.ids"):
        await _generate(enhanced_llm, prompt, SamplingParams(max_tokens=2), {}, False)
    greedy = SamplingParams(temperature=0.0, max_tokens=2)
    outputs = await _generate(enhanced_llm, "Say yes.", greedy, {}, False)
    assert outputs[-1].finished
