"""All configuration in one place.

`HandlerConfig` is the public configuration surface (the seed's names). It reads
environment variables prefixed ``SEMANTIC_REUSE_`` with ``__`` between nesting
levels, e.g. ``SEMANTIC_REUSE_CACHE__REDIS_URL=redis://127.0.0.1:6379/0`` or
``SEMANTIC_REUSE_PERFORMANCE__NLP_MAX_CONCURRENT=8``. Invalid values raise
pydantic's ``ValidationError`` (a ``ValueError``) naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from semantic_reuse.redaction import redact_url

MiB = 1024 * 1024
#: ``semantic.embedder`` that routes each text by its script (`semantic_reuse.routes`).
AUTO_EMBEDDER: Final = "auto"

_URL_FIELDS = ("redis_url", "qdrant_url")  # shown with their passwords masked

CodecFormat = Literal["msgpack", "json"]
CompoundStrategy = Literal["decompose", "whole"]


def cluster_url_problem(url: str) -> str | None:
    """Why `url` cannot name a Redis Cluster node (None when it can): a cluster speaks TCP
    and has only database 0."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        return "a cluster is reached by redis:// or rediss://, not unix://"
    if parts.path.strip("/") not in ("", "0"):
        return "a cluster has only database 0"
    return None


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
    embed_max_wait_ms: float = Field(
        default=0.0,
        ge=0,
        description="Extra wait to fill a batch; 0 still batches concurrent callers.",
    )
    hit_stream_chunk_tokens: int = Field(
        default=16,
        ge=0,
        description="A reused answer streams to a streaming caller in chunks of this many "
        "tokens (0: all at once).",
    )
    background_write_limit: int = Field(
        default=1024, ge=1, description="Background L2 writes in flight before new ones wait."
    )


class LimitsConfig(_Section):
    """The largest request and answer accepted at the API edge (docs/operations.md, Limits).

    A request above a limit is refused with `InvalidRequestError` naming the limit; an
    answer above `max_answer_chars` is refused by `store` with `AnswerTooLargeError`, and a
    generated one is served but not stored.
    """

    max_prompt_chars: int = Field(
        default=4_000_000,
        ge=1,
        description="A text prompt's characters, a chat's (every string in its messages) or "
        "the number of prompt token ids; about 1M tokens of English.",
    )
    max_messages: int = Field(default=4096, ge=1, description="Messages of one chat.")
    max_params_chars: int = Field(
        default=1_000_000, ge=1, description="Characters of the answer-shaping parameters."
    )
    max_answer_chars: int = Field(
        default=4_000_000,
        ge=1,
        description="An answer's text, the strings of its metadata and its token ids.",
    )


