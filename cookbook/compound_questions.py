"""Recipe: compound questions, answered clause by clause.

Shows: two questions asked one by one, then asked together ("... and ...?"): the engine
splits the compound question (spaCy for English, jieba for Chinese), reuses both earlier
answers and composes them without calling the model (COMPOSED). A compound question with
one new clause reuses the known clause and generates only the new one (PARTIAL). A
question with an inner "and" that is one question is left whole.
Runs: offline on the default model (SmolLM2-135M-Instruct, vLLM's CPU build); about 60 s
on a 2-core machine, most of it starting vLLM.
Run: .venv/bin/python cookbook/compound_questions.py
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from semantic_reuse import HandlerConfig


async def main() -> None:
    from vllm import SamplingParams

    from semantic_reuse import EnhancedAsyncLLM
    from semantic_reuse.spi import default_engine_args, reuse_info

    with tempfile.TemporaryDirectory() as folder:
        config = HandlerConfig(cache={"qdrant_path": Path(folder)})
        llm = EnhancedAsyncLLM.from_engine_args(default_engine_args(), handler_config=config)
        params = SamplingParams(max_tokens=40, temperature=0.0)
        try:
            for i, question in enumerate([
                "What is the capital of France?",
                "How many legs does a spider have?",
                "What is the capital of France and how many legs does a spider have?",
                "What is the capital of France and what is the capital of Spain?",
                "What is the difference between a frog and a toad?",
            ]):  # fmt: skip
                messages = [{"role": "user", "content": question}]
                outputs = [out async for out in llm.generate_chat(messages, params, f"q{i}")]
                output = outputs[-1]
                await llm.reuse_engine.flush()  # stored before the next question is asked
                info = reuse_info(output)
                assert info is not None
                clauses = ", ".join(f"{c.kind.value}: {c.text!r}" for c in info.clauses)
                print(f"{question}\n  -> {info.kind.value}" + (f" [{clauses}]" if clauses else ""))
        finally:
            await llm.aclose()


if __name__ == "__main__":
    asyncio.run(main())
