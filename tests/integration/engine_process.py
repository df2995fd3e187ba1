"""A ReuseEngine in a process of its own, for tests of what processes share.

Run as ``python -m tests.integration.engine_process NAME``, configured by the ``SEMANTIC_REUSE_*``
environment (its own Edge folder in ``CACHE__QDRANT_PATH``). It prints ``{"ready": true}``, then
answers one JSON line on stdout for each JSON line on stdin: ``{"prompt": ...}`` runs
`ReuseEngine.generate` with a stand-in model whose answers name this process, waits for the
background writes (`flush`) and replies with the answer, its kind and tier, and how many times
the model was called so far. End of input closes the engine.
"""

from __future__ import annotations

import asyncio
import json
import sys

from semantic_reuse import CallableBackend, HandlerConfig, ReuseEngine


async def main(name: str) -> None:
    calls = 0

    async def model(prompt: object, _params: object) -> str:
        nonlocal calls
        calls += 1
        return f"{name} answered: {prompt}"

    backend = CallableBackend(model)
    async with ReuseEngine.from_config(HandlerConfig()) as engine:
        print(json.dumps({"ready": True}), flush=True)
        while line := await asyncio.to_thread(sys.stdin.readline):
            prompt = json.loads(line)["prompt"]
            result = await engine.generate(prompt, backend, model="m", namespace="shared")
            await engine.flush()
            info = result.info
            reply = {
                "text": result.text,
                "kind": info.kind.value,
                "tier": info.tier,
                "calls": calls,
            }
            print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
