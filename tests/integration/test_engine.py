"""ReuseEngine with the real embedder, Qdrant Edge, spaCy splitter and (where named) Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from semantic_reuse import (
    CachedAnswer,
    CallableBackend,
    ReuseEngine,
    ReuseKind,
    ReuseRequest,
)
from semantic_reuse.singleflight import SingleFlight
from tests.conftest import EngineFactory


class CountingModel:
    """A backend standing in for the LLM: answers name the prompt, calls are counted.
    `gated`: every call waits until the test sets `release` (a generation in flight)."""

    def __init__(self, *, gated: bool = False) -> None:
        self.prompts: list[str] = []
        self.called = asyncio.Event()
        self.release = asyncio.Event()
        if not gated:
            self.release.set()
        self.backend = CallableBackend(self._answer)

    async def _answer(self, prompt: object, params: object) -> str:
        self.prompts.append(prompt if isinstance(prompt, str) else str(prompt))
        self.called.set()
        await self.release.wait()
        return f"answer to: {prompt}"


class Followers:
    """Counts the requests that wait on an identical request's generation (single-flight:
    `SingleFlight.follow`, watched on the class, since the engine keeps its flights private)
    and says when `expected` of them do."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, expected: int) -> None:
        self.tasks: list[asyncio.Task[Any] | None] = []
        self.expected = expected
        self.joined = asyncio.Event()
        follow = SingleFlight.follow

        async def counted(flights: SingleFlight[Any], key: str) -> Any:
            self.tasks.append(asyncio.current_task())
            if len(self.tasks) >= self.expected:
                self.joined.set()
            return await follow(flights, key)

        monkeypatch.setattr(SingleFlight, "follow", counted)

    async def wait(self) -> None:
        """Until `expected` requests wait; fails (never hangs) if they do not. The limit is
        a safety net far above the wait, not a timing assertion."""
        try:
            async with asyncio.timeout(60):
                await self.joined.wait()
        except TimeoutError:
            pytest.fail(f"{len(self.tasks)} of {self.expected} requests joined the generation")


async def test_exact_then_paraphrase_hit(make_engine: EngineFactory) -> None:
    engine: ReuseEngine = make_engine()
    model = CountingModel()
    first = await engine.generate("How do I reset my password?", model.backend)
    assert first.info.kind is ReuseKind.MISS
    await engine.flush()
    again = await engine.generate("How do I reset my password?", model.backend)
    assert (again.info.kind, again.info.tier, again.text) == (ReuseKind.EXACT, "memory", first.text)
    para = await engine.generate("How can I reset my password?", model.backend)
    assert para.info.kind is ReuseKind.SEMANTIC
    assert para.text == first.text
    assert para.info.matched_prompt == "How do I reset my password?"
    assert para.info.similarity is not None
    assert para.info.similarity >= engine.config.reuse_threshold()
    assert model.prompts == ["How do I reset my password?"]


async def test_labelled_non_duplicate_is_a_miss(make_engine: EngineFactory) -> None:
    # A QQP-style hard negative: same topic, different question.
    engine: ReuseEngine = make_engine()
    await engine.store("How do I learn Python?", "Start with the official tutorial.")
    assert await engine.lookup("How do I learn Python fast for data science?") is None


@pytest.mark.parametrize(
    ("stored", "asked", "reason"),
    [
        ("What is 2+2?", "What is 2+3?", "numbers"),
        ("Is coffee safe during pregnancy?", "Is coffee not safe during pregnancy?", "negation"),
        ("Cheap flights from Paris to Rome", "Cheap flights from Rome to Paris", "direction"),
        ("What is the capital of France?", "What is the capital of Spain?", "entities"),
    ],
)
async def test_guard_refuses_close_but_different_questions(
    make_engine: EngineFactory, stored: str, asked: str, reason: str
) -> None:
    engine: ReuseEngine = make_engine(similarity_threshold=0.5)
    await engine.store(stored, f"answer to {stored}")
    decision = await engine.analyze(asked)
    assert decision.kind is ReuseKind.MISS
    assert decision.info.refused_by is not None
    assert reason in decision.info.refused_by


async def test_per_call_thresholds_zero_and_one(make_engine: EngineFactory) -> None:
    engine: ReuseEngine = make_engine()
    await engine.store("How do I bake sourdough bread?", "Feed the starter first.")
    asked = "Tips for baking bread at home"
    assert await engine.lookup(asked) is None  # the default threshold refuses it
    loose = await engine.lookup(asked, threshold=0.0)
    assert loose is not None
    assert loose.text == "Feed the starter first."
    # Threshold 1 serves only the same text (exact reuse is not affected by thresholds).
    assert await engine.lookup("How should I bake sourdough bread?", threshold=1.0) is None
    same = await engine.lookup("How do I bake sourdough bread?", threshold=1.0)
    assert same is not None
    assert same.info.kind is ReuseKind.EXACT
    with pytest.raises(ValueError, match="threshold"):
        await engine.lookup(asked, threshold=1.5)
    with pytest.raises(TypeError, match="threshold"):
        await engine.lookup(asked, threshold="high")  # type: ignore[arg-type]


