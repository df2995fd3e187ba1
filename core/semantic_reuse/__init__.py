"""semantic-reuse: reuse earlier LLM answers (exact repeats, paraphrases, clauses).

This module is the public API and nothing else. Importing it is cheap: vLLM,
torch and spaCy load only when a feature that needs them is used.
"""

from semantic_reuse.answer import (
    AnswerCodec,
    AnswerDecodeError,
    AnswerTooLargeError,
    CachedAnswer,
)
from semantic_reuse.breaker import BreakerState, CircuitBreaker
from semantic_reuse.config import (
    CacheConfig,
    FeatureConfig,
    HandlerConfig,
    PerformanceConfig,
    ReuseConfig,
)
from semantic_reuse.exact.memory import MemoryTier
from semantic_reuse.exact.redis import RedisTier
from semantic_reuse.exact.tiers import CacheTier, ExactHit, MultiLevelCacheManager
from semantic_reuse.metrics import Metrics
from semantic_reuse.request import DEFAULT_NAMESPACE, ReuseRequest, validate_namespace

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_NAMESPACE",
    "AnswerCodec",
    "AnswerDecodeError",
    "AnswerTooLargeError",
    "BreakerState",
    "CacheConfig",
    "CacheTier",
    "CachedAnswer",
    "CircuitBreaker",
    "ExactHit",
    "FeatureConfig",
    "HandlerConfig",
    "MemoryTier",
    "Metrics",
    "MultiLevelCacheManager",
    "PerformanceConfig",
    "RedisTier",
    "ReuseConfig",
    "ReuseRequest",
    "__version__",
    "validate_namespace",
]
