"""Verifier study: designs for the verifiers' decision, measured side by side.

Reproduces the table "Designs measured after the first verifier" in docs/benchmarks.md:

    PYTHONPATH=core .venv/bin/python benchmarks/verifier_study.py              # all designs
    PYTHONPATH=core .venv/bin/python benchmarks/verifier_study.py --designs A C
    PYTHONPATH=core .venv/bin/python benchmarks/verifier_study.py --train-cache-size 21021
    PYTHONPATH=core .venv/bin/python benchmarks/verifier_study.py --language zh --designs A C

``--language zh`` does the same with e5 on lcqmc_train and lcqmc_dev (no second file).
``--bootstrap N`` adds, for each design after the first, a paired bootstrap (N draws of the
dev queries) of its recall at the precision bar minus the first design's.

Every pair file is replayed through the shared-cache protocol once (MiniLM vectors from the
bench cache, as ``semantic-reuse train-verifier`` embeds them): qqp_train in caches of
``--train-cache-size`` pairs (5,000, as the shipped verifier), qqp_dev_5k and
gptcache_mock_pairs each in one cache (as ``bench quality``). Each candidate row gets the
verifier's features (``semantic_reuse.semantic.verify.features``) plus the study's extras:

- text-only, computable at lookup time from what the engine already has: lengths, the 2nd
  and 3rd candidates' cosines, word and character-bigram overlap of the best candidate with
  the second and of the query with the second (``TEXT_EXTRAS``, computed by the verifier's
  own ``context_features``: the Chinese verifier ships with them);
- vector ones, which would need the store to return the candidates' vectors (the engine's
  stores do not): the best and second candidates' cosine, and the best candidate's cosine to
  its own nearest cache entry (the density of its neighbourhood);
- soft word alignment (``StaticWords``): MiniLM's own wordpiece input embeddings give each
  word a vector; how well the words one side lacks are matched on the other side (would
  need a word table shipped beside the verifier).

Each design is a tree ensemble fitted on the training rows only. Its scores on qqp_dev_5k are
calibrated (isotonic) on one hash-half of the pairs (``split_halves``), the budget's threshold
is read there, and the figures come from the other half ("check") and from the whole file at
that threshold ("full", the engine's protocol); the curve figures ("R at P>=0.78") need no
threshold. gptcache_mock_pairs is scored at the QQP threshold and never fitted on. Nothing is
fitted on dev scores. ``--combine`` adds the "cosine OR verifier" rules, with the bundled
verifier at its own threshold.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from semantic_reuse.config import HandlerConfig
from semantic_reuse.defaults import build_embedder
from semantic_reuse.semantic.guard import MatchGuard
from semantic_reuse.semantic.sentence_transformer import SentenceTransformerEmbedder
from semantic_reuse.semantic.verify.context_features import TEXT_EXTRAS, text_extras
from semantic_reuse.semantic.verify.features import FEATURE_NAMES, WordWeights, pair_features
from semantic_reuse.semantic.verify.verifier import Verifier
from semantic_reuse.tools.calibrate import LabelledPair, load_pairs, shared_cache_neighbours
from semantic_reuse.tools.train_verifier import embed_pairs, split_halves

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

VECTOR_EXTRAS = ("best_second_cosine", "entry_nearest", "cosine_minus_entry_nearest")
ALIGN_EXTRAS = (
    "aligned_query", "aligned_candidate", "unaligned_weight_query",
    "unaligned_weight_candidate", "weighted_bag_cosine",
)  # fmt: skip
COLUMNS = (*FEATURE_NAMES, *TEXT_EXTRAS, *VECTOR_EXTRAS, *ALIGN_EXTRAS)
BASE = tuple(FEATURE_NAMES)
#: language: (embedder, training file, dev file, second dev file or "").
LANGUAGES = {
    "en": ("minilm", "qqp_train", "qqp_dev_5k", "gptcache_mock_pairs"),
    "zh": ("e5", "lcqmc_train", "lcqmc_dev", ""),
}

#: name: (columns, HistGradientBoostingClassifier options over the shipped ones).
DESIGNS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "A": (BASE, {}),
    "B": (BASE, {"max_iter": 600, "max_leaf_nodes": 63}),
    "C": (BASE + TEXT_EXTRAS, {}),
    "D": (BASE + TEXT_EXTRAS + VECTOR_EXTRAS, {}),
    "E": (BASE + TEXT_EXTRAS, {"monotonic_cst": [1] + [0] * (len(BASE + TEXT_EXTRAS) - 1)}),
    "F": (BASE + TEXT_EXTRAS, {"max_iter": 600, "max_leaf_nodes": 63}),
    "G": (BASE + TEXT_EXTRAS, {"max_leaf_nodes": 15, "learning_rate": 0.1}),
    "H": (BASE + ALIGN_EXTRAS, {}),
    "I": (BASE + TEXT_EXTRAS + ALIGN_EXTRAS, {}),
}


class StaticWords:
    """Soft word alignment over MiniLM's own input (wordpiece) embeddings, centred: for each
    word one side lacks, its best cosine to the other side's words (``ALIGN_EXTRAS``)."""

    def __init__(self, model_folder: Path, guard: MatchGuard, weights: WordWeights) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        tensors = load_file(str(model_folder / "model.safetensors"))
        table = next(v for k, v in tensors.items() if "word_embeddings" in k).astype(np.float32)
        self.table = table - table.mean(axis=0)
        self.tokenizer = Tokenizer.from_file(str(model_folder / "tokenizer.json"))
        self.guard, self.weights = guard, weights
        self.vectors: dict[str, npt.NDArray[np.float32]] = {}

    def vector(self, word: str) -> npt.NDArray[np.float32]:
        v = self.vectors.get(word)
        if v is None:
            ids = self.tokenizer.encode(word, add_special_tokens=False).ids
            v = self.table[ids].mean(axis=0) if ids else np.zeros(self.table.shape[1], np.float32)
            v = v / (float(np.linalg.norm(v)) or 1.0)
            self.vectors[word] = v
        return v

    def features(self, query: str, candidate: str) -> list[float]:
        qa = sorted(self.guard.profile(query).words)
        cb = sorted(self.guard.profile(candidate).words)
        if not qa or not cb:
            return [0.0] * len(ALIGN_EXTRAS)
        a = np.stack([self.vector(w) for w in qa])
        b = np.stack([self.vector(w) for w in cb])
        wa = np.array([self.weights(w) for w in qa])
        wb = np.array([self.weights(w) for w in cb])
        sims = a @ b.T
        ma, mb = sims.max(axis=1), sims.max(axis=0)
        bag_a, bag_b = wa @ a, wb @ b
        bag = float(bag_a @ bag_b / (np.linalg.norm(bag_a) * np.linalg.norm(bag_b) + 1e-9))
        return [float(wa @ ma / wa.sum()), float(wb @ mb / wb.sum()),
                float(wa[ma < 0.5].sum()), float(wb[mb < 0.5].sum()), bag]  # fmt: skip


