"""Two engine processes on this host share Redis: an exact answer one of them writes is served
by the other, from Redis. Each process has its own Edge folder and its own memory, so Redis is
the only way an answer can travel between them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import REPO_ROOT


class EngineProcess:
    """`tests/integration/engine_process.py` in a subprocess, driven over its stdin/stdout."""

    def __init__(self, name: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.engine_process", name],
            cwd=REPO_ROOT, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip

    def reply(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # the process answers or exits: no deadline
        if not line:
            self.process.wait()
            assert self.process.stderr is not None
            pytest.fail(f"engine process exited: {self.process.stderr.read()[-3000:]}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def ask(self, prompt: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"prompt": prompt}) + "\n")
        self.process.stdin.flush()
        return self.reply()

    def close(self) -> int:
        assert self.process.stdin is not None
        self.process.stdin.close()
        return self.process.wait(timeout=60)


@pytest.fixture
def engines(redis_url: str, redis_prefix: str, tmp_path: Path) -> Iterator[list[EngineProcess]]:
    """Two engine processes sharing one Redis (this test's prefix), each with its own Edge
    folder: started together, so that both are up while they trade answers."""
    started = []
    for name in ("A", "B"):
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(REPO_ROOT / "core"), str(REPO_ROOT / "integrations"), str(REPO_ROOT)]
            ),
            "SEMANTIC_REUSE_CACHE__REDIS_URL": redis_url,
            "SEMANTIC_REUSE_CACHE__REDIS_PREFIX": redis_prefix,
            "SEMANTIC_REUSE_CACHE__QDRANT_PATH": str(tmp_path / f"edge-{name}"),
            "SEMANTIC_REUSE_SEMANTIC__EMBEDDER": "minilm",
            "SEMANTIC_REUSE_FEATURES__ENABLE_NLP_ENHANCEMENT": "false",
        }
        started.append(EngineProcess(name, env))
    try:
        for process in started:
            assert process.reply() == {"ready": True}
        yield started
    finally:
        codes = [process.close() for process in started]
        assert codes == [0, 0]
        import redis

        with redis.Redis.from_url(redis_url) as raw:
            keys = list(raw.scan_iter(match=f"{redis_prefix}:*"))
            if keys:
                raw.unlink(*keys)


def test_an_answer_written_by_one_process_is_served_by_the_other(
    engines: list[EngineProcess],
) -> None:
    a, b = engines
    first = a.ask("What is the capital of France?")
    assert (first["kind"], first["text"], first["calls"]) == (
        "miss", "A answered: What is the capital of France?", 1,
    )  # fmt: skip
    served = b.ask("What is the capital of France?")
    assert served == {
        "text": "A answered: What is the capital of France?",
        "kind": "exact", "tier": "redis", "calls": 0,
    }  # fmt: skip
    # And the other way, while both run.
    assert b.ask("How do I reset my password?")["kind"] == "miss"
    back = a.ask("How do I reset my password?")
    assert (back["kind"], back["tier"], back["text"]) == (
        "exact", "redis", "B answered: How do I reset my password?",
    )  # fmt: skip
    # A question neither asked is generated where it is asked.
    assert b.ask("Who wrote Hamlet?")["text"] == "B answered: Who wrote Hamlet?"
