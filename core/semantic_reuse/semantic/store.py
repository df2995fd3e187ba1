"""The vector store: one protocol, its data types, and the checks both implementations share.

A cached answer lives in a Qdrant point: the vector of its prompt, and a payload that holds the
durable record (prompt, answer, scope, timestamps). Two implementations pass one contract suite:

- :class:`~semantic_reuse.semantic.edge_store.EdgeStore`: Qdrant Edge, the engine in-process,
  in a folder (the embedded default); open it with
  :func:`~semantic_reuse.semantic.edge_store.open_edge_store` to share one per folder.
- :class:`~semantic_reuse.semantic.server_store.QdrantServerStore`: a Qdrant server or cluster
  through ``qdrant-client`` (whose local mode, ``":memory:"`` or ``path=``, serves tests).

Scores are cosine similarities: 1.0 is the same direction, 0 unrelated, -1 opposite. Thresholds
are accepted in [-1, 1] (cosine can be negative); the reuse engine's own thresholds live in [0, 1].
Scores are float32 sums, so thresholds apply with a tolerance of ``SCORE_TOLERANCE`` (1e-6): a
threshold of 1.0 keeps identical vectors, -1 keeps everything, and a score within the tolerance of
1.0 is reported as 1.0.

Scope (namespace, model, fingerprint) and expiry are filtered inside Qdrant, in the query's payload
filter, never after the fact. A point is expired when ``expires_at < now``.

What both implementations share beside this module: the argument checks
(:mod:`~semantic_reuse.semantic.store_checks`), the point's payload layout and its codec
(:mod:`~semantic_reuse.semantic.store_payload`), the checked search arguments and the payload
filters of every query (:mod:`~semantic_reuse.semantic.store_query`).

Importing this module is cheap, and it never imports an implementation: the implementations
import it, and `semantic_reuse.defaults.build_store` picks one from the config.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

import numpy.typing as npt

from semantic_reuse.errors import InvalidRequestError, InvalidTypeError
from semantic_reuse.semantic.store_checks import FloatVector, check_type, finite_float, unit_vector

__all__ = [
    "ScopeFilter",
    "VectorMatch",
    "VectorPoint",
    "VectorStore",
]


@dataclass(frozen=True, slots=True)
class ScopeFilter:
    """Where a cached answer may be served: the same namespace (tenant), model and fingerprint."""

    namespace: str
    model: str
    fingerprint: str

    def __post_init__(self) -> None:
        for name in ("namespace", "model", "fingerprint"):
            check_type(getattr(self, name), str, name)


@dataclass(frozen=True, slots=True)
class VectorPoint:
    """One cached answer as stored: its prompt's vector and the durable record.

    ``vector`` is converted to a read-only float32 array and L2-normalised; it does not take part
    in equality. ``answer`` must be JSON-able (it is stored as JSON in the point's payload).
    """

    id: str
    vector: FloatVector = field(repr=False, compare=False)
    namespace: str
    model: str
    fingerprint: str
    prompt: str
    answer: Mapping[str, Any]
    created_at: float
    expires_at: float | None = None
    tags: tuple[str, ...] = ()
    epoch: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise InvalidRequestError(f"id must be a non-empty str, got {self.id!r}")
        for name in ("namespace", "model", "fingerprint", "prompt"):
            check_type(getattr(self, name), str, name)
        if not isinstance(self.answer, Mapping):
            raise InvalidTypeError(f"answer must be a mapping, got {type(self.answer).__name__}")
        object.__setattr__(self, "vector", unit_vector(self.vector, None, name="vector"))
        object.__setattr__(self, "created_at", finite_float(self.created_at, "created_at"))
        if self.expires_at is not None:
            object.__setattr__(self, "expires_at", finite_float(self.expires_at, "expires_at"))


@dataclass(frozen=True, slots=True)
class VectorMatch:
    """A stored answer found by a search (``score``: cosine, 1.0 = same) or by id (score 1.0)."""

    id: str
    score: float
    prompt: str
    answer: Mapping[str, Any]
    namespace: str
    model: str
    fingerprint: str
    created_at: float
    expires_at: float | None


@runtime_checkable
class VectorStore(Protocol):
    """What the reuse engine needs from a vector store. Every method is a coroutine.

    Implementations filter on scope and expiry inside the engine; results are sorted best first.
    ``now`` defaults to ``time.time()``; a point is expired when ``expires_at < now``.
    """

    dim: int

    async def upsert(self, points: Sequence[VectorPoint]) -> None:
        """Insert or replace points (by id)."""
        ...

    async def search(
        self,
        vector: npt.ArrayLike,
        scope: ScopeFilter,
        *,
        limit: int = 10,
        score_threshold: float | None = None,
        now: float | None = None,
    ) -> list[VectorMatch]:
        """The ``limit`` nearest live points of ``scope`` with a score >= ``score_threshold``."""
        ...

    async def search_batch(
        self,
        vectors: Sequence[npt.ArrayLike],
        scope: ScopeFilter,
        *,
        limit: int = 10,
        score_threshold: float | None = None,
        now: float | None = None,
    ) -> list[list[VectorMatch]]:
        """:meth:`search` for several vectors in one round trip; one list per vector, in order."""
        ...

    async def get(self, id: str, *, now: float | None = None) -> VectorMatch | None:
        """The point with this id (score 1.0), or None when absent or expired."""
        ...

    async def delete(self, ids: Sequence[str]) -> None:
        """Delete points by id; unknown ids are ignored."""
        ...

    async def delete_namespace(self, namespace: str) -> int | None:
        """Delete every point of a namespace; return how many there were (None if unknown)."""
        ...

    async def delete_older_than(self, timestamp: float) -> None:
        """Delete every point created before ``timestamp`` (``created_at < timestamp``)."""
        ...

    async def count(self, namespace: str | None = None) -> int:
        """Exact number of points (expired ones included), in one namespace or in all."""
        ...

    async def scroll(
        self, namespace: str, *, offset: str | None = None, limit: int = 256
    ) -> tuple[list[VectorMatch], str | None]:
        """A page of the namespace's points (expired ones included, score 1.0) and the
        offset of the next page (None after the last)."""
        ...

    async def delete_where(
        self,
        namespace: str,
        *,
        tag: str | None = None,
        created_before: float | None = None,
        epoch_below: int | None = None,
    ) -> None:
        """Delete the namespace's points that match every condition given: carry `tag`,
        were created before `created_before`, belong to an epoch below `epoch_below`."""
        ...

    async def set_expiry(self, ids: Sequence[str], expires_at: float) -> None:
        """Move the expiry of these points (a sliding answer used again); unknown ids are
        ignored."""
        ...

    async def flush(self) -> None:
        """Make every acknowledged write durable."""
        ...

    async def aclose(self) -> None:
        """Flush and release the store; later calls raise RuntimeError."""
        ...


class AsyncCloseable:
    """Base of the implementations: ``async with store`` calls ``aclose()`` on the way out."""

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