@dataclass(slots=True)
class Rows:
    """One row a (query, candidate above the floor); `guard`: the guard allows the best."""

    x: npt.NDArray[np.float32]
    right: npt.NDArray[np.int8]
    query: Ints
    rank: Ints
    guard: npt.NDArray[np.int8]
    positives: int

    def without(self, queries: set[int]) -> Rows:
        """These rows less those of `queries` (positives kept: recall counts every pair)."""
        keep = np.array([q not in queries for q in self.query.tolist()], dtype=bool)
        return Rows(self.x[keep], self.right[keep], self.query[keep], self.rank[keep],
                    self.guard[keep], self.positives)  # fmt: skip

    def best(self, scores: Floats) -> tuple[Ints, Floats, Ints]:
        """Per query with a candidate: its index, the best's score (-1 when the guard vetoes
        it, as the engine does) and whether serving it is right."""
        m = self.rank == 0
        vetoed = self.guard[m] == 0
        return self.query[m], np.where(vetoed, -1.0, scores[m]), self.right[m].astype(np.int64)


def _entry_nearest(cache: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    out = np.zeros(len(cache), dtype=np.float32)
    for start in range(0, len(cache), 2048):
        sims = cache[start : start + 2048] @ cache.T
        for j in range(sims.shape[0]):
            sims[j, start + j] = -1.0
        out[start : start + 2048] = sims.max(axis=1)
    return out


def replay(
    pairs: Sequence[LabelledPair],
    vectors: npt.NDArray[np.float32],
    guard: MatchGuard,
    weights: WordWeights,
    cache_size: int,
    words: StaticWords | None,
    floor: float = 0.5,
    top_k: int = 5,
) -> Rows:
    """The shared-cache protocol in caches of `cache_size` pairs, every feature of a row."""
    n = len(pairs)
    xs: list[npt.NDArray[np.float32]] = []
    right: list[int] = []
    query: list[int] = []
    rank: list[int] = []
    allowed: list[int] = []
    for start in range(0, n, cache_size):
        part = list(range(start, min(n, start + cache_size)))
        nb = shared_cache_neighbours(
            [pairs[i] for i in part], vectors[part], vectors[[n + i for i in part]], k=top_k
        )
        stored = sorted({own: local for local, own in reversed(list(enumerate(nb.owner)))}.items())
        cache = vectors[[part[local] for _, local in stored]]
        cache = cache / np.linalg.norm(cache, axis=1, keepdims=True)
        nearest = _entry_nearest(cache)
        for local, i in enumerate(part):
            found = [(int(j), float(s)) for j, s in zip(nb.indices[local], nb.scores[local],
                                                         strict=True) if s >= floor]  # fmt: skip
            if not found:
                continue
            q2 = pairs[i].q2
            cands = [(nb.entries[j], s) for j, s in found]
            base = pair_features(guard, weights, q2, cands)
            text = text_extras(guard, q2, cands)
            best_second = float(cache[found[0][0]] @ cache[found[1][0]]) if len(found) > 1 else 0.0
            for r, ((prompt, s), (j, _)) in enumerate(zip(cands, found, strict=True)):
                extra = [
                    best_second, float(nearest[j]), s - float(nearest[j]),
                    *(words.features(q2, prompt) if words else [0.0] * len(ALIGN_EXTRAS)),
                ]  # fmt: skip
                xs.append(np.concatenate([base[r], text[r], np.asarray(extra, dtype=np.float32)]))
                right.append(int(j == nb.owner[local] and pairs[i].label == 1))
                query.append(i)
                rank.append(r)
                allowed.append(int(guard.check(q2, prompt).allowed) if r == 0 else 1)
    return Rows(
        np.asarray(xs, dtype=np.float32), np.asarray(right, dtype=np.int8),
        np.asarray(query, dtype=np.int64), np.asarray(rank, dtype=np.int64),
        np.asarray(allowed, dtype=np.int8), sum(p.label for p in pairs),
    )  # fmt: skip


def _served(scores: Floats, rights: Ints, threshold: float) -> tuple[float, int, int]:
    mask = scores >= threshold
    correct = int(rights[mask].sum())
    return correct / max(1, int(mask.sum())), correct, int(mask.sum())


def threshold_for(scores: Floats, rights: Ints, budget: float) -> float:
    """The lowest score at which served answers stay within `budget` wrong (ties together)."""
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    error = 1 - np.cumsum(rights[order]) / np.arange(1, len(s) + 1)
    ends = np.r_[s[1:] != s[:-1], True]
    ok = np.nonzero((error <= budget) & ends)[0]
    return float(s[ok.max()]) if len(ok) else float("inf")


def recall_at_precision(scores: Floats, rights: Ints, positives: int, precision: float) -> float:
    order = np.argsort(-scores, kind="stable")
    correct = np.cumsum(rights[order])
    ok = correct / np.arange(1, len(order) + 1) >= precision
    return float(correct[ok].max() / positives) if ok.any() else 0.0


def evaluate(
    score: Callable[[Rows], Floats],
    dev: Rows,
    dev_half: Ints,
    positives_check: int,
    mock: Rows | None,
    budget: float,
) -> dict[str, float]:
    """See the module docstring: calibrated on dev's fit half, reported on the rest."""
    from sklearn.isotonic import IsotonicRegression

    query, raw, right = dev.best(score(dev))
    half = dev_half[query]
    fit, check = half == 0, half == 1
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw[fit], right[fit])
    p = np.asarray(iso.predict(raw), dtype=np.float64)
    threshold = threshold_for(p[fit], right[fit], budget)
    check_p, check_c, _ = _served(p[check], right[check], threshold)
    full_p, full_c, _ = _served(p, right, threshold)
    out = {
        "check_P": check_p,
        "check_R": check_c / positives_check,
        "full_P": full_p,
        "full_R": full_c / dev.positives,
        "full_R_at_P78": recall_at_precision(raw, right, dev.positives, 0.78),
        "full_R_at_P72": recall_at_precision(raw, right, dev.positives, 0.72),
    }
    if mock is not None:
        _, mraw, mright = mock.best(score(mock))
        mp = np.asarray(iso.predict(mraw), dtype=np.float64)
        mock_p, mock_c, _ = _served(mp, mright, threshold)
        out["mock_R"] = mock_c / mock.positives
        out["mock_wrong"] = 1 - mock_p
        out["mock_R_at_wrong1%"] = recall_at_precision(mraw, mright, mock.positives, 0.99)
    return out


