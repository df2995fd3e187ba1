"""`DiskRoom`'s room check on a real folder: what it counts, and when it looks again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from semantic_reuse.semantic.edge_space import DiskFullError, DiskRoom, unbacked_bytes
from tests.conftest import ManualClock

MiB = 1024 * 1024


def sparse(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        f.truncate(size)  # no blocks: a memory-mapped write there needs new disk


def test_holes_of_sparse_files_are_what_the_store_may_still_fill(tmp_path: Path) -> None:
    sparse(tmp_path / "wal", 32 * MiB)
    (tmp_path / "dense").write_bytes(b"x" * MiB)
    holes = unbacked_bytes(tmp_path)
    assert 31 * MiB < holes <= 32 * MiB


def test_a_new_sparse_file_is_counted_at_once_when_the_disk_moved(tmp_path: Path) -> None:
    """The walk is cached for `recheck_s`, but not past a change of the disk's free bytes: a
    check made before the folder existed must not hide the holes of the files made since.
    Real files on this disk: a TiB of holes (more than it has free) and a dense ballast."""
    clock = ManualClock()
    room = DiskRoom(lambda: tmp_path / "edge", 8 * MiB, recheck_s=60.0, clock=clock)
    room.check()  # no folder yet: no holes, plenty of room
    (tmp_path / "edge").mkdir()
    sparse(tmp_path / "edge" / "segment", 1 << 40)
    ballast = tmp_path / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.posix_fallocate(fd, 0, 16 * MiB)  # the disk fills meanwhile (the clock did not move)
    finally:
        os.close(fd)
    with pytest.raises(DiskFullError, match="nearly full"):
        room.check()
    assert room.full
    (tmp_path / "edge" / "segment").unlink()
    ballast.unlink()  # the free bytes move back: looked at again, room again
    room.check()
    assert not room.full


def test_no_margin_turns_the_check_off(tmp_path: Path) -> None:
    sparse(tmp_path / "huge", 1 << 40)  # a TiB of holes: far more than this disk has free
    with pytest.raises(DiskFullError):
        DiskRoom(lambda: tmp_path, MiB).check()
    DiskRoom(lambda: tmp_path, 0).check()  # off: never refuses
