"""Operating an engine's answers: invalidate (by namespace, hash id, age, tag, epoch), export
and load. `ReuseEngine` exposes each as a method.

An invalidation is recorded first in the namespace's lifecycle record
(`exact.lifecycle.LifecycleStore`: Redis, else a file of the host), which every read in
every tier consults (`NamespaceState.admits`): what it retires stops being served at once,
here and, within `lifecycle.state_refresh_s`, in every process that shares the record,
without a scan. Then what is cheap to remove is removed: this process's memory, and the
vector stores of every route (a filter delete inside Qdrant). Redis and host shared memory
keep retired entries until their TTL or the next write of the key; reads refuse them.

Export writes a namespace as JSONL records, the format `load` reads (docs/operations.md,
"Preload and export"): ``question`` and ``answer``, optional ``model``, ``tags``, ``ttl_s``
and ``sliding``; an exported record also carries ``id`` and ``fingerprint`` (its exact key and
scope, so that a chat turn or a templated prompt keeps them) and, when present, the answer's
``token_ids``, ``usage``, ``metadata`` and ``finish_reason``.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from semantic_reuse._log import logger
from semantic_reuse.analysis import EPOCH_MARK, Admission
from semantic_reuse.answer import CachedAnswer
from semantic_reuse.config import HandlerConfig
from semantic_reuse.errors import (
    ComponentUnavailableError,
    InvalidRequestError,
    InvalidTypeError,
    shown,
)
from semantic_reuse.exact.lifecycle import LifecycleStore
from semantic_reuse.exact.tiers import MultiLevelCacheManager
from semantic_reuse.lifecycle import StorePolicy
from semantic_reuse.metrics import Metrics
from semantic_reuse.options import check_ttl, validate_tags
from semantic_reuse.request import ReuseRequest, validate_namespace
from semantic_reuse.routes import SemanticComponent, SemanticRoutes
from semantic_reuse.semantic.search import SimilaritySearchHelper
from semantic_reuse.semantic.store import ScopeFilter

_HASH_ID = re.compile(r"[0-9a-f]{32}")  # the shape of every entry's id
#: Records per load batch (one embedding batch and one upsert each).
LOAD_BATCH = 64
_OPTIONAL_ANSWER_FIELDS = ("token_ids", "usage", "metadata", "finish_reason")


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What `load` did: records stored, and records whose vector write failed (their exact
    entries were written; the vector store was unavailable)."""

    stored: int
    vector_failures: int


