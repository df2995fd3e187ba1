"""``DiskRoom``: refuse Edge writes before the disk under the folder runs out.

Qdrant Edge memory-maps its files (the write-ahead log, the segments' storages) and creates them
sparse: a file of 32 MiB takes no disk blocks until its pages are written. When the disk is full,
writing such a page does not fail with ENOSPC: the kernel sends SIGBUS and the whole process dies
(tried on a 64 MiB tmpfs: the process was killed in the middle of an upsert; on a 4 MiB one,
opening the folder killed it). Python cannot catch that, so the store must not get there.

Before opening the folder and before each write, :meth:`DiskRoom.check` asks the file system for
its free bytes (``statvfs``, microseconds) and compares them with what the folder may still
touch without asking for more: the holes of its files (apparent size minus allocated blocks),
plus ``min_free_bytes`` for what the next write may create (a new log file, a grown storage).
Too little room raises :class:`DiskFullError`, a `ComponentUnavailableError`: the semantic
write fails and is counted (``errors_total{component="semantic"}``), requests fall through to
generation, and writes resume once there is room again. The first refusal of a full spell is
logged once at WARNING (lookups still succeed, so the breaker alone would not say it), the
return of room at INFO. The folder is walked at most once per ``recheck_s``, and at once when
the disk's free bytes moved by half of ``min_free_bytes`` since the last walk or come within
twice ``min_free_bytes`` of what the store needs.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from semantic_reuse._log import logger
from semantic_reuse.errors import ComponentUnavailableError

__all__ = ["DiskFullError", "DiskRoom", "unbacked_bytes"]

MiB = 1024 * 1024


class DiskFullError(ComponentUnavailableError):
    """The disk of an Edge folder has too little room for the next write."""


def unbacked_bytes(folder: Path) -> int:
    """Bytes the files under ``folder`` may be written in without new blocks of the disk
    (their holes): what a memory-mapped write can still touch."""
    holes = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                stat = os.lstat(os.path.join(root, name))
            except OSError:  # gone meanwhile (an optimize swapped a segment)
                continue
            holes += max(0, stat.st_size - stat.st_blocks * 512)
    return holes


def _existing(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still take on the file system of ``path``."""
    stat = os.statvfs(_existing(path))
    return stat.f_bavail * stat.f_frsize


class DiskRoom:
    """The room check of one store; ``folder`` is asked each time (it changes on a swap)."""

    def __init__(
        self,
        folder: Callable[[], Path],
        min_free_bytes: int,
        *,
        recheck_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._folder = folder
        self.min_free_bytes = min_free_bytes
        self._recheck_s = recheck_s
        self._clock = clock
        self._lock = threading.Lock()
        self._holes = 0
        self._walked_at: float | None = None
        self._free_at_walk = 0
        self.full = False  # the last check refused

    def check(self) -> None:
        """Raise DiskFullError when the next write could find the disk full."""
        if self.min_free_bytes <= 0:
            return
        folder = self._folder()
        now = self._clock()
        free = free_bytes(folder)
        with self._lock:
            stale = self._walked_at is None or now - self._walked_at >= self._recheck_s
            # The walk is redone at once when the disk's free bytes moved by half the margin
            # since the last one (files created or filled, here or by others), and near the
            # limit: what changed since would otherwise go uncounted just when it matters.
            moved = abs(free - self._free_at_walk) >= self.min_free_bytes // 2
            if stale or moved or free < self._holes + 2 * self.min_free_bytes:
                self._holes = unbacked_bytes(folder) if folder.is_dir() else 0
                self._walked_at, self._free_at_walk = now, free
            holes = self._holes
        if free >= holes + self.min_free_bytes:
            if self.full:
                self.full = False
                logger.info("the disk of the Edge store at {} has room again", folder)
            return
        error = DiskFullError(
            f"the disk of the Edge store at {folder} is nearly full: {free / MiB:.1f} MiB "
            f"free, {(holes + self.min_free_bytes) / MiB:.1f} MiB needed "
            f"(cache.qdrant_min_free_bytes plus {holes / MiB:.1f} MiB the store's files "
            "may still fill); writes wait for room"
        )
        if not self.full:
            self.full = True
            logger.warning("{}", error)
        raise error
