"""Recipe: a LangChain chain with the global semantic cache.

Shows: `set_llm_cache(SemanticReuseCache(...))` under an unchanged LCEL chain
(prompt | model | parser): a paraphrased input is answered from the cache and the model
is not called. The model is `ChatSemanticReuse` with reuse switched to exact repeats only
(`reuse=False`), so every paraphrase hit you see is the cache's; any LangChain chat model
works the same way.
Runs: offline on the default model (SmolLM2-135M-Instruct, vLLM's CPU build); about 50 s
on a 2-core machine, most of it starting vLLM.
Run: .venv/bin/python cookbook/langchain_chain.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from langchain_core.globals import set_llm_cache
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from langchain_semantic_reuse import ChatSemanticReuse, SemanticReuseCache
from semantic_reuse import HandlerConfig


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        cache = SemanticReuseCache(config=HandlerConfig(cache={"qdrant_path": Path(folder)}))
        set_llm_cache(cache)  # the three-line switch: every chat model and LLM now reuses
        model_config = HandlerConfig(cache={"qdrant_path": Path(folder) / "model"})
        model = ChatSemanticReuse(config=model_config, max_tokens=48, reuse=False)
        prompt = ChatPromptTemplate.from_messages(
            [("system", "You are a helpful assistant. Answer briefly."), ("human", "{question}")]
        )
        chain = prompt | model | StrOutputParser()
        try:
            for question in [
                "How do I reset my password?",
                "How can I reset my password?",
                "What is the boiling point of water?",
            ]:
                start = time.perf_counter()
                answer = chain.invoke({"question": question})
                print(f"{question!r:40} {time.perf_counter() - start:5.2f} s  {answer[:50]!r}")
        finally:
            set_llm_cache(None)
            model.close()
            cache.close()


if __name__ == "__main__":
    main()
