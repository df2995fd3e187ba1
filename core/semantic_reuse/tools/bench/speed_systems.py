"""The caches the speed bench drives, behind one small interface.

- ``edge``: the ReuseEngine with its defaults (memory L1, Qdrant Edge; HNSW is built once a
  folder holds 20,000 unindexed points, as the store does by itself, so 10k is an exact scan
  and 100k is HNSW). Built folders are cached under the bench cache, keyed on the texts and on
  the layout new folders get (``edge_folder.FOLDER_LAYOUT``), and copied per run.
- ``qdrant-local``: the same engine on ``qdrant-client``'s local mode (the path to a Qdrant
  server, brute-force numpy in-process; it is the tests' stand-in for a server).
- ``gptcache``: :class:`~semantic_reuse.tools.bench.gptcache_baseline.GPTCacheBaseline`, whose
  embedding function calls the embedder it is given on each text, one at a time.

Every lookup is a whole lookup: embedding, search and decision (plus the exact tiers and
the clause splitter for the engine), with no embedding cache across measured texts.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from semantic_reuse.analysis import scope_of
from semantic_reuse.answer import CachedAnswer
from semantic_reuse.clauses import AsyncConjunctionExtractor
from semantic_reuse.config import HandlerConfig
from semantic_reuse.defaults import build_search_helper_from
from semantic_reuse.engine import ReuseEngine
from semantic_reuse.request import ReuseRequest
from semantic_reuse.semantic.batching import MicroBatchingEmbedder
from semantic_reuse.semantic.decision import ReusePolicy
from semantic_reuse.semantic.edge_folder import FOLDER_LAYOUT
from semantic_reuse.semantic.edge_store import EdgeStore
from semantic_reuse.semantic.embedder import Embedder, FloatMatrix, slug
from semantic_reuse.semantic.guard import MatchGuard
from semantic_reuse.semantic.search import SimilaritySearchHelper
from semantic_reuse.semantic.server_store import QdrantServerStore
from semantic_reuse.tools.bench.embeddings import texts_digest
from semantic_reuse.tools.bench.gptcache_baseline import GPTCacheBaseline

#: Unindexed points at which an Edge folder builds its HNSW index (EdgeStore's default).
EDGE_INDEX_AT = 20_000
FILLER_ANSWER = "a cached answer"


class Target(Protocol):
    name: str

    async def populate(self, texts: Sequence[str], vectors: FloatMatrix) -> None: ...
    async def insert(self, texts: Sequence[str], batch: int) -> None: ...
    async def lookup(self, text: str) -> str: ...
    def forget_embeddings(self) -> None: ...
    def disk_bytes(self) -> int: ...
    async def close(self) -> None: ...


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


async def build_edge_folder(
    folder: Path, texts: Sequence[str], vectors: FloatMatrix, dim: int
) -> None:
    """Fill a fresh Edge folder with `texts` (precomputed vectors); index it past 20k points."""
    store = EdgeStore(folder, dim, optimize_threshold=None)
    try:
        for start in range(0, len(texts), 2048):
            chunk = texts[start : start + 2048]
            await _add(store, chunk, vectors[start : start + len(chunk)])
        if len(texts) >= EDGE_INDEX_AT:
            await store.optimize()
        await store.flush()
    finally:
        await store.aclose()


async def _add(store: Any, texts: Sequence[str], vectors: FloatMatrix) -> None:
    from semantic_reuse.semantic.store import VectorPoint

    answer = CachedAnswer.from_any(FILLER_ANSWER).to_dict()
    points = []
    for text, vector in zip(texts, vectors, strict=True):
        request = ReuseRequest(text)
        scope = scope_of(request)
        points.append(
            VectorPoint(
                id=request.hash_id, vector=vector, namespace=scope.namespace, model=scope.model,
                fingerprint=scope.fingerprint, prompt=request.semantic_text, answer=answer,
                created_at=0.0,
            )
        )  # fmt: skip
    await store.upsert(points)


class EngineTarget:
    """The ReuseEngine over an Edge folder or qdrant-client's local mode."""

    def __init__(
        self,
        store: str,
        config: HandlerConfig,
        embedder: Embedder,
        splitter: AsyncConjunctionExtractor,
        cache_dir: Path,
        name: str | None = None,
    ) -> None:
        if store not in ("edge", "qdrant-local"):
            raise ValueError(f"store must be 'edge' or 'qdrant-local', got {store!r}")
        self.name = name or store
        self._store = store
        self._config = config.model_copy(deep=True)
        self._config.cache.redis_url = None
        self._inner = embedder
        self._splitter = splitter
        self._cache_dir = cache_dir
        self._folder = Path(tempfile.mkdtemp(prefix="sr-speed-"))
        self._config.cache.qdrant_path = self._folder
        self._engine: ReuseEngine | None = None
        self._search: SimilaritySearchHelper | None = None

    async def populate(self, texts: Sequence[str], vectors: FloatMatrix) -> None:
        dim = self._inner.dim
        if self._store == "edge":
            name = f"edge-{slug(self._inner.name)}-{FOLDER_LAYOUT}-{texts_digest(texts)}"
            built = self._cache_dir / name
            if not (built / "done").is_file():
                shutil.rmtree(built, ignore_errors=True)
                await build_edge_folder(built / "shard", texts, vectors, dim)
                (built / "done").write_text(str(len(texts)))
            target = self._folder / f"{slug(self._inner.name)}-{dim}"
            await asyncio.to_thread(shutil.copytree, built / "shard", target)
            self._search = await asyncio.to_thread(
                build_search_helper_from, self._config, self._inner
            )
        else:
            sem = self._config.semantic
            guard = MatchGuard(entities=sem.guard_entities) if sem.guard else None
            policy = ReusePolicy(
                self._config.reuse_threshold(), self._config.reuse_margin(), guard, max_checks=1
            )
            embedder = MicroBatchingEmbedder(
                self._inner,
                max_batch_size=self._config.performance.embed_max_batch,
                max_wait_ms=self._config.performance.embed_max_wait_ms,
            )
            store = QdrantServerStore(":memory:", dim=dim)
            for start in range(0, len(texts), 2048):
                chunk = texts[start : start + 2048]
                await _add(store, chunk, vectors[start : start + len(chunk)])
            self._search = SimilaritySearchHelper(
                embedder, store, policy, candidate_threshold=sem.candidate_threshold
            )
        self._engine = ReuseEngine(self._config, search=self._search, splitter=self._splitter)
        await self._engine.warm_up()

    @property
    def engine(self) -> ReuseEngine:
        if self._engine is None:
            raise RuntimeError("populate() first")
        return self._engine

    async def insert(self, texts: Sequence[str], batch: int) -> None:
        for start in range(0, len(texts), batch):
            chunk = texts[start : start + batch]
            await self.engine.store_many([(t, FILLER_ANSWER) for t in chunk])

    async def lookup(self, text: str) -> str:
        hit = await self.engine.lookup(text)
        return "miss" if hit is None else hit.info.kind.value

    def forget_embeddings(self) -> None:
        if self._search is not None and isinstance(self._search.embedder, MicroBatchingEmbedder):
            self._search.embedder.clear_cache()

    def disk_bytes(self) -> int:
        return _folder_bytes(self._folder)

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.aclose()
        if self._search is not None:
            await self._search.embedder.aclose()
            await self._search.store.aclose()
        shutil.rmtree(self._folder, ignore_errors=True)


