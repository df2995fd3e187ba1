"""Clause splitting with the real spaCy model and jieba (loaded once per module)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semantic_reuse.clauses import (
    AsyncConjunctionExtractor,
    ChineseClauseSplitter,
    ClauseSplitter,
    EnglishClauseSplitter,
    MultilingualClauseSplitter,
    cjk_ratio,
    detect_language,
    may_be_compound,
)


@pytest.fixture(scope="module")
def english() -> EnglishClauseSplitter:
    splitter = EnglishClauseSplitter()
    splitter.warm_up()
    return splitter


@pytest.fixture(scope="module")
def chinese() -> ChineseClauseSplitter:
    splitter = ChineseClauseSplitter()
    splitter.warm_up()
    return splitter


class _Recording:
    """Wraps a real splitter and records how many calls run at once. `delay_s` holds each
    call that long (a slow splitter, so that calls could overlap if the limit let them)."""

    def __init__(self, inner: ClauseSplitter, delay_s: float = 0.0) -> None:
        self.inner = inner
        self.delay_s = delay_s
        self.active = 0
        self.peak = 0
        self.calls = 0
        self.entered = threading.Event()
        self._lock = threading.Lock()

    def split(self, text: str) -> list[str]:
        with self._lock:
            self.active += 1
            self.calls += 1
            self.peak = max(self.peak, self.active)
        self.entered.set()
        try:
            if self.delay_s:
                time.sleep(self.delay_s)
            return self.inner.split(text)
        finally:
            with self._lock:
                self.active -= 1


class _Held:
    """A splitter that answers at once, or (`held`) only when the test sets `release`."""

    def __init__(self, *, held: bool = False) -> None:
        self.release = threading.Event()
        if not held:
            self.release.set()
        self.finished = threading.Event()

    def split(self, text: str) -> list[str]:
        assert self.release.wait(30), "the test never released the splitter"
        self.finished.set()
        return ["A?", "B?"]


class _Broken:
    def split(self, text: str) -> list[str]:
        raise RuntimeError("splitter bug")


@pytest.fixture
def extractor_factory(
    english: EnglishClauseSplitter, chinese: ChineseClauseSplitter
) -> Iterator[list[AsyncConjunctionExtractor]]:
    made: list[AsyncConjunctionExtractor] = []
    yield made
    for ex in made:
        ex.close()


# ----------------------------------------------------------------- English


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "What is Redis and how does it store data?",
            ["What is Redis?", "How does Redis store data?"],
        ),
        (
            "How do I bake bread and what flour should I use?",
            ["How do I bake bread?", "What flour should I use?"],
        ),
        (
            "What is the capital of France; what is the capital of Spain?",
            ["What is the capital of France?", "What is the capital of Spain?"],
        ),
        (
            "Is it worth learning Rust? Also, what is the best IDE for Go?",
            ["Is it worth learning Rust?", "What is the best IDE for Go?"],
        ),
        (
            "What is GDP? And how is inflation measured?",
            ["What is GDP?", "How is inflation measured?"],
        ),
        (
            "What is Docker? How do I install Kubernetes?",
            ["What is Docker?", "How do I install Kubernetes?"],
        ),
        (
            "How does Kafka work, and why is it fast?",
            ["How does Kafka work?", "Why is Kafka fast?"],
        ),
    ],
)
def test_english_splits_clausal_coordination(
    english: EnglishClauseSplitter, text: str, expected: list[str]
) -> None:
    assert english.split(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("What is Redis and how does it store data?", "How does Redis store data?"),
        ("Who wrote Hamlet and when was it first performed?", "When was Hamlet first performed?"),
        ("What is Docker and how do I install it?", "How do I install Docker?"),
        ("Who is Elon Musk and what companies does he own?", "What companies does Elon Musk own?"),
    ],
)
def test_english_carries_the_subject_into_a_pronoun_clause(
    english: EnglishClauseSplitter, text: str, expected: str
) -> None:
    clauses = english.split(text)
    assert len(clauses) == 2
    assert clauses[1] == expected


@pytest.mark.parametrize(
    "text",
    [
        "What is the difference between Redis and Memcached?",
        "Compare Redis and Memcached",
        "How do I learn Python and Java?",
        "How did the Roman Empire rise and fall?",
        "How can I learn to read and write Bengali?",
        "What are the pros and cons of remote work?",
        "Should I buy a Mac or a PC?",
        "Which is your favourite sport and why?",
        "What is the best way to learn English?",
        "I have a 2015 MacBook. Should I upgrade?",
        # follow-ups that lean on the first sentence stay whole
        "What are black holes? What are some examples?",
        "What is inflation? Why does it happen?",
        "I am 14 and a student. Should I be concerned? What should I do?",
        "Why do we cry when we are happy and when we are sad?",
        "What are the differences between how Disney markets films and how Pixar markets them?",
        "Is it true that nothing is faster than light? Or was that idea made up?",
        "What were the effects of the earthquake, and how do these effects compare to others?",
        "",
    ],
)
def test_english_does_not_split_single_questions(english: EnglishClauseSplitter, text: str) -> None:
    assert english.split(text) == []


def test_english_clauses_stand_alone(english: EnglishClauseSplitter) -> None:
    clauses = english.split("how is cultural hegemony spread and what is a dos attack")
    assert clauses == ["How is cultural hegemony spread?", "What is a dos attack?"]
    for clause in clauses:
        assert clause[0].isupper()
        assert clause.endswith("?")


def test_english_too_long_text_is_not_split() -> None:
    splitter = EnglishClauseSplitter(max_chars=20)
    assert splitter.split("What is Redis and how does it store data?") == []


# ----------------------------------------------------------------- Chinese


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "笔记本电脑开机黑屏怎么办？另外，韩国的什么牌子化妆品最好？",
            ["笔记本电脑开机黑屏怎么办？", "韩国的什么牌子化妆品最好？"],
        ),
        (
            "成都哪个英语培训学校好，以及谁能把这个名字翻译成韩文？",
            ["成都哪个英语培训学校好？", "谁能把这个名字翻译成韩文？"],
        ),
        (
            "来自星星的你会有第二部吗？还有，把爱带回家的主题曲叫什么？",
            ["来自星星的你会有第二部吗？", "把爱带回家的主题曲叫什么？"],
        ),
        (
            "五湖四海皆兄弟是什么生肖？汽车水箱开锅了该怎么办？",
            ["五湖四海皆兄弟是什么生肖？", "汽车水箱开锅了该怎么办？"],
        ),
        ("什么网页游戏最好玩，并且怎样练习听力?", ["什么网页游戏最好玩？", "怎样练习听力?"]),
        ("北京天气怎么样；上海天气怎么样？", ["北京天气怎么样？", "上海天气怎么样？"]),
        ("求一部好看的电影，以及北京哪里好玩？", ["求一部好看的电影？", "北京哪里好玩？"]),
    ],
)
def test_chinese_splits_on_the_lexicon(
    chinese: ChineseClauseSplitter, text: str, expected: list[str]
) -> None:
    assert chinese.split(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "乌龟和王八有什么区别？",
        "电子信息工程与通信工程的区别",
        "华为手机和三星哪个好",
        "手机酷狗与天天动听哪个好？",
        "Python以及Java的区别是什么？",
        "苹果，以及香蕉哪个好吃？",
        "我想学英语，同时学日语，怎么安排时间？",
        "用DOS命令与另外一台计算机聊天，该用什么命令？",
        "还有什么办法可以减肥？",
        # short or anaphoric follow-ups after "？" stay whole
        "刘烨真的和谢娜分手了吗？为什么？",
        "什么是区块链？它有什么用？",
        "什么是区块链？另外，它有什么用？",
        "网上投资理财是真的吗？可靠吗？",
        "",
    ],
)
def test_chinese_does_not_split_inner_coordination_or_follow_ups(
    chinese: ChineseClauseSplitter, text: str
) -> None:
    assert chinese.split(text) == []


# ------------------------------------------------------- language routing


def test_language_detection_by_cjk_ratio() -> None:
    assert detect_language("What is Redis?") == "en"
    assert detect_language("Redis是什么？") == "zh"
    assert detect_language("用DOS命令与另外一台计算机聊天") == "zh"
    assert cjk_ratio("") == 0.0
    assert cjk_ratio("中文") == 1.0


def test_multilingual_routes_by_language(
    english: EnglishClauseSplitter, chinese: ChineseClauseSplitter
) -> None:
    splitter = MultilingualClauseSplitter(english=english, chinese=chinese)
    assert isinstance(splitter, ClauseSplitter)
    assert splitter.split("What is Redis and how does it store data?") == [
        "What is Redis?",
        "How does Redis store data?",
    ]
    assert splitter.split("怎么学习英语？还有，日语难学吗？") == ["怎么学习英语？", "日语难学吗？"]


@pytest.mark.parametrize("bad", [None, 3, b"What?"])
def test_splitters_reject_non_str(
    english: EnglishClauseSplitter, chinese: ChineseClauseSplitter, bad: object
) -> None:
    for splitter in (
        english,
        chinese,
        MultilingualClauseSplitter(english=english, chinese=chinese),
    ):
        with pytest.raises(TypeError, match="text"):
            splitter.split(bad)  # type: ignore[arg-type]


def test_importing_the_package_does_not_import_spacy_or_jieba() -> None:
    code = (
        "import sys, semantic_reuse.clauses\n"
        "assert 'spacy' not in sys.modules, 'spacy imported eagerly'\n"
        "assert 'jieba' not in sys.modules, 'jieba imported eagerly'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------- extractor


async def test_extractor_splits_off_the_event_loop(
    english: EnglishClauseSplitter,
    chinese: ChineseClauseSplitter,
    extractor_factory: list[AsyncConjunctionExtractor],
) -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []

    class _Where:
        def split(self, text: str) -> list[str]:
            seen.append(threading.get_ident())
            return english.split(text)

    ex = AsyncConjunctionExtractor(english=_Where(), chinese=chinese)
    extractor_factory.append(ex)
    assert await ex.extract_conjunctions_async("What is Redis and how does it store data?") == [
        "What is Redis?",
        "How does Redis store data?",
    ]
    assert await ex.extract_conjunctions_async("什么是区块链？另外，比特币怎么买？") == [
        "什么是区块链？",
        "比特币怎么买？",
    ]
    assert await ex.extract_conjunctions_async("What is the difference between X and Y?") == []
    assert seen
    assert all(t != loop_thread for t in seen)
    stats = ex.stats
    assert (stats.calls, stats.splits, stats.timeouts, stats.failures) == (3, 2, 0, 0)


async def test_extractor_respects_max_concurrent_one(
    english: EnglishClauseSplitter,
    chinese: ChineseClauseSplitter,
    extractor_factory: list[AsyncConjunctionExtractor],
) -> None:
    recording = _Recording(english, delay_s=0.005)
    ex = AsyncConjunctionExtractor(
        max_concurrent=1, timeout_s=30, english=recording, chinese=chinese
    )
    extractor_factory.append(ex)
    prompts = [f"What is Redis {i} and how does it store data?" for i in range(12)]
    results = await asyncio.gather(*(ex.extract_conjunctions_async(p) for p in prompts))
    assert recording.peak == 1
    assert recording.calls == 12
    for i, clauses in enumerate(results):
        assert clauses == [f"What is Redis {i}?", f"How does Redis {i} store data?"]
    assert ex.stats.in_flight == 0


async def test_extractor_runs_up_to_the_limit_and_grows_it(
    extractor_factory: list[AsyncConjunctionExtractor],
) -> None:
    recording = _Recording(_Held(), delay_s=0.1)
    ex = AsyncConjunctionExtractor(max_concurrent=2, timeout_s=30, english=recording)
    extractor_factory.append(ex)
    await asyncio.gather(*(ex.extract_conjunctions_async("a and b?") for _ in range(6)))
    assert recording.peak == 2

    recording.peak = 0
    recording.entered.clear()
    ex.set_max_concurrent_tasks(1)
    tasks = [asyncio.create_task(ex.extract_conjunctions_async("a and b?")) for _ in range(4)]
    assert await asyncio.to_thread(recording.entered.wait, 30)  # one is splitting
    assert ex.stats.in_flight == 1  # the three others wait for its slot
    assert recording.peak == 1
    ex.set_max_concurrent_tasks(4)  # waiting calls are admitted at once
    await asyncio.gather(*tasks)
    assert recording.peak >= 2
    assert ex.max_concurrent == 4
    assert ex.stats.in_flight == 0


async def test_extractor_timeout_returns_empty_and_counts(
    extractor_factory: list[AsyncConjunctionExtractor],
) -> None:
    slow = _Held(held=True)  # overruns until released
    pool = concurrent.futures.ThreadPoolExecutor(2)
    ex = AsyncConjunctionExtractor(max_concurrent=1, timeout_s=0.05, english=slow, executor=pool)
    extractor_factory.append(ex)
    assert await ex.extract_conjunctions_async("What is Redis and how does it store data?") == []
    assert not slow.finished.is_set()  # answered on the timeout, not when the split ended
    assert ex.stats.timeouts == 1
    # the overrunning thread still holds the only slot: the next call times
    # out while waiting for it ...
    assert await ex.extract_conjunctions_async("Another question and one more?") == []
    assert ex.stats.timeouts == 2
    assert ex.stats.in_flight == 1
    # ... and the slot comes back when the thread really finishes
    slow.release.set()
    await asyncio.to_thread(pool.shutdown, wait=True)  # the split and its callbacks are done
    assert slow.finished.is_set()
    assert ex.stats.in_flight == 0


async def test_extractor_failure_degrades_to_empty(
    extractor_factory: list[AsyncConjunctionExtractor],
) -> None:
    ex = AsyncConjunctionExtractor(english=_Broken())
    extractor_factory.append(ex)
    assert await ex.extract_conjunctions_async("What is Redis and how does it store data?") == []
    assert ex.stats.failures == 1
    assert ex.stats.in_flight == 0


async def test_extractor_cancelled_waiter_does_not_leak_a_slot(
    extractor_factory: list[AsyncConjunctionExtractor],
) -> None:
    held = _Held(held=True)
    recording = _Recording(held)
    ex = AsyncConjunctionExtractor(max_concurrent=1, timeout_s=30, english=recording)
    extractor_factory.append(ex)
    first = asyncio.create_task(ex.extract_conjunctions_async("a and b?"))
    waiting = asyncio.create_task(ex.extract_conjunctions_async("b and c?"))
    assert await asyncio.to_thread(recording.entered.wait, 30)  # `first` holds the only slot
    assert ex.stats.in_flight == 1  # `waiting` waits for it
    waiting.cancel()
    held.release.set()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await first == ["A?", "B?"]
    assert await ex.extract_conjunctions_async("c and d?") == ["A?", "B?"]
    assert ex.stats.in_flight == 0


async def test_extractor_rejects_bad_input(
    extractor_factory: list[AsyncConjunctionExtractor],
) -> None:
    ex = AsyncConjunctionExtractor(english=_Held())
    extractor_factory.append(ex)
    with pytest.raises(TypeError, match="prompt"):
        await ex.extract_conjunctions_async(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="prompt"):
        await ex.extract_conjunctions_async(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n must be >= 1"):
        ex.set_max_concurrent_tasks(0)
    with pytest.raises(ValueError, match="max_concurrent"):
        AsyncConjunctionExtractor(max_concurrent=0)
    with pytest.raises(ValueError, match="timeout_s"):
        AsyncConjunctionExtractor(timeout_s=0)
    assert ex.max_concurrent == 4


async def test_extractor_parallel_results_match_serial(
    english: EnglishClauseSplitter,
    chinese: ChineseClauseSplitter,
    extractor_factory: list[AsyncConjunctionExtractor],
) -> None:
    prompts = [
        "What is Redis and how does it store data?",
        "How do I learn Python and Java?",
        "Who wrote Hamlet and when was it first performed?",
        "乌龟和王八有什么区别？",
        "怎么学习英语？还有，日语难学吗？",
        "What is GDP? And how is inflation measured?",
    ] * 5
    recording = _Recording(english)
    ex = AsyncConjunctionExtractor(
        max_concurrent=4, timeout_s=30, english=recording, chinese=chinese
    )
    extractor_factory.append(ex)
    got = await asyncio.gather(*(ex.extract_conjunctions_async(p) for p in prompts))
    router = MultilingualClauseSplitter(english=english, chinese=chinese)
    assert got == [router.split(p) for p in prompts]
    assert recording.peak <= 4


def test_extractor_warm_up_uses_the_given_splitters(
    english: EnglishClauseSplitter,
    chinese: ChineseClauseSplitter,
    extractor_factory: list[AsyncConjunctionExtractor],
) -> None:
    ex = AsyncConjunctionExtractor(english=english, chinese=chinese)
    extractor_factory.append(ex)
    ex.warm_up()
    assert ex.splitter.splitter_for("en") is english
    assert ex.splitter.splitter_for("zh") is chinese
    assert ex.extract_conjunctions("What is Redis and how does it store data?") == [
        "What is Redis?",
        "How does Redis store data?",
    ]


# ------------------------------------------------------- the cheap pre-check


EN_QUESTIONS = [
    "What is Redis",
    "how does it store data",
    "Who wrote Hamlet",
    "when was it first performed",
    "What is the best IDE for Go",
    "is Rust worth learning",
    "How do I reset my password",
    "what flour should I use",
]
EN_JOINS = [" and ", "? ", "; ", ", and ", " or ", " but ", " also ", ", ", " then "]
ZH_QUESTIONS = [
    "什么是区块链",
    "它有什么用",
    "怎么学英语",
    "推荐一本书",
    "北京天气怎么样",
    "上海有什么好吃的",
]
ZH_JOINS = ["？", "；", "，另外，", "。同时", "，和", "、", "，", "以及", "还有"]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_the_pre_check_never_hides_a_split(
    data: st.DataObject, english: EnglishClauseSplitter, chinese: ChineseClauseSplitter
) -> None:
    """Whatever a splitter cuts carries a mark `may_be_compound` looks for, so skipping the
    parse when there is none never changes a result."""
    zh = data.draw(st.booleans())
    questions, joins, splitter = (
        (ZH_QUESTIONS, ZH_JOINS, chinese) if zh else (EN_QUESTIONS, EN_JOINS, english)
    )
    parts = data.draw(st.lists(st.sampled_from(questions), min_size=1, max_size=3))
    text = parts[0]
    for part in parts[1:]:
        text += data.draw(st.sampled_from(joins)) + part
    text += data.draw(st.sampled_from(["?", "？", "", "."]))
    if splitter.split(text):
        assert may_be_compound(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("What is Redis and how does it store data?", True),
        ("什么是区块链？另外，它有什么用？", True),
        ("How do I reset my password?", False),
        ("What is the difference between Redis, Memcached, Hazelcast?", False),
        ("怎么重置密码？", False),
    ],
)
async def test_a_text_without_a_cut_mark_is_not_parsed(
    extractor_factory: list[AsyncConjunctionExtractor], text: str, expected: bool
) -> None:
    extractor = AsyncConjunctionExtractor(max_concurrent=1, timeout_s=10.0)
    extractor_factory.append(extractor)
    assert may_be_compound(text) is expected
    await extractor.extract_conjunctions_async(text)
    assert extractor.stats.skipped == (0 if expected else 1)
