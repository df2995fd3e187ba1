"""`semantic-reuse train-verifier` on the command line: its arguments only (cheap to import);
the work is in :mod:`~semantic_reuse.tools.verifier_command`, imported when it runs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console


def _train_verifier(args: argparse.Namespace, console: Console) -> int:
    from semantic_reuse.tools.verifier_command import run_train_verifier

    return run_train_verifier(args, console)


def add_train_verifier(commands: Any) -> None:
    """`train-verifier` on the CLI's subcommands."""
    verifier = commands.add_parser(
        "train-verifier",
        help="fit the verifier on labelled pairs, calibrate its error budget, write it (JSON)",
    )
    verifier.add_argument(
        "--pairs", type=Path, required=True, action="append",
        help="training pairs (JSONL: q1, q2, label); repeat for several",
    )  # fmt: skip
    verifier.add_argument(
        "--calibrate-on", type=Path, required=True, action="append",
        help="held-apart pairs for the calibration and the check (never the training pairs)",
    )  # fmt: skip
    verifier.add_argument("--out", type=Path, required=True, help="the file (or folder) to write")
    verifier.add_argument("--embedder", default="minilm", help="minilm, e5 or a model folder")
    verifier.add_argument("--name", default=None, help="default: verifier-<embedder>")
    verifier.add_argument(
        "--default-error-rate", type=float, default=0.2,
        help="the budget in force when a user sets no max_error_rate",
    )  # fmt: skip
    verifier.add_argument(
        "--features", choices=("base", "text"), default="base",
        help="the columns the trees read. base (default): the 22 cheap pair signals (cosine, "
        "rank and gaps, rarity-weighted word overlap, bigrams, the guard's numbers, negation, "
        "names); what the English file reads and what reproduces it. text: base plus 10 "
        "lookup-time context signals (lengths, the 2nd and 3rd candidates' cosines, the best "
        "candidate's overlap with the 2nd and the question's with the 2nd): +0.04 recall at "
        "precision 0.72 on LCQMC (the Chinese file), no clear gain on English",
    )  # fmt: skip
    verifier.add_argument(
        "--monotone-cosine", action="store_true",
        help="constrain the trees so that a higher cosine never lowers the probability, all "
        "else equal (a prior that holds on every pair set; the Chinese file uses it). Off by "
        "default: the English file was trained without it",
    )  # fmt: skip
    verifier.add_argument("--limit", type=int, default=None, help="first N training pairs")
    verifier.set_defaults(run=_train_verifier)
