"""All configuration in one place.

`HandlerConfig` is the public configuration surface (the seed's names). It reads
environment variables prefixed ``SEMANTIC_REUSE_`` with ``__`` between nesting
levels, e.g. ``SEMANTIC_REUSE_CACHE__REDIS_URL=redis://127.0.0.1:6379/0`` or
``SEMANTIC_REUSE_PERFORMANCE__NLP_MAX_CONCURRENT=8``. Invalid values raise
pydantic's ``ValidationError`` (a ``ValueError``) naming the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024

CodecFormat = Literal["msgpack", "json"]
CompoundStrategy = Literal["decompose", "whole"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class FeatureConfig(_Section):
    """Switches for whole features."""

    enable_exact_cache: bool = True
    enable_semantic_reuse: bool = True
    enable_nlp_enhancement: bool = Field(
        default=True, description="Split compound questions into clauses and reuse each."
    )
    enable_redis: bool = Field(
        default=True, description="Use Redis as L2 when `cache.redis_url` is set."
    )
    enable_detailed_logging: bool = Field(
        default=False, description="Log every lookup and store at DEBUG, bound to the request id."
    )


class PerformanceConfig(_Section):
    """Concurrency limits, timeouts and the circuit breaker."""

    nlp_max_concurrent: int = Field(default=4, ge=1, le=1024)
    nlp_timeout_s: float = Field(default=2.0, gt=0)
    redis_timeout_s: float = Field(
        default=0.25, gt=0, description="Per-operation deadline for Redis, connect included."
    )
    redis_max_connections: int = Field(default=64, ge=1)
    breaker_failure_threshold: int = Field(
        default=3, ge=1, description="Consecutive failures that open a component's breaker."
    )
    breaker_reset_s: float = Field(
        default=1.0, gt=0, description="First wait before an open breaker lets one trial through."
    )
    breaker_max_reset_s: float = Field(
        default=30.0, gt=0, description="Cap of the exponential back-off of a breaker."
    )
    embed_max_batch: int = Field(default=32, ge=1)
    embed_max_wait_ms: float = Field(default=2.0, ge=0)
    background_write_limit: int = Field(
        default=1024, ge=1, description="Background L2 writes in flight before new ones wait."
    )


class CacheConfig(_Section):
    """Tiers, budgets, lifetimes and where the stores live."""

    memory_max_entries: int = Field(default=10_000, ge=1)
    memory_max_bytes: int = Field(default=64 * MiB, ge=1)
    memory_ttl_s: float | None = Field(default=3600.0, gt=0)
    redis_url: str | None = Field(
        default=None, description="redis:// or rediss:// URL; None: no L2."
    )
    redis_prefix: str = Field(default="semantic_reuse", min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    redis_ttl_s: float | None = Field(default=86_400.0, gt=0)
    max_value_bytes: int = Field(
        default=1 * MiB, ge=64, description="Answers that encode larger than this are not stored."
    )
    codec: CodecFormat = "msgpack"
    qdrant_path: Path | None = Field(
        default=None, description="Folder of the embedded Qdrant Edge store; None: user cache dir."
    )
    qdrant_url: str | None = Field(default=None, description="A Qdrant server or cluster URL.")
    qdrant_api_key: SecretStr | None = None
    qdrant_collection: str = Field(default="semantic_reuse", min_length=1)
    vector_ttl_s: float | None = Field(default=None, gt=0)

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value


class HandlerConfig(BaseSettings):
    """The whole configuration of a reuse handler (engine, cache tiers, splitter)."""

    model_config = SettingsConfigDict(
        env_prefix="SEMANTIC_REUSE_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
    )

    features: FeatureConfig = Field(default_factory=FeatureConfig)
    performance: PerformanceConfig = Field(default_factory=PerformanceConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    similarity_threshold: float = Field(
        default=0.9,
        ge=0.0,
        le=1.0,
        description="Cosine similarity (1.0 = same) at or above which a paraphrase is reused.",
    )
    compound_strategy: CompoundStrategy = "decompose"
    semantic_max_temperature: float = Field(
        default=1.0,
        ge=0.0,
        description="Requests sampling hotter than this want fresh answers: no semantic reuse.",
    )


ReuseConfig = HandlerConfig
"""The name DESIGN.md uses; the same class."""
