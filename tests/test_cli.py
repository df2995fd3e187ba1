from __future__ import annotations

import subprocess
import sys


def test_demo_runs_end_to_end_with_redis(redis_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "semantic_reuse.cli", "demo", "--redis-url", redis_url],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "using it as L2" in out
    assert "exact repeat" in out
    assert "redis" in out  # the hit after L1 loss came from Redis
    assert "outcome=hit,tier=redis" in out


def test_demo_without_redis_uses_memory_only() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "semantic_reuse.cli", "demo", "--redis-url", "redis://127.0.0.1:1/0"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "memory tier only" in result.stdout