def fit_design(
    train: Rows, columns: Sequence[str], options: dict[str, Any]
) -> Callable[[Rows], Floats]:
    from sklearn.ensemble import HistGradientBoostingClassifier

    index = [COLUMNS.index(c) for c in columns]
    params: dict[str, Any] = {
        "max_iter": 300, "learning_rate": 0.05, "max_leaf_nodes": 31,
        "l2_regularization": 1.0, "early_stopping": False, "random_state": 0,
    }  # fmt: skip
    model = HistGradientBoostingClassifier(**{**params, **options})
    model.fit(train.x[:, index].astype(np.float64), train.right)

    def score(rows: Rows) -> Floats:
        return np.asarray(model.predict_proba(rows.x[:, index].astype(np.float64))[:, 1])

    return score


def combined_rules(language: str, files: dict[str, Rows]) -> list[dict[str, float]]:
    """Serve when the bundled verifier serves (its own threshold at its default budget) OR
    the cosine is at least `cosine` with the next candidate at least `gap` below."""
    verifier = Verifier.bundled(language)
    threshold = verifier.threshold_for(None)
    out: list[dict[str, float]] = []
    for cosine in (0.85, 0.9, 0.93, 0.95, 2.0):
        for gap in (0.02, 0.06, 0.1):
            row: dict[str, float] = {"cosine": cosine, "gap": gap}
            for name, rows in files.items():
                m = rows.rank == 0
                x = rows.x[m]
                columns = [COLUMNS.index(c) for c in verifier.features.names]
                p = verifier.calibration(verifier.ensemble.probability(x[:, columns]))
                by_cosine = (x[:, 0] >= cosine) & (x[:, 3] >= gap)
                serve = (rows.guard[m] == 1) & ((p >= threshold) | by_cosine)
                correct = int(rows.right[m][serve].sum())
                row[f"{name}_P"] = correct / max(1, int(serve.sum()))
                row[f"{name}_R"] = correct / rows.positives
            out.append(row)
            if cosine > 1.0:
                break  # the verifier alone
    return out


