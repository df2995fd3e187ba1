"""Property: LangChain's cache and the framework model classes never serve an answer across
scopes.

The cache runs on a real engine (`make_engine`: MiniLM, Qdrant Edge); LangChain's chat model
and LlamaIndex's LLM run on `ScopedClient`, a `ReuseClient` over the same kind of engine
whose model is `ScopedBackend` (no vLLM): the framework classes build the messages, the
namespace and the model scope exactly as they do over vLLM.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given
from langchain_core.load import dumps
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, Generation
from llama_index.core.base.llms.types import ChatMessage

from langchain_semantic_reuse import ChatSemanticReuse, SemanticReuseCache
from llama_index.llms.semantic_reuse import SemanticReuseLLM
from semantic_reuse import Completion, GenerationParams, ReuseClient, ReuseEngine, ReuseOptions
from semantic_reuse.backend import PromptInput
from semantic_reuse.spi import HomeLoop
from tests.conftest import EngineFactory
from tests.integration.scopes.cases import (
    Case,
    ScopedBackend,
    answer_text,
    case_batches,
    check_served,
    examples,
)

NO_CLAUSES = {"features": {"enable_nlp_enhancement": False}}


@pytest.fixture
def engine(make_engine: EngineFactory) -> ReuseEngine:
    engine: ReuseEngine = make_engine(**NO_CLAUSES)
    return engine


# -- LangChain's cache --------------------------------------------------------------------------

CACHE, PER_CACHE = "langchain cache", 16
LC_MESSAGES = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}


def llm_string(model: str) -> str:
    """What a LangChain model hands its cache: its sorted identifying parameters."""
    return str(sorted({"_type": "scripted-chat", "model_name": model, "stop": None}.items()))


def lc_messages(case: Case) -> list[BaseMessage]:
    turns = [LC_MESSAGES[role](content=content) for role, content in case.history or ()]
    return [*turns, HumanMessage(content=case.prompt)]


def lc_prompt(case: Case) -> str:
    """A string LLM's prompt for a plain case; a chat model's `dumps(messages)` otherwise."""
    return case.prompt if case.history is None else dumps(lc_messages(case))


def generation(case: Case) -> list[Generation]:
    text = answer_text(case.entry)
    if case.history is None:
        return [Generation(text=text)]
    return [ChatGeneration(message=AIMessage(content=text))]


@given(cases=case_batches(PER_CACHE))
@examples(CACHE, PER_CACHE)
async def test_the_langchain_cache_never_serves_across_scopes(
    engine: ReuseEngine, cases: list[Case]
) -> None:
    caches = {n: SemanticReuseCache(engine, namespace=n) for n in {c.namespace for c in cases}}
    stored = cases[: PER_CACHE // 2]
    await asyncio.gather(
        *(
            caches[c.namespace].aupdate(lc_prompt(c), llm_string(c.model), generation(c))
            for c in stored
        )
    )
    await engine.flush()
    found = await asyncio.gather(
        *(caches[c.namespace].alookup(lc_prompt(c), llm_string(c.model)) for c in cases)
    )
    for probe, hit in zip(cases, found, strict=True):
        check_served(CACHE, probe, None if hit is None else hit[0].text, stored)
        if probe in stored:
            assert hit is not None, f"the cache lost {probe.entry!r}"


# -- the framework model classes ----------------------------------------------------------------


class ScopedClient(ReuseClient):
    """A `ReuseClient` over a `ReuseEngine` and `ScopedBackend`, at home on the test's loop."""

    def __init__(self, engine: ReuseEngine, model: str, backend: ScopedBackend) -> None:
        super().__init__(HomeLoop(asyncio.get_running_loop()))
        self.engine, self._model, self._backend = engine, model, backend

    @property
    def model_name(self) -> str:
        return self._model

    async def context_window(self) -> int | None:
        return None

    async def _stream(
        self, prompt: PromptInput, params: GenerationParams, options: ReuseOptions
    ) -> AsyncIterator[str | Completion]:
        scoped = options.with_model(self._model).replace(params=params.as_dict())
        stream = self.engine.stream(prompt, self._backend, options=scoped)
        async for delta in stream:
            yield delta
        result = stream.result
        yield Completion(result.text, result.info, model=self._model)

    async def reuse_engine(self) -> ReuseEngine:
        return self.engine

    async def _aclose(self) -> None:
        return None


CHAT, LLAMA, PER_MODEL = "langchain chat model", "llamaindex llm", 12


async def invoke_in_two_rounds(path: str, cases: list[Case], call: Any) -> None:
    """The first half generates (and stores); then every case asks, reusing where it may."""
    first = cases[: len(cases) // 2]
    for case, text in zip(first, await asyncio.gather(*(call(c) for c in first)), strict=True):
        check_served(path, case.as_chat(), text, [])
    texts = await asyncio.gather(*(call(c) for c in cases))
    stored = [c.as_chat() for c in first]
    for case, text in zip(cases, texts, strict=True):
        check_served(path, case.as_chat(), text, stored)


@given(cases=case_batches(PER_MODEL))
@examples(CHAT, PER_MODEL)
async def test_the_langchain_chat_model_never_serves_across_scopes(
    engine: ReuseEngine, cases: list[Case]
) -> None:
    backend = ScopedBackend()
    models = {
        m: ChatSemanticReuse(client=ScopedClient(engine, m, backend))
        for m in {c.model for c in cases}
    }

    async def call(case: Case) -> str:
        message = await models[case.model].ainvoke(lc_messages(case), namespace=case.namespace)
        return str(message.content)

    await invoke_in_two_rounds(CHAT, cases, call)


@given(cases=case_batches(PER_MODEL))
@examples(LLAMA, PER_MODEL)
async def test_the_llamaindex_llm_never_serves_across_scopes(
    engine: ReuseEngine, cases: list[Case]
) -> None:
    backend = ScopedBackend()
    llms = {
        m: SemanticReuseLLM(client=ScopedClient(engine, m, backend))
        for m in {c.model for c in cases}
    }

    async def call(case: Case) -> str:
        turns = [ChatMessage(role=role, content=content) for role, content in case.history or ()]
        messages = [*turns, ChatMessage(role="user", content=case.prompt)]
        response = await llms[case.model].achat(messages, namespace=case.namespace)
        return str(response.message.content)

    await invoke_in_two_rounds(LLAMA, cases, call)
