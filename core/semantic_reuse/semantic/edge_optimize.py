"""Building an Edge shard's HNSW index: in a child process, and when to do it automatically.

What Edge 0.9 does, measured on this kind of machine (2 cores shared with other work, 384 dims,
random unit vectors), and how :class:`~semantic_reuse.semantic.edge_store.EdgeStore` deals with it:

- There is no background optimizer: new points stay in a plain segment and are searched exactly,
  by brute force (a filtered query took 1.5-3 ms at 10,000 points and 11-24 ms at 50,000), until
  ``optimize()`` builds the HNSW index (7-20 s for 10,000 points, 63-87 s for 50,000); then a
  query takes about 1 ms at 10,000 and 1.2-1.7 ms at 50,000 in the engine. Small plain segments
  stay unindexed whatever happens (``optimize()`` returns False for a few thousand new points).
- The bindings hold the GIL for the whole of a call (queries too, but they are short), so an
  in-process optimize freezes the entire Python process (event loop, streaming, every other
  request) for that long, whichever thread runs it; and a shard cannot be optimized by another
  process while this one has it open.
- So ``EdgeStore.optimize`` (``optimizer="subprocess"``, the default) builds an optimized copy
  beside the live folder while the live one keeps answering
  (:mod:`~semantic_reuse.semantic.edge_rebuild`): the store's worker copies the points into a new
  folder in small chunks between other calls, writes made meanwhile are applied to the live
  folder and kept in a journal, a child process (:func:`start_optimize_child`, at a lower CPU
  priority) builds the index of the copy, and the worker swaps the copy in and replays the
  journal. Lookups wait only for one chunk or for the swap (closing one shard, loading the other).
  Each optimize indexes every point again (the copy holds one plain segment), and drops what
  deletes left behind.
- Automatic policy (:class:`OptimizePolicy`): after every ``optimize_threshold`` upserted points
  the worker reads the shard's counters and starts an optimize when at least that many points are
  not indexed (also checked when a folder is opened). Below it, brute force over the unindexed
  points costs a few milliseconds. ``flush()`` only flushes; ``optimize_threshold=None`` leaves
  optimizing to explicit calls.
- HNSW is approximate: on random vectors recall@10 at Edge's default ``ef`` was 0.6 at 10,000
  points and 0.22 at 50,000 (random 384-dim data is HNSW's worst case), while the nearest stored
  vector of a paraphrase-like query (a stored vector plus noise) was found 99.5-100% of the time.
  ``hnsw_ef`` trades speed for recall (ef 256: 0.87 at 10,000, ef 512: 0.98).

Importing this module does not import ``qdrant_edge`` (the child process does).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Literal

from semantic_reuse.errors import InvalidRequestError

__all__ = ["OptimizePolicy", "Optimizer", "child_outcome", "start_optimize_child"]

Optimizer = Literal["subprocess", "in_process"]


def start_optimize_child(
    export: Path, copy: Path, template: Path, dim: int, nice: int, log: Path
) -> subprocess.Popen[str]:
    """Start the child that builds ``copy`` from ``export`` and indexes it
    (:mod:`~semantic_reuse.semantic.edge_child`), ``nice`` added to its niceness, its stderr in
    ``log``; :func:`child_outcome` reads the result."""
    root = str(Path(__file__).resolve().parents[2])  # where semantic_reuse is importable from
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    args = [str(export), str(copy), str(template), str(dim), str(nice)]
    with log.open("w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "semantic_reuse.semantic.edge_child", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=env,
        )


def child_outcome(folder: Path, returncode: int, stdout: str, stderr: str) -> bool:
    """True when the child indexed the copy (False: nothing to improve); RuntimeError (with
    its stderr) when it failed."""
    lines = stdout.split("\n")
    if returncode != 0 or "done" not in lines:
        raise RuntimeError(
            f"optimizing the Edge store at {folder} failed "
            f"(exit {returncode}): {stderr.strip()[-2000:]}"
        )
    return "indexed optimized" in lines


class OptimizePolicy:
    """How a store optimizes (``optimizer``, ``nice``) and when it queues an automatic optimize.

    ``threshold``: queue one once this many points are not indexed, checked every that many
    upserted points and on open; None: only explicit optimizes. ``queued`` stays True until
    that optimize has finished. The counters belong to the store's worker thread, the only one
    that calls these methods.
    """

    def __init__(self, threshold: int | None, optimizer: Optimizer, nice: int) -> None:
        if threshold is not None and (
            isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1
        ):
            raise InvalidRequestError(
                f"optimize_threshold must be a positive int or None, got {threshold!r}"
            )
        if optimizer not in ("subprocess", "in_process"):
            raise InvalidRequestError(
                f"optimizer must be 'subprocess' or 'in_process', got {optimizer!r}"
            )
        self.threshold = threshold
        self.optimizer: Optimizer = optimizer
        self.nice = int(nice)
        #: An automatic optimize waits in the worker's queue.
        self.queued = False
        self._since_check = 0

    def opened(self) -> None:
        """A folder was opened: its counters are due at once."""
        if self.threshold is not None:
            self._since_check = self.threshold

    def added(self, count: int) -> None:
        """``count`` points were upserted."""
        self._since_check += count

    def due(self) -> bool:
        """Whether to read the shard's counters now (the upsert count restarts when it is)."""
        if self.threshold is None or self.queued or self._since_check < self.threshold:
            return False
        self._since_check = 0
        return True

    def ended(self) -> None:
        """The optimize that was queued or running has ended."""
        self.queued = False

    def wants(self, points: int, indexed: int) -> bool:
        """Whether these counters call for an optimize; when they do, it counts as queued."""
        if self.threshold is None or points - indexed < self.threshold:
            return False
        self.queued = True
        return True
