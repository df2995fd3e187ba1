"""What a store's query asks for, written once for both implementations.

- :func:`search_args`: the checked arguments of a search (unit query vectors, limit, the
  threshold as the engine takes it, the clock).
- The payload filters: which points a search, a count, a scroll or a delete may touch, in
  engine-neutral terms (:class:`PayloadFilter`: conditions that must all hold and conditions
  none of which may hold; each one matches a keyword field or bounds a number field). Each
  implementation translates one into its engine's own filter (``qdrant_client.models.Filter``,
  ``qdrant_edge.Filter``), so that the scope and expiry rules cannot drift apart between them.

Scope (namespace, model, fingerprint) and expiry are always filtered inside the engine: a point
is expired when ``expires_at < now``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy.typing as npt

from semantic_reuse.semantic.store import ScopeFilter
from semantic_reuse.semantic.store_checks import (
    FloatVector,
    check_limit,
    check_threshold,
    check_type,
    engine_threshold,
    resolve_now,
    unit_vector,
)
from semantic_reuse.semantic.store_payload import (
    F_CREATED_AT,
    F_EPOCH,
    F_EXPIRES_AT,
    F_NAMESPACE,
    F_TAGS,
    KEYWORD_FIELDS,
)

__all__ = [
    "Bound",
    "Match",
    "PayloadFilter",
    "SearchArgs",
    "delete_where_filter",
    "namespace_filter",
    "older_than_filter",
    "scope_filter",
    "search_args",
]


@dataclass(frozen=True, slots=True)
class SearchArgs:
    """A search's arguments, checked: ``threshold`` is the one to hand the engine."""

    queries: list[FloatVector]
    scope: ScopeFilter
    limit: int
    threshold: float | None
    now: float


def search_args(
    vectors: Sequence[npt.ArrayLike],
    scope: ScopeFilter,
    dim: int,
    limit: int,
    score_threshold: float | None,
    now: float | None,
) -> SearchArgs:
    """The checked arguments of a search of ``vectors`` (ValueError/TypeError naming one)."""
    check_type(scope, ScopeFilter, "scope")
    return SearchArgs(
        queries=[unit_vector(v, dim, name="vector") for v in vectors],
        scope=scope,
        limit=check_limit(limit),
        threshold=engine_threshold(check_threshold(score_threshold)),
        now=resolve_now(now),
    )


@dataclass(frozen=True, slots=True)
class Match:
    """The keyword field ``key`` holds ``value`` (or, for a list, holds it among others)."""

    key: str
    value: str


@dataclass(frozen=True, slots=True)
class Bound:
    """The number field ``key`` is below ``lt`` and / or at least ``gte`` (None: no bound)."""

    key: str
    lt: float | None = None
    gte: float | None = None


Condition = Match | Bound


@dataclass(frozen=True, slots=True)
class PayloadFilter:
    """Every condition of ``must`` holds and none of ``must_not`` does."""

    must: tuple[Condition, ...]
    must_not: tuple[Condition, ...] = ()


def scope_filter(scope: ScopeFilter, now: float) -> PayloadFilter:
    """The live points of ``scope``: same namespace, model and fingerprint, not expired."""
    check_type(scope, ScopeFilter, "scope")
    values = (scope.namespace, scope.model, scope.fingerprint)
    return PayloadFilter(
        must=tuple(Match(key, value) for key, value in zip(KEYWORD_FIELDS, values, strict=True)),
        must_not=(Bound(F_EXPIRES_AT, lt=now),),
    )


def namespace_filter(namespace: str) -> PayloadFilter:
    """Every point of ``namespace``, expired ones included."""
    return PayloadFilter(must=(Match(F_NAMESPACE, namespace),))


def older_than_filter(timestamp: float) -> PayloadFilter:
    """Every point created before ``timestamp``, in every namespace."""
    return PayloadFilter(must=(Bound(F_CREATED_AT, lt=timestamp),))


def delete_where_filter(
    namespace: str, tag: str | None, created_before: float | None, epoch_below: int | None
) -> PayloadFilter:
    """The points of ``namespace`` that match every condition given (see
    ``VectorStore.delete_where``)."""
    must: list[Condition] = [Match(F_NAMESPACE, namespace)]
    if tag is not None:
        must.append(Match(F_TAGS, tag))
    if created_before is not None:
        must.append(Bound(F_CREATED_AT, lt=created_before))
    must_not: list[Condition] = []
    if epoch_below is not None:  # points written before epochs existed count as epoch 0
        must_not.append(Bound(F_EPOCH, gte=epoch_below))
    return PayloadFilter(must=tuple(must), must_not=tuple(must_not))
