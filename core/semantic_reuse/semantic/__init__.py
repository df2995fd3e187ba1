"""Semantic reuse: embeddings, the vector store, the match guard."""
