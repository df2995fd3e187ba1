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
  request) for that long, whichever thread runs it.
- So ``EdgeStore.optimize`` runs the optimizer in a child process by default
  (:func:`optimize_in_child`): the worker flushes and closes the shard, ``python -c`` loads the
  folder, optimizes it at a lower CPU priority and closes it, and the worker loads it again
  (0.2-0.6 s of GIL-held close and load). The event loop stays free; store calls made meanwhile
  wait in the worker's queue (the engine's timeouts turn waiting lookups into misses, and a
  cancelled call leaves the queue).
- Automatic policy (:class:`OptimizePolicy`): after every ``optimize_threshold`` upserted points
  the worker reads the shard's counters and queues an optimize when at least that many points are
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

import subprocess
import sys
from pathlib import Path
from typing import Literal

from semantic_reuse.errors import InvalidRequestError

__all__ = ["OptimizePolicy", "Optimizer", "optimize_in_child"]

Optimizer = Literal["subprocess", "in_process"]

#: Run by ``python -c`` to optimize a closed shard folder: argv = [folder, niceness].
_OPTIMIZE_CHILD = """
import os, sys
try:
    os.nice(int(sys.argv[2]))
except (AttributeError, OSError, ValueError):
    pass
from qdrant_edge import EdgeShard
shard = EdgeShard.load(sys.argv[1])
try:
    changed = shard.optimize()
    shard.flush()
finally:
    shard.close()
print("optimized" if changed else "unchanged")
"""


def optimize_in_child(folder: Path, nice: int) -> bool:
    """Optimize the closed shard in ``folder`` in a child process, ``nice`` added to its niceness.

    True when anything changed; RuntimeError (with the child's stderr) when the child fails.
    """
    proc = subprocess.run(
        [sys.executable, "-c", _OPTIMIZE_CHILD, str(folder), str(nice)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"optimizing the Edge store at {folder} failed "
            f"(exit {proc.returncode}): {proc.stderr.strip()[-2000:]}"
        )
    return proc.stdout.strip().endswith("optimized")


class OptimizePolicy:
    """How a store optimizes (``optimizer``, ``nice``) and when it queues an automatic optimize.

    ``threshold``: queue one once this many points are not indexed, checked every that many
    upserted points and on open; None: only explicit optimizes. The counters belong to the
    store's worker thread, the only one that calls these methods.
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

    def wants(self, points: int, indexed: int) -> bool:
        """Whether these counters call for an optimize; when they do, it counts as queued."""
        if self.threshold is None or points - indexed < self.threshold:
            return False
        self.queued = True
        return True
