"""Embeddings computed once per text and shared: by both systems, and across runs.

The quality bench embeds every text of a pair file once, in batches, and hands the same
vectors to the engine (through :class:`PrecomputedEmbedder`) and to GPTCache (through its
embedding function), so the two systems compare decisions on identical vectors. The speed
bench's filler entries (up to 100k texts) are embedded once and kept as ``.npy`` under the
user cache folder (no pickle), keyed by the embedder and a hash of the texts.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from semantic_reuse.defaults import default_data_dir
from semantic_reuse.semantic.embedder import Embedder, FloatMatrix, FloatVector, slug

Progress = Callable[[int, int], None]


def bench_cache_dir() -> Path:
    """Where benches keep what is slow to rebuild (embeddings, the 100k-entry index):
    ``$SEMANTIC_REUSE_BENCH_CACHE``, else ``bench/`` in the user cache folder."""
    if folder := os.environ.get("SEMANTIC_REUSE_BENCH_CACHE"):
        return Path(folder)
    return default_data_dir() / "bench"


def texts_digest(texts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def embed_all(
    embedder: Embedder,
    texts: Sequence[str],
    *,
    cache_dir: Path | None = None,
    batch: int = 64,
    progress: Progress | None = None,
) -> FloatMatrix:
    """Every text's unit vector, in order; read from / written to `cache_dir` when given."""
    path = None
    if cache_dir is not None:
        path = cache_dir / f"{slug(embedder.name)}-{len(texts)}-{texts_digest(texts)}.npy"
        if path.is_file():
            rows = np.load(path, allow_pickle=False)
            if rows.shape == (len(texts), embedder.dim):
                if progress:
                    progress(len(texts), len(texts))
                return np.asarray(rows, dtype=np.float32)
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    # Similar lengths together: one long text does not pad a whole batch.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in range(0, len(order), batch):
        chunk = order[start : start + batch]
        out[chunk] = embedder.encode([texts[i] for i in chunk])
        if progress:
            progress(min(start + batch, len(texts)), len(texts))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, out, allow_pickle=False)
        tmp.replace(path)
    return out


class PrecomputedEmbedder:
    """An :class:`Embedder` that answers known texts from precomputed rows, others from `inner`."""

    def __init__(self, inner: Embedder, vectors: Mapping[str, FloatVector]) -> None:
        self._inner = inner
        self._vectors = vectors

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def dim(self) -> int:
        return self._inner.dim

    def encode(self, texts: Sequence[str]) -> FloatMatrix:
        items = list(texts)
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        missing = [i for i, text in enumerate(items) if text not in self._vectors]
        for i, text in enumerate(items):
            row = self._vectors.get(text)
            if row is not None:
                out[i] = row
        if missing:
            out[missing] = self._inner.encode([items[i] for i in missing])
        return out

    def vector(self, text: str) -> FloatVector:
        row = self._vectors.get(text)
        if row is None:
            row = np.asarray(self._inner.encode([text])[0], dtype=np.float32)
        return row
