"""Clausal coordination in an English parse: the ``and`` that joins two
clauses of a question (a cut), as opposed to ``and`` between noun phrases,
verbs sharing a subject, subordinate clauses, correlatives or wh-words.

Parsing a fragment again (``parse``) is left to the caller, which owns the
spaCy pipeline.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from .english_grammar import (
    AUX_WORDS,
    CLAUSE_POS,
    SUBJECT_DEPS,
    is_interrogative_span,
    is_wh,
    is_wh_phrase,
    starts_interrogative,
)
from .english_text import TRAILING_JUNK_RE, Cut, is_follow_up

if TYPE_CHECKING:
    from spacy.tokens import Doc, Span, Token

_SENTENCE_END_RE = re.compile(r"[.!](?=\s+[A-Z])")
_MAX_ADVERBIAL_WORDS = 6
_MAX_LABEL_WORDS = 8
_LABEL_PUNCT = frozenset({"-", "(", ")", "/", "&", "'", "\u2019"})
_SUBORDINATE_DEPS = frozenset({"advcl", "relcl", "acl", "ccomp", "xcomp", "pcomp", "csubj"})


def coord_cuts(doc: Doc, text: str, parse: Callable[[str], Doc]) -> list[Cut]:
    """Explicit cuts at every ``and`` joining two clauses where at least one
    side is a question."""
    cuts: list[Cut] = []
    for tok in doc:
        if tok.lower_ != "and" or tok.i + 1 >= len(doc) or tok.i == 0:
            continue
        nxt = doc[tok.i + 1]
        if nxt.is_punct:
            continue
        prev = doc[tok.i - 1]
        if prev.text in {"?", ";"} or prev.text.endswith("?"):
            continue  # "? And ..." is a sentence cut with a marker
        if not _is_interrogative_context(tok):
            continue  # two statements joined by "and" are one text
        statement = False
        if _is_subordinate_coordination(tok) or _completes_correlative(tok):
            continue
        if is_wh(prev) and is_wh(nxt) and prev.i > prev.sent.start:
            continue  # "where and when would you ..."
        if not (_lexical_clause_start(doc, nxt, parse) or _parser_clause_coordination(tok)):
            if not _statement_then_question(text, nxt, parse):
                continue
            statement = True
        left_end = len(TRAILING_JUNK_RE.sub("", text[: tok.idx]))
        cuts.append(
            Cut(
                left_end,
                nxt.idx,
                explicit=True,
                follow_up=is_follow_up(text, nxt.idx),
                coord=True,
                statement=statement,
            )
        )
    return cuts


def _statement_then_question(text: str, nxt: Token, parse: Callable[[str], Doc]) -> bool:
    """``Q, and <complete statement>. <question>?``: the statement is the
    context of a new question. The statement is parsed on its own (the
    parser often attaches such an ``and`` to a noun)."""
    m = _SENTENCE_END_RE.search(text, nxt.idx)
    q = text.find("?", nxt.idx)
    if m is None or (q != -1 and q < m.start()):
        return False
    sent = parse(text[nxt.idx : m.start() + 1])
    roots = [t for t in sent if t.dep_ == "ROOT"]
    if len(roots) != 1 or roots[0].pos_ not in CLAUSE_POS:
        return False
    subjects = [c for c in roots[0].children if c.dep_ in SUBJECT_DEPS]
    return bool(subjects) and subjects[0].left_edge.i == 0


def _clausal_conj(cc: Token) -> Token | None:
    """The verb conjoined by ``cc`` to its head (the head's next ``conj``
    after it), or ``None`` when the head has no such verbal conjunct."""
    conj = next((c for c in cc.head.children if c.dep_ == "conj" and c.i > cc.i), None)
    if conj is None or conj.pos_ not in CLAUSE_POS:
        return None
    return conj


def _parser_clause_coordination(cc: Token) -> bool:
    """The parser attaches ``and`` to a verb whose next ``conj`` is an
    interrogative clause of its own (wh-word, or auxiliary before subject)."""
    head = cc.head
    if head.pos_ not in CLAUSE_POS and head.dep_ != "ROOT":
        return False
    conj = _clausal_conj(cc)
    if conj is None:
        return False
    after = [c for c in conj.children if c.i > cc.i]
    subjects = [c.i for c in after if c.dep_ in SUBJECT_DEPS]
    if not subjects and not any(is_wh(c) for c in after):
        return False
    return any(is_wh(c) for c in after) or any(c.pos_ == "AUX" and c.i < subjects[0] for c in after)


def _is_interrogative_context(cc: Token) -> bool:
    """At least one side of the coordination is a question."""
    doc = cc.doc
    return is_interrogative_span(doc[: cc.i]) or starts_interrogative(doc[cc.i + 1 :])


def _lexical_clause_start(doc: Doc, nxt: Token, reparse: Callable[[str], Doc]) -> bool:
    """``and`` followed by a wh-word, an inverted auxiliary (+ subject), a
    short adverbial + comma ("and on average, how ...") or a short topic
    label + colon ("and Quora: how ...") then one of those."""
    if is_wh(nxt):
        return True
    if nxt.lower_ in AUX_WORDS and nxt.i + 1 < len(doc):
        after = doc[nxt.i + 1]
        if after.lower_ in {"not", "n't"} or after.pos_ in {"ADV", "PART", "ADP"}:
            return False
        # Parsed alone, the right side must open with an auxiliary inverted
        # with its subject ("will hair wax damage ...": the tagger misreads it
        # inside the long sentence; "and had sex with ..." is a verb phrase).
        end = next((t.i for t in doc[nxt.i :] if t.text == "?"), len(doc) - 1)
        return _starts_with_inversion(reparse(doc[nxt.i : end + 1].text))
    first = nxt
    for tok in doc[nxt.i : nxt.i + _MAX_LABEL_WORDS + 1]:
        if tok.text == "," and first.pos_ in {"ADP", "ADV", "SCONJ"}:
            if tok.i - nxt.i > _MAX_ADVERBIAL_WORDS:
                return False
            return tok.i + 1 < len(doc) and _lexical_clause_start(doc, doc[tok.i + 1], reparse)
        if tok.text == ":":
            return tok.i + 1 < len(doc)
        if tok.pos_ in CLAUSE_POS or (tok.is_punct and tok.text not in _LABEL_PUNCT):
            return False
    return False


def _starts_with_inversion(doc: Doc) -> bool:
    """The first word is an auxiliary of the first subject's verb (or the
    copula whose subject it is): "is civil engineering better ...", "can opera
    singers sing ..."."""
    if not len(doc) or (doc[0].pos_ != "AUX" and doc[0].dep_ not in {"aux", "auxpass"}):
        return False
    first = doc[0]
    subject = next((t for t in doc if t.dep_ in SUBJECT_DEPS), None)
    if subject is None:
        return False
    return first.i in {subject.head.i, subject.i} or first.head.i in {subject.head.i, subject.i}


