"""Property: the exact tiers (memory, host shared memory, Redis) never serve an answer across
scopes, and clearing one namespace removes that tenant's answers only, in every tier.

Real tiers: an in-process memory tier, real host shared-memory segments (a secret file of the
test's own), the real Redis under a prefix of the test's own.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given

from semantic_reuse import HandlerConfig
from semantic_reuse.spi import MultiLevelCacheManager
from tests.integration.scopes.cases import (
    Case,
    answer_for,
    case_batches,
    check_served,
    examples,
    origins,
    tally,
)

PATH = "exact tiers"
PER_EXAMPLE = 16


@pytest.fixture
async def manager(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> AsyncIterator[MultiLevelCacheManager]:
    config = HandlerConfig(
        cache={"redis_url": redis_url, "redis_prefix": redis_prefix, "shared_memory": True,
               "shared_memory_name": f"srprop-{uuid.uuid4().hex[:8]}",
               "shared_memory_bytes": 4 << 20, "shared_memory_entries": 512,
               "shared_memory_secret": tmp_path / "secret"}
    )  # fmt: skip
    manager = MultiLevelCacheManager.from_config(config)
    assert [t.name for t in manager.tiers] == ["memory", "shared", "redis"]
    yield manager
    await manager.clear_all()
    await manager.aclose()


@given(cases=case_batches(PER_EXAMPLE))
@examples(PATH, PER_EXAMPLE)
async def test_exact_tiers_never_serve_across_scopes(
    manager: MultiLevelCacheManager, cases: list[Case]
) -> None:
    await manager.clear_all()
    stored = cases[: PER_EXAMPLE // 2]
    keys = {case: case.request().hash_id for case in cases}
    for case in stored:
        await manager.set(keys[case], answer_for(case), namespace=case.namespace)
    await manager.flush()

    for probe in cases:
        key = keys[probe]
        hit = await manager.get(key, namespace=probe.namespace)
        check_served(PATH, probe, None if hit is None else hit.answer.text, stored)
        for tier in manager.tiers:
            found = await tier.get(probe.namespace, key)
            if found is not None:  # an exact tier holds only this very entry's answer
                assert origins(found.text) == [probe.entry], tier.name
            elif probe in stored:
                raise AssertionError(f"{tier.name} lost {probe.entry!r}")
        # Each tier scopes by namespace by itself, whatever the key: another tenant's key
        # asked for in this namespace is a miss.
        for other in stored:
            if other.namespace != probe.namespace:
                tally(PATH, foreign_keys=1)
                for tier in manager.tiers:
                    assert await tier.get(probe.namespace, keys[other]) is None, tier.name

    # Clearing one tenant removes its answers from every tier and no one else's.
    cleared = stored[0].namespace
    await manager.clear(cleared)
    for case in stored:
        for tier in manager.tiers:
            found = await tier.get(case.namespace, keys[case])
            if case.namespace == cleared:
                assert found is None, (tier.name, case.entry)
            else:
                assert found is not None, (tier.name, "cleared with", cleared, case.entry)
                assert origins(found.text) == [case.entry]
        tally(PATH, clear_checks=1)
