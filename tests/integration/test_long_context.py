"""A long shared context never makes different questions look alike (issue 10, part 1).

The embedders see at most a window of tokens (MiniLM 256, e5 512): compared whole, ~9,500
characters of shared context followed by two different questions embedded to nearly the same
vector, and one question was served the other's answer. Now a long text's trailing question is
what is compared, and the context joins the fingerprint; a text that still does not fit is
reused only exactly. Real MiniLM, real e5, real Qdrant Edge.
"""

from __future__ import annotations

from typing import Any

import pytest

from semantic_reuse import ReuseKind, ReuseRequest
from semantic_reuse.request import QUESTION_MAX_CHARS, trailing_question

pytestmark = pytest.mark.slow

CONTEXT = " ".join(
    f"Item {i} ships from dock {'ABCDEFGH'[i % 8]}, weighs {3 * i + 7} kg and is packed in "
    f"a type-{i % 5} crate."
    for i in range(1, 131)
)
ASKED = "Question: Which dock does item 3 ship from?"
PARAPHRASE = "Question: From which dock does item 3 ship?"
DIFFERENT = ["Question: What is the capital of France?", "Question: Who is the CEO?"]
ANSWER = "Item 3 ships from dock D."


def prompt(question: str, context: str = CONTEXT, separator: str = "\n\n") -> str:
    return f"{context}{separator}{question}"


def test_the_reproduction_is_long() -> None:
    assert len(prompt(ASKED)) > 9_000


@pytest.mark.parametrize("separator", ["\n\n", "\n", " "])
def test_the_trailing_question_is_compared_and_the_context_scopes_it(separator: str) -> None:
    request = ReuseRequest(prompt(ASKED, separator=separator), model="m")
    assert request.semantic_text == ASKED
    other_context = ReuseRequest(prompt(ASKED, CONTEXT.replace("dock A", "dock Z"), separator))
    assert other_context.semantic_text == ASKED
    assert other_context.fingerprint != ReuseRequest(prompt(ASKED, separator=separator)).fingerprint
    same_context = ReuseRequest(prompt(PARAPHRASE, separator=separator), model="m")
    assert same_context.fingerprint == request.fingerprint


def test_short_texts_are_compared_whole() -> None:
    text = "How do I reset my password? I forgot it yesterday and the link expired."
    assert trailing_question(text) is None
    assert ReuseRequest(text).semantic_text == text
    assert trailing_question("x" * (QUESTION_MAX_CHARS + 1)) is None  # no tail to take


def test_a_clause_of_a_long_prompt_keeps_its_context() -> None:
    request = ReuseRequest(prompt("Question: Which dock ships item 3 and what does it weigh?"))
    clause = request.with_text("Which dock ships item 3?")
    assert clause.semantic_text == "Which dock ships item 3?"
    assert CONTEXT in (clause.prompt or "")


@pytest.mark.parametrize("embedder_name", ["minilm", "e5"])
async def test_different_questions_after_a_long_context_are_never_reused(
    make_engine: Any, embedder_name: str, request: pytest.FixtureRequest
) -> None:
    engine = make_engine(embedder=request.getfixturevalue(embedder_name))
    await engine.store(prompt(ASKED), ANSWER, namespace="docs", model="m")
    for question in DIFFERENT:
        for separator in ("\n\n", " "):
            assert await engine.lookup(prompt(question, separator=separator), namespace="docs",
                                       model="m") is None  # fmt: skip
    # The same question over another context is not the same question either.
    other = CONTEXT.replace("Item 3 ships from dock D", "Item 3 ships from dock H")
    assert await engine.lookup(prompt(ASKED, other), namespace="docs", model="m") is None
    # An exact repeat still is.
    hit = await engine.lookup(prompt(ASKED), namespace="docs", model="m")
    assert hit is not None
    assert hit.info.kind is ReuseKind.EXACT


async def test_a_paraphrased_question_after_the_same_context_may_be_reused(
    make_engine: Any,
) -> None:
    engine = make_engine()
    await engine.store(prompt(ASKED), ANSWER, namespace="docs", model="m")
    hit = await engine.lookup(prompt(PARAPHRASE), namespace="docs", model="m")
    assert hit is not None
    assert hit.info.kind is ReuseKind.SEMANTIC
    assert hit.info.matched_prompt == ASKED
    assert hit.text == ANSWER


async def test_a_text_that_does_not_fit_the_window_is_reused_only_exactly(
    make_engine: Any, minilm: Any
) -> None:
    engine = make_engine()
    words = " ".join(f"alpha{i} beta{i} gamma{i}" for i in range(60))  # ~1,300 characters
    question = f"Which of these words are Greek letters: {words}?"
    assert trailing_question(question) is None
    assert not minilm.fits(question)
    paraphrase = question.replace("Which of these words", "What words among these")
    await engine.store(question, "alpha, beta and gamma", namespace="docs", model="m")
    assert await engine.lookup(paraphrase, namespace="docs", model="m") is None
    decision = await engine.analyze(paraphrase, namespace="docs", model="m")
    assert decision.info.refused_by == "too_long"
    hit = await engine.lookup(question, namespace="docs", model="m")
    assert hit is not None
    assert hit.info.kind is ReuseKind.EXACT


async def test_the_langchain_cache_with_a_long_prompt(make_engine: Any) -> None:
    from langchain_core.load import dumps
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
    from langchain_core.outputs import ChatGeneration

    from langchain_semantic_reuse import SemanticReuseCache

    cache = SemanticReuseCache(make_engine(), namespace="docs")
    llm_string = str(sorted({"model_name": "m", "temperature": 0.0, "_type": "chat"}.items()))

    def chat(question: str) -> str:
        messages = [SystemMessage("Answer from the context."), HumanMessage(prompt(question))]
        return dumps(messages)

    await cache.aupdate(chat(ASKED), llm_string, [ChatGeneration(message=AIMessage(ANSWER))])
    for question in DIFFERENT:
        assert await cache.alookup(chat(question), llm_string) is None
    hit = await cache.alookup(chat(PARAPHRASE), llm_string)
    assert hit is not None
    assert hit[0].text == ANSWER
