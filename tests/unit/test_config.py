from __future__ import annotations

from typing import Any

import pytest

from semantic_reuse import HandlerConfig, ReuseConfig
from semantic_reuse.spi import PerformanceConfig


def test_defaults_are_valid_and_alias_is_same_class() -> None:
    config = HandlerConfig()
    assert ReuseConfig is HandlerConfig
    assert config.similarity_threshold is None  # the embedder's calibrated value
    assert config.semantic.embedder_backend == "onnx-int8"  # its own calibration
    assert config.reuse_threshold() == 0.8075
    assert HandlerConfig(semantic={"embedder_backend": "onnx"}).reuse_threshold() == 0.81
    assert config.reuse_margin() == 0.03
    assert HandlerConfig(semantic={"embedder": "e5"}).reuse_threshold() == 0.965
    assert HandlerConfig(similarity_threshold=0.7).reuse_threshold() == 0.7
    assert config.features.enable_nlp_enhancement is True
    assert config.performance.nlp_max_concurrent >= 1
    assert config.cache.redis_url is None


@pytest.mark.parametrize("threshold", [-0.01, 1.01, 2])
def test_threshold_outside_unit_interval_names_the_field(threshold: float) -> None:
    with pytest.raises(ValueError, match="similarity_threshold"):
        HandlerConfig(similarity_threshold=threshold)


@pytest.mark.parametrize("threshold", [0.0, 1.0])
def test_threshold_bounds_are_accepted(threshold: float) -> None:
    assert HandlerConfig(similarity_threshold=threshold).similarity_threshold == threshold


@pytest.mark.parametrize(
    ("section", "field", "value"),
    [
        ("cache", "memory_max_bytes", -1),
        ("cache", "memory_max_entries", 0),
        ("performance", "nlp_max_concurrent", 0),
        ("performance", "redis_timeout_s", -0.5),
        ("cache", "redis_url", "http://not-redis"),
    ],
)
def test_invalid_values_name_the_field(section: str, field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        HandlerConfig(**{section: {field: value}})


def test_assignment_is_validated() -> None:
    config = HandlerConfig()
    with pytest.raises(ValueError, match="nlp_max_concurrent"):
        config.performance.nlp_max_concurrent = -3


def test_environment_with_prefix_and_nested_delimiter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMANTIC_REUSE_SIMILARITY_THRESHOLD", "0.75")
    monkeypatch.setenv("SEMANTIC_REUSE_PERFORMANCE__NLP_MAX_CONCURRENT", "9")
    monkeypatch.setenv("SEMANTIC_REUSE_CACHE__REDIS_URL", "redis://10.0.0.1:6380/2")
    monkeypatch.setenv("SEMANTIC_REUSE_FEATURES__ENABLE_DETAILED_LOGGING", "true")
    config = HandlerConfig()
    assert config.similarity_threshold == 0.75
    assert config.performance.nlp_max_concurrent == 9
    assert config.cache.redis_url == "redis://10.0.0.1:6380/2"
    assert config.features.enable_detailed_logging is True


def test_invalid_environment_value_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMANTIC_REUSE_CACHE__MEMORY_TTL_S", "-5")
    with pytest.raises(ValueError, match="memory_ttl_s"):
        HandlerConfig()


def test_unknown_field_is_rejected() -> None:
    with pytest.raises(ValueError, match="nlp_max_concurent"):
        PerformanceConfig(nlp_max_concurent=3)  # type: ignore[call-arg]


def test_a_verifier_setting_is_bundled_off_or_an_existing_file(tmp_path: Any) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"semantic\.verifier"):
        HandlerConfig(semantic={"verifier": str(tmp_path / "missing.json")})
    present = tmp_path / "mine.json"
    present.write_text("{}")
    assert HandlerConfig(semantic={"verifier": str(present)}).semantic.verifier == str(present)
    assert HandlerConfig(semantic={"verifier": "bundled"}).semantic.verifier == "bundled"
    with pytest.raises(ValidationError, match="max_error_rate"):
        HandlerConfig(semantic={"max_error_rate": 1.5})


def test_limits_are_a_section_of_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    assert HandlerConfig().limits.max_prompt_chars == 4_000_000
    monkeypatch.setenv("SEMANTIC_REUSE_LIMITS__MAX_MESSAGES", "10")
    assert HandlerConfig().limits.max_messages == 10
    with pytest.raises(ValueError, match="max_answer_chars"):
        HandlerConfig(limits={"max_answer_chars": 0})


def test_redis_tls_files_need_rediss(tmp_path: Any) -> None:
    ca = tmp_path / "ca.crt"
    config = HandlerConfig(cache={"redis_url": "rediss://:pw@h:1/0", "redis_tls_ca_file": ca})
    assert config.cache.redis_tls_ca_file == ca
    with pytest.raises(ValueError, match="rediss://"):
        HandlerConfig(cache={"redis_url": "redis://h:1/0", "redis_tls_ca_file": ca})
    with pytest.raises(ValueError, match="rediss://"):
        HandlerConfig(cache={"redis_tls_cert_file": ca})
    with pytest.raises(ValueError, match="redis_tls_cert_file"):
        HandlerConfig(cache={"redis_url": "rediss://h:1/0", "redis_tls_key_file": ca})


def test_a_redis_cluster_url_is_tcp_on_database_0(monkeypatch: pytest.MonkeyPatch) -> None:
    for url in ("unix:///run/redis.sock", "redis://127.0.0.1:7000/1"):
        with pytest.raises(ValueError, match="redis_url") as refused:
            HandlerConfig(cache={"redis_url": url, "redis_cluster": True})
        assert "7000" not in str(refused.value)  # a URL may hold a password: never quoted
    assert HandlerConfig(cache={"redis_url": "redis://127.0.0.1:7000/1"}).cache.redis_url
    monkeypatch.setenv("SEMANTIC_REUSE_CACHE__REDIS_URL", "rediss://node-1:6379")
    monkeypatch.setenv("SEMANTIC_REUSE_CACHE__REDIS_CLUSTER", "true")
    assert HandlerConfig().cache.redis_cluster is True
