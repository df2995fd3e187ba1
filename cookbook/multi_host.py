"""Recipe: Redis and a Qdrant server for a multi-host deployment.

Shows: two engines standing for two serving hosts, configured to share Redis (exact
answers, L2) and a Qdrant server (paraphrase search). Host A generates an answer; host B
then reuses it exactly (from Redis) and for a paraphrase (from Qdrant), without its own
model call. Uses the local services when they answer (Redis on 127.0.0.1:6379, Qdrant on
127.0.0.1:6333, or $REDIS_URL / $QDRANT_URL) and says which ones it found; without a
Qdrant server each host keeps its own embedded store, so only exact answers travel.
Runs: offline on the default model (SmolLM2-135M-Instruct, vLLM's CPU build); about 50 s
on a 2-core machine, most of it starting vLLM.
Run: .venv/bin/python cookbook/multi_host.py
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import redis

from semantic_reuse import CallableBackend, HandlerConfig, ReuseEngine
from semantic_reuse.spi import default_engine_args


def find_services() -> tuple[str | None, str | None]:
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(redis_url, socket_timeout=1).ping()
    except redis.RedisError:
        redis_url = None
    qdrant_url: str | None = os.environ.get("QDRANT_URL", "http://127.0.0.1:6333")
    try:
        urllib.request.urlopen(f"{qdrant_url}/readyz", timeout=1).close()
    except OSError:
        qdrant_url = None
    return redis_url, qdrant_url


async def main() -> None:
    from vllm import SamplingParams
    from vllm.v1.engine.async_llm import AsyncLLM

    redis_url, qdrant_url = find_services()
    print(f"Redis: {redis_url or 'not found (each host keeps answers in memory only)'}")
    print(f"Qdrant server: {qdrant_url or 'not found (each host uses its embedded store)'}")
    llm = AsyncLLM.from_engine_args(default_engine_args())
    calls: list[str] = []

    async def model(messages: Any, _params: Any) -> str:
        calls.append(messages[-1]["content"])
        prompt = llm.get_tokenizer().apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        params = SamplingParams(max_tokens=40, temperature=0.0)
        outputs = [out async for out in llm.generate(prompt, params, uuid.uuid4().hex)]
        return outputs[-1].outputs[0].text

    run = uuid.uuid4().hex[:8]  # a prefix of this run's own in the shared services
    with tempfile.TemporaryDirectory() as folder:

        def host(name: str) -> ReuseEngine:
            config = HandlerConfig()
            config.cache.redis_url = redis_url
            config.cache.redis_prefix = f"cookbook-{run}"
            config.cache.qdrant_url = qdrant_url
            config.cache.qdrant_path = Path(folder) / name  # used only without a server
            return ReuseEngine.from_config(config)

        host_a, host_b = host("a"), host("b")
        backend = CallableBackend(model)
        try:
            for engine, name, question in [
                (host_a, "A", "What is the tallest mountain on Earth?"),
                (host_b, "B", "What is the tallest mountain on Earth?"),
                (host_b, "B", "Which mountain is the highest on Earth?"),
            ]:
                messages = [{"role": "user", "content": question}]
                result = await engine.generate(messages, backend, model="smollm2")
                await engine.flush()  # written through to Redis / Qdrant before host B asks
                info = result.info
                print(f"host {name}: {question!r:44} -> {info.kind.value:8} "
                      f"(tier {info.tier}) {result.text[:40]!r}")  # fmt: skip
            print(f"model calls: {len(calls)}")
            await host_a.clear("default")
        finally:
            await host_a.aclose()
            await host_b.aclose()
            llm.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
