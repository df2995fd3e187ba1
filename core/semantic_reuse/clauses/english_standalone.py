"""Whether one side of an English cut stands alone as a clause: a verb or a
real question, not a fragment, a bare command, an elliptical relational noun,
a repeated definite or a short contextless question.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .english_grammar import AUX_WORDS, CLAUSE_POS, SUBJECT_DEPS, is_wh

if TYPE_CHECKING:
    from spacy.tokens import Span

_FINITE_TAGS = frozenset({"VBZ", "VBP", "VBD", "MD"})
_CONTEXTLESS_MAX_WORDS = 6
#: Verbs that stand in for a situation described elsewhere: "what should I *do*?"
_PRO_VERBS = frozenset({"do", "happen", "think", "mean", "suggest", "recommend"})
_PRO_QUANTIFIERS = frozenset({"many", "much", "most", "few", "some", "all", "both"})
#: Nouns that need a complement ("examples *of X*"); bare, they point back.
_RELATIONAL_NOUNS = frozenset(
    {
        "example", "reason", "cause", "effect", "consequence", "advantage",
        "disadvantage", "benefit", "drawback", "pro", "con", "difference",
        "similarity", "alternative", "solution", "purpose", "meaning",
        "implication", "impact", "outcome", "result", "detail", "explanation",
        "answer",
    }
)  # fmt: skip
_COMPLEMENT_DEPS = frozenset({"prep", "poss", "compound", "relcl", "acl", "nmod"})
_CORE_DEPS = frozenset({"nsubj", "nsubjpass", "attr", "dobj"})


def has_clause(span: Span) -> bool:
    return any(t.pos_ in CLAUSE_POS for t in span)


def word_count(span: Span) -> int:
    return sum(1 for t in span if not t.is_punct)


def is_sentence(span: Span) -> bool:
    """A clause, or a verbless wh-question of some length ("What some best
    horror movies?"); not a fragment like "Why?" or "Any tips?"."""
    if any(t.tag_ in _FINITE_TAGS for t in span):
        return True
    words = [t for t in span if not t.is_punct]
    if words and is_wh(words[0]) and any(t.tag_ == "TO" for t in words):
        return True  # "How to set up a campaign?"
    return len(words) >= 4 and is_wh(words[0]) and any(t.pos_ in {"NOUN", "PROPN"} for t in words)


def is_contextless(span: Span) -> bool:
    """A short question with no noun, name or number of its own whose verb or
    quantifier stands in for the situation ("What should I do?", "What
    would happen?", "How many are international?"): it only makes sense with
    the sentence before it."""
    words = [t for t in span if not t.is_punct]
    if len(words) > _CONTEXTLESS_MAX_WORDS or any(
        t.pos_ in {"NOUN", "PROPN", "NUM"} for t in words
    ):
        return False
    return any(
        (t.dep_ == "ROOT" and t.lemma_ in _PRO_VERBS)
        or (t.lower_ in _PRO_QUANTIFIERS and t.dep_ in _CORE_DEPS)
        for t in words
    )


def repeats_bare_definite(right: Span, left: Span) -> bool:
    """A bare definite description in ``right`` ("the requirements", no
    complement) whose noun occurs in ``left``: it refers back."""
    left_nouns = {t.lemma_.lower() for t in left if t.pos_ == "NOUN"}
    for tok in right:
        if (
            tok.pos_ == "NOUN"
            and tok.lemma_.lower() in left_nouns
            and any(c.dep_ == "det" and c.lower_ == "the" for c in tok.children)
            and not any(c.dep_ in _COMPLEMENT_DEPS | {"amod", "nummod"} for c in tok.children)
        ):
            return True
    return False


def is_imperative_fragment(span: Span) -> bool:
    """``Explain?`` / ``Please help.``: a bare command, not a question."""
    words = [t for t in span if not t.is_punct and t.lower_ != "please"]
    if not words:
        return True
    first = words[0]
    if first.tag_ != "VB" or first.lower_ in AUX_WORDS:
        return False
    return not any(c.dep_ in SUBJECT_DEPS for c in first.children)


def has_elliptical_relational_noun(span: Span) -> bool:
    """ "What are some examples?": a relational noun without its complement
    and no other content noun to lean on."""
    nouns = [t for t in span if t.pos_ in {"NOUN", "PROPN"}]
    relational = [t for t in nouns if t.lemma_.lower() in _RELATIONAL_NOUNS]
    if not relational or len(relational) < len(nouns):
        return False
    doc = span.doc
    for tok in relational:
        if tok.dep_ not in _CORE_DEPS and not any(c.dep_ == "conj" for c in tok.head.children):
            continue
        if any(c.dep_ in _COMPLEMENT_DEPS for c in tok.children):
            continue
        if tok.i + 1 < len(doc) and doc[tok.i + 1].pos_ in {"ADP", "PART"}:
            continue  # "solutions to ...", even when mis-parsed
        return True
    return False