def bootstrap(
    scores: dict[str, tuple[Floats, Ints]], positives: int, precision: float, draws: int
) -> dict[str, list[float]]:
    """Each design's recall at `precision` minus the first design's: mean and 95% interval
    over `draws` resamples of the queries (the same draw for every design)."""
    first, *others = scores
    n = len(scores[first][0])
    rng = np.random.default_rng(0)
    diffs: dict[str, list[float]] = {d: [] for d in others}
    for _ in range(draws):
        idx = rng.integers(0, n, n)
        base = recall_at_precision(scores[first][0][idx], scores[first][1][idx], positives,
                                   precision)  # fmt: skip
        for d in others:
            raw, right = scores[d]
            diffs[d].append(recall_at_precision(raw[idx], right[idx], positives, precision) - base)
    return {
        d: [round(float(np.mean(v)), 4), *np.round(np.percentile(v, [2.5, 97.5]), 4).tolist()]
        for d, v in diffs.items()
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--language", choices=list(LANGUAGES), default="en")
    parser.add_argument("--designs", nargs="*", default=list(DESIGNS), choices=list(DESIGNS))
    parser.add_argument("--train-cache-size", type=int, default=5000)
    parser.add_argument("--budget", type=float, default=0.2)
    parser.add_argument("--combine", action="store_true", help="also the cosine-OR rules")
    parser.add_argument("--bootstrap", type=int, default=0, help="draws (0: none)")
    args = parser.parse_args(argv)

    embedder_name, train_name, dev_name, mock_name = LANGUAGES[args.language]
    embedder = build_embedder(
        HandlerConfig.model_validate({"semantic": {"embedder": embedder_name}})
    )
    guard = MatchGuard()
    names = [n for n in (train_name, dev_name, mock_name) if n]
    files = {n: load_pairs(args.datasets / f"{n}.jsonl") for n in names}
    weights = WordWeights.fit(guard.profile(t) for p in files[train_name] for t in (p.q1, p.q2))
    words = None
    if isinstance(embedder, SentenceTransformerEmbedder):
        words = StaticWords(embedder.model_folder, guard, weights)
    elif {"H", "I"} & set(args.designs):
        raise SystemExit("designs H and I need MiniLM's wordpiece table: English only")
    started = time.perf_counter()
    rows: dict[str, Rows] = {}
    for name, pairs in files.items():
        size = args.train_cache_size if name == train_name else len(pairs)
        vectors = embed_pairs(embedder, pairs)
        rows[name] = replay(pairs, vectors, guard, weights, size, words)
        print(f"{name}: {len(rows[name].x)} rows ({time.perf_counter() - started:.0f} s)")
    # A q2 identical to a stored q1 is an exact hit in the engine, never a semantic decision
    # (lcqmc_dev has 726; qqp_dev_5k none): its rows are left out, its pair still counts.
    dev_pairs = files[dev_name]
    stored = {" ".join(p.q1.lower().split()) for p in dev_pairs}
    exact = {i for i, p in enumerate(dev_pairs) if " ".join(p.q2.lower().split()) in stored}
    rows[dev_name] = rows[dev_name].without(exact)
    fit_half, _ = split_halves(dev_pairs)
    dev_half = np.ones(len(dev_pairs), dtype=np.int64)
    dev_half[fit_half] = 0
    positives_check = sum(p.label for p, h in zip(dev_pairs, dev_half, strict=True) if h)
    best_scores: dict[str, tuple[Floats, Ints]] = {}
    for design in args.designs:
        columns, options = DESIGNS[design]
        t = time.perf_counter()
        score = fit_design(rows[train_name], columns, options)
        _, raw, right = rows[dev_name].best(score(rows[dev_name]))
        best_scores[design] = (raw, right)
        mock = rows[mock_name] if mock_name else None
        figures = evaluate(score, rows[dev_name], dev_half, positives_check, mock, args.budget)
        rounded = {k: round(v, 3) for k, v in figures.items()}
        print(json.dumps({"design": design, **rounded, "fit_s": round(time.perf_counter() - t)}))
    if args.bootstrap:
        bar = 0.78 if args.language == "en" else 0.72
        for design, interval in bootstrap(best_scores, rows[dev_name].positives, bar,
                                          args.bootstrap).items():  # fmt: skip
            print(json.dumps({"design": design, f"R_at_P{bar}_minus_first": interval}))
    if args.combine:
        for row in combined_rules(args.language, {n: rows[n] for n in names[1:]}):
            print(json.dumps({k: round(v, 3) for k, v in row.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
