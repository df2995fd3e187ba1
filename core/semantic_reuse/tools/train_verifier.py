"""`semantic-reuse train-verifier`: fit the verifier on labelled pairs, calibrate it, write it.

1. Every text is embedded once (the bench's bulk path, cached under the bench cache).
2. The shared-cache protocol is replayed on the training pairs, in caches of ``cache_size``
   pairs: the ``q1`` s are stored, each ``q2`` asks, and its ``top_k`` neighbours above the
   floor become rows (the candidate is right when it is the pair's own ``q1`` and the pair is
   labelled 1). The verifier thus learns on the hard negatives a cache really returns. A
   ``q2`` whose very text is cached (another pair's ``q1``, as in LCQMC) is left out: the
   engine answers it from its exact tiers, and counting its candidate wrong taught the trees
   and the calibration that an identical question may be wrong.
3. A gradient-boosted tree ensemble (scikit-learn, training time only) is fitted on the rows
   (the columns of ``features``; with ``monotone_cosine``, constrained so that a higher cosine
   never lowers the score) and exported to plain arrays; its numpy evaluation is checked
   against scikit-learn's.
4. Isotonic calibration and the error-budget table are fitted on the first half of the
   calibration pairs (dev files, never the training files) replayed the same way; the other
   half is scored for the model card, untouched by any fitting.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from semantic_reuse.semantic.embedder import Embedder
from semantic_reuse.semantic.guard import MatchGuard
from semantic_reuse.semantic.verify.context_features import FeatureSet
from semantic_reuse.semantic.verify.features import FEATURE_NAMES, WordWeights
from semantic_reuse.semantic.verify.trees import TreeEnsemble
from semantic_reuse.semantic.verify.verifier import BudgetPoint, Calibration, Verifier
from semantic_reuse.tools.calibrate import LabelledPair, shared_cache_neighbours
from semantic_reuse.tools.shared_cache import exact_entries

Report = Callable[[str, int, int], None]
FloatMatrix = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class TrainOptions:
    name: str
    floor: float = 0.5
    top_k: int = 5
    cache_size: int = 5000
    default_error_rate: float = 0.2
    max_iter: int = 300
    learning_rate: float = 0.05
    max_leaf_nodes: int = 31
    seed: int = 0
    features: tuple[str, ...] = FEATURE_NAMES
    """The columns (``context_features.FEATURE_SETS``): the base ones unless asked."""
    monotone_cosine: bool = False


@dataclass(slots=True)
class Rows:
    """Candidate rows of a replayed cache: features, whether serving it is right, and which
    query (index into the pairs) and cache entry it belongs to."""

    x: FloatMatrix
    right: npt.NDArray[np.int8]
    query: npt.NDArray[np.int64]
    positives: int = 0
    queries: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def replay(
    pairs: Sequence[LabelledPair],
    vectors: FloatMatrix,
    guard: MatchGuard,
    weights: WordWeights,
    options: TrainOptions,
    report: Report | None = None,
    label: str = "replaying",
) -> Rows:
    """The shared-cache protocol on `pairs` in caches of `options.cache_size` pairs.
    `vectors` holds every q1's vector, then every q2's."""
    features = FeatureSet.of(options.features)
    n = len(pairs)
    xs: list[FloatMatrix] = []
    right: list[int] = []
    owner_query: list[int] = []
    skipped_positives = 0
    for start in range(0, n, options.cache_size):
        part = list(range(start, min(n, start + options.cache_size)))
        chunk = [pairs[i] for i in part]
        nb = shared_cache_neighbours(
            chunk, vectors[part], vectors[[n + i for i in part]], k=options.top_k
        )
        exact = exact_entries(chunk, nb.owner)
        for local, i in enumerate(part):
            if exact[local] is not None:
                skipped_positives += pairs[i].label
                continue  # answered from the exact tiers: the verifier never sees it
            candidates = [
                (nb.entries[int(j)], float(s), int(j))
                for j, s in zip(nb.indices[local], nb.scores[local], strict=True)
                if s >= options.floor
            ]
            if not candidates:
                continue
            rows = features.rows(guard, weights, pairs[i].q2, [(c, s) for c, s, _ in candidates])
            xs.append(rows)
            own = nb.owner[local]
            right.extend(int(j == own and pairs[i].label == 1) for _, _, j in candidates)
            owner_query.extend([i] * len(candidates))
            if report and local % 200 == 0:
                report(label, i, n)
    x = np.concatenate(xs) if xs else np.zeros((0, len(features.names)), dtype=np.float32)
    return Rows(
        x, np.asarray(right, dtype=np.int8), np.asarray(owner_query, dtype=np.int64),
        positives=sum(p.label for p in pairs) - skipped_positives, queries=n,
    )  # fmt: skip


def best_per_query(rows: Rows, scores: npt.NDArray[np.float64]) -> tuple[Any, Any]:
    """For each query that had candidates: the best candidate's score and whether it is right."""
    best: dict[int, tuple[float, int]] = {}
    for q, s, r in zip(rows.query.tolist(), scores.tolist(), rows.right.tolist(), strict=True):
        if q not in best or s > best[q][0]:
            best[q] = (s, r)
    values = np.array([v[0] for v in best.values()], dtype=np.float64)
    rights = np.array([v[1] for v in best.values()], dtype=np.int8)
    return values, rights