class CacheConfig(_Section):
    """Tiers, budgets, lifetimes and where the stores live.

    `repr` and `str` mask the passwords of `redis_url` and `qdrant_url`, and a validation
    error does not quote the value it refused (it may hold a password).
    """

    model_config = ConfigDict(**_Section.model_config, hide_input_in_errors=True)

    memory_max_entries: int = Field(default=10_000, ge=1)
    memory_max_bytes: int = Field(default=64 * MiB, ge=1)
    memory_ttl_s: float | None = Field(default=3600.0, gt=0)
    redis_url: str | None = Field(
        default=None, description="redis:// or rediss:// URL; None: no L2."
    )
    redis_tls_ca_file: Path | None = Field(
        default=None,
        description="With rediss://: the CA file that signed the server's certificate "
        "(None: the system's CAs).",
    )
    redis_tls_cert_file: Path | None = Field(
        default=None, description="With rediss://: a client certificate (tls-auth-clients)."
    )
    redis_tls_key_file: Path | None = Field(
        default=None, description="With rediss://: the client certificate's private key."
    )
    redis_cluster: bool = Field(
        default=False,
        description="`redis_url` names one node of a Redis Cluster (the client finds the rest); "
        "each namespace's keys share one hash slot.",
    )
    redis_prefix: str = Field(default="semantic_reuse", min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    redis_ttl_s: float | None = Field(default=86_400.0, gt=0)
    max_value_bytes: int = Field(
        default=1 * MiB, ge=64, description="Answers that encode larger than this are not stored."
    )
    codec: CodecFormat = "msgpack"
    shared_memory: bool = Field(
        default=False,
        description="Share exact answers between processes on this host (named segments).",
    )
    shared_memory_name: str = Field(
        default="semantic-reuse",
        min_length=1,
        max_length=180,
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$",
    )
    shared_memory_bytes: int = Field(default=8 * MiB, ge=64 * 1024)
    shared_memory_entries: int = Field(default=5000, ge=1)
    shared_memory_secret: Path | None = Field(
        default=None,
        description="The user's secret file keying host shared memory (0600, created on first "
        "use); None: shm-secret in the user's config dir.",
    )
    qdrant_path: Path | None = Field(
        default=None, description="Folder of the embedded Qdrant Edge store; None: user cache dir."
    )
    qdrant_path_in_use: Literal["private", "off"] = Field(
        default="private",
        description="When another process has the Edge folder open: 'private' opens a private "
        "folder beside it (merged back later), 'off' turns semantic reuse off in this process. "
        "Exact reuse goes on either way; one WARNING line says which.",
    )
    qdrant_min_free_bytes: int = Field(
        default=64 * MiB,
        ge=0,
        description="Room kept free on the Edge folder's disk beyond what its files may still "
        "fill: with less, the store refuses writes (semantic reuse pauses, requests are "
        "generated) instead of the process dying of SIGBUS on a full disk; 0: no check.",
    )
    qdrant_url: str | None = Field(default=None, description="A Qdrant server or cluster URL.")
    qdrant_api_key: SecretStr | None = None
    qdrant_collection: str = Field(default="semantic_reuse", min_length=1)
    qdrant_shards: int | None = Field(
        default=None,
        ge=1,
        description="Shards of a collection this store creates; None: the server's default.",
    )
    qdrant_replication_factor: int | None = Field(
        default=None,
        ge=1,
        description="Copies of each shard in a collection this store "
        "creates; None: the server's default (1).",
    )
    qdrant_write_consistency: int | None = Field(
        default=None,
        ge=1,
        description="Replicas that must confirm a write (the collection's "
        "write_consistency_factor) in a collection this store creates; None: the server's "
        "default (1).",
    )
    vector_ttl_s: float | None = Field(default=None, gt=0)
    default_model: str = Field(
        default="default",
        min_length=1,
        description="The model scope of a core-API request that names no model (and whose "
        "backend names none): answers never cross model scopes, so give `model=` whenever one "
        "engine serves several models.",
    )

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @model_validator(mode="after")
    def _check_tls(self) -> Self:
        tls = (self.redis_tls_ca_file, self.redis_tls_cert_file, self.redis_tls_key_file)
        if any(f is not None for f in tls) and not (self.redis_url or "").startswith("rediss://"):
            raise ValueError("cache.redis_tls_* files need a rediss:// redis_url")
        if self.redis_tls_key_file is not None and self.redis_tls_cert_file is None:
            raise ValueError("cache.redis_tls_key_file needs cache.redis_tls_cert_file")
        return self

    @model_validator(mode="after")
    def _check_cluster_url(self) -> Self:
        """A Redis Cluster has only database 0 and no unix sockets: said at load time, not
        at the first request."""
        if self.redis_cluster and self.redis_url is not None:
            problem = cluster_url_problem(self.redis_url)
            if problem:
                raise ValueError(f"redis_url with redis_cluster: {problem}")
        return self

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            if name in _URL_FIELDS and isinstance(value, str):
                value = redact_url(value)
            yield name, value


class LifecycleConfig(_Section):
    """How long answers live and how invalidations reach every process."""

    sliding: bool = Field(
        default=False,
        description="A request's `ttl_s` restarts at every use of its answer (per request: "
        "`sliding=`); False: the lifetime counts from when the answer was stored.",
    )
    state_refresh_s: float = Field(
        default=1.0,
        gt=0,
        description="How often a process reads a namespace's lifecycle record (epoch, retired "
        "tags, ids and ages) again: an invalidation made by another process takes effect "
        "here within this time.",
    )
    state_path: Path | None = Field(
        default=None,
        description="The lifecycle records' file when there is no Redis (shared by the "
        "processes of a host); None: lifecycle.json in the Edge store's folder.",
    )


class SavingsConfig(_Section):
    """What reuse saved, per namespace (`stats()`, Prometheus, `semantic-reuse stats`)."""

    price_per_1k_tokens: float | None = Field(
        default=None,
        ge=0,
        description="What 1,000 generated (output) tokens cost you, in your currency: money "
        "saved is reused tokens times this; None: no money figure.",
    )
    currency: str = Field(
        default="USD", min_length=1, max_length=16, description="The unit of the money figures."
    )
    tokens_per_second: float | None = Field(
        default=None,
        gt=0,
        description="The generation rate assumed until this engine has measured one on its own "
        "misses (and for reuse whose generation never ran through it, e.g. LangChain's cache).",
    )
    history_path: Path | None = Field(
        default=None,
        description="A JSONL file the engine appends a savings snapshot to (for `semantic-reuse "
        "stats` and its `--plot`); None: no history.",
    )
    history_interval_s: float = Field(
        default=60.0, gt=0, description="Seconds between two snapshots in `history_path`."
    )


class SemanticConfig(_Section):
    """The embedder, the candidate search and the match guard."""

    embedder: str = Field(
        default=AUTO_EMBEDDER,
        min_length=1,
        description="'auto' (the default: MiniLM for Latin-script text, the multilingual e5 for "
        "Chinese, mixed and other scripts, each with its own store and verifier), 'minilm' "
        "(bundled all-MiniLM-L6-v2 for every text), 'e5' (bundled multilingual e5-small for every "
        "text) or a sentence-transformers folder.",
    )
    embedder_backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        default="onnx-int8",
        description="MiniLM's runtime: ONNX Runtime's int8 graph (the default: ~2.5x faster than "
        "the float graph, with its own calibrated threshold; docs/benchmarks.md), the float graph "
        "(PyTorch's vectors to ~1e-6) or PyTorch. Exported and quantized once per machine, by "
        "`semantic-reuse prepare-model` or on first use.",
    )
    top_k: int = Field(default=10, ge=1, le=1000)
    candidate_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    margin: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Refuse when a rival with another answer scores within this of the best; "
        "None: the embedder's calibrated margin.",
    )
    verifier: str = Field(
        default="bundled",
        min_length=1,
        description="The second stage that scores the search's candidates: 'bundled' (the "
        "verifier shipped for the bundled embedder in use), 'off' (threshold and margin only), "
        "or the path of a file written by `semantic-reuse train-verifier`.",
    )
    max_error_rate: float | None = Field(
        default=None,
        gt=0.0,
        lt=1.0,
        description="With a verifier: the share of wrong answers you accept among served "
        "paraphrase hits (measured on held-apart labelled pairs); None: the verifier's default.",
    )
    guard: bool = Field(default=True, description="Refuse matches differing in numbers etc.")

    @field_validator("verifier")
    @classmethod
    def _verifier_exists(cls, value: str) -> str:
        """A verifier file is checked here, not at the first request (where a missing file
        would only turn semantic reuse off)."""
        if value not in ("bundled", "off") and not Path(value).expanduser().is_file():
            raise ValueError("must be 'bundled', 'off' or the path of an existing verifier file")
        return value

    guard_entities: Literal["lexical", "spacy", "off"] = "lexical"
    timeout_s: float = Field(
        default=5.0, gt=0, description="Deadline of one embed + search (after the first load)."
    )
    store_timeout_s: float = Field(
        default=120.0,
        gt=0,
        description="Deadline of one batch of durable records (embed + upsert), written in the "
        "background off the request path: a busy machine must not drop answers.",
    )


