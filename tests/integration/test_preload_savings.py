"""Preload and export (engine API and the command line), and the savings an engine reports
(stats, Prometheus, the history `semantic-reuse stats` reads). Real embedder, Qdrant Edge,
Redis where named."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from semantic_reuse import CallableBackend, ReuseEngine, ReuseKind
from tests import REPO_ROOT
from tests.conftest import EngineFactory

CURATED = [
    {"question": "How do I reset my password?", "answer": "Use the reset link on the login page.",
     "tags": ["kb-12"]},
    {"question": "What are your opening hours?", "answer": "9:00 to 17:00, Monday to Friday.",
     "ttl_s": 3600},
    {"question": "How do I cancel my subscription?", "answer": "Account > Billing > Cancel.",
     "model": "support-bot"},
]  # fmt: skip


async def served(engine: ReuseEngine, prompt: str, **options: Any) -> tuple[str, str] | None:
    hit = await engine.lookup(prompt, **options)
    return None if hit is None else (hit.info.kind.value, hit.text)


async def test_load_export_load_round_trip(make_engine: EngineFactory, tmp_path: Path) -> None:
    first: ReuseEngine = make_engine(folder=tmp_path / "first")
    done: list[int] = []
    report = await first.load(CURATED, namespace="help", tags=["curated"], progress=done.append)
    assert (report.stored, report.vector_failures, sum(done)) == (3, 0, 3)
    await first.load([{"question": "What is Redis?", "answer": "A data store."}], namespace="x")
    exported = [r async for r in first.export("help")]
    assert len(exported) == 3
    by_question = {r["question"]: r for r in exported}
    reset = by_question["How do I reset my password?"]
    assert (reset["tags"], reset["model"]) == (["curated", "kb-12"], "default")
    assert 3500 < by_question["What are your opening hours?"]["ttl_s"] <= 3600
    assert by_question["How do I cancel my subscription?"]["model"] == "support-bot"
    assert {"id", "fingerprint"} <= set(reset)
    # into a fresh store (another folder, another engine), through a JSONL file
    path = tmp_path / "help.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in exported))
    fresh: ReuseEngine = make_engine(folder=tmp_path / "fresh")
    from semantic_reuse.tools.admin import read_records

    assert (await fresh.load(read_records(path), namespace="help")).stored == 3
    for engine in (first, fresh):
        assert await served(engine, "How do I reset my password?", namespace="help") == (
            "exact", "Use the reset link on the login page.",
        )  # fmt: skip
        assert await served(engine, "How can I reset my password?", namespace="help") == (
            "semantic", "Use the reset link on the login page.",
        )  # fmt: skip
        assert await served(
            engine, "How do I cancel my subscription?", namespace="help", model="support-bot"
        ) == ("exact", "Account > Billing > Cancel.")
        assert await served(engine, "How do I cancel my subscription?", namespace="help") is None
    # the fresh store exports the same records (the same keys and scopes; lifetimes run on)
    again = {r["question"]: r for r in [r async for r in fresh.export("help")]}
    for record in [*again.values(), *by_question.values()]:
        record.pop("ttl_s", None)
    assert again == by_question
    # retired answers are not exported
    await fresh.invalidate_tag("kb-12", namespace="help")
    assert {r["question"] for r in [r async for r in fresh.export("help")]} == {
        "What are your opening hours?", "How do I cancel my subscription?",
    }  # fmt: skip


async def test_load_refuses_bad_records_naming_them(make_engine: EngineFactory) -> None:
    engine: ReuseEngine = make_engine()
    with pytest.raises(ValueError, match="record 2: answer"):
        await engine.load([CURATED[0], {"question": "q", "answer": ""}], namespace="help")
    with pytest.raises(TypeError, match="record 1: tags"):
        await engine.load([{"question": "q", "answer": "a", "tags": "one"}])
    with pytest.raises(ValueError, match="record 1: ttl_s"):
        await engine.load([{"question": "q", "answer": "a", "ttl_s": -1}])


async def test_savings_in_stats_prometheus_and_history(
    make_engine: EngineFactory, tmp_path: Path
) -> None:
    history = tmp_path / "savings.jsonl"
    engine: ReuseEngine = make_engine(
        savings={"history_path": history, "price_per_1k_tokens": 0.5, "currency": "EUR"}
    )
    backend = CallableBackend(lambda prompt, params: _answer(prompt))
    asked = [
        ("acme", "How do I reset my password?"),  # miss
        ("acme", "How do I reset my password?"),  # exact, memory
        ("acme", "How can I reset my password?"),  # semantic, vector
        ("globex", "How do I reset my password?"),  # miss: another tenant
    ]
    results = []
    for namespace, prompt in asked:
        results.append(await engine.generate(prompt, backend, namespace=namespace))
        await engine.flush()
    kinds = [r.info.kind for r in results]
    assert kinds == [ReuseKind.MISS, ReuseKind.EXACT, ReuseKind.SEMANTIC, ReuseKind.MISS]
    # each reuse says what it saved (what the server's saved_seconds_total adds up)
    assert [r.info.saved_s > 0 for r in results] == [False, True, True, False]
    savings = engine.stats()["savings"]
    acme = savings["namespaces"]["acme"]
    assert (acme["requests"], acme["hits"], acme["kinds"]) == (
        3, 2, {"exact": 1, "miss": 1, "semantic": 1},
    )  # fmt: skip
    assert acme["tiers"] == {"memory": 1, "none": 1, "vector": 1}
    tokens = 2 * 12  # two reuses of a 12-token answer (counted by the backend's usage)
    assert acme["reused_tokens"] == tokens
    assert savings["tokens_per_second"] > 0
    assert acme["saved_s"] == pytest.approx(tokens / savings["tokens_per_second"], rel=1e-3)
    assert acme["saved_money"] == pytest.approx(tokens / 1000 * 0.5)
    assert savings["namespaces"]["globex"]["hits"] == 0
    registry = CollectorRegistry()
    engine.metrics.register(registry)
    text = generate_latest(registry).decode()
    assert ('semantic_reuse_savings_requests_total{kind="semantic",namespace="acme",'
            'tier="vector"} 1.0') in text  # fmt: skip
    assert 'semantic_reuse_savings_reused_tokens_total{namespace="acme"} 24.0' in text
    assert 'semantic_reuse_saved_seconds{namespace="acme"}' in text
    assert 'semantic_reuse_saved_money{namespace="acme"} 0.012' in text
    # every series the Grafana dashboard queries is one the engine exports
    dashboard = json.loads((REPO_ROOT / "docs" / "grafana-savings.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"semantic_reuse_[a-z_]+", target["expr"])
    }
    assert len(queried) >= 6
    exported = set(re.findall(r"^(semantic_reuse_[a-z_]+)", text, flags=re.M))
    assert queried <= exported, queried - exported
    await engine.aclose()  # writes a last snapshot
    snapshot = json.loads(history.read_text().splitlines()[-1])
    assert snapshot["namespaces"]["acme"]["hits"] == 2
    assert snapshot["currency"] == "EUR"
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "semantic_reuse.tools.cli", "stats", "--history", str(history),
         "--plot", str(tmp_path / "savings.png")],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "acme" in out.stdout
    assert "66.7%" in out.stdout
    assert "memory=1 vector=1" in out.stdout
    assert (tmp_path / "savings.png").stat().st_size > 10_000


async def _answer(prompt: object) -> Any:
    from semantic_reuse import CachedAnswer

    return CachedAnswer("Open the settings and choose Reset.", usage={"completion_tokens": 12})


def test_cli_load_export_and_invalidate(
    tmp_path: Path, redis_url: str, redis_prefix: str, forget_prefix: None
) -> None:
    """The commands as a user runs them, on an Edge folder and Redis (MiniLM alone)."""
    env = {**os.environ, "SEMANTIC_REUSE_SEMANTIC__EMBEDDER": "minilm",
           "SEMANTIC_REUSE_CACHE__REDIS_PREFIX": redis_prefix, "COLUMNS": "200"}  # fmt: skip
    curated = tmp_path / "curated.jsonl"
    curated.write_text("".join(json.dumps(r) + "\n" for r in CURATED) + "\n")
    stores = ["--qdrant-path", str(tmp_path / "qdrant"), "--redis-url", redis_url]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "semantic_reuse.tools.cli", *args],
            capture_output=True, text=True, timeout=600, check=False, env=env,
        )  # fmt: skip

    loaded = cli("load", str(curated), "--namespace", "help", "--tag", "v1", *stores)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert "stored 3 answers in namespace 'help'" in loaded.stdout
    out = tmp_path / "export.jsonl"
    exported = cli("export", "--namespace", "help", "--out", str(out), *stores)
    assert exported.returncode == 0, exported.stderr[-2000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["question"] for r in records) == sorted(r["question"] for r in CURATED)
    assert all("v1" in r["tags"] for r in records)
    dropped = cli("invalidate", "--namespace", "help", "--tag", "kb-12", *stores)
    assert dropped.returncode == 0, dropped.stderr[-2000:]
    again = cli("export", "--namespace", "help", *stores)
    assert len(again.stdout.splitlines()) == 2
    bumped = cli("invalidate", "--namespace", "help", "--bump-epoch", *stores)
    assert "epoch of 'help' is now 1" in bumped.stdout
    assert cli("export", "--namespace", "help", *stores).stdout == ""
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answer": "a"}\nnot json\n')
    failed = cli("load", str(bad), *stores)
    assert failed.returncode == 1
    assert "bad.jsonl:2: not JSON" in failed.stdout
