"""Property: the engine never serves an answer across scopes through the vector store,
clause composition or single-flight.

Real components: the bundled MiniLM, Qdrant Edge in the test's folder, the real clause
splitter (`make_engine`); the model is `ScopedBackend`, which tags what it generates. Answers
are stored in batches (one `store_many` per namespace and model, gathered, so the embedder
sees a few batches per example) and looked up concurrently (the lookups share batches too).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from semantic_reuse import ReuseEngine, ReuseHit, ReuseKind
from tests.conftest import EngineFactory
from tests.integration.scopes.cases import (
    PARAPHRASES,
    Case,
    ScopedBackend,
    answer_text,
    case_batches,
    check_served,
    examples,
    tally,
)

NO_CLAUSES = {"features": {"enable_nlp_enhancement": False}}
#: Compound questions the splitter cuts in two (checked by `clauses`).
COMPOUNDS = [
    "What is Redis and how does it store data?",
    "How do I reset my password and how do I delete my account?",
    "What is the capital of France and what is the capital of Germany?",
    "Which plan includes priority support and how much does it cost?",
    "What is Python and what is Rust?",
    "How do I install Docker and how do I update it?",
]


async def store_batches(engine: ReuseEngine, items: Sequence[tuple[Case, str]]) -> None:
    """Store (case, answer) pairs: one `store_many` per namespace and model, gathered."""
    groups: dict[tuple[str, str], list[tuple[Any, str]]] = defaultdict(list)
    for case, answer in items:
        groups[(case.namespace, case.model)].append((case.prompt_input, answer))
    await asyncio.gather(
        *(
            engine.store_many(group, namespace=ns, model=model)
            for (ns, model), group in groups.items()
        )
    )
    await engine.flush()


async def lookups(engine: ReuseEngine, probes: Sequence[Case]) -> list[ReuseHit | None]:
    return list(
        await asyncio.gather(
            *(engine.lookup(p.prompt_input, namespace=p.namespace, model=p.model) for p in probes)
        )
    )


def count_kind(path: str, hit: ReuseHit | None) -> None:
    if hit is not None:
        tally(path, **{f"{hit.info.kind.value}_hits": 1})


# -- the vector store -------------------------------------------------------------------------

VECTOR, PER_VECTOR = "vector store", 24


@pytest.fixture
def engine(make_engine: EngineFactory) -> ReuseEngine:
    engine: ReuseEngine = make_engine(**NO_CLAUSES)
    return engine


async def test_a_paraphrase_is_served_in_its_scope_and_nowhere_else(engine: ReuseEngine) -> None:
    """What makes the property below able to fail: the store does serve paraphrases."""
    home = Case("a", "m", None, "How do I reset my password?")
    await store_batches(engine, [(home, answer_text(home.entry))])
    await engine.cache.clear_all()
    paraphrase = "How can I reset my password?"
    others = [
        Case("a", "m", None, paraphrase),
        Case("b", "m", None, paraphrase),
        Case("a", "m2", None, paraphrase),
        Case("a", "m", (), paraphrase),
        Case("b", "m", None, home.prompt),
    ]
    hits = await lookups(engine, others)
    assert hits[0] is not None
    assert hits[0].info.kind is ReuseKind.SEMANTIC
    assert hits[1:] == [None] * 4


@given(cases=case_batches(PER_VECTOR))
@examples(VECTOR, PER_VECTOR)
async def test_the_vector_store_never_serves_across_scopes(
    engine: ReuseEngine, cases: list[Case]
) -> None:
    stored = cases[: PER_VECTOR // 2]
    await store_batches(engine, [(c, answer_text(c.entry)) for c in stored])
    await engine.cache.clear_all()  # the exact tiers forget: only the vector store answers
    # Besides the cases, a paraphrase of each stored question asked in every scope of the
    # example: served by meaning in its own scope, never in another.
    scopes = {(c.namespace, c.model, c.history) for c in cases}
    paraphrased = {
        Case(*scope, PARAPHRASES[s.prompt]) for s in stored if s.prompt in PARAPHRASES
        for scope in scopes
    } - set(stored)  # fmt: skip
    probes = [*cases, *sorted(paraphrased, key=repr)[:PER_VECTOR]]
    for probe, hit in zip(probes, await lookups(engine, probes), strict=True):
        check_served(VECTOR, probe, None if hit is None else hit.answer.text, stored)
        count_kind(VECTOR, hit)
        if probe in stored:
            assert hit is not None, f"the store lost {probe.entry!r}"


# -- clause composition -----------------------------------------------------------------------

CLAUSES, PER_CLAUSES = "clauses", 8


@pytest.fixture
def clause_engine(make_engine: EngineFactory) -> ReuseEngine:
    engine: ReuseEngine = make_engine()  # clause splitting on
    return engine


@pytest.fixture
def clauses(splitter: Any) -> dict[str, list[str]]:
    split = {q: list(splitter.extract_conjunctions(q)) for q in COMPOUNDS}
    assert all(len(parts) == 2 for parts in split.values()), split
    return split


@given(cases=case_batches(PER_CLAUSES, prompts=st.sampled_from(COMPOUNDS)))
@examples(CLAUSES, PER_CLAUSES)
async def test_composed_answers_never_take_a_clause_from_another_scope(
    clause_engine: ReuseEngine, clauses: dict[str, list[str]], cases: list[Case]
) -> None:
    engine = clause_engine
    stored = cases[: PER_CLAUSES // 2]
    parts = [
        (Case(c.namespace, c.model, c.history, clause), c)
        for c in stored
        for clause in clauses[c.prompt]
    ]
    await store_batches(engine, [(part, answer_text(part.entry)) for part, _ in parts])
    for probe, hit in zip(cases, await lookups(engine, cases), strict=True):
        check_served(CLAUSES, probe, None if hit is None else hit.answer.text, stored)
        count_kind(CLAUSES, hit)
        if probe in stored:  # both its clauses are stored in its own scope
            assert hit is not None, probe
            assert hit.info.kind is ReuseKind.COMPOSED, probe


# -- single-flight ----------------------------------------------------------------------------

FLIGHT, PER_FLIGHT = "single-flight", 12


@given(cases=case_batches(PER_FLIGHT))
@examples(FLIGHT, PER_FLIGHT)
async def test_concurrent_identical_prompts_never_share_a_generation_across_scopes(
    engine: ReuseEngine, cases: list[Case]
) -> None:
    for namespace in {c.namespace for c in cases}:  # nothing stored: every entry generates
        await engine.clear(namespace)
    distinct = len({c.entry for c in cases})
    backend = ScopedBackend()
    started = asyncio.Event()
    backend.gate, backend.started = asyncio.Event(), (started, distinct)
    joined = engine.metrics.counter("inflight_shared_total")
    tasks = [
        asyncio.create_task(
            engine.generate(c.prompt_input, backend, namespace=c.namespace, model=c.model)
        )
        for c in cases
    ]
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(30):  # a safety net, never reached when all is well
            await started.wait()
    backend.gate.set()
    results = await asyncio.gather(*tasks)
    for probe, result in zip(cases, results, strict=True):
        check_served(FLIGHT, probe, result.text, cases)
    assert started.is_set(), f"{backend.calls} generations for {distinct} distinct requests"
    tally(
        FLIGHT,
        generations=backend.calls,
        joined=int(engine.metrics.counter("inflight_shared_total") - joined),
    )
