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

Importing this module is cheap, and it never imports an implementation: the implementations
import it, and `semantic_reuse.defaults.build_store` picks one from the config.
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Protocol, Self, TypeVar, runtime_checkable

import numpy as np
import numpy.typing as npt

from semantic_reuse.errors import InvalidRequestError, InvalidTypeError

__all__ = [
    "ScopeFilter",
    "VectorMatch",
    "VectorPoint",
    "VectorStore",
]

FloatVector = npt.NDArray[np.float32]
_T = TypeVar("_T")

#: Payload layout version, stored in every point.
PAYLOAD_VERSION: Final = 1
#: Payload keys.
F_ID: Final = "id"
F_NAMESPACE: Final = "namespace"
F_MODEL: Final = "model"
F_FINGERPRINT: Final = "fingerprint"
F_PROMPT: Final = "prompt"
F_ANSWER: Final = "answer"
F_CREATED_AT: Final = "created_at"
F_EXPIRES_AT: Final = "expires_at"
F_VERSION: Final = "v"
#: Lifecycle payload keys: the answer's tags (a keyword index: invalidate by tag deletes by
#: filter) and epoch (purged by filter after an epoch bump).
F_TAGS: Final = "tags"
F_EPOCH: Final = "epoch"
#: Payload fields with a keyword index (the scope) and with a float index (the clock).
KEYWORD_FIELDS: Final = (F_NAMESPACE, F_MODEL, F_FINGERPRINT)
FLOAT_FIELDS: Final = (F_CREATED_AT, F_EXPIRES_AT)

#: Float32 rounding allowance on scores and thresholds.
SCORE_TOLERANCE: Final = 1e-6

_HEX128 = re.compile(r"[0-9a-f]{32}")
#: uuid5 namespace for ids that are not 32 lower-case hex digits.
_ID_NAMESPACE: Final = uuid.UUID("5d0a6f3e-8a43-5d8e-9d55-3c0f1d8e7a21")


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


# --- checks and conversions shared by the implementations -------------------------------------


def finite_float(value: object, name: str) -> float:
    """``value`` as a finite float, or ValueError/TypeError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidTypeError(f"{name} must be a number, got {type(value).__name__}")
    out = float(value)
    if not math.isfinite(out):
        raise InvalidRequestError(f"{name} must be finite, got {out!r}")
    return out


def unit_vector(value: npt.ArrayLike, dim: int | None, *, name: str = "vector") -> FloatVector:
    """A read-only, L2-normalised float32 copy of a 1-D vector; ValueError naming ``name``."""
    try:
        array = np.array(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(f"{name} must be a 1-D sequence of numbers: {exc}") from exc
    if array.ndim != 1:
        raise InvalidRequestError(f"{name} must be 1-D, got shape {array.shape}")
    if dim is not None and array.shape[0] != dim:
        raise InvalidRequestError(
            f"{name} has {array.shape[0]} dimensions, the store expects dim={dim}"
        )
    if array.shape[0] == 0:
        raise InvalidRequestError(f"{name} is empty")
    if not bool(np.isfinite(array).all()):
        raise InvalidRequestError(f"{name} has non-finite values (NaN or infinity)")
    norm = float(np.linalg.norm(array))
    if norm == 0.0 or not math.isfinite(norm):
        raise InvalidRequestError(f"{name} has zero length: cosine similarity is undefined")
    if abs(norm - 1.0) > 1e-6:
        array /= np.float32(norm)
    array.setflags(write=False)
    return array


def check_type(value: object, kind: type[_T], name: str) -> _T:
    """``value`` when it is a ``kind``, else TypeError naming ``name``."""
    if not isinstance(value, kind):
        raise InvalidTypeError(f"{name} must be a {kind.__name__}, got {type(value).__name__}")
    return value


def check_dim(value: object) -> int:
    """A valid vector dimension, or ValueError naming ``dim``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 1:
        raise InvalidRequestError(f"dim must be a positive int, got {value!r}")
    return int(value)


def check_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or int(limit) < 1:
        raise InvalidRequestError(f"limit must be a positive int, got {limit!r}")
    return int(limit)


def check_threshold(score_threshold: float | None) -> float | None:
    """None, or a cosine threshold in [-1, 1] (the engine's own thresholds sit in [0, 1])."""
    if score_threshold is None:
        return None
    value = finite_float(score_threshold, "score_threshold")
    if not -1.0 <= value <= 1.0:
        raise InvalidRequestError(f"score_threshold must be in [-1, 1] (cosine), got {value!r}")
    return value


