"""The life of a host shared-memory segment: create, attach, recover, lock, unlink.

A segment starts with a header (little-endian, 128 bytes reserved): the magic
``SRSHMTBL``, the layout version, the mapping kind, the geometry (max entries, index
buckets, size, data offset and capacity), the owner (pid, process start time, pid
namespace) and the id of the secret its entries are keyed with. The magic and layout
version sit at fixed offsets in every layout, so a segment of another layout or program is
refused with ValueError and never touched.

Segments belong to one user: the name given gets ``-u{uid}`` appended (so users never meet
on a name), and a segment or lock file that another user owns, or that group or others may
open, is refused (`SharedMemoryRefusedError`) before a byte of it is read, and never
removed. A segment keyed with another secret is refused the same way.

The creator owns the segment and unlinks it in ``close()``. A create that finds the name
taken checks the owner: alive, it attaches; dead (no such pid, a zombie, or a recycled pid
with another start time), it unlinks the segment and creates a fresh one. An owner in
another pid namespace (a container sharing /dev/shm) always counts as alive. Creation,
recovery and attachment run under the writer lock, so an uninitialised segment seen there
is one whose creator died, and two creators never both unlink and recreate.

Segments are opened with CPython's ``_posixshmem`` (what ``SharedMemory`` itself calls)
rather than ``SharedMemory``: before Python 3.13 ``SharedMemory`` registers every segment
it opens with the resource tracker, which unlinks it when the process exits, and
unregistering afterwards breaks when processes share one tracker (children started with
spawn or fork): its single set of names loses the owner's entry and the owner's own
unlink then fails in the tracker. Here no process tells the tracker anything.
"""

from __future__ import annotations

import _posixshmem  # type: ignore[import-not-found]  # CPython's shm_open/shm_unlink (POSIX)
import contextlib
import fcntl
import mmap
import os
import struct
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from semantic_reuse.errors import SharedMemoryRefusedError
from semantic_reuse.exact.secret import check_private

MAGIC = b"SRSHMTBL"
LAYOUT_VERSION = 2
KIND_REQUESTS = 1
KIND_TOKENS = 2
HEADER_BYTES = 256  # the header, then the table's state block (see slot_table)
SLOT_BYTES = 64
MIN_DATA_BYTES = 4096
# magic, layout, kind, max_entries, buckets, size, data offset, data capacity, owner (3),
# the id of the secret the entries are keyed with
HEADER = struct.Struct("<8sIIIIQQQQQQ8s")


def index_buckets(max_entries: int) -> int:
    return 1 << max(3, (2 * max_entries - 1).bit_length())


def overhead_bytes(max_entries: int) -> int:
    """Bytes a segment needs besides its data ring."""
    return HEADER_BYTES + SLOT_BYTES * max_entries + 8 * index_buckets(max_entries)


def segment_name(name: str) -> str:
    """The name of this user's segment ``name`` under /dev/shm: ``{name}-u{uid}``."""
    return f"{name}-u{os.geteuid()}"


def lock_path(name: str) -> Path:
    """The lock file of this user's segment ``name``: beside it in /dev/shm, else in the
    temp dir."""
    shm = Path("/dev/shm")
    folder = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    return folder / f".sr-{segment_name(name)}.lock"  # a leading dot: never a segment's name


def unlink_segment(name: str) -> bool:
    """Remove this user's segment ``name`` and its lock file (operators, tests); False if it
    was absent."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(lock_path(name))
    try:
        _posixshmem.shm_unlink("/" + segment_name(name))
    except FileNotFoundError:
        return False
    return True


def _process_identity(pid: int) -> tuple[int, bool]:
    """(start time in clock ticks, is a zombie) from /proc; (0, False) where there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0, False
    fields = stat[stat.rfind(")") + 2 :].split()  # the command name may hold spaces
    return int(fields[19]), fields[0] == "Z"


def _pid_namespace() -> int:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def owner_alive(pid: int, start: int, pidns: int) -> bool:
    """Whether the recorded owner still runs; owners in another pid namespace count as alive."""
    if pidns and pidns != _pid_namespace():
        return True  # its pid means nothing here: never take the segment away
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    now, zombie = _process_identity(pid)
    return not zombie and not (start and now and now != start)  # a recycled pid is not it


