"""The word lists the guard's rules read: stopwords, negators, number words, direction
markers, for English and for Chinese (compared with jieba's segments)."""

from __future__ import annotations

import re
from types import MappingProxyType


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
CJK_RE = re.compile(f"[{CJK}]")

# ---------------------------------------------------------------------------------------
# English

STOPWORDS = _words(
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
NOT_NAMES = _words("i i'm i've i'd i'll ok okay mr mrs ms dr sir madam")

NEGATORS_EN = _words("not no never none nobody nothing nowhere neither nor without cannot non")

UNITS = MappingProxyType({
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
    "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40,
    "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
})  # fmt: skip
SCALES = MappingProxyType(
    {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9, "trillion": 10**12}
)
# "second" is left out: it is as often a unit of time.
ORDINALS = MappingProxyType({
    "first": 1, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12,
})  # fmt: skip
SUFFIX_SCALE = MappingProxyType({"k": 1000, "bn": 10**9})

# Markers of an asymmetric relation between the words before and after them.
DIRECTION_EN = _words("to into towards toward from than -> → =>")
# The relation a marker states, and whether its right side comes first in it ("B from A"
# is the path A -> B).
RELATION_EN = MappingProxyType({"from": ("path", True), "than": ("compare", False)})

# spaCy entity labels that are numbers, not names (the numbers check covers them).
SPACY_NUMERIC = _words("CARDINAL ORDINAL QUANTITY MONEY PERCENT DATE TIME")

# ---------------------------------------------------------------------------------------
# Chinese

# Chinese numerals, judged on jieba's segments: a segment that is a numeral, optionally
# preceded by 第 and followed by a measure word (三个, 十五岁, 第一次). Words that merely
# contain a numeral character (三星, 一样, 统一) are segmented whole and never match.
# 一 and 两 alone are usually an article ("一个人", "一下"): weak numbers.
ZH_DIGITS = MappingProxyType(
    {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
     "八": 8, "九": 9}
)  # fmt: skip
ZH_SCALES = MappingProxyType({"十": 10, "百": 100, "千": 1000, "万": 10**4, "亿": 10**8})
ZH_MEASURE = (
    "个岁年月日号天次元块斤米分秒点级层本只条部集代名位种套件台张双场周期季章节页楼路倍"
    "折码寸升克吨度瓶杯碗家门辆头匹句字遍胎口"
)
ZH_NOT_NUMBERS = _words("十分 万分 千万 万一 一一 一点 一起 一下 一直 一定 一边")
ZH_NEG_CHARS = "不没未别无非勿莫"
# A segment that starts with a negation character negates ("不", "没有", "无法", "不能"),
# and so does one with 不/没 inside ("看不懂", "睡不着"), except these words.
ZH_NOT_NEGATION = _words(
    """
    不错 不过 不同 不但 不仅 不少 不断 不然 不管 不论 不如 不久 不禁 不停 不得不 不一样
    不好意思 不至于 不止 差不多 了不起 不得了 对不起 来不及 大不了 要不 要不然 要不是
    非常 非得 无论 无聊 无线 无锡 没错 没事 没关系 别人 别的 别墅 别名 未来 未必 莫名
    莫过于 无人机 无线网 无线网络 无数 无限 无敌 非洲 是非
    """
)
DIRECTION_ZH = _words("到 去 至 往 飞 飞往 前往 从 比 转成 转换成 换成 转为")
RELATION_ZH = MappingProxyType({"从": ("path", True), "比": ("compare", False)})
ZH_STOPWORDS = _words(
    """
    的 了 吗 呢 吧 啊 呀 么 是 在 和 与 及 或 也 都 就 还 又 很 有 我 你 他 她 它 我们 你们 他们
    这 那 这个 那个 哪 哪个 哪些 什么 怎么 怎么样 怎样 如何 为什么 多少 几 谁 可以 能 会 要 想
    一个 一下 请问 请 个 把 被 给 让 对 得 地 着 过 上 下 中 里 怎么办 好 更 最 哪里 哪儿
    """
)
# jieba's part-of-speech tags of proper nouns: person, place, organisation, other.
ZH_NAME_TAGS = _words("nr nrfg nrt ns nt nz")
# Administrative suffixes that a place name may carry or drop (南宁市 / 南宁).
ZH_ADMIN_SUFFIX = re.compile(r"(?:省|市|县|区|镇|乡|村)$")
