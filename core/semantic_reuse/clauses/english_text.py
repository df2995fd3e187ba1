"""Text-level rules of the English splitter: sentence-boundary cut
candidates (``?``, ``;``, discourse markers, follow-up openers), quotations
and the clean-up of a finished clause.

Pure string work: no parse is needed here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .rules import capitalize_first

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
_QUOTE_RE = re.compile(r"\"+[^\"]+\"+|\u201c[^\u201d]+\u201d")
TRAILING_JUNK_RE = re.compile(r"[\s,;:\-\u2013\u2014]+$")
_LEADING_JUNK_RE = re.compile(r"^[\s,;:\-\u2013\u2014]+")


@dataclass(frozen=True)
class Cut:
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


def is_follow_up(text: str, pos: int) -> bool:
    """The text at ``pos`` opens with a follow-up marker (``Or``, ``But``,
    ``If so``, ``What about`` ...)."""
    return _FOLLOW_UP_RE.match(text, pos) is not None


def sentence_cuts(text: str) -> list[Cut]:
    """Cuts after ``?`` (followed by whitespace) and at ``;``; explicit when a
    ``;`` or a discourse marker (``And``, ``Also,``, ``Plus,`` ...) marks them."""
    cuts: list[Cut] = []
    for m in _SENTENCE_CUT_RE.finditer(text):
        sep = m.group(0)
        left_end = m.start() + (len(sep.split(";")[0].rstrip()) if "?" in sep else 0)
        right_start = m.end()
        explicit = ";" in sep
        marker = _MARKER_RE.match(text, right_start)
        if marker is not None and marker.end() < len(text):
            explicit = True
            right_start = marker.end()
        cuts.append(Cut(left_end, right_start, explicit, is_follow_up(text, right_start)))
    return cuts


def quoted_ranges(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Character ranges of quotations: pronouns inside them are quoted speech."""
    return [(m.start(), m.end()) for m in _QUOTE_RE.finditer(text, start, end)]


def finish(clause: str, is_question: bool) -> str:
    """Trim connectors, end a question with ``?`` and capitalise; ``""`` when
    nothing is left."""
    clause = _LEADING_JUNK_RE.sub("", clause)
    clause = TRAILING_JUNK_RE.sub("", clause)
    if not clause:
        return ""
    if is_question and not clause.endswith("?"):
        clause = clause.rstrip(".!") + "?"
    return capitalize_first(clause)
