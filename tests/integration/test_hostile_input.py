"""Hostile and bad input through the core API (`ReuseEngine`, async and sync), on the real
embedder, Qdrant Edge and splitter: every call returns in time, ends in an answer or a
documented error, and the engine still serves afterwards. Also: each limit refuses with an
error naming it, and what a 2 MB prompt gets (docs/operations.md, Limits)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from semantic_reuse import (
    CachedAnswer,
    CallableBackend,
    ReuseEngine,
    ReuseKind,
    SemanticReuseError,
)
from semantic_reuse.spi import AnswerTooLargeError, InvalidRequestError, InvalidTypeError
from tests.conftest import EngineFactory
from tests.hostile import (
    FUZZ_ENGINE_CONFIG,
    TWO_MB,
    Outcome,
    bounded,
    bounded_blocking,
    component_errors,
    echo_model,
    failure_log,
    fuzz_settings,
    options,
    prompts,
    still_serves,
    texts,
    values,
)


@pytest.fixture
def engine_config() -> dict[str, Any]:
    return FUZZ_ENGINE_CONFIG


class ModelError(Exception):
    """The model's own failure: it propagates unchanged (documented), never stored."""


def answers() -> st.SearchStrategy[Any]:
    """What a caller or a model may hand over as an answer."""
    cached = st.builds(
        CachedAnswer,
        text=texts(),
        metadata=st.one_of(st.just({}), st.dictionaries(texts(big=False), values(), max_size=3)),
        token_ids=st.one_of(st.just(()), st.lists(st.integers(-5, 2**40), max_size=5)),
    )
    return st.one_of(texts(), texts(), cached, values())


class HostileModel:
    """A backend whose answers are drawn: hostile text, an answer object, a wrong type, or
    its own failure."""

    def __init__(self) -> None:
        self.next: Any = "fine"

    async def answer(self, prompt: object, params: object) -> Any:
        if isinstance(self.next, ModelError):
            raise self.next
        return self.next


OPS = ["store", "store_many", "lookup", "lookup_many", "analyze", "generate", "stream",
       "invalidate", "feedback", "forget", "clear"]  # fmt: skip


async def _one(
    engine: ReuseEngine, model: HostileModel, data: st.DataObject, outcome: Outcome
) -> None:
    op = data.draw(st.sampled_from(OPS), label="op")
    prompt = data.draw(prompts(), label="prompt")
    kwargs = data.draw(options(), label="options")
    backend = CallableBackend(model.answer)
    if op == "store":
        answer = data.draw(answers(), label="answer")
        if await bounded(op, lambda: engine.store(prompt, answer, **kwargs), outcome) is not None:
            # Stored: the same request finds it again, exactly (hostile text included).
            hit = await bounded(
                "lookup after store", lambda: engine.lookup(prompt, **kwargs), outcome
            )
            assert hit is not None
            assert hit.info.kind is ReuseKind.EXACT
            assert hit.text == CachedAnswer.from_any(answer).text
    elif op == "store_many":
        items = data.draw(
            st.one_of(st.lists(st.tuples(prompts(), answers()), max_size=3), values())
        )
        await bounded(op, lambda: engine.store_many(items, **kwargs), outcome)
    elif op == "lookup":
        await bounded(op, lambda: engine.lookup(prompt, **kwargs), outcome)
    elif op == "lookup_many":
        many = data.draw(st.one_of(st.lists(prompts(), max_size=3), texts(big=False)))
        await bounded(op, lambda: engine.lookup_many(many, **kwargs), outcome)
    elif op == "analyze":
        await bounded(op, lambda: engine.analyze(prompt, **kwargs), outcome)
    elif op in ("generate", "stream"):
        model.next = data.draw(st.one_of(answers(), st.just(ModelError("model down"))))
        if op == "generate":
            call = lambda: engine.generate(prompt, backend, **kwargs)  # noqa: E731
        else:

            async def call() -> list[str]:
                return [delta async for delta in engine.stream(prompt, backend, **kwargs)]

        try:
            await bounded(op, call, outcome)
        except ModelError:
            outcome.refuse(ModelError())
    elif op == "invalidate":
        await bounded(op, lambda: engine.invalidate(prompt, **kwargs), outcome)
    elif op == "feedback":
        matched = data.draw(st.one_of(texts(big=False), values(), st.just("0" * 32)))
        correct = data.draw(st.one_of(st.booleans(), values()))
        await bounded(op, lambda: engine.feedback(matched, correct), outcome)
    elif op == "forget":
        age = data.draw(st.one_of(st.floats(), values()))
        await bounded(op, lambda: engine.forget_older_than(age), outcome)
    else:
        namespace = data.draw(st.one_of(st.from_regex(r"fz[a-z]{1,5}", fullmatch=True), values()))
        await bounded(op, lambda: engine.clear(namespace), outcome)


@pytest.fixture
def fuzz_engine(make_engine: EngineFactory) -> ReuseEngine:
    return make_engine(**FUZZ_ENGINE_CONFIG)  # type: ignore[no-any-return]


