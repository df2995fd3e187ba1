"""`bench quality --baseline gptcache`: both systems on one pair file, the same vectors.

1. Every distinct text of the file is embedded once with the configured embedder's model
   (with ``"auto"``, the default, the model of the route the file's texts take: MiniLM for an
   English file, e5 for a Chinese one; a file that needs both asks for ``--embedder``)
   (:func:`~semantic_reuse.tools.bench.embeddings.embed_bulk`: MiniLM through its ONNX export,
   e5 on every core, checked against the embedder on a sample; kept in the bench cache).
2. The engine runs the shared-cache protocol with its default configuration on those
   vectors (:func:`~semantic_reuse.tools.bench.quality.run_quality`): the headline point.
3. Its sweeps replay the engine's reuse decision on the precomputed neighbours
   (:mod:`semantic_reuse.tools.calibrate`), leaving out clause splitting (so they can differ
   slightly from the engine's point): with the verifier, over its probability threshold
   (system ``semantic-reuse``); without it, over the cosine threshold with margin and guard
   (``semantic-reuse (cosine)``).
4. GPTCache (:mod:`.gptcache_baseline`) gets every distinct q1 through its ``put`` and every
   q2 through its ``get``, at its default threshold 0.8; the ranks it computed give its sweep.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from semantic_reuse.config import AUTO_EMBEDDER, HandlerConfig
from semantic_reuse.defaults import build_embedder, build_verifier
from semantic_reuse.semantic.decision import ReusePolicy
from semantic_reuse.semantic.embedder import Embedder
from semantic_reuse.semantic.guard import MatchGuard
from semantic_reuse.semantic.script import needs_multilingual
from semantic_reuse.semantic.verify import Verifier
from semantic_reuse.tools.bench.embeddings import PrecomputedEmbedder, embed_bulk
from semantic_reuse.tools.bench.gptcache_baseline import (
    GPTCACHE_DEFAULT_THRESHOLD,
    GPTCacheBaseline,
    Lookup,
    cosine_of_threshold,
    gptcache_served,
)
from semantic_reuse.tools.bench.metrics import answer_naming, cache_owners, score_answers
from semantic_reuse.tools.bench.quality import QualityReport, run_quality
from semantic_reuse.tools.calibrate import (
    LabelledPair,
    Neighbours,
    SweepPoint,
    score_choices,
    shared_cache_neighbours,
    sweep_neighbours,
)
from semantic_reuse.tools.shared_cache import shared_cache_decisions

Progress = Callable[[str, int, int], None]

#: Thresholds of the engine's sweep (cosine) and GPTCache's (its own scale: cos = 2t - 1).
OUR_SWEEP = tuple(round(0.40 + 0.01 * i, 2) for i in range(60))
GPTCACHE_SWEEP = tuple(round(0.70 + 0.01 * i, 2) for i in range(30))


@dataclass(frozen=True, slots=True)
class SystemQuality:
    """One system's default point and sweep on one pair file."""

    system: str
    default: SweepPoint
    sweep: tuple[SweepPoint, ...]
    notes: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "default": self.default.as_dict(),
            "sweep": [p.as_dict() for p in self.sweep],
            **self.notes,
        }


@dataclass(frozen=True, slots=True)
class QualityComparison:
    pairs_file: str
    embedder: str
    systems: tuple[SystemQuality, ...]
    engine: QualityReport
    #: How the texts' vectors were made (`embeddings.embed_bulk`): cached, or runtime and time.
    vectors: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "pairs_file": self.pairs_file,
            "embedder": self.embedder,
            "vectors": self.vectors,
            "engine": self.engine.as_dict(),
            "systems": [s.as_dict() for s in self.systems],
        }


def our_sweep(
    pairs: Sequence[LabelledPair],
    neighbours: Neighbours,
    config: HandlerConfig,
    thresholds: Sequence[float] = OUR_SWEEP,
) -> list[SweepPoint]:
    """The engine's cosine rule (margin, guard) at each of `thresholds`, replayed."""
    sem = config.semantic
    guard = MatchGuard(entities=sem.guard_entities) if sem.guard else None
    return sweep_neighbours(
        pairs, neighbours, thresholds=thresholds, margin=config.reuse_margin(), guard=guard
    )


#: Probability thresholds of the verifier's sweep.
VERIFIER_SWEEP = tuple(round(0.01 * i, 2) for i in range(101))


def verified_sweep(
    pairs: Sequence[LabelledPair],
    neighbours: Neighbours,
    verifier: Verifier,
    guard: MatchGuard | None,
) -> list[SweepPoint]:
    """The verified decision at each probability of `VERIFIER_SWEEP`: the best candidate
    above the floor (unless the guard vetoes it) is served when its probability reaches the
    threshold. Each pair is scored once; the sweep only moves the bar."""
    policy = ReusePolicy(verifier.floor, 0.0, guard, verifier=verifier, min_probability=0.0)
    best = [(c, p or 0.0) for c, p in shared_cache_decisions(pairs, neighbours, policy)]
    return [
        score_choices(
            pairs, neighbours.owner, [c if p >= bar else None for c, p in best], threshold=bar
        )
        for bar in VERIFIER_SWEEP
    ]


