"""How a cached answer is laid out in a Qdrant point, and read back: ids, payload keys, codec.

A point's id is derived from ours (:func:`point_uuid`); its payload holds the durable record
under the ``F_*`` keys, with the layout version ``PAYLOAD_VERSION``. The scope fields carry a
keyword index and the clock fields a float index (``KEYWORD_FIELDS``, ``FLOAT_FIELDS``), so that
every filter (:mod:`~semantic_reuse.semantic.store_query`) runs on indexed fields. A payload that
is not one of ours (no string id) is skipped when read, never served.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from semantic_reuse.errors import InvalidRequestError, InvalidTypeError
from semantic_reuse.semantic.store import VectorMatch, VectorPoint
from semantic_reuse.semantic.store_checks import SCORE_TOLERANCE

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

_HEX128 = re.compile(r"[0-9a-f]{32}")
#: uuid5 namespace for ids that are not 32 lower-case hex digits.
_ID_NAMESPACE: Final = uuid.UUID("5d0a6f3e-8a43-5d8e-9d55-3c0f1d8e7a21")


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


def is_expired(match: VectorMatch, now: float) -> bool:
    return match.expires_at is not None and match.expires_at < now
