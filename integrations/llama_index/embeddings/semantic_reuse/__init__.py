"""The bundled sentence embedders as a LlamaIndex embedding model (offline)."""

from llama_index.embeddings.semantic_reuse.base import SemanticReuseEmbedding

__all__: list[str] = ["SemanticReuseEmbedding"]
