"""The public API is small and cheap to import; integrations and examples use only it and the SPI.

`import semantic_reuse` loads its own `__init__` and nothing of the library; each public name
loads its module on first use. `make lint` (import-linter, pyproject.toml) checks the layers;
these tests check what a process actually loads.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import subprocess
import sys
from collections.abc import Mapping
from types import ModuleType

import pytest

import semantic_reuse
import semantic_reuse.spi
from tests import REPO_ROOT

ROOT = REPO_ROOT

#: Heavy third-party packages, by top-level name.
HEAVY = ("vllm", "torch", "spacy", "langchain_core", "langchain", "llama_index",
         "pydantic_settings", "pydantic", "sentence_transformers", "qdrant_client", "qdrant_edge",
         "redis", "numpy", "jieba", "onnxruntime", "transformers", "openai")  # fmt: skip
# loguru is imported: `import semantic_reuse` disables the library's logger (loguru's convention).
#: What must stay unloaded even once the engine is imported.
ENGINE_NEVER = ("vllm", "torch", "spacy", "langchain_core", "langchain", "llama_index",
                "sentence_transformers", "qdrant_client", "qdrant_edge", "onnxruntime",
                "transformers", "openai", "jieba")  # fmt: skip

PUBLIC = {
    "Backend", "CachedAnswer", "CallableBackend", "ClauseOutcome", "Completion",
    "EnhancedAsyncLLM", "GenerationParams", "HandlerConfig", "OpenAICompatibleClient",
    "ReuseClient", "ReuseConfig", "ReuseDecision", "ReuseEngine", "ReuseHit", "ReuseInfo",
    "ReuseKind", "ReuseOptions", "ReuseRequest", "ReuseResult", "ReuseStream",
    "SemanticReuseError", "VLLMClient", "__version__",
}  # fmt: skip


def _loaded_after(statement: str) -> dict[str, list[str]]:
    """The top-level packages (and semantic_reuse modules) a fresh interpreter has loaded after
    running `statement`."""
    code = (
        f"import sys\n{statement}\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('semantic_reuse'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    roots, ours = out.stdout.splitlines()
    return {"roots": roots.split(), "ours": ours.split()}


def test_import_loads_nothing_heavy_and_nothing_of_the_library() -> None:
    loaded = _loaded_after("import semantic_reuse")
    assert [name for name in HEAVY if name in loaded["roots"]] == []
    assert loaded["ours"] == ["semantic_reuse", "semantic_reuse._lazy"]  # the loader alone


def test_importing_the_spi_loads_nothing_either() -> None:
    loaded = _loaded_after("import semantic_reuse.spi")
    assert [name for name in HEAVY if name in loaded["roots"]] == []
    assert loaded["ours"] == ["semantic_reuse", "semantic_reuse._lazy", "semantic_reuse.spi"]


def test_the_engine_loads_no_model_or_framework() -> None:
    loaded = _loaded_after("from semantic_reuse import ReuseEngine, HandlerConfig, ReuseRequest")
    assert "semantic_reuse.engine" in loaded["ours"]
    assert [name for name in ENGINE_NEVER if name in loaded["roots"]] == []
    assert not any(m.startswith(("semantic_reuse.vllm", "semantic_reuse.clients",
                                 "semantic_reuse.tools")) for m in loaded["ours"])  # fmt: skip


def test_the_public_api_is_the_agreed_small_set() -> None:
    assert set(semantic_reuse.__all__) == PUBLIC
    assert len(semantic_reuse.__all__) == len(PUBLIC)  # no duplicates
    assert set(dir(semantic_reuse)) >= PUBLIC
    assert "importlib" not in dir(semantic_reuse)
    assert set(dir(semantic_reuse.spi)) >= set(semantic_reuse.spi.__all__)
    assert not set(semantic_reuse.__all__) & set(semantic_reuse.spi.__all__)


@pytest.mark.parametrize("module", [semantic_reuse, semantic_reuse.spi], ids=lambda m: m.__name__)
def test_every_declared_name_resolves_to_its_module(module: ModuleType) -> None:
    table: Mapping[str, str] = module._MODULES
    names: list[str] = module.__all__
    assert set(table) == set(names) - {"__version__"}
    for name in names:
        target = table.get(name)
        value = getattr(module, name)
        if target is not None:
            assert value is getattr(importlib.import_module(target), name), name


@pytest.mark.parametrize("module", [semantic_reuse, semantic_reuse.spi], ids=lambda m: m.__name__)
def test_an_unknown_name_is_an_attribute_error(module: ModuleType) -> None:
    with pytest.raises(AttributeError, match="no attribute 'MemoryTierX'"):
        _ = module.MemoryTierX
    with pytest.raises(ImportError, match="MemoryTierX"):
        exec(f"from {module.__name__} import MemoryTierX", {})


def test_internals_are_not_public() -> None:
    for name in ("MemoryTier", "AnswerCodec", "CircuitBreaker", "HomeLoop", "Metrics"):
        assert not hasattr(semantic_reuse, name), name
        assert hasattr(semantic_reuse.spi, name), name


def _imported_modules(source: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _examples() -> list[tuple[str, str]]:
    """The cookbook's scripts and every Python block of the README and docs."""
    examples = [(str(p.relative_to(ROOT)), p.read_text()) for p in ROOT.glob("cookbook/*.py")]
    for doc in [ROOT / "README.md", *ROOT.glob("docs/*.md")]:
        for i, block in enumerate(re.findall(r"```python\n(.*?)```", doc.read_text(), re.S)):
            examples.append((f"{doc.relative_to(ROOT)}#{i}", block))
    return examples


def test_examples_use_only_the_public_api_and_the_spi() -> None:
    examples = _examples()
    assert any(name.startswith("cookbook/") for name, _ in examples)
    assert any(name.startswith("README.md#") for name, _ in examples)
    used = {
        (name, module)
        for name, source in examples
        for module in _imported_modules(source)
        if module.split(".")[0] == "semantic_reuse"
    }
    assert {module for _, module in used} >= {"semantic_reuse"}
    assert {(n, m) for n, m in used if m not in ("semantic_reuse", "semantic_reuse.spi")} == set()


def test_the_import_check_sees_an_internal_import() -> None:
    source = "from semantic_reuse.request import x\nimport semantic_reuse.vllm\nfrom . import y"
    assert _imported_modules(source) == {"semantic_reuse.request", "semantic_reuse.vllm"}
