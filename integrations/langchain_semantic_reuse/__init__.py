"""LangChain integration for semantic-reuse (cache and model classes; see docs/langchain.md)."""

from langchain_semantic_reuse.cache import SemanticReuseCache

__all__: list[str] = ["SemanticReuseCache"]
