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
from semantic_reuse.engine import ReuseEngine
from semantic_reuse.semantic.calibrate import LabelledPair, SweepPoint, load_pairs

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

    def as_dict(self) -> dict[str, Any]:
        return {
            "pairs_file": self.pairs_file,
            "embedder": self.embedder,
            "threshold": self.threshold,
            "margin": self.margin,
            "guard": self.guard,
            **self.point.as_dict(),
            "kinds": self.kinds,
            "store_s": round(self.store_s, 2),
            "lookup_s": round(self.lookup_s, 2),
        }


def answer_naming(pair_index: int) -> str:
    return f"pair:{pair_index}"


async def run_quality(
    pairs: Sequence[LabelledPair],
    config: HandlerConfig,
    *,
    pairs_file: str = "",
    batch: int = 32,
    progress: Progress | None = None,
) -> QualityReport:
    """Store every distinct q1, look up every q2, count correct and wrong hits."""
    config = config.model_copy(deep=True)
    config.cache.redis_url = None  # the protocol measures reuse decisions, not tiers
    with tempfile.TemporaryDirectory(prefix="sr-quality-") as folder:
        config.cache.qdrant_path = Path(folder)
        async with ReuseEngine(config) as engine:
            await engine.warm_up()
            owners: dict[str, int] = {}
            for index, pair in enumerate(pairs):
                owners.setdefault(pair.q1, index)
            entries = list(owners.items())
            start = time.perf_counter()
            for i in range(0, len(entries), batch):
                stored = entries[i : i + batch]
                await engine.store_many([(q1, answer_naming(idx)) for q1, idx in stored])
                if progress:
                    progress(min(i + batch, len(entries)), len(entries) + len(pairs))
            store_s = time.perf_counter() - start
            start = time.perf_counter()
            hits = correct = 0
            kinds: dict[str, int] = {}
            for i in range(0, len(pairs), batch):
                asked = list(pairs[i : i + batch])
                found = await engine.lookup_many([p.q2 for p in asked])
                for pair, hit in zip(asked, found, strict=True):
                    if hit is None:
                        continue
                    hits += 1
                    kinds[hit.info.kind.value] = kinds.get(hit.info.kind.value, 0) + 1
                    # Its own q1's answer (a q1 text shared by pairs is stored once).
                    if pair.label == 1 and hit.text == answer_naming(owners[pair.q1]):
                        correct += 1
                if progress:
                    progress(len(entries) + min(i + batch, len(pairs)), len(entries) + len(pairs))
            lookup_s = time.perf_counter() - start
    point = SweepPoint(
        threshold=config.reuse_threshold(),
        margin=config.reuse_margin(),
        queries=len(pairs),
        positives=sum(p.label for p in pairs),
        hits=hits,
        correct=correct,
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
    )


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