def run_gptcache(
    pairs: Sequence[LabelledPair],
    embedder: PrecomputedEmbedder,
    *,
    threshold: float = GPTCACHE_DEFAULT_THRESHOLD,
    progress: Callable[[int, int], None] | None = None,
) -> SystemQuality:
    """GPTCache on the shared-cache protocol: `put` every distinct q1, `get` every q2."""
    entries = list(cache_owners(pairs).items())
    total = len(entries) + len(pairs)
    lookups: list[Lookup] = []
    with GPTCacheBaseline(embedder, threshold=threshold, embed=embedder.vector) as cache:
        for n, (q1, index) in enumerate(entries, 1):
            cache.put(q1, answer_naming(index))
            if progress and n % 64 == 0:
                progress(n, total)
        for n, pair in enumerate(pairs, 1):
            lookups.append(cache.lookup(pair.q2))
            if progress and n % 64 == 0:
                progress(len(entries) + n, total)
    served = [lk.answer for lk in lookups]
    default = score_answers(pairs, served, threshold=threshold)
    sweep = [score_answers(pairs, gptcache_served(lookups, t), threshold=t) for t in GPTCACHE_SWEEP]
    replayed = score_answers(pairs, gptcache_served(lookups, threshold), threshold=threshold)
    return SystemQuality(
        system="gptcache",
        default=default,
        sweep=tuple(sweep),
        notes={
            "cosine_threshold": round(cosine_of_threshold(threshold), 4),
            "threshold_scale": "gptcache (cosine = 2t - 1)",
            # The sweep is replayed from GPTCache's own ranks: it must agree with the run.
            "sweep_replays_run": replayed == default,
        },
    )


def route_config(config: HandlerConfig, pairs: Sequence[LabelledPair]) -> HandlerConfig:
    """`config` with ``"auto"`` replaced by the one embedder the texts route to: the comparison
    shares one set of vectors between the systems, where the engine would route each text."""
    if config.semantic.embedder != AUTO_EMBEDDER:
        return config
    routes = {needs_multilingual(t) for p in pairs for t in (p.q1, p.q2)}
    if len(routes) > 1:
        raise ValueError(
            "the pairs mix English and other scripts, which the engine routes to two embedders; "
            "set the embedder ('minilm' or 'e5'; --embedder on the command line) to compare on one"
        )
    routed = config.model_copy(deep=True)
    routed.semantic.embedder = "e5" if routes == {True} else "minilm"
    return routed


def compare_quality(
    pairs: Sequence[LabelledPair],
    config: HandlerConfig,
    *,
    pairs_file: str = "",
    baseline: bool = True,
    embedder: Embedder | None = None,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
) -> QualityComparison:
    """Both systems on `pairs` with the same vectors (see the module docstring)."""
    if embedder is None:
        config = route_config(config, pairs)
    inner = embedder or build_embedder(config)

    def step(label: str) -> Callable[[int, int], None] | None:
        if progress is None:
            return None
        return lambda done, total: progress(label, done, total)

    texts = list(dict.fromkeys([p.q1 for p in pairs] + [p.q2 for p in pairs]))
    rows, how = embed_bulk(inner, texts, cache_dir=cache_dir, progress=step("embedding"))
    vectors = dict(zip(texts, rows, strict=True))
    shared = PrecomputedEmbedder(inner, vectors)
    engine = asyncio.run(
        run_quality(pairs, config, pairs_file=pairs_file, embedder=shared, progress=step("engine"))
    )
    q1 = np.stack([vectors[p.q1] for p in pairs])
    q2 = np.stack([vectors[p.q2] for p in pairs])
    sem = config.semantic
    neighbours = shared_cache_neighbours(pairs, q1, q2, k=min(sem.top_k, 10))
    cosine = SystemQuality(
        system="semantic-reuse",
        default=engine.point,
        sweep=tuple(our_sweep(pairs, neighbours, config)),
        notes={"margin": engine.margin, "guard": engine.guard, "threshold_scale": "cosine"},
    )
    systems = [cosine]
    guard = MatchGuard(entities=sem.guard_entities) if sem.guard else None
    expert = config.similarity_threshold is not None  # the cosine rule, no verifier
    verifier = None if expert else build_verifier(config, inner.name, guard)
    if verifier is not None:
        # The engine's point is the verifier's; the cosine rule gets its replayed default.
        (cosine_default,) = our_sweep(pairs, neighbours, config, [config.reuse_threshold()])
        budget = sem.max_error_rate or verifier.default_error_rate
        systems = [
            SystemQuality(
                system="semantic-reuse",
                default=engine.point,
                sweep=tuple(verified_sweep(pairs, neighbours, verifier, guard)),
                notes={
                    "threshold_scale": "verifier probability",
                    "max_error_rate": budget,
                    "min_probability": verifier.threshold_for(budget),
                },
            ),
            SystemQuality(
                system="semantic-reuse (cosine)",
                default=cosine_default,
                sweep=cosine.sweep,
                notes=cosine.notes,
            ),
        ]
    if baseline:
        systems.append(run_gptcache(pairs, shared, progress=step("gptcache")))
    return QualityComparison(pairs_file, inner.name, tuple(systems), engine, how)
