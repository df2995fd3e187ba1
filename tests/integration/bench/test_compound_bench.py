"""`bench compound` on hand-made queries with known outcomes (real engine and models)."""

from __future__ import annotations

from semantic_reuse import HandlerConfig
from semantic_reuse.tools.bench.compound import run_compound

QUERIES = [
    {"id": "f", "lang": "en", "expect": "full",
     "query": "What is the capital of France and how do I reset my password?",
     "cached": ["What's the capital city of France?", "How can I reset my password?"],
     "clauses": ["What is the capital of France?", "How do I reset my password?"]},
    {"id": "p", "lang": "en", "expect": "partial",
     "query": "How do I reset my password? Also, who wrote Hamlet?",
     "cached": ["How can I reset my password?", "Who wrote Macbeth?"],
     "clauses": ["How do I reset my password?", "Who wrote Hamlet?"]},
    {"id": "s", "lang": "en", "expect": "single",
     "query": "What is the difference between Redis and Memcached?",
     "cached": ["How do I bake bread?"],
     "clauses": ["What is the difference between Redis and Memcached?"]},
]  # fmt: skip


async def test_rates_on_known_queries() -> None:
    report = await run_compound(QUERIES, HandlerConfig())
    assert report["en/full"] == {"queries": 1, "split_ok": 1.0, "full_reuse": 1.0, "wrong": 0.0}
    assert report["en/partial"] == {
        "queries": 1, "split_ok": 1.0, "one_reused": 1.0, "wrong": 0.0,
    }  # fmt: skip
    assert report["en/single"] == {"queries": 1, "split_ok": 1.0, "wrong": 0.0}
