"""English (and Latin-script words inside Chinese text): a regex tokenizer, and the
numbers, negation, direction pairs and names of a tokenized prompt. spaCy is imported
only by :func:`load_spacy`."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .direction import Relation, relations, side
from .lexicon import (
    CJK,
    DIRECTION_EN,
    NEGATORS_EN,
    NOT_NAMES,
    ORDINALS,
    RELATION_EN,
    SCALES,
    SPACY_NUMERIC,
    STOPWORDS,
    SUFFIX_SCALE,
    UNITS,
)

Token = tuple[str, str, bool]
"""(kind, text, sentence_start) with kind one of num, word, cjk, arrow, punct."""

# Numbers (with separators, decimals, a scale or ordinal suffix), words (identifiers with
# underscores stay whole), runs of CJK characters, arrows, sentence punctuation.
_TOKEN_RE = re.compile(
    r"(?P<num>\d+(?:[.,]\d+)*(?:(?:st|nd|rd|th|k|bn|%)(?![A-Za-z]))?)"
    r"|(?P<word>[A-Za-z_\u00c0-\u024f][A-Za-z0-9_\u00c0-\u024f]*(?:['’][A-Za-z]+)?)"
    rf"|(?P<cjk>[{CJK}]+)"
    r"|(?P<arrow>->|→|=>)"
    r"|(?P<punct>[.?!;:,\"“”()\[\]？！；：，。、（）《》「」])"
)
_SENTENCE_START = frozenset('.?!;:"“”()？！；：。（）')
_NT_RE = re.compile(r"n['’]t$")
_COMPARATIVE_RE = re.compile(r"^(?:more|less|better|worse|[a-z]{3,}er)$")


def tokenize(text: str) -> Iterable[Token]:
    start = True
    for match in _TOKEN_RE.finditer(text):
        kind = match.lastgroup or "punct"
        tok = match.group()
        if kind == "punct":
            if tok in _SENTENCE_START:
                start = True
            yield kind, tok, False
            continue
        yield kind, tok, start
        start = False


def light_stem(word: str) -> str:
    """Fold English plurals and possessives ("ideas" -> "idea", "cities" -> "city")."""
    if word.endswith(("'s", "’s")):
        word = word[:-2]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "sses", "xes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


# ---------------------------------------------------------------------------------------
# Numbers


def _canonical_number(value: float) -> str:
    if value == int(value):
        return str(int(value))
    return repr(round(value, 6))


def _parse_digits(raw: str) -> str | None:
    text = raw.lower()
    scale = 1
    for suffix, factor in SUFFIX_SCALE.items():
        if text.endswith(suffix):
            text, scale = text[: -len(suffix)], factor
            break
    text = re.sub(r"(st|nd|rd|th|%)$", "", text)
    if re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d+)?", text):
        text = text.replace(",", "")
    elif "," in text:  # "2,3" is a list or a European decimal: not one number.
        return None
    try:
        return _canonical_number(float(text) * scale)
    except ValueError:
        return None


def numbers(tokens: list[Token]) -> tuple[set[str], set[str]]:
    """The numbers the tokens state (digits, number words, ordinals as ``#n``), and the
    weak ones (a lone "one")."""
    found: set[str] = set()
    weak: set[str] = set()
    run: list[str] = []

    def flush() -> None:
        if run == ["one"]:  # "which one", "one of": a pronoun as often as a number
            weak.add("1")
        elif run:
            found.add(_canonical_number(_words_value(run)))
        run.clear()

    for kind, tok, _ in tokens:
        low = tok.lower()
        if kind == "num":
            flush()
            value = _parse_digits(tok)
            if value is not None:
                ordinal = low.endswith(("st", "nd", "rd", "th"))
                found.add(f"#{value}" if ordinal else value)
            continue
        if kind == "word" and (low in UNITS or low in SCALES):
            run.append(low)
            continue
        if kind == "word" and low == "and" and run:  # "one hundred and five"
            continue
        flush()
        if kind == "word" and low in ORDINALS:
            found.add(f"#{ORDINALS[low]}")
    flush()
    return found, weak


def _words_value(run: list[str]) -> float:
    total, current = 0, 0
    for word in run:
        if word in UNITS:
            current += UNITS[word]
        elif word == "hundred":
            current = (current or 1) * 100
        else:
            total += (current or 1) * SCALES[word]
            current = 0
    return float(total + current)


# ---------------------------------------------------------------------------------------
# Negation and direction


def negation(tokens: list[Token]) -> str | None:
    """The first negation cue, leaving question tags and "No. 5" alone."""
    lows = [tok.lower().replace("’", "'") for _, tok, _ in tokens]
    for i, (kind, _, _) in enumerate(tokens):
        if kind != "word":
            continue
        low = lows[i]
        prev = lows[i - 1] if i > 0 else ""
        nxt = lows[i + 1] if i + 1 < len(lows) else ""
        if low in NEGATORS_EN:
            if low == "no" and (nxt == "." or (i + 1 < len(tokens) and tokens[i + 1][0] == "num")):
                continue  # "No. 5"
            if low in ("not", "no") and prev in ("or", "if"):
                continue  # "... or not?", "If not, why?": a question tag
            if low == "not" and prev == "why" and i > 1 and lows[i - 2] == "or":
                continue  # "why or why not?"
            if low == "not" and nxt == "only":
                continue  # "not only ... but also"
            return low
        if _NT_RE.search(low):
            return low
    return None


def directions(tokens: list[Token]) -> set[Relation]:
    """(relation, first, second) for the content words next to each asymmetric marker.

    On each side the words are the contiguous run of content words touching the marker
    (on the right, after any articles): "flights from New York to Los Angeles" gives
    (path, york, los), (path, new, angeles)... around "to" and (path, new, flight)...
    around "from" (whose right side is the source); "Paris bigger than Rome" gives
    (compare, paris, rome).
    """
    items = [(kind, tok.lower()) for kind, tok, _ in tokens]
    pairs: set[Relation] = set()
    for i, (kind, low) in enumerate(items):
        if kind not in ("word", "arrow") or low not in DIRECTION_EN:
            continue
        left = side(items, i, -1, skip_stopwords=False, boundary=_boundary, content=_content)
        right = side(items, i, +1, skip_stopwords=True, boundary=_boundary, content=_content)
        if low == "than":
            left = [w for w in left if not _COMPARATIVE_RE.match(w)] or left
        pairs |= relations(low, left, right, RELATION_EN)
    return pairs


def _boundary(kind: str, low: str) -> bool:
    return kind in ("punct", "arrow", "cjk") or low in DIRECTION_EN


def _content(low: str) -> str | None:
    return light_stem(low) if low not in STOPWORDS and len(low) > 1 else None


# ---------------------------------------------------------------------------------------
# Names


def lexical_entities(tokens: list[Token]) -> tuple[set[str], set[str]]:
    """Names: capitalised words inside a sentence, acronyms, words mixing letters and
    digits. Returns the entity words and the initials of multi-word names and of
    camel-case words. A prompt written in Title Case (most words capitalised) only
    contributes its acronyms and model numbers."""
    words = [(tok, start) for kind, tok, start in tokens if kind == "word"]
    entities: set[str] = set()
    initials: set[str] = set()
    if not words:
        return entities, initials
    capitalised = sum(1 for tok, _ in words if tok[:1].isupper())
    title_case = len(words) >= 4 and capitalised / len(words) > 0.6
    run: list[str] = []
    for tok, start in [*words, ("", True)]:
        low = tok.lower()
        base = re.sub(r"['’]s$", "", low)
        is_name = False
        if tok and low not in NOT_NAMES and base not in STOPWORDS:
            has_digit = any(c.isdigit() for c in tok)
            upper = sum(1 for c in tok if c.isupper())
            if has_digit:
                is_name = True  # iPhone6, mp3, H1B
            elif upper >= 2:
                is_name = True  # UCLA, iPhone, McDonald, JavaScript
                if upper < len(tok):
                    initials.add("".join(c for c in tok if c.isupper()).lower())
            elif tok[:1].isupper() and not start and not title_case:
                is_name = True
        if is_name:
            entities.add(base)
            run.append(base)
            continue
        if tok[:1].isupper() and start and not title_case and base not in STOPWORDS:
            run.append(base)  # a capitalised first word may begin a name ("Machine Learning")
            continue
        if len(run) >= 2:
            initials.add("".join(w[0] for w in run))
        run = []
    return entities, initials


def spacy_entities(doc: Any) -> tuple[set[str], set[str]]:
    """The words of the names spaCy recognised in ``doc`` (not its numbers, dates...),
    and the initials of multi-word names."""
    entities: set[str] = set()
    initials: set[str] = set()
    for ent in doc.ents:
        if ent.label_ in SPACY_NUMERIC:
            continue
        parts = [t.lower_ for t in ent if t.is_alpha and t.lower_ not in STOPWORDS]
        entities.update(parts)
        if len(parts) >= 2:
            initials.add("".join(p[0] for p in parts))
    return entities, initials


def load_spacy(model: str) -> Any:
    """The spaCy pipeline ``model`` with only what named-entity recognition needs."""
    import spacy

    return spacy.load(model, exclude=["parser", "lemmatizer", "attribute_ruler", "tagger"])
