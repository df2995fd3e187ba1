"""GPTCache 0.1.44 as the baseline: sqlite + faiss, `SearchDistanceEvaluation`, our embedder.

Each :class:`GPTCacheBaseline` is a private ``gptcache.Cache()`` (never the module's global
``cache``) over a fresh temporary folder, with:

- ``CacheBase("sqlite")`` and ``VectorBase("faiss", dimension=dim)`` in that folder (GPTCache's
  defaults would write ``sqlite.db`` and ``faiss.index`` into the working directory), the
  sqlite URL with a busy timeout (below);
- ``get_data_manager(..., max_size=...)`` above the data size (its default, 1,000, would evict);
- ``SearchDistanceEvaluation()`` and ``Config(similarity_threshold=0.8)``, GPTCache's defaults;
- as its embedding function, the *same* embedder object the engine uses, so both systems see
  the same vectors.

GPTCache normalises vectors and faiss returns squared L2 distances ``d = 2 - 2 cos``; the
evaluation's rank is ``4 - d`` and a hit needs ``rank >= 4 t``: threshold ``t`` serves a
cached answer when ``cos >= 2 t - 1`` (0.8 -> cosine 0.6). :class:`RecordingEvaluation` keeps
every rank GPTCache computed, so one pass at the default threshold also gives GPTCache's
answer at every other threshold (:func:`gptcache_served`): only the nearest entry is fetched
(faiss ``top_k`` 1, GPTCache's default), and whether it is served depends on the threshold
alone.

Threads: GPTCache's ``get`` writes to sqlite too (the hit entry's ``last_access``, one row of
its hit report), and its SQLAlchemy engine gives each thread a connection of its own, so lookups
from a thread pool contend for sqlite's write lock. With sqlite3's default busy timeout (5 s) a
loaded machine makes some of them fail with ``database is locked``. The cache is configured as a
GPTCache user serving threads would: the same ``CacheBase("sqlite", sql_url=...)`` with
``?timeout=`` (:data:`SQLITE_BUSY_TIMEOUT_S`) on the URL, which sqlite3 and SQLAlchemy document
for this. Lookups stay concurrent (no lock of ours around them, which would flatten GPTCache's
throughput), and the timeout changes nothing unless a writer waits.

GPTCache installs missing stores with pip at run time (``gptcache.utils.import_faiss`` and
friends); :func:`require_gptcache` refuses to start unless gptcache, faiss and sqlalchemy are
importable, so nothing is ever installed behind the user's back.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from semantic_reuse.errors import ComponentUnavailableError
from semantic_reuse.semantic.embedder import Embedder

#: GPTCache's own default threshold.
GPTCACHE_DEFAULT_THRESHOLD = 0.8
#: `SearchDistanceEvaluation`'s range: ranks lie in [0, 4] (squared L2 of unit vectors).
MAX_DISTANCE = 4.0
#: sqlite3's busy timeout for GPTCache's database (its default, 5 s, fails lookups from a thread
#: pool on a loaded machine: they wait for one another's writes).
SQLITE_BUSY_TIMEOUT_S = 60.0

_REQUIRED = {"gptcache": "gptcache==0.1.44", "faiss": "faiss-cpu", "sqlalchemy": "sqlalchemy"}


class BaselineUnavailableError(ComponentUnavailableError):
    """GPTCache or a store it needs is not installed (it would pip-install it at run time)."""


def require_gptcache() -> None:
    """Raise unless gptcache, faiss and sqlalchemy import without GPTCache installing them."""
    missing = [req for module, req in _REQUIRED.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise BaselineUnavailableError(
            "the GPTCache baseline needs " + ", ".join(missing) + ": pip install "
            "'semantic-reuse[bench]' (GPTCache would otherwise pip-install them at run time)"
        )


def _module(name: str) -> Any:
    """A GPTCache module (it ships no type information: typed as Any here)."""
    return importlib.import_module(name)


def sqlite_url(path: Path, timeout_s: float = SQLITE_BUSY_TIMEOUT_S) -> str:
    """GPTCache's sqlite URL with a busy timeout (SQLAlchemy passes it to ``sqlite3.connect``)."""
    return f"sqlite:///{path}?timeout={timeout_s:g}"


def cosine_of_threshold(threshold: float) -> float:
    """The cosine a GPTCache threshold stands for (unit vectors, distance evaluation)."""
    return 2.0 * threshold - 1.0


def served_at(rank: float, threshold: float) -> bool:
    """GPTCache's rule: a candidate is served when its rank reaches ``4 * threshold``."""
    rank_threshold = min(max(MAX_DISTANCE * threshold, 0.0), MAX_DISTANCE)
    return rank_threshold <= rank


@dataclass(frozen=True, slots=True)
class Lookup:
    """What GPTCache answered for one question, and the rank of its nearest entry."""

    answer: str | None
    best_answer: str | None
    best_rank: float | None


