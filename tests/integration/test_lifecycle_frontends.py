"""Per-request lifecycle options and the error budget through every frontend but vLLM's
(tests/e2e/vllm and tests/e2e/server have that one): LangChain's chat model, string LLM and
cache, LlamaIndex's LLM, and a `ReuseClient`.
The model classes run on a `ReuseClient` over a real engine (MiniLM, Qdrant Edge) whose
model is a counting backend: the classes build their options exactly as over vLLM."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from langchain_core.outputs import Generation

from langchain_semantic_reuse import ChatSemanticReuse, SemanticReuseCache
from langchain_semantic_reuse import SemanticReuseLLM as LangChainLLM
from llama_index.llms.semantic_reuse import SemanticReuseLLM as LlamaLLM
from semantic_reuse import (
    CachedAnswer,
    Completion,
    GenerationParams,
    ReuseClient,
    ReuseEngine,
    ReuseOptions,
    ReuseRequest,
)
from semantic_reuse.backend import PromptInput
from semantic_reuse.spi import HomeLoop
from tests.conftest import EngineFactory

MODEL = "scripted"
Q = "How do I reset my password?"


class Counting:
    """The model: answers with a numbered text (a regeneration shows)."""

    model_name = None

    def __init__(self) -> None:
        self.calls = 0

    async def stream(self, request: ReuseRequest) -> AsyncIterator[str | CachedAnswer]:
        self.calls += 1
        text = f"answer #{self.calls}"
        yield text
        yield CachedAnswer(text, source_prompt=request.semantic_text)


class EngineClient(ReuseClient):
    """A `ReuseClient` over an engine and `Counting`, at home on the test's loop."""

    def __init__(self, engine: ReuseEngine, backend: Counting) -> None:
        super().__init__(HomeLoop(asyncio.get_running_loop()))
        self.engine, self.backend = engine, backend
        self.options: list[ReuseOptions] = []

    @property
    def model_name(self) -> str:
        return MODEL

    async def context_window(self) -> int | None:
        return None

    async def _stream(
        self, prompt: PromptInput, params: GenerationParams, options: ReuseOptions
    ) -> AsyncIterator[str | Completion]:
        self.options.append(options)
        scoped = options.with_model(MODEL).replace(params=params.as_dict())
        stream = self.engine.stream(prompt, self.backend, options=scoped)
        async for delta in stream:
            yield delta
        yield Completion(stream.result.text, stream.result.info, model=MODEL)

    async def reuse_engine(self) -> ReuseEngine:
        return self.engine

    async def _aclose(self) -> None:
        return None


@pytest.fixture
def engine(make_engine: EngineFactory) -> ReuseEngine:
    engine: ReuseEngine = make_engine(features={"enable_nlp_enhancement": False})
    return engine


def stored(engine: ReuseEngine, key: str, namespace: str = "default") -> CachedAnswer:
    answer = engine.cache.memory.get_nowait(namespace, key)
    assert answer is not None
    return answer


@pytest.mark.parametrize("frontend", ["langchain-chat", "langchain-llm", "llamaindex", "client"])
async def test_ttl_and_tags_per_model_and_per_call(engine: ReuseEngine, frontend: str) -> None:
    backend = Counting()
    client = EngineClient(engine, backend)
    settings: dict[str, Any] = {"client": client, "ttl_s": 600, "reuse_tags": ["kb"]}

    async def ask(**call: Any) -> str:
        if frontend == "langchain-chat":
            return str((await ChatSemanticReuse(**settings).ainvoke(Q, **call)).content)
        if frontend == "langchain-llm":
            return await LangChainLLM(**settings).ainvoke(Q, **call)
        if frontend == "llamaindex":
            return (await LlamaLLM(**settings).acomplete(Q, **call)).text
        tags = [*settings["reuse_tags"], *call.pop("reuse_tags", [])]
        options = ReuseOptions(ttl_s=call.pop("ttl_s", 600), tags=tags, **call)
        return (await client.acomplete(Q, options=options)).text

    before = time.time()
    assert await ask(reuse_tags=["doc-7"], ttl_s=60) == "answer #1"
    assert (client.options[-1].ttl_s, client.options[-1].tags) == (60.0, ("doc-7", "kb"))
    await engine.flush()
    key = engine.request(Q, client.options[-1].with_model(MODEL)).hash_id
    if frontend != "client":  # the classes pass their sampling parameters: another key
        key = next(k for (ns, k) in engine.cache.memory._entries if ns == "default")
    answer = stored(engine, key)
    assert answer.tags == ("doc-7", "kb")
    assert answer.expires_at is not None
    assert before + 60 <= answer.expires_at <= time.time() + 60
    assert await ask() == "answer #1"  # reused
    await engine.invalidate_tag("doc-7")
    assert await ask() == "answer #2"  # retired: generated again
    assert backend.calls == 2
    if frontend == "client":  # the client takes `ReuseOptions` keywords
        with pytest.raises(TypeError, match="tags"):
            await client.acomplete(Q, tags="doc-7")
    else:
        with pytest.raises((TypeError, ValueError), match="reuse_tags"):
            await ask(reuse_tags="doc-7")


