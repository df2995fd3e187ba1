"""`semantic-reuse bench compound`: compound questions through the engine.

For each query of compound_dev.jsonl (../shared/datasets/README.md), in a namespace of
its own, the `cached` questions are stored with answers naming them, then the query is
analysed. Measured: split accuracy (full and partial into two clauses, single left
whole), full reuse on `full` (every clause reused, each from its own cached question),
exactly-one-clause reuse on `partial` (the first reused, the second not), and wrong
reuse (a clause served another question's answer, or a partial's second clause reused).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from semantic_reuse.config import CacheConfig, HandlerConfig
from semantic_reuse.engine import ReuseEngine

Progress = Callable[[int, int], None]


def _answer(index: int) -> str:
    return f"cached:{index}"


async def run_compound(
    queries: list[dict[str, Any]], config: HandlerConfig, progress: Progress | None = None
) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="sr-compound-") as folder:
        config = config.model_copy(deep=True)
        config.cache = CacheConfig(qdrant_path=Path(folder))
        async with ReuseEngine(config) as engine:
            await engine.warm_up()
            for n, query in enumerate(queries):
                namespace = f"q{n}"
                lang, expect = query["lang"], query["expect"]
                await engine.store_many(
                    [(q, _answer(i)) for i, q in enumerate(query["cached"])], namespace=namespace
                )
                decision = await engine.analyze(query["query"], namespace=namespace)
                clauses = decision.clauses
                counts[f"{lang}/{expect}/queries"] += 1
                split_ok = len(clauses) == 2 if expect in ("full", "partial") else not clauses
                counts[f"{lang}/{expect}/split_ok"] += split_ok
                texts = _clause_answers(decision)
                if expect == "full":
                    counts[f"{lang}/full/full_reuse"] += texts == [_answer(0), _answer(1)]
                    counts[f"{lang}/full/wrong"] += any(
                        t is not None and t != _answer(i) for i, t in enumerate(texts)
                    )
                elif expect == "partial":
                    counts[f"{lang}/partial/one_reused"] += texts == [_answer(0), None]
                    counts[f"{lang}/partial/wrong"] += len(texts) == 2 and texts[1] is not None
                else:
                    served = decision.answer.text if decision.answer is not None else None
                    counts[f"{lang}/single/wrong"] += served not in (None, _answer(0))
                if progress:
                    progress(n + 1, len(queries))
    return _rates(counts)


def _clause_answers(decision: Any) -> list[str | None]:
    """Each clause's reused answer text (None when generated), in order."""
    parts = decision.plan.clauses
    return [p.answer.text if p.answer is not None else None for p in parts]


def _rates(counts: Counter[str]) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for key in sorted(k for k in counts if k.endswith("/queries")):
        group = key.removesuffix("/queries")
        total = counts[key]
        report[group] = {
            "queries": total,
            **{
                name.split("/")[-1]: round(counts[name] / total, 4)
                for name in counts
                if name.startswith(group + "/") and not name.endswith("/queries")
            },
        }
    return report


def compound(
    path: str | Path, config: HandlerConfig | None = None, *, lang: str | None = None,
    limit: int | None = None, progress: Progress | None = None,
) -> dict[str, Any]:  # fmt: skip
    """`run_compound` on a compound query file (one language, the first `limit` queries)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    rows = [r for r in rows if lang is None or r["lang"] == lang][:limit]
    return asyncio.run(run_compound(rows, config or HandlerConfig(), progress))
