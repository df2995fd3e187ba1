"""Every cookbook recipe runs to the end and shows what its header promises (they must not
rot). Each runs in a subprocess, as a user would run it (most start their own vLLM engine)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests import REPO_ROOT

COOKBOOK = REPO_ROOT / "cookbook"

# What each recipe's output must show (substrings, in order of appearance).
EXPECTED: dict[str, list[str]] = {
    "core_api.py": [
        "-> miss",
        "-> exact",
        "-> semantic",
        "-> miss",
        "stored answer: The page was not found.",
    ],
    "vllm_drop_in.py": ["miss", "exact", "semantic"],
    "langchain_chain.py": ["How do I reset", "How can I reset", "boiling point"],
    "langchain_streaming.py": ["-> miss", "-> semantic"],
    "llamaindex_query_engine.py": ["reset my Acme", "reset my Acme", "support desk"],
    "compound_questions.py": ["-> miss", "-> miss", "-> composed", "-> partial", "-> miss"],
    "tenants.py": [
        "-> miss",
        "-> semantic",
        "-> miss",
        "-> exact",
        "acme    -> miss",
        "globex  -> exact",
    ],
    "rag_documents_change.py": [
        "preloaded 1 curated",
        "-> miss",
        "-> semantic",
        "-> miss",
        "-> exact    'Write to help@example.com.'",
        "answers tagged doc:returns retired",
        "-> miss     'Items can be returned within 14 days",
        "-> exact    'Orders ship",
    ],
    "openai_server.py": ["acme", "-> miss", "-> exact", "-> semantic", "globex", "-> miss"],
    "multi_host.py": ["Redis: redis://", "host A", "-> miss", "host B", "-> exact", "(tier redis)"],
}


def test_every_recipe_is_listed() -> None:
    assert sorted(p.name for p in COOKBOOK.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.slow
@pytest.mark.parametrize("recipe", sorted(EXPECTED))
def test_recipe_runs(recipe: str, redis_url: str) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1",
           "REDIS_URL": redis_url}  # fmt: skip
    done = subprocess.run(
        [sys.executable, str(COOKBOOK / recipe)],
        capture_output=True, text=True, timeout=400, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    position = 0
    for expected in EXPECTED[recipe]:
        found = done.stdout.find(expected, position)
        assert found >= 0, f"{expected!r} not in order in:\n{done.stdout}"
        position = found + len(expected)