def _is_inverted_question(doc: Doc | Span) -> bool:
    """A direct question: the first subject is a wh-phrase ("who is ...",
    "how many panels will ..."), or an auxiliary precedes it ("does it ...")."""
    for tok in doc:
        if tok.dep_ in SUBJECT_DEPS:
            if is_wh(tok) or is_wh_phrase(tok):
                return True
            return any(c.i < tok.i and c.pos_ == "AUX" for c in tok.head.children) or (
                tok.head.pos_ == "AUX" and tok.head.i < tok.i
            )
    return False


def _completes_correlative(cc: Token) -> bool:
    """``between X and Y``, ``both X and Y``: the first ``and`` after them in
    the sentence closes the pair."""
    doc = cc.doc
    for i in range(cc.i - 1, cc.sent.start - 1, -1):
        low = doc[i].lower_
        if low in {"and", "?", ";"}:
            return False
        if low in {"between", "both"}:
            return True
    return False


def _is_subordinate_coordination(cc: Token) -> bool:
    """``... when we are happy and when we are sad``: ``and`` joins two
    subordinate clauses (not inverted), not two questions."""
    if cc.head.dep_ not in _SUBORDINATE_DEPS:
        return False
    conj = _clausal_conj(cc)
    if conj is None:
        return False
    return not _is_inverted_question(conj.doc[cc.i + 1 : conj.right_edge.i + 1])
