"""Word classes and token predicates shared by the English clause modules.

Only spaCy *types* are used here (no import at run time): the parse comes
from the splitter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spacy.tokens import Span, Token

WH_TAGS = frozenset({"WP", "WRB", "WDT", "WP$"})
WH_WORDS = frozenset({"what", "how", "why", "where", "when", "who", "whom", "whose", "which"})
AUX_WORDS = frozenset(
    {
        "is", "are", "was", "were", "am", "do", "does", "did", "can", "could",
        "should", "would", "will", "shall", "may", "might", "must", "has",
        "have", "had",
    }
)  # fmt: skip
SUBJECT_DEPS = frozenset({"nsubj", "nsubjpass", "expl", "csubj", "csubjpass"})
CLAUSE_POS = frozenset({"VERB", "AUX"})
#: A wh-word under one of these is relative/adverbial, not a question word.
EMBEDDED_DEPS = frozenset({"relcl", "advcl", "acl"})


def is_wh(tok: Token) -> bool:
    return tok.tag_ in WH_TAGS or tok.lower_ in WH_WORDS


def is_wh_phrase(noun: Token) -> bool:
    """``what companies``, ``how much money``: the questioned phrase, not an
    antecedent."""
    return any(is_wh(t) for t in noun.subtree if t.i < noun.i)


def starts_interrogative(span: Span) -> bool:
    words = [t for t in span if not t.is_punct]
    if not words:
        return False
    first = words[0]
    return is_wh(first) or first.lower_ in AUX_WORDS


def is_interrogative_span(span: Span) -> bool:
    """Has a question mark, a question wh-word (not a relative "who" or an
    adverbial "when") or starts like a question."""
    return any(
        t.text == "?" or (is_wh(t) and t.head.dep_ not in EMBEDDED_DEPS) for t in span
    ) or starts_interrogative(span)
