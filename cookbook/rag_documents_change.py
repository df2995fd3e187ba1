"""Recipe: a RAG app whose documents change (preload, tags, invalidate by tag).

Shows: curated answers preloaded into a namespace (what `semantic-reuse load FILE` does);
every generated answer stored with the id of the document it was drawn from
(`tags=[...]`); when a document changes, `invalidate_tag` retires exactly the answers drawn
from it, in every tier (and every process sharing Redis), so the next question is answered
from the new text while answers from the other documents are still reused. The app keys
reuse on the question alone (the retrieved text is not part of the prompt it caches), which
is what makes the tags necessary. The model is a stand-in that quotes the retrieved
document, behind a `CallableBackend`: any async function works the same way.
Runs: offline, no vLLM; about 20 s on a 2-core machine, most of it loading the embedder.
Run: .venv/bin/python cookbook/rag_documents_change.py
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from semantic_reuse import CallableBackend, HandlerConfig, ReuseEngine

DOCUMENTS = {
    "returns": "Items can be returned within 30 days of delivery.",
    "shipping": "Orders ship within 2 business days.",
}
CURATED = [  # what `semantic-reuse load` reads, one JSON object per line
    {"question": "How do I contact support?", "answer": "Write to help@example.com.",
     "tags": ["curated"]},
]  # fmt: skip


def retrieve(question: str) -> str:
    """The retriever: the id of the document that answers the question."""
    return "returns" if "return" in question.lower() else "shipping"


async def model(prompt: Any, _params: Any) -> str:
    """The model: answers from the retrieved document (a real app calls its LLM here)."""
    return f"{DOCUMENTS[retrieve(str(prompt))]} (source: {retrieve(str(prompt))})"


async def ask(engine: ReuseEngine, question: str) -> None:
    document = retrieve(question)
    result = await engine.generate(
        question, CallableBackend(model), namespace="shop", tags=[f"doc:{document}"]
    )
    print(f"{question!r:48} -> {result.info.kind.value:8} {result.text!r}")


async def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        config = HandlerConfig(cache={"qdrant_path": Path(folder)}, semantic={"embedder": "minilm"})
        async with ReuseEngine(config) as engine:
            report = await engine.load(CURATED, namespace="shop")
            print(f"preloaded {report.stored} curated answer(s)")
            for question in [
                "How long do I have to return an item?",
                "How many days do I have to return an item?",  # a paraphrase
                "When will my order ship?",
                "How do I contact support?",  # the curated answer
            ]:
                await ask(engine, question)
            # The returns policy changes: retire every answer drawn from it, nothing else.
            DOCUMENTS["returns"] = "Items can be returned within 14 days of delivery."
            await engine.invalidate_tag("doc:returns", namespace="shop")
            print("returns policy changed: answers tagged doc:returns retired")
            await ask(engine, "How long do I have to return an item?")
            await ask(engine, "When will my order ship?")
            shop = engine.stats()["savings"]["namespaces"]["shop"]
            print(f"shop: {shop['requests']} requests, hit rate {shop['hit_rate']:.0%}, "
                  f"{shop['reused_tokens']} generated tokens avoided")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
