"""Chinese clause splitter: jieba segmentation plus a conjunction/punctuation
lexicon.

How a text is split
-------------------
1. *Cut candidates*:

   - after ``？``/``?`` (followed by more text); the cut is *explicit* when
     a ``；``/``;`` or a conjunction from the lexicon follows (``另外，``,
     ``此外，``, ``还有，``, ``以及``, ``并且``, ``同时``), else *implicit*;
   - at ``；``/``;`` (explicit);
   - at a comma (``，``/``,``) or ``。``/``.``/``！`` directly followed by a
     lexicon conjunction (explicit).

   Conjunctions count only as jieba tokens of their own (``同时代`` is not
   ``同时``), only after punctuation (``X以及Y的特点`` and ``阐述并且分析``
   are inner coordination), and the discourse markers 另外/此外/还有 only
   when a comma follows or jieba does not read them as a determiner/verb
   (``另外一台电脑``, ``还有什么办法``). ``和``/``与``/``跟``/``及`` are never
   cut points, so "X和Y的区别" and "X与Y哪个好" stay whole.

2. With explicit cuts present only those are used, else implicit ones.

3. Validation: both sides need at least two characters of content; no
   right side may open with a pronoun (``它``/``其``/``该``: "什么是区块链？
   另外，它有什么用？" stays whole). Across an explicit cut both sides must
   be questions or predicates, not bare noun phrases ("X的优点，以及缺点？"
   stays whole), and left of a comma cut there must be a question or a
   request (``求``/``推荐``...): "我想学英语，同时学日语，怎么安排时间？"
   stays whole. Across punctuation alone (``？``/``；``) the right side must
   not be a follow-up: a short fragment (``为什么？``, ``安全吗？``,
   ``多少？``), a sentence opening with a demonstrative (``这是什么原因？``)
   or containing an anaphor (``它``, ``这样``), or a short subject-less
   predicate (``可以用水冲吗？``, ``值多少钱？``).

4. Clauses are trimmed of connectors and end with ``？`` when the original
   was a question.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from typing import Any

from semantic_reuse.errors import InvalidRequestError, InvalidTypeError

from .rules import count_cjk

__all__ = ["ChineseClauseSplitter"]

_Q_CUT_RE = re.compile(r"[?？]+[\"'”’」』）)\]】]*\s*(?:[;；]\s*)?(?=\S)")
_SEMI_CUT_RE = re.compile(r"[;；]\s*(?=\S)")
_COMMA_CUT_RE = re.compile(r"[,，。.!！]\s*(?=\S)")

#: Conjunctions that join clauses after punctuation.
STRONG_CONJUNCTIONS = ("以及", "并且", "同时")
#: Discourse markers ("besides", "also") that open a new question.
DISCOURSE_MARKERS = ("另外", "此外", "还有")
_ALL_MARKERS = STRONG_CONJUNCTIONS + DISCOURSE_MARKERS
_MARKER_TAIL_RE = re.compile(r"\s*[,，：:、]?\s*")

#: Words after a discourse marker that show it is a determiner or verb.
_NOT_MARKER_FOLLOWERS = frozenset(
    {"什么", "哪些", "哪个", "别的", "其他", "其它", "没有", "多少", "几", "的", "吗", "呢"}
)
_QUESTION_WORDS = (
    "什么", "怎么", "怎样", "如何", "为什么", "为何", "为啥", "哪", "谁", "几",
    "多少", "吗", "么", "呢", "是否", "能否", "可否", "有没有", "是不是",
    "会不会", "能不能", "要不要", "可不可以", "好不好", "对不对", "咋",
    "多久", "多大", "多长", "多高", "多远", "多重",
)  # fmt: skip
#: Question words that ask about the predicate, not a topic ("什么是X" has
#: a topic; "怎么编？" does not).
_ADVERBIAL_QUESTION_WORDS = (
    "怎么", "怎样", "如何", "为什么", "为何", "为啥", "多少", "几", "咋",
    "是否", "能否", "可否", "有没有", "是不是", "会不会", "能不能", "要不要",
)  # fmt: skip
#: Requests are queries too: "求一部电影", "推荐几本书".
_REQUEST_OPENERS = (
    "求", "跪求", "急求", "推荐", "请推荐", "请问", "请教", "谁有", "哪里有", "帮忙", "麻烦",
)  # fmt: skip
_V_NOT_V_RE = re.compile(r"(.)不\1")
#: Pronouns that, opening a clause, refer back to the previous question even
#: after an explicit conjunction. (Demonstratives such as "这个X" are often
#: deictic -- "这个动漫人物是谁？" points at a picture -- so they only count
#: after punctuation alone.)
_PRONOUN_OPENERS = ("它", "其", "该")
#: Openers that make a sentence after a bare "？" lean on the previous one.
_ANAPHORIC_OPENERS = (
    "这", "那", "它", "他", "她", "其", "此", "该", "上述", "以上", "前者", "后者",
)  # fmt: skip
#: Anaphors that make a sentence lean on the previous one wherever they are.
_ANAPHORS = ("它", "这样", "那样", "上述", "以上")
_PREDICATE_FLAGS = ("v", "a", "d", "c", "p")
_CONTENT_RE = re.compile(r"[\w]", re.UNICODE)
_TRIM_RE = re.compile(r"^[\s,，;；:：、。.!！]+|[\s,，;；:：、]+$")
_TERMINAL = ("?", "？")

#: A sentence after an implicit "？" this short (content characters) is a
#: follow-up of the previous one.
FRAGMENT_MAX_CHARS = 4
#: A subject-less predicate this short is a follow-up too.
SHORT_PREDICATE_MAX_CHARS = 8


@dataclass(frozen=True)
class _Cut:
    left_end: int
    right_start: int
    explicit: bool
    #: a lexicon conjunction marks the cut (not punctuation alone)
    marker: bool = False
    #: the cut is at a comma (the left side has no "？" of its own)
    comma: bool = False


@dataclass(frozen=True)
class _Tok:
    word: str
    flag: str
    start: int


class ChineseClauseSplitter:
    """Splits compound Chinese questions into self-contained clauses.

    jieba's dictionary is loaded lazily on first use, into a tokenizer owned
    by this instance.
    """

    def __init__(self, *, max_chars: int = 1000) -> None:
        if max_chars < 1:
            raise InvalidRequestError(f"max_chars must be >= 1, got {max_chars}")
        self.max_chars = max_chars
        self._pos: Any = None
        self._lock = threading.Lock()

    def _tokenizer(self) -> Any:
        pos = self._pos
        if pos is None:
            with self._lock:
                pos = self._pos
                if pos is None:
                    import jieba
                    import jieba.posseg

                    tokenizer = jieba.Tokenizer()
                    # jieba prints its dictionary loading on stderr through its own logger
                    # (as the guard's segmenter does: keep it at WARNING)
                    logging.getLogger(jieba.__name__).setLevel(logging.WARNING)
                    tokenizer.initialize()
                    pos = jieba.posseg.POSTokenizer(tokenizer)
                    self._pos = pos
        return pos

    def warm_up(self) -> None:
        """Load jieba's dictionary now instead of on the first ``split``."""
        self.split("笔记本电脑开机黑屏怎么办？另外，家用烤箱哪个牌子比较好？")

    def _segment(self, text: str) -> list[_Tok]:
        toks: list[_Tok] = []
        offset = 0
        for pair in self._tokenizer().cut(text):
            word = str(pair.word)
            toks.append(_Tok(word, str(pair.flag), offset))
            offset += len(word)
        return toks

    # ------------------------------------------------------------------ API

    def split(self, text: str) -> list[str]:
        if not isinstance(text, str):
            raise InvalidTypeError(f"text must be str, got {type(text).__name__}")
        text = text.strip()
        if not text or len(text) > self.max_chars:
            return []
        toks = self._segment(text)
        starts = {t.start: t for t in toks}
        cuts = self._cuts(text, toks, starts)
        accepted = self._accept(text, toks, cuts, explicit=True)
        if not accepted:
            accepted = self._accept(text, toks, cuts, explicit=False)
        if not accepted:
            return []
        is_question = _is_question(text)
        clauses: list[str] = []
        start = 0
        for cut in [*accepted, None]:
            end = cut.left_end if cut is not None else len(text)
            clause = _finish(text[start:end], is_question)
            if not clause:
                return []
            clauses.append(clause)
            if cut is not None:
                start = cut.right_start
        return clauses if len(clauses) >= 2 else []

    # --------------------------------------------------------- candidates

    def _cuts(self, text: str, toks: list[_Tok], starts: dict[int, _Tok]) -> list[_Cut]:
        cuts: dict[int, _Cut] = {}
        for m in _Q_CUT_RE.finditer(text):
            left_end = m.start() + len(m.group(0).rstrip().rstrip(";；").rstrip())
            explicit = bool(re.search(r"[;；]", m.group(0)))
            right_start = m.end()
            marker_end = self._marker_end(text, toks, starts, right_start, after_question=True)
            marker = marker_end is not None
            if marker_end is not None:
                explicit, right_start = True, marker_end
            cuts[m.start()] = _Cut(left_end, right_start, explicit, marker)
        for m in _SEMI_CUT_RE.finditer(text):
            if m.start() > 0 and text[m.start() - 1] in "?？":
                continue
            cuts.setdefault(m.start(), _Cut(m.start(), m.end(), explicit=True))
        for m in _COMMA_CUT_RE.finditer(text):
            marker_end = self._marker_end(text, toks, starts, m.end(), after_question=False)
            if marker_end is not None:
                cuts.setdefault(
                    m.start(),
                    _Cut(m.start(), marker_end, explicit=True, marker=True, comma=True),
                )
        return [cuts[k] for k in sorted(cuts)]

    @staticmethod
    def _marker_end(
        text: str, toks: list[_Tok], starts: dict[int, _Tok], pos: int, *, after_question: bool
    ) -> int | None:
        """End of a lexicon conjunction starting at ``pos`` (plus a following
        comma), or ``None``."""
        tok = starts.get(pos)
        if tok is None or tok.word not in _ALL_MARKERS:
            return None
        end = pos + len(tok.word)
        tail = _MARKER_TAIL_RE.match(text, end)
        has_comma = tail is not None and any(c in tail.group(0) for c in ",，：:、")
        end = tail.end() if tail is not None else end
        if end >= len(text):
            return None
        if tok.word in DISCOURSE_MARKERS and not has_comma:
            nxt = starts.get(end)
            if (
                not after_question
                or nxt is None
                or nxt.word in _NOT_MARKER_FOLLOWERS
                or nxt.flag in {"m", "q", "uj", "mq"}
            ):
                return None
        return end

    # ---------------------------------------------------------- validation

    def _accept(
        self, text: str, toks: list[_Tok], cuts: list[_Cut], *, explicit: bool
    ) -> list[_Cut]:
        accepted: list[_Cut] = []
        seg_start = 0
        for i, cut in enumerate(cuts):
            if cut.explicit != explicit:
                continue
            unit_end = cuts[i + 1].left_end if i + 1 < len(cuts) else len(text)
            left = text[seg_start : cut.left_end]
            right = text[cut.right_start : unit_end]
            if self._valid(left, right, toks, cut, seg_start):
                accepted.append(cut)
                seg_start = cut.right_start
        return accepted

    @staticmethod
    def _valid(left: str, right: str, toks: list[_Tok], cut: _Cut, left_start: int) -> bool:
        if _content_len(left) < 2 or _content_len(right) < 2:
            return False
        right_end = cut.right_start + len(right)
        right_toks = [t for t in toks if cut.right_start <= t.start < right_end]
        if right.startswith(_PRONOUN_OPENERS):
            return False  # "它有什么用？" leans on the previous question
        if cut.explicit:
            left_toks = [t for t in toks if left_start <= t.start < cut.left_end]
            if not (_is_clause(left, left_toks) and _is_clause(right, right_toks)):
                return False
        if cut.comma and not _is_question_like(left):
            return False  # "我想学英语，同时学日语": statements, not questions
        if cut.marker:
            return True
        # punctuation alone ("？", "；"): the right sentence must stand on its own
        if _content_len(right) <= FRAGMENT_MAX_CHARS:
            return False
        if right.startswith(_ANAPHORIC_OPENERS) or any(w in right for w in _ANAPHORS):
            return False
        words = [t for t in right_toks if _CONTENT_RE.search(t.word)]
        if not words:
            return False
        first = words[0]
        subjectless = first.flag.startswith(_PREDICATE_FLAGS) or first.word.startswith(
            _ADVERBIAL_QUESTION_WORDS
        )
        return not (subjectless and _content_len(right) <= SHORT_PREDICATE_MAX_CHARS)


# ---------------------------------------------------------------- helpers


def _content_len(text: str) -> int:
    return len(_CONTENT_RE.findall(text))


def _is_question(text: str) -> bool:
    return any(c in text for c in "?？") or any(w in text for w in _QUESTION_WORDS)


def _is_question_like(text: str) -> bool:
    """Has a question word or particle, an A-not-A or an alternative
    question, or is a request ("求...", "推荐...": a query all the same)."""
    return (
        text.lstrip().startswith(_REQUEST_OPENERS)
        or any(w in text for w in _QUESTION_WORDS)
        or _V_NOT_V_RE.search(text) is not None
        or "还是" in text
        or text.rstrip().endswith(_TERMINAL)
    )


def _is_clause(text: str, toks: list[_Tok]) -> bool:
    """A question or a predicate, not a bare noun phrase."""
    if _is_question_like(text):
        return True
    return count_cjk(text) >= 4 and any(t.flag.startswith(("v", "a")) for t in toks)


def _finish(clause: str, is_question: bool) -> str:
    clause = _TRIM_RE.sub("", clause)
    if not clause:
        return ""
    if is_question and not clause.endswith(_TERMINAL):
        clause = clause.rstrip("。.!！") + "？"
    return clause