_HEADER = r"^[a-z0-9][a-z0-9\-]{0,63}$"
_NAMESPACE = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"


class ServerConfig(_Section):
    """`semantic-reuse serve`: tenants and their API keys, the admin key, the header names.

    `repr` and `str` show keys as ``**********`` (they are `SecretStr`), and a validation
    error does not quote the value it refused.
    """

    model_config = ConfigDict(**_Section.model_config, hide_input_in_errors=True)

    tenants: dict[str, list[SecretStr]] = Field(
        default_factory=dict,
        description="Tenant (namespace) -> its API keys. A request's bearer key names its "
        "tenant; answers never cross tenants. Empty: no key is asked and the server binds to "
        "loopback only.",
    )
    admin_key: SecretStr | None = Field(
        default=None, description="The bearer key of the /admin endpoints; None: they are off."
    )
    namespace_header: str = Field(default="x-semantic-reuse-namespace", pattern=_HEADER)
    threshold_header: str = Field(default="x-semantic-reuse-threshold", pattern=_HEADER)
    max_error_rate_header: str = Field(default="x-semantic-reuse-max-error-rate", pattern=_HEADER)
    ttl_header: str = Field(default="x-semantic-reuse-ttl", pattern=_HEADER)
    tags_header: str = Field(default="x-semantic-reuse-tags", pattern=_HEADER)
    info_header: str = Field(default="x-semantic-reuse", pattern=_HEADER)
    info_field: str = Field(default="semantic_reuse", pattern=r"^[a-z_][a-z0-9_]{0,63}$")
    max_body_bytes: int = Field(default=4 * MiB, ge=1024)
    upstream_api_key: SecretStr | None = Field(
        default=None, description="The key the gateway (`serve --upstream`) sends upstream."
    )

    @field_validator("tenants")
    @classmethod
    def _check_tenants(cls, value: dict[str, list[SecretStr]]) -> dict[str, list[SecretStr]]:
        seen: set[str] = set()
        for tenant, keys in value.items():
            if not re.match(_NAMESPACE, tenant):
                raise ValueError("a tenant must be a namespace: letters, digits, '_', '-', '.'")
            for key in keys:
                secret = key.get_secret_value()
                if not secret or secret in seen:
                    raise ValueError("API keys must be non-empty and each name one tenant")
                seen.add(secret)
        return value

    def key_tenants(self) -> dict[str, str]:
        """API key -> tenant."""
        return {k.get_secret_value(): t for t, keys in self.tenants.items() for k in keys}


