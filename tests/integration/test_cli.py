"""The command line, run as a user runs it (a subprocess, real models, real Redis)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

WIDE = {**os.environ, "COLUMNS": "220"}


def _row(out: str, shows: str) -> str:
    match = re.search(rf"│ {re.escape(shows)} .*", out)
    assert match is not None, f"no row {shows!r} in:\n{out}"
    return match.group(0)


def test_a_log_gets_whole_table_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a terminal (a pipe, a log): Rich would assume 80 columns and cut the demo's rows."""
    from rich.table import Table

    from semantic_reuse.tools.cli import LOG_WIDTH, make_console

    log = io.StringIO()
    monkeypatch.setattr(sys, "stdout", log)
    monkeypatch.delenv("COLUMNS", raising=False)
    console = make_console()
    assert not console.is_terminal
    assert console.width == LOG_WIDTH
    table = Table(title="Each request")
    for column in ("shows", "tenant", "question", "outcome", "similarity", "ms", "generated"):
        table.add_column(column)
    table.add_row("compound, both parts known", "acme",
                  "What is the capital of France and how do I reset my password?",
                  "generated (no_candidates)", "", "2803", "48")  # fmt: skip
    table.add_row("new question (zh)", "acme", "怎么重置我的密码？", "generated (guard:numbers)",
                  "0.997", "2201", "48")  # fmt: skip
    console.print(table)
    out = log.getvalue()
    assert "…" not in out
    whole = ["What is the capital of France and how do I reset my password?", "怎么重置我的密码？",
             "generated (no_candidates)", "generated (guard:numbers)"]  # fmt: skip
    assert [cell for cell in whole if cell not in out] == []


@pytest.mark.slow
def test_demo_runs_the_main_job_on_vllm_with_redis(redis_url: str) -> None:
    """`make demo`'s command: vLLM (CPU) serves the default model through EnhancedAsyncLLM."""
    result = subprocess.run(
        [sys.executable, "-m", "semantic_reuse.tools.cli", "demo", "--redis-url", redis_url],
        capture_output=True, text=True, timeout=900, check=False, env=WIDE,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "using it as L2" in out
    assert "EnhancedAsyncLLM ready" in out
    assert "│ exact " in _row(out, "exact repeat")
    assert "│ semantic " in _row(out, "paraphrase ")
    assert "composed (exact + exact)" in _row(out, "compound, both parts known")
    assert "partial (exact + miss)" in _row(out, "compound, one part new")
    assert "│ exact " in _row(out, "the new part, asked alone")
    assert "generated (guard:numbers)" in _row(out, "a number differs (guard)")
    assert "generated" in _row(out, "same words, other tenant")
    assert "│ semantic " in _row(out, "paraphrase (zh)")
    assert re.search(r"13 requests: 7 reused \(54%\), \d+ tokens generated", out)


def test_engine_demo_without_vllm_or_redis() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "semantic_reuse.tools.cli", "demo", "--no-vllm",
         "--redis-url", "redis://127.0.0.1:1/0"],
        capture_output=True, text=True, timeout=300, check=False, env=WIDE,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "memory and Qdrant tiers only" in out
    assert "composed (exact + exact)" in _row(out, "compound: both parts known")
    assert "generated (guard:numbers)" in _row(out, "one number differs (guard)")
    assert "10 requests, 6 model calls" in out


def test_calibrate_and_bench_quality_on_small_pair_files(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    rows = [
        ("How do I reset my password?", "How can I reset my password?", 1),
        ("What is the capital of France?", "What's the capital city of France?", 1),
        ("How do I learn Python?", "How do I learn Python fast for data science?", 0),
        ("What is 2+2?", "What is 2+3?", 0),
        ("How do I bake bread?", "What is the best way to bake bread?", 1),
        ("Who wrote Hamlet?", "Who wrote Macbeth?", 0),
    ]
    pairs.write_text(
        "".join(
            f'{{"id": "p{i}", "q1": "{a}", "q2": "{b}", "label": {label}, "lang": "en"}}\n'
            for i, (a, b, label) in enumerate(rows)
        )
    )
    env_file = tmp_path / "tuned.env"
    calibrate = subprocess.run(
        [sys.executable, "-m", "semantic_reuse.tools.cli", "calibrate", "--pairs", str(pairs),
         "--target-precision", "0.9", "--write-env", str(env_file)],
        capture_output=True, text=True, timeout=300, check=False, env=WIDE,
    )  # fmt: skip
    assert calibrate.returncode == 0, calibrate.stderr + calibrate.stdout
    line = env_file.read_text().strip()
    assert re.fullmatch(r"SEMANTIC_REUSE_SIMILARITY_THRESHOLD=0\.\d\d", line)
    assert line in calibrate.stdout

    bench = subprocess.run(
        [sys.executable, "-m", "semantic_reuse.tools.cli", "bench", "quality",
         "--pairs", str(pairs), "--json"],
        capture_output=True, text=True, timeout=300, check=False, env=WIDE,
    )  # fmt: skip
    assert bench.returncode == 0, bench.stderr
    assert '"queries": 6' in bench.stdout
    assert '"positives": 3' in bench.stdout
    assert '"wrong": 0' in bench.stdout  # the guard refuses 2+3, entities refuse Macbeth
