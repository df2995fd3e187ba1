"""SemanticReuseCache on a real ReuseEngine (MiniLM, Qdrant Edge, spaCy), with LangChain's
standard cache suites, real LangChain chains and a tool-calling loop.

The chat model is LangChain's own scripted `GenericFakeChatModel` (counted): what is under
test is the cache between LangChain and the model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from langchain_core.caches import BaseCache
from langchain_core.globals import get_llm_cache, set_llm_cache
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.load import dumps
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, ChatResult, Generation
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool, tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_tests.integration_tests import AsyncCacheTestSuite, SyncCacheTestSuite

from langchain_semantic_reuse import SemanticReuseCache
from langchain_semantic_reuse._cache_scope import parse_llm_string
from tests.conftest import EngineFactory

LLM_STRING = "[('_type', 'scripted-chat'), ('model_name', 'model-a'), ('stop', None)]"
OTHER_MODEL = "[('_type', 'scripted-chat'), ('model_name', 'model-b'), ('stop', None)]"
ASKED = "How do I reset my password?"
PARAPHRASE = "How can I reset my password?"


def chat(*messages: BaseMessage) -> str:
    """The prompt a LangChain chat model hands its cache."""
    return dumps(list(messages))


def reply(text: str, **usage: int) -> list[ChatGeneration]:
    message = AIMessage(content=text, usage_metadata=usage or None)  # type: ignore[arg-type]
    return [ChatGeneration(message=message, generation_info={"finish_reason": "stop"})]


# -- LangChain's standard suites, unchanged ------------------------------------------------


class TestStandardSyncCache(SyncCacheTestSuite):
    @pytest.fixture
    def cache(self, make_engine: EngineFactory) -> BaseCache:
        return SemanticReuseCache(make_engine())


class TestStandardAsyncCache(AsyncCacheTestSuite):
    @pytest.fixture
    async def cache(self, make_engine: EngineFactory) -> BaseCache:
        return SemanticReuseCache(make_engine())


# -- semantic behaviour ----------------------------------------------------------------------


@pytest.fixture
def lc_cache(make_engine: EngineFactory) -> SemanticReuseCache:
    return SemanticReuseCache(make_engine(), namespace="tenant-a")


async def test_paraphrased_chat_prompt_hits(lc_cache: SemanticReuseCache) -> None:
    stored = reply("Open Settings, then 'Forgot password'.")
    await lc_cache.aupdate(chat(HumanMessage(ASKED)), LLM_STRING, stored)
    hit = await lc_cache.alookup(chat(HumanMessage(PARAPHRASE)), LLM_STRING)
    assert isinstance(hit, list)
    assert hit == stored
    # The sync API, called here inside a running event loop, sees the same answers.
    assert lc_cache.lookup(chat(HumanMessage(PARAPHRASE)), LLM_STRING) == stored
    assert (
        await lc_cache.alookup(chat(HumanMessage("How do I delete my account?")), LLM_STRING)
        is None
    )


async def test_another_system_prompt_or_earlier_turn_misses(lc_cache: SemanticReuseCache) -> None:
    french = SystemMessage("Answer in French.")
    earlier = [HumanMessage("Hi, I use the mobile app."), AIMessage("Hello! How can I help?")]
    stored = reply("Ouvrez les paramètres.")
    await lc_cache.aupdate(chat(french, *earlier, HumanMessage(ASKED)), LLM_STRING, stored)
    assert (
        await lc_cache.alookup(chat(french, *earlier, HumanMessage(PARAPHRASE)), LLM_STRING)
        == stored
    )
    german = SystemMessage("Answer in German.")
    assert await lc_cache.alookup(chat(german, *earlier, HumanMessage(ASKED)), LLM_STRING) is None
    other_turn = [HumanMessage("Hi, I use the website."), AIMessage("Hello! How can I help?")]
    assert (
        await lc_cache.alookup(chat(french, *other_turn, HumanMessage(ASKED)), LLM_STRING) is None
    )
    assert await lc_cache.alookup(chat(french, HumanMessage(ASKED)), LLM_STRING) is None


async def test_another_model_or_opaque_llm_string_misses(lc_cache: SemanticReuseCache) -> None:
    stored = reply("Open Settings.")
    await lc_cache.aupdate(chat(HumanMessage(ASKED)), LLM_STRING, stored)
    assert await lc_cache.alookup(chat(HumanMessage(ASKED)), OTHER_MODEL) is None
    assert await lc_cache.alookup(chat(HumanMessage(PARAPHRASE)), OTHER_MODEL) is None
    assert await lc_cache.alookup(chat(HumanMessage(ASKED)), "some other configuration") is None
    hotter = LLM_STRING.replace("('stop', None)", "('stop', None), ('temperature', 0.5)")
    assert await lc_cache.alookup(chat(HumanMessage(ASKED)), hotter) is None
    assert await lc_cache.alookup(chat(HumanMessage(ASKED)), LLM_STRING) == stored


async def test_namespaces_are_isolated(make_engine: EngineFactory) -> None:
    engine = make_engine()
    tenant_a = SemanticReuseCache(engine, namespace="tenant-a")
    tenant_b = SemanticReuseCache(engine, namespace="tenant-b")
    stored = reply("Tenant A's answer.")
    await tenant_a.aupdate(chat(HumanMessage(ASKED)), LLM_STRING, stored)
    assert await tenant_b.alookup(chat(HumanMessage(ASKED)), LLM_STRING) is None
    assert await tenant_b.alookup(chat(HumanMessage(PARAPHRASE)), LLM_STRING) is None
    await tenant_b.aclear()
    assert await tenant_a.alookup(chat(HumanMessage(PARAPHRASE)), LLM_STRING) == stored
    await tenant_b.aclear(namespace="tenant-a")  # a namespace per call
    assert await tenant_a.alookup(chat(HumanMessage(ASKED)), LLM_STRING) is None
    with pytest.raises(ValueError, match="namespace"):
        SemanticReuseCache(engine, namespace="not a tenant")
    with pytest.raises(ValueError, match="threshold"):
        SemanticReuseCache(engine, threshold=1.5)
    with pytest.raises(TypeError, match="unexpected"):
        await tenant_a.aclear(tenant="tenant-a")


async def test_chat_generation_with_usage_metadata_round_trips(
    lc_cache: SemanticReuseCache,
) -> None:
    message = AIMessage(
        content="Use the reset link.",
        usage_metadata={"input_tokens": 12, "output_tokens": 5, "total_tokens": 17},
        response_metadata={"model_name": "model-a", "finish_reason": "stop"},
        tool_calls=[{"name": "send_reset_link", "args": {"user": "ana"}, "id": "call_1"}],
        id="lc_run-1",
    )
    stored = [ChatGeneration(message=message, generation_info={"finish_reason": "stop"})]
    await lc_cache.aupdate(chat(HumanMessage(ASKED)), LLM_STRING, stored)
    for prompt in (ASKED, PARAPHRASE):
        hit = await lc_cache.alookup(chat(HumanMessage(prompt)), LLM_STRING)
        assert hit == stored
        assert hit is not None
        assert isinstance(hit[0], ChatGeneration)
        assert hit[0].message.usage_metadata == message.usage_metadata  # type: ignore[attr-defined]


async def test_plain_text_prompts_of_string_llms(lc_cache: SemanticReuseCache) -> None:
    stored = [Generation(text="Open Settings.", generation_info={"reason": "stop"})]
    lc_cache.update(ASKED, LLM_STRING, stored)
    assert lc_cache.lookup(PARAPHRASE, LLM_STRING) == stored
    # A chat with the same words is another request.
    assert await lc_cache.alookup(chat(HumanMessage(ASKED)), LLM_STRING) is None


def test_llm_string_parsing() -> None:
    assert parse_llm_string(LLM_STRING) == ("scripted-chat/model-a", {})
    model, params = parse_llm_string(
        "[('_type', 'x'), ('model', 'm'), ('temperature', 0.0), ('logprobs', False)]"
    )
    assert (model, params) == ("x/m", {"temperature": 0})
    serialized = (
        '{"id": ["langchain", "chat_models", "acme", "ChatAcme"], "kwargs": {"model_name": '
        '"acme-1", "max_tokens": 64}, "lc": 1, "type": "constructor"}'
        "---[('stop', ['\\n']), ('temperature', 0.2)]"
    )
    assert parse_llm_string(serialized) == (
        "langchain.chat_models.acme.ChatAcme/acme-1",
        {"max_tokens": 64, "stop": ["\n"], "temperature": 0.2},
    )
    opaque = parse_llm_string("Sample LLM string configuration.")
    assert opaque[0].startswith("llm-string:")
    assert opaque[1] is None
    assert parse_llm_string("[('tools', <object at 0x1>)]")[1] is None  # non-literal value


# -- LangChain end to end -------------------------------------------------------------------


class ScriptedChatModel(GenericFakeChatModel):
    """LangChain's scripted chat model, counting the calls that reach it."""

    calls: int = 0

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.calls += 1
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)

    def bind_tools(
        self, tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool], **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)


