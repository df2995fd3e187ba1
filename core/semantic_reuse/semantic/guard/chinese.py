"""Chinese, on jieba's segments: numerals, negation (leaving "A-not-A" questions alone),
direction pairs and proper nouns by part-of-speech tag. jieba is imported only by
:func:`load_segmenter` and :func:`load_tagger`."""

from __future__ import annotations

import re
from typing import Any

from .direction import Relation, relations, side
from .lexicon import (
    CJK,
    CJK_RE,
    DIRECTION_ZH,
    RELATION_ZH,
    ZH_DIGITS,
    ZH_MEASURE,
    ZH_NAME_TAGS,
    ZH_NEG_CHARS,
    ZH_NOT_NEGATION,
    ZH_NOT_NUMBERS,
    ZH_SCALES,
    ZH_STOPWORDS,
)

_NUM_SEGMENT = re.compile(
    rf"(第)?([零〇一二两三四五六七八九十百千万亿]+)(?:[{ZH_MEASURE}]|公里|公斤){{0,2}}"
)
# "A-not-A" questions ask, they do not negate: 是不是, 能不能, 有没有, 可不可以.
_A_NOT_A = re.compile(rf"([{CJK}])[不没]\1")
_QUESTION_TAG = re.compile(r"(?:[不没]|没有)(?=[？?。！!，,\s]|$)")


def is_name(segment: str, tag: str) -> bool:
    """A Chinese proper noun by jieba's tag: a person, place, organisation or other name
    of two or more characters."""
    return tag in ZH_NAME_TAGS and len(segment) >= 2 and bool(CJK_RE.search(segment))


def _numeral(run: str) -> int | None:
    """Value of a Chinese numeral such as 三, 十五, 二十一, 一百零五, 两千."""
    total, section, current = 0, 0, 0
    for ch in run:
        if ch in ZH_DIGITS:
            current = ZH_DIGITS[ch]
        elif ch in ("万", "亿"):
            section = (section + current) * ZH_SCALES[ch]
            total += section
            section, current = 0, 0
        elif ch in ZH_SCALES:
            section += (current or 1) * ZH_SCALES[ch]
            current = 0
        else:
            return None
    return total + section + current


def numbers(segments: list[str]) -> tuple[set[str], set[str]]:
    """The numbers the segments state (ordinals as ``#n``), and the weak ones (一, 两)."""
    found: set[str] = set()
    weak: set[str] = set()
    for seg in segments:
        if seg in ZH_NOT_NUMBERS:
            continue
        match = _NUM_SEGMENT.fullmatch(seg)
        if match is None:
            continue
        ordinal, digits = match.group(1), match.group(2)
        value = _numeral(digits)
        if value is None:
            continue
        key = f"#{value}" if ordinal else str(value)
        if not ordinal and digits in ("一", "两"):
            weak.add(key)
        else:
            found.add(key)
    return found, weak


def without_questions(text: str) -> str:
    """Drop what looks like negation but asks: "A-not-A" (能不能 -> 能, 是不是 -> 是) and
    a sentence-final 不 / 没有 ("工作好找不？")."""
    return _QUESTION_TAG.sub("", _A_NOT_A.sub(r"\1", text))


def negation(segments: list[str]) -> str | None:
    """The first negating segment of a text already passed through
    :func:`without_questions`."""
    for seg in segments:
        if seg in ZH_NOT_NEGATION or not any(ch in ZH_NEG_CHARS for ch in seg):
            continue
        if seg[0] in ZH_NEG_CHARS or "不" in seg or "没" in seg:
            return seg
    return None


def directions(segments: list[str]) -> set[Relation]:
    """(relation, first, second) for the segment next to each marker (到, 从, 比...)."""
    items = [("w" if CJK_RE.search(s) or s.isalnum() else "punct", s.lower()) for s in segments]
    pairs: set[Relation] = set()
    for i, (_, seg) in enumerate(items):
        if seg not in DIRECTION_ZH:
            continue
        left = side(items, i, -1, skip_stopwords=False, boundary=_boundary, content=_content)
        right = side(items, i, +1, skip_stopwords=True, boundary=_boundary, content=_content)
        pairs |= relations(seg, left[:1], right[:1], RELATION_ZH)
    return pairs


def _boundary(kind: str, seg: str) -> bool:
    return kind == "punct" or seg in DIRECTION_ZH


def _content(seg: str) -> str | None:
    return None if seg in ZH_STOPWORDS else seg


def load_segmenter() -> Any:
    """A jieba tokenizer of its own, with its dictionary loaded."""
    import jieba

    tokenizer = jieba.Tokenizer()
    _quiet_jieba(jieba)
    tokenizer.initialize()
    return tokenizer


def load_tagger(tokenizer: Any) -> Any:
    """jieba's part-of-speech tagger over ``tokenizer``."""
    from jieba import posseg

    return posseg.POSTokenizer(tokenizer)


def _quiet_jieba(jieba: Any) -> None:
    """jieba logs its dictionary loading at INFO on its own logger: keep it at WARNING."""
    import logging

    logging.getLogger(getattr(jieba, "__name__", "jieba")).setLevel(logging.WARNING)
    default_logger = getattr(jieba, "default_logger", None)
    if default_logger is not None:
        default_logger.setLevel(logging.WARNING)
