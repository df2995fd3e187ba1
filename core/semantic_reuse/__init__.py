"""semantic-reuse: reuse earlier LLM answers (exact repeats, paraphrases, clauses).

This module is the public API and nothing else. Importing it is cheap: vLLM,
torch and spaCy load only when a feature that needs them is used.

The library logs through loguru and is silent until the application asks for its logs:
``from loguru import logger; logger.enable("semantic_reuse")`` (docs/operations.md).
"""

from loguru import logger

from semantic_reuse.answer import (
    AnswerCodec,
    AnswerDecodeError,
    AnswerTooLargeError,
    CachedAnswer,
)
from semantic_reuse.backend import Backend, CallableBackend, PromptInput
from semantic_reuse.breaker import BreakerState, CircuitBreaker
from semantic_reuse.clients.base import Completion, GenerationParams, ReuseClient
from semantic_reuse.clients.factory import build_client
from semantic_reuse.clients.local import VLLMClient
from semantic_reuse.clients.loop import HomeLoop
from semantic_reuse.clients.openai_compat import OpenAICompatibleClient
from semantic_reuse.clients.settings import ReuseModelSettings
from semantic_reuse.config import (
    CacheConfig,
    FeatureConfig,
    HandlerConfig,
    PerformanceConfig,
    ReuseConfig,
    SemanticConfig,
)
from semantic_reuse.engine import ReuseEngine
from semantic_reuse.errors import (
    ComponentUnavailableError,
    ConfigurationError,
    InvalidRequestError,
    InvalidTypeError,
    SemanticReuseError,
    UsageError,
)
from semantic_reuse.exact.memory import MemoryTier
from semantic_reuse.exact.redis import RedisTier
from semantic_reuse.exact.tiers import CacheTier, ExactHit, MultiLevelCacheManager
from semantic_reuse.metrics import Metrics
from semantic_reuse.outcome import ClauseOutcome, ReuseHit, ReuseInfo, ReuseKind, ReuseResult
from semantic_reuse.planning import ReuseDecision
from semantic_reuse.request import DEFAULT_NAMESPACE, ReuseRequest, validate_namespace
from semantic_reuse.streaming import ReuseStream

__version__ = "0.1.0"

logger.disable("semantic_reuse")  # a library installs no sink and is silent by default

_LAZY = {"EnhancedAsyncLLM", "CustomRequestOutput"}  # need vLLM: imported on first use


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import semantic_reuse.vllm

        return getattr(semantic_reuse.vllm, name)
    raise AttributeError(f"module 'semantic_reuse' has no attribute {name!r}")


__all__ = [
    "DEFAULT_NAMESPACE",
    "AnswerCodec",
    "AnswerDecodeError",
    "AnswerTooLargeError",
    "Backend",
    "BreakerState",
    "CacheConfig",
    "CacheTier",
    "CachedAnswer",
    "CallableBackend",
    "CircuitBreaker",
    "ClauseOutcome",
    "Completion",
    "ComponentUnavailableError",
    "ConfigurationError",
    "CustomRequestOutput",
    "EnhancedAsyncLLM",
    "ExactHit",
    "FeatureConfig",
    "GenerationParams",
    "HandlerConfig",
    "HomeLoop",
    "InvalidRequestError",
    "InvalidTypeError",
    "MemoryTier",
    "Metrics",
    "MultiLevelCacheManager",
    "OpenAICompatibleClient",
    "PerformanceConfig",
    "PromptInput",
    "RedisTier",
    "ReuseClient",
    "ReuseConfig",
    "ReuseDecision",
    "ReuseEngine",
    "ReuseHit",
    "ReuseInfo",
    "ReuseKind",
    "ReuseModelSettings",
    "ReuseRequest",
    "ReuseResult",
    "ReuseStream",
    "SemanticConfig",
    "SemanticReuseError",
    "UsageError",
    "VLLMClient",
    "__version__",
    "build_client",
    "validate_namespace",
]
