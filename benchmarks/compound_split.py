"""Split accuracy of the clause splitters on a compound-query file.

    PYTHONPATH=core .venv/bin/python benchmarks/compound_split.py \
        --queries ../shared/datasets/compound_dev.jsonl

Each line: ``{"id", "lang", "query", "clauses": [str], "expect":
"full"|"partial"|"single"}``. A ``full``/``partial`` query is correct when the
splitter returns exactly ``len(clauses)`` clauses and each matches its
reference in order; a ``single`` query is correct when it returns ``[]``.

Match rule: two clauses match when they are equal after lower-casing and
dropping everything that is not a letter or a digit (so case, punctuation and
whitespace do not count), or -- pronoun carry-over -- when their word
sequences differ in exactly one place where the reference has a single
pronoun (it/they/he/she/...) and the output has the phrase that replaced it.

Also prints the median and p95 time of one ``split`` call per language
(after a warm-up call per language; single-threaded, this machine).
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from semantic_reuse.clauses import MultilingualClauseSplitter

_DEFAULT_QUERIES = Path(__file__).resolve().parents[2] / "shared/datasets/compound_dev.jsonl"
_NON_WORD_RE = re.compile(r"[\W_]+", re.UNICODE)
_PRONOUNS = frozenset({"it", "they", "he", "she", "this", "that"})


def normalize(text: str) -> str:
    return _NON_WORD_RE.sub("", text.lower())


def _words(text: str) -> list[str]:
    return [w for w in (_NON_WORD_RE.sub("", t) for t in text.lower().split()) if w]


def clause_matches(got: str, want: str) -> bool:
    if normalize(got) == normalize(want):
        return True
    g, w = _words(got), _words(want)
    ops = [op for op in difflib.SequenceMatcher(a=w, b=g, autojunk=False).get_opcodes()]
    changed = [op for op in ops if op[0] != "equal"]
    if len(changed) != 1:
        return False
    tag, i1, i2, j1, j2 = changed[0]
    return tag == "replace" and i2 - i1 == 1 and w[i1] in _PRONOUNS and j2 > j1


def is_correct(row: dict[str, Any], got: list[str]) -> bool:
    if row["expect"] == "single":
        return got == []
    want: list[str] = row["clauses"]
    return len(got) == len(want) and all(
        clause_matches(g, w) for g, w in zip(got, want, strict=True)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=Path, default=_DEFAULT_QUERIES, help="JSONL file")
    parser.add_argument("--limit", type=int, default=0, help="only the first N queries")
    parser.add_argument(
        "--show-failures", type=int, default=0, metavar="N", help="print up to N failures"
    )
    parser.add_argument("--json", action="store_true", help="print the rates as JSON")
    args = parser.parse_args(argv)
    if not args.queries.is_file():
        parser.error(f"no such file: {args.queries} (pass --queries PATH)")

    rows = [json.loads(line) for line in args.queries.read_text("utf-8").splitlines() if line]
    if args.limit:
        rows = rows[: args.limit]

    splitter = MultilingualClauseSplitter()
    splitter.splitter_for("en").split("What is Redis and how does it store data?")
    splitter.splitter_for("zh").split("笔记本电脑开机黑屏怎么办？另外，家用烤箱哪个牌子比较好？")

    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    times: dict[str, list[float]] = defaultdict(list)
    failures: list[tuple[dict[str, Any], list[str]]] = []
    for row in rows:
        t0 = time.perf_counter()
        got = splitter.split(row["query"])
        times[row["lang"]].append(time.perf_counter() - t0)
        ok = is_correct(row, got)
        for key in ((row["lang"], row["expect"]), (row["lang"], "*"), ("*", row["expect"])):
            totals[key][0] += ok
            totals[key][1] += 1
        totals[("*", "*")][0] += ok
        totals[("*", "*")][1] += 1
        if not ok:
            failures.append((row, got))

    report = {
        f"{lang}/{expect}": {"correct": c, "total": n, "rate": round(c / n, 4)}
        for (lang, expect), (c, n) in sorted(totals.items())
    }
    timing = {
        lang: {
            "median_ms": round(statistics.median(ts) * 1000, 3),
            "p95_ms": round(sorted(ts)[int(0.95 * (len(ts) - 1))] * 1000, 3),
            "n": len(ts),
        }
        for lang, ts in sorted(times.items())
    }
    if args.json:
        json.dump({"rates": report, "timing": timing}, sys.stdout, ensure_ascii=False, indent=2)
        print()
    else:
        print(f"{'lang/expect':<12} {'correct':>7} {'total':>5} {'rate':>7}")
        for name, r in report.items():
            print(f"{name:<12} {r['correct']:>7} {r['total']:>5} {r['rate']:>7.1%}")
        for lang, t in timing.items():
            print(
                f"split time {lang}: median {t['median_ms']:.2f} ms, "
                f"p95 {t['p95_ms']:.2f} ms over {t['n']} queries"
            )
    for row, got in failures[: args.show_failures]:
        print(f"\nFAIL {row['id']} [{row['expect']}] {row['query']}")
        print(f"  want: {row['clauses'] if row['expect'] != 'single' else []}")
        print(f"  got:  {got}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