class Maintenance:
    """The administrative operations of one engine (its tiers, routes and records)."""

    def __init__(
        self,
        config: HandlerConfig,
        cache: MultiLevelCacheManager,
        routes: SemanticRoutes,
        lifecycle: LifecycleStore,
        metrics: Metrics,
    ) -> None:
        self.config = config
        self.cache = cache
        self.routes = routes
        self.lifecycle = lifecycle
        self.metrics = metrics

    async def feedback(self, matched_id: str, correct: bool) -> bool:
        """`ReuseEngine.feedback`: count the verdict; on a wrong one, withdraw the entry from
        paraphrase reuse in the route that holds it (the primary one, or another this process
        has built: a route never built served nothing here)."""
        if not isinstance(matched_id, str) or not matched_id:
            raise InvalidRequestError(
                f"matched_id must be a non-empty str, got {shown(matched_id)}"
            )
        if not isinstance(correct, bool):
            raise InvalidTypeError(f"correct must be a bool, got {type(correct).__name__}")
        self.metrics.inc("feedback_total", verdict="right" if correct else "wrong")
        if correct:
            return True
        if not _HASH_ID.fullmatch(matched_id):
            return False  # no entry has an id of another shape: the store is not asked
        for route in self.routes.routes:
            if (route is self.routes.primary or route.ready is not None) and await route.call(
                lambda s: s.withdraw(matched_id)
            ):
                return True
        return False

    async def _every_route(self, call: Callable[[SimilaritySearchHelper], Any]) -> None:
        """`call(helper)` on every route's helper (built if need be: a folder may hold
        answers of an earlier run)."""
        deadline = self.config.semantic.store_timeout_s  # not a request's: a store's writes
        for route in self.routes.routes:
            await route.call(call, timeout_s=deadline)

    async def clear(self, namespace: str) -> None:
        validate_namespace(namespace)
        now = time.time()
        try:  # other processes' memory holds copies: retire them through the record
            await self.lifecycle.retire(namespace, at=now, before=True)
        except ComponentUnavailableError as exc:
            logger.warning("clear({}): {}; cleared here and in the stores", namespace, exc)
        await self.cache.clear(namespace)
        await self._every_route(lambda s: s.store.delete_namespace(namespace))

    async def invalidate_ids(self, ids: Sequence[str], namespace: str) -> None:
        validate_namespace(namespace)
        ids = _ids(ids)
        await self.lifecycle.retire(namespace, at=time.time(), ids=ids)
        for key in ids:
            await self.cache.invalidate(key, namespace=namespace)
        await self._every_route(lambda s: s.store.delete(ids))

    async def invalidate_tags(self, tags: Sequence[str], namespace: str) -> None:
        validate_namespace(namespace)
        tags = validate_tags(tags)
        if not tags:
            raise InvalidRequestError("tags must name at least one tag")
        at = time.time()
        await self.lifecycle.retire(namespace, at=at, tags=tags)
        await self.cache.drop_where(
            namespace, lambda a: a.created_at < at and not set(tags).isdisjoint(a.tags)
        )
        for tag in tags:
            await self._every_route(_delete_tagged(namespace, tag, at))

    async def forget_older_than(self, age_s: float, namespace: str | None) -> None:
        number = isinstance(age_s, (int, float)) and not isinstance(age_s, bool)
        if not number or not 0 <= age_s < 1e15:  # NaN, infinities and huge ints too
            raise InvalidRequestError(f"age_s must be a finite number >= 0, got {shown(age_s)}")
        cutoff = time.time() - age_s
        if namespace is not None:
            await self.retire_before(cutoff, namespace)
            return
        await self.cache.memory.drop_created_before(cutoff)
        await self._every_route(lambda s: s.store.delete_older_than(cutoff))

    async def retire_before(self, cutoff: float, namespace: str) -> None:
        validate_namespace(namespace)
        await self.lifecycle.retire(namespace, at=cutoff, before=True)
        await self.cache.drop_where(namespace, lambda a: a.created_at < cutoff)
        await self._every_route(lambda s: s.store.delete_where(namespace, created_before=cutoff))

    async def bump_epoch(self, namespace: str) -> int:
        validate_namespace(namespace)
        epoch = await self.lifecycle.bump_epoch(namespace)
        await self.cache.drop_where(namespace, lambda a: a.epoch < epoch)
        await self._every_route(lambda s: s.store.delete_where(namespace, epoch_below=epoch))
        return epoch

    # -- export and load ------------------------------------------------------------------

    async def export(self, namespace: str, page: int = 256) -> AsyncIterator[dict[str, Any]]:
        """The namespace's answers that may be served now, as `load` records."""
        validate_namespace(namespace)
        admit = Admission(await self.lifecycle.state(namespace), time.time())
        for route in self.routes.routes:
            helper = await route.get()
            if helper is None:
                raise ComponentUnavailableError(f"the vector store of route {route.name} is down")
            offset: str | None = None
            while True:
                matches, offset = await helper.store.scroll(namespace, offset=offset, limit=page)
                for match in matches:
                    answer = helper.answer_of(match)
                    if answer is not None and admit(match.id, answer):
                        yield _record(match.id, match.prompt, match.model, match.fingerprint,
                                      answer, admit.now)  # fmt: skip
                if offset is None:
                    break

    async def load(
        self,
        records: Iterable[Mapping[str, Any]],
        *,
        namespace: str,
        model: str | None = None,
        tags: Sequence[str] = (),
        ttl_s: float | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> LoadReport:
        """Store every record (see the module docstring) in `namespace`: `model`, `tags` and
        `ttl_s` apply to records that name none. `progress(n)` after each batch of n."""
        validate_namespace(namespace)
        default_tags, default_ttl = validate_tags(tags), check_ttl(ttl_s)
        state = await self.lifecycle.state(namespace)
        stored = failures = 0
        batch: list[tuple[str, str, ScopeFilter, CachedAnswer]] = []
        for number, record in enumerate(records, 1):
            try:
                batch.append(self._entry(record, namespace, model, default_tags, default_ttl,
                                         state.epoch))  # fmt: skip
            except (InvalidRequestError, InvalidTypeError) as exc:
                raise type(exc)(f"record {number}: {exc}") from exc
            if len(batch) >= LOAD_BATCH:
                failures += await self._write(batch)
                stored += len(batch)
                if progress is not None:
                    progress(len(batch))
                batch = []
        if batch:
            failures += await self._write(batch)
            stored += len(batch)
            if progress is not None:
                progress(len(batch))
        return LoadReport(stored, failures)

    def _entry(
        self,
        record: Mapping[str, Any],
        namespace: str,
        model: str | None,
        tags: tuple[str, ...],
        ttl_s: float | None,
        epoch: int,
    ) -> tuple[str, str, ScopeFilter, CachedAnswer]:
        if not isinstance(record, Mapping):
            raise InvalidTypeError(f"a record must be a JSON object, got {type(record).__name__}")
        question, text = record.get("question"), record.get("answer")
        if not isinstance(question, str) or not question.strip():
            raise InvalidRequestError("question must be a non-empty str")
        if not isinstance(text, str) or not text.strip():
            raise InvalidRequestError("answer must be a non-empty str")
        name = record.get("model", model) or self.config.cache.default_model
        if not isinstance(name, str):
            raise InvalidTypeError(f"model must be a str, got {type(name).__name__}")
        key, fingerprint = record.get("id"), record.get("fingerprint")
        if isinstance(key, str) and key and isinstance(fingerprint, str):
            text_key, scope_fp = question, fingerprint
        else:
            request = ReuseRequest(question, namespace=namespace, model=name)
            key, text_key, scope_fp = request.hash_id, request.semantic_text, request.fingerprint
        sliding = record.get("sliding", self.config.lifecycle.sliding)
        if not isinstance(sliding, bool):
            raise InvalidTypeError(f"sliding must be a bool, got {sliding!r}")
        policy = StorePolicy(
            epoch,
            check_ttl(record.get("ttl_s", ttl_s)),
            sliding,
            tuple(sorted({*tags, *validate_tags(record.get("tags"))})),
        )
        extra = {k: record[k] for k in _OPTIONAL_ANSWER_FIELDS if k in record}
        now = time.time()
        answer = CachedAnswer.from_dict(
            {"text": text, "source_prompt": text_key, "created_at": now, **extra}
        )
        answer = policy.stamp(answer, now)
        if epoch:
            scope_fp = f"{scope_fp}{EPOCH_MARK}{epoch}"
        return key, text_key, ScopeFilter(namespace, name, scope_fp), answer

    async def _write(self, batch: list[tuple[str, str, ScopeFilter, CachedAnswer]]) -> int:
        """The exact tiers and the vector records of a batch; how many vector writes failed."""
        for key, _, scope, answer in batch:
            self.cache.set_nowait(key, answer, namespace=scope.namespace)
        groups: dict[tuple[int, ScopeFilter], list[tuple[str, str, CachedAnswer, None]]] = {}
        routes: list[SemanticComponent] = list(self.routes.routes)
        for key, text, scope, answer in batch:
            index = routes.index(self.routes.for_text(text))
            groups.setdefault((index, scope), []).append((key, text, answer, None))
        failed = 0
        ttl = self.config.cache.vector_ttl_s
        for (index, scope), items in groups.items():

            async def add(
                helper: SimilaritySearchHelper,
                items: list[tuple[str, str, CachedAnswer, None]] = items,
                scope: ScopeFilter = scope,
            ) -> bool:
                await helper.add_many(items, scope=scope, ttl_s=ttl)
                return True

            deadline = self.config.semantic.store_timeout_s
            if await routes[index].call(add, timeout_s=deadline) is None:
                failed += len(items)
        await self.cache.flush()
        return failed


def _delete_tagged(
    namespace: str, tag: str, at: float
) -> Callable[[SimilaritySearchHelper], Awaitable[None]]:
    def call(helper: SimilaritySearchHelper) -> Awaitable[None]:
        return helper.store.delete_where(namespace, tag=tag, created_before=at)

    return call


def _ids(ids: Sequence[str]) -> list[str]:
    if isinstance(ids, str) or not all(isinstance(i, str) and i for i in ids):
        raise InvalidTypeError("ids must be a list of non-empty str")
    return list(ids)


def _record(
    id: str, question: str, model: str, fingerprint: str, answer: CachedAnswer, now: float
) -> dict[str, Any]:
    """One export line."""
    base, mark, _ = fingerprint.rpartition(EPOCH_MARK)
    record: dict[str, Any] = {"question": question, "answer": answer.text, "model": model}
    if answer.tags:
        record["tags"] = list(answer.tags)
    if answer.sliding and answer.ttl_s is not None:
        record["ttl_s"], record["sliding"] = answer.ttl_s, True
    elif answer.expires_at is not None:
        record["ttl_s"] = round(max(1e-3, answer.expires_at - now), 3)
    record["id"], record["fingerprint"] = id, base if mark else fingerprint
    data = answer.to_dict()
    for name in _OPTIONAL_ANSWER_FIELDS:
        value = data.get(name)
        if value and value != "stop":
            record[name] = value
    return record
