"""The bundled English verifier, for real: its file, its error budget, and the engine with it on."""

from __future__ import annotations

from typing import Any

import pytest

from semantic_reuse.errors import ConfigurationError, InvalidRequestError
from semantic_reuse.semantic.verify import Verifier

PARAPHRASE = ("How can I reset my password?", "How do I reset my password?")
# QQP's kind of hard negative: the same topic, a narrower question.
NARROWER = ("How do I learn Python fast for data science?", "How do I learn Python?")


@pytest.fixture(scope="module")
def verifier() -> Verifier:
    return Verifier.bundled("en")


def test_bundled_file_carries_its_card_and_budget(verifier: Verifier) -> None:
    card = verifier.card
    assert card["embedder"] == "minilm-l6-v2-int8"
    assert card["figures"]["train_pairs"] > 60_000
    # A tighter budget never asks for a lower probability.
    thresholds = [verifier.threshold_for(b) for b in (0.05, 0.1, 0.2, 0.3)]
    assert thresholds == sorted(thresholds, reverse=True)
    assert verifier.threshold_for(None) == verifier.threshold_for(verifier.default_error_rate)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, True, "0.1"])
def test_a_budget_outside_zero_one_names_the_argument(verifier: Verifier, bad: Any) -> None:
    with pytest.raises(InvalidRequestError, match="max_error_rate"):
        verifier.threshold_for(bad)


def test_an_unknown_language_or_file_is_a_clear_error(tmp_path: Any) -> None:
    with pytest.raises(InvalidRequestError, match="language"):
        Verifier.bundled("fr")
    broken = tmp_path / "v.json"
    broken.write_text('{"format": "something-else"}')
    with pytest.raises(ConfigurationError, match="format"):
        Verifier.from_file(broken)


def test_a_paraphrase_outscores_a_narrower_question(verifier: Verifier, minilm: Any) -> None:
    def probability(pair: tuple[str, str]) -> float:
        a, b = minilm.encode(list(pair))
        return float(verifier.probabilities(pair[0], [(pair[1], float(a @ b))])[0])

    paraphrase, narrower = probability(PARAPHRASE), probability(NARROWER)
    assert paraphrase >= verifier.threshold_for(0.2) > narrower
    # Below the floor nothing is scored (and nothing can be served).
    assert verifier.probabilities(PARAPHRASE[0], [(PARAPHRASE[1], 0.1)]).tolist() == [0.0]


async def test_engine_with_the_verifier_serves_paraphrases_and_refuses_the_narrower(
    make_engine: Any,
) -> None:
    engine = make_engine(semantic={"verifier": "bundled"})
    await engine.store(PARAPHRASE[1], "Use the 'Forgot password' link.")
    await engine.store(NARROWER[1], "Start with the official tutorial.")
    await engine.flush()
    hit = await engine.lookup(PARAPHRASE[0])
    assert hit is not None
    assert hit.info.kind.value == "semantic"
    assert hit.answer.text == "Use the 'Forgot password' link."
    decision = await engine.analyze(NARROWER[0])
    assert decision.kind.value == "miss"
    assert decision.info.refused_by == "unverified"


async def test_wrong_feedback_withdraws_an_entry_from_paraphrase_reuse_only(
    make_engine: Any,
) -> None:
    engine = make_engine()
    await engine.store(PARAPHRASE[1], "Use the 'Forgot password' link.")
    await engine.flush()
    hit = await engine.lookup(PARAPHRASE[0])
    assert hit is not None
    assert hit.info.kind.value == "semantic"
    assert hit.info.matched_id is not None

    assert await engine.feedback(hit.info.matched_id, False) is True
    assert await engine.lookup(PARAPHRASE[0]) is None  # no longer served as a paraphrase
    exact = await engine.lookup(PARAPHRASE[1])  # still the answer to its own question
    assert exact is not None
    assert exact.info.kind.value == "exact"
    assert await engine.feedback(hit.info.matched_id, False) is True  # idempotent
    assert await engine.feedback("no-such-entry", False) is False
    assert await engine.feedback("no-such-entry", True) is True  # a right report is counted
    counts = engine.stats()["counters"]["feedback_total"]
    assert counts == {"verdict=wrong": 3.0, "verdict=right": 1.0}


