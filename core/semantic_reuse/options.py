"""`ReuseOptions`: how one request may reuse, validated once at the API edge; and the size
limits of a request (`check_limits`, the configuration's `limits`).

Every frontend (the core API, the clients, LangChain, LlamaIndex, `EnhancedAsyncLLM`) takes
these options and hands the same object down; no layer re-declares or re-validates them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from semantic_reuse.errors import InvalidRequestError, InvalidTypeError, shown
from semantic_reuse.request import DEFAULT_NAMESPACE, ReuseRequest, validate_namespace

if TYPE_CHECKING:
    from semantic_reuse.config import LimitsConfig

_FIELDS = (
    "namespace", "model", "params", "threshold", "max_error_rate", "reuse", "question", "ttl_s",
    "sliding", "tags",
)  # fmt: skip
#: Bounds of the tags one answer carries.
MAX_TAGS = 64
MAX_TAG_CHARS = 256


def check_threshold(value: object, name: str = "threshold") -> None:
    """A TypeError/ValueError naming `name` unless `value` is None or a number in [0, 1]."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidTypeError(f"{name} must be a float in [0, 1], got {type(value).__name__}")
    if not 0.0 <= value <= 1.0:
        raise InvalidRequestError(f"{name} must be in [0, 1], got {shown(value)}")


def check_error_rate(value: object, name: str = "max_error_rate") -> float | None:
    """None, or an error budget: a float in (0, 1) (the range of `semantic.max_error_rate`);
    else TypeError/ValueError naming `name`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidTypeError(f"{name} must be a float in (0, 1), got {type(value).__name__}")
    if not 0.0 < value < 1.0:  # NaN fails too
        raise InvalidRequestError(f"{name} must be in (0, 1), got {shown(value)}")
    return float(value)


def check_ttl(value: object, name: str = "ttl_s") -> float | None:
    """None, or a lifetime in seconds (a finite number > 0); else TypeError/ValueError
    naming `name`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidTypeError(f"{name} must be a number of seconds or None, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise InvalidRequestError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def validate_tags(value: object, name: str = "tags") -> tuple[str, ...]:
    """Tags as a sorted tuple without repeats: an iterable (not a str) of at most `MAX_TAGS`
    non-empty strings of at most `MAX_TAG_CHARS` characters each."""
    if value is None:
        return ()
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidTypeError(f"{name} must be a list of str, got {type(value).__name__}")
    tags = set()
    for tag in value:
        if not isinstance(tag, str):
            raise InvalidTypeError(f"{name} must hold str, got {type(tag).__name__}")
        if not tag or len(tag) > MAX_TAG_CHARS or not tag.isprintable():
            raise InvalidRequestError(
                f"each of {name} must be 1-{MAX_TAG_CHARS} printable characters, got {tag!r:.80}"
            )
        tags.add(tag)
    if len(tags) > MAX_TAGS:
        raise InvalidRequestError(f"{name} holds {len(tags)} tags, at most {MAX_TAGS} allowed")
    return tuple(sorted(tags))


@dataclass(frozen=True, slots=True)
class ReuseOptions:
    """Per-request reuse options.

    Attributes:
        namespace: the tenant; answers never cross namespaces.
        model: the model scope; answers never cross models. None: the frontend names it (vLLM:
            the served model; clients: endpoint + model; a `CallableBackend`: its function),
            else the engine's `cache.default_model` (see docs/architecture.md, "Model scope").
        params: answer-shaping parameters (a dict, vLLM `SamplingParams`, a dataclass...).
        threshold: this request's similarity threshold in [0, 1] (the expert's cosine rule:
            no verifier); None: the configured rule.
        max_error_rate: this request's error budget, in (0, 1): the share of wrong answers
            accepted among served paraphrase hits, turned into the verifier's probability
            threshold by its calibration (whole prompt and clauses); None: the configured
            `semantic.max_error_rate`. No effect without a verifier. Exclusive with
            `threshold`, which selects the cosine rule instead of the verifier.
        reuse: False: no semantic or clause reuse for this request (an exact hit still counts).
        question: the question inside a templated prompt: only it is compared by meaning and
            the text around it (retrieved context) must be equal for an answer to transfer.
        ttl_s: how long the answer this request stores may be served, in seconds; None: the
            tiers' own limits (`cache.*_ttl_s`). Does not change what the request may reuse.
        sliding: True: the lifetime restarts at every use of the answer (`ttl_s` after the
            last use); None: `lifecycle.sliding`.
        tags: labels stored with the answer (e.g. the ids of the documents it was drawn from):
            `ReuseEngine.invalidate_tag` retires every answer that carries one.
    """

    namespace: str = DEFAULT_NAMESPACE
    model: str | None = None
    params: object = None
    threshold: float | None = None
    max_error_rate: float | None = None
    reuse: bool = True
    question: str | None = None
    ttl_s: float | None = None
    sliding: bool | None = None
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        validate_namespace(self.namespace)
        if self.model is not None and (not isinstance(self.model, str) or not self.model):
            raise InvalidTypeError(
                f"model must be a non-empty str or None, got {shown(self.model)}"
            )
        check_threshold(self.threshold)
        object.__setattr__(self, "max_error_rate", check_error_rate(self.max_error_rate))
        if self.threshold is not None and self.max_error_rate is not None:
            raise InvalidRequestError(
                "threshold and max_error_rate are exclusive: a threshold selects the cosine "
                "rule, an error budget the verifier's"
            )
        if not isinstance(self.reuse, bool):
            raise InvalidTypeError(f"reuse must be a bool, got {type(self.reuse).__name__}")
        if self.question is not None and (
            not isinstance(self.question, str) or not self.question.strip()
        ):
            raise InvalidRequestError("question must be a non-empty str or None")
        object.__setattr__(self, "ttl_s", check_ttl(self.ttl_s))
        if self.sliding is not None and not isinstance(self.sliding, bool):
            raise InvalidTypeError(f"sliding must be a bool or None, got {self.sliding!r}")
        object.__setattr__(self, "tags", validate_tags(self.tags))

    @classmethod
    def of(cls, options: ReuseOptions | None = None, **overrides: Any) -> Self:
        """`options` (or the defaults) with keyword overrides; unknown keywords are refused."""
        unknown = set(overrides) - set(_FIELDS)
        if unknown:
            raise InvalidTypeError(f"unexpected reuse options: {', '.join(sorted(unknown))}")
        if options is not None and not isinstance(options, ReuseOptions):
            raise InvalidTypeError(f"options must be ReuseOptions, got {type(options).__name__}")
        if options is None:
            return cls(**overrides)
        return cls(**{**options.as_dict(), **overrides})

    def replace(self, **changes: Any) -> Self:
        """A copy with `changes` (validated again)."""
        return dataclasses.replace(self, **changes)

    def with_model(self, model: str | None) -> Self:
        """These options scoped to `model` unless the caller named one already."""
        return self if self.model is not None or model is None else self.replace(model=model)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _FIELDS}


