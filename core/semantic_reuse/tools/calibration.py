"""`semantic-reuse calibrate`: pick the similarity threshold from labelled pairs.

Embeds each pair file with the configured embedder, sweeps the threshold under the
shared-cache protocol with the configured guard and margin, and prints (optionally
writes to a dotenv file) the threshold with the best F1 among those that reach the
target precision. Several files are calibrated together: a threshold must hold on all.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from rich.console import Console
from rich.table import Table

from semantic_reuse.config import HandlerConfig
from semantic_reuse.defaults import build_embedder
from semantic_reuse.semantic.guard import MatchGuard
from semantic_reuse.tools.calibrate import (
    SweepPoint,
    choose_threshold,
    default_thresholds,
    embed_neighbours,
    load_pairs,
    sweep_neighbours,
)

ENV_NAME = "SEMANTIC_REUSE_SIMILARITY_THRESHOLD"


def combine(points: list[list[SweepPoint]]) -> list[SweepPoint]:
    """Sum the counts of several files' sweeps, threshold by threshold."""
    return [
        SweepPoint(
            threshold=row[0].threshold,
            margin=row[0].margin,
            queries=sum(p.queries for p in row),
            positives=sum(p.positives for p in row),
            hits=sum(p.hits for p in row),
            correct=sum(p.correct for p in row),
        )
        for row in zip(*points, strict=True)
    ]


def write_env(path: Path, threshold: float) -> None:
    """Set the threshold line of a dotenv file, keeping its other lines."""
    lines = path.read_text().splitlines() if path.exists() else []
    lines = [line for line in lines if not re.match(rf"\s*{ENV_NAME}\s*=", line)]
    lines.append(f"{ENV_NAME}={threshold:.2f}")
    path.write_text("\n".join(lines) + "\n")


def run_calibrate(args: argparse.Namespace, console: Console) -> int:
    if not 0.0 <= args.target_precision <= 1.0:
        raise SystemExit("--target-precision must be in [0, 1]")
    config = HandlerConfig()
    if args.embedder:
        config.semantic.embedder = args.embedder
    margin = config.reuse_margin() if args.margin is None else args.margin
    guard = None if args.no_guard else MatchGuard(entities=config.semantic.guard_entities)
    embedder = build_embedder(config)
    sweeps = []
    for path in args.pairs:
        pairs = load_pairs(path)[: args.limit]
        neighbours = embed_neighbours(pairs, embedder.encode)
        sweeps.append(
            sweep_neighbours(
                pairs, neighbours, thresholds=default_thresholds(), margin=margin, guard=guard
            )
        )
    points = combine(sweeps)
    chosen = choose_threshold(points, args.target_precision)
    table = Table(
        title=f"shared-cache sweep ({embedder.name}, margin {margin}, "
        f"guard {'on' if guard else 'off'})"
    )
    for column in ("threshold", "precision", "recall", "F1", "hit rate", "error rate"):
        table.add_column(column, justify="right")
    for p in points[::5] + ([chosen] if chosen else []):
        style = "bold green" if p is chosen else None
        table.add_row(
            f"{p.threshold:.2f}",
            f"{p.precision:.3f}",
            f"{p.recall:.3f}",
            f"{p.f1:.3f}",
            f"{p.hit_rate:.3f}",
            f"{p.error_rate:.4f}",
            style=style,
        )
    console.print(table)
    if chosen is None:
        console.print(f"[red]No threshold reaches precision {args.target_precision}[/]")
        return 1
    console.print(f"{ENV_NAME}={chosen.threshold:.2f}")
    if args.write_env:
        write_env(args.write_env, chosen.threshold)
        console.print(
            f"written to {args.write_env}; load it with "
            f"HandlerConfig(_env_file={str(args.write_env)!r})"
        )
    return 0
