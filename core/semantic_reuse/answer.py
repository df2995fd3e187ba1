"""A cached answer and its versioned codec (msgpack or JSON, never pickle).

Every encoded value starts with a 4-byte header: the magic ``SR``, the codec
version and the format byte (``m`` msgpack, ``j`` JSON). Anything else in a
cache (a foreign value, a corrupt one, an older or newer version) fails to
decode with `AnswerDecodeError`, which the tiers turn into a counted miss.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack

from semantic_reuse.canonical import check_json, check_text, data_chars
from semantic_reuse.config import CodecFormat, LimitsConfig
from semantic_reuse.errors import AnswerDecodeError as AnswerDecodeError  # re-exported
from semantic_reuse.errors import AnswerTooLargeError as AnswerTooLargeError
from semantic_reuse.errors import InvalidRequestError, InvalidTypeError
from semantic_reuse.request import JSONValue

MAGIC = b"SR"
CODEC_VERSION = 1
_FORMAT_BYTES: dict[str, bytes] = {"msgpack": b"m", "json": b"j"}
_FORMATS_BY_BYTE = {v: k for k, v in _FORMAT_BYTES.items()}


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """The reusable part of a model's answer, and how long it may be served.

    Lifecycle (docs/operations.md, "Answer lifecycle"): `tags` were given when it was stored
    (e.g. the source document of a RAG answer: invalidate by tag retires it); `epoch` is its
    namespace's epoch when the request that made it began (a bumped epoch retires it);
    `expires_at` (wall clock) ends it in every tier; with `sliding`, each use moves
    `expires_at` to `ttl_s` after that use.
    """

    text: str
    token_ids: tuple[int, ...] = ()
    finish_reason: str | None = "stop"
    usage: Mapping[str, int] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    source_prompt: str | None = None
    metadata: Mapping[str, JSONValue] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    epoch: int = 0
    expires_at: float | None = None
    ttl_s: float | None = None
    sliding: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise InvalidTypeError(f"text must be a str, got {type(self.text).__name__}")
        try:
            ids = tuple(int(t) for t in self.token_ids)
        except (TypeError, ValueError, OverflowError):
            raise InvalidTypeError("token_ids must be a sequence of ints") from None
        object.__setattr__(self, "token_ids", ids)
        if not isinstance(self.metadata, Mapping):
            raise InvalidTypeError(
                f"metadata must be a mapping, got {type(self.metadata).__name__}"
            )
        object.__setattr__(self, "tags", tuple(self.tags))

    def expired(self, now: float) -> bool:
        """Whether its lifetime ended at `now` (wall clock)."""
        return self.expires_at is not None and self.expires_at <= now

    @property
    def nbytes(self) -> int:
        """A cheap estimate of the memory this answer holds (for the L1 byte budget)."""
        prompt = len(self.source_prompt.encode()) if self.source_prompt else 0
        tags = sum(len(t) + 8 for t in self.tags)
        return 200 + len(self.text.encode()) + 8 * len(self.token_ids) + prompt + tags

    @classmethod
    def from_any(cls, value: object, *, source_prompt: str | None = None) -> CachedAnswer:
        """Normalise what callers store: text, token ids, a RequestOutput-like object.

        A RequestOutput-like object has ``outputs[0]`` with ``text``, ``token_ids`` and
        ``finish_reason`` (vLLM's RequestOutput); a CompletionOutput-like object has those
        attributes itself.
        """
        if isinstance(value, CachedAnswer):
            return value
        if isinstance(value, str):
            return cls(text=value, source_prompt=source_prompt)
        if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
            if all(isinstance(t, int) and not isinstance(t, bool) for t in value):
                return cls(text="", token_ids=tuple(value), source_prompt=source_prompt)
            raise InvalidTypeError("a sequence answer must hold token ids (ints)")
        outputs = getattr(value, "outputs", None)
        if isinstance(outputs, Sequence) and outputs:
            completion = outputs[0]
            prompt_ids = getattr(value, "prompt_token_ids", None) or ()
            prompt = source_prompt if source_prompt is not None else getattr(value, "prompt", None)
            return cls._from_completion(
                completion, prompt if isinstance(prompt, str) else None, len(prompt_ids)
            )
        if hasattr(value, "text") and hasattr(value, "token_ids"):
            return cls._from_completion(value, source_prompt, None)
        raise InvalidTypeError(
            "answer must be a str, a list of token ids, a CachedAnswer or a RequestOutput-like "
            f"object; got {type(value).__name__}"
        )

    @classmethod
    def _from_completion(
        cls, completion: Any, source_prompt: str | None, prompt_tokens: int | None
    ) -> CachedAnswer:
        token_ids = tuple(int(t) for t in (completion.token_ids or ()))
        usage = {"completion_tokens": len(token_ids)}
        if prompt_tokens is not None:
            usage["prompt_tokens"] = prompt_tokens
        finish = getattr(completion, "finish_reason", None)
        return cls(
            text=str(completion.text or ""),
            token_ids=token_ids,
            finish_reason=None if finish is None else str(finish),
            usage=usage,
            source_prompt=source_prompt,
        )

    def to_dict(self) -> dict[str, JSONValue]:
        """A JSON-able dict (also the vector store's payload). The lifecycle fields appear
        only when set, so an answer without them encodes as before they existed."""
        data: dict[str, JSONValue] = {
            "text": self.text,
            "token_ids": list(self.token_ids),
            "finish_reason": self.finish_reason,
            "usage": {str(k): int(v) for k, v in self.usage.items()},
            "created_at": self.created_at,
            "source_prompt": self.source_prompt,
            "metadata": dict(self.metadata),
        }
        if self.tags:
            data["tags"] = list(self.tags)
        if self.epoch:
            data["epoch"] = self.epoch
        if self.expires_at is not None:
            data["expires_at"] = self.expires_at
        if self.ttl_s is not None:
            data["ttl_s"] = self.ttl_s
        if self.sliding:
            data["sliding"] = True
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CachedAnswer:
        """Inverse of `to_dict`; raises `AnswerDecodeError` on anything malformed."""
        try:
            text = data["text"]
            token_ids = data.get("token_ids") or []
            usage = data.get("usage") or {}
            metadata = data.get("metadata") or {}
            finish = data.get("finish_reason")
            source = data.get("source_prompt")
            created = data.get("created_at", 0.0)
            tags = data.get("tags") or []
            epoch = data.get("epoch", 0)
            expires = data.get("expires_at")
            ttl = data.get("ttl_s")
            sliding = data.get("sliding", False)
            if not (
                isinstance(text, str)
                and isinstance(token_ids, list)
                and all(isinstance(t, int) and not isinstance(t, bool) for t in token_ids)
                and isinstance(usage, dict)
                and all(isinstance(v, int) for v in usage.values())
                and isinstance(metadata, dict)
                and (finish is None or isinstance(finish, str))
                and (source is None or isinstance(source, str))
                and isinstance(created, (int, float))
                and isinstance(tags, list)
                and all(isinstance(t, str) for t in tags)
                and isinstance(epoch, int)
                and not isinstance(epoch, bool)
                and (expires is None or isinstance(expires, (int, float)))
                and (ttl is None or isinstance(ttl, (int, float)))
                and isinstance(sliding, bool)
            ):
                raise AnswerDecodeError("answer fields have the wrong types")
            return cls(
                text=text,
                token_ids=tuple(token_ids),
                finish_reason=finish,
                usage=usage,
                created_at=float(created),
                source_prompt=source,
                metadata=metadata,
                tags=tuple(tags),
                epoch=epoch,
                expires_at=None if expires is None else float(expires),
                ttl_s=None if ttl is None else float(ttl),
                sliding=sliding,
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise AnswerDecodeError(f"not an answer: {exc!r}") from exc


@dataclass(frozen=True, slots=True)
class AnswerCodec:
    """Encodes answers for byte stores (Redis, shared memory), with a size cap."""

    format: CodecFormat = "msgpack"
    max_bytes: int = 1024 * 1024

    def encode(self, answer: CachedAnswer) -> bytes:
        """Header + payload; raises `AnswerTooLargeError` above `max_bytes`."""
        data = answer.to_dict()
        if self.format == "msgpack":
            payload: bytes = msgpack.packb(data, use_bin_type=True)
        else:
            payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        encoded = MAGIC + bytes([CODEC_VERSION]) + _FORMAT_BYTES[self.format] + payload
        if len(encoded) > self.max_bytes:
            raise AnswerTooLargeError(
                f"encoded answer is {len(encoded)} bytes, above the cap of {self.max_bytes}"
            )
        return encoded

    def decode(self, blob: bytes) -> CachedAnswer:
        """Decode any format this version wrote; raises `AnswerDecodeError` otherwise."""
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise AnswerDecodeError(f"expected bytes, got {type(blob).__name__}")
        blob = bytes(blob)
        if len(blob) < 4 or blob[:2] != MAGIC:
            raise AnswerDecodeError("foreign value: no semantic-reuse header")
        if blob[2] != CODEC_VERSION:
            raise AnswerDecodeError(f"unsupported codec version {blob[2]}")
        fmt = _FORMATS_BY_BYTE.get(blob[3:4])
        try:
            if fmt == "msgpack":
                data = msgpack.unpackb(blob[4:], raw=False, strict_map_key=True)
            elif fmt == "json":
                data = json.loads(blob[4:].decode("utf-8"))
            else:
                raise AnswerDecodeError(f"unknown format byte {blob[3:4]!r}")
        except AnswerDecodeError:
            raise
        except Exception as exc:  # msgpack raises several unrelated exception types
            raise AnswerDecodeError(f"corrupt {fmt} payload: {exc!r}") from exc
        if not isinstance(data, dict):
            raise AnswerDecodeError("payload is not a map")
        return CachedAnswer.from_dict(data)


def check_answer(answer: CachedAnswer, limits: LimitsConfig) -> CachedAnswer:
    """`answer` if it may be stored as it is, in every tier: valid Unicode, token ids and
    usage that are ints, a finite time, metadata that is JSON data (`check_json`), and at most
    ``limits.max_answer_chars`` (its text, the strings of its metadata and its token ids).
    Else `InvalidRequestError`, `InvalidTypeError` or `AnswerTooLargeError`."""
    check_text(answer.text, "answer text")
    for name in ("source_prompt", "finish_reason"):
        value = getattr(answer, name)
        if value is not None and not isinstance(value, str):
            raise InvalidTypeError(f"answer {name} must be a str or None")
        if value is not None:
            check_text(value, f"answer {name}")
    if not all(0 <= t < 2**63 for t in answer.token_ids):
        raise InvalidRequestError("answer token_ids must be ints in [0, 2**63)")
    check_json(dict(answer.usage), "answer usage")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in answer.usage.values()):
        raise InvalidTypeError("answer usage must map names to ints")
    created = answer.created_at
    if (
        isinstance(created, bool)
        or not isinstance(created, int | float)
        or not math.isfinite(created)
    ):
        raise InvalidRequestError("answer created_at must be a finite number")
    check_json(answer.metadata, "answer metadata")
    size = len(answer.text) + data_chars(answer.metadata) + len(answer.token_ids)
    if size > limits.max_answer_chars:
        raise AnswerTooLargeError(
            f"answer holds {size:,} characters (text, metadata and token ids), above "
            f"limits.max_answer_chars ({limits.max_answer_chars:,})"
        )
    return answer
