"""The argument checks and conversions both vector store implementations share.

Each raises ValueError (``InvalidRequestError``) or TypeError (``InvalidTypeError``) naming the
argument, at the store's edge, before anything reaches an engine. Scores are float32 sums, so a
threshold is handed to an engine with a tolerance of ``SCORE_TOLERANCE`` (:func:`engine_threshold`).

This module imports nothing of the store: :mod:`~semantic_reuse.semantic.store` checks its data
types with it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Final, TypeVar

import numpy as np
import numpy.typing as npt

from semantic_reuse.errors import InvalidRequestError, InvalidTypeError

FloatVector = npt.NDArray[np.float32]
_T = TypeVar("_T")

#: Float32 rounding allowance on scores and thresholds.
SCORE_TOLERANCE: Final = 1e-6


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


def check_ids(ids: Sequence[str]) -> list[str]:
    if isinstance(ids, str):
        raise InvalidTypeError("ids must be a sequence of str, got a single str")
    out = list(ids)
    for item in out:
        if not isinstance(item, str):
            raise InvalidTypeError(f"ids must hold str, got {type(item).__name__}")
    return out


def check_optional_namespace(namespace: object) -> str | None:
    """A namespace to narrow a count to, or None for all; TypeError naming ``namespace``."""
    if namespace is not None and not isinstance(namespace, str):
        raise InvalidTypeError(f"namespace must be a str or None, got {type(namespace).__name__}")
    return namespace


def check_offset(offset: object) -> str | None:
    if offset is not None and not isinstance(offset, str):
        raise InvalidTypeError(f"offset must be a str or None, got {type(offset).__name__}")
    return offset
