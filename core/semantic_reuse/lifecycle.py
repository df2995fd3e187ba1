"""Answer lifecycle: what a stored answer carries, and what a namespace has retired.

An answer carries its lifecycle (`CachedAnswer.tags`, `epoch`, `created_at`, `expires_at`,
`ttl_s`, `sliding`). A namespace has one lifecycle record, `NamespaceState`: its current
epoch, a time before which every answer is retired (`not_before`), and the tags and hash ids
retired at a given time. Every read, in every tier, asks `NamespaceState.admits`; nothing is
scanned when something is retired: the record changes, and every answer it rules out stops
being served at once (in other processes within `lifecycle.state_refresh_s`).

`StorePolicy` is what one request stamps on the answers it stores (its ttl, tags, and the
epoch and time it began at: an answer whose generation began before an invalidation is
retired by it even if it is stored after).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from semantic_reuse.answer import CachedAnswer

#: Keys of `NamespaceState.retired`: a retired tag, a retired hash id.
TAG_KEY: Final = "tag:"
ID_KEY: Final = "id:"
#: A sliding answer is renewed (written again in every tier) once this share of its window
#: has passed since it was last renewed: it lives between 0.9 and 1.0 x ttl_s after its last use.
RENEW_FRACTION: Final = 0.1


@dataclass(frozen=True, slots=True)
class NamespaceState:
    """One namespace's lifecycle record.

    `retired` maps ``"tag:<tag>"`` and ``"id:<hash id>"`` to the wall-clock time they were
    retired at: an answer created (its request begun) before that time is not served.
    """

    epoch: int = 0
    not_before: float = 0.0
    retired: Mapping[str, float] = field(default_factory=dict)

    def admits(self, answer: CachedAnswer, key: str | None, now: float) -> bool:
        """Whether `answer` (read under hash id `key`) may be served at `now`."""
        return self.refusal(answer, key, now) is None

    def refusal(self, answer: CachedAnswer, key: str | None, now: float) -> str | None:
        """Why `answer` may not be served ("expired", "epoch", "age", "tag", "id"), or None."""
        if answer.expired(now):
            return "expired"
        if answer.epoch != self.epoch:
            return "epoch"
        if answer.created_at < self.not_before:
            return "age"
        if self.retired:
            for tag in answer.tags:
                when = self.retired.get(TAG_KEY + tag)
                if when is not None and answer.created_at < when:
                    return "tag"
            if key is not None:
                when = self.retired.get(ID_KEY + key)
                if when is not None and answer.created_at < when:
                    return "id"
        return None


@dataclass(frozen=True, slots=True)
class StorePolicy:
    """What the answers one request stores carry (`stamp`)."""

    epoch: int = 0
    ttl_s: float | None = None
    sliding: bool = False
    tags: tuple[str, ...] = ()
    started_at: float | None = None
    """Wall-clock time the request began: a generated answer is as old as its request."""

    def stamp(self, answer: CachedAnswer, now: float) -> CachedAnswer:
        """`answer` with this policy's lifecycle: tags added, the epoch set, the creation
        time no later than the request's start, the expiry no later than `ttl_s` from `now`
        (an answer served from another keeps that one's tags, age and expiry)."""
        tags = tuple(sorted({*answer.tags, *self.tags}))
        created = answer.created_at
        if self.started_at is not None:
            created = min(created, self.started_at)
        expires, ttl, sliding = answer.expires_at, answer.ttl_s, answer.sliding
        if self.ttl_s is not None:
            mine = now + self.ttl_s
            expires = mine if expires is None else min(expires, mine)
            ttl, sliding = self.ttl_s, self.sliding
        if (tags, self.epoch, created, expires, ttl, sliding) == (
            answer.tags, answer.epoch, answer.created_at, answer.expires_at, answer.ttl_s,
            answer.sliding,
        ):  # fmt: skip
            return answer
        return dataclasses.replace(
            answer, tags=tags, epoch=self.epoch, created_at=created, expires_at=expires,
            ttl_s=ttl, sliding=sliding,
        )  # fmt: skip


def renewal(answer: CachedAnswer, now: float) -> CachedAnswer | None:
    """A sliding answer with its expiry moved to `ttl_s` after `now`, when it is due
    (`RENEW_FRACTION` of its window has passed); else None."""
    if not answer.sliding or answer.ttl_s is None:
        return None
    if answer.expires_at is not None and answer.expires_at - now > (
        (1.0 - RENEW_FRACTION) * answer.ttl_s
    ):
        return None
    return dataclasses.replace(answer, expires_at=now + answer.ttl_s)


def joined(answer: CachedAnswer, parts: Sequence[CachedAnswer]) -> CachedAnswer:
    """`answer`, joined from `parts` (a composed answer), with their lifecycle: every tag,
    the oldest creation, the earliest expiry; it does not slide."""
    if not parts:
        return answer
    expiries = [a.expires_at for a in parts if a.expires_at is not None]
    return dataclasses.replace(
        answer,
        tags=tuple(sorted({t for a in parts for t in a.tags})),
        epoch=min(a.epoch for a in parts),
        created_at=min(a.created_at for a in parts),
        expires_at=min(expiries) if expiries else None,
    )