def budget_table(
    scores: npt.NDArray[np.float64], rights: npt.NDArray[np.int8], positives: int
) -> list[BudgetPoint]:
    """Error rate and recall when serving at each distinct score, highest first."""
    order = np.argsort(-scores, kind="stable")
    s, r = scores[order], rights[order].astype(np.int64)
    correct = np.cumsum(r)
    served = np.arange(1, len(s) + 1)
    points: list[BudgetPoint] = []
    for i in range(len(s)):
        if i + 1 < len(s) and s[i + 1] == s[i]:
            continue  # ties are served together
        points.append(BudgetPoint(float(s[i]), float(1 - correct[i] / served[i]), int(served[i]),
                                  float(correct[i] / max(1, positives))))  # fmt: skip
    return _thin(points)


def _thin(points: list[BudgetPoint], keep: int = 400) -> list[BudgetPoint]:
    if len(points) <= keep:
        return points
    step = len(points) / keep
    return [points[int(i * step)] for i in range(keep)] + [points[-1]]


def split_halves(pairs: Sequence[LabelledPair]) -> tuple[list[int], list[int]]:
    """A fixed split of the calibration pairs by a hash of their id: (fit half, check half)."""
    fit: list[int] = []
    check: list[int] = []
    for i, pair in enumerate(pairs):
        digest = hashlib.sha256(pair.id.encode("utf-8")).digest()
        (fit if digest[0] % 2 == 0 else check).append(i)
    return fit, check