def split_options(kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(reuse option keywords, the rest): for frontends that forward other keywords."""
    ours = {k: v for k, v in kwargs.items() if k in _FIELDS}
    rest = {k: v for k, v in kwargs.items() if k not in _FIELDS}
    return ours, rest


def check_message_count(prompt: object, limits: LimitsConfig) -> None:
    """Refuse a chat of more than ``limits.max_messages`` messages (before it is read)."""
    if not isinstance(prompt, Sequence) or isinstance(prompt, str):
        return
    if len(prompt) > limits.max_messages:
        raise InvalidRequestError(
            f"messages holds {len(prompt):,} messages, above limits.max_messages "
            f"({limits.max_messages:,})"
        )


def check_limits(request: ReuseRequest, limits: LimitsConfig) -> ReuseRequest:
    """`request` if it is within `limits`, else an `InvalidRequestError` naming the limit."""
    if request.messages is not None:
        check_message_count(request.messages, limits)
    if request.prompt_chars > limits.max_prompt_chars:
        what = (
            "prompt"
            if request.prompt is not None
            else "messages"
            if request.messages is not None
            else "prompt_token_ids"
        )
        unit = "token ids" if what == "prompt_token_ids" else "characters"
        raise InvalidRequestError(
            f"{what} holds {request.prompt_chars:,} {unit}, above limits.max_prompt_chars "
            f"({limits.max_prompt_chars:,})"
        )
    if request.params_chars > limits.max_params_chars:
        raise InvalidRequestError(
            f"params hold {request.params_chars:,} characters, above limits.max_params_chars "
            f"({limits.max_params_chars:,})"
        )
    return request
