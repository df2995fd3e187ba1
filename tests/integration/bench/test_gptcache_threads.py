"""GPTCache's lookups from a thread pool (as `bench speed` runs them): sqlite's write lock.

GPTCache's `get` writes to sqlite (the hit's `last_access`, its hit report), one connection per
thread. A writer that waits longer than sqlite3's busy timeout fails with `database is locked`:
on a loaded machine the default 5 s was not enough (issue 11). The baseline waits up to
`SQLITE_BUSY_TIMEOUT_S`. A stand-in embedder keeps these tests fast and the contention high.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from semantic_reuse.tools.bench.gptcache_baseline import SQLITE_BUSY_TIMEOUT_S, GPTCacheBaseline

pytest.importorskip("gptcache")
OperationalError = pytest.importorskip("sqlalchemy.exc").OperationalError


class _HashEmbedder:
    """One fixed unit vector per text before its first "?": "q 1?" and "q 1? again" match."""

    name = "hash"
    dim = 32

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            key = text.split("?")[0].encode()
            seed = int(hashlib.sha256(key).hexdigest()[:8], 16)
            row = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
            rows.append(row / np.linalg.norm(row))
        return np.stack(rows)


@contextmanager
def _write_lock_held(db: Path, seconds: float) -> Iterator[None]:
    """Another connection holds sqlite's write lock for `seconds` (then commits)."""
    ready = threading.Event()

    def hold() -> None:
        con = sqlite3.connect(db, timeout=5)
        con.execute("BEGIN IMMEDIATE")
        ready.set()
        time.sleep(seconds)
        con.commit()
        con.close()

    holder = threading.Thread(target=hold)
    holder.start()
    ready.wait(5)
    try:
        yield
    finally:
        holder.join()


def _filled(n: int = 64, **kwargs: float) -> GPTCacheBaseline:
    embedder = _HashEmbedder()
    base = GPTCacheBaseline(embedder, **kwargs)  # type: ignore[arg-type]
    questions = [f"q {i}?" for i in range(n)]
    base.import_vectors(questions, [f"a {i}" for i in range(n)], embedder.encode(questions))
    return base


def test_a_lookup_waits_for_a_writer_instead_of_failing() -> None:
    # The failure, made deterministic: a writer holds the lock longer than the timeout.
    with (
        _filled(sqlite_timeout_s=0.1) as base,
        _write_lock_held(base.folder / "sqlite.db", 0.8),
        pytest.raises(OperationalError, match="database is locked"),
    ):
        base.get("q 1? again")
    # The baseline's timeout: the same lookup waits for the writer and is served.
    assert SQLITE_BUSY_TIMEOUT_S >= 30
    with _filled() as base, _write_lock_held(base.folder / "sqlite.db", 0.8):
        assert base.get("q 1? again") == "a 1"


def test_lookups_from_64_threads_all_answer() -> None:
    with _filled(256) as base, ThreadPoolExecutor(max_workers=64) as pool:
        asks = [f"q {i}? again" for i in range(256)]
        answers = list(pool.map(base.get, asks))
    assert answers == [f"a {i}" for i in range(256)]
