from __future__ import annotations

import asyncio

import pytest

from semantic_reuse import CachedAnswer, SemanticReuseError
from semantic_reuse.spi import MemoryTier


class Clock:
    """A controllable monotonic clock, so TTL tests do not sleep."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_get_set_and_namespaces() -> None:
    tier = MemoryTier()
    stored = CachedAnswer("for a")
    await tier.set("a", "k", stored)
    assert await tier.get("a", "k") == stored
    assert await tier.get("b", "k") is None
    await tier.set("b", "k", CachedAnswer("for b"))
    assert (await tier.get("a", "k")).text == "for a"  # type: ignore[union-attr]
    assert (await tier.get("b", "k")).text == "for b"  # type: ignore[union-attr]
    assert await tier.clear("a") == 1
    assert await tier.get("a", "k") is None
    assert (await tier.get("b", "k")).text == "for b"  # type: ignore[union-attr]


async def test_clear_takes_one_namespace_and_refuses_a_falsy_one() -> None:
    tier = MemoryTier()
    for namespace in ("a", "b", "ab"):
        await tier.set(namespace, "k", CachedAnswer(f"for {namespace}"))
    for falsy in (None, ""):
        with pytest.raises((ValueError, TypeError), match="namespace") as refused:
            await tier.clear(falsy)  # type: ignore[arg-type]
        assert isinstance(refused.value, SemanticReuseError)
    assert len(tier) == 3
    assert await tier.clear("a") == 1
    assert [await tier.get(n, "k") is not None for n in ("a", "b", "ab")] == [False, True, True]
    await tier.clear_all()
    assert len(tier) == 0
    assert tier.nbytes == 0


async def test_ttl_default_and_per_entry() -> None:
    clock = Clock()
    tier = MemoryTier(ttl_s=10, clock=clock)
    await tier.set("n", "default", CachedAnswer("d"))
    await tier.set("n", "short", CachedAnswer("s"), ttl_s=2)
    clock.now += 2.5
    assert await tier.get("n", "short") is None
    assert await tier.get("n", "default") is not None
    clock.now += 8
    assert await tier.get("n", "default") is None
    assert len(tier) == 0
    assert tier.expirations == 2


async def test_lru_order_by_entries() -> None:
    tier = MemoryTier(max_entries=3)
    for key in "abc":
        await tier.set("n", key, CachedAnswer(key))
    await tier.get("n", "a")  # a becomes most recent; b is now the oldest
    await tier.set("n", "d", CachedAnswer("d"))
    assert await tier.get("n", "b") is None
    assert [k for k in "acd" if await tier.get("n", k)] == ["a", "c", "d"]
    assert tier.evictions == 1


async def test_byte_budget() -> None:
    one = CachedAnswer("x" * 1000)
    tier = MemoryTier(max_entries=100, max_bytes=one.nbytes * 3)
    for key in "abcd":
        await tier.set("n", key, CachedAnswer("x" * 1000))
    assert len(tier) == 3
    assert tier.nbytes <= tier.max_bytes
    assert await tier.get("n", "a") is None
    # An answer larger than the whole budget is refused, and nothing is evicted for it.
    assert await tier.set("n", "huge", CachedAnswer("y" * 10_000)) is False
    assert len(tier) == 3


async def test_overwrite_keeps_byte_count_exact() -> None:
    tier = MemoryTier()
    await tier.set("n", "k", CachedAnswer("short"))
    await tier.set("n", "k", CachedAnswer("a much longer answer than before"))
    assert tier.nbytes == CachedAnswer("a much longer answer than before").nbytes
    await tier.delete("n", "k")
    assert tier.nbytes == 0


async def test_concurrent_tasks_keep_the_budgets() -> None:
    tier = MemoryTier(max_entries=50)

    async def worker(i: int) -> None:
        for j in range(200):
            await tier.set("n", f"{i}-{j}", CachedAnswer(str(j)))
            await tier.get("n", f"{i}-{j // 2}")
            await asyncio.sleep(0)

    await asyncio.gather(*(worker(i) for i in range(20)))
    assert len(tier) == 50
    held = [a for i in range(20) for j in range(200) if (a := tier.get_nowait("n", f"{i}-{j}"))]
    assert len(held) == 50
    assert tier.nbytes == sum(a.nbytes for a in held)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_entries": 0}, "max_entries"),
        ({"max_bytes": -1}, "max_bytes"),
        ({"ttl_s": 0}, "ttl_s"),
    ],
)
def test_bad_budgets(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MemoryTier(**kwargs)  # type: ignore[arg-type]
