"""A sentence-transformers model on PyTorch, and the helpers its ONNX export shares.

Importing this module is cheap: torch and sentence-transformers are imported when a model loads.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from semantic_reuse.semantic.embedder import EmbedderUnavailableError, FloatMatrix, require

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["ENCODE_CHUNK", "TorchRunner", "length_groups"]

#: Texts per forward pass inside one `encode` call (bounds memory for long inputs).
ENCODE_CHUNK: Final = 64


def length_groups(lengths: Sequence[int], *, max_size: int, extra: int) -> list[list[int]]:
    """Indices grouped by similar length, shortest first, so that padding wastes little.

    On a CPU a forward pass costs about its padded tokens: one long text in a batch of short
    ones would multiply the cost of the batch. A group (at most `max_size` long) is closed when
    adding the next text would pad it beyond 1.25 x its real length plus `extra`.
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    groups: list[list[int]] = []
    group: list[int] = []
    real = 0
    for i in order:
        size = lengths[i]  # the longest so far: `order` is ascending
        if group and (
            len(group) >= max_size or (len(group) + 1) * size > 1.25 * (real + size) + extra
        ):
            groups.append(group)
            group, real = [], 0
        group.append(i)
        real += size
    if group:
        groups.append(group)
    return groups


def load_sentence_transformer(folder: Path, device: str) -> SentenceTransformer:
    st = require("sentence_transformers", "sentence-transformers", "SentenceTransformerEmbedder")
    # local_files_only: a folder path never reaches a hub, and must not try.
    model = st.SentenceTransformer(str(folder), device=device, local_files_only=True)
    model.eval()
    return model  # type: ignore[no-any-return]


def model_dim(model: Any) -> int:
    getter = getattr(model, "get_embedding_dimension", None)
    if getter is None:  # older sentence-transformers
        getter = model.get_sentence_embedding_dimension
    dim = getter()
    if not isinstance(dim, int) or dim < 1:
        raise EmbedderUnavailableError("the sentence-transformers model does not tell its dim")
    return dim


def preprocess(model: Any, texts: list[str]) -> dict[str, Any]:
    """Tokenized features (``preprocess`` in recent sentence-transformers, else ``tokenize``)."""
    fn = getattr(model, "preprocess", None) or model.tokenize
    features: dict[str, Any] = fn(texts)
    return features


class TorchRunner:
    """The model on PyTorch: tokenise, one forward pass, normalise (sentence-transformers'
    ``encode`` does the same plus bookkeeping that costs several ms on one short text)."""

    def __init__(self, folder: Path, device: str, max_seq_length: int | None) -> None:
        self._model = load_sentence_transformer(folder, device)
        if max_seq_length is not None:
            self._model.max_seq_length = max_seq_length
        self._device = device
        self.dim = model_dim(self._model)

    def encode(self, texts: list[str]) -> FloatMatrix:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        # Characters stand in for tokens here (about 4 a token): tokenising twice costs more.
        lengths = [len(t) for t in texts]
        for group in length_groups(lengths, max_size=ENCODE_CHUNK, extra=64):
            out[group] = self._forward([texts[i] for i in group])
        return out

    def fits(self, text: str) -> bool:
        """True when the model sees all of `text` (its tokens fit `max_seq_length`)."""
        window = int(self._model.max_seq_length or 512)
        if len(text) + 2 <= window:  # a WordPiece token covers at least one character
            return True
        ids = self._model.tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"]
        return len(ids) <= window

    def _forward(self, texts: list[str]) -> FloatMatrix:
        import torch

        with torch.inference_mode():
            features = preprocess(self._model, texts)
            features = {
                k: v.to(self._device) if isinstance(v, torch.Tensor) else v
                for k, v in features.items()
            }
            out = self._model(features)["sentence_embedding"]
            out = torch.nn.functional.normalize(out.float(), p=2.0, dim=1)
            return np.asarray(out.cpu().numpy(), dtype=np.float32)