class WriterLock:
    """Exclusive across processes (``flock``) and across this process's threads.

    A forked child reopens the file: ``flock`` belongs to the open file description, which
    fork shares, so parent and child would otherwise both "hold" it at once.
    """

    def __init__(self, name: str) -> None:
        self.path = lock_path(name)
        self._pid = os.getpid()
        self._fd = _open_lock(self.path)
        self._threads = threading.Lock()

    def __enter__(self) -> None:
        if self._pid != os.getpid():
            self._pid, self._threads = os.getpid(), threading.Lock()
            self._reopen()
        self._threads.acquire()
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    @contextlib.contextmanager
    def fresh(self) -> Iterator[None]:
        """Hold the lock of the file now at `path` (an owner's close may have replaced it)."""
        with self._threads:
            while True:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
                with contextlib.suppress(FileNotFoundError):
                    here, mine = os.stat(self.path), os.fstat(self._fd)
                    if (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino):
                        break
                self._reopen()  # closing releases the lock
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def remove_file(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def _reopen(self) -> None:
        """Close the file and open the one now at `path` (refused: left closed)."""
        fd, self._fd = self._fd, -1
        os.close(fd)
        self._fd = _open_lock(self.path)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _open_lock(path: Path) -> int:
    """Open (or create) a lock file that only this user can hold; refuse anyone else's."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except PermissionError as exc:  # another user's file in a sticky folder
        raise SharedMemoryRefusedError(f"lock file {path}: {exc.strerror}: refused") from None
    except OSError as exc:  # ELOOP: a symbolic link put in its place
        raise SharedMemoryRefusedError(f"lock file {path}: {exc.strerror}: refused") from None
    try:
        check_private(fd, f"lock file {path}")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_shm(name: str, flags: int) -> int:
    """shm_open this user's segment ``name``; refuse one another user owns or may open."""
    real = "/" + segment_name(name)
    try:
        fd: int = _posixshmem.shm_open(real, flags | os.O_NOFOLLOW, mode=0o600)
    except PermissionError as exc:
        raise SharedMemoryRefusedError(f"shared memory {real}: {exc.strerror}: refused") from None
    try:
        check_private(fd, f"shared memory {real}")
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_segment(
    name: str, *, kind: int, size: int, max_entries: int, create: bool, key_id: bytes
) -> tuple[mmap.mmap, WriterLock, bool]:
    """(mapping, writer lock, owner): create, recover a dead owner's, or attach to a live one.

    ``key_id`` identifies the secret this process keys entries with (8 bytes)."""
    lock = WriterLock(name)
    try:
        with lock.fresh():
            for _ in range(3):
                if create:
                    try:
                        fd = _open_shm(name, os.O_CREAT | os.O_EXCL | os.O_RDWR)
                    except FileExistsError:
                        pass
                    else:
                        new = _initialise(name, fd, kind, size, max_entries, key_id)
                        return new, lock, True
                try:
                    fd = _open_shm(name, os.O_RDWR)
                except FileNotFoundError:
                    if create:
                        continue
                    raise
                mm = _map(fd)
                try:
                    attach = _attachable(name, mm, kind, key_id, create=create)
                except BaseException:
                    if mm is not None:
                        mm.close()
                    raise
                if attach and mm is not None:
                    return mm, lock, False
                if mm is not None:  # stale: its owner is dead, or died initialising it
                    mm.close()
                _posixshmem.shm_unlink("/" + segment_name(name))
            raise RuntimeError(f"shared memory {name!r} keeps changing under us")
    except BaseException:
        lock.close()
        raise


def close_segment(name: str, mm: mmap.mmap, lock: WriterLock, *, unlink: bool) -> None:
    """Unmap; ``unlink`` also removes the segment and its lock file (the owner's job),
    unless the lock file was replaced by one this user cannot trust (then both stay)."""
    try:
        if unlink:
            with lock.fresh():
                with contextlib.suppress(FileNotFoundError):
                    _posixshmem.shm_unlink("/" + segment_name(name))
                lock.remove_file()
    except SharedMemoryRefusedError:
        pass  # never wait on or remove another user's lock file
    finally:
        lock.close()
        mm.close()


def _map(fd: int) -> mmap.mmap | None:
    """Map an existing segment; None while it is too small to hold a header."""
    try:
        size = os.fstat(fd).st_size
        return mmap.mmap(fd, size) if size >= HEADER_BYTES else None
    finally:
        os.close(fd)


def _initialise(
    name: str, fd: int, kind: int, size: int, max_entries: int, key_id: bytes
) -> mmap.mmap:
    """Size and format a new segment; the magic goes in last."""
    try:
        os.ftruncate(fd, size)
        mm = mmap.mmap(fd, size)
    except BaseException:
        os.close(fd)
        _posixshmem.shm_unlink("/" + segment_name(name))
        raise
    os.close(fd)
    buckets = index_buckets(max_entries)
    data_offset = overhead_bytes(max_entries)
    start, _ = _process_identity(os.getpid())
    owner = (os.getpid(), start, _pid_namespace())
    geometry = (kind, max_entries, buckets, size, data_offset, size - data_offset)
    HEADER.pack_into(mm, 0, bytes(8), LAYOUT_VERSION, *geometry, *owner, key_id)
    mm[0:8] = MAGIC
    return mm


def _attachable(name: str, mm: mmap.mmap | None, kind: int, key_id: bytes, *, create: bool) -> bool:
    """True to attach, False if stale (to be recreated); ValueError if not ours to read,
    SharedMemoryRefusedError if keyed with another secret."""
    if mm is None or mm[0:8] == bytes(8):
        if create:
            return False
        raise ValueError(f"shared memory {name!r} is not initialised (its creator died)")
    magic, version, found_kind, max_entries, buckets, size, data_offset, capacity, *rest = (
        HEADER.unpack_from(mm)
    )
    *owner, found_key = rest
    if magic != MAGIC or version != LAYOUT_VERSION:
        raise ValueError(
            f"shared memory {name!r} is not a semantic-reuse table of layout {LAYOUT_VERSION} "
            f"(magic {magic!r}, layout {version}): refusing to use or remove it"
        )
    if create and not owner_alive(*owner):
        return False
    if found_key != key_id:
        raise SharedMemoryRefusedError(
            f"shared memory {name!r} is keyed with another secret (another user's, or another "
            "secret file): refused"
        )
    if found_kind != kind:
        raise ValueError(f"shared memory {name!r} holds another mapping (kind {found_kind})")
    expected = (len(mm), index_buckets(max_entries), overhead_bytes(max_entries), size)
    if (size, buckets, data_offset, data_offset + capacity) != expected:
        raise ValueError(f"shared memory {name!r} has a damaged header")
    return True
