"""Anaphora across an English cut and subject carry-over.

A personal pronoun of the right clause that points outside it is replaced by
the left clause's topic ("What is Redis and how does it store data?" ->
"How does Redis store data?"); anaphora that cannot be resolved that way
(possessives, demonstratives, ``there``, ``the other one``) keeps the text
whole. Pronouns bound inside their own clause and dummy ``it`` are not
anaphora.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .english_grammar import CLAUSE_POS, SUBJECT_DEPS, is_wh, is_wh_phrase

if TYPE_CHECKING:
    from spacy.tokens import Span, Token

#: Personal pronouns replaced by the left clause's topic after an explicit cut.
_CARRY_PRONOUNS = frozenset({"it", "they", "them", "he", "him", "she", "her"})
_SUBJECT_PRONOUNS = frozenset({"it", "they", "he", "she"})
_PLURAL_PRONOUNS = frozenset({"they", "them", "their", "theirs", "themselves"})
_PERSONAL_PRONOUNS = frozenset({"he", "him", "his", "himself", "she", "her", "hers", "herself"})
_ANAPHORIC_PRONOUNS = frozenset(
    {
        "it", "its", "itself", "they", "them", "their", "theirs", "themselves",
        "he", "him", "his", "himself", "she", "her", "hers", "herself",
    }
)  # fmt: skip
_INDEFINITE_PRONOUNS = frozenset(
    {
        "someone", "somebody", "anyone", "anybody", "everyone", "everybody",
        "nobody", "one", "people", "something", "anything", "everything",
    }
)  # fmt: skip
_PERSON_NOUNS = frozenset(
    {
        "person", "man", "woman", "boy", "girl", "guy", "lady", "friend",
        "boyfriend", "girlfriend", "husband", "wife", "mother", "father", "mom",
        "dad", "son", "daughter", "brother", "sister", "teacher", "student",
        "doctor", "boss", "president", "king", "queen", "actor", "actress",
        "singer", "player", "author", "writer", "child", "kid", "baby",
    }
)  # fmt: skip
_QUANTIFIERS = frozenset({"no", "any", "some", "every", "each", "another"})
_TIME_NOUNS = frozenset(
    {"second", "minute", "hour", "day", "week", "month", "year", "decade", "time", "while"}
)
_MAX_CARRIED_WORDS = 8
_EXTRAPOSITION_MARKERS = frozenset({"if", "to", "that", "whether", "when", "for"})
_DEMONSTRATIVES = frozenset({"this", "that", "these", "those", "such"})
_NP_MODIFIER_DEPS = frozenset(
    {"det", "amod", "compound", "poss", "nummod", "nmod", "quantmod", "case"}
)


@dataclass(frozen=True)
class Carry:
    """Replace ``text[start:end]`` (a pronoun) with ``antecedent``."""

    start: int
    end: int
    antecedent: str


Carries = tuple[Carry, ...]


def carry_over(
    right: Span,
    sentence: Span,
    left: Span,
    quoted: list[tuple[int, int]],
    *,
    explicit: bool,
) -> Carries | None:
    """The pronouns of ``right`` to replace by the topic of the left
    ``sentence`` (else of ``left``), or ``None`` when ``right`` has anaphora
    that cannot be resolved. Only an ``explicit`` cut carries a topic over;
    pronouns inside ``quoted`` character ranges are quoted speech."""
    carries: list[Carry] = []
    for tok in right:
        if any(a <= tok.idx < b for a, b in quoted):
            continue
        kind = _anaphor_kind(tok, right)
        if kind is None:
            continue
        if kind == "carry" and explicit:
            antecedent = _antecedent(sentence, tok) or _antecedent(left, tok)
            if antecedent is not None:
                carries.append(Carry(tok.idx, tok.idx + len(tok.text), antecedent))
                continue
            if tok.lower_ == "they" and tok.dep_ == "nsubj":
                continue  # generic "they": "how do they know how many people ..."
        return None
    return tuple(carries)


def apply_carry(text: str, start: int, end: int, carries: Carries) -> str:
    """``text[start:end]`` with the carried pronouns in it replaced."""
    out: list[str] = []
    pos = start
    for c in sorted(carries, key=lambda c: c.start):
        if start <= c.start < end:
            out.append(text[pos : c.start])
            out.append(c.antecedent)
            pos = c.end
    out.append(text[pos:end])
    return "".join(out)


def _anaphor_kind(tok: Token, unit: Span) -> str | None:
    """``"carry"`` for a personal pronoun the left clause's topic can replace,
    ``"other"`` for anaphora that cannot be resolved, ``None`` when ``tok``
    points nowhere outside its own clause."""
    low = tok.lower_
    if low in _ANAPHORIC_PRONOUNS and tok.tag_ in {"PRP", "PRP$"}:
        if (low == "it" and _is_dummy_it(tok)) or _has_internal_antecedent(tok, unit):
            return None
        if low in _CARRY_PRONOUNS and tok.tag_ == "PRP":
            is_subject = tok.dep_ in {"nsubj", "nsubjpass"}
            if low in _SUBJECT_PRONOUNS and is_subject:
                # "how does it ...": yes; a declarative "it was ..." is not
                return "carry" if _is_interrogative_clause(tok, unit) else "other"
            if not is_subject:
                return "carry"
        return "other"
    if low in _DEMONSTRATIVES and tok.tag_ == "DT":
        if tok.dep_ == "det":
            noun = tok.head
            if any(c.dep_ in {"relcl", "acl"} for c in noun.children):
                return None  # "this girl who ...": introduced, not referring back
            if any(t.i < tok.i and _same_noun(t, noun) for t in unit):
                return None  # "... PSUs ... these PSUs"
            if any(
                t.i < tok.i and t.pos_ in {"NOUN", "PROPN"} and t.sent.start != tok.sent.start
                for t in unit
            ):
                return None  # "... earning 19000 rupees. ... will this salary ..."
            return "other"
        # "Is that possible?": refers to a clause; fine if one precedes it here
        head = tok.head.i
        if any(t.i < tok.i and t.pos_ in CLAUSE_POS and head not in {t.i, t.head.i} for t in unit):
            return None
        return "other"
    if low == "there" and tok.dep_ != "expl" and tok.pos_ == "ADV":
        return "other"
    if low in {"one", "ones"} and (
        (
            tok.pos_ in {"NOUN", "PRON"}
            and any(
                c.dep_ in {"det", "amod"} and c.lower_ not in _QUANTIFIERS for c in tok.children
            )
        )
        or (tok.pos_ == "NUM" and tok.dep_ in {"dobj", "pobj", "attr"})  # "buy one"
    ):
        return None if _has_internal_antecedent(tok, unit) else "other"
    return None


def _is_dummy_it(tok: Token) -> bool:
    """``it`` without antecedent: "is it safe to ...", "how long does it take
    to ...", "does it matter that ...", "it's been two weeks since ..."."""
    if tok.dep_ == "expl":
        return True
    head = tok.head
    holders = [head, *(c for c in head.children if c.dep_ in {"acomp", "attr", "oprd"})]
    for h in holders:
        for c in h.children:
            if c.i <= tok.i:
                continue
            if c.dep_ in {"xcomp", "ccomp", "csubj"}:
                return True
            if c.dep_ == "advcl" and any(a.tag_ == "TO" for a in c.children):
                return True  # "what does it take to ..."
            if (
                c.dep_ == "advcl"
                and head.lemma_ == "be"
                and any(
                    m.dep_ == "mark" and m.lower_ in {"if", "whether", "when"} for m in c.children
                )
            ):
                return True  # "is it okay if ..."
    if head.lemma_ == "be":
        for c in head.children:
            if c.dep_ == "attr" and any(r.dep_ == "relcl" for r in c.children):
                return True  # cleft: "is it the dark matter that ..."
            nxt = c.nbor(1) if c.i + 1 < len(c.doc) else None
            if c.dep_ == "acomp" and nxt is not None and nxt.lower_ in _EXTRAPOSITION_MARKERS:
                return True  # "is it okay if ...", "is it true that ..."
    return head.lemma_ == "be" and any(
        c.lemma_.lower() in _TIME_NOUNS for c in head.children if c.dep_ in {"attr", "npadvmod"}
    )


