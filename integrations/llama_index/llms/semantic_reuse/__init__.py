"""LlamaIndex integration for semantic-reuse (an LLM class; see docs/llamaindex.md)."""

__all__: list[str] = []
