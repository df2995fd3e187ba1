"""The host shared-memory tier inside MultiLevelCacheManager, across real processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from semantic_reuse import CachedAnswer, HandlerConfig, ReuseRequest
from semantic_reuse.exact.host import HostSharedTier
from semantic_reuse.exact.shared import SimilarRequestMemoryConfig
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
        await manager.memory.clear_all()
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
        await manager.memory.clear_all()
        assert await manager.get(a, namespace="n") is None
        assert (await manager.get(b, namespace="n")).tier == "shared"  # type: ignore[union-attr]
        await manager.clear("n")
        assert await manager.get(b, namespace="n") is None
    finally:
        await manager.aclose()


async def test_the_shared_tier_scopes_answers_and_clears_by_namespace(tmp_path: Path) -> None:
    """The same hash id in two namespaces is two entries; clear("a") removes only a's (also
    from "ab", which "a" prefixes); a falsy namespace is refused everywhere."""
    name = f"srtest-{uuid.uuid4().hex[:8]}"
    tier = HostSharedTier.open(
        SimilarRequestMemoryConfig(
            request_mapping_memory_size=1 << 20, token_mapping_memory_size=1 << 20,
            max_entries=64, request_mapping_shared_name=f"{name}-r",
            token_mapping_shared_name=f"{name}-t", secret_path=tmp_path / "secret",
        )
    )  # fmt: skip
    key, other = ReuseRequest("a question").hash_id, ReuseRequest("another").hash_id
    try:
        assert tier.manager is not None
        assert tier.set_nowait("a", key, CachedAnswer("for a"))
        assert tier.get_nowait("b", key) is None
        assert tier.get_nowait("ab", key) is None
        for namespace in ("ab", "b"):
            assert tier.set_nowait(namespace, key, CachedAnswer(f"for {namespace}"))
        assert tier.set_nowait("a", other, CachedAnswer("also for a"))
        tier.manager.put_similar(key, [(other, 0.9)], namespace="a")
        assert tier.manager.get_similar(key, namespace="b") == []
        for falsy in (None, ""):
            with pytest.raises((ValueError, TypeError), match="namespace"):
                await tier.clear(falsy)  # type: ignore[arg-type]
            with pytest.raises((ValueError, TypeError), match="namespace"):
                tier.get_nowait(falsy, key)  # type: ignore[arg-type]
            with pytest.raises((ValueError, TypeError), match="namespace"):
                tier.manager.clear(falsy)  # type: ignore[arg-type]
        assert await tier.clear("a") == 3  # two answers and one similar list
        assert tier.get_nowait("a", key) is None
        assert tier.get_nowait("a", other) is None
        assert tier.manager.get_similar(key, namespace="a") == []
        assert [tier.get_nowait(n, key).text for n in ("ab", "b")] == ["for ab", "for b"]  # type: ignore[union-attr]
        assert tier.manager.stats().tokens.entries == 2
        await tier.clear_all()
        assert tier.manager.stats().tokens.entries == 0
    finally:
        await tier.aclose()