async def test_namespace_model_and_params_isolation(make_engine: EngineFactory) -> None:
    engine: ReuseEngine = make_engine(similarity_threshold=0.0)
    await engine.store("What is our refund policy?", "Tenant A: 30 days.", namespace="tenant-a")
    await engine.store("What is Redis?", "For model m1.", model="m1")
    assert await engine.lookup("What is our refund policy?", namespace="tenant-b") is None
    assert await engine.lookup("What's your refund policy?", namespace="tenant-b") is None
    hit = await engine.lookup("What is our refund policy?", namespace="tenant-a")
    assert hit is not None
    assert hit.text == "Tenant A: 30 days."
    assert await engine.lookup("What is Redis?", model="m2") is None
    assert await engine.lookup("Explain Redis", model="m2") is None
    assert await engine.lookup("What is Redis?", model="m1", params={"max_tokens": 5}) is None


async def test_conversation_boundary(make_engine: EngineFactory) -> None:
    engine: ReuseEngine = make_engine()
    chat_a = [{"role": "system", "content": "Answer in French."}]
    chat_b = [{"role": "system", "content": "Answer in German."}]
    q = {"role": "user", "content": "How do I reset my password?"}
    await engine.store([*chat_a, q], "Réinitialisez-le dans les paramètres.")
    assert await engine.lookup([*chat_b, q]) is None
    para = {"role": "user", "content": "How can I reset my password?"}
    hit = await engine.lookup([*chat_a, para])
    assert hit is not None
    assert hit.info.kind is ReuseKind.SEMANTIC


async def test_default_engine_keeps_answers_across_a_restart(tmp_path: Path) -> None:
    """The embedded defaults, built by the engine itself; the Edge folder is the record."""
    from semantic_reuse import HandlerConfig

    config = HandlerConfig(cache={"qdrant_path": tmp_path / "qdrant"})
    async with ReuseEngine(config) as first:
        await first.store("How do I reset my password?", "Use the reset link.", model="m")
        assert first.semantic.owned
    async with ReuseEngine(config) as opted_out:  # no search: the record is read by its id
        exact = await opted_out.lookup("How do I reset my password?", model="m", reuse=False)
        assert exact is not None
        assert (exact.info.tier, exact.text) == ("vector", "Use the reset link.")
    async with ReuseEngine(config) as second:  # memory is empty, no Redis: only Qdrant
        # found among the search's candidates (cosine 1, the same scope)
        exact = await second.lookup("How do I reset my password?", model="m")
        assert exact is not None
        assert (exact.info.tier, exact.text) == ("vector", "Use the reset link.")
        para = await second.lookup("How can I reset my password?", model="m")
        assert para is not None
        assert (para.info.kind, para.text) == (ReuseKind.SEMANTIC, "Use the reset link.")
        compound = await second.analyze("How do I reset my password and what is Redis?", model="m")
        assert [c.kind for c in compound.clauses] == [ReuseKind.EXACT, ReuseKind.MISS]


async def test_compound_full_partial_single(make_engine: EngineFactory) -> None:
    engine: ReuseEngine = make_engine()
    model = CountingModel()
    await engine.store("What is Redis?", "Redis is an in-memory data store.")
    await engine.store("How does Qdrant store vectors?", "In HNSW-indexed segments.")
    full = await engine.generate("What is Redis and how does Qdrant store vectors?", model.backend)
    assert full.info.kind is ReuseKind.COMPOSED
    assert [c.kind for c in full.info.clauses] == [ReuseKind.EXACT, ReuseKind.EXACT]
    assert full.text == "Redis is an in-memory data store.\n\nIn HNSW-indexed segments."
    assert model.prompts == []

    partial = await engine.generate(
        "What is Redis? Also, how do I install Docker on Ubuntu?", model.backend
    )
    assert partial.info.kind is ReuseKind.PARTIAL
    assert [c.kind for c in partial.info.clauses] == [ReuseKind.EXACT, ReuseKind.MISS]
    assert model.prompts == ["How do I install Docker on Ubuntu?"]
    assert partial.text.startswith("Redis is an in-memory data store.\n\nanswer to: How do I")
    await engine.flush()
    # The generated clause is stored on its own and reusable.
    clause = await engine.lookup("How do I install Docker on Ubuntu?")
    assert clause is not None
    assert clause.info.kind is ReuseKind.EXACT

    single = await engine.analyze("What is the difference between Redis and Memcached?")
    assert single.clauses == ()
    assert single.kind is ReuseKind.MISS


