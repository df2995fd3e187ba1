"""Embeddings computed once per text and shared: by both systems, and across runs.

The quality bench embeds every text of a pair file once, in batches, and hands the same
vectors to the engine (through :class:`PrecomputedEmbedder`) and to GPTCache (through its
embedding function), so the two systems compare decisions on identical vectors. The speed
bench's filler entries (up to 100k texts) are embedded once and kept as ``.npy`` under the
user cache folder (no pickle), keyed by the embedder and a hash of the texts.

Filling that cache the first time is the slow part of a first `bench all`: 100k texts through
MiniLM on PyTorch took about half an hour on the project's 2-core machine. :func:`embed_fillers`
embeds them with the *same* model exported to ONNX Runtime (:func:`bulk_twin`: all cores,
1,024 texts a call, which the runner groups by token count), after checking on a sample of
the texts that the twin's vectors equal the embedder's (within :data:`TWIN_TOLERANCE`; the
export differs by about 3e-7). The fillers stay real texts embedded by the real model; only
the runtime that computes them once changes. Lookups are always embedded by the system's own
embedder.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from semantic_reuse.defaults import default_data_dir
from semantic_reuse.errors import ComponentUnavailableError
from semantic_reuse.semantic.embedder import Embedder, FloatMatrix, FloatVector, slug
from semantic_reuse.semantic.sentence_transformer import SentenceTransformerEmbedder

Progress = Callable[[int, int], None]

#: Texts per `encode` call when embedding many (the runners group them by length inside).
BULK_BATCH = 1024
#: Largest |twin - embedder| accepted on the sample before the twin embeds the rest.
TWIN_TOLERANCE = 1e-5
#: Texts of the sample the twin is checked on: the longest, and some spread over the rest.
TWIN_CHECK_TEXTS = 48


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


def _cache_path(cache_dir: Path, name: str, texts: Sequence[str]) -> Path:
    return cache_dir / f"{slug(name)}-{len(texts)}-{texts_digest(texts)}.npy"


def _cached(path: Path, rows_expected: int) -> FloatMatrix | None:
    """The cached rows at `path` when they are there and have the expected number of rows."""
    if not path.is_file():
        return None
    rows = np.load(path, allow_pickle=False)
    if rows.ndim != 2 or rows.shape[0] != rows_expected:
        return None
    return np.asarray(rows, dtype=np.float32)


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
        path = _cache_path(cache_dir, embedder.name, texts)
        rows = _cached(path, len(texts))
        if rows is not None and rows.shape[1] == embedder.dim:
            if progress:
                progress(len(texts), len(texts))
            return rows
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


def bulk_twin(embedder: Embedder) -> Embedder:
    """The same model on ONNX Runtime with a thread per core, when `embedder` is a
    sentence-transformers model on PyTorch; else `embedder` itself. Same name: same vectors."""
    if not isinstance(embedder, SentenceTransformerEmbedder) or embedder.backend != "torch":
        return embedder
    return SentenceTransformerEmbedder(
        embedder.model_folder, name=embedder.name, backend="onnx", num_threads=_cores()
    )


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _check_sample(texts: Sequence[str]) -> list[str]:
    """The longest texts (where runtimes differ most: padding, truncation) and a spread."""
    longest = sorted(range(len(texts)), key=lambda i: len(texts[i]))[-TWIN_CHECK_TEXTS // 2 :]
    step = max(1, len(texts) // (TWIN_CHECK_TEXTS // 2))
    picked = dict.fromkeys([*longest, *range(0, len(texts), step)][:TWIN_CHECK_TEXTS])
    return [texts[i] for i in picked]


def embed_fillers(
    embedder: Embedder,
    texts: Sequence[str],
    *,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
) -> tuple[FloatMatrix, dict[str, Any]]:
    """`embed_all` for many texts whose vectors only fill a cache: computed by :func:`bulk_twin`
    once it matches `embedder` on a sample, else by `embedder`. Returns the vectors and how
    they were made (``"cached"``, or the runtime, its check and the seconds it took)."""
    if cache_dir is not None:
        rows = _cached(_cache_path(cache_dir, embedder.name, texts), len(texts))
        if rows is not None and rows.shape[1] == embedder.dim:
            if progress:
                progress(len(texts), len(texts))
            return rows, {"source": "cached"}
    how: dict[str, Any] = {"source": "embedded", "runtime": "the embedder's own"}
    twin = bulk_twin(embedder)
    if twin is not embedder:
        sample = _check_sample(texts)
        try:
            diff = float(np.abs(twin.encode(sample) - embedder.encode(sample)).max())
        except ComponentUnavailableError as exc:  # no onnxruntime / no export possible
            how["twin_unavailable"] = str(exc)
            twin = embedder
        else:
            how["twin_max_abs_diff"] = diff
            if diff <= TWIN_TOLERANCE:
                how["runtime"] = f"onnxruntime, {_cores()} threads"
            else:
                twin = embedder
    start = time.perf_counter()
    rows = embed_all(twin, texts, cache_dir=cache_dir, batch=BULK_BATCH, progress=progress)
    how["seconds"] = round(time.perf_counter() - start, 1)
    return rows, how


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
