"""Routing by script: which embedder a text goes to, and how a batch splits across routes."""

from __future__ import annotations

import pytest

from semantic_reuse.breaker import CircuitBreaker
from semantic_reuse.components import Guarded
from semantic_reuse.config import HandlerConfig
from semantic_reuse.metrics import Metrics
from semantic_reuse.routes import SemanticRoutes
from semantic_reuse.semantic.script import needs_multilingual


@pytest.mark.parametrize(
    ("text", "multilingual"),
    [
        ("How do I reset my password?", False),
        ("Café au lait: naïve résumé?", False),  # Latin letters with accents stay English
        ("1234 + 5678 = ?", False),
        ("", False),
        ("怎么重置我的密码？", True),
        ("What does 北京 mean?", True),  # any CJK character: mixed text
        ("東京タワーの高さは？", True),
        ("서울의 인구는?", True),
        ("Как сбросить пароль?", True),  # mostly Cyrillic letters
        ("Is Moscow (Москва) the capital of Russia?", False),  # a few in English text
    ],
)
def test_script_decides_the_embedder(text: str, multilingual: bool) -> None:
    assert needs_multilingual(text) is multilingual


def _routes(config: HandlerConfig) -> SemanticRoutes:
    return SemanticRoutes.from_config(config, Metrics())


def test_auto_has_an_english_and_a_multilingual_route() -> None:
    routes = _routes(HandlerConfig())
    assert [r.name for r in routes.routes] == ["semantic", "semantic-multilingual"]
    assert routes.for_text("What is Redis?") is routes.primary
    assert routes.for_text("什么是 Redis？") is routes.routes[1]
    texts = ["What is Redis?", "什么是 Redis？", "And Qdrant?", "Qdrant 呢？"]
    assert [(r.name, idx) for r, idx in routes.partition(texts)] == [
        ("semantic", [0, 2]),
        ("semantic-multilingual", [1, 3]),
    ]
    assert routes.partition(["only English"]) == [(routes.primary, [0])]
    assert routes.built() == []  # nothing is loaded by routing


@pytest.mark.parametrize("embedder", ["minilm", "e5"])
def test_one_named_embedder_is_one_route_for_every_text(embedder: str) -> None:
    routes = _routes(HandlerConfig(semantic={"embedder": embedder}))
    assert len(routes.routes) == 1
    assert routes.for_text("怎么重置我的密码？") is routes.primary
    assert routes.partition(["a", "乙"]) == [(routes.primary, [0, 1])]


def test_each_route_has_a_breaker_of_its_own() -> None:
    english, multilingual = _routes(HandlerConfig()).routes
    for _ in range(HandlerConfig().performance.breaker_failure_threshold):
        english.breaker.record_failure(RuntimeError("store down"))
    assert english.breaker.state.value == "open"
    assert multilingual.breaker.state.value == "closed"  # Chinese keeps its semantic reuse


def test_routes_must_not_be_empty() -> None:
    with pytest.raises(ValueError, match="routes"):
        SemanticRoutes([])
    breaker = CircuitBreaker("x")
    assert SemanticRoutes([Guarded("x", breaker=breaker, metrics=Metrics())]).routes


def test_auto_calibration_is_the_english_routes() -> None:
    assert (
        HandlerConfig().reuse_threshold()
        == HandlerConfig(semantic={"embedder": "minilm"}).reuse_threshold()
    )
    assert HandlerConfig().with_embedder("e5").semantic.embedder == "e5"
    assert HandlerConfig().semantic.embedder == "auto"
