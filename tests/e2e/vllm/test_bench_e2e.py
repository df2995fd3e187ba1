"""`bench e2e`'s measurement on the session's engine with a small workload."""

from __future__ import annotations

from pathlib import Path

import pytest

from semantic_reuse.tools.bench.e2e import _measure, build_workload
from semantic_reuse.vllm import EnhancedAsyncLLM


def test_workload_is_built_from_the_dev_pairs(tiny_datasets: Path) -> None:
    warm, measured = build_workload(tiny_datasets, 4)
    assert [i.kind for i in warm] == ["new"] * 4
    kinds = sorted(i.kind for i in measured)
    assert kinds == sorted(["new"] * 4 + ["repeat"] * 2 + ["paraphrase"] * 2 + ["compound"] * 2)
    seeded = {i.question for i in warm}
    assert {i.question for i in measured if i.kind == "repeat"} <= seeded
    assert not {i.question for i in measured if i.kind == "new"} & seeded


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="session")
async def test_plain_and_enhanced_runs_report(
    enhanced_llm: EnhancedAsyncLLM, tiny_datasets: Path
) -> None:
    warm, measured = build_workload(tiny_datasets, 4, seed=11)
    report = await _measure(enhanced_llm, warm, measured, concurrency=4, max_tokens=12)
    plain, ours = report["plain AsyncLLM"], report["EnhancedAsyncLLM"]
    assert plain["requests"] == ours["requests"] == len(measured)
    assert plain["kinds"] == {"generated": len(measured)}
    assert ours["kinds"].get("exact", 0) >= 2  # the repeats
    assert sum(ours["kinds"].values()) == len(measured)
    assert 0 < ours["miss_reuse_overhead_median"] < 1
