"""`SemanticReuseCache`: a LangChain `BaseCache` that also reuses answers to paraphrases.

`set_llm_cache(SemanticReuseCache())` (or `cache=` on one model) puts a `ReuseEngine` under
every LangChain chat model and LLM: exact repeats hit as with any LangChain cache, and a
paraphrase ("How can I reset my password?" after "How do I reset my password?") gets the
earlier answer when the engine judges it the same question, in the same scope.

What LangChain hands a cache, and what becomes of it:

- `prompt`: for chat models, `langchain_core.load.dumps(messages)`; the last human message is
  the text compared by meaning, the other messages (system prompt, earlier turns, tool calls
  and results) must be equal for an answer to transfer. For string LLMs it is the prompt text.
  A human message that carries more than text (an image...) is reused only exactly.
- `llm_string`: the model's identity and call parameters (`_cache_scope.parse_llm_string`).
  Parsed, it gives the model name and the answer-shaping parameters, so the engine's reuse
  policy sees e.g. the temperature; any string that does not parse is an opaque scope of its
  own.
- The generations are stored exactly (`dumps`) in the answer's metadata and revived with an
  explicit allow-list of classes; nothing is pickled.

The async methods hold the logic; the sync ones run them on the engine's `SyncRunner` loop, so
they work inside and outside a running event loop.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Coroutine, Sequence
from typing import Any, Final, TypeVar

from langchain_core._api import LangChainBetaWarning
from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.load import Serializable, dumps, load
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, Generation, GenerationChunk
from loguru import logger

from langchain_semantic_reuse._cache_scope import scope_of
from semantic_reuse import CachedAnswer, HandlerConfig, ReuseEngine, ReuseOptions
from semantic_reuse.spi import (
    DEFAULT_NAMESPACE,
    AnswerTooLargeError,
    ConfigurationError,
    InvalidRequestError,
    InvalidTypeError,
    check_ttl,
    validate_namespace,
    validate_tags,
)

T = TypeVar("T")

#: The key of `CachedAnswer.metadata` that holds the LangChain generations.
METADATA_KEY: Final = "langchain"
_FORMAT_VERSION: Final = 1

# Classes that a stored answer may revive into (never 'core' or 'all': a cache entry is data).
_ALLOWED_OBJECTS: Final[list[type[Serializable]]] = [
    Generation,
    GenerationChunk,
    ChatGeneration,
    ChatGenerationChunk,
    AIMessage,
    AIMessageChunk,
]


class SemanticReuseCache(BaseCache):
    """A LangChain cache over a `ReuseEngine`: exact repeats and paraphrases.

    Args:
        engine: the engine to use (shared with other users of it, closed by its owner).
        config: builds an engine with the embedded defaults when `engine` is not given.
        namespace: the tenant whose answers this cache reads and writes (LangChain's cache
            calls carry none; `clear(namespace=...)` takes one per call).
        threshold: a similarity threshold for every lookup in [0, 1] (the cosine rule, no
            verifier); None: the engine's rule.
        max_error_rate: the error budget of every lookup in (0, 1): the share of wrong
            answers accepted among served paraphrase hits; None: the engine's
            `semantic.max_error_rate`. Exclusive with `threshold`.
        ttl_s: how long the answers this cache stores may be served, in seconds; None: the
            tiers' own lifetimes.
        sliding: True: `ttl_s` restarts at every use of an answer; None: the engine's
            `lifecycle.sliding`.
        tags: stored with every answer (e.g. the documents a chain answers from):
            `engine.invalidate_tag` retires them. `with_options` makes a cache with other
            ones over the same engine (one per document set, per call site).
    """

    def __init__(
        self,
        engine: ReuseEngine | None = None,
        *,
        config: HandlerConfig | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        threshold: float | None = None,
        max_error_rate: float | None = None,
        ttl_s: float | None = None,
        sliding: bool | None = None,
        tags: Sequence[str] = (),
    ) -> None:
        if engine is not None and config is not None:
            raise ConfigurationError("give either engine or config, not both")
        if engine is not None and not isinstance(engine, ReuseEngine):
            raise InvalidTypeError(f"engine must be a ReuseEngine, got {type(engine).__name__}")
        ReuseOptions(threshold=threshold, max_error_rate=max_error_rate)  # both checked
        if sliding is not None and not isinstance(sliding, bool):
            raise InvalidTypeError(f"sliding must be a bool or None, got {sliding!r}")
        self.namespace = validate_namespace(namespace)
        self.threshold = threshold
        self.max_error_rate = max_error_rate
        self.ttl_s = check_ttl(ttl_s)
        self.sliding = sliding
        self.tags = validate_tags(tags)
        self._owns_engine = engine is None
        self.engine = engine if engine is not None else ReuseEngine.from_config(config)

    def with_options(self, **options: Any) -> SemanticReuseCache:
        """A cache over the same engine with some of `namespace`, `threshold`,
        `max_error_rate`, `ttl_s`, `sliding` and `tags` changed (closing it leaves the engine
        to this one's owner). A new threshold drops the budget and a new budget the threshold
        (they are exclusive)."""
        unknown = set(options) - {
            "namespace", "threshold", "max_error_rate", "ttl_s", "sliding", "tags",
        }  # fmt: skip
        if unknown:
            raise InvalidTypeError(f"unexpected options: {', '.join(sorted(unknown))}")
        current = {"namespace": self.namespace, "threshold": self.threshold,
                   "max_error_rate": self.max_error_rate, "ttl_s": self.ttl_s,
                   "sliding": self.sliding, "tags": self.tags}  # fmt: skip
        if "threshold" in options or "max_error_rate" in options:
            current["threshold"] = current["max_error_rate"] = None
        return SemanticReuseCache(self.engine, **{**current, **options})

    # -- async: the logic -------------------------------------------------------------------

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """The cached generations (a list) for this prompt or a paraphrase of it, else None."""
        scope = scope_of(prompt, llm_string)
        if scope is None:
            return None
        try:
            hit = await self.engine.lookup(
                scope.prompt,
                namespace=self.namespace,
                model=scope.model,
                params=scope.params,
                threshold=self.threshold,
                max_error_rate=self.max_error_rate,
                reuse=scope.reuse,
            )
        except InvalidRequestError as exc:  # a prompt the engine refuses: the model decides
            logger.debug("langchain cache: lookup skipped: {}", exc)
            return None
        if hit is None:
            return None
        return _generations(hit.answer, chat=scope.chat)

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Store `return_val` exactly for this prompt (and its paraphrases) and model scope."""
        scope = scope_of(prompt, llm_string)
        generations = list(return_val) if isinstance(return_val, Sequence) else [return_val]
        if isinstance(return_val, str) or not all(isinstance(g, Generation) for g in generations):
            raise InvalidTypeError("return_val must be a sequence of LangChain Generations")
        if scope is None or not generations:
            return
        try:
            serialized = dumps(generations)
        except (ValueError, TypeError, RecursionError) as exc:  # what LangChain cannot write
            logger.debug("langchain cache: answer not stored: {}", type(exc).__name__)
            return
        answer = CachedAnswer(
            text=generations[0].text,
            source_prompt=scope.semantic_text,
            metadata={METADATA_KEY: {"v": _FORMAT_VERSION, "generations": serialized}},
        )
        try:
            await self.engine.store(
                scope.prompt,
                answer,
                namespace=self.namespace,
                model=scope.model,
                params=scope.params,
                ttl_s=self.ttl_s,
                sliding=self.sliding,
                tags=self.tags,
            )
        except (InvalidRequestError, AnswerTooLargeError) as exc:  # served, not stored
            logger.debug("langchain cache: answer not stored: {}", exc)

    async def aclear(self, **kwargs: Any) -> None:
        """Forget every answer of this cache's namespace (or of `namespace=`), in every tier."""
        namespace = kwargs.pop("namespace", self.namespace)
        if kwargs:
            raise InvalidTypeError(f"unexpected arguments: {', '.join(sorted(kwargs))}")
        await self.engine.clear(validate_namespace(namespace))

    async def aclose(self) -> None:
        """Close the engine if this cache built it (a given engine is its owner's to close)."""
        if self._owns_engine:
            await self.engine.aclose()

    # -- sync: derived (run on the engine's loop thread) ------------------------------------

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        return self._run(self.alookup(prompt, llm_string))

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        self._run(self.aupdate(prompt, llm_string, return_val))

    def clear(self, **kwargs: Any) -> None:
        self._run(self.aclear(**kwargs))

    def close(self) -> None:
        if self._owns_engine:
            self.engine.close_sync()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        # The engine's own runner: sync calls of the engine and of this cache share one loop.
        return self.engine.run_sync(coro)


# -- what comes back -------------------------------------------------------------------------


def _generations(answer: CachedAnswer, *, chat: bool) -> list[Generation] | None:
    """The stored generations, revived; an answer without them (composed from clause
    answers, or stored by another frontend of the engine) becomes one generation of its text.
    """
    stored = answer.metadata.get(METADATA_KEY)
    if stored is None:
        if chat:
            return [ChatGeneration(message=AIMessage(content=answer.text))]
        return [Generation(text=answer.text)]
    try:
        if not isinstance(stored, dict) or stored.get("v") != _FORMAT_VERSION:
            raise ValueError(f"unknown format {stored!r:.80}")
        serialized = stored["generations"]
        if not isinstance(serialized, str):
            raise ValueError("generations are not a string")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LangChainBetaWarning)
            revived = load(json.loads(serialized), allowed_objects=_ALLOWED_OBJECTS)
        if not (
            isinstance(revived, list)
            and revived
            and all(isinstance(g, Generation) for g in revived)
        ):
            raise ValueError("not a list of generations")
    except Exception as exc:  # a bad entry is a miss, never an error of the caller's call
        # the message may quote the stored answer: only its type at WARNING
        logger.warning("langchain cache: unreadable cached generations ({}): a miss",
                       type(exc).__name__)  # fmt: skip
        logger.opt(exception=exc).debug("langchain cache: unreadable cached generations")
        return None
    return list(revived)
