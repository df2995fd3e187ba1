"""Every answer acknowledged as stored survives SIGKILL of its process.

A child process answers N questions through `ReuseEngine.generate` (so the vector records are
written in the background), awaits `engine.flush()`, prints "stored N" and is killed with
SIGKILL. A second child opens the same folder (and Redis) and looks every question up, exactly
and by a paraphrase. Real processes, a real Edge folder, the real embedder, the real Redis.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from semantic_reuse.spi import RedisTier
from tests.integration.semantic.processes import Child
from tests.integration.semantic.topics import TOPICS

N = len(TOPICS)

_SETUP = """
import asyncio, json, sys
from semantic_reuse import CallableBackend, HandlerConfig, ReuseEngine
from tests.integration.semantic.topics import TOPICS, paraphrase, question

cache = {"qdrant_path": sys.argv[1]}
if sys.argv[2]:
    cache.update(redis_url=sys.argv[2], redis_prefix=sys.argv[3])
config = HandlerConfig(cache=cache)

async def model(prompt, params):
    return "answer: " + prompt
"""

STORE = (
    _SETUP
    + """
async def main():
    engine = ReuseEngine(config)
    backend = CallableBackend(model, model="m")
    for topic in TOPICS:
        # reuse=False: every answer is generated and stored (no paraphrase served between them)
        result = await engine.generate(question(topic), backend, namespace="acme", reuse=False)
        assert result.info.kind.value == "miss", result.info
    await engine.flush()
    print("stored", len(TOPICS), flush=True)
    await asyncio.Event().wait()  # until killed

asyncio.run(main())
"""
)

FIND = (
    _SETUP
    + """
async def main():
    engine = ReuseEngine(config)
    found = {"exact": {}, "semantic": 0, "wrong": 0}
    for topic in TOPICS:
        expected = "answer: " + question(topic)
        hit = await engine.lookup(question(topic), namespace="acme", model="m")
        if hit is not None and hit.info.kind.value == "exact":
            found["exact"][hit.info.tier] = found["exact"].get(hit.info.tier, 0) + 1
            found["wrong"] += hit.answer.text != expected
        para = await engine.lookup(paraphrase(topic), namespace="acme", model="m")
        if para is not None and para.info.kind.value == "semantic":
            found["semantic"] += 1
            found["wrong"] += para.answer.text != expected
    found["points"] = await engine.semantic.ready.store.count()
    await engine.aclose()
    print("found", json.dumps(found), flush=True)

asyncio.run(main())
"""
)


def _store_then_kill(tmp_path: Path, *redis: str) -> None:
    args = (str(tmp_path / "qdrant"), *(redis or ("", "")))
    with Child(STORE, *args, log=tmp_path / "store.log") as child:
        assert child.expect("stored") == f"stored {N}"
        child.kill()
    assert child.proc.returncode == -9


def _find(tmp_path: Path, *redis: str) -> dict[str, object]:
    args = (str(tmp_path / "qdrant"), *(redis or ("", "")))
    with Child(FIND, *args, log=tmp_path / "find.log") as child:
        line = child.expect("found")
    found: dict[str, object] = json.loads(line.removeprefix("found "))
    print(f"{N} stored, found: {found}")  # the figure for the report (pytest -s)
    return found


def test_answers_flushed_survive_sigkill_edge_alone(tmp_path: Path) -> None:
    _store_then_kill(tmp_path)
    found = _find(tmp_path)
    assert found == {"exact": {"vector": N}, "semantic": N, "wrong": 0, "points": N}


@pytest.mark.integration
async def test_answers_flushed_survive_sigkill_with_redis(
    tmp_path: Path, redis_tier: RedisTier, redis_url: str, redis_prefix: str
) -> None:
    _store_then_kill(tmp_path, redis_url, redis_prefix)
    found = _find(tmp_path, redis_url, redis_prefix)
    assert found == {"exact": {"redis": N}, "semantic": N, "wrong": 0, "points": N}
