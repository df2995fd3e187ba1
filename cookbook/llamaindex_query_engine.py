"""Recipe: a LlamaIndex query engine with reuse.

Shows: `Settings.llm = SemanticReuseLLM(...)` and the bundled embedder as
`Settings.embed_model`, a `VectorStoreIndex` over three documents, and a query engine
that answers a paraphrased question from reuse (the prompt LlamaIndex builds, retrieved
text plus question, is compared by meaning). Everything runs offline.
Runs: offline on the default model (SmolLM2-135M-Instruct, vLLM's CPU build); about 60 s
on a 2-core machine, most of it starting vLLM.
Run: .venv/bin/python cookbook/llamaindex_query_engine.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from llama_index.core import Document, Settings, VectorStoreIndex

from llama_index.embeddings.semantic_reuse import SemanticReuseEmbedding
from llama_index.llms.semantic_reuse import SemanticReuseLLM
from semantic_reuse import HandlerConfig

DOCUMENTS = [
    "Acme's support desk is open from 9 am to 5 pm, Monday to Friday.",
    "To reset an Acme password, open Settings, choose Security and press Reset password.",
    "Acme ships orders within two business days from its warehouse in Lyon.",
]


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        llm = SemanticReuseLLM(config=HandlerConfig(cache={"qdrant_path": Path(folder)}),
                               max_tokens=48)  # fmt: skip
        Settings.llm = llm
        Settings.embed_model = SemanticReuseEmbedding()
        index = VectorStoreIndex.from_documents([Document(text=t) for t in DOCUMENTS])
        engine = index.as_query_engine(similarity_top_k=1)
        try:
            for question in [
                "How do I reset my Acme password?",
                "How can I reset my Acme password?",
                "When is the Acme support desk open?",
            ]:
                start = time.perf_counter()
                response = engine.query(question)
                print(f"{question!r:42} {time.perf_counter() - start:5.2f} s  "
                      f"{str(response)[:60]!r}")  # fmt: skip
        finally:
            llm.close()


if __name__ == "__main__":
    main()