class GPTCacheTarget:
    """GPTCache (sqlite + faiss) with the embedder called per text, as GPTCache does."""

    name = "gptcache"

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder
        self._cache: GPTCacheBaseline | None = None

    @property
    def cache(self) -> GPTCacheBaseline:
        if self._cache is None:
            raise RuntimeError("populate() first")
        return self._cache

    async def populate(self, texts: Sequence[str], vectors: FloatMatrix) -> None:
        self._cache = GPTCacheBaseline(self._embedder, max_size=max(1_000_000, 2 * len(texts)))
        for start in range(0, len(texts), 5000):
            chunk = list(texts[start : start + 5000])
            rows = np.asarray(vectors[start : start + len(chunk)])
            await asyncio.to_thread(
                self.cache.import_vectors, chunk, [FILLER_ANSWER] * len(chunk), rows
            )

    async def insert(self, texts: Sequence[str], batch: int) -> None:
        for text in texts:  # GPTCache's put takes one question at a time
            self.cache.put(text, FILLER_ANSWER)

    def lookup_blocking(self, text: str) -> str:
        return "miss" if self.cache.get(text) is None else "semantic"

    async def lookup(self, text: str) -> str:
        return self.lookup_blocking(text)

    def forget_embeddings(self) -> None:
        return None

    def disk_bytes(self) -> int:
        return self.cache.disk_bytes()

    async def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
