"""Several processes of one user on one Edge folder (workers of a web server, several vLLM
frontends, a notebook beside a service). The other process is real: a child that holds the
folder open until the test closes its stdin, or is killed with SIGKILL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from loguru import logger

from semantic_reuse import CallableBackend, HandlerConfig, ReuseEngine, ReuseKind
from semantic_reuse.defaults import build_embedder
from semantic_reuse.errors import StoreInUseError
from semantic_reuse.semantic.edge_files import siblings
from semantic_reuse.semantic.edge_store import EdgeStore
from semantic_reuse.semantic.store import ScopeFilter, VectorPoint
from tests.conftest import eventually
from tests.integration.semantic.processes import Child
from tests.integration.semantic.topics import TOPICS, paraphrase, question

#: Holds the default embedder's folder under argv[1] (as a running service would) until stdin
#: closes.
HOLDER = """
import sys
from semantic_reuse import HandlerConfig
from semantic_reuse.defaults import build_embedder, build_store

config = HandlerConfig(cache={"qdrant_path": sys.argv[1]})
store = build_store(config, build_embedder(config).name, 384)
print("holding", store.path, flush=True)
sys.stdin.read()
"""

#: Holds an Edge folder given by argv[1] (16 dimensions) until stdin closes or it is killed.
STORE_HOLDER = """
import sys
from semantic_reuse.semantic.edge_store import EdgeStore

store = EdgeStore(sys.argv[1], 16)
print("holding", flush=True)
sys.stdin.read()
"""

TOPIC = TOPICS[7]


def _folder(root: Path) -> Path:
    """The default embedder's Edge folder under ``root``."""
    name = build_embedder(HandlerConfig()).name
    return root / f"{name}-384"


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[Child]:
    """The default store under ``tmp_path/qdrant``, held by another process."""
    with Child(HOLDER, str(tmp_path / "qdrant"), log=tmp_path / "holder.log") as child:
        child.expect("holding")
        yield child


class Records:
    """The library's log records at every level, with its logs enabled (as an application
    that asked for them)."""

    def __enter__(self) -> list[Any]:
        self.records: list[Any] = []
        self._sink = logger.add(lambda m: self.records.append(m.record), level="DEBUG")
        logger.enable("semantic_reuse")
        return self.records

    def __exit__(self, *exc: object) -> None:
        logger.disable("semantic_reuse")
        logger.remove(self._sink)


async def _model(prompt: object, params: object) -> str:
    return f"the model's answer to {prompt}"


def _ours(records: list[Any]) -> list[Any]:
    return [r for r in records if (r["name"] or "").startswith("semantic_reuse")]


async def test_a_second_process_keeps_paraphrase_reuse_and_says_so_once(
    tmp_path: Path, holder: Child, splitter: Any
) -> None:
    """The README's snippet while a service holds the default store: one WARNING line, no
    traceback, and paraphrase and exact reuse keep working in a private folder."""
    config = HandlerConfig(cache={"qdrant_path": tmp_path / "qdrant"})
    backend = CallableBackend(_model, model="my-llm")
    with Records() as records:
        engine = ReuseEngine(config, splitter=splitter)
        first = await engine.generate(question(TOPIC), backend, namespace="acme")
        await engine.flush()
        para = await engine.generate(paraphrase(TOPIC), backend, namespace="acme")
        again = await engine.generate(question(TOPIC), backend, namespace="acme")
        store = engine.semantic.ready.store if engine.semantic.ready else None
        await engine.aclose()
    assert [first.info.kind, para.info.kind, again.info.kind] == [
        ReuseKind.MISS,
        ReuseKind.SEMANTIC,
        ReuseKind.EXACT,
    ]
    assert para.answer.text == first.answer.text
    assert isinstance(store, EdgeStore)
    assert store.private
    ours = _ours(records)
    warnings = [r for r in ours if r["level"].no >= logger.level("WARNING").no]
    assert len(warnings) == 1, [r["message"] for r in warnings]
    line = warnings[0]["message"]
    for part in ("open in another process", "cache.qdrant_path_in_use", "cache.qdrant_url"):
        assert part in line
    assert "\n" not in line
    assert TOPIC not in line
    assert [r["message"] for r in ours if r["exception"] is not None] == []
    # The holder still has the shared folder: the private one is kept for it, not thrown away.
    shared = _folder(tmp_path / "qdrant")
    assert len(siblings(shared, "private")) == 1

    holder.release()
    # The next process (here: this one) to open the shared folder merges the private one.
    engine = ReuseEngine(config, splitter=splitter)
    try:
        hit = await engine.lookup(paraphrase(TOPIC), namespace="acme", model="my-llm")
        assert hit is not None
        assert hit.info.kind is ReuseKind.SEMANTIC
        assert hit.answer.text == first.answer.text
        assert engine.semantic.ready is not None
        assert not engine.semantic.ready.store.private

        async def merged() -> bool:
            return siblings(shared, "private") == []

        await eventually(merged, "the private folder is merged and removed")
    finally:
        await engine.aclose()


async def test_off_turns_semantic_reuse_off_once_and_keeps_exact_reuse(
    tmp_path: Path, holder: Child, splitter: Any
) -> None:
    config = HandlerConfig(cache={"qdrant_path": tmp_path / "qdrant", "qdrant_path_in_use": "off"})
    backend = CallableBackend(_model, model="my-llm")
    with Records() as records:
        engine = ReuseEngine(config, splitter=splitter)
        kinds = [
            (await engine.generate(prompt, backend)).info.kind
            for prompt in (question(TOPIC), question(TOPIC), paraphrase(TOPIC), question(TOPIC))
        ]
        await engine.aclose()
    assert kinds == [ReuseKind.MISS, ReuseKind.EXACT, ReuseKind.MISS, ReuseKind.EXACT]
    assert engine.metrics.counter("errors_total", component="semantic") == 1  # never retried
    ours = _ours(records)
    warnings = [r["message"] for r in ours if r["level"].no >= logger.level("WARNING").no]
    assert len(warnings) == 1, warnings
    assert "semantic off" in warnings[0]
    assert "cache.qdrant_path_in_use='off'" in warnings[0]
    assert [r["message"] for r in ours if r["exception"] is not None] == []
    assert siblings(_folder(tmp_path / "qdrant"), "private") == []


def _point(n: int) -> VectorPoint:
    vector = np.random.default_rng(n).standard_normal(16).astype(np.float32)
    return VectorPoint(
        id=f"{n:032x}", vector=vector, namespace="ns", model="m", fingerprint="fp",
        prompt=f"prompt {n}", answer={"text": f"answer {n}"}, created_at=1.0,
    )  # fmt: skip


async def test_a_folder_held_by_a_killed_process_opens_at_once(tmp_path: Path) -> None:
    folder = tmp_path / "edge"
    with Child(STORE_HOLDER, str(folder), log=tmp_path / "holder.log") as child:
        child.expect("holding")
        with pytest.raises(StoreInUseError, match="another process"):
            EdgeStore(folder, 16)
        private = EdgeStore(folder, 16, if_in_use="private")
        await private.upsert([_point(1)])
        assert private.private
        assert private.path.parent == folder.parent
        child.kill()  # its locks go with it
    await private.aclose()  # the shared folder is free now: merged back at once
    assert siblings(folder, "private") == []
    store = EdgeStore(folder, 16)
    try:
        assert not store.private
        scope = ScopeFilter("ns", "m", "fp")
        found = await store.search(_point(1).vector, scope, limit=1)
        assert [m.id for m in found] == [_point(1).id]
    finally:
        await store.aclose()