async def test_feedback_arguments_are_checked(make_engine: Any) -> None:
    from semantic_reuse.errors import InvalidTypeError

    engine = make_engine()
    with pytest.raises(InvalidRequestError, match="matched_id"):
        await engine.feedback("", False)
    with pytest.raises(InvalidTypeError, match="correct"):
        await engine.feedback("abc", "no")


def test_the_chinese_verifier_reads_e5_cosines(e5: Any) -> None:
    verifier = Verifier.bundled("zh")
    assert verifier.card["embedder"] == "multilingual-e5-small-q4"

    def probability(pair: tuple[str, str]) -> float:
        a, b = e5.encode(list(pair))
        return float(verifier.probabilities(pair[0], [(pair[1], float(a @ b))])[0])

    same = probability(("怎么重置我的密码？", "如何重置我的密码？"))
    narrower = probability(("如何快速学习Python数据分析？", "如何学习Python？"))
    assert same > narrower


# A paraphrase the verifier scores ~0.8 (the bundled English file): served at the default
# budget (0.2: p >= 0.67), refused at 0.1 (p >= 0.92).
BORDERLINE = ("What is the capital of France?", "Which city is the capital of France?")


async def test_a_per_request_error_budget_moves_the_verifier_bar(make_engine: Any) -> None:
    from semantic_reuse import CallableBackend

    engine = make_engine(semantic={"verifier": "bundled"})
    await engine.store(BORDERLINE[1], "Paris.")
    await engine.store(PARAPHRASE[1], "Use the 'Forgot password' link.")
    await engine.flush()

    served = await engine.analyze(BORDERLINE[0])
    assert served.kind.value == "semantic"
    assert served.answer is not None
    assert served.answer.text == "Paris."
    tight = await engine.analyze(BORDERLINE[0], max_error_rate=0.05)
    assert tight.kind.value == "miss"
    assert tight.info.refused_by == "unverified"
    # The budget is this request's only: the next request has the configured one again.
    assert (await engine.analyze(BORDERLINE[0])).kind.value == "semantic"
    # A tight budget still serves what the verifier is sure of.
    sure = await engine.lookup(PARAPHRASE[0], max_error_rate=0.05)
    assert sure is not None
    assert sure.info.kind.value == "semantic"

    # Through generate: the tight budget generates (the model is called), the default reuses.
    calls: list[str] = []

    async def model(prompt: Any, params: Any) -> str:
        calls.append(prompt)
        return "Paris, on the Seine."

    backend = CallableBackend(model)
    generated = await engine.generate(BORDERLINE[0], backend, max_error_rate=0.05)
    assert generated.info.kind.value == "miss"
    assert calls == [BORDERLINE[0]]


async def test_a_per_request_budget_reaches_the_clauses(make_engine: Any) -> None:
    engine = make_engine(semantic={"verifier": "bundled"})
    await engine.store(BORDERLINE[1], "Paris.")
    await engine.store("What is Redis?", "An in-memory data store.")
    await engine.flush()
    compound = "What is the capital of France and what is Redis?"
    loose = await engine.analyze(compound)
    assert loose.kind.value == "composed"
    tight = await engine.analyze(compound, max_error_rate=0.05)
    assert tight.kind.value == "partial"  # the France clause is generated, Redis reused
    france, redis = tight.info.clauses
    assert (france.kind.value, redis.kind.value) == ("miss", "exact")
    assert france.probability is not None
    assert france.probability < 0.9


@pytest.mark.parametrize(
    ("bad", "error"),
    [(0.0, "max_error_rate"), (1.0, "max_error_rate"), (float("nan"), "max_error_rate"),
     (True, "max_error_rate"), ("0.1", "max_error_rate")],
)  # fmt: skip
async def test_a_bad_per_request_budget_names_itself(
    make_engine: Any, bad: Any, error: str
) -> None:
    engine = make_engine()
    with pytest.raises((InvalidRequestError, TypeError), match=error):
        await engine.analyze("What is Redis?", max_error_rate=bad)
    with pytest.raises(InvalidRequestError, match="exclusive"):
        await engine.analyze("What is Redis?", max_error_rate=0.1, threshold=0.9)
