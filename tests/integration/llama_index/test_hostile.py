"""Hostile input through LlamaIndex's `SemanticReuseLLM` (its eight methods) over a real
engine (the model behind it answers at once: `tests.hostile.EngineClient`): every call
returns in time, ends in an answer or a documented error, and the engine still serves."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from llama_index.core.base.llms.types import ChatMessage, MessageRole, TextBlock

from llama_index.llms.semantic_reuse import SemanticReuseLLM
from semantic_reuse import ReuseEngine
from tests.hostile import (
    FUZZ_ENGINE_CONFIG,
    EngineClient,
    Outcome,
    bounded,
    bounded_sync,
    component_errors,
    failure_log,
    fuzz_settings,
    still_serves,
    texts,
    values,
)


@pytest.fixture
def engine_config() -> dict[str, Any]:
    return FUZZ_ENGINE_CONFIG


def chat_messages() -> st.SearchStrategy[list[ChatMessage]]:
    role = st.sampled_from(list(MessageRole))
    message = st.one_of(
        st.builds(ChatMessage, role=role, content=texts()),
        st.builds(
            lambda r, parts: ChatMessage(role=r, blocks=[TextBlock(text=p) for p in parts]),
            role,
            st.lists(texts(big=False), max_size=3),
        ),
        st.builds(
            ChatMessage,
            role=st.just(MessageRole.USER),
            content=texts(),
            additional_kwargs=st.dictionaries(
                st.just("reuse_question"), st.one_of(texts(big=False), values()), max_size=1
            ),
        ),
    )
    return st.lists(message, max_size=4)


def call_kwargs() -> st.SearchStrategy[dict[str, Any]]:
    """Per-call keywords: none half of the time, so that hostile input reaches the engine."""
    hostile = st.fixed_dictionaries(
        {},
        optional={
            "temperature": st.one_of(st.floats(), values()),
            "top_p": st.one_of(st.floats(), values()),
            "seed": st.one_of(st.integers(), values()),
            "namespace": st.one_of(texts(big=False), values()),
            "threshold": st.one_of(st.floats(), values()),
            "formatted": st.booleans(),
            "surprise": values(),
        },
    )
    return st.one_of(st.just({}), hostile)


OPS = ["complete", "acomplete", "stream_complete", "astream_complete",
       "chat", "achat", "stream_chat", "astream_chat"]  # fmt: skip


async def _call(llm: SemanticReuseLLM, op: str, data: st.DataObject, outcome: Outcome) -> None:
    kwargs = data.draw(call_kwargs(), label="kwargs")
    if op.endswith("chat"):
        prompt: Any = data.draw(st.one_of(chat_messages(), values()), label="messages")
    else:
        prompt = data.draw(st.one_of(texts(), texts(), values()), label="prompt")
    method = getattr(llm, op)
    if op.startswith("astream"):

        async def collect() -> list[Any]:
            return [r async for r in await method(prompt, **kwargs)]

        await bounded(op, collect, outcome)
    elif op.startswith("a"):
        await bounded(op, lambda: method(prompt, **kwargs), outcome)
    elif op.startswith("stream"):
        await bounded_sync(op, lambda: list(method(prompt, **kwargs)), outcome)
    else:
        await bounded_sync(op, lambda: method(prompt, **kwargs), outcome)


@fuzz_settings()
@given(data=st.data())
async def test_llm_survives_hostile_input(data: st.DataObject, sync_engine: ReuseEngine) -> None:
    system = data.draw(st.one_of(st.none(), texts(big=False)), label="system_prompt")
    llm = SemanticReuseLLM(client=EngineClient(sync_engine), system_prompt=system)
    before = component_errors(sync_engine)
    with failure_log() as failures:
        await _call(llm, data.draw(st.sampled_from(OPS), label="op"), data, Outcome())
        sync_engine.run_sync(still_serves(sync_engine, before, failures))
