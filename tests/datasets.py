"""Tiny evaluation files, written by the tests themselves, in the formats of the benchmark
data (`../shared/datasets/README.md`): the bench code runs on them end to end without that
folder. Every question here is written for these tests (none is taken from the real sets);
they are few and only exercise the code paths, they measure nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Labelled duplicates (label 1): the same question asked two ways. Short (< 90 characters):
# `bench e2e` asks only short ones.
EN_DUPLICATES = [
    ("How do I reset my password?", "How can I reset my password?"),
    ("What is the capital of France?", "What's the capital city of France?"),
    ("How do I learn to play the guitar?", "What is the best way to learn guitar?"),
    ("Why is the sky blue?", "What makes the sky look blue?"),
    ("How can I improve my handwriting?", "How do I make my handwriting better?"),
    ("What are good ways to save money?", "How can I save more money?"),
    ("How do I boil an egg?", "What is the way to boil an egg?"),
    ("What causes earthquakes?", "Why do earthquakes happen?"),
    ("How do I fall asleep faster?", "How can I get to sleep more quickly?"),
    ("Which programming language should I learn first?", "What language should I learn first?"),
]  # fmt: skip

# Hard negatives (label 0): the same topic, another question, one pair per city.
CITIES = [
    "Paris", "Rome", "Lisbon", "Madrid", "Berlin", "Vienna", "Prague", "Warsaw",
    "Oslo", "Stockholm", "Helsinki", "Dublin", "Athens", "Cairo", "Nairobi", "Lima",
    "Quito", "Bogota", "Santiago", "Toronto", "Denver", "Osaka", "Seoul", "Hanoi",
]  # fmt: skip
EN_NEGATIVES = [
    (f"What is the population of {city}?", f"What is the best time of year to visit {city}?")
    for city in CITIES
]

# GPTCache's mock pairs are all duplicates (sentences about software documentation).
MOCK_DUPLICATES = [
    ("How do I install the library with pip?", "What is the pip command to install the library?"),
    ("How do I load a saved model from disk?", "How can a model saved on disk be loaded again?"),
    ("What does the batch size parameter control?", "What is the batch size setting for?"),
    ("How do I run the tests of the project?", "Which command runs the project's tests?"),
    ("Where are downloaded files cached?", "In which folder are downloads kept?"),
    ("How do I change the logging level?", "How can I make the logs more or less verbose?"),
]  # fmt: skip

ZH_PAIRS = [
    ("怎么重置我的密码？", "我的密码怎么重置？", 1),
    ("今天北京天气怎么样？", "北京今天的天气如何？", 1),
    ("怎样学好英语？", "学好英语有什么方法？", 1),
    ("手机充不进电怎么办？", "手机无法充电怎么解决？", 1),
    ("苹果多少钱一斤？", "香蕉多少钱一斤？", 0),
    ("去上海坐火车要多久？", "去上海坐飞机要多久？", 0),
    ("这部电影好看吗？", "这部电影是谁导演的？", 0),
    ("怎么做红烧肉？", "红烧肉热量高吗？", 0),
]

COMPOUND = [
    {"lang": "en", "expect": "full",
     "query": "How do I reset my password and why is the sky blue?",
     "cached": ["How can I reset my password?", "What makes the sky look blue?"],
     "clauses": ["How do I reset my password?", "Why is the sky blue?"]},
    {"lang": "en", "expect": "full",
     "query": "What causes earthquakes? Also, how do I boil an egg?",
     "cached": ["Why do earthquakes happen?", "What is the way to boil an egg?"],
     "clauses": ["What causes earthquakes?", "How do I boil an egg?"]},
    {"lang": "en", "expect": "partial",
     "query": "How do I fall asleep faster, and what is the population of Oslo?",
     "cached": ["How can I get to sleep more quickly?",
                "What is the best time of year to visit Oslo?"],
     "clauses": ["How do I fall asleep faster?", "What is the population of Oslo?"]},
    {"lang": "en", "expect": "partial",
     "query": "What is the capital of France? And what is the population of Lima?",
     "cached": ["What's the capital city of France?",
                "What is the best time of year to visit Lima?"],
     "clauses": ["What is the capital of France?", "What is the population of Lima?"]},
    {"lang": "en", "expect": "single",
     "query": "What is the difference between a virus and a bacterium?",
     "cached": ["What is a virus?"], "clauses": []},
    {"lang": "en", "expect": "single",
     "query": "Is it better to rent or buy a house?",
     "cached": ["Should I buy a house?"], "clauses": []},
    {"lang": "zh", "expect": "full",
     "query": "怎么重置我的密码？另外，怎样学好英语？",
     "cached": ["我的密码怎么重置？", "学好英语有什么方法？"],
     "clauses": ["怎么重置我的密码？", "怎样学好英语？"]},
    {"lang": "zh", "expect": "partial",
     "query": "今天北京天气怎么样？还有，这部电影好看吗？",
     "cached": ["北京今天的天气如何？", "这部电影是谁导演的？"],
     "clauses": ["今天北京天气怎么样？", "这部电影好看吗？"]},
    {"lang": "zh", "expect": "single",
     "query": "猫和狗有什么区别？",
     "cached": ["猫是什么动物？"], "clauses": []},
]  # fmt: skip


def _pairs(prefix: str, lang: str, rows: list[tuple[str, str, int]]) -> list[dict[str, Any]]:
    return [
        {"id": f"{prefix}{i}", "q1": q1, "q2": q2, "label": label, "lang": lang}
        for i, (q1, q2, label) in enumerate(rows)
    ]


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    path.write_text(text, encoding="utf-8")


def write_tiny_datasets(folder: Path) -> Path:
    """Write qqp_dev_5k, gptcache_mock_pairs, lcqmc_dev and compound_dev (the names the
    benches look for) into `folder`; returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    # Duplicates and negatives interleaved, as in a real pair file.
    english: list[tuple[str, str, int]] = []
    for i, negative in enumerate(EN_NEGATIVES):
        if i < len(EN_DUPLICATES):
            english.append((*EN_DUPLICATES[i], 1))
        english.append((*negative, 0))
    _write(folder / "qqp_dev_5k.jsonl", _pairs("qqp", "en", english))
    mock = [(q1, q2, 1) for q1, q2 in MOCK_DUPLICATES]
    _write(folder / "gptcache_mock_pairs.jsonl", _pairs("mock", "en", mock))
    _write(folder / "lcqmc_dev.jsonl", _pairs("lcqmc", "zh", ZH_PAIRS))
    _write(
        folder / "compound_dev.jsonl",
        [{"id": f"c{i}", **query} for i, query in enumerate(COMPOUND)],
    )
    return folder
