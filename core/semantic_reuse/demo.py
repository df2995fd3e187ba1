"""`semantic-reuse demo`: the main job, played end to end with rich tables."""

from __future__ import annotations

import time

from rich.console import Console
from rich.table import Table

from semantic_reuse.answer import CachedAnswer
from semantic_reuse.config import HandlerConfig
from semantic_reuse.exact.tiers import MultiLevelCacheManager
from semantic_reuse.request import ReuseRequest

DEFAULT_DEMO_REDIS = "redis://127.0.0.1:6379/0"


async def _pick_redis(url: str | None, console: Console) -> str | None:
    """The Redis URL to use: the given one or the local default, if it answers."""
    from semantic_reuse.exact.redis import RedisTier

    candidate = url or DEFAULT_DEMO_REDIS
    tier = RedisTier(candidate, timeout_s=0.5)
    try:
        alive = await tier.ping()
    finally:
        await tier.aclose()
    if alive:
        console.print(f"[green]Redis answers at {candidate}: using it as L2[/]")
        return candidate
    console.print(f"[yellow]No Redis at {candidate}: running with the memory tier only[/]")
    return None


async def run_demo(redis_url: str | None, console: Console) -> int:
    """The core API end to end: keys, answers, the tiers, promotion, tenants, stats."""
    url = await _pick_redis(redis_url, console)
    config = HandlerConfig()
    config.cache.redis_url = url
    config.cache.redis_prefix = "semantic_reuse_demo"
    manager = MultiLevelCacheManager.from_config(config)
    await manager.clear()

    table = Table(title="Exact reuse across tiers")
    for column in ("step", "request", "namespace", "outcome", "tier", "latency"):
        table.add_column(column)

    async def ask(step: str, request: ReuseRequest) -> None:
        start = time.perf_counter()
        hit = await manager.get(request.hash_id, namespace=request.namespace)
        elapsed = (time.perf_counter() - start) * 1000
        outcome = "[green]hit[/]" if hit else "[red]miss[/]"
        label = request.prompt or request.semantic_text
        row = (label[:48], request.namespace, outcome, hit.tier if hit else "-")
        table.add_row(step, *row, f"{elapsed:.3f} ms")
        if hit is None:
            # Stands in for the model: the engine issues generate here.
            answer = CachedAnswer(text=f"(answer to: {label})", source_prompt=label)
            await manager.set(request.hash_id, answer, namespace=request.namespace)

    params = {"temperature": 0.0, "max_tokens": 64}
    question = ReuseRequest("What is Redis?", model="demo-model", params=params)
    await ask("first time", question)
    await ask("exact repeat", ReuseRequest("What is Redis?", model="demo-model", params=params))
    await ask(
        "other params",
        ReuseRequest("What is Redis?", model="demo-model", params={**params, "max_tokens": 8}),
    )
    await ask("other tenant", ReuseRequest("What is Redis?", namespace="acme", model="demo-model"))
    chat = ReuseRequest(
        messages=[{"role": "user", "content": "Name three vector databases."}], model="demo-model"
    )
    await ask("chat", chat)
    await ask("chat repeat", chat)
    await manager.flush()
    await manager.memory.clear()
    await ask("after L1 loss", question)
    await ask("promoted to L1", question)
    console.print(table)

    stats = manager.stats()
    totals = Table(title="Lookups per tier")
    for column in ("series", "count"):
        totals.add_column(column)
    for series, count in sorted(stats["counters"].get("lookups_total", {}).items()):
        totals.add_row(series, f"{count:.0f}")
    console.print(totals)
    await manager.clear()
    await manager.aclose()
    return 0
