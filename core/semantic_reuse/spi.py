"""The extension surface of semantic-reuse, for integration authors.

`semantic_reuse` is what applications use. This module is what a framework integration
(LangChain, LlamaIndex, your own) or a custom component builds on, and the only other module
that `langchain_semantic_reuse`, `llama_index.*.semantic_reuse` and the cookbook import
(`make lint` checks it):

- components the engine is made of, to build, replace or test one: the exact tiers
  (`CacheTier`, `MemoryTier`, `RedisTier`, `MultiLevelCacheManager`), the answer codec, the
  circuit breaker, `Metrics`, the embedder and vector-store protocols and their data types;
- the configuration's sections;
- the helpers the model classes share: `ReuseModelSettings`, `build_client`, `HomeLoop`;
- request helpers: `DEFAULT_NAMESPACE`, `validate_namespace`, `answer_shaping_params`,
  `check_threshold`, `check_ttl`, `validate_tags`, `JSONValue`, `PromptInput`;
- vLLM helpers: `reuse_info`, `CustomRequestOutput`, `default_engine_args`.

Names here keep their meaning across minor releases, as the public API does. Like
`semantic_reuse`, importing this module imports nothing else: each name loads its module on
first use.
"""

from __future__ import annotations

from types import MappingProxyType

from semantic_reuse._lazy import lazy_exports

# `typing.TYPE_CHECKING` without importing typing (type checkers and linters know this name).
TYPE_CHECKING = False

# Name -> the module that defines it.
_MODULES = MappingProxyType(
    {
        "DEFAULT_NAMESPACE": "semantic_reuse.request",
        "AnswerCodec": "semantic_reuse.answer",
        "AnswerDecodeError": "semantic_reuse.answer",
        "AnswerTooLargeError": "semantic_reuse.answer",
        "BreakerState": "semantic_reuse.breaker",
        "CacheConfig": "semantic_reuse.config",
        "CacheTier": "semantic_reuse.exact.tiers",
        "CircuitBreaker": "semantic_reuse.breaker",
        "ComponentUnavailableError": "semantic_reuse.errors",
        "ConfigurationError": "semantic_reuse.errors",
        "CustomRequestOutput": "semantic_reuse.vllm",
        "Embedder": "semantic_reuse.semantic.embedder",
        "EmbedderUnavailableError": "semantic_reuse.semantic.embedder",
        "ExactHit": "semantic_reuse.exact.tiers",
        "FeatureConfig": "semantic_reuse.config",
        "HomeLoop": "semantic_reuse.clients.loop",
        "InvalidRequestError": "semantic_reuse.errors",
        "InvalidTypeError": "semantic_reuse.errors",
        "JSONValue": "semantic_reuse.request",
        "LimitsConfig": "semantic_reuse.config",
        "MemoryTier": "semantic_reuse.exact.memory",
        "Metrics": "semantic_reuse.metrics",
        "MultiLevelCacheManager": "semantic_reuse.exact.tiers",
        "PerformanceConfig": "semantic_reuse.config",
        "PromptInput": "semantic_reuse.backend",
        "RedisTier": "semantic_reuse.exact.redis",
        "ReuseModelSettings": "semantic_reuse.clients.settings",
        "ScopeFilter": "semantic_reuse.semantic.store",
        "SemanticConfig": "semantic_reuse.config",
        "SharedMemoryRefusedError": "semantic_reuse.errors",
        "SyncRunner": "semantic_reuse.sync",
        "UsageError": "semantic_reuse.errors",
        "VectorMatch": "semantic_reuse.semantic.store",
        "VectorPoint": "semantic_reuse.semantic.store",
        "VectorStore": "semantic_reuse.semantic.store",
        "answer_shaping_params": "semantic_reuse.request",
        "build_client": "semantic_reuse.clients.factory",
        "build_embedder": "semantic_reuse.defaults",
        "build_store": "semantic_reuse.defaults",
        "check_threshold": "semantic_reuse.options",
        "check_ttl": "semantic_reuse.options",
        "default_engine_args": "semantic_reuse.vllm.model",
        "redact_url": "semantic_reuse.redaction",
        "reuse_info": "semantic_reuse.vllm",
        "validate_namespace": "semantic_reuse.request",
        "validate_tags": "semantic_reuse.options",
    }
)

__all__ = [
    "DEFAULT_NAMESPACE",
    "AnswerCodec",
    "AnswerDecodeError",
    "AnswerTooLargeError",
    "BreakerState",
    "CacheConfig",
    "CacheTier",
    "CircuitBreaker",
    "ComponentUnavailableError",
    "ConfigurationError",
    "CustomRequestOutput",
    "Embedder",
    "EmbedderUnavailableError",
    "ExactHit",
    "FeatureConfig",
    "HomeLoop",
    "InvalidRequestError",
    "InvalidTypeError",
    "JSONValue",
    "LimitsConfig",
    "MemoryTier",
    "Metrics",
    "MultiLevelCacheManager",
    "PerformanceConfig",
    "PromptInput",
    "RedisTier",
    "ReuseModelSettings",
    "ScopeFilter",
    "SemanticConfig",
    "SharedMemoryRefusedError",
    "SyncRunner",
    "UsageError",
    "VectorMatch",
    "VectorPoint",
    "VectorStore",
    "answer_shaping_params",
    "build_client",
    "build_embedder",
    "build_store",
    "check_threshold",
    "check_ttl",
    "default_engine_args",
    "redact_url",
    "reuse_info",
    "validate_namespace",
    "validate_tags",
]

if TYPE_CHECKING:
    from semantic_reuse.answer import AnswerCodec, AnswerDecodeError, AnswerTooLargeError
    from semantic_reuse.backend import PromptInput
    from semantic_reuse.breaker import BreakerState, CircuitBreaker
    from semantic_reuse.clients.factory import build_client
    from semantic_reuse.clients.loop import HomeLoop
    from semantic_reuse.clients.settings import ReuseModelSettings
    from semantic_reuse.config import (
        CacheConfig,
        FeatureConfig,
        LimitsConfig,
        PerformanceConfig,
        SemanticConfig,
    )
    from semantic_reuse.defaults import build_embedder, build_store
    from semantic_reuse.errors import (
        ComponentUnavailableError,
        ConfigurationError,
        InvalidRequestError,
        InvalidTypeError,
        SharedMemoryRefusedError,
        UsageError,
    )
    from semantic_reuse.exact.memory import MemoryTier
    from semantic_reuse.exact.redis import RedisTier
    from semantic_reuse.exact.tiers import CacheTier, ExactHit, MultiLevelCacheManager
    from semantic_reuse.metrics import Metrics
    from semantic_reuse.options import check_threshold, check_ttl, validate_tags
    from semantic_reuse.redaction import redact_url
    from semantic_reuse.request import (
        DEFAULT_NAMESPACE,
        JSONValue,
        answer_shaping_params,
        validate_namespace,
    )
    from semantic_reuse.semantic.embedder import Embedder, EmbedderUnavailableError
    from semantic_reuse.semantic.store import ScopeFilter, VectorMatch, VectorPoint, VectorStore
    from semantic_reuse.sync import SyncRunner
    from semantic_reuse.vllm.engine import reuse_info
    from semantic_reuse.vllm.model import default_engine_args
    from semantic_reuse.vllm.outputs import CustomRequestOutput


__getattr__, __dir__ = lazy_exports(__name__, _MODULES, __all__)
