"""Recipe: the core API alone (ReuseEngine in front of any model).

Shows: a `ReuseEngine` deciding what to reuse for a model it does not know: the first
question is generated, an exact repeat and a paraphrase are reused, an unrelated question
is generated again. The model here is plain vLLM (`AsyncLLM`, no reuse of its own) behind
a `CallableBackend`; any async function that returns text works the same way.
Runs: offline on the default model (SmolLM2-135M-Instruct, vLLM's CPU build); about 45 s
on a 2-core machine, most of it starting vLLM.
Run: .venv/bin/python cookbook/core_api.py
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from pathlib import Path
from typing import Any

from semantic_reuse import CallableBackend, HandlerConfig, ReuseEngine
from semantic_reuse.spi import default_engine_args


async def main() -> None:
    from vllm import SamplingParams
    from vllm.v1.engine.async_llm import AsyncLLM

    llm = AsyncLLM.from_engine_args(default_engine_args())
    params = SamplingParams(max_tokens=40, temperature=0.0)

    async def model(messages: Any, _params: Any) -> str:
        """The model: any async function from a prompt (here: chat messages) to text."""
        prompt = llm.get_tokenizer().apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        outputs = [out async for out in llm.generate(prompt, params, uuid.uuid4().hex)]
        return outputs[-1].outputs[0].text

    with tempfile.TemporaryDirectory() as folder:
        config = HandlerConfig(cache={"qdrant_path": Path(folder)})
        async with ReuseEngine.from_config(config) as engine:
            for question in [
                "What is the capital of France?",
                "What is the capital of France?",  # an exact repeat
                "Which city is the capital of France?",  # a paraphrase
                "How many legs does a spider have?",  # something else
            ]:
                messages = [{"role": "user", "content": question}]
                result = await engine.generate(
                    messages, CallableBackend(model), model="smollm2", params={"max_tokens": 40}
                )
                info = result.info
                similarity = f" (similarity {info.similarity:.2f})" if info.similarity else ""
                print(f"{question!r:45} -> {info.kind.value:8}{similarity}: {result.text[:60]!r}")
            # Store an answer you already have, and look up without generating:
            await engine.store("What does HTTP 404 mean?", "The page was not found.")
            hit = await engine.lookup("What does an HTTP 404 error mean?")
            print("lookup of a paraphrase of a stored answer:", hit.text if hit else None)
    llm.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