def _excluded_antecedents(tok: Token) -> set[int]:
    """Nouns that cannot be the antecedent of ``tok``: the nouns it is a
    complement or possessor of, and their conjuncts ("the pros and cons of
    *it*", "the effect with *it*")."""
    out: set[int] = set()
    cur = tok
    while cur.dep_ in {"pobj", "prep", "poss", "compound"} and cur.head.i != cur.i:
        cur = cur.head
        out.add(cur.i)
        out.update(c.i for c in cur.conjuncts)
    return out


def _same_noun(a: Token, b: Token) -> bool:
    return a.lower_ == b.lower_ or a.lemma_.lower() == b.lemma_.lower()


def _has_internal_antecedent(tok: Token, unit: Span) -> bool:
    """A noun (or "someone") before ``tok`` in its own clause it can refer to."""
    excluded = _excluded_antecedents(tok) | _clause_mate_subjects(tok)
    return any(
        t.i < tok.i
        and t.i not in excluded
        and (t.pos_ in {"NOUN", "PROPN"} or t.lower_ in _INDEFINITE_PRONOUNS)
        and not _in_wh_phrase(t)
        and _agrees(tok, t, strict=False)
        for t in unit
    )


def _clause_mate_subjects(tok: Token) -> set[int]:
    """An object pronoun cannot refer to the subject of its own verb
    ("what should people know about *them*": them != people)."""
    if tok.dep_ in SUBJECT_DEPS or tok.tag_ == "PRP$":
        return set()  # possessives may be bound by the subject: "our sun ... its phase"
    cur = tok
    while cur.pos_ not in CLAUSE_POS and cur.head.i != cur.i:
        cur = cur.head
    return {c.i for c in cur.children if c.dep_ in SUBJECT_DEPS}


