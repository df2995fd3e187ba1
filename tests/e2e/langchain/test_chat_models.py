"""ChatSemanticReuse and SemanticReuseLLM on the real vLLM engine (CPU, SmolLM2-135M):
LangChain's standard chat-model suites unchanged, then what reuse adds: LCEL chains,
batches with duplicates, streaming that reuses, tenants, bad settings."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import LLMResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_semantic_reuse import ChatSemanticReuse, SemanticReuseLLM

# The engine lives on the session's loop (tests/conftest.py): async tests run there too.
pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

ASKED = "How do I reset my password?"
PARAPHRASE = "How can I reset my password?"


class TestChatSemanticReuseUnit(ChatModelUnitTests):
    """Construction, standard params, env: nothing here calls the model."""

    @property
    def chat_model_class(self) -> type[ChatSemanticReuse]:
        return ChatSemanticReuse

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": "SmolLM2-135M-Instruct"}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {"SEMANTIC_REUSE_API_KEY": "secret-from-env"},
            {"base_url": "http://127.0.0.1:9/v1", "model": "m"},
            {"api_key": "secret-from-env"},
        )

    @property
    def supports_model_override(self) -> bool:
        return False  # one model per in-process engine


class TestChatSemanticReuseIntegration(ChatModelIntegrationTests):
    """The standard integration suite against the default CPU model, reuse on."""

    @pytest.fixture(autouse=True)
    def _shared_client(self, vllm_client: Any) -> None:
        self._client = vllm_client

    @property
    def chat_model_class(self) -> type[ChatSemanticReuse]:
        return ChatSemanticReuse

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"client": self._client, "max_tokens": 32, "namespace": "standard-suite"}

    @property
    def supports_model_override(self) -> bool:
        return False  # one model per in-process engine

    @property
    def has_tool_calling(self) -> bool:
        return False  # SmolLM2-135M has no tool-calling template

    @property
    def has_structured_output(self) -> bool:
        return False

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supported_usage_metadata_details(self) -> dict[str, list[Any]]:
        return {"invoke": [], "stream": []}


class ReuseKinds(BaseCallbackHandler):
    """Records what each model call reused, as LangChain reports it to callbacks."""

    def __init__(self) -> None:
        self.kinds: list[str] = []

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        for generations in response.generations:
            for generation in generations:
                message = getattr(generation, "message", None)
                meta = message.response_metadata if message else generation.generation_info
                self.kinds.append((meta or {})["reuse"]["kind"])


@pytest.fixture
def chat(vllm_client: Any, tenant: str) -> ChatSemanticReuse:
    return ChatSemanticReuse(client=vllm_client, max_tokens=32, namespace=tenant)


async def test_lcel_chain_with_paraphrased_input_reaches_the_model_once(
    chat: ChatSemanticReuse,
) -> None:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are a concise support agent."), ("human", "{question}")]
    )
    chain = prompt | chat | StrOutputParser()
    kinds = ReuseKinds()
    first = await chain.ainvoke({"question": ASKED}, config={"callbacks": [kinds]})
    second = await chain.ainvoke({"question": PARAPHRASE}, config={"callbacks": [kinds]})
    assert kinds.kinds == ["miss", "semantic"]
    assert first
    assert second == first


def test_sync_chain_and_another_system_prompt(chat: ChatSemanticReuse) -> None:
    kinds = ReuseKinds()
    config: Any = {"callbacks": [kinds]}
    first = chat.invoke([HumanMessage(ASKED)], config=config)
    again = chat.invoke([HumanMessage(PARAPHRASE)], config=config)
    other = chat.invoke([SystemMessage("Answer in French."), HumanMessage(ASKED)], config=config)
    assert kinds.kinds == ["miss", "semantic", "miss"]  # the system prompt is the fingerprint
    assert again.content == first.content
    assert isinstance(other, AIMessage)


@pytest.mark.parametrize("mode", ["batch", "abatch"])
async def test_batch_with_duplicates_generates_each_question_once(
    chat: ChatSemanticReuse, mode: str
) -> None:
    questions = ["What is the capital of France?"] * 3 + ["Name a primary color."] * 2
    kinds = ReuseKinds()
    config: Any = {"callbacks": [kinds], "max_concurrency": 5}
    if mode == "batch":
        answers = await asyncio.to_thread(chat.batch, questions, config)
    else:
        answers = await chat.abatch(questions, config)
    texts = [a.content for a in answers]
    assert texts[0] == texts[1] == texts[2]
    assert texts[3] == texts[4]
    assert kinds.kinds.count("miss") == 2  # the duplicates shared a generation or hit
    again = await chat.abatch(questions)
    assert [a.response_metadata["reuse"]["kind"] for a in again] == ["exact"] * 5


async def test_streaming_reuses_and_reports_on_the_last_chunk(chat: ChatSemanticReuse) -> None:
    first = [c async for c in chat.astream(ASKED)]
    second = [c async for c in chat.astream(PARAPHRASE)]
    for chunks, kind in ((first, "miss"), (second, "semantic")):
        last = chunks[-1]
        assert isinstance(last, AIMessageChunk)
        assert last.chunk_position == "last"
        assert last.response_metadata["reuse"]["kind"] == kind
        assert last.usage_metadata is not None
        assert last.usage_metadata["output_tokens"] > 0
    assert "".join(str(c.content) for c in second) == "".join(str(c.content) for c in first)
    assert len(second) > 2  # a reused answer still streams in pieces


def test_sync_stream_reuses(chat: ChatSemanticReuse) -> None:
    chat.invoke(ASKED)
    chunks = list(chat.stream(PARAPHRASE))
    assert chunks[-1].response_metadata["reuse"]["kind"] == "semantic"


async def test_tenants_and_per_call_settings(chat: ChatSemanticReuse, tenant: str) -> None:
    first = await chat.ainvoke(ASKED)
    other_tenant = await chat.ainvoke(ASKED, namespace=f"{tenant}-b")
    # PARAPHRASE is reused at the defaults (the tests above); each call below generates and
    # stores its own prompt, so each asks a different paraphrase.
    exact_only = await chat.ainvoke(PARAPHRASE, reuse=False)
    strict = await chat.ainvoke("How could I reset my password?", threshold=0.999)
    assert first.response_metadata["reuse"]["kind"] == "miss"
    assert other_tenant.response_metadata["reuse"]["kind"] == "miss"
    assert exact_only.response_metadata["reuse"]["kind"] == "miss"
    assert strict.response_metadata["reuse"]["kind"] == "miss"
    bound = chat.bind(namespace=f"{tenant}-b")
    assert (await bound.ainvoke(ASKED)).response_metadata["reuse"]["kind"] == "exact"


async def test_string_llm_reuses_in_invoke_stream_and_batch(vllm_client: Any, tenant: str) -> None:
    llm = SemanticReuseLLM(client=vllm_client, max_tokens=32, namespace=tenant)
    kinds = ReuseKinds()
    first = await llm.ainvoke(ASKED, config={"callbacks": [kinds]})
    second = await asyncio.to_thread(llm.invoke, PARAPHRASE, {"callbacks": [kinds]})
    streamed = "".join([c async for c in llm.astream(PARAPHRASE)])
    batch = await llm.abatch([ASKED, ASKED], config={"callbacks": [kinds]})
    assert kinds.kinds[:2] == ["miss", "semantic"]
    assert first
    assert second == first == streamed == batch[0] == batch[1]
    result = await llm.agenerate([ASKED])
    info = result.generations[0][0].generation_info
    assert info is not None
    assert info["reuse"]["kind"] == "exact"
    assert info["model_name"] == "SmolLM2-135M-Instruct"


def test_bad_settings_are_refused_naming_the_argument() -> None:
    with pytest.raises(ValueError, match="threshold"):
        ChatSemanticReuse(threshold=1.5)
    with pytest.raises(ValueError, match="temperature"):
        ChatSemanticReuse(temperature=-1)
    with pytest.raises(ValueError, match="namespace"):
        ChatSemanticReuse(namespace="")
    with pytest.raises(ValueError, match="model is required"):
        ChatSemanticReuse(base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match="client"):
        ChatSemanticReuse(client=object())
    with pytest.raises(TypeError, match="unexpected arguments: colour"):
        ChatSemanticReuse(client=None).call_options({"colour": "red"})


async def test_question_inside_a_retrieval_prompt(chat: ChatSemanticReuse) -> None:
    """A context and a question in one human message: passing the question per call
    compares only it, so another question over the same context is not reused."""
    context = "Acme ships orders within two business days from its warehouse in Lyon."

    async def ask(question: str) -> str:
        prompt = f"Context: {context}\nAnswer the question from the context.\nQuestion: {question}"
        reply = await chat.ainvoke(prompt, question=question)
        return str(reply.response_metadata["reuse"]["kind"])

    assert await ask("How long does Acme take to ship?") == "miss"
    assert await ask("Where does Acme ship from?") == "miss"
    assert await ask("How long does it take Acme to ship?") == "semantic"
