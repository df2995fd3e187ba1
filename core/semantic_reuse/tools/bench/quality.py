"""`semantic-reuse bench quality`: the shared-cache protocol through the real engine.

Every distinct ``q1`` of a pair file is stored with an answer naming its pair; then
every ``q2`` is looked up against the whole cache with the engine's configuration
(threshold, guard, margin, clause splitting: everything a user gets). A hit is correct
only when it returns its own pair's answer and the pair's label is 1
(../shared/datasets/README.md). Nothing here tunes anything: it measures.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semantic_reuse.config import HandlerConfig
from semantic_reuse.defaults import build_search_helper_from
from semantic_reuse.engine import ReuseEngine
from semantic_reuse.semantic.embedder import Embedder
from semantic_reuse.tools.bench.metrics import answer_naming, cache_owners, score_answers
from semantic_reuse.tools.calibrate import LabelledPair, SweepPoint, load_pairs

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class QualityReport:
    """Shared-cache metrics of one configuration on one pair file."""

    pairs_file: str
    embedder: str
    threshold: float
    margin: float
    guard: bool
    point: SweepPoint
    kinds: dict[str, int]
    store_s: float
    lookup_s: float
    verifier: str = "off"
    """``semantic.verifier`` (with ``max_error_rate`` when one was set)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "pairs_file": self.pairs_file,
            "embedder": self.embedder,
            "threshold": self.threshold,
            "margin": self.margin,
            "guard": self.guard,
            "verifier": self.verifier,
            **self.point.as_dict(),
            "kinds": self.kinds,
            "store_s": round(self.store_s, 2),
            "lookup_s": round(self.lookup_s, 2),
        }


async def run_quality(
    pairs: Sequence[LabelledPair],
    config: HandlerConfig,
    *,
    pairs_file: str = "",
    batch: int = 32,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
) -> QualityReport:
    """Store every distinct q1, look up every q2, count correct and wrong hits.

    `embedder` replaces the configured one (the comparison passes precomputed vectors).
    """
    config = config.model_copy(deep=True)
    config.cache.redis_url = None  # the protocol measures reuse decisions, not tiers
    answers: list[str | None] = []
    kinds: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="sr-quality-") as folder:
        config.cache.qdrant_path = Path(folder)
        search = None
        if embedder is not None:
            search = await asyncio.to_thread(build_search_helper_from, config, embedder)
        async with ReuseEngine(config, search=search) as engine:
            await engine.warm_up()
            entries = list(cache_owners(pairs).items())
            total = len(entries) + len(pairs)
            start = time.perf_counter()
            for i in range(0, len(entries), batch):
                stored = entries[i : i + batch]
                await engine.store_many([(q1, answer_naming(idx)) for q1, idx in stored])
                if progress:
                    progress(min(i + batch, len(entries)), total)
            store_s = time.perf_counter() - start
            start = time.perf_counter()
            for i in range(0, len(pairs), batch):
                found = await engine.lookup_many([p.q2 for p in pairs[i : i + batch]])
                for hit in found:
                    answers.append(None if hit is None else hit.text)
                    if hit is not None:
                        kind = hit.info.kind.value
                        kinds[kind] = kinds.get(kind, 0) + 1
                if progress:
                    progress(len(entries) + min(i + batch, len(pairs)), total)
            lookup_s = time.perf_counter() - start
        if search is not None:
            await search.embedder.aclose()
            await search.store.aclose()
    point = score_answers(
        pairs, answers, threshold=config.reuse_threshold(), margin=config.reuse_margin()
    )
    return QualityReport(
        pairs_file=pairs_file,
        embedder=config.semantic.embedder,
        threshold=config.reuse_threshold(),
        margin=config.reuse_margin(),
        guard=config.semantic.guard,
        point=point,
        kinds=kinds,
        store_s=store_s,
        lookup_s=lookup_s,
        verifier=_verifier_label(config),
    )


def _verifier_label(config: HandlerConfig) -> str:
    sem = config.semantic
    if sem.verifier == "off" or sem.max_error_rate is None:
        return sem.verifier
    return f"{sem.verifier}, max_error_rate {sem.max_error_rate}"


def quality(
    pairs_file: str | Path,
    config: HandlerConfig | None = None,
    *,
    limit: int | None = None,
    progress: Progress | None = None,
) -> QualityReport:
    """`run_quality` on a pair file (the first `limit` pairs)."""
    pairs = load_pairs(pairs_file)[:limit]
    if not pairs:
        raise ValueError(f"no pairs in {pairs_file}")
    return asyncio.run(
        run_quality(pairs, config or HandlerConfig(), pairs_file=str(pairs_file), progress=progress)
    )
