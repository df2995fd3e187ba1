"""Which embedder a text needs, from its script: English models cannot read Chinese.

The bundled MiniLM was trained on English: a Chinese or mixed prompt gets vectors that
match unrelated questions. `needs_multilingual` sends any text with CJK characters, or
with mostly non-Latin letters (Cyrillic, Arabic, ...), to the multilingual embedder. It
reads characters only (no model), so a route costs microseconds and never changes for a
given text: a question and its paraphrase in the same script meet in the same store.
"""

from __future__ import annotations

import unicodedata
from typing import Final

#: Above this share of non-Latin letters a text without CJK goes multilingual.
NON_LATIN_SHARE: Final = 0.3

_CJK_RANGES: Final = (
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3400, 0x4DBF),  # CJK Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xAC00, 0xD7AF),  # Hangul syllables
    (0xF900, 0xFAFF),  # CJK Compatibility Ideographs
    (0x20000, 0x2FA1F),  # CJK Extensions B-F and supplements
)


def _is_cjk(code: int) -> bool:
    return any(low <= code <= high for low, high in _CJK_RANGES)


def needs_multilingual(text: str) -> bool:
    """Whether `text` should be embedded by the multilingual model rather than the English one."""
    letters = non_latin = 0
    for char in text:
        code = ord(char)
        if code < 0x80:
            letters += char.isalpha()
            continue
        if _is_cjk(code):
            return True
        if char.isalpha():
            letters += 1
            non_latin += not unicodedata.name(char, "").startswith("LATIN")
    return letters > 0 and non_latin / letters > NON_LATIN_SHARE
