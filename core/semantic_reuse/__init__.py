"""semantic-reuse: reuse earlier LLM answers (exact repeats, paraphrases, clauses).

This module is the public API and nothing else: the engine, its configuration and request
options, the results, the backend protocol, vLLM's `EnhancedAsyncLLM` and the clients that the
framework model classes generate through. The extension surface for integration authors
(tiers, codec, breaker, embedders, stores, helpers) is `semantic_reuse.spi`; everything else
is internal.

Importing it imports nothing else: each name loads its module on first use (PEP 562), so
`import semantic_reuse` costs a few milliseconds, and pydantic-settings, numpy, vLLM, torch
and spaCy load only when a feature that needs them is used.
"""

from __future__ import annotations

import importlib
import sys
from types import MappingProxyType

from semantic_reuse._lazy import lazy_exports

# `typing.TYPE_CHECKING` without importing typing (type checkers and linters know this name).
TYPE_CHECKING = False

__version__ = "0.1.0"

# A library installs no sink and is silent until the application asks for its logs:
# `from loguru import logger; logger.enable("semantic_reuse")` (docs/operations.md). With loguru
# loaded already that is settled now; otherwise by the first of our modules that logs (`_log`).
if "loguru" in sys.modules:
    importlib.import_module("semantic_reuse._log")

# Public name -> the module that defines it.
_MODULES = MappingProxyType(
    {
        "Backend": "semantic_reuse.backend",
        "CachedAnswer": "semantic_reuse.answer",
        "CallableBackend": "semantic_reuse.backend",
        "ClauseOutcome": "semantic_reuse.outcome",
        "Completion": "semantic_reuse.clients.base",
        "EnhancedAsyncLLM": "semantic_reuse.vllm",
        "GenerationParams": "semantic_reuse.clients.base",
        "HandlerConfig": "semantic_reuse.config",
        "OpenAICompatibleClient": "semantic_reuse.clients.openai_compat",
        "ReuseClient": "semantic_reuse.clients.base",
        "ReuseConfig": "semantic_reuse.config",
        "ReuseDecision": "semantic_reuse.planning",
        "ReuseEngine": "semantic_reuse.engine",
        "ReuseHit": "semantic_reuse.outcome",
        "ReuseInfo": "semantic_reuse.outcome",
        "ReuseKind": "semantic_reuse.outcome",
        "ReuseOptions": "semantic_reuse.options",
        "ReuseRequest": "semantic_reuse.request",
        "ReuseResult": "semantic_reuse.outcome",
        "ReuseStream": "semantic_reuse.streaming",
        "SemanticReuseError": "semantic_reuse.errors",
        "VLLMClient": "semantic_reuse.clients.local",
    }
)

__all__ = [
    "Backend",
    "CachedAnswer",
    "CallableBackend",
    "ClauseOutcome",
    "Completion",
    "EnhancedAsyncLLM",
    "GenerationParams",
    "HandlerConfig",
    "OpenAICompatibleClient",
    "ReuseClient",
    "ReuseConfig",
    "ReuseDecision",
    "ReuseEngine",
    "ReuseHit",
    "ReuseInfo",
    "ReuseKind",
    "ReuseOptions",
    "ReuseRequest",
    "ReuseResult",
    "ReuseStream",
    "SemanticReuseError",
    "VLLMClient",
    "__version__",
]

if TYPE_CHECKING:
    from semantic_reuse.answer import CachedAnswer
    from semantic_reuse.backend import Backend, CallableBackend
    from semantic_reuse.clients.base import Completion, GenerationParams, ReuseClient
    from semantic_reuse.clients.local import VLLMClient
    from semantic_reuse.clients.openai_compat import OpenAICompatibleClient
    from semantic_reuse.config import HandlerConfig, ReuseConfig
    from semantic_reuse.engine import ReuseEngine
    from semantic_reuse.errors import SemanticReuseError
    from semantic_reuse.options import ReuseOptions
    from semantic_reuse.outcome import ClauseOutcome, ReuseHit, ReuseInfo, ReuseKind, ReuseResult
    from semantic_reuse.planning import ReuseDecision
    from semantic_reuse.request import ReuseRequest
    from semantic_reuse.streaming import ReuseStream
    from semantic_reuse.vllm.engine import EnhancedAsyncLLM


__getattr__, __dir__ = lazy_exports(__name__, _MODULES, __all__)
