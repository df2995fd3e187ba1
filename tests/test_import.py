"""`import semantic_reuse` stays light: no vLLM, torch, spaCy or model loading."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("vllm", "torch", "spacy", "sentence_transformers", "qdrant_edge", "qdrant_client",
         "jieba", "langchain_core", "llama_index.core", "redis")  # fmt: skip


def test_import_does_not_load_heavy_packages() -> None:
    code = f"import sys, semantic_reuse;print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_public_api_is_declared() -> None:
    import semantic_reuse

    for name in semantic_reuse.__all__:
        assert hasattr(semantic_reuse, name), name