def _is_interrogative_clause(tok: Token, unit: Span) -> bool:
    """``tok`` (a subject) comes after a wh-word or an inverted auxiliary."""
    head = tok.head
    return any(
        t.i < tok.i and (is_wh(t) or (t.pos_ == "AUX" and head.i in {t.i, t.head.i})) for t in unit
    )


def _in_wh_phrase(tok: Token) -> bool:
    """``tok`` is (inside) the questioned phrase: "what type of *events*"."""
    cur = tok
    while True:
        if is_wh_phrase(cur):
            return True
        if cur.dep_ not in {"pobj", "prep", "conj", "compound", "appos"} or cur.head.i == cur.i:
            return False
        cur = cur.head


def _agrees(pronoun: Token, noun: Token, *, strict: bool) -> bool:
    """Number agreement of a pronoun and a noun. Proper nouns agree with
    anything ("Kubernetes" ... "it"). Not ``strict``: "they" may be singular
    ("a person who ... their own business")."""
    low = pronoun.lower_
    if noun.lower_ in _INDEFINITE_PRONOUNS:
        return low not in {"it", "its", "itself"}
    if low in _PERSONAL_PRONOUNS and strict and noun.pos_ != "PROPN":
        return noun.lemma_.lower() in _PERSON_NOUNS
    if noun.pos_ == "PROPN":
        return True
    plural = noun.tag_ in {"NNS", "NNPS"}
    if low in _PLURAL_PRONOUNS:
        return plural or not strict
    return not plural


def _antecedent(span: Span, pronoun: Token) -> str | None:
    """The noun phrase a pronoun of the next clause refers to: the left
    clause's subject, else its predicate noun, object, prepositional object
    (the first that agrees with the pronoun)."""
    candidates = [
        t
        for t in span
        if t.pos_ in {"NOUN", "PROPN"}
        and not is_wh(t)
        and not is_wh_phrase(t)
        and _agrees(pronoun, t, strict=True)
    ]
    for deps in ({"nsubj", "nsubjpass"}, {"attr"}, {"dobj"}, {"pobj"}):
        for tok in candidates:
            if tok.dep_ in deps:
                return _noun_phrase(tok)
    return None


def _noun_phrase(tok: Token) -> str:
    doc = tok.doc
    start = tok.i
    for child in tok.children:
        if child.dep_ in _NP_MODIFIER_DEPS and child.i < tok.i:
            start = min(start, child.left_edge.i)
    while start < tok.i and (is_wh(doc[start]) or doc[start].is_punct):
        start += 1
    end = tok.i
    for child in tok.children:
        if child.i > tok.i and child.dep_ in {"prep", "nummod"}:
            end = max(end, child.right_edge.i)  # "the history of Rome", "iPhone 7"
    for i in range(tok.i + 1, end + 1):  # never across a comma or a conjunction
        if doc[i].is_punct or doc[i].dep_ == "cc" or doc[i].pos_ in CLAUSE_POS:
            end = i - 1
            break
    if end - start + 1 > _MAX_CARRIED_WORDS:
        end = tok.i
    phrase = doc[start : end + 1]
    first = phrase[0]
    out = phrase.text
    if first.pos_ == "DET" and first.text[:1].isupper():
        out = out[:1].lower() + out[1:]
    return out
