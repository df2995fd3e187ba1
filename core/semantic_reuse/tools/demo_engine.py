"""`semantic-reuse demo --no-vllm`: the same kind of session through the ReuseEngine alone.

The model here is a stand-in that echoes the prompt, so the session runs in seconds
without vLLM: it shows which requests reach the model and which are answered from
earlier answers, and why. `semantic-reuse demo` (demo.py) is the real thing.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from semantic_reuse.backend import CallableBackend, PromptInput
from semantic_reuse.config import HandlerConfig
from semantic_reuse.engine import ReuseEngine
from semantic_reuse.tools.demo import describe, pick_redis

SESSION: list[tuple[str, str, str]] = [
    # (what it shows, tenant, prompt)
    ("new question", "acme", "How do I reset my password?"),
    ("exact repeat", "acme", "How do I reset my password?"),
    ("paraphrase", "acme", "How can I reset my password?"),
    ("new question", "acme", "What is Redis?"),
    ("compound: both parts known", "acme", "What is Redis and how can I reset my password?"),
    ("compound: one part new", "acme", "What is Redis? Also, how does Qdrant store vectors?"),
    ("the new part, asked alone", "acme", "How does Qdrant store vectors?"),
    ("new question", "acme", "What is 2+2?"),
    ("one number differs (guard)", "acme", "What is 2+3?"),
    ("same words, other tenant", "globex", "How do I reset my password?"),
]


async def run_engine_demo(redis_url: str | None, console: Console) -> int:
    """Play the session and print one row per request, then the totals."""
    calls: list[str] = []

    async def stand_in_model(prompt: PromptInput, params: object) -> str:
        calls.append(str(prompt))
        return f"(answer to: {prompt})"

    model = CallableBackend(stand_in_model)
    config = HandlerConfig()
    config.cache.redis_url = await pick_redis(redis_url, console)
    config.cache.redis_prefix = "semantic_reuse_demo"
    with tempfile.TemporaryDirectory(prefix="semantic-reuse-demo-") as folder:
        config.cache.qdrant_path = Path(folder)
        async with ReuseEngine(config) as engine:
            with console.status("Loading the embedder and the clause splitter..."):
                await engine.warm_up()
            await engine.cache.clear_all()
            table = Table(title="Each request: reused or generated, and why")
            for column in ("shows", "tenant", "prompt", "outcome", "similarity", "ms"):
                table.add_column(column)
            for shows, tenant, prompt in SESSION:
                start = time.perf_counter()
                result = await engine.generate(prompt, model, namespace=tenant)
                elapsed = (time.perf_counter() - start) * 1000
                outcome, similarity = describe(result.info)
                table.add_row(shows, tenant, prompt, outcome, similarity, f"{elapsed:.1f}")
                await engine.flush()
            console.print(table)
            stats = engine.stats()
            await engine.cache.clear_all()
    kinds = stats["counters"].get("requests_total", {})
    console.print(f"{len(SESSION)} requests, {len(calls)} model calls "
                  f"(the rest reused); outcomes: {kinds}")  # fmt: skip
    return 0
