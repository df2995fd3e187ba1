"""Host shared memory: exact hits and similar-request lists shared by the processes of a host.

Two named POSIX shared-memory segments (layout in `semantic_reuse.exact.slot_table`, life
cycle in `semantic_reuse.exact.segment`):

- request mappings: (namespace, hash id) -> the hash ids of similar requests and their scores;
- token mappings: (namespace, hash id) -> the answer (`CachedAnswer` through `AnswerCodec`,
  msgpack, never pickle), token ids included, so a vLLM API server process can serve
  another's exact hit without a network hop.

Both belong to one user (`segment`: per-user names, owner and mode checked on every open)
and are keyed with the user's secret (`semantic_reuse.exact.secret`): an entry's slot key is
a keyed BLAKE2b of its namespace and hash id, its tag (what `clear(namespace)` removes by)
a keyed hash of the namespace, and its payload carries an HMAC-SHA256. A namespace is
required everywhere; a falsy one is refused.

The creating process owns the segments and unlinks them in `close()` (or when it exits);
others attach by name. A create that finds segments whose owner has died recovers them
(unlinks and recreates); one whose owner lives attaches instead. Everything here is
memory work, microseconds, so the API is synchronous.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import struct
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from semantic_reuse.answer import AnswerCodec, AnswerDecodeError, AnswerTooLargeError, CachedAnswer
from semantic_reuse.errors import InvalidRequestError, InvalidTypeError
from semantic_reuse.exact.secret import load_secret
from semantic_reuse.exact.segment import (
    KIND_REQUESTS,
    KIND_TOKENS,
    MIN_DATA_BYTES,
    overhead_bytes,
)
from semantic_reuse.exact.slot_table import TAG_BYTES, SlotTable, TableStats
from semantic_reuse.request import validate_namespace

MiB = 1024 * 1024
DEFAULT_REQUEST_MAPPING_NAME = "semantic-reuse-requests"
DEFAULT_TOKEN_MAPPING_NAME = "semantic-reuse-tokens"
_MAX_ENTRIES = 1 << 24
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,199}")
_HEX = re.compile(r"[0-9a-fA-F]{32}")
_COUNT = struct.Struct("<I")
_ITEM = struct.Struct("<16sd")


@dataclass(frozen=True, slots=True)
class SimilarRequestMemoryConfig:
    """Sizes and names of the two segments; every bad value raises ValueError naming it.

    Sizes are whole segments (header, slots and index included); ``max_entries`` bounds
    each mapping. An attaching process takes the geometry the owner wrote, so only the
    names (and the secret) need to agree between processes. ``secret_path`` is the user's
    secret file (None: `semantic_reuse.exact.secret.default_secret_path`).
    """

    request_mapping_memory_size: int = 8 * MiB
    token_mapping_memory_size: int = 8 * MiB
    max_entries: int = 5000
    request_mapping_shared_name: str = DEFAULT_REQUEST_MAPPING_NAME
    token_mapping_shared_name: str = DEFAULT_TOKEN_MAPPING_NAME
    secret_path: Path | None = None

    def __post_init__(self) -> None:
        _check_int("max_entries", self.max_entries, _MAX_ENTRIES)
        needed = overhead_bytes(self.max_entries) + MIN_DATA_BYTES
        for field in ("request_mapping_memory_size", "token_mapping_memory_size"):
            _check_int(field, getattr(self, field), 1 << 40)
            if getattr(self, field) < needed:
                raise InvalidRequestError(
                    f"{field} must be at least {needed} bytes for "
                    f"max_entries={self.max_entries}, got {getattr(self, field)}"
                )
        for field in ("request_mapping_shared_name", "token_mapping_shared_name"):
            name = getattr(self, field)
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                raise InvalidRequestError(
                    f"{field} must be 1-200 characters of letters, digits, '_', '-' and "
                    f"'.' (not first), no '/': got {name!r}"
                )
        if self.request_mapping_shared_name == self.token_mapping_shared_name:
            raise InvalidRequestError(
                "token_mapping_shared_name must differ from the request mapping's"
            )
        if self.secret_path is not None and not isinstance(self.secret_path, (str, Path)):
            raise InvalidTypeError(
                f"secret_path must be a path or None, got {type(self.secret_path).__name__}"
            )


def _check_int(field: str, value: object, limit: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidRequestError(f"{field} must be an int, got {type(value).__name__}")
    if not 0 < value <= limit:
        raise InvalidRequestError(f"{field} must be between 1 and {limit}, got {value}")


@dataclass(frozen=True, slots=True)
class SharedMemoryStats:
    """Both mappings (see `TableStats`), plus stored values that failed to decode here."""

    requests: TableStats
    tokens: TableStats
    decode_failures: int


class SimilarRequestMemoryManager:
    """The host's shared request and token mappings; a context manager.

    ``create=True`` (the default) creates the segments, recovers a dead owner's, or attaches
    to a live owner's (`is_owner` says which); ``create=False`` (or `attach`) only attaches
    and raises FileNotFoundError when there is nothing to attach to. A segment written by
    another layout or program raises ValueError and is left alone; a segment, lock file or
    secret file this user cannot trust raises `SharedMemoryRefusedError`.

    Reads take no lock and never block; writes take a host-wide lock for microseconds.
    A stored value that cannot be read back intact is a miss, counted in `stats`.
    """

    def __init__(
        self, config: SimilarRequestMemoryConfig | None = None, *, create: bool = True
    ) -> None:
        config = SimilarRequestMemoryConfig() if config is None else config
        if not isinstance(config, SimilarRequestMemoryConfig):
            raise InvalidTypeError(f"config must be a SimilarRequestMemoryConfig, got {config!r}")
        self.config = config
        self._secret = secret = load_secret(config.secret_path)
        self._tags: dict[str, bytes] = {}
        self._requests = SlotTable.open(
            config.request_mapping_shared_name,
            kind=KIND_REQUESTS,
            size=config.request_mapping_memory_size,
            max_entries=config.max_entries,
            create=create,
            secret=secret,
        )
        try:
            self._tokens = SlotTable.open(
                config.token_mapping_shared_name,
                kind=KIND_TOKENS,
                size=config.token_mapping_memory_size,
                max_entries=config.max_entries,
                create=create,
                secret=secret,
            )
        except BaseException:
            self._requests.close(unlink=self._requests.owner)
            raise
        self._codec = AnswerCodec("msgpack", max_bytes=self._tokens.data_capacity)
        self._decode_failures = 0
        self._closed = False
        # Runs on close(), on garbage collection and at interpreter exit; the pid check
        # keeps a forked child from unlinking its parent's segments.
        self._finalizer = weakref.finalize(
            self, _close_tables, (self._requests, self._tokens), os.getpid()
        )

    @classmethod
    def attach(
        cls, config: SimilarRequestMemoryConfig | None = None
    ) -> SimilarRequestMemoryManager:
        """Attach to existing segments (FileNotFoundError if there are none)."""
        return cls(config, create=False)

    @property
    def is_owner(self) -> bool:
        """Whether this process created the segments (and so unlinks them on close)."""
        return self._requests.owner or self._tokens.owner

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def integrity_failures(self) -> int:
        """Entries this process refused to read because their MAC did not match."""
        return self._requests.integrity_failures + self._tokens.integrity_failures

    def put_tokens(self, hash_id: str, answer: CachedAnswer, *, namespace: str) -> bool:
        """Store an answer; False when it cannot fit in the token mapping at all."""
        key, tag = self._key(hash_id, namespace)
        if not isinstance(answer, CachedAnswer):
            raise InvalidTypeError(f"answer must be a CachedAnswer, got {type(answer).__name__}")
        try:
            blob = self._codec.encode(answer)
        except AnswerTooLargeError:
            return False
        return self._tokens.put(key, blob, tag)

    def get_tokens(self, hash_id: str, *, namespace: str) -> CachedAnswer | None:
        """The answer stored under ``hash_id`` in ``namespace``; None on a miss."""
        blob = self._tokens.get(self._key(hash_id, namespace)[0])
        if blob is None:
            return None
        try:
            return self._codec.decode(blob)
        except AnswerDecodeError:
            self._decode_failures += 1
            return None

    def put_similar(
        self, hash_id: str, similar: Sequence[tuple[str, float]], *, namespace: str
    ) -> bool:
        """Store the similar requests of ``hash_id`` (hash id, score), replacing earlier ones.

        False when the list cannot fit in the request mapping at all.
        """
        key, tag = self._key(hash_id, namespace)
        if isinstance(similar, (str, bytes)) or not isinstance(similar, Sequence):
            raise InvalidTypeError("similar must be a sequence of (hash id, score) pairs")
        parts = [_COUNT.pack(len(similar))]
        for item in similar:
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise InvalidTypeError(
                    f"similar items must be (hash id, score) pairs, got {item!r}"
                )
            other, score = item
            if isinstance(score, bool) or not isinstance(score, (int, float)):
                raise InvalidTypeError(f"similar scores must be floats, got {score!r}")
            if not math.isfinite(score):
                raise InvalidRequestError(f"similar scores must be finite, got {score!r}")
            parts.append(_ITEM.pack(_hash_bytes(other, "similar"), float(score)))
        return self._requests.put(key, b"".join(parts), tag)

    def get_similar(self, hash_id: str, *, namespace: str) -> list[tuple[str, float]]:
        """The similar requests stored for ``hash_id``, in stored order; [] on a miss."""
        blob = self._requests.get(self._key(hash_id, namespace)[0])
        if blob is None:
            return []
        if (
            len(blob) < _COUNT.size
            or len(blob) != _COUNT.size + _ITEM.size * (_COUNT.unpack_from(blob)[0])
        ):
            self._decode_failures += 1
            return []
        return [(key.hex(), score) for key, score in _ITEM.iter_unpack(blob[_COUNT.size :])]

    def delete(self, hash_id: str, *, namespace: str) -> bool:
        """Remove ``hash_id`` of ``namespace`` from both mappings; True if either held it."""
        key = self._key(hash_id, namespace)[0]
        removed = self._requests.delete(key)
        return self._tokens.delete(key) or removed

    def clear(self, namespace: str) -> int:
        """Remove one namespace's entries from both mappings (for every process on the
        host); how many there were. A falsy namespace is refused: see `clear_all`."""
        tag = self._tag(namespace)
        return self._requests.clear_tag(tag) + self._tokens.clear_tag(tag)

    def clear_all(self) -> None:
        """Empty both mappings, every namespace's entries (for every process on the host)."""
        self._check_open()
        self._requests.clear()
        self._tokens.clear()

    def stats(self) -> SharedMemoryStats:
        self._check_open()
        return SharedMemoryStats(
            requests=self._requests.stats(),
            tokens=self._tokens.stats(),
            decode_failures=self._decode_failures,
        )

    def close(self) -> None:
        """Unmap; the owner also unlinks the segments. Idempotent."""
        self._closed = True
        self._finalizer()

    def __enter__(self) -> SimilarRequestMemoryManager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _key(self, hash_id: object, namespace: object) -> tuple[bytes, bytes]:
        """(slot key, tag) of ``hash_id`` in ``namespace``, both keyed with the secret."""
        raw = _hash_bytes(hash_id, "hash_id")
        tag = self._tag(namespace)  # validates the namespace
        scoped = str(namespace).encode() + b"\0" + raw  # a namespace holds no NUL
        digest = hashlib.blake2b(scoped, digest_size=16, key=self._secret, person=b"sr-key")
        return digest.digest(), tag

    def _tag(self, namespace: object) -> bytes:
        self._check_open()
        tag = self._tags.get(namespace) if isinstance(namespace, str) else None
        if tag is None:
            name = validate_namespace(namespace).encode()
            tag = hashlib.blake2b(
                name, digest_size=TAG_BYTES, key=self._secret, person=b"sr-namespace"
            ).digest()
            if len(self._tags) < 4096:
                self._tags[name.decode()] = tag
        return tag

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidRequestError("this SimilarRequestMemoryManager is closed")


def _hash_bytes(hash_id: object, argument: str) -> bytes:
    if not isinstance(hash_id, str):
        raise InvalidTypeError(f"{argument} must be a str, got {type(hash_id).__name__}")
    if not _HEX.fullmatch(hash_id):
        raise InvalidRequestError(f"{argument} must be 32 hex characters, got {hash_id!r}")
    return bytes.fromhex(hash_id)


def _close_tables(tables: tuple[SlotTable, ...], creator_pid: int) -> None:
    for table in tables:
        table.close(unlink=table.owner and os.getpid() == creator_pid)
