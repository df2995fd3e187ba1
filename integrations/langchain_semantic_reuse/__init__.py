"""LangChain integration for semantic-reuse: a cache and two model classes (docs/langchain.md)."""

from loguru import logger

from langchain_semantic_reuse.cache import SemanticReuseCache
from langchain_semantic_reuse.chat_models import ChatSemanticReuse
from langchain_semantic_reuse.llms import SemanticReuseLLM

logger.disable("langchain_semantic_reuse")  # silent unless the application enables it

__all__: list[str] = ["ChatSemanticReuse", "SemanticReuseCache", "SemanticReuseLLM"]
