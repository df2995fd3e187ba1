"""Smoke runs of every `semantic-reuse bench` subcommand on small inputs (real models)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger

from semantic_reuse.tools.cli import main


@pytest.fixture(autouse=True)
def _library_logs_back_off() -> Iterator[None]:
    """`main()` is the CLI, an application: it enables the library's logs for its process.
    Run in this process, it must not leave them on for the tests that follow."""
    yield
    logger.disable("semantic_reuse")


def test_quality_with_gptcache_baseline(tiny_datasets: Path, tmp_path: Path) -> None:
    pairs = tiny_datasets / "qqp_dev_5k.jsonl"
    out = tmp_path / "out"
    assert main(["bench", "quality", "--pairs", str(pairs), "--baseline", "gptcache",
                 "--out", str(out)]) == 0  # fmt: skip
    result = json.loads((out / "quality-qqp_dev_5k.json").read_text())
    assert [s["system"] for s in result["systems"]] == [
        "semantic-reuse", "semantic-reuse (cosine)", "gptcache"
    ]  # fmt: skip
    assert (out / "quality-qqp_dev_5k.png").read_bytes()[:4] == b"\x89PNG"


def test_compound(tiny_datasets: Path) -> None:
    queries = tiny_datasets / "compound_dev.jsonl"
    assert main(["bench", "compound", "--queries", str(queries), "--lang", "en"]) == 0


def test_speed_tiny(tiny_datasets: Path, tmp_path: Path) -> None:
    assert main(["bench", "speed", "--datasets", str(tiny_datasets), "--sizes", "30",
                 "--probes", "3", "--systems", "edge", "gptcache",
                 "--out", str(tmp_path)]) == 0  # fmt: skip
    result = json.loads((tmp_path / "speed.json").read_text())
    assert {r["system"] for r in result["rows"]} == {"edge", "gptcache"}
    assert (tmp_path / "latency-vs-size.png").is_file()
    assert (tmp_path / "throughput-vs-concurrency.png").is_file()
    assert result["plots"] == [
        "latency-vs-size.png", "latency-cdf.png", "throughput-vs-concurrency.png",
    ]  # fmt: skip


def test_all_tiny(tiny_datasets: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    assert main(["bench", "all", "--datasets", str(tiny_datasets), "--no-e2e", "--limit", "12",
                 "--sizes", "30", "--probes", "3", "--out", str(out)]) == 0  # fmt: skip
    names = {p.name for p in out.iterdir()}
    assert {"results.json", "report.md", "latency-vs-size.png", "latency-cdf.png",
            "throughput-vs-concurrency.png", "quality-qqp_dev_5k.png",
            "quality-lcqmc_dev.png"} <= names  # fmt: skip
    results = json.loads((out / "results.json").read_text())
    assert "e2e" not in results
    assert results["targets"]
    report = (out / "report.md").read_text()
    assert "## Targets" in report
    assert set(results["seconds"]) == {"quality", "compound", "speed", "total"}
    assert "(throughput-vs-concurrency.png)" in report


def test_one_default_datasets_folder_overridable(
    tiny_datasets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from semantic_reuse.tools.bench import DEFAULT_DATASETS, default_datasets
    from semantic_reuse.tools.cli import build_parser

    # The tests point $SEMANTIC_REUSE_DATASETS at their tiny files (conftest.py).
    assert build_parser().parse_args(["bench", "speed"]).datasets == tiny_datasets
    assert build_parser().parse_args(["bench", "compound"]).queries == (
        tiny_datasets / "compound_dev.jsonl"
    )
    assert build_parser().parse_args(["bench", "all", "--datasets", "/d"]).datasets == Path("/d")
    monkeypatch.delenv("SEMANTIC_REUSE_DATASETS")
    assert default_datasets() == DEFAULT_DATASETS == Path("../shared/datasets")
    assert build_parser().parse_args(["bench", "e2e"]).datasets == DEFAULT_DATASETS