@pytest.fixture
def global_cache(lc_cache: SemanticReuseCache) -> Iterator[SemanticReuseCache]:
    previous = get_llm_cache()
    set_llm_cache(lc_cache)
    yield lc_cache
    set_llm_cache(previous)


async def test_lcel_chain_reaches_the_model_once_for_paraphrases(
    global_cache: SemanticReuseCache,
) -> None:
    model = ScriptedChatModel(messages=iter(["Open Settings, then 'Forgot password'.", "unused"]))
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are a support assistant."), ("human", "{question}")]
    )
    chain = prompt | model | StrOutputParser()
    first = chain.invoke({"question": ASKED})  # sync, inside this running loop
    second = await chain.ainvoke({"question": PARAPHRASE})
    assert first == second == "Open Settings, then 'Forgot password'."
    assert model.calls == 1


async def test_tool_calling_loop_reuses_its_second_run(global_cache: SemanticReuseCache) -> None:
    tool_runs: list[str] = []

    @tool
    def order_status(order_id: str) -> str:
        """Look up the shipping status of an order."""
        tool_runs.append(order_id)
        return f"Order {order_id} shipped yesterday."

    model = ScriptedChatModel(
        messages=iter(
            [
                AIMessage(
                    content="",
                    tool_calls=[
                        {"name": "order_status", "args": {"order_id": "A-17"}, "id": "call_1"}
                    ],
                ),
                AIMessage(content="Your order A-17 shipped yesterday."),
            ]
        )
    )
    agent = model.bind_tools([order_status])

    async def run(question: str) -> str:
        messages: list[BaseMessage] = [
            SystemMessage("You help customers with their orders."),
            HumanMessage(question),
        ]
        for _ in range(4):
            answer = await agent.ainvoke(messages)
            messages.append(answer)
            if not answer.tool_calls:
                return str(answer.content)
            messages.extend([await order_status.ainvoke(call) for call in answer.tool_calls])
        raise AssertionError("the loop did not finish")

    assert await run("Where is my order A-17?") == "Your order A-17 shipped yesterday."
    assert model.calls == 2
    assert await run("Where's my order A-17?") == "Your order A-17 shipped yesterday."
    assert model.calls == 2  # both steps of the second run came from the cache
    assert tool_runs == ["A-17", "A-17"]  # tools still run: only model calls are reused
