"""EnhancedAsyncLLM on the real vLLM CPU engine serving the default SmolLM2 model."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from vllm import SamplingParams
from vllm.sampling_params import RequestOutputKind
from vllm.v1.engine.async_llm import AsyncLLM

from semantic_reuse import ReuseKind, ReuseRequest
from semantic_reuse.vllm import CustomRequestOutput, EnhancedAsyncLLM, reuse_info

# Every test here runs on the session's vLLM engine (about a minute to start on a CPU).
pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]


def greedy(max_tokens: int = 24, kind: RequestOutputKind = RequestOutputKind.CUMULATIVE) -> Any:
    return SamplingParams(temperature=0.0, max_tokens=max_tokens, output_kind=kind)


def rid() -> str:
    return uuid.uuid4().hex[:12]


def chat(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


async def collect(stream: Any) -> list[Any]:
    return [out async for out in stream]


async def test_is_a_drop_in_async_llm(enhanced_llm: EnhancedAsyncLLM) -> None:
    assert isinstance(enhanced_llm, AsyncLLM)
    assert isinstance(enhanced_llm, EnhancedAsyncLLM)


async def test_miss_then_exact_hit_with_the_same_text_and_tokens(
    enhanced_llm: EnhancedAsyncLLM,
) -> None:
    question = chat("What is the capital of France?")
    first = await collect(enhanced_llm.generate_chat(question, greedy(), "q-first"))
    miss = first[-1]
    assert miss.finished
    assert miss.request_id == "q-first"
    assert reuse_info(miss) is not None
    assert reuse_info(miss).kind is ReuseKind.MISS  # type: ignore[union-attr]
    assert not isinstance(miss, CustomRequestOutput)  # vLLM's own output
    assert miss.outputs[0].text.strip()
    await enhanced_llm.reuse_engine.flush()

    again = await collect(enhanced_llm.generate_chat(question, greedy(), "q-again"))
    hit = again[-1]
    assert isinstance(hit, CustomRequestOutput)
    assert hit.request_id == "q-again"
    assert hit.finished
    assert hit.reuse.kind is ReuseKind.EXACT
    assert hit.outputs[0].text == miss.outputs[0].text
    assert list(hit.outputs[0].token_ids) == list(miss.outputs[0].token_ids)
    assert hit.outputs[0].finish_reason == miss.outputs[0].finish_reason
    assert hit.reuse.generated_tokens == 0  # nothing reached the model


async def test_paraphrase_is_a_semantic_hit(enhanced_llm: EnhancedAsyncLLM) -> None:
    original = await collect(
        enhanced_llm.generate_chat(chat("How do I reset my password?"), greedy(), rid())
    )
    await enhanced_llm.reuse_engine.flush()
    para = await collect(
        enhanced_llm.generate_chat(chat("How can I reset my password?"), greedy(), rid())
    )
    assert para[-1].reuse.kind is ReuseKind.SEMANTIC
    assert para[-1].outputs[0].text == original[-1].outputs[0].text


async def test_delta_streaming_of_a_hit_and_final_only(enhanced_llm: EnhancedAsyncLLM) -> None:
    question = chat("Name three primary colours.")
    full = await collect(enhanced_llm.generate_chat(question, greedy(32), rid()))
    text = full[-1].outputs[0].text
    await enhanced_llm.reuse_engine.flush()

    deltas = await collect(
        enhanced_llm.generate_chat(question, greedy(32, RequestOutputKind.DELTA), rid())
    )
    assert all(isinstance(d, CustomRequestOutput) for d in deltas)
    assert len(deltas) > 1  # chunks of 4 tokens (hit_stream_chunk_tokens)
    assert "".join(d.outputs[0].text for d in deltas) == text
    assert [d.finished for d in deltas] == [False] * (len(deltas) - 1) + [True]

    cumulative = await collect(enhanced_llm.generate_chat(question, greedy(32), rid()))
    assert len(cumulative) > 1
    assert cumulative[-1].outputs[0].text == text
    assert all(text.startswith(c.outputs[0].text) for c in cumulative)

    final = await collect(
        enhanced_llm.generate_chat(question, greedy(32, RequestOutputKind.FINAL_ONLY), rid())
    )
    assert len(final) == 1
    assert final[0].finished
    assert final[0].outputs[0].text == text


async def test_cancelling_a_miss_mid_stream_aborts_and_stores_nothing(
    enhanced_llm: EnhancedAsyncLLM,
) -> None:
    question = chat("Write a long story about a dragon who learns to bake bread.")
    stream = enhanced_llm.generate_chat(question, greedy(200, RequestOutputKind.DELTA), rid())
    seen = 0
    async for _ in stream:
        seen += 1
        if seen == 3:
            break
    await stream.aclose()
    await enhanced_llm.reuse_engine.flush()
    assert enhanced_llm.get_num_unfinished_requests() == 0
    decision = await enhanced_llm.reuse_engine.analyze(
        question, model=str(enhanced_llm.model_config.model), params=greedy(200)
    )
    assert decision.answer is None  # the truncated answer was not stored


async def test_abort_stops_a_streaming_hit(enhanced_llm: EnhancedAsyncLLM) -> None:
    question = chat("What is the boiling point of water at sea level?")
    await collect(enhanced_llm.generate_chat(question, greedy(40), rid()))
    await enhanced_llm.reuse_engine.flush()
    request_id = rid()
    outputs = []
    async for out in enhanced_llm.generate_chat(
        question, greedy(40, RequestOutputKind.DELTA), request_id
    ):
        outputs.append(out)
        if len(outputs) == 1:
            await enhanced_llm.abort(request_id)
    assert isinstance(outputs[0], CustomRequestOutput)
    assert len(outputs) == 1
    assert not outputs[-1].finished


async def test_concurrent_mixed_requests(enhanced_llm: EnhancedAsyncLLM) -> None:
    known = "What is the largest planet in the solar system?"
    await collect(enhanced_llm.generate_chat(chat(known), greedy(), rid()))
    await enhanced_llm.reuse_engine.flush()
    questions = (
        [known] * 4
        + ["Which planet in the solar system is the largest?"] * 4
        + [f"Give me a fun fact about the number {n}." for n in range(4)]
        + ["What colour is the sky on a clear day?"] * 4
    )
    results = await asyncio.gather(
        *(collect(enhanced_llm.generate_chat(chat(q), greedy(), rid())) for q in questions)
    )
    kinds = [r[-1].reuse.kind for r in results]
    assert all(r[-1].finished for r in results)
    assert kinds[:4] == [ReuseKind.EXACT] * 4
    assert kinds[4:8] == [ReuseKind.SEMANTIC] * 4
    assert all(k is ReuseKind.MISS for k in kinds[8:12])  # numbers differ: guard refuses
    # Identical new questions at once: one generates, the others share its answer.
    sky = [r[-1] for r in results[12:]]
    assert [k for k in kinds[12:] if k is ReuseKind.MISS] == [ReuseKind.MISS]
    assert len({o.outputs[0].text for o in sky}) == 1


async def test_compound_prompt_reuses_known_clauses(enhanced_llm: EnhancedAsyncLLM) -> None:
    await collect(enhanced_llm.generate_chat(chat("What is Redis?"), greedy(), rid()))
    await enhanced_llm.reuse_engine.flush()
    outs = await collect(
        enhanced_llm.generate_chat(
            chat("What is Redis and how does photosynthesis work?"), greedy(), rid()
        )
    )
    info = outs[-1].reuse
    assert info.kind is ReuseKind.PARTIAL
    assert [c.kind for c in info.clauses] == [ReuseKind.EXACT, ReuseKind.MISS]
    assert outs[-1].finished
    assert "\n\n" in outs[-1].outputs[0].text
    await enhanced_llm.reuse_engine.flush()
    alone = await collect(
        enhanced_llm.generate_chat(chat("How does photosynthesis work?"), greedy(), rid())
    )
    assert alone[-1].reuse.kind is ReuseKind.EXACT  # the generated clause was stored


async def test_reuse_disabled_equals_plain_async_llm(enhanced_llm: EnhancedAsyncLLM) -> None:
    prompt = "The three laws of motion are"
    features = enhanced_llm.handler_config.features
    features.enable_exact_cache = features.enable_semantic_reuse = False
    try:
        ours = await collect(enhanced_llm.generate(prompt, greedy(), rid()))
    finally:
        features.enable_exact_cache = features.enable_semantic_reuse = True
    plain = await collect(AsyncLLM.generate(enhanced_llm, prompt, greedy(), rid()))
    assert ours[-1].outputs[0].text == plain[-1].outputs[0].text
    assert list(ours[-1].outputs[0].token_ids) == list(plain[-1].outputs[0].token_ids)
    assert reuse_info(ours[-1]) is None


async def test_tenants_never_share(enhanced_llm: EnhancedAsyncLLM) -> None:
    question = chat("What is our refund policy?")
    await collect(enhanced_llm.generate_chat(question, greedy(), rid(), namespace="tenant-a"))
    await enhanced_llm.reuse_engine.flush()
    other = await collect(
        enhanced_llm.generate_chat(question, greedy(), rid(), namespace="tenant-b")
    )
    assert other[-1].reuse.kind is ReuseKind.MISS


async def test_token_and_dict_prompts(enhanced_llm: EnhancedAsyncLLM) -> None:
    tokenizer = enhanced_llm.get_tokenizer()
    text = tokenizer.apply_chat_template(
        chat("What is the tallest mountain on Earth?"), tokenize=False, add_generation_prompt=True
    )
    ids = list(tokenizer.encode(text, add_special_tokens=False))
    first = await collect(enhanced_llm.generate({"prompt_token_ids": ids}, greedy(), rid()))
    assert first[-1].reuse.kind is ReuseKind.MISS
    await enhanced_llm.reuse_engine.flush()
    again = await collect(enhanced_llm.generate({"prompt_token_ids": ids}, greedy(), rid()))
    assert again[-1].reuse.kind is ReuseKind.EXACT
    assert list(again[-1].outputs[0].token_ids) == list(first[-1].outputs[0].token_ids)
    as_dict = await collect(enhanced_llm.generate({"prompt": text}, greedy(), rid()))
    assert as_dict[-1].outputs[0].text == first[-1].outputs[0].text


async def test_abort_of_a_generating_miss(enhanced_llm: EnhancedAsyncLLM) -> None:
    question = chat("Tell me a long tale about a lighthouse keeper and a storm.")
    request_id = rid()
    outputs = []
    async for out in enhanced_llm.generate_chat(
        question, greedy(200, RequestOutputKind.DELTA), request_id
    ):
        outputs.append(out)
        if len(outputs) == 2:
            await enhanced_llm.abort(request_id)
    assert outputs[-1].finished
    assert outputs[-1].outputs[0].finish_reason == "abort"
    await enhanced_llm.reuse_engine.flush()
    model = str(enhanced_llm.model_config.model)
    key = ReuseRequest(messages=question, model=model, params=greedy(200)).hash_id
    assert outputs[-1].reuse.hash_id == key  # the lookup below is of this very request
    decision = await enhanced_llm.reuse_engine.analyze(question, model=model, params=greedy(200))
    assert decision.answer is None  # an aborted answer is never stored


LONG_CONTEXT = " ".join(
    f"Item {i} ships from dock {'ABCDEFGH'[i % 8]} and weighs {3 * i + 7} kg." for i in range(1, 41)
)


@pytest.mark.parametrize("as_chat", [True, False])
async def test_different_questions_after_a_long_context_are_not_reused(
    enhanced_llm: EnhancedAsyncLLM, as_chat: bool
) -> None:
    """The context is longer than MiniLM's window: compared whole, the two prompts looked
    the same and the second was served the first's answer."""
    tokenizer = enhanced_llm.get_tokenizer()

    def ask(question: str) -> Any:
        text = f"{LONG_CONTEXT}\n\nQuestion: {question}"
        if as_chat:
            return enhanced_llm.generate_chat(chat(text), greedy(8), rid())
        prompt = tokenizer.apply_chat_template(
            chat(text), tokenize=False, add_generation_prompt=True
        )
        return enhanced_llm.generate(prompt, greedy(8), rid())

    first = await collect(ask("Which dock does item 3 ship from?"))
    assert first[-1].reuse.kind is ReuseKind.MISS
    await enhanced_llm.reuse_engine.flush()
    for question in ("What is the capital of France?", "Who is the CEO?"):
        other = await collect(ask(question))
        assert other[-1].reuse.kind is ReuseKind.MISS
    again = await collect(ask("Which dock does item 3 ship from?"))
    assert again[-1].reuse.kind is ReuseKind.EXACT


async def test_a_subclass_runs_the_one_pipeline_through_its_hooks(
    enhanced_llm: EnhancedAsyncLLM,
) -> None:
    """A subclass that overrides `generate` and a seed hook: clause sub-requests go to vLLM
    directly (not back into reuse), and each step is called once per request."""
    calls: list[str] = []

    class Audited(EnhancedAsyncLLM):
        async def generate(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            calls.append("generate")
            async for out in super().generate(*args, **kwargs):
                yield out

        async def _check_cache(self, request: Any, options: Any) -> Any:
            calls.append("check")
            return await super()._check_cache(request, options)

        def _do_cache_update(self, decision: Any, result: Any) -> None:
            calls.append("store_exact")
            super()._do_cache_update(decision, result)

    question = chat("What is the boiling point of water and who painted the Mona Lisa?")
    original = enhanced_llm.__class__
    enhanced_llm.__class__ = Audited  # the session's engine, seen through a subclass
    try:
        outputs = await collect(enhanced_llm.generate_chat(question, greedy(16), rid()))
    finally:
        enhanced_llm.__class__ = original
    assert outputs[-1].finished
    assert outputs[-1].reuse.clauses  # generated clause by clause, as sub-requests
    assert calls == ["generate", "check", "store_exact"]
