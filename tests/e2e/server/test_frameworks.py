"""Unchanged framework clients pointed at the server: LangChain's `ChatOpenAI` in an LCEL
chain and LlamaIndex's `OpenAILike` in a query engine reuse without knowing it."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.server.conftest import ADMIN_KEY, KEYS, MODEL, Served


def _kinds(served: Served, namespace: str) -> dict[str, float]:
    """The server's requests of one namespace by kind (admin stats)."""
    stats = httpx.get(f"{served.url}/admin/stats",
                      headers={"authorization": f"Bearer {ADMIN_KEY}"}).json()  # fmt: skip
    kinds: dict[str, float] = {}
    for labels, count in stats["server"]["counters"]["requests_total"].items():
        parts = dict(p.split("=", 1) for p in labels.split(","))
        if parts["namespace"] == namespace:
            kinds[parts["kind"]] = kinds.get(parts["kind"], 0) + count
    return kinds


def test_langchain_chat_openai_in_an_lcel_chain(served: Served, space: dict[str, str]) -> None:
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(base_url=served.base_url, api_key=KEYS["acme"], model=MODEL,
                     max_tokens=24, temperature=0, default_headers=space,
                     include_response_headers=True)  # fmt: skip
    prompt = ChatPromptTemplate.from_messages([("user", "Tell me a fact about {topic}.")])
    answers = [(prompt | llm | StrOutputParser()).invoke({"topic": "owls"}) for _ in range(2)]
    assert answers[0] == answers[1]
    assert answers[0]
    message: Any = (prompt | llm).invoke({"topic": "owls"})
    assert message.response_metadata["headers"]["x-semantic-reuse"] == "exact"
    streamed = "".join(str(c.content) for c in (prompt | llm).stream({"topic": "owls"}))
    assert streamed == answers[0]
    namespace = f"acme.{space['x-semantic-reuse-namespace']}"
    assert _kinds(served, namespace) == {"miss": 1, "exact": 3}


def test_llamaindex_openai_like_in_a_query_engine(served: Served, space: dict[str, str]) -> None:
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.llms.openai_like import OpenAILike

    from llama_index.embeddings.semantic_reuse import SemanticReuseEmbedding

    llm = OpenAILike(api_base=served.base_url, api_key=KEYS["beta"], model=MODEL,
                     is_chat_model=True, max_tokens=24, temperature=0, context_window=2048,
                     default_headers=space)  # fmt: skip
    documents = [Document(text="The office opens at nine and closes at five."),
                 Document(text="Parking is free for visitors on weekends.")]  # fmt: skip
    index = VectorStoreIndex.from_documents(documents, embed_model=SemanticReuseEmbedding())
    engine = index.as_query_engine(llm=llm, similarity_top_k=1)
    first = str(engine.query("When does the office open?"))
    second = str(engine.query("When does the office open?"))
    assert first == second
    assert first
    namespace = f"beta.{space['x-semantic-reuse-namespace']}"
    assert _kinds(served, namespace) == {"miss": 1, "exact": 1}
