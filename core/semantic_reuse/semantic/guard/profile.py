"""What the guard extracts from one prompt (:class:`TextProfile`), and the
:class:`Profiler` that extracts it: the English rules on every prompt, jieba's segments and
tags where it has Chinese characters, spaCy's entities in the ``spacy`` mode. jieba and
spaCy are loaded on first use; profiles are cached (LRU)."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from . import chinese, english
from .lexicon import CJK_RE, ZH_NEG_CHARS

EntityMode = Literal["lexical", "spacy", "off"]

_NOT_WORD_RE = re.compile(r"[\W_]+")


def squash(text: str) -> str:
    """``text`` without spaces, punctuation or underscores."""
    return _NOT_WORD_RE.sub("", text)


@dataclass(frozen=True, slots=True)
class TextProfile:
    """What the guard extracted from one prompt."""

    numbers: frozenset[str] = frozenset()
    """Numbers the prompt states (canonical strings; ordinals as ``#n``)."""
    weak_numbers: frozenset[str] = frozenset()
    """Numbers that may be a pronoun or an article ("which one", 一个): they can match
    the other prompt's numbers but are not required to."""
    negation: str | None = None
    """The first negation cue, or ``None``."""
    directions: frozenset[tuple[str, str, str]] = frozenset()
    """(relation, first, second) word pairs around asymmetric markers: ``path`` (source,
    destination: "A to B", "B from A", A到B) and ``compare`` (A than B, A比B)."""
    entities: frozenset[str] = frozenset()
    """Words of proper names, acronyms and model numbers, lower case."""
    initials: frozenset[str] = frozenset()
    """Initials of multi-word names and of camel-case words ("ml", "js")."""
    words: frozenset[str] = frozenset()
    """Every word (and its light stem) in lower case; Chinese segments."""
    squashed: str = ""
    """The text in lower case without spaces or punctuation."""

    @property
    def negated(self) -> bool:
        return self.negation is not None


class _LRU:
    """A small thread-safe LRU map from a prompt to its profile."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._data: OrderedDict[str, TextProfile] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, compute: Callable[[str], TextProfile]) -> TextProfile:
        if self._size <= 0:
            return compute(key)
        with self._lock:
            hit = self._data.get(key)
            if hit is not None:
                self._data.move_to_end(key)
                return hit
        value = compute(key)
        with self._lock:
            self._data[key] = value
            while len(self._data) > self._size:
                self._data.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._data)


class Profiler:
    """Analyses prompts into cached :class:`TextProfile` s.

    Args:
        entities: how names are found: ``"lexical"``, ``"spacy"`` (``spacy_model``) or
            ``"off"``.
        spacy_model: the spaCy pipeline for ``entities="spacy"``.
        cache_size: how many prompt analyses to keep (0: none).

    The arguments are taken as given; :class:`MatchGuard` checks them.
    """

    def __init__(self, *, entities: EntityMode, spacy_model: str, cache_size: int) -> None:
        self.entities: EntityMode = entities
        self.spacy_model = spacy_model
        self._cache = _LRU(cache_size)
        self._nlp: Any = None
        self._jieba: Any = None
        self._pos: Any = None
        self._load_lock = threading.Lock()

    def profile(self, text: str) -> TextProfile:
        """The (cached) analysis of one prompt."""
        return self._cache.get(text, self._analyse)

    def warm_up(self) -> None:
        """Load the lazy components now (jieba's dictionary and tagger, the spaCy model)."""
        self._tagger()
        if self.entities == "spacy":
            self._spacy()

    def _analyse(self, text: str) -> TextProfile:
        tokens = list(english.tokenize(text))
        numbers, weak = english.numbers(tokens)
        negation = english.negation(tokens)
        words: set[str] = set()
        for kind, tok, _ in tokens:
            if kind == "word":
                low = tok.lower()
                words.add(low)
                words.add(english.light_stem(low))
        directions = english.directions(tokens)
        entities: set[str] = set()
        initials: set[str] = set()
        if self.entities == "lexical":
            entities, initials = english.lexical_entities(tokens)
        elif self.entities == "spacy" and not CJK_RE.search(text):
            entities, initials = english.spacy_entities(self._spacy()(text))
        if CJK_RE.search(text):
            tagged = self._tagged_segments(text)
            segments = [seg for seg, _ in tagged]
            if self.entities != "off":
                entities.update(seg.lower() for seg, tag in tagged if chinese.is_name(seg, tag))
            zh_numbers, zh_weak = chinese.numbers(segments)
            numbers |= zh_numbers
            weak |= zh_weak
            if negation is None and any(ch in ZH_NEG_CHARS for ch in text):
                plain = chinese.without_questions(text)
                negation = chinese.negation(segments if plain == text else self._segment(plain))
            directions |= chinese.directions(segments)
            words.update(s.lower() for s in segments)
        return TextProfile(
            numbers=frozenset(numbers),
            weak_numbers=frozenset(weak - numbers),
            negation=negation,
            directions=frozenset(directions),
            entities=frozenset(entities),
            initials=frozenset(initials),
            words=frozenset(words),
            squashed=squash(text.lower()),
        )

    # -- lazily loaded models -----------------------------------------------------------

    def _segmenter(self) -> Any:
        if self._jieba is None:
            with self._load_lock:
                if self._jieba is None:
                    self._jieba = chinese.load_segmenter()
        return self._jieba

    def _segment(self, text: str) -> list[str]:
        return [s for s in self._segmenter().lcut(text) if s.strip()]

    def _tagged_segments(self, text: str) -> list[tuple[str, str]]:
        """jieba's segments with their part-of-speech tags (``ns`` place, ``nr`` person,
        ``nt`` organisation, ``nz`` other proper noun, ``eng`` Latin word...)."""
        tagger = self._tagger()
        return [(p.word, p.flag) for p in tagger.cut(text) if p.word.strip()]

    def _tagger(self) -> Any:
        if self._pos is None:
            tokenizer = self._segmenter()
            with self._load_lock:
                if self._pos is None:
                    self._pos = chinese.load_tagger(tokenizer)
        return self._pos

    def _spacy(self) -> Any:
        if self._nlp is None:
            with self._load_lock:
                if self._nlp is None:
                    self._nlp = english.load_spacy(self.spacy_model)
        return self._nlp
