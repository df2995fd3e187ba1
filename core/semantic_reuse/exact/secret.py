"""The per-user secret that keys host shared memory: names of entries and their MACs.

Every process of one user on a host reads the same 32 random bytes from a file only that
user can read (0600, owned by them, a regular file, not a link), created atomically on first
use: written whole to a private temporary file, then hard-linked into place, so a reader
never sees a half-written secret and two creators never replace each other's. A file of
another owner, open to group or others, or of the wrong size is refused
(`SharedMemoryRefusedError`): the shared tier is then skipped, never keyed with a secret
someone else may know.

Default location: ``$XDG_CONFIG_HOME/semantic-reuse/shm-secret`` (``~/.config/...``), a
config folder rather than the cache folder, which users clear; `cache.shared_memory_secret`
names another file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import threading
from pathlib import Path

from semantic_reuse.errors import SharedMemoryRefusedError

SECRET_BYTES = 32
_LOADED: dict[Path, bytes] = {}
_LOCK = threading.Lock()


def default_secret_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("semantic-reuse")) / "shm-secret"


def load_secret(path: Path | str | None = None) -> bytes:
    """The user's secret at `path` (default `default_secret_path()`), created when absent."""
    where = Path(path).expanduser() if path is not None else default_secret_path()
    where = where.absolute()
    with _LOCK:
        secret = _LOADED.get(where)
        if secret is None:
            secret = _LOADED[where] = _read_or_create(where)
        return secret


def check_private(fd: int, what: str) -> os.stat_result:
    """The `fstat` of `fd` if it is a regular file of this user with no group or other
    permission bits; else SharedMemoryRefusedError naming `what` and the fault."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise SharedMemoryRefusedError(f"{what} is not a regular file: refused")
    if info.st_uid != os.geteuid():
        raise SharedMemoryRefusedError(
            f"{what} is owned by uid {info.st_uid}, not this user (uid {os.geteuid()}): refused"
        )
    if info.st_mode & 0o077:
        raise SharedMemoryRefusedError(
            f"{what} has mode {stat.S_IMODE(info.st_mode):04o}; only its owner may read or "
            "write it (0600): refused"
        )
    return info


def _read_or_create(path: Path) -> bytes:
    for _ in range(3):
        with contextlib.suppress(FileNotFoundError):
            return _read(path)
        _create(path)
    raise SharedMemoryRefusedError(f"the shared-memory secret {path} keeps disappearing")


def _read(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:  # a symbolic link (ELOOP), no permission...
        raise SharedMemoryRefusedError(
            f"cannot open the shared-memory secret {path}: {exc.strerror}"
        ) from None
    try:
        info = check_private(fd, f"the shared-memory secret {path}")
        data = os.read(fd, SECRET_BYTES + 1)
    finally:
        os.close(fd)
    if info.st_size != SECRET_BYTES or len(data) != SECRET_BYTES:
        raise SharedMemoryRefusedError(
            f"the shared-memory secret {path} holds {len(data)} bytes, not {SECRET_BYTES}: "
            "refused (delete it to make a new one)"
        )
    return data


def _create(path: Path) -> None:
    """Write a new secret beside `path` and link it into place unless one appeared."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(temporary, flags, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, secrets.token_bytes(SECRET_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):  # another process won: read theirs
            os.link(temporary, path)
    finally:
        os.unlink(temporary)
