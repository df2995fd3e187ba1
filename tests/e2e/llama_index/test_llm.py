"""LlamaIndex's SemanticReuseLLM on the real vLLM engine (CPU, SmolLM2-135M): the eight
methods, a VectorStoreIndex query engine, a chat engine and `Settings.llm`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.chat_engine import SimpleChatEngine
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.llm import LLMChatEndEvent

from llama_index.embeddings.semantic_reuse import SemanticReuseEmbedding
from llama_index.llms.semantic_reuse import SemanticReuseLLM

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

ASKED = "How do I reset my password?"
PARAPHRASE = "How can I reset my password?"


@pytest.fixture
def llm(vllm_client: Any, tenant: str) -> SemanticReuseLLM:
    return SemanticReuseLLM(client=vllm_client, max_tokens=32, namespace=tenant)


def kind(response: Any) -> str:
    return str(response.additional_kwargs["reuse"]["kind"])


def test_metadata_comes_from_the_real_model(llm: SemanticReuseLLM) -> None:
    meta = llm.metadata
    assert meta.context_window == 2048  # the engine's max_model_len
    assert meta.num_output == 32
    assert meta.is_chat_model
    assert meta.model_name == "SmolLM2-135M-Instruct"
    assert SemanticReuseLLM(client=llm.client, context_window=1024).metadata.context_window == 1024


def test_sync_methods(llm: SemanticReuseLLM) -> None:
    first = llm.complete(ASKED)
    assert first.text
    assert kind(first) == "miss"
    assert kind(llm.complete(PARAPHRASE)) == "semantic"
    streamed = list(llm.stream_complete(PARAPHRASE))
    assert streamed[-1].text == first.text
    assert "".join(r.delta or "" for r in streamed) == first.text
    assert kind(streamed[-1]) == "exact"  # the reused paraphrase was stored for itself
    # chat with the same single user message is the same request as complete's
    chat = llm.chat([ChatMessage(role=MessageRole.USER, content=PARAPHRASE)])
    assert chat.message.content == first.text
    assert chat.message.additional_kwargs["reuse"]["kind"] == "exact"
    chunks = list(llm.stream_chat([ChatMessage(role=MessageRole.USER, content=ASKED)]))
    assert chunks[-1].message.content == first.text
    assert kind(chunks[-1]) == "exact"


async def test_async_methods(llm: SemanticReuseLLM) -> None:
    first = await llm.acomplete(ASKED)
    assert kind(first) == "miss"
    assert kind(await llm.acomplete(PARAPHRASE)) == "semantic"
    responses = [r async for r in await llm.astream_complete(PARAPHRASE)]
    assert responses[-1].text == first.text
    messages = [ChatMessage(role=MessageRole.USER, content=PARAPHRASE)]
    chat = await llm.achat(messages)
    assert chat.message.content == first.text
    chunks = [c async for c in await llm.astream_chat(messages)]
    assert chunks[-1].message.content == first.text
    assert kind(chunks[-1]) == "exact"
    # another conversation (a system prompt) is another fingerprint: no reuse
    other = [ChatMessage(role=MessageRole.SYSTEM, content="Answer in one word."), *messages]
    assert kind(await llm.achat(other)) == "miss"


DOCUMENTS = [
    "Acme's support desk is open from 9 am to 5 pm, Monday to Friday.",
    "To reset an Acme password, open Settings, choose Security and press Reset password.",
    "Acme ships orders within two business days from its warehouse in Lyon.",
]


@pytest.fixture
def global_settings(llm: SemanticReuseLLM, minilm: Any) -> Iterator[SemanticReuseLLM]:
    """`Settings.llm` and `Settings.embed_model` set for one test, restored after."""
    saved_llm, saved_embed = Settings._llm, Settings._embed_model
    Settings.llm = llm
    Settings.embed_model = SemanticReuseEmbedding(minilm)
    yield llm
    Settings._llm, Settings._embed_model = saved_llm, saved_embed


class ChatResponses(BaseEventHandler):
    """Collects the responses of LLM chat calls from LlamaIndex's instrumentation."""

    responses: list[Any]

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        if isinstance(event, LLMChatEndEvent):
            self.responses.append(event.response)


@pytest.fixture
def llm_responses() -> Iterator[list[Any]]:
    handler = ChatResponses(responses=[])
    dispatcher = get_dispatcher()
    dispatcher.add_event_handler(handler)
    yield handler.responses
    dispatcher.event_handlers.remove(handler)


def test_query_engine_answers_a_paraphrase_from_reuse(
    global_settings: SemanticReuseLLM, llm_responses: list[Any]
) -> None:
    assert Settings.llm is global_settings
    index = VectorStoreIndex.from_documents([Document(text=t) for t in DOCUMENTS])
    engine = index.as_query_engine(similarity_top_k=1)
    first = engine.query("How do I reset my Acme password?")
    second = engine.query("How can I reset my Acme password?")
    assert second.source_nodes[0].node.get_content() == DOCUMENTS[1]
    assert str(second) == str(first)
    # LlamaIndex puts the retrieved text and the question into one prompt: the question
    # inside it is what was paraphrased, and that prompt was reused.
    assert [kind(r) for r in llm_responses] == ["miss", "semantic"]


async def test_async_query_engine(global_settings: SemanticReuseLLM) -> None:
    index = await asyncio.to_thread(
        VectorStoreIndex.from_documents, [Document(text=t) for t in DOCUMENTS]
    )
    engine = index.as_query_engine(similarity_top_k=1)
    first = await engine.aquery("When is the Acme support desk open?")
    second = await engine.aquery("When is the Acme support desk open?")
    assert str(second) == str(first)


def test_chat_engine_reuses_within_a_conversation(llm: SemanticReuseLLM) -> None:
    engine = SimpleChatEngine.from_defaults(llm=llm, system_prompt="You are a support agent.")
    first = engine.chat(ASKED)
    engine.reset()
    again = engine.chat(PARAPHRASE)
    assert str(again) == str(first)
    follow_up = engine.chat("Thanks. And how long does it take?")  # a longer conversation
    assert str(follow_up)


def test_embedding_adapter_is_the_bundled_embedder(minilm: Any) -> None:
    embedding = SemanticReuseEmbedding(minilm)
    a, b = embedding.get_text_embedding_batch([ASKED, PARAPHRASE])
    assert len(a) == minilm.dim
    assert embedding.similarity(a, b) > 0.9
    with pytest.raises(TypeError, match="embedder"):
        SemanticReuseEmbedding(object())  # type: ignore[arg-type]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="threshold"):
        SemanticReuseLLM(threshold=-0.1)
    with pytest.raises(ValueError, match="max_tokens"):
        SemanticReuseLLM(max_tokens=0)
