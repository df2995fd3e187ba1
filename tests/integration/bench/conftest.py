"""The bench tests keep what benches cache (embeddings, built indexes) in a folder of their own."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def bench_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "bench-cache"
    monkeypatch.setenv("SEMANTIC_REUSE_BENCH_CACHE", str(folder))
    return folder
