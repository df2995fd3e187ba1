"""The speed bench's filler vectors: the same model on ONNX Runtime, checked, then cached."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from semantic_reuse.tools.bench import embeddings
from semantic_reuse.tools.bench.embeddings import bulk_twin, embed_bulk

TEXTS = [
    "How do I reset my password?",
    "What is the capital of France?",
    "如何重置密码？",
    "A longer question about caches, vectors and the many ways an answer can be reused " * 3,
] + [f"Is {n} a prime number?" for n in range(40)]


def test_fillers_from_the_onnx_twin_equal_the_embedder(
    minilm: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    twin, workers = bulk_twin(minilm)
    assert twin is not minilm
    assert twin.name == minilm.name
    assert workers >= 1
    monkeypatch.setattr(embeddings, "BULK_BATCH", 8)  # several batches, embedded concurrently
    rows, how = embed_bulk(minilm, TEXTS, cache_dir=tmp_path)
    assert how["runtime"].startswith("onnx")
    assert how["twin_max_abs_diff"] <= embeddings.TWIN_TOLERANCE
    assert np.abs(rows - minilm.encode(TEXTS)).max() <= embeddings.TWIN_TOLERANCE
    again, how = embed_bulk(minilm, TEXTS, cache_dir=tmp_path)
    assert how == {"source": "cached"}
    assert np.array_equal(again, rows)


def test_a_twin_that_disagrees_is_not_used(
    minilm: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embeddings, "TWIN_TOLERANCE", -1.0)  # nothing passes the check
    rows, how = embed_bulk(minilm, TEXTS[:6], cache_dir=tmp_path)
    assert how["runtime"] == "the embedder itself"
    assert np.array_equal(rows, minilm.encode(TEXTS[:6]))


def test_e5_on_every_core_gives_the_same_vectors(e5: Any) -> None:
    twin, _ = bulk_twin(e5)
    assert twin is not e5
    rows, how = embed_bulk(e5, TEXTS[:8])
    assert how["twin_max_abs_diff"] <= embeddings.TWIN_TOLERANCE
    assert np.abs(rows - e5.encode(TEXTS[:8])).max() <= embeddings.TWIN_TOLERANCE


class _Plain:
    name = "plain"
    dim = 4

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.tile(np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32), (len(texts), 1))


def test_other_embedders_embed_their_own_fillers() -> None:
    plain = _Plain()
    assert bulk_twin(plain) == (plain, 1)  # type: ignore[arg-type]
    rows, how = embed_bulk(plain, ["a", "b"])  # type: ignore[arg-type]
    assert rows.shape == (2, 4)
    assert how["runtime"] == "the embedder itself"
