"""LlamaIndex integration for semantic-reuse: an LLM class (see docs/llamaindex.md)."""

from llama_index.llms.semantic_reuse.base import SemanticReuseLLM

__all__: list[str] = ["SemanticReuseLLM"]
