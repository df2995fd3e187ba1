"""The files around an Edge folder: the process lock, private folders, optimize leftovers.

For a folder ``<parent>/<name>`` (no ``qdrant_edge`` here, only the file system):

- ``<name>.lock``: an ``flock`` held by the process that has the folder open, for as long as it
  does (the kernel drops it when the process dies, SIGKILL included). It is taken before Edge
  opens the folder and kept while an optimize swaps the folder's contents, so that no other
  process slips in between (Edge's own lock on its write-ahead log is held only while a shard
  is open).
- ``<name>.private-<pid>-<hex>/`` (with its own ``.lock``): the folder of a process that found
  ``<name>`` in use (``EdgeStore(if_in_use="private")``); merged into ``<name>`` and removed by
  whichever process next holds both.
- ``<name>.rebuild-<pid>-<hex>/``: the optimized copy being built beside the live folder.
- ``<name>.replaced-<pid>-<hex>/``: the live folder while a swap puts the copy in its place. It
  holds every acknowledged write until the swap has replayed them into the copy, so a process
  that finds one (its owner died mid-swap) puts it back (:func:`recover`).
- ``<name>.trash-<pid>-<hex>/``: a replaced folder being deleted.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import shutil
import signal
import time
from pathlib import Path

from semantic_reuse._log import logger

__all__ = ["BUILDER_PID", "FolderLock", "recover", "remove_folder", "sibling", "siblings"]

#: The file of a ``rebuild`` folder that names the child process building the copy.
BUILDER_PID = "child.pid"

#: What :func:`sibling` appends after ``<name>.<kind>-``.
_SUFFIX = re.compile(r"[0-9]+-[0-9a-f]{6}")


class FolderLock:
    """An exclusive, non-blocking ``flock`` on ``<folder>.lock``; thread-confined."""

    def __init__(self, folder: Path) -> None:
        self.path = folder.with_name(folder.name + ".lock")
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> bool:
        """Take the lock; False when another open file (another process) holds it."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self, *, unlink: bool = False) -> None:
        """Give the lock back; ``unlink`` removes the file first (a folder that is gone)."""
        if self._fd is None:
            return
        if unlink:
            with contextlib.suppress(OSError):
                self.path.unlink()
        fd, self._fd = self._fd, None
        os.close(fd)


def sibling(folder: Path, kind: str) -> Path:
    """A fresh ``<name>.<kind>-<pid>-<hex>`` beside ``folder`` (not created)."""
    return folder.with_name(f"{folder.name}.{kind}-{os.getpid()}-{secrets.token_hex(3)}")


def siblings(folder: Path, kind: str) -> list[Path]:
    """The ``<name>.<kind>-*`` folders beside ``folder``, oldest name first."""
    if not folder.parent.is_dir():
        return []
    prefix = f"{folder.name}.{kind}-"
    return sorted(
        p
        for p in folder.parent.iterdir()
        if p.name.startswith(prefix) and _SUFFIX.fullmatch(p.name[len(prefix) :]) and p.is_dir()
    )


def recover(folder: Path) -> None:
    """Undo what an optimize that died left beside ``folder``; call with its lock held.

    A ``replaced`` folder is the complete one (its swap had not finished): it goes back in
    place. Unfinished copies and trash are deleted.
    """
    for replaced in siblings(folder, "replaced"):
        if folder.exists():
            shutil.rmtree(folder)
        os.rename(replaced, folder)
        logger.warning("Edge store {}: an interrupted optimize was undone", folder)
    for leftover in siblings(folder, "rebuild"):
        stop_builder(leftover)
        shutil.rmtree(leftover, ignore_errors=True)
    for leftover in siblings(folder, "trash"):
        shutil.rmtree(leftover, ignore_errors=True)


def stop_builder(workdir: Path, limit_s: float = 10.0) -> None:
    """Kill the child process that was building the copy in ``workdir`` (named in its
    ``child.pid``), and wait until it is gone: it dies with its parent, but may take a moment,
    and must not write into the folder while it is deleted."""
    try:
        pid = int((workdir / BUILDER_PID).read_text())
    except (OSError, ValueError):
        return
    cmdline = Path(f"/proc/{pid}/cmdline")
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            if str(workdir) not in cmdline.read_bytes().decode("utf-8", "replace"):
                return  # gone (or a zombie, or another process that got the pid)
        except OSError:
            return
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)  # the kernel's time to end it


def remove_folder(folder: Path) -> None:
    """Delete ``folder`` and whatever an optimize of it left beside it (not its lock file)."""
    for kind in ("replaced", "rebuild", "trash"):
        for leftover in siblings(folder, kind):
            if kind == "rebuild":
                stop_builder(leftover)
            shutil.rmtree(leftover, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)
