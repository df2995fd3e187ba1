"""MatchGuard: each check refuses what it should (English and Chinese) and lets paraphrases
through; the reuse policy combines threshold, guard and margin."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from semantic_reuse.semantic.decision import Candidate, ReusePolicy, decide_reuse
from semantic_reuse.semantic.guard import GuardVerdict, MatchGuard


@pytest.fixture(scope="module")
def guard() -> MatchGuard:
    return MatchGuard()


def refused(guard: MatchGuard, a: str, b: str, reason: str) -> None:
    for query, candidate in ((a, b), (b, a)):
        verdict = guard.check(query, candidate)
        assert not verdict.allowed, (query, candidate)
        assert verdict.reason == reason, (query, candidate, verdict)


def allowed(guard: MatchGuard, a: str, b: str) -> None:
    for query, candidate in ((a, b), (b, a)):
        verdict = guard.check(query, candidate)
        assert verdict.allowed, (query, candidate, verdict)
        assert verdict.reason is None


# -- the verdict ---------------------------------------------------------------------------


def test_verdict_is_a_frozen_dataclass() -> None:
    verdict = GuardVerdict(False, "numbers", "3")
    assert not verdict
    assert GuardVerdict(True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        verdict.allowed = True  # type: ignore[misc]


def test_identical_prompts_are_allowed(guard: MatchGuard) -> None:
    assert guard.check("What is 2+2?", "What is 2+2?") == GuardVerdict(True)


# -- numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What is 2+2?", "What is 2+3?"),
        ("What is two plus two?", "What is two plus three?"),
        ("How many calories are in 3 eggs?", "How many calories are in three hundred eggs?"),
        ("Best laptops under $1,000 in 2016", "Best laptops under $1,500 in 2016"),
        ("What happened in the 3rd season?", "What happened in the fourth season?"),
        ("What is the price of iPhone 6?", "What is the price of iPhone 7?"),
        ("Can I have two wives?", "Can I have one wife?"),
    ],
)
def test_numbers_refused_en(guard: MatchGuard, a: str, b: str) -> None:
    refused(guard, a, b, "numbers")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("三个人怎么分工", "四个人怎么分工"),
        ("求一篇2500字的读后感", "求一篇800字的读后感"),
        ("第一次见家长该注意什么", "第二次见家长该注意什么"),
        ("模拟人生3怎么安装", "模拟人生2怎么安装"),
    ],
)
def test_numbers_refused_zh(guard: MatchGuard, a: str, b: str) -> None:
    refused(guard, a, b, "numbers")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What is twenty one plus two?", "What is 21 + 2?"),
        ("How do I earn 10,000 dollars?", "How can I make 10000 dollars?"),
        ("What are 10k steps in km?", "How many km is 10000 steps?"),
        ("Which one is better, Python or Java?", "Which is better: Python or Java?"),
        ("一个人去旅游去哪里好", "一人旅游去哪里好"),
        ("你知道三星手机怎么样吗", "三星手机好不好"),  # 三 inside a name is no number
    ],
)
def test_same_numbers_or_none_allowed(guard: MatchGuard, a: str, b: str) -> None:
    allowed(guard, a, b)


def test_one_sided_number_depends_on_mismatch_mode() -> None:
    a, b = "What are the best phones of 2016?", "What are the best phones?"
    assert MatchGuard().check(a, b).allowed
    verdict = MatchGuard(mismatch="any").check(a, b)
    assert (verdict.allowed, verdict.reason, verdict.detail) == (False, "numbers", "2016")


# -- negation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Is X safe?", "Is X not safe?"),
        ("Why can I sleep at night?", "Why can't I sleep at night?"),
        ("How do I make a cake with eggs?", "How do I make a cake without eggs?"),
        ("Why does my phone charge?", "Why does my phone never charge?"),
        ("Is it a vegetarian restaurant?", "Is it a non-vegetarian restaurant?"),
    ],
)
def test_negation_refused_en(guard: MatchGuard, a: str, b: str) -> None:
    refused(guard, a, b, "negation")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("这个药安全吗", "这个药不安全吗"),
        ("东莞为什么扫黄", "东莞为什么不扫黄"),
        ("我的电脑能上网", "我的电脑没法上网"),
        ("为什么我能看懂", "为什么我看不懂"),
    ],
)
def test_negation_refused_zh(guard: MatchGuard, a: str, b: str) -> None:
    refused(guard, a, b, "negation")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Is coaching necessary for GATE or not?", "Is coaching necessary for GATE?"),
        ("Do you believe in fate? Why or why not?", "Do you believe in fate?"),
        ("Are vampires real? If not, why?", "Are vampires real?"),
        ("我的配置能玩战地之王吗？", "我的配置能不能玩战地之王？"),  # A-not-A asks
        ("广东最近好找工作吗？", "广东工作好找不？"),  # sentence-final 不 asks
        ("这个手机不错吧", "这个手机好吗"),  # 不错 is "good"
    ],
)
def test_question_tags_are_not_negation(guard: MatchGuard, a: str, b: str) -> None:
    allowed(guard, a, b)


# -- direction -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("flights from Paris to Rome", "flights from Rome to Paris"),
        ("How do I convert PDF to Word?", "How do I convert Word to PDF?"),
        (
            "How long is the drive from New York to Los Angeles?",
            "How long is the drive from Los Angeles to New York?",
        ),
        ("Is Paris bigger than Rome?", "Is Rome bigger than Paris?"),
        ("USD -> EUR rate", "EUR -> USD rate"),
    ],
)
def test_direction_refused_en(guard: MatchGuard, a: str, b: str) -> None:
    refused(guard, a, b, "direction")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("从北京到上海怎么走", "从上海到北京怎么走"),
        ("成都到北京的火车票", "北京到成都的火车票"),
        ("北京比上海大吗", "上海比北京大吗"),
    ],
)
def test_direction_refused_zh(guard: MatchGuard, a: str, b: str) -> None:
    refused(guard, a, b, "direction")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("flights from Paris to Rome", "flights to Rome from Paris"),
        (
            "A new column is added to the table by the append_column method.",
            "The append_column method appends a new column to the end of the table.",
        ),
        ("买苹果手机最好去哪里买？", "买苹果手机去哪里买最好"),
    ],
)
def test_same_direction_allowed(guard: MatchGuard, a: str, b: str) -> None:
    allowed(guard, a, b)


# -- entities ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What is the capital of France?", "What is the capital of Spain?"),
        (
            "What classes should I take at UCLA to become a data scientist?",
            "What classes should I take at USC to become a data scientist?",
        ),
        (
            "What are the weakest majors at Cal State Northridge?",
            "What are the weakest majors at Cal State Bakersfield?",
        ),
        (
            "Is it possible to live on 3000 euros a month in Berlin?",
            "Is it possible to live on 3000 euros a month in Barcelona?",
        ),
    ],
)
def test_entities_refused_en(guard: MatchGuard, a: str, b: str) -> None:
    refused(guard, a, b, "entities")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("北京的天气怎么样", "上海的天气怎么样"),
        ("周杰伦的老婆是谁", "林俊杰的老婆是谁"),
    ],
)
def test_entities_refused_zh(guard: MatchGuard, a: str, b: str) -> None:
    refused(guard, a, b, "entities")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What is ML?", "What is Machine Learning?"),  # an acronym and its words
        (
            "Huggingface.js is a set of JS libraries.",
            "Hugging Face.js is a set of JavaScript libraries.",
        ),
        (
            "How can we improve India's education system?",
            "How can we improve the Indian education system?",
        ),
        ("What are the working hours in Mu-Sigma?", "What are working hours in Mu Sigma?"),
        ("How do I learn Python?", "What is the best way to learn python?"),
        ("南宁市的电动车哪种牌子好?", "广西南宁电动车什么牌子的好？"),
    ],
)
def test_same_entity_in_another_form_allowed(guard: MatchGuard, a: str, b: str) -> None:
    allowed(guard, a, b)


def test_one_sided_entity_depends_on_mismatch_mode() -> None:
    a, b = "Which IIT is the best?", "Which is the best IIT in India?"
    assert MatchGuard().check(a, b).allowed
    verdict = MatchGuard(mismatch="any").check(a, b)
    assert (verdict.allowed, verdict.reason) == (False, "entities")


def test_title_case_words_are_not_names(guard: MatchGuard) -> None:
    allowed(
        guard, "What Is The Best Way To Learn Cooking?", "What is the best way to learn baking?"
    )


# -- paraphrases ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("How do I reset my password?", "I forgot my password, how do I change it?"),
        ("How can I lose weight fast?", "What is the fastest way to lose weight?"),
        ("What is the best way to learn Python?", "How do I learn Python quickly?"),
        ("How do you grow taller naturally?", "How can I grow taller?"),
        ("What's the capital of France?", "Which city is the capital of France?"),
        ("Redis是什么？", "什么是Redis"),
        ("开初婚未育证明怎么弄？", "初婚未育情况证明怎么开？"),
        ("人和畜生的区别是什么？", "人与畜生的区别是什么！"),
    ],
)
def test_paraphrases_allowed(guard: MatchGuard, a: str, b: str) -> None:
    allowed(guard, a, b)


# -- switches, cache, spaCy ----------------------------------------------------------------


def test_each_check_can_be_switched_off() -> None:
    cases = {
        "numbers": ("What is 2+2?", "What is 2+3?"),
        "negation": ("Is X safe?", "Is X not safe?"),
        "direction": ("flights from Paris to Rome", "flights from Rome to Paris"),
        "entities": ("What is the capital of France?", "What is the capital of Spain?"),
    }
    for check, (a, b) in cases.items():
        off = {"entities": "off"} if check == "entities" else {check: False}
        assert not MatchGuard().check(a, b).allowed
        assert MatchGuard(**off).check(a, b).allowed, check


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="entities"):
        MatchGuard(entities="ner")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mismatch"):
        MatchGuard(mismatch="some")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cache_size"):
        MatchGuard(cache_size=-1)


def test_profiles_are_cached_per_guard_and_bounded() -> None:
    guard = MatchGuard(cache_size=2)
    first = guard.profile("What is 2+2?")
    assert guard.profile("What is 2+2?") is first
    guard.profile("b")
    guard.profile("c")
    assert guard.profile("What is 2+2?") is not first  # evicted
    assert MatchGuard().profile("What is 2+2?") is not first  # no shared state


def test_guard_is_thread_safe() -> None:
    guard = MatchGuard(cache_size=8)
    prompts = [f"What is {i}+{i}?" for i in range(50)]
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for p in prompts:
                assert not guard.check(p, "What is 100+1?").allowed
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


@pytest.mark.slow
def test_spacy_entities() -> None:
    guard = MatchGuard(entities="spacy")
    refused(guard, "What is the capital of France?", "What is the capital of Spain?", "entities")
    allowed(guard, "How do I reset my password?", "I forgot my password, how do I change it?")
    # Chinese still uses jieba's tags with the spaCy mode.
    refused(guard, "北京的天气怎么样", "上海的天气怎么样", "entities")


# -- the reuse policy ----------------------------------------------------------------------


def test_policy_threshold_guard_margin(guard: MatchGuard) -> None:
    policy = ReusePolicy(0.8, 0.03, guard)
    q = "What is the capital of France?"
    assert policy.decide(q, []).reason == "no_candidates"
    assert policy.decide(q, [("What's France's capital?", 0.79)]).reason == "below_threshold"
    hit = policy.decide(q, [("What's the capital of France?", 0.95), ("Paris weather", 0.6)])
    assert (hit.index, hit.reason, hit.hit) == (0, "hit", True)
    # The guard refuses the best candidate: a miss, the next one is not tried by default.
    cands = [("What is the capital of Spain?", 0.97), ("Which city is France's capital?", 0.9)]
    refusal = policy.decide(q, cands)
    assert (refusal.index, refusal.reason, refusal.detail) == (
        None,
        "guard:entities",
        "france / spain",
    )
    assert ReusePolicy(0.8, 0.03, guard, max_checks=2).decide(q, cands).index == 1
    # Two candidates with different answers within the margin: ambiguous.
    close = [("What's the capital of France?", 0.95), ("Capital city of France?", 0.93)]
    assert policy.decide(q, close).reason == "ambiguous"
    assert ReusePolicy(0.8, 0.01, guard).decide(q, close).index == 0
    # ... unless they share the answer, or the guard refuses the rival.
    same = [Candidate(p, s, "Paris") for p, s in close]
    assert policy.decide(q, same).index == 0
    rival_refused = [("What's the capital of France?", 0.95), ("The capital of Spain?", 0.94)]
    assert policy.decide(q, rival_refused).index == 0
    # Candidates in any order; the index refers to the input order.
    assert (
        policy.decide(q, [("Paris weather", 0.5), ("What's the capital of France?", 0.9)]).index
        == 1
    )


def test_policy_without_guard_and_bounds() -> None:
    assert decide_reuse("What is 2+2?", [("What is 2+3?", 0.97)], 0.9) == 0
    assert decide_reuse("What is 2+2?", [("What is 2+3?", 0.97)], 0.9, guard=MatchGuard()) is None
    assert decide_reuse("q", [("q", 1.0)], 1.0) == 0
    assert decide_reuse("q", [("x", 0.0)], 0.0) == 0
    for bad in (-0.1, 1.1):
        with pytest.raises(ValueError, match="threshold"):
            ReusePolicy(bad)
        with pytest.raises(ValueError, match="margin"):
            ReusePolicy(0.5, bad)
    with pytest.raises(ValueError, match="max_checks"):
        ReusePolicy(0.5, max_checks=0)