async def test_pronoun_clause_gets_its_subject(make_engine: EngineFactory) -> None:
    engine: ReuseEngine = make_engine()
    await engine.store("What is Redis?", "An in-memory store.")
    await engine.store("How does Redis store data?", "In RAM, with optional persistence.")
    hit = await engine.lookup("What is Redis and how does it store data?")
    assert hit is not None
    assert hit.info.kind is ReuseKind.COMPOSED
    assert hit.text == "An in-memory store.\n\nIn RAM, with optional persistence."


async def test_whole_strategy_does_not_split(make_engine: EngineFactory) -> None:
    engine: ReuseEngine = make_engine(compound_strategy="whole")
    await engine.store("What is Redis?", "An in-memory store.")
    await engine.store("How does Qdrant store vectors?", "HNSW.")
    decision = await engine.analyze("What is Redis and how does Qdrant store vectors?")
    assert decision.kind is ReuseKind.MISS
    assert decision.clauses == ()


async def test_identical_concurrent_requests_generate_once(
    make_engine: EngineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine: ReuseEngine = make_engine()
    model = CountingModel(gated=True)
    followers = Followers(monkeypatch, 199)
    requests = asyncio.gather(
        *(engine.generate("Summarise the plot of Hamlet", model.backend) for _ in range(200))
    )
    await followers.wait()  # one generates, the 199 others wait for its answer
    model.release.set()
    results = await requests
    assert len(model.prompts) == 1
    assert {r.text for r in results} == {"answer to: Summarise the plot of Hamlet"}
    kinds = [r.info.kind for r in results]
    assert kinds.count(ReuseKind.MISS) == 1
    assert kinds.count(ReuseKind.EXACT) == 199


async def test_a_cancelled_waiter_does_not_cancel_the_others(
    make_engine: EngineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine: ReuseEngine = make_engine()
    model = CountingModel(gated=True)
    followers = Followers(monkeypatch, 4)
    tasks = [
        asyncio.ensure_future(engine.generate("Explain quantum tunnelling", model.backend))
        for _ in range(5)
    ]
    await followers.wait()  # one generates, four wait for it
    cancelled = tasks.index(followers.tasks[2])  # a waiter, not the generating one
    tasks[cancelled].cancel()
    model.release.set()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[cancelled], asyncio.CancelledError)
    assert all(getattr(r, "text", None) == "answer to: Explain quantum tunnelling"
               for i, r in enumerate(done) if i != cancelled)  # fmt: skip
    assert len(model.prompts) == 1


async def test_a_cancelled_leader_lets_a_waiter_generate(
    make_engine: EngineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine: ReuseEngine = make_engine()
    model = CountingModel(gated=True)
    followers = Followers(monkeypatch, 1)
    leader = asyncio.ensure_future(engine.generate("Describe the water cycle", model.backend))
    await model.called.wait()  # the leader is generating
    waiter = asyncio.ensure_future(engine.generate("Describe the water cycle", model.backend))
    await followers.wait()  # the waiter waits for the leader's answer
    leader.cancel()
    model.release.set()
    result = await waiter
    assert result.text == "answer to: Describe the water cycle"
    assert len(model.prompts) == 2


async def test_streaming_yields_deltas_then_the_result(make_engine: EngineFactory) -> None:
    engine: ReuseEngine = make_engine()

    async def streaming_model(prompt: object, params: object) -> AsyncIterator[str]:
        for word in ("Paris ", "is ", "the ", "capital."):
            yield word

    backend = CallableBackend(streaming_model)
    stream = engine.stream("What is the capital of France?", backend)
    deltas = [d async for d in stream]
    assert deltas == ["Paris ", "is ", "the ", "capital."]
    assert stream.result.text == "Paris is the capital."
    await engine.flush()
    again = engine.stream("What is the capital of France?", backend)
    assert [d async for d in again] == ["Paris is the capital."]
    assert again.result.info.kind is ReuseKind.EXACT


async def test_reuse_policy_skips_semantic_but_not_exact(make_engine: EngineFactory) -> None:
    engine: ReuseEngine = make_engine()
    await engine.store("How do I reset my password?", "Use the link.", params={"n": 3})
    assert await engine.lookup("How do I reset my password?", params={"n": 3}) is not None
    decision = await engine.analyze("How can I reset my password?", params={"n": 3})
    assert (decision.kind, decision.info.refused_by) == (ReuseKind.MISS, "n>1")
    await engine.store("Name a prime number", "Seven.", params={"temperature": 1.5})
    hot = await engine.analyze("Give me a prime number", params={"temperature": 1.5})
    assert hot.info.refused_by == "temperature"
    await engine.store("How do I reset my password?", "Use the link.")
    opted_out = await engine.analyze("How can I reset my password?", reuse=False)
    assert (opted_out.kind, opted_out.info.refused_by) == (ReuseKind.MISS, "opt_out")
    assert (await engine.lookup("How do I reset my password?", reuse=False)) is not None


class FailingEmbedder:
    """Injects a fault the real embedder cannot produce on demand: it raises on encode."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.name = real.name
        self.dim = real.dim
        self.fail = False

    def encode(self, texts: Sequence[str]) -> Any:
        if self.fail:
            raise RuntimeError("embedder exploded")
        return self.real.encode(texts)


async def test_failing_embedder_leaves_exact_reuse_working(
    make_engine: EngineFactory, minilm: Any
) -> None:
    broken = FailingEmbedder(minilm)
    engine: ReuseEngine = make_engine(embedder=broken)
    model = CountingModel()
    await engine.generate("How do I reset my password?", model.backend)
    await engine.flush()
    broken.fail = True
    exact = await engine.generate("How do I reset my password?", model.backend)
    assert exact.info.kind is ReuseKind.EXACT
    para = await engine.generate("How can I reset my password?", model.backend)
    assert para.info.kind is ReuseKind.MISS  # generated, not failed
    assert para.text == "answer to: How can I reset my password?"
    assert engine.metrics.counter("errors_total", component="semantic") >= 1
    await engine.flush()  # storing its vector fails too, silently; its exact entry is kept
    assert (await engine.lookup("How can I reset my password?")) is not None


async def test_redis_shares_answers_between_engines(
    make_engine: EngineFactory, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    cache = {"redis_url": redis_url, "redis_prefix": redis_prefix}
    a: ReuseEngine = make_engine(folder=tmp_path / "a", cache=cache)
    b: ReuseEngine = make_engine(folder=tmp_path / "b", cache=cache)
    await a.store("What is Redis?", "An in-memory store.", model="m")
    await a.flush()
    hit = await b.lookup("What is Redis?", model="m")
    assert hit is not None
    assert (hit.info.tier, hit.text) == ("redis", "An in-memory store.")
    await a.cache.clear_all()


async def test_chinese_paraphrase_with_the_multilingual_embedder(
    make_engine: EngineFactory, e5: Any
) -> None:
    engine: ReuseEngine = make_engine(embedder=e5, semantic={"embedder": "e5"})
    await engine.store("怎么重置我的密码？", "在设置页面点击“忘记密码”。")
    hit = await engine.lookup("我的密码怎么重置？")
    assert hit is not None
    assert hit.info.kind is ReuseKind.SEMANTIC
    assert hit.text == "在设置页面点击“忘记密码”。"
    assert await engine.lookup("怎么注销我的账号？") is None


async def test_sync_wrappers(minilm: Any, splitter: Any, tmp_path: Path) -> None:
    from semantic_reuse import HandlerConfig
    from semantic_reuse.defaults import build_search_helper_from

    def run() -> None:
        config = HandlerConfig()
        search = build_search_helper_from(config, minilm, tmp_path / "sync")
        engine = ReuseEngine(config, search=search, splitter=splitter)
        engine.store_sync("What is Redis?", "An in-memory store.")
        hit = engine.lookup_sync("What is Redis?")
        assert hit is not None
        assert hit.text == "An in-memory store."
        engine.run_sync(search.store.aclose())
        engine.close_sync()

    await asyncio.to_thread(run)  # from a thread with no event loop
    run()  # from inside this test's running event loop (a sync callback in an async app)


async def test_bad_input_at_the_api_edge(make_engine: EngineFactory) -> None:
    engine: ReuseEngine = make_engine()
    with pytest.raises(ValueError, match="prompt"):
        await engine.lookup("   ")
    with pytest.raises(TypeError, match="prompt"):
        await engine.lookup(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="namespace"):
        await engine.lookup("What is Redis?", namespace="a b")
    with pytest.raises(TypeError, match="backend"):
        engine.stream("What is Redis?", backend=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="answer"):
        await engine.store("What is Redis?", 3.5)


async def test_key_of_the_engine_is_the_request_hash(make_engine: EngineFactory) -> None:
    engine: ReuseEngine = make_engine()
    key = await engine.store("What is Redis?", CachedAnswer("x"), model="m", namespace="t")
    assert key == ReuseRequest("What is Redis?", model="m", namespace="t").hash_id


async def test_invalidate_clear_and_forget_by_age(make_engine: EngineFactory) -> None:
    engine: ReuseEngine = make_engine()
    await engine.store("What is Redis?", "An in-memory store.", namespace="a")
    await engine.store("What is Qdrant?", "A vector database.", namespace="a")
    await engine.store("What is Redis?", "Tenant b's answer.", namespace="b")
    await engine.invalidate("What is Redis?", namespace="a")
    assert await engine.lookup("What is Redis?", namespace="a") is None
    assert await engine.lookup("What is Qdrant?", namespace="a") is not None
    search = await engine.semantic.get()
    assert search is not None
    for falsy in (None, ""):  # never "every tenant": refused before anything is removed
        with pytest.raises((ValueError, TypeError), match="namespace"):
            await engine.clear(falsy)  # type: ignore[arg-type]
        with pytest.raises((ValueError, TypeError), match="namespace"):
            await search.store.delete_namespace(falsy)  # type: ignore[arg-type]
    assert await engine.lookup("What is Qdrant?", namespace="a") is not None
    await engine.clear("a")
    assert await engine.lookup("What is Qdrant?", namespace="a") is None
    assert await engine.lookup("What is Redis?", namespace="b") is not None
    await engine.cache.memory.clear_all()  # only the durable record is left
    await engine.forget_older_than(3600)
    assert await engine.lookup("What is Redis?", namespace="b") is not None
    await engine.forget_older_than(0)  # everything stored before now
    assert await engine.lookup("What is Redis?", namespace="b") is None
    with pytest.raises(ValueError, match="age_s"):
        await engine.forget_older_than(-1)


RAG_TEMPLATE = (
    "Context information is below.\n---------------------\n{context}\n---------------------\n"
    "Given the context information and not prior knowledge, answer the query.\n"
    "Query: {question}\nAnswer: "
)
RESET_DOC = "To reset an Acme password, open Settings, choose Security and press Reset."
SHIPPING_DOC = "Acme ships orders within two business days from its warehouse in Lyon."


async def test_question_inside_a_template_is_what_is_compared(make_engine: EngineFactory) -> None:
    """Retrieval prompts: compared whole, different questions over the same retrieved text
    can look alike (the text dominates the embedding). With `question`, only the question is
    compared by meaning and the text around it must be equal."""
    engine: ReuseEngine = make_engine()
    model = CountingModel()

    async def ask(context: str, asked: str, **kwargs: Any) -> ReuseKind:
        prompt = RAG_TEMPLATE.format(context=context, question=asked)
        messages = [{"role": "user", "content": prompt}]
        result = await engine.generate(messages, model.backend, **kwargs)
        await engine.flush()
        return result.info.kind

    # The question marked: the paraphrase is reused, the other question is not, and the
    # same question over other retrieved text is not.
    for question, context, expected in [
        ("How do I reset my Acme password?", RESET_DOC, ReuseKind.MISS),
        ("How can I reset my Acme password?", RESET_DOC, ReuseKind.SEMANTIC),
        ("Does resetting my Acme password sign me out?", RESET_DOC, ReuseKind.MISS),
        ("How do I reset my Acme password?", SHIPPING_DOC, ReuseKind.MISS),
    ]:
        assert await ask(context, question, question=question) is expected, question
    with pytest.raises(ValueError, match="question must occur"):
        await ask(RESET_DOC, "How can I reset it?", question="Something else?")


def test_shutdown_from_sync_code_waits_for_the_engines_loop(tmp_path: Path) -> None:
    """`shutdown()` (what `AsyncLLM.shutdown` calls) from a thread other than the one whose
    loop the engine runs on: it closes the engine there, background stores included."""
    import threading

    from semantic_reuse import CallableBackend, HandlerConfig

    config = HandlerConfig(cache={"qdrant_path": tmp_path / "qdrant"})
    engine = ReuseEngine(config)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def model(prompt: object, params: object) -> str:
        return "Use the reset link."

    generate = engine.generate("How do I reset my password?", CallableBackend(model), model="m")
    result = asyncio.run_coroutine_threadsafe(generate, loop).result(60)
    assert result.info.kind is ReuseKind.MISS  # its vector record is written in the background
    engine.shutdown()
    assert engine.closed
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)

    async def look() -> Any:
        async with ReuseEngine(config) as again:
            return await again.lookup("How do I reset my password?", model="m")

    hit = asyncio.run(look())
    assert hit is not None
    assert hit.info.tier == "vector"