@fuzz_settings()
@given(data=st.data())
async def test_core_api_survives_hostile_input(
    data: st.DataObject, fuzz_engine: ReuseEngine
) -> None:
    """Each example: one async call with hostile arguments, then a normal store and lookup
    (the engine still serves, no component counted a failure)."""
    before = component_errors(fuzz_engine)
    with failure_log() as failures:
        await _one(fuzz_engine, HostileModel(), data, Outcome())
        await still_serves(fuzz_engine, before, failures)


SYNC_OPS = ["store_sync", "lookup_sync", "analyze_sync", "generate_sync", "feedback_sync"]


@fuzz_settings()
@given(data=st.data())
def test_sync_api_survives_hostile_input(data: st.DataObject, sync_engine: ReuseEngine) -> None:
    """The `*_sync` wrappers, called from a plain thread: same contract."""
    op = data.draw(st.sampled_from(SYNC_OPS), label="op")
    prompt = data.draw(prompts(), label="prompt")
    kwargs = data.draw(options(), label="options")
    model = HostileModel()
    model.next = data.draw(answers(), label="model answer")
    if op == "store_sync":
        args: tuple[Any, ...] = (prompt, data.draw(answers(), label="answer"))
    elif op == "generate_sync":
        args = (prompt, CallableBackend(model.answer))
    elif op == "feedback_sync":
        args, kwargs = (data.draw(st.one_of(texts(big=False), values())), False), {}
    else:
        args = (prompt,)
    call = getattr(sync_engine, op)
    before = component_errors(sync_engine)
    with failure_log() as failures:
        bounded_blocking(op, lambda: call(*args, **kwargs), Outcome())
        sync_engine.run_sync(still_serves(sync_engine, before, failures))


# -- the limits, one by one -----------------------------------------------------------------------


@pytest.fixture
def small_limits(make_engine: EngineFactory) -> ReuseEngine:
    limits = {"max_prompt_chars": 1000, "max_messages": 3, "max_params_chars": 200,
              "max_answer_chars": 500}  # fmt: skip
    return make_engine(limits=limits)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("prompt", "kwargs", "error", "names"),
    [
        ("x" * 1001, {}, InvalidRequestError, "limits.max_prompt_chars"),
        (
            [{"role": "user", "content": "x" * 1001}],
            {},
            InvalidRequestError,
            "limits.max_prompt_chars",
        ),
        ([{"role": "user", "content": "hi"}] * 4, {}, InvalidRequestError, "limits.max_messages"),
        ("hi", {"params": {"stop": ["y" * 300]}}, InvalidRequestError, "limits.max_params_chars"),
        (
            "hi",
            {"params": {"temperature": float("nan")}},
            InvalidRequestError,
            "params['temperature']",
        ),
        ("hi", {"params": {"top_p": float("inf")}}, InvalidRequestError, "params['top_p']"),
        ("hi", {"params": {"seed": 10**4000}}, InvalidRequestError, "params['seed']"),
        ("hi", {"params": {"x": object()}}, InvalidTypeError, "params['x']"),
        ("hi \ud800", {}, InvalidRequestError, "prompt is not valid Unicode"),
        (
            [{"role": "user", "content": "\udfff"}],
            {},
            InvalidRequestError,
            "messages[0]['content']",
        ),
        ([{"role": "user", "content": [[[[["x"]]]]] * 1}], {}, None, None),
        ("hi", {"model": "m\ud800"}, InvalidRequestError, "model is not valid Unicode"),
        ("hi", {"model": "m" * 5000}, InvalidRequestError, "model must be at most"),
        ("hi", {"namespace": "a" * 129}, InvalidRequestError, "namespace"),
        ("hi", {"namespace": "tenant a"}, InvalidRequestError, "namespace"),
        ("hi", {"namespace": "x\x00"}, InvalidRequestError, "namespace"),
        ("hi", {"threshold": float("nan")}, InvalidRequestError, "threshold"),
        ("hi", {"question": "not in it"}, InvalidRequestError, "question"),
        (42, {}, InvalidTypeError, "prompt"),
    ],
)
async def test_each_limit_refuses_with_an_error_naming_it(
    small_limits: ReuseEngine, prompt: Any, kwargs: dict[str, Any], error: type[Exception] | None,
    names: str | None,
) -> None:  # fmt: skip
    backend = CallableBackend(echo_model)
    if error is None:  # within every limit: served
        assert (await small_limits.generate(prompt, backend, **kwargs)).text
        return
    for call in (
        lambda: small_limits.lookup(prompt, **kwargs),
        lambda: small_limits.store(prompt, "an answer", **kwargs),
        lambda: small_limits.generate(prompt, backend, **kwargs),
    ):
        with pytest.raises(error) as caught:
            await call()
        assert names is not None
        assert names in str(caught.value)
        assert isinstance(caught.value, SemanticReuseError)


