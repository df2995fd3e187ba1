"""Shared pieces of the clause splitters: the protocol, language detection and
small text helpers.

Everything here is pure and import-light (no spaCy, no jieba), so the engine
can import the package without paying for the language tools.
"""

from __future__ import annotations

import re
from typing import Literal, Protocol, runtime_checkable

__all__ = [
    "ClauseSplitter",
    "Language",
    "capitalize_first",
    "cjk_ratio",
    "detect_language",
    "may_be_compound",
]

Language = Literal["en", "zh"]


@runtime_checkable
class ClauseSplitter(Protocol):
    """Splits a compound question into self-contained sub-questions.

    ``split`` returns two or more clauses, or ``[]`` when the text is a single
    question (or should not be split). It never returns exactly one clause.
    """

    def split(self, text: str) -> list[str]: ...


# CJK Unified Ideographs, extension A and compatibility ideographs.
_CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_RE = re.compile(r"[A-Za-z]")

#: A text whose CJK share of letters reaches this ratio is treated as Chinese.
#: One Han character is roughly a word while a Latin word is about five
#: letters, so a low threshold still means "mostly Chinese words".
CJK_RATIO_THRESHOLD = 0.25


def cjk_ratio(text: str) -> float:
    """Share of CJK ideographs among the CJK ideographs and Latin letters."""
    cjk = len(_CJK_RE.findall(text))
    latin = len(_LATIN_RE.findall(text))
    total = cjk + latin
    return cjk / total if total else 0.0


def detect_language(text: str) -> Language:
    """``"zh"`` when the CJK-character ratio reaches the threshold, else ``"en"``."""
    return "zh" if cjk_ratio(text) >= CJK_RATIO_THRESHOLD else "en"


# What every cut of the splitters needs (english.py, chinese.py): a question mark followed by
# more text, a semicolon, the word "and", or punctuation followed by a Chinese conjunction.
_CUT_NEEDS = re.compile(
    r"[?？]\s*\S|[;；]|\band\b|[，,。.！!]\s*(?:另外|此外|还有|以及|并且|同时)", re.IGNORECASE
)


def may_be_compound(text: str) -> bool:
    """False when no splitter could cut `text` (it has none of the marks a cut needs): the
    parse, its thread hop and its queue are then skipped. True does not mean it splits."""
    return _CUT_NEEDS.search(text) is not None


def capitalize_first(text: str) -> str:
    """Upper-case the first letter (after any leading quotes/brackets)."""
    for i, ch in enumerate(text):
        if ch.isalpha():
            return text[:i] + ch.upper() + text[i + 1 :]
        if ch.isdigit():
            return text
    return text


def count_cjk(text: str) -> int:
    return len(_CJK_RE.findall(text))
