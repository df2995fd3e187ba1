"""Labelled question pairs: the data that calibration and the quality benchmarks measure on.

A pair file holds one JSON object a line: ``q1``, ``q2``, ``label`` (1 when a cached answer to
``q1`` correctly answers ``q2``, else 0), and optionally ``id`` and ``lang``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LabelledPair", "load_pairs"]


@dataclass(frozen=True, slots=True)
class LabelledPair:
    """Two questions and whether a cached answer to ``q1`` correctly answers ``q2``."""

    id: str
    q1: str
    q2: str
    label: int
    lang: str = "en"


def load_pairs(path: str | Path) -> list[LabelledPair]:
    """Read a pair file: one JSON object a line with ``q1``, ``q2``, ``label`` (0 or 1)
    and optionally ``id`` and ``lang``."""
    pairs: list[LabelledPair] = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            try:
                label = int(row["label"])
                pair = LabelledPair(
                    id=str(row.get("id", number)),
                    q1=str(row["q1"]),
                    q2=str(row["q2"]),
                    label=label,
                    lang=str(row.get("lang", "en")),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{path}:{number}: not a labelled pair ({exc})") from exc
            if label not in (0, 1):
                raise ValueError(f"{path}:{number}: label must be 0 or 1, not {label}")
            pairs.append(pair)
    return pairs