class HandlerConfig(BaseSettings):
    """The whole configuration of a reuse handler (engine, cache tiers, splitter)."""

    model_config = SettingsConfigDict(
        env_prefix="SEMANTIC_REUSE_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
        hide_input_in_errors=True,  # a refused value may hold a password: name the field only
    )

    features: FeatureConfig = Field(default_factory=FeatureConfig)
    performance: PerformanceConfig = Field(default_factory=PerformanceConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    semantic: SemanticConfig = Field(default_factory=SemanticConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    lifecycle: LifecycleConfig = Field(default_factory=LifecycleConfig)
    savings: SavingsConfig = Field(default_factory=SavingsConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    similarity_threshold: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Cosine similarity (1.0 = same) at or above which a paraphrase is reused; "
        "None: the embedder's calibrated threshold.",
    )
    compound_strategy: CompoundStrategy = "decompose"
    semantic_max_temperature: float = Field(
        default=1.0,
        ge=0.0,
        description="Requests sampling hotter than this want fresh answers: no semantic reuse.",
    )

    def reuse_threshold(self) -> float:
        """The similarity threshold in force: the configured one or the calibrated default."""
        if self.similarity_threshold is not None:
            return self.similarity_threshold
        return calibrated_defaults(self._calibration_key()).threshold

    def reuse_margin(self) -> float:
        """The ambiguity margin in force: the configured one or the calibrated default."""
        if self.semantic.margin is not None:
            return self.semantic.margin
        return calibrated_defaults(self._calibration_key()).margin

    def with_embedder(self, embedder: str) -> HandlerConfig:
        """A copy that uses `embedder` for every text (one route of ``"auto"``)."""
        config = self.model_copy(deep=True)
        config.semantic.embedder = embedder
        return config

    def _calibration_key(self) -> str:
        """int8 vectors differ from the float model's: they have a calibration of their own.
        ``"auto"`` reports its English route's (each route has its own config)."""
        embedder = self.semantic.embedder
        if embedder == AUTO_EMBEDDER:
            embedder = "minilm"
        int8 = embedder == "minilm" and self.semantic.embedder_backend == "onnx-int8"
        return "minilm-int8" if int8 else embedder


@dataclass(frozen=True)
class Calibrated:
    """A threshold and margin chosen by `semantic-reuse calibrate` on the dev pair files."""

    threshold: float
    margin: float


# From `benchmarks/guard_study.py` on ../shared/datasets (docs/benchmarks.md): the best F1
# with precision >= 0.62 on a tune half of qqp_dev_5k and on gptcache_mock_pairs, checked
# on the held-out half; lcqmc_dev for the multilingual model, whose scores sit higher.
CALIBRATED: dict[str, Calibrated] = {
    "minilm": Calibrated(threshold=0.81, margin=0.03),
    # int8 MiniLM, the default runtime (docs/benchmarks.md): at 0.8075 precision and recall on
    # qqp_dev_5k and gptcache_mock_pairs stay within 0.005 of the float model's at 0.81.
    "minilm-int8": Calibrated(threshold=0.8075, margin=0.03),
    "e5": Calibrated(threshold=0.965, margin=0.0),
}
UNCALIBRATED = Calibrated(threshold=0.85, margin=0.0)


def calibrated_defaults(embedder: str) -> Calibrated:
    """The calibrated pair for a bundled embedder; a conservative one for any other model
    (run `semantic-reuse calibrate` on your own labelled pairs)."""
    return CALIBRATED.get(embedder, UNCALIBRATED)


ReuseConfig = HandlerConfig
"""The name DESIGN.md uses; the same class."""