def train(
    train_pairs: Sequence[LabelledPair],
    train_vectors: FloatMatrix,
    calibration_pairs: Sequence[LabelledPair],
    calibration_vectors: FloatMatrix,
    options: TrainOptions,
    *,
    guard: MatchGuard | None = None,
    report: Report | None = None,
) -> tuple[Verifier, dict[str, Any]]:
    """The verifier and its model card's figures (see the module docstring)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.isotonic import IsotonicRegression

    guard = guard or MatchGuard()
    features = FeatureSet.of(options.features)
    monotone = {"monotonic_cst": features.monotone_cosine()} if options.monotone_cosine else {}
    started = time.perf_counter()
    weights = WordWeights.fit(guard.profile(t) for p in train_pairs for t in (p.q1, p.q2))
    rows = replay(train_pairs, train_vectors, guard, weights, options, report, "training pairs")
    model = HistGradientBoostingClassifier(
        max_iter=options.max_iter, learning_rate=options.learning_rate,
        max_leaf_nodes=options.max_leaf_nodes, l2_regularization=1.0,
        early_stopping=False, random_state=options.seed, **monotone,
    )  # fmt: skip
    if report:
        report("fitting the trees", 0, 1)
    model.fit(rows.x.astype(np.float64), rows.right)
    ensemble = TreeEnsemble.from_sklearn(model)
    sample = rows.x[: min(len(rows.x), 5000)]
    drift = float(np.abs(ensemble.raw(sample) - model.decision_function(sample)).max())
    if drift > 1e-4:
        raise RuntimeError(f"the exported trees differ from scikit-learn's by {drift:.2e}")

    fit_half, check_half = split_halves(calibration_pairs)
    n = len(calibration_pairs)

    def half(indices: list[int]) -> tuple[list[LabelledPair], FloatMatrix]:
        vectors = calibration_vectors[indices + [n + i for i in indices]]
        return [calibration_pairs[i] for i in indices], vectors

    fit_pairs, fit_vectors = half(fit_half)
    fit_rows = replay(fit_pairs, fit_vectors, guard, weights, options, report, "calibration")
    raw, right = best_per_query(fit_rows, ensemble.probability(fit_rows.x))
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, right)
    calibration = Calibration(
        np.asarray(iso.X_thresholds_, dtype=np.float64),
        np.asarray(iso.y_thresholds_, dtype=np.float64),
    )
    budget = budget_table(calibration(raw), right, fit_rows.positives)
    verifier = Verifier(
        name=options.name, ensemble=ensemble, weights=weights, calibration=calibration,
        budget=tuple(budget), floor=options.floor, top_k=options.top_k,
        default_error_rate=options.default_error_rate, guard=guard, features=features,
    )  # fmt: skip
    check_pairs, check_vectors = half(check_half)
    check_rows = replay(check_pairs, check_vectors, guard, weights, options, report, "checking")
    figures = {
        "train_pairs": len(train_pairs),
        "train_rows": len(rows.x),
        "train_right_share": round(float(rows.right.mean()), 4) if len(rows.x) else 0.0,
        "calibration_pairs": len(fit_pairs),
        "check_pairs": len(check_pairs),
        "check": check_figures(verifier, check_rows),
        "train_seconds": round(time.perf_counter() - started, 1),
    }
    return verifier, figures


def check_figures(verifier: Verifier, rows: Rows) -> dict[str, Any]:
    """Precision and recall on replayed rows at the default budget and at a few others."""
    p = verifier.calibration(verifier.ensemble.probability(rows.x))
    scores, rights = best_per_query(rows, p)
    out: dict[str, Any] = {}
    for budget in (0.05, 0.1, 0.2, 0.3):
        threshold = verifier.threshold_for(budget)
        served = scores >= threshold
        correct = int(rights[served].sum())
        out[f"max_error_rate={budget}"] = {
            "served": int(served.sum()),
            "precision": round(correct / max(1, int(served.sum())), 4),
            "recall": round(correct / max(1, rows.positives), 4),
        }
    return out


def write(verifier: Verifier, figures: dict[str, Any], out: Path, card: dict[str, Any]) -> Path:
    """The verifier's JSON (weights and card) at `out` (a file or a folder)."""
    path = out / f"{verifier.name}.json" if out.is_dir() or not out.suffix else out
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(verifier.to_dict({**card, "figures": figures}), separators=(",", ":")),
        encoding="utf-8",
    )
    return path


def embed_pairs(
    embedder: Embedder, pairs: Sequence[LabelledPair], report: Report | None = None
) -> FloatMatrix:
    """Every q1's vector, then every q2's (the bulk path; cached in the bench cache)."""
    from semantic_reuse.tools.bench.embeddings import bench_cache_dir, embed_bulk

    texts = [p.q1 for p in pairs] + [p.q2 for p in pairs]
    progress = None if report is None else (lambda d, t: report("embedding", d, t))
    vectors, _ = embed_bulk(
        embedder, texts, cache_dir=bench_cache_dir() / "vectors", progress=progress
    )
    return vectors
