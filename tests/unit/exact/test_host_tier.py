"""The host shared-memory tier inside MultiLevelCacheManager, across real processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import uuid

from semantic_reuse import CachedAnswer, HandlerConfig, ReuseRequest
from semantic_reuse.spi import MultiLevelCacheManager


def _config(name: str) -> HandlerConfig:
    return HandlerConfig(
        cache={"shared_memory": True, "shared_memory_name": name, "shared_memory_bytes": 1 << 20,
               "shared_memory_entries": 64}
    )  # fmt: skip


async def test_another_process_reads_the_answer_from_shared_memory() -> None:
    name = f"srtest-{uuid.uuid4().hex[:8]}"
    key = ReuseRequest("What is Redis?", model="m").hash_id
    manager = MultiLevelCacheManager.from_config(_config(name))
    try:
        assert manager.shared is not None
        await manager.set(key, CachedAnswer("In-memory store.", (5, 6, 7)), namespace="default")
        reader = textwrap.dedent(f"""
            import asyncio
            from semantic_reuse import HandlerConfig
            from semantic_reuse.spi import MultiLevelCacheManager
            async def main():
                config = HandlerConfig(cache={{"shared_memory": True,
                    "shared_memory_name": "{name}", "shared_memory_bytes": 1 << 20,
                    "shared_memory_entries": 64}})
                manager = MultiLevelCacheManager.from_config(config)
                hit = await manager.get("{key}", namespace="default")
                print(hit.tier, hit.answer.text, list(hit.answer.token_ids))
                hit = await manager.get("{key}", namespace="default")
                print(hit.tier)
                await manager.aclose()
            asyncio.run(main())
        """)
        out = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-c", reader], capture_output=True, text=True,
            timeout=60, check=True,
        )  # fmt: skip
        assert out.stdout.splitlines() == ["shared In-memory store. [5, 6, 7]", "memory"]
        # The reader exiting did not remove the owner's segments.
        await manager.memory.clear()
        hit = await manager.get(key, namespace="default")
        assert hit is not None
        assert hit.tier == "shared"
    finally:
        await manager.aclose()


async def test_invalidate_and_clear_reach_shared_memory() -> None:
    manager = MultiLevelCacheManager.from_config(_config(f"srtest-{uuid.uuid4().hex[:8]}"))
    a, b = ReuseRequest("a").hash_id, ReuseRequest("b").hash_id
    try:
        await manager.set(a, CachedAnswer("A"), namespace="n")
        await manager.set(b, CachedAnswer("B"), namespace="n")
        await manager.invalidate(a, namespace="n")
        await manager.memory.clear()
        assert await manager.get(a, namespace="n") is None
        assert (await manager.get(b, namespace="n")).tier == "shared"  # type: ignore[union-attr]
        await manager.clear("n")
        assert await manager.get(b, namespace="n") is None
    finally:
        await manager.aclose()
