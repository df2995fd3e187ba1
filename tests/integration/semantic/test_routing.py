"""The default engine serves English and Chinese with no setting: each text goes to the
embedder (and store, and verifier) of its script. Real MiniLM int8, real e5, real Edge."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio

from semantic_reuse import HandlerConfig, ReuseEngine, ReuseKind


@pytest_asyncio.fixture
async def engine(tmp_path: Path, splitter: Any) -> AsyncIterator[ReuseEngine]:
    config = HandlerConfig(cache={"qdrant_path": tmp_path / "qdrant", "redis_url": None})
    engine = ReuseEngine(config, splitter=splitter)  # the default embedders, no setting
    yield engine
    await engine.aclose()


async def test_english_and_chinese_paraphrases_with_the_defaults(
    engine: ReuseEngine, tmp_path: Path
) -> None:
    multilingual = engine.routes.routes[1]
    await engine.store("How do I reset my password?", "Click 'Forgot password' in Settings.")
    await engine.flush()
    hit = await engine.lookup("How can I reset my password?")
    assert hit is not None
    assert hit.info.kind is ReuseKind.SEMANTIC
    assert multilingual.ready is None  # English traffic never loads the multilingual model

    await engine.store("怎么重置我的密码？", "在设置页面点击“忘记密码”。")
    await engine.flush()
    hit = await engine.lookup("我的密码怎么重置？")
    assert hit is not None
    assert hit.info.kind is ReuseKind.SEMANTIC
    assert hit.text == "在设置页面点击“忘记密码”。"
    assert hit.info.probability is not None  # the Chinese verifier decided
    assert await engine.lookup("怎么注销我的账号？") is None

    # Each route keeps its own store: MiniLM vectors and e5 vectors are never compared.
    built = engine.routes.built()
    assert [b.embedder.dim for b in built] == [384, 384]
    assert built[0].store is not built[1].store
    folders = sorted(p.name for p in (tmp_path / "qdrant").iterdir() if p.is_dir())  # no .lock
    assert len(folders) == 2
    assert any(name.startswith("minilm") for name in folders)
    assert any(name.startswith("multilingual-e5") for name in folders)
    stats = engine.stats()
    assert set(stats["breakers"]) == {"semantic", "semantic-multilingual", "splitter"}


async def test_the_chinese_verifier_refuses_a_look_alike_that_e5_finds_close(
    engine: ReuseEngine,
) -> None:
    await engine.store("苹果多少钱一斤？", "五元一斤。")
    await engine.store("怎么重置我的密码？", "在设置页面点击“忘记密码”。")
    await engine.flush()
    # The same words but one: another fruit, another price. e5 finds it close; the
    # verifier (text features, monotone in the cosine) refuses it.
    refused = await engine.analyze("香蕉多少钱一斤？")
    assert refused.kind is ReuseKind.MISS
    assert refused.info.refused_by == "unverified"
    assert refused.info.probability is not None
    served = await engine.analyze("我的密码怎么重置？")
    assert served.kind is ReuseKind.SEMANTIC
    assert served.info.probability is not None
    assert served.info.probability > refused.info.probability


async def test_clauses_in_two_scripts_are_each_found_in_their_own_store(
    engine: ReuseEngine,
) -> None:
    await engine.store("What is Redis?", "An in-memory data store.")
    await engine.store("北京的人口是多少？", "约两千二百万。")
    await engine.flush()
    hit = await engine.lookup("What is Redis? 北京的人口是多少？")
    assert hit is not None
    assert hit.info.kind is ReuseKind.COMPOSED
    assert "An in-memory data store." in hit.text
    assert "约两千二百万。" in hit.text


async def test_feedback_withdraws_a_chinese_answer(engine: ReuseEngine) -> None:
    await engine.store("怎么重置我的密码？", "在设置页面点击“忘记密码”。")
    await engine.flush()
    hit = await engine.lookup("我的密码怎么重置？")
    assert hit is not None
    assert hit.info.matched_id is not None
    assert await engine.feedback(hit.info.matched_id, correct=False)
    assert await engine.lookup("我的密码怎么重置？") is None
    exact = await engine.lookup("怎么重置我的密码？")
    assert exact is not None  # still its own question's answer
