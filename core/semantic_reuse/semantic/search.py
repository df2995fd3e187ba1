"""Similarity search with the reuse check: embed, search Qdrant in scope, decide.

`SimilaritySearchHelper` (the seed's name) joins the embedder, the vector store and the
reuse policy (threshold, guard, margin). It returns the candidates above a candidate
threshold and whether the best may be served; clauses of a compound question are
embedded in one batch and searched in one round trip.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt

from semantic_reuse.answer import AnswerDecodeError, CachedAnswer
from semantic_reuse.errors import ConfigurationError, InvalidRequestError
from semantic_reuse.metrics import Metrics
from semantic_reuse.options import check_threshold
from semantic_reuse.semantic.coalesce import SearchCoalescer
from semantic_reuse.semantic.decision import Candidate, MatchDecision, ReusePolicy
from semantic_reuse.semantic.embedder import MAX_COMPARED_CHARS, fits_window
from semantic_reuse.semantic.store import ScopeFilter, VectorMatch, VectorPoint, VectorStore

FloatVector = npt.NDArray[np.float32]
#: Rules on a stored answer (its id, the answer) before it may be a candidate: the
#: namespace's lifecycle (`NamespaceState.admits`).
Admit = Callable[[str, CachedAnswer], bool]


class AsyncEmbedder(Protocol):
    """The async embedding front the helper needs (a `MicroBatchingEmbedder`)."""

    @property
    def dim(self) -> int: ...

    async def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...

    def stats(self) -> Any: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SimilarQuestion:
    """A cached question near the asked one."""

    id: str
    prompt: str
    similarity: float
    answer: CachedAnswer


@dataclass(frozen=True, slots=True)
class SimilaritySearchResult:
    """Candidates best first, the decision, and the answer to serve when reusable."""

    query: str
    candidates: tuple[SimilarQuestion, ...]
    decision: MatchDecision
    vector: FloatVector | None = None

    @property
    def reusable(self) -> bool:
        return self.decision.hit

    @property
    def best(self) -> SimilarQuestion | None:
        """The candidate to serve, or None."""
        index = self.decision.index
        return None if index is None else self.candidates[index]


#: Why a text was not searched: the embedder would not see all of it (see `fits`).
TOO_LONG: Final = "too_long"


def exact_only_fingerprint(id: str) -> str:
    """The fingerprint of a record that no search may match (its text did not fit)."""
    return f"exact-only:{id}"


class SimilaritySearchHelper:
    """Finds reusable paraphrases inside one scope (namespace, model, fingerprint)."""

    def __init__(
        self,
        embedder: AsyncEmbedder,
        store: VectorStore,
        policy: ReusePolicy,
        *,
        candidate_threshold: float = 0.5,
        metrics: Metrics | None = None,
        threshold_policy: ReusePolicy | None = None,
    ) -> None:
        """`threshold_policy`: the rule a per-call similarity threshold selects when `policy`
        is a verifier's (the expert's cosine rule, with its margin and guard); by default
        `policy` with that threshold."""
        check_threshold(candidate_threshold, "candidate_threshold")
        if embedder.dim != store.dim:
            raise ConfigurationError(f"embedder dim {embedder.dim} != store dim {store.dim}")
        self.embedder = embedder
        self.store = store
        self._searches = SearchCoalescer(store)
        self.policy = policy
        self.threshold_policy = threshold_policy or policy
        self.candidate_threshold = candidate_threshold
        self.metrics = metrics or Metrics()

    def fits(self, text: str) -> bool:
        """Whether the embedder sees all of `text`: a truncated text is never compared."""
        return fits_window(self.embedder, text)

    async def embed(self, texts: Sequence[str]) -> list[FloatVector]:
        start = time.perf_counter()
        matrix = await self.embedder.embed(list(texts))
        self.metrics.observe("stage_seconds", time.perf_counter() - start, stage="embed")
        return [np.asarray(row, dtype=np.float32) for row in matrix]

    async def search_similar_questions_with_reuse_check(
        self,
        prompt: str,
        top_k: int = 10,
        similarity_threshold: float | None = None,
        *,
        scope: ScopeFilter,
    ) -> SimilaritySearchResult:
        """Candidates for `prompt` and whether the best may be reused directly."""
        (result,) = await self.search_many([prompt], top_k, similarity_threshold, scope=scope)
        return result

    def policy_for(
        self, similarity_threshold: float | None = None, max_error_rate: float | None = None
    ) -> ReusePolicy:
        """The rule of one call: a similarity threshold selects the expert's cosine rule; an
        error budget, the verifier's probability threshold for it (no verifier: the policy
        as it is, a budget needs a calibrated verifier); neither, the configured policy."""
        if similarity_threshold is not None:
            # A threshold given per call is the expert's: the cosine rule, not the verifier.
            return replace(self.threshold_policy, threshold=similarity_threshold)
        verifier = self.policy.verifier
        if max_error_rate is None or verifier is None:
            return self.policy
        return replace(self.policy, min_probability=verifier.threshold_for(max_error_rate))

    async def search_many(
        self,
        prompts: Sequence[str],
        top_k: int = 10,
        similarity_threshold: float | None = None,
        *,
        scope: ScopeFilter,
        vectors: Sequence[FloatVector] | None = None,
        admit: Admit | None = None,
        max_error_rate: float | None = None,
    ) -> list[SimilaritySearchResult]:
        """`search_similar_questions_with_reuse_check` for several prompts: one embedding
        batch, one vector-store round trip. A prompt the embedder would truncate is not
        searched (decision reason ``too_long``). `admit` drops stored answers that may not
        be served (retired, expired) before the policy sees the candidates.
        `max_error_rate`: this call's error budget (see `policy_for`)."""
        check_threshold(similarity_threshold, "similarity_threshold")
        policy = self.policy_for(similarity_threshold, max_error_rate)
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise InvalidRequestError(f"top_k must be an int >= 1, got {top_k!r}")
        if vectors is None:
            fitting = [i for i, prompt in enumerate(prompts) if self.fits(prompt)]
            if len(fitting) < len(prompts):
                searched = iter(
                    await self.search_many(
                        [prompts[i] for i in fitting],
                        top_k,
                        similarity_threshold,
                        scope=scope,
                        admit=admit,
                        max_error_rate=max_error_rate,
                    )
                    if fitting
                    else []
                )
                too_long = MatchDecision(None, reason=TOO_LONG)
                return [
                    next(searched) if i in fitting else SimilaritySearchResult(p, (), too_long)
                    for i, p in enumerate(prompts)
                ]
        if not prompts:
            return []
        if vectors is None:
            vectors = await self.embed(prompts)
        # Rivals within the margin below the threshold matter to the decision: fetch them too.
        floor = min(self.candidate_threshold, max(0.0, policy.threshold - policy.margin))
        start = time.perf_counter()
        batches = await self._searches.search_batch(
            list(vectors), scope, limit=top_k, score_threshold=floor
        )
        self.metrics.observe("stage_seconds", time.perf_counter() - start, stage="search")
        return [
            self._decide(prompt, vector, matches, policy, admit)
            for prompt, vector, matches in zip(prompts, vectors, batches, strict=True)
        ]

    def _decide(
        self,
        prompt: str,
        vector: FloatVector,
        matches: Sequence[VectorMatch],
        policy: ReusePolicy,
        admit: Admit | None = None,
    ) -> SimilaritySearchResult:
        seen: set[str] = set()
        candidates: list[SimilarQuestion] = []
        for match in matches:
            if match.id in seen:
                continue
            seen.add(match.id)
            answer = self.answer_of(match)
            if answer is None:
                continue
            if admit is not None and not admit(match.id, answer):
                self.metrics.inc("retired_reads_total", tier="vector")
                continue
            candidates.append(SimilarQuestion(match.id, match.prompt, match.score, answer))
        decision = policy.decide(
            prompt, [Candidate(c.prompt, c.similarity, c.answer.text) for c in candidates]
        )
        return SimilaritySearchResult(prompt, tuple(candidates), decision, vector)

    async def add(
        self,
        *,
        id: str,
        prompt: str,
        answer: CachedAnswer,
        scope: ScopeFilter,
        vector: FloatVector | None = None,
        ttl_s: float | None = None,
    ) -> None:
        """Store `answer` as the durable record of `prompt` in `scope`."""
        await self.add_many([(id, prompt, answer, vector)], scope=scope, ttl_s=ttl_s)

    async def add_many(
        self,
        items: Sequence[tuple[str, str, CachedAnswer, FloatVector | None]],
        *,
        scope: ScopeFilter,
        ttl_s: float | None = None,
    ) -> None:
        """Store several (id, prompt, answer, vector or None) in one embedding batch and upsert.
        A prompt the embedder would truncate is kept as an exact record only (a fingerprint
        no search matches): its vector does not stand for all of it, so only the beginning
        of such a prompt is embedded (a 2 MB prompt is not tokenized whole)."""
        fitting = [self.fits(prompt) for _, prompt, _, _ in items]
        missing = [
            prompt if fits else prompt[:MAX_COMPARED_CHARS]
            for (_, prompt, _, vector), fits in zip(items, fitting, strict=True)
            if vector is None
        ]
        embedded = iter(await self.embed(missing) if missing else [])
        now = time.time()

        def expiry(answer: CachedAnswer) -> float | None:
            ends = [t for t in (answer.expires_at, None if ttl_s is None else now + ttl_s) if t]
            return min(ends) if ends else None

        points = [
            VectorPoint(
                id=id,
                vector=vector if vector is not None else next(embedded),
                namespace=scope.namespace,
                model=scope.model,
                fingerprint=scope.fingerprint if fits else exact_only_fingerprint(id),
                prompt=prompt,
                answer=answer.to_dict(),
                created_at=answer.created_at,
                expires_at=expiry(answer),
                tags=answer.tags,
                epoch=answer.epoch,
            )
            for (id, prompt, answer, vector), fits in zip(items, fitting, strict=True)
        ]
        await self.store.upsert(points)

    async def get(self, id: str) -> CachedAnswer | None:
        """The durable record stored under `id` (the exact tier of last resort)."""
        match = await self.store.get(id)
        return None if match is None else self.answer_of(match)

    def answer_of(self, match: VectorMatch) -> CachedAnswer | None:
        """The answer of a stored record; its expiry is the record's (which a sliding
        answer's renewals move: `set_expiry`)."""
        try:
            answer = CachedAnswer.from_dict(match.answer)
        except AnswerDecodeError:
            self.metrics.inc("decode_errors_total", tier="vector")
            return None
        if answer.expires_at != match.expires_at:
            answer = replace(answer, expires_at=match.expires_at)
        return answer

    async def withdraw(self, id: str) -> bool:
        """Take the record stored under `id` out of paraphrase reuse, keeping it as an exact
        record (its fingerprint becomes one no search matches). False: no such record."""
        match = await self.store.get(id)
        if match is None:
            return False
        if match.fingerprint == exact_only_fingerprint(id):
            return True
        try:
            answer = CachedAnswer.from_dict(match.answer)
        except AnswerDecodeError:
            await self.store.delete([id])  # unreadable: nothing worth keeping
            return True
        scope = ScopeFilter(match.namespace, match.model, exact_only_fingerprint(id))
        ttl = None if match.expires_at is None else max(0.0, match.expires_at - time.time())
        await self.add(id=id, prompt=match.prompt, answer=answer, scope=scope, ttl_s=ttl)
        return True