async def test_clear_without_a_namespace_is_refused_and_clears_nothing(
    small_limits: ReuseEngine,
) -> None:
    """Found by the fuzzing: `clear(None)` reached the tiers, which read None as every
    tenant, and the vector store, which counted the refusal as its own failure."""
    await small_limits.store("What is kept?", "Everything.", namespace="tenant-a")
    for namespace in (None, "", 7):
        with pytest.raises((InvalidRequestError, InvalidTypeError), match="namespace"):
            await small_limits.clear(namespace)  # type: ignore[arg-type]
    hit = await small_limits.lookup("What is kept?", namespace="tenant-a")
    assert hit is not None
    assert not small_limits.stats()["counters"].get("errors_total")


async def test_nesting_deeper_than_the_limit_is_refused_not_a_recursion_error(
    small_limits: ReuseEngine,
) -> None:
    content: Any = "x"
    for _ in range(10_000):
        content = [content]
    with pytest.raises(InvalidRequestError, match="nested more than 32 levels"):
        await small_limits.lookup([{"role": "user", "content": content}])


NAN = float("nan")
ANSWERS = [
    ("y" * 501, AnswerTooLargeError, "limits.max_answer_chars"),
    (CachedAnswer("ok", metadata={"m": "z" * 600}), AnswerTooLargeError, "max_answer_chars"),
    (CachedAnswer("ok", token_ids=tuple(range(600))), AnswerTooLargeError, "max_answer_chars"),
    ("bad \ud800", InvalidRequestError, "answer text is not valid Unicode"),
    (CachedAnswer("ok", metadata={"m": {"n": object()}}), InvalidTypeError, "['m']['n']: not JSON"),
    (CachedAnswer("ok", metadata={"m": NAN}), InvalidRequestError, "metadata['m']: nan is not"),
    (CachedAnswer("ok", metadata={"m": b"bytes"}), InvalidTypeError, "not JSON data: a bytes"),
    (CachedAnswer("ok", metadata={1: "x"}), InvalidTypeError, "a key must be a str"),
    (CachedAnswer("ok", token_ids=(-1,)), InvalidRequestError, "token_ids must be ints"),
    (CachedAnswer("ok", usage={"n": "7"}), InvalidTypeError, "usage must map names to ints"),
    (CachedAnswer("ok", created_at=NAN), InvalidRequestError, "created_at"),
    (CachedAnswer("ok", metadata={"m": [1, 2.5, None, {"k": "v"}]}), None, None),
]


@pytest.mark.parametrize(("answer", "error", "names"), ANSWERS)
async def test_answers_above_the_limit_are_refused_by_store(
    small_limits: ReuseEngine, answer: Any, error: type[Exception] | None, names: str | None
) -> None:
    if error is None:
        await small_limits.store("What is it?", answer)
        assert await small_limits.lookup("What is it?") is not None
        return
    assert names is not None
    with pytest.raises(error) as caught:
        await small_limits.store("What is it?", answer)
    assert names in str(caught.value)
    assert await small_limits.lookup("What is it?") is None


async def test_a_generated_answer_above_the_limit_is_served_not_stored(
    small_limits: ReuseEngine,
) -> None:
    async def verbose(prompt: object, params: object) -> str:
        return "word " * 200  # 1,000 characters, above max_answer_chars (500)

    backend = CallableBackend(verbose)
    result = await small_limits.generate("Tell me everything.", backend)
    assert result.text == "word " * 200
    await small_limits.flush()
    assert await small_limits.lookup("Tell me everything.") is None
    counters = small_limits.stats()["counters"]
    assert counters["not_stored_total"] == {"reason=too_large": 2.0}  # exact and vector writes


async def test_a_two_megabyte_prompt_is_served_reused_exactly_and_never_embedded(
    make_engine: EngineFactory,
) -> None:
    """2 MB is within the default limit (4M characters, ~1M tokens): long-context models take
    such prompts, and the reuse layer must not be what refuses them. It costs a hash and a
    few scans of the text: no embedding (past 8,192 characters nothing is compared by
    meaning), no clause split (past 500), so only an identical prompt is reused."""
    engine = make_engine()
    calls: list[int] = []

    async def model(prompt: object, params: object) -> str:
        calls.append(1)
        return "a long answer"

    backend = CallableBackend(model)
    document = "lorem ipsum dolor sit amet " * (TWO_MB // 27)  # no trailing question
    first = await engine.generate(document, backend)
    assert first.info.kind is ReuseKind.MISS
    assert first.info.refused_by == "too_long"  # not compared by meaning
    await engine.flush()
    again = await engine.generate(document, backend)
    assert again.info.kind is ReuseKind.EXACT
    assert len(calls) == 1
    other = await engine.generate(document + " different", backend)
    assert other.info.kind is ReuseKind.MISS
    assert len(calls) == 2
    # The durable record of the long prompt is exact-only: it survives the memory tier.
    await engine.cache.memory.clear_all()
    assert (await engine.lookup(document)) is not None
    await still_serves(engine)
