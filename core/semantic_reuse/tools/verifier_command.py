"""`semantic-reuse train-verifier`: the command around :mod:`.train_verifier`."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time

from rich.console import Console

from semantic_reuse.config import HandlerConfig
from semantic_reuse.defaults import build_embedder
from semantic_reuse.semantic.guard import MatchGuard
from semantic_reuse.semantic.verify.context_features import FEATURE_SETS
from semantic_reuse.tools.bench.progress import progress_bar
from semantic_reuse.tools.calibrate import load_pairs
from semantic_reuse.tools.train_verifier import TrainOptions, embed_pairs, train, write


def run_train_verifier(args: argparse.Namespace, console: Console) -> int:
    if not 0.0 < args.default_error_rate < 1.0:
        raise SystemExit("--default-error-rate must be in (0, 1)")
    config = HandlerConfig.model_validate({"semantic": {"embedder": args.embedder}})
    embedder = build_embedder(config)
    train_pairs = [p for path in args.pairs for p in load_pairs(path)][: args.limit]
    calibration_pairs = [p for path in args.calibrate_on for p in load_pairs(path)]
    seen = {(p.q1, p.q2) for p in train_pairs}
    if any((p.q1, p.q2) in seen for p in calibration_pairs):
        raise SystemExit("--calibrate-on shares pairs with --pairs: hold them apart")
    name = args.name or f"verifier-{args.embedder}"
    options = TrainOptions(
        name=name, default_error_rate=args.default_error_rate,
        features=FEATURE_SETS[args.features], monotone_cosine=args.monotone_cosine,
    )  # fmt: skip
    started = time.perf_counter()
    with progress_bar(console, f"training {name}") as report:
        train_vectors = embed_pairs(embedder, train_pairs, report)
        calibration_vectors = embed_pairs(embedder, calibration_pairs, report)
        verifier, figures = train(
            train_pairs, train_vectors, calibration_pairs, calibration_vectors, options,
            guard=MatchGuard(), report=report,
        )  # fmt: skip
    figures["total_seconds"] = round(time.perf_counter() - started, 1)
    card = {
        "embedder": embedder.name,
        "training_files": [str(p) for p in args.pairs],
        "calibration_files": [str(p) for p in args.calibrate_on],
        "design": {"features": args.features, "monotone_cosine": args.monotone_cosine},
        "command": shlex.join(["semantic-reuse", *sys.argv[1:]]),
    }  # fmt: skip
    path = write(verifier, figures, args.out, card)
    console.print(json.dumps(figures, indent=1))
    console.print(f"verifier written to {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0
