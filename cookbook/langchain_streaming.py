"""Recipe: LangChain streaming with reuse.

Shows: `ChatSemanticReuse.stream()` consults reuse (LangChain's own caches are never
consulted by `.stream()`): the first answer streams from the model token by token, the
paraphrase streams the earlier answer in chunks, and the last chunk says what was reused
(`response_metadata["reuse"]`) with the usage (`usage_metadata`).
Runs: offline on the default model (SmolLM2-135M-Instruct, vLLM's CPU build); about 50 s
on a 2-core machine, most of it starting vLLM.
Run: .venv/bin/python cookbook/langchain_streaming.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from langchain_semantic_reuse import ChatSemanticReuse
from semantic_reuse import HandlerConfig


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        config = HandlerConfig(cache={"qdrant_path": Path(folder)})
        model = ChatSemanticReuse(config=config, max_tokens=64)
        try:
            for question in ["Why is the sky blue?", "Why does the sky look blue?"]:
                start = time.perf_counter()
                first_chunk_s, chunks, last = None, 0, None
                print(f"\n{question}\n  ", end="")
                for chunk in model.stream(question):
                    if first_chunk_s is None and chunk.content:
                        first_chunk_s = time.perf_counter() - start
                    chunks += 1
                    last = chunk
                    print(chunk.content, end="", flush=True)
                assert last is not None
                reuse = last.response_metadata["reuse"]
                print(f"\n  -> {reuse['kind']}, {chunks} chunks, first text after "
                      f"{first_chunk_s or 0:.2f} s, usage {last.usage_metadata}")  # fmt: skip
        finally:
            model.close()


if __name__ == "__main__":
    main()