def engine_threshold(score_threshold: float | None) -> float | None:
    """The threshold to hand the engine: None when it keeps everything, else with the tolerance."""
    if score_threshold is None or score_threshold <= -1.0:
        return None
    return score_threshold - SCORE_TOLERANCE


def resolve_now(now: float | None) -> float:
    return time.time() if now is None else finite_float(now, "now")


def check_points(points: Sequence[VectorPoint], dim: int) -> None:
    if isinstance(points, VectorPoint):
        raise InvalidTypeError("points must be a sequence of VectorPoint, got a single VectorPoint")
    for point in points:
        if not isinstance(point, VectorPoint):
            raise InvalidTypeError(f"points must hold VectorPoint, got {type(point).__name__}")
        if point.vector.shape[0] != dim:
            raise InvalidRequestError(
                f"vector of point {point.id!r} has {point.vector.shape[0]} dimensions, "
                f"the store expects dim={dim}"
            )


def check_ids(ids: Sequence[str]) -> list[str]:
    if isinstance(ids, str):
        raise InvalidTypeError("ids must be a sequence of str, got a single str")
    out = list(ids)
    for item in out:
        if not isinstance(item, str):
            raise InvalidTypeError(f"ids must hold str, got {type(item).__name__}")
    return out


def point_uuid(id: str) -> uuid.UUID:
    """The Qdrant point id of one of our ids (deterministic, one-to-one in practice).

    A 128-bit hash id (32 lower-case hex digits) is the UUID itself; any other string goes through
    uuid5. The original id is kept in the payload.
    """
    if _HEX128.fullmatch(id):
        return uuid.UUID(hex=id)
    return uuid.uuid5(_ID_NAMESPACE, id)


def encode_payload(point: VectorPoint) -> dict[str, Any]:
    """The point's payload: the durable record, answer normalised through JSON."""
    try:
        answer = json.loads(json.dumps(dict(point.answer), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(f"answer of point {point.id!r} is not JSON-able: {exc}") from exc
    return {
        F_ID: point.id,
        F_NAMESPACE: point.namespace,
        F_MODEL: point.model,
        F_FINGERPRINT: point.fingerprint,
        F_PROMPT: point.prompt,
        F_ANSWER: answer,
        F_CREATED_AT: point.created_at,
        F_EXPIRES_AT: point.expires_at,
        F_VERSION: PAYLOAD_VERSION,
        F_TAGS: list(point.tags),
        F_EPOCH: point.epoch,
    }


def decode_match(payload: Mapping[str, Any] | None, score: float) -> VectorMatch | None:
    """A match from a stored payload, or None when the payload is not one of ours."""
    if not payload or not isinstance(payload.get(F_ID), str):
        return None
    expires_at = payload.get(F_EXPIRES_AT)
    answer = payload.get(F_ANSWER)
    value = float(score)
    return VectorMatch(
        id=payload[F_ID],
        score=1.0 if value >= 1.0 - SCORE_TOLERANCE else max(-1.0, value),
        prompt=str(payload.get(F_PROMPT, "")),
        answer=answer if isinstance(answer, dict) else {},
        namespace=str(payload.get(F_NAMESPACE, "")),
        model=str(payload.get(F_MODEL, "")),
        fingerprint=str(payload.get(F_FINGERPRINT, "")),
        created_at=float(payload.get(F_CREATED_AT, 0.0)),
        expires_at=None if expires_at is None else float(expires_at),
    )


def decode_matches(points: Iterable[Any]) -> list[VectorMatch]:
    """The matches of an engine's scored points (``payload``, ``score``), foreign ones dropped."""
    matches = [decode_match(p.payload, p.score) for p in points]
    return [m for m in matches if m is not None]


def live_match(records: Iterable[Any], id: str, now: float) -> VectorMatch | None:
    """The live match with this id among an engine's retrieved records (``payload``), or None."""
    for record in records:
        match = decode_match(record.payload, 1.0)
        if match is not None and match.id == id and not is_expired(match, now):
            return match
    return None


def check_offset(offset: object) -> str | None:
    if offset is not None and not isinstance(offset, str):
        raise InvalidTypeError(f"offset must be a str or None, got {type(offset).__name__}")
    return offset


def is_expired(match: VectorMatch, now: float) -> bool:
    return match.expires_at is not None and match.expires_at < now
