"""Benchmarks that ship with the package: `semantic-reuse bench ...`."""

from __future__ import annotations

import os
from pathlib import Path

#: Where the benches find their evaluation data (the pair files and compound_dev.jsonl) unless
#: told otherwise: `../shared/datasets`, beside the checkout, from the repository's root.
#: `$SEMANTIC_REUSE_DATASETS` replaces it; each command's `--datasets` (or `--pairs`,
#: `--queries`) replaces both. Only the benches read it: the tests write their own files.
DEFAULT_DATASETS = Path("..") / "shared" / "datasets"
DATASETS_ENV = "SEMANTIC_REUSE_DATASETS"


def default_datasets() -> Path:
    """`$SEMANTIC_REUSE_DATASETS`, else `DEFAULT_DATASETS`."""
    if folder := os.environ.get(DATASETS_ENV):
        return Path(folder)
    return DEFAULT_DATASETS


#: What `bench speed` can compare: the default engine (`edge`), the same without the verifier
#: (`edge-cosine`), with MiniLM on float ONNX Runtime or PyTorch, the engine over
#: qdrant-client's local mode, and GPTCache.
SPEED_SYSTEMS = ("edge", "edge-cosine", "edge-onnx", "edge-torch", "qdrant-local", "gptcache")
