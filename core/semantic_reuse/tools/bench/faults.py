"""Component faults injected into real components (`reliability_components`, and the tests).

The embedder and the clause splitter cannot be made to fail or hang on demand, so they are
wrapped: `FaultyEmbedder` and `FaultySplitter` pass every call to the real component until a
fault is switched on. The other faults are real: a small tmpfs filled with a ballast file (a
real full disk under the Edge folder), damaged files in an Edge folder, damaged bytes in Redis
and in the host shared-memory segment.
"""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from semantic_reuse.clauses.rules import ClauseSplitter
from semantic_reuse.semantic.edge_space import free_bytes, unbacked_bytes

Mode = Literal["raise", "hang"] | None
#: A hung call ends on its own after this long at most (so that no thread outlives a run).
HANG_LIMIT_S = 60.0


class InjectedFault(RuntimeError):
    """What a faulty component raises."""


class _Switch:
    def __init__(self) -> None:
        self.mode: Mode = None
        self.release = threading.Event()
        self.calls = 0

    def set(self, mode: Mode) -> None:
        """Switch the fault on (``"raise"``, ``"hang"``) or off (None: hung calls end too)."""
        self.mode = mode
        if mode is None:
            self.release.set()
        else:
            self.release.clear()

    def enter(self, what: str) -> None:
        self.calls += 1
        if self.mode == "raise":
            raise InjectedFault(f"injected fault: the {what} crashed")
        if self.mode == "hang":
            self.release.wait(HANG_LIMIT_S)
            raise InjectedFault(f"injected fault: the {what} hung")


class FaultyEmbedder(_Switch):
    """The real embedder `inner` (its name and size), until `set("raise" | "hang")`."""

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self.inner = inner

    @property
    def name(self) -> str:
        return str(self.inner.name)

    @property
    def dim(self) -> int:
        return int(self.inner.dim)

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.enter("embedder")
        result: npt.NDArray[np.float32] = self.inner.encode(texts)
        return result


class FaultySplitter(_Switch):
    """The real clause splitter `inner`, until `set("raise" | "hang")`."""

    def __init__(self, inner: ClauseSplitter) -> None:
        super().__init__()
        self.inner = inner

    def split(self, text: str) -> list[str]:
        self.enter("clause splitter")
        return self.inner.split(text)


# -- a full disk -------------------------------------------------------------------------------


class FaultUnavailable(RuntimeError):
    """This machine cannot produce the fault (no right to mount a tmpfs)."""


@contextlib.contextmanager
def small_tmpfs(folder: Path, size_mib: int) -> Iterator[Path]:
    """A real tmpfs of `size_mib` MiB mounted on `folder` (needs CAP_SYS_ADMIN)."""
    folder.mkdir(parents=True, exist_ok=True)
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0700", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mount.returncode != 0:
        raise FaultUnavailable(f"cannot mount a tmpfs on {folder}: {mount.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


def fill_disk(store_folder: Path, min_free_bytes: int, ballast: Path) -> int:
    """Write `ballast` (beside the store, on its disk) until less room is left than the store
    needs for a write (its files' holes plus `min_free_bytes`), with half of `min_free_bytes`
    still free: the disk is full for the store, not for the file system. Returns the
    ballast's size."""
    need = unbacked_bytes(store_folder) + min_free_bytes
    size = free_bytes(store_folder) - need + min_free_bytes // 2
    if size <= 0:
        return 0
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.posix_fallocate(fd, 0, size)
    finally:
        os.close(fd)
    return size


# -- damaged data ------------------------------------------------------------------------------

Damage = Literal["truncate", "flip"]


def damage_edge_folder(folder: Path, how: Damage, seed: int = 0) -> list[Path]:
    """Damage a closed Edge folder's segments: ``"truncate"`` cuts every vector storage file
    to a third (Edge panics on load), ``"flip"`` inverts 2% of the bytes of every payload
    storage file (Edge refuses the segment). Returns the files damaged."""
    part = "vector_storage" if how == "truncate" else "payload_storage"
    rng = random.Random(seed)
    damaged = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or part not in path.parts or path.stat().st_size == 0:
            continue
        data = bytearray(path.read_bytes())
        if how == "truncate":
            data = data[: len(data) // 3]
        else:
            for _ in range(max(1, len(data) // 50)):
                data[rng.randrange(len(data))] ^= 0xFF
        path.write_bytes(bytes(data))
        damaged.append(path)
    return damaged


def garbage_values(valid: bytes) -> dict[str, bytes]:
    """Damaged copies of a stored Redis value: foreign bytes, and our header (magic, version,
    format) before a body that is not one."""
    return {
        "garbage": b"\x80\x04not an answer at all",
        "bad_body": valid[:4] + b"\xc1\xc1\xc1 not msgpack",
    }


def damage_shared_segment(path: Path, offset: int, seed: int = 0) -> int:
    """Overwrite everything after `offset` of a shared-memory segment file with random bytes
    (from `segment.overhead_bytes`: the stored answers, the slot table left whole); returns
    how many bytes."""
    rng = random.Random(seed)
    size = path.stat().st_size - offset
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(rng.randbytes(size))
    return size