@dataclass(slots=True)
class _Ranks:
    """The (answer, rank) pairs GPTCache evaluated, per thread (lookups may run in a pool)."""

    local: threading.local = field(default_factory=threading.local)

    def reset(self) -> None:
        self.local.seen = []

    def add(self, answer: str, rank: float) -> None:
        if not hasattr(self.local, "seen"):
            self.local.seen = []
        self.local.seen.append((answer, rank))

    def best(self) -> tuple[str | None, float | None]:
        seen: list[tuple[str, float]] = getattr(self.local, "seen", [])
        if not seen:
            return None, None
        answer, rank = max(seen, key=lambda item: item[1])
        return answer, rank


def _recording_evaluation(ranks: _Ranks) -> Any:
    """A `SearchDistanceEvaluation` that also records each rank it computes."""
    base: type[Any] = _module("gptcache.similarity_evaluation.distance").SearchDistanceEvaluation

    class RecordingEvaluation(base):  # type: ignore[misc]
        def evaluation(
            self, src_dict: dict[str, Any], cache_dict: dict[str, Any], **kw: Any
        ) -> float:
            rank = float(super().evaluation(src_dict, cache_dict, **kw))
            ranks.add(str(cache_dict.get("answer")), rank)
            return rank

    return RecordingEvaluation()


class _ClosedDataManager:
    """Stands in for a closed data manager, so GPTCache's atexit hook has nothing to flush."""

    def close(self) -> None:
        return None


class GPTCacheBaseline:
    """One private GPTCache (sqlite + faiss) in a temporary folder; `close()` removes it."""

    def __init__(
        self,
        embedder: Embedder,
        *,
        threshold: float = GPTCACHE_DEFAULT_THRESHOLD,
        max_size: int = 1_000_000,
        embed: Callable[[str], Any] | None = None,
        sqlite_timeout_s: float = SQLITE_BUSY_TIMEOUT_S,
    ) -> None:
        require_gptcache()
        gptcache, manager = _module("gptcache"), _module("gptcache.manager")
        self._api = _module("gptcache.adapter.api")

        self.threshold = threshold
        self.dim = embedder.dim
        self._folder = Path(tempfile.mkdtemp(prefix="sr-gptcache-"))
        self._ranks = _Ranks()
        encode = embed or (lambda text: embedder.encode([text])[0])

        def embedding_func(data: str, **_: Any) -> Any:
            return np.asarray(encode(data), dtype=np.float32)

        scalar = manager.CacheBase(
            "sqlite", sql_url=sqlite_url(self._folder / "sqlite.db", sqlite_timeout_s)
        )
        vector = manager.VectorBase(
            "faiss", dimension=self.dim, index_path=str(self._folder / "faiss.index")
        )
        self._data = manager.get_data_manager(scalar, vector, max_size=max_size)
        self._cache = gptcache.Cache()
        self._cache.init(
            pre_embedding_func=_module("gptcache.processor.pre").get_prompt,
            embedding_func=embedding_func,
            data_manager=self._data,
            similarity_evaluation=_recording_evaluation(self._ranks),
            config=gptcache.Config(similarity_threshold=threshold),
        )

    @property
    def folder(self) -> Path:
        return self._folder

    def put(self, question: str, answer: str) -> None:
        self._api.put(question, answer, cache_obj=self._cache)

    def import_vectors(
        self, questions: Sequence[str], answers: Sequence[str], vectors: Any
    ) -> None:
        """Bulk insert with precomputed vectors (GPTCache's `import_data`, minus embedding)."""
        rows = np.asarray(vectors, dtype=np.float32)
        self._data.import_data(
            questions=list(questions),
            answers=list(answers),
            embedding_datas=list(rows),
            session_ids=[None] * len(questions),
        )

    def get(self, question: str) -> str | None:
        answer = self._api.get(question, cache_obj=self._cache)
        return None if answer is None else str(answer)

    def lookup(self, question: str) -> Lookup:
        """`get`, plus the nearest entry's answer and rank whatever the threshold."""
        self._ranks.reset()
        answer = self.get(question)
        best_answer, best_rank = self._ranks.best()
        return Lookup(answer, best_answer, best_rank)

    def disk_bytes(self) -> int:
        self._data.flush()
        return sum(p.stat().st_size for p in self._folder.rglob("*") if p.is_file())

    def close(self) -> None:
        """Close the stores and delete the folder; GPTCache's atexit hook then does nothing."""
        with contextlib.suppress(Exception):
            self._data.close()
        # GPTCache's atexit hook keeps this Cache alive until exit: leave it holding nothing.
        self._cache.data_manager = _ClosedDataManager()
        self._cache.embedding_func = None
        self._cache.similarity_evaluation = None
        shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> GPTCacheBaseline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def gptcache_served(lookups: Sequence[Lookup], threshold: float) -> list[str | None]:
    """The answers GPTCache would serve at `threshold`, from one recorded pass."""
    return [
        lk.best_answer if lk.best_rank is not None and served_at(lk.best_rank, threshold) else None
        for lk in lookups
    ]
