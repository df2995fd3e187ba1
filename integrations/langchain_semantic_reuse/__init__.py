"""LangChain integration for semantic-reuse (cache and model classes; see docs/langchain.md)."""

__all__: list[str] = []