async def test_the_langchain_cache_stores_with_its_lifecycle(engine: ReuseEngine) -> None:
    llm_string = str(sorted({"_type": "scripted", "model_name": MODEL}.items()))
    cache = SemanticReuseCache(engine, ttl_s=120, tags=["kb"])
    per_doc = cache.with_options(tags=["doc-3"], sliding=True)
    assert per_doc.engine is engine
    assert (per_doc.ttl_s, per_doc.sliding, per_doc.tags) == (120.0, True, ("doc-3",))
    await per_doc.aupdate(Q, llm_string, [Generation(text="Use the reset link.")])
    await cache.aupdate("What is Redis?", llm_string, [Generation(text="A data store.")])
    await engine.flush()
    hit = await cache.alookup("How can I reset my password?", llm_string)
    assert hit is not None
    assert hit[0].text == "Use the reset link."
    await engine.invalidate_tag("doc-3")
    assert await cache.alookup(Q, llm_string) is None
    assert await cache.alookup("What is Redis?", llm_string) is not None
    with pytest.raises(ValueError, match="ttl_s"):
        SemanticReuseCache(engine, ttl_s=-1)
    with pytest.raises(TypeError, match="unexpected"):
        cache.with_options(ttl=3)
    with pytest.raises(ValueError, match="sliding"):
        ChatSemanticReuse(client=EngineClient(engine, Counting()), sliding="maybe")
    with pytest.raises(ValueError, match="ttl_s"):
        LlamaLLM(client=EngineClient(engine, Counting()), ttl_s=0)


# A paraphrase the bundled English verifier scores ~0.8: served at the default budget (0.2),
# refused at 0.05 (tests/integration/semantic/test_verifier.py).
STORED, ASKED = "Which city is the capital of France?", "What is the capital of France?"


@pytest.mark.parametrize("frontend", ["langchain-chat", "langchain-llm", "llamaindex", "client"])
async def test_error_budget_per_model_and_per_call(engine: ReuseEngine, frontend: str) -> None:
    backend = Counting()
    client = EngineClient(engine, backend)

    async def ask(question: str, model_budget: float | None = None, **call: Any) -> str:
        settings: dict[str, Any] = {"client": client, "max_error_rate": model_budget}
        if frontend == "langchain-chat":
            return str((await ChatSemanticReuse(**settings).ainvoke(question, **call)).content)
        if frontend == "langchain-llm":
            return await LangChainLLM(**settings).ainvoke(question, **call)
        if frontend == "llamaindex":
            return (await LlamaLLM(**settings).acomplete(question, **call)).text
        budget = call.pop("max_error_rate", model_budget)
        options = ReuseOptions(max_error_rate=budget, **call)
        return (await client.acomplete(question, options=options)).text

    async def seeded(namespace: str) -> str:
        stored = await ask(STORED, namespace=namespace)
        await engine.flush()
        return stored

    # The model's budget: tight refuses the paraphrase (generated), the default serves it.
    await seeded("tight")
    assert await ask(ASKED, 0.05, namespace="tight") == "answer #2"
    assert client.options[-1].max_error_rate == 0.05
    loose = await seeded("default")
    assert await ask(ASKED, namespace="default") == loose
    assert client.options[-1].max_error_rate is None
    # The call's budget replaces the model's; a call's threshold replaces the model's budget.
    loose = await seeded("per-call")
    assert await ask(ASKED, 0.05, namespace="per-call", max_error_rate=0.2) == loose
    if frontend != "client":
        # the cosine rule (cosine ~0.94 >= 0.9) serves what the tight budget refused
        assert await ask(ASKED, 0.05, namespace="per-call", threshold=0.9) == loose
        assert (client.options[-1].threshold, client.options[-1].max_error_rate) == (0.9, None)
    assert backend.calls == 4  # three seeds and the tight budget's refusal
    for bad in (0, 1.0, "low"):
        with pytest.raises((TypeError, ValueError), match="max_error_rate"):
            await ask(ASKED, namespace="x", max_error_rate=bad)
    if frontend != "client":
        with pytest.raises((TypeError, ValueError), match="max_error_rate"):
            await ask(ASKED, 1.5)
        with pytest.raises((TypeError, ValueError), match="exclusive"):
            ChatSemanticReuse(client=client, threshold=0.9, max_error_rate=0.1)


async def test_the_langchain_cache_takes_an_error_budget(engine: ReuseEngine) -> None:
    llm_string = str(sorted({"_type": "scripted", "model_name": MODEL}.items()))
    cache = SemanticReuseCache(engine)
    await cache.aupdate(STORED, llm_string, [Generation(text="Paris.")])
    await engine.flush()
    tight = SemanticReuseCache(engine, max_error_rate=0.05)
    assert await tight.alookup(ASKED, llm_string) is None
    hit = await cache.alookup(ASKED, llm_string)
    assert hit is not None
    assert hit[0].text == "Paris."
    assert await cache.with_options(max_error_rate=0.05).alookup(ASKED, llm_string) is None
    loosened = tight.with_options(threshold=0.9)  # a threshold replaces the budget
    assert (loosened.threshold, loosened.max_error_rate) == (0.9, None)
    with pytest.raises(ValueError, match="max_error_rate"):
        SemanticReuseCache(engine, max_error_rate=1.0)
    with pytest.raises(ValueError, match="exclusive"):
        SemanticReuseCache(engine, threshold=0.9, max_error_rate=0.1)
