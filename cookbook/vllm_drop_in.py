"""Recipe: EnhancedAsyncLLM as a drop-in for vLLM's AsyncLLM.

Shows: the same constructor (`from_engine_args`) and the same `generate` contract as
`AsyncLLM`; repeats and paraphrases come back from reuse, each output carries what was
reused (`reuse_info(output)`), and `generate_chat` applies the chat template.
Runs: offline on the default model (SmolLM2-135M-Instruct, vLLM's CPU build); about 50 s
on a 2-core machine, most of it starting vLLM.
Run: .venv/bin/python cookbook/vllm_drop_in.py
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from semantic_reuse import HandlerConfig


async def main() -> None:
    from vllm import SamplingParams

    from semantic_reuse import EnhancedAsyncLLM
    from semantic_reuse.spi import default_engine_args, reuse_info

    with tempfile.TemporaryDirectory() as folder:
        config = HandlerConfig(cache={"qdrant_path": Path(folder)})
        # Was: llm = AsyncLLM.from_engine_args(engine_args)
        llm = EnhancedAsyncLLM.from_engine_args(default_engine_args(), handler_config=config)
        params = SamplingParams(max_tokens=48, temperature=0.0)
        try:
            for i, question in enumerate([
                "How do I make a cup of tea?",
                "How do I make a cup of tea?",
                "How can I make a cup of tea?",
            ]):  # fmt: skip
                start = time.perf_counter()
                messages = [{"role": "user", "content": question}]
                # A streaming caller would forward each output as it comes.
                outputs = [out async for out in llm.generate_chat(messages, params, f"tea-{i}")]
                output = outputs[-1]
                info = reuse_info(output)
                kind = info.kind.value if info else "-"
                elapsed = time.perf_counter() - start
                print(f"{question!r:32} {kind:8} {elapsed:5.2f} s  {output.outputs[0].text[:50]!r}")
        finally:
            await llm.aclose()


if __name__ == "__main__":
    asyncio.run(main())
