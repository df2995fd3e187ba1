"""Concurrent searches of one scope go to the store together (real MiniLM, real Qdrant Edge)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from semantic_reuse import CachedAnswer, HandlerConfig
from semantic_reuse.defaults import build_search_helper_from
from semantic_reuse.errors import ComponentUnavailableError
from semantic_reuse.semantic.store import ScopeFilter

SCOPE = ScopeFilter("default", "m", "fp")
STORED = [
    "How do I reset my password?",
    "What is the capital of France?",
    "How do I install Docker on Ubuntu?",
    "What is the best way to learn Rust?",
]
ASKED = [
    "How can I reset my password?",
    "Which city is the capital of France?",
    "How to install Docker on Ubuntu?",
    "How should I learn Rust?",
] * 4


@pytest.fixture
async def search(minilm: Any, tmp_path: Path) -> Any:
    helper = build_search_helper_from(HandlerConfig(), minilm, tmp_path / "edge")
    await helper.add_many(
        [(f"id{i}", q, CachedAnswer(f"answer {i}"), None) for i, q in enumerate(STORED)],
        scope=SCOPE,
    )
    yield helper
    await helper.embedder.aclose()
    await helper.store.aclose()


async def test_concurrent_searches_share_store_calls_and_get_their_own_results(
    search: Any,
) -> None:
    alone = [(await search.search_many([q], 5, scope=SCOPE))[0] for q in ASKED]
    calls_alone = search._searches.calls
    assert calls_alone == len(ASKED)  # one at a time: one call each, nothing waits
    together = await asyncio.gather(*(search.search_many([q], 5, scope=SCOPE) for q in ASKED))
    assert search._searches.calls - calls_alone < len(ASKED)
    for one, (shared,) in zip(alone, together, strict=True):
        assert [c.id for c in shared.candidates] == [c.id for c in one.candidates]
        assert shared.decision == one.decision


async def test_a_failing_store_call_reaches_every_waiter(search: Any) -> None:
    await search.store.aclose()  # a closed store refuses every call
    results = await asyncio.gather(
        *(search.search_many([q], 5, scope=SCOPE) for q in ASKED[:6]), return_exceptions=True
    )
    assert all(isinstance(r, ComponentUnavailableError) for r in results)
