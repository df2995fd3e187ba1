"""Compound-question splitting: English (spaCy) and Chinese (jieba) clause
splitters, language routing, and an async extractor with a concurrency limit
and a timeout.

spaCy and jieba are imported lazily, on the first split.
"""

from .chinese import ChineseClauseSplitter
from .english import DEFAULT_ENGLISH_MODEL, EnglishClauseSplitter
from .extractor import AsyncConjunctionExtractor, ExtractorStats, MultilingualClauseSplitter
from .rules import ClauseSplitter, Language, cjk_ratio, detect_language, may_be_compound

__all__ = [
    "DEFAULT_ENGLISH_MODEL",
    "AsyncConjunctionExtractor",
    "ChineseClauseSplitter",
    "ClauseSplitter",
    "EnglishClauseSplitter",
    "ExtractorStats",
    "Language",
    "MultilingualClauseSplitter",
    "cjk_ratio",
    "detect_language",
    "may_be_compound",
]
