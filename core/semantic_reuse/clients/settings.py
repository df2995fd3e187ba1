"""`ReuseModelSettings`: the settings every framework model class shares (LangChain's chat
model and LLM, LlamaIndex's LLM) and the `ReuseClient` they build from them."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, model_validator

from semantic_reuse.clients.base import GenerationParams, ReuseClient
from semantic_reuse.clients.factory import build_client
from semantic_reuse.config import HandlerConfig
from semantic_reuse.engine import ReuseEngine
from semantic_reuse.errors import InvalidTypeError
from semantic_reuse.options import ReuseOptions, check_ttl, validate_tags
from semantic_reuse.redaction import redact_url
from semantic_reuse.request import DEFAULT_NAMESPACE, validate_namespace
from semantic_reuse.vllm.model import MODEL_NAME

#: The environment variable `api_key` defaults to.
API_KEY_ENV = "SEMANTIC_REUSE_API_KEY"

#: Per-call keywords (`invoke(..., namespace=...)`, `.bind(...)`) besides sampling parameters.
#: Tags are `reuse_tags`: LangChain's `tags` are its callbacks' (tracing) tags.
REUSE_KEYWORDS = (
    "namespace", "reuse", "threshold", "max_error_rate", "question", "ttl_s", "sliding",
    "reuse_tags",
)  # fmt: skip
_SAMPLING_KEYWORDS = ("max_tokens", "temperature", "top_p", "seed")
#: Per-call keywords of tool use (`bind_tools`, `bind(response_format=...)`): sent to an
#: endpoint backend, and part of the key and the fingerprint (`GenerationParams`).
_TOOL_KEYWORDS = ("tools", "tool_choice", "response_format")


class ReuseModelSettings(BaseModel):
    """Which model, how to sample it, and how to reuse its answers.

    Backends: `base_url` (+ `model`, `api_key`) for an OpenAI-compatible endpoint such as
    `vllm serve`; otherwise an in-process `EnhancedAsyncLLM`: `llm` when given, else one
    started on first use on `model` (a folder; default: the bundled SmolLM2-135M-Instruct).
    `client` takes a ready `ReuseClient`, e.g. one shared by several model objects.
    """

    model_config = ConfigDict(
        populate_by_name=True, arbitrary_types_allowed=True, protected_namespaces=()
    )

    model_name: str | None = Field(default=None, alias="model")
    """The endpoint's model name, or the model folder of an engine started in process."""
    base_url: str | None = None
    """An OpenAI-compatible endpoint, e.g. ``http://127.0.0.1:8000/v1``."""
    api_key: SecretStr | None = Field(default_factory=lambda: _secret_from_env(API_KEY_ENV))
    """Bearer token for `base_url` (env: ``SEMANTIC_REUSE_API_KEY``)."""
    temperature: float | None = 0.0
    """0 by default: a reused answer should be the answer, not one sample of many."""
    max_tokens: int | None = 256
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] | None = None
    timeout: float | None = None
    """Seconds per request to `base_url` (the SDK's default when None)."""
    max_retries: int = 2
    namespace: str = DEFAULT_NAMESPACE
    """The tenant whose answers are read and written; `invoke(..., namespace=...)` per call."""
    threshold: float | None = None
    """Similarity threshold in [0, 1] for paraphrase reuse (the cosine rule, no verifier);
    None: the engine's rule."""
    max_error_rate: float | None = None
    """The error budget of paraphrase reuse, in (0, 1): the share of wrong answers accepted
    among served paraphrase hits (the verifier's calibration turns it into a bar; per call
    too); None: the engine's `semantic.max_error_rate`. Exclusive with `threshold`."""
    reuse: bool = True
    """False: only exact repeats are reused (per call too)."""
    ttl_s: float | None = None
    """How long the answers this model stores may be served (seconds; per call too); None:
    the tiers' own lifetimes."""
    sliding: bool | None = None
    """True: `ttl_s` restarts at every use of an answer (per call too); None: the engine's
    `lifecycle.sliding`."""
    reuse_tags: list[str] | None = None
    """Tags stored with every answer of this model (e.g. the documents it answers from), added
    to those of the call (`reuse_tags=`); `ReuseEngine.invalidate_tag` retires them."""
    llm: Any = Field(default=None, exclude=True)
    """A running `EnhancedAsyncLLM` to generate with (its owner closes it)."""
    engine: ReuseEngine | None = Field(default=None, exclude=True)
    """The `ReuseEngine` for `base_url` (default: one with the embedded defaults)."""
    config: HandlerConfig | None = Field(default=None, exclude=True)
    """Reuse configuration for an engine the model builds."""
    client: ReuseClient | None = Field(default=None, exclude=True)
    """A ready client (shared between model objects); the other backend settings are unused."""

    _built: ReuseClient | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check(self) -> ReuseModelSettings:
        self.namespace = validate_namespace(self.namespace)
        ReuseOptions(threshold=self.threshold, max_error_rate=self.max_error_rate)  # both checked
        check_ttl(self.ttl_s)
        self.reuse_tags = list(validate_tags(self.reuse_tags, "reuse_tags")) or None
        self.sampling()  # raises ValueError/TypeError naming a bad sampling parameter
        if self.client is not None and not isinstance(self.client, ReuseClient):
            raise TypeError(f"client must be a ReuseClient, got {type(self.client).__name__}")
        if self.base_url is not None and self.llm is not None:
            raise ValueError("give either llm (in-process) or base_url (an endpoint), not both")
        if self.base_url is not None and not self.model_name:
            raise ValueError("model is required with base_url: the name the endpoint serves")
        return self

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if name == "base_url" and value else value

    def reuse_client(self) -> ReuseClient:
        """The client: `client`, else one built from the settings on first use."""
        if self.client is not None:
            return self.client
        if self._built is None:
            key = self.api_key.get_secret_value() if self.api_key is not None else None
            self._built = build_client(
                llm=self.llm, base_url=self.base_url, model=self.model_name, api_key=key,
                engine=self.engine, config=self.config, timeout_s=self.timeout,
                max_retries=self.max_retries,
            )  # fmt: skip
        return self._built

    def resolved_model_name(self, override: object = None) -> str:
        if isinstance(override, str) and override:
            return override
        if self.client is not None or self._built is not None:
            return self.reuse_client().model_name
        return (self.model_name or MODEL_NAME).rstrip("/").rsplit("/", 1)[-1]

    def sampling(self, stop: Sequence[str] | None = None, **overrides: Any) -> GenerationParams:
        """The sampling parameters: the model's, then the call's."""
        values: dict[str, Any] = {k: getattr(self, k) for k in _SAMPLING_KEYWORDS}
        values.update({k: overrides[k] for k in _SAMPLING_KEYWORDS if k in overrides})
        values.update({k: overrides[k] for k in _TOOL_KEYWORDS if k in overrides})
        words = stop if stop is not None else overrides.get("stop", self.stop)
        if words is not None and (isinstance(words, str) or not isinstance(words, Sequence)):
            raise InvalidTypeError(f"stop must be a list of strings, got {type(words).__name__}")
        return GenerationParams(stop=tuple(words or ()), **values)

    def call_options(self, kwargs: dict[str, Any], question: str | None = None) -> ReuseOptions:
        """The reuse options of one call: the model's, then the call's keywords (namespace,
        reuse, threshold, max_error_rate, question, ttl_s, sliding, reuse_tags); `question`:
        one the framework found in the prompt. A call's threshold replaces the model's error
        budget and a call's budget its threshold (the two are exclusive)."""
        unknown = (
            set(kwargs) - set(REUSE_KEYWORDS) - set(_SAMPLING_KEYWORDS) - set(_TOOL_KEYWORDS)
            - {"stop", "model"}
        )  # fmt: skip
        if unknown:
            raise InvalidTypeError(f"unexpected arguments: {', '.join(sorted(unknown))}")
        tags = validate_tags(kwargs.get("reuse_tags"), "reuse_tags")
        threshold, max_error_rate = _rule(kwargs, self.threshold, self.max_error_rate)
        return ReuseOptions(
            namespace=kwargs.get("namespace", self.namespace),
            reuse=kwargs.get("reuse", self.reuse),
            threshold=threshold,
            max_error_rate=max_error_rate,
            question=kwargs.get("question") or question,
            ttl_s=kwargs.get("ttl_s", self.ttl_s),
            sliding=kwargs.get("sliding", self.sliding),
            tags=(*(self.reuse_tags or ()), *tags),
        )

    def close(self) -> None:
        """Shut down what the model built (an engine started in process, a connection)."""
        if self._built is not None:
            built, self._built = self._built, None
            built.close()

    async def aclose(self) -> None:
        if self._built is not None:
            built, self._built = self._built, None
            await built.aclose()


def _rule(
    kwargs: dict[str, Any], threshold: float | None, max_error_rate: float | None
) -> tuple[Any, Any]:
    """The call's (threshold, budget), else the model's (see `call_options`)."""
    if "threshold" in kwargs or "max_error_rate" in kwargs:
        return kwargs.get("threshold"), kwargs.get("max_error_rate")
    return threshold, max_error_rate


def _secret_from_env(name: str) -> SecretStr | None:
    value = os.environ.get(name)
    return SecretStr(value) if value else None
