"""What 2 MB prompts cost through `ReuseEngine.generate` with the default configuration (the
bundled int8 MiniLM, a Qdrant Edge store in a temporary folder, a model that answers at once).

    PYTHONPATH=core .venv/bin/python benchmarks/long_prompts.py

Prints, per kind of prompt: the first request (a miss), the background store that follows it
(memory and the vector store's record) and the identical repeat (an exact hit), with the
decision's `refused_by` (``too_long``: not compared by meaning). docs/operations.md, Limits.
"""

from __future__ import annotations

import asyncio
import tempfile
import time

from semantic_reuse import CallableBackend, HandlerConfig, ReuseEngine

TWO_MB = 2 * 1024 * 1024
KINDS = {
    "words": "word ",
    "short sentences": "It is. ",
    "one long word": "a",
    "control characters": "\x00\x01\x1b[31m",
    "Chinese sentences": "你好。",
    "document + question": None,
}


async def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        engine = ReuseEngine(HandlerConfig(cache={"qdrant_path": folder}))

        async def model(prompt: object, params: object) -> str:
            return "an answer"

        backend = CallableBackend(model)
        await engine.warm_up()
        await engine.generate("A question to warm up?", backend)
        await engine.flush()
        for name, unit in KINDS.items():
            if unit is None:
                prompt = "Lorem ipsum. " * (TWO_MB // 13) + "\n\nWhat is the question?"
            else:
                prompt = unit * (TWO_MB // len(unit))
            start = time.perf_counter()
            first = await engine.generate(prompt, backend)
            miss = time.perf_counter() - start
            start = time.perf_counter()
            await engine.flush()
            store = time.perf_counter() - start
            start = time.perf_counter()
            again = await engine.generate(prompt, backend)
            repeat = time.perf_counter() - start
            print(f"{name:20s} miss {miss * 1000:6.1f} ms   background store {store * 1000:6.1f} ms"
                  f"   repeat {repeat * 1000:6.1f} ms ({again.info.kind.value})"
                  f"   refused_by={first.info.refused_by}")  # fmt: skip
        await engine.aclose()


if __name__ == "__main__":
    asyncio.run(main())
