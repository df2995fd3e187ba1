"""Hostile input through the LangChain classes: `SemanticReuseCache` (async and sync) and the
model classes `ChatSemanticReuse` and `SemanticReuseLLM` over a real engine (the model behind
it answers at once: `tests.hostile.EngineClient`). Every call returns in time, ends in an
answer or a documented error, and the engine still serves afterwards.

A cache never refuses: LangChain asks it before and after calling the model, and a prompt
the engine refuses is a miss (lookup) or not stored (update). The models refuse bad input
with the errors of `semantic_reuse.errors` (or pydantic's for bad settings)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.load import dumps
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, Generation

from langchain_semantic_reuse import ChatSemanticReuse, SemanticReuseCache, SemanticReuseLLM
from semantic_reuse import ReuseEngine
from tests.conftest import EngineFactory
from tests.hostile import (
    FUZZ_ENGINE_CONFIG,
    EngineClient,
    Outcome,
    bounded,
    bounded_blocking,
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


LLM_STRING = "[('_type', 'scripted-chat'), ('model_name', 'model-a'), ('stop', None)]"


def contents(*, deep: bool = True) -> st.SearchStrategy[Any]:
    """A message's content as LangChain allows it: text, or a list of text and other parts
    (whose values may be deeply nested: `deep`)."""
    part = st.one_of(
        texts(big=False),
        st.fixed_dictionaries({"type": st.just("text"), "text": st.one_of(texts(), values())}),
        st.fixed_dictionaries({"type": st.sampled_from(["image_url", "tool_use", "weird"])}),
        st.dictionaries(texts(big=False), values(deep=deep), max_size=2),
    )
    return st.one_of(texts(), texts(), st.lists(part, max_size=3))


def lc_messages(*, deep: bool = True) -> st.SearchStrategy[list[Any]]:
    message = st.one_of(
        st.builds(HumanMessage, content=contents(deep=deep)),
        st.builds(SystemMessage, content=contents(deep=deep)),
        st.builds(AIMessage, content=contents(deep=deep)),
        st.builds(ToolMessage, content=contents(deep=deep), tool_call_id=texts(big=False)),
    )
    return st.lists(message, min_size=1, max_size=4)


def _dumps(messages: list[Any]) -> str:
    """A chat as LangChain hands it to a cache (what `dumps` cannot write is forged)."""
    try:
        return dumps(messages)
    except (ValueError, TypeError, RecursionError):
        return '[{"lc": 1, "type": "constructor", "id": ["x", "HumanMessage"], "kwargs": 1}]'


def _params_string(params: dict[Any, Any]) -> str:
    try:
        return repr(sorted(params.items(), key=repr))
    except (ValueError, RecursionError):  # a repr Python will not write
        return "[('temperature', 10**5000)]"


def cache_prompts() -> st.SearchStrategy[Any]:
    """What LangChain hands a cache (a chat's `dumps`, a string prompt), forged JSON, wrong
    types."""
    return st.one_of(lc_messages(deep=False).map(_dumps), texts(), texts(), values())


def llm_strings() -> st.SearchStrategy[Any]:
    hostile_params = st.dictionaries(texts(big=False), values(deep=False), max_size=3)
    return st.one_of(
        st.just(LLM_STRING),
        hostile_params.map(_params_string),
        st.builds(lambda t: f"[('model_name', {t!r}), ('temperature', nan)]", texts(big=False)),
        texts(),
        values(),
    )


def generations() -> st.SearchStrategy[Any]:
    gen = st.one_of(
        st.builds(Generation, text=texts()),
        st.builds(lambda c: ChatGeneration(message=AIMessage(content=c)), contents()),
    )
    return st.one_of(st.lists(gen, max_size=2), values())


async def _cache_call(cache: SemanticReuseCache, data: st.DataObject, outcome: Outcome) -> None:
    op = data.draw(st.sampled_from(["lookup", "update", "clear"]), label="op")
    prompt, llm = data.draw(cache_prompts(), label="prompt"), data.draw(llm_strings())
    if op == "lookup":
        await bounded(op, lambda: cache.alookup(prompt, llm), outcome)
    elif op == "update":
        value = data.draw(generations(), label="return_val")
        await bounded(op, lambda: cache.aupdate(prompt, llm, value), outcome)
    else:
        namespace = data.draw(st.one_of(st.just("lc-fuzz"), texts(big=False), values()))
        await bounded(op, lambda: cache.aclear(namespace=namespace), outcome)


@pytest.fixture
def fuzz_engine(make_engine: EngineFactory) -> ReuseEngine:
    return make_engine(**FUZZ_ENGINE_CONFIG)  # type: ignore[no-any-return]


@fuzz_settings()
@given(data=st.data())
async def test_cache_survives_hostile_input(data: st.DataObject, fuzz_engine: ReuseEngine) -> None:
    cache = SemanticReuseCache(fuzz_engine, namespace="lc-fuzz")
    before = component_errors(fuzz_engine)
    with failure_log() as failures:
        await _cache_call(cache, data, Outcome())
        await still_serves(fuzz_engine, before, failures)


@fuzz_settings()
@given(data=st.data())
def test_sync_cache_survives_hostile_input(data: st.DataObject, sync_engine: ReuseEngine) -> None:
    cache = SemanticReuseCache(sync_engine, namespace="lc-fuzz")
    op = data.draw(st.sampled_from(["lookup", "update"]), label="op")
    prompt, llm = data.draw(cache_prompts(), label="prompt"), data.draw(llm_strings())
    value = data.draw(generations(), label="return_val")
    before = component_errors(sync_engine)
    with failure_log() as failures:
        if op == "lookup":
            bounded_blocking(op, lambda: cache.lookup(prompt, llm), Outcome())
        else:
            bounded_blocking(op, lambda: cache.update(prompt, llm, value), Outcome())
        sync_engine.run_sync(still_serves(sync_engine, before, failures))


async def test_cache_misses_what_the_engine_refuses_and_lets_the_model_answer(
    make_engine: EngineFactory,
) -> None:
    """A prompt the engine refuses (not valid Unicode, above a limit) is a miss and is not
    stored: LangChain then calls the model as it would without a cache."""
    engine = make_engine(limits={"max_prompt_chars": 100})
    cache = SemanticReuseCache(engine)
    for prompt in ("bad \ud800 text", "x" * 101, dumps([HumanMessage("y" * 200)])):
        assert await cache.alookup(prompt, LLM_STRING) is None
        await cache.aupdate(prompt, LLM_STRING, [Generation(text="an answer")])
        assert await cache.alookup(prompt, LLM_STRING) is None
    # Found by the fuzzing: generations LangChain itself cannot serialize (content nested
    # thousands deep) made `update` raise after the model had answered.
    deep: Any = "x"
    for _ in range(5000):
        deep = {"k": deep}
    unwritable = [ChatGeneration(message=AIMessage(content=[{"type": "weird", "v": deep}]))]
    await cache.aupdate(dumps([HumanMessage("Hi?")]), LLM_STRING, unwritable)
    assert await cache.alookup(dumps([HumanMessage("Hi?")]), LLM_STRING) is None
    await still_serves(engine)


# -- the model classes -----------------------------------------------------------------------------


def call_kwargs() -> st.SearchStrategy[dict[str, Any]]:
    """Per-call keywords: none half of the time, so that hostile input reaches the engine."""
    hostile = st.fixed_dictionaries(
        {},
        optional={
            "temperature": st.one_of(st.floats(), values()),
            "max_tokens": st.one_of(st.integers(), values()),
            "stop": st.one_of(st.lists(texts(big=False), max_size=2), values()),
            "namespace": st.one_of(texts(big=False), values()),
            "threshold": st.one_of(st.floats(), values()),
            "reuse": values(),
            "question": st.one_of(texts(big=False), values()),
            "surprise": values(),
        },
    )
    return st.one_of(st.just({}), hostile)


MODEL_OPS = ["invoke", "ainvoke", "stream", "astream", "batch"]


async def _model_call(
    model: Any, op: str, prompt: Any, kwargs: dict[str, Any], outcome: Outcome
) -> None:
    if op == "invoke":
        await bounded_sync(op, lambda: model.invoke(prompt, **kwargs), outcome)
    elif op == "ainvoke":
        await bounded(op, lambda: model.ainvoke(prompt, **kwargs), outcome)
    elif op == "stream":
        await bounded_sync(op, lambda: list(model.stream(prompt, **kwargs)), outcome)
    elif op == "astream":

        async def collect() -> list[Any]:
            return [chunk async for chunk in model.astream(prompt, **kwargs)]

        await bounded(op, collect, outcome)
    else:
        await bounded_sync(op, lambda: model.batch([prompt, prompt], **kwargs), outcome)


@fuzz_settings()
@given(data=st.data())
async def test_chat_model_survives_hostile_input(
    data: st.DataObject, sync_engine: ReuseEngine
) -> None:
    model = ChatSemanticReuse(client=EngineClient(sync_engine))
    prompt = data.draw(st.one_of(lc_messages(), texts()), label="input")
    await _fuzz_model(data, model, prompt, sync_engine)


@fuzz_settings()
@given(data=st.data())
async def test_string_llm_survives_hostile_input(
    data: st.DataObject, sync_engine: ReuseEngine
) -> None:
    as_chat = data.draw(st.booleans(), label="as_chat")
    model = SemanticReuseLLM(client=EngineClient(sync_engine), as_chat=as_chat)
    await _fuzz_model(data, model, data.draw(texts(), label="input"), sync_engine)


async def _fuzz_model(
    data: st.DataObject, model: Any, prompt: Any, sync_engine: ReuseEngine
) -> None:
    """One drawn call of `model` with `prompt`: the documented errors at most, and the
    engine serves afterwards with no component failure counted."""
    kwargs = data.draw(call_kwargs(), label="kwargs")
    op = data.draw(st.sampled_from(MODEL_OPS), label="op")
    before = component_errors(sync_engine)
    with failure_log() as failures:
        await _model_call(model, op, prompt, kwargs, Outcome())
        sync_engine.run_sync(still_serves(sync_engine, before, failures))
