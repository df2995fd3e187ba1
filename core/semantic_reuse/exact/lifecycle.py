"""Where namespaces' lifecycle records live: Redis when configured, else a file on the host.

A record (`semantic_reuse.lifecycle.NamespaceState`) is small: the epoch, a retirement time,
and the tags and hash ids retired at a given time. Each process keeps the records it has read
and reads one again at most every `refresh_s` seconds, so a read of an answer costs a dict
lookup, and an invalidation made elsewhere takes effect here within `refresh_s`; one made
here takes effect here at once.

- Redis: one hash per namespace, ``{prefix}#lifecycle:{namespace}`` (``#`` never occurs in a
  prefix or a namespace, so no answer key or clear pattern can match it; one key, so no
  cross-slot operation under Redis Cluster). Fields: ``epoch`` (HINCRBY), ``not_before``,
  ``tag:<tag>`` and ``id:<hash id>`` (a wall-clock time, only ever raised, by a script).
  Reads that fail keep the last record read (and, while Redis' breaker is open, are not
  tried: the answers' own calls probe Redis); writes that fail raise: an invalidation that
  could not be recorded is never reported done.
- A JSON file (`path`), for one host without Redis: rewritten whole under a lock, read again
  when its modification time changes.
- Neither: records live in this process only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from semantic_reuse.breaker import BreakerState
from semantic_reuse.errors import ComponentUnavailableError
from semantic_reuse.exact.redis import RedisTier, Skipped
from semantic_reuse.lifecycle import ID_KEY, TAG_KEY, NamespaceState
from semantic_reuse.request import validate_namespace

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

# Raise a field to ARGV[2] if it is lower; raising not_before drops the retired tags and ids
# it covers (an answer they retire is older than not_before as well).
_RAISE = """
local v = tonumber(ARGV[2])
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if v > cur then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
if ARGV[1] == 'not_before' then
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    local f = all[i]
    if (string.sub(f, 1, 4) == 'tag:' or string.sub(f, 1, 3) == 'id:')
        and tonumber(all[i + 1]) <= v then
      redis.call('HDEL', KEYS[1], f)
    end
  end
end
return 1
"""


@dataclass(slots=True)
class _Cached:
    state: NamespaceState
    read_at: float


def parse_record(fields: Mapping[Any, Any]) -> NamespaceState:
    """A record from its fields (Redis' bytes or the file's values); bad fields are skipped."""
    epoch, not_before, retired = 0, 0.0, {}
    for raw_name, raw_value in fields.items():
        name = raw_name.decode() if isinstance(raw_name, bytes) else str(raw_name)
        value = raw_value.decode() if isinstance(raw_value, bytes) else raw_value
        try:
            if name == "epoch":
                epoch = int(value)
            elif name == "not_before":
                not_before = float(value)
            elif name.startswith((TAG_KEY, ID_KEY)):
                retired[name] = float(value)
        except (TypeError, ValueError):
            continue
    return NamespaceState(epoch, not_before, retired)


class LifecycleStore:
    """The namespaces' lifecycle records, cached per process for `refresh_s`."""

    def __init__(
        self,
        *,
        redis: RedisTier | None = None,
        path: Path | None = None,
        refresh_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis = redis
        self.path = None if redis is not None else path
        self.refresh_s = refresh_s
        self._clock = clock
        self._cache: dict[str, _Cached] = {}
        self._file: dict[str, Any] = {}
        self._file_mtime: int | None = None

    @property
    def backend(self) -> str:
        """Where the records live: "redis", "file" or "memory"."""
        return "redis" if self.redis is not None else "file" if self.path else "memory"

    def key(self, namespace: str) -> str:
        assert self.redis is not None
        return f"{self.redis.prefix}#lifecycle:{namespace}"

    async def state(self, namespace: str) -> NamespaceState:
        """The namespace's record, read again when the one held is `refresh_s` old."""
        cached = self._cache.get(namespace)
        now = self._clock()
        if cached is not None and now - cached.read_at < self.refresh_s:
            return cached.state
        state = await self._read(namespace)
        if state is None:  # unreadable now: keep what was read last, try again later
            state = cached.state if cached is not None else NamespaceState()
        self._cache[namespace] = _Cached(state, now)
        return state

    async def bump_epoch(self, namespace: str) -> int:
        """Retire every answer of the namespace made before now: its epoch plus one."""
        validate_namespace(namespace)
        if self.redis is not None:
            key = self.key(namespace)
            result = await self.redis.command(
                "lifecycle", lambda client: client.hincrby(key, "epoch", 1)
            )
            self._check_written(result)
            epoch = int(result)  # type: ignore[arg-type]
        else:
            with self._editing() as records:
                record = records.setdefault(namespace, {})
                epoch = int(record.get("epoch", 0)) + 1
                record["epoch"] = epoch
        await self._reread(namespace)
        return epoch

    async def retire(
        self,
        namespace: str,
        *,
        at: float,
        before: bool = False,
        tags: Sequence[str] = (),
        ids: Sequence[str] = (),
    ) -> NamespaceState:
        """Retire, as of wall-clock time `at`, every answer of the namespace created before
        it (`before`), or those that carry one of `tags`, or stored under one of `ids`."""
        validate_namespace(namespace)
        fields = [TAG_KEY + t for t in tags] + [ID_KEY + i for i in ids]
        if before:
            fields.append("not_before")
        if self.redis is not None:
            key = self.key(namespace)
            for name in fields:
                result = await self.redis.command("lifecycle", _raise(key, name, at))
                self._check_written(result)
        else:
            with self._editing() as records:
                record = records.setdefault(namespace, {})
                for name in fields:
                    record[name] = max(float(record.get(name, 0.0)), at)
                if before:
                    for name in [n for n in record if n.startswith((TAG_KEY, ID_KEY))]:
                        if float(record[name]) <= at:
                            del record[name]
        return await self._reread(namespace)

    async def _reread(self, namespace: str) -> NamespaceState:
        self._cache.pop(namespace, None)
        return await self.state(namespace)

    @staticmethod
    def _check_written(result: object) -> None:
        if isinstance(result, Skipped):
            raise ComponentUnavailableError(
                "the lifecycle record could not be written to Redis (unavailable): nothing "
                "was invalidated; try again when Redis answers"
            )

    # -- reading ----------------------------------------------------------------------------

    async def _read(self, namespace: str) -> NamespaceState | None:
        if self.redis is not None:
            if self.redis.breaker.state is not BreakerState.CLOSED:
                return None  # reads never probe a Redis that is down: the answers' calls do
            key = self.key(namespace)
            result = await self.redis.command("lifecycle", lambda client: client.hgetall(key))
            return None if isinstance(result, Skipped) else parse_record(result)
        if self.path is not None:
            self._load_file()
            return parse_record(self._file.get(namespace, {}))
        cached = self._cache.get(namespace)
        return cached.state if cached is not None else NamespaceState()

    def _load_file(self) -> None:
        assert self.path is not None
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            self._file, self._file_mtime = {}, None
            return
        if mtime == self._file_mtime:
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # being replaced or damaged: keep what was read
        self._file = data if isinstance(data, dict) else {}
        self._file_mtime = mtime

    # -- the file or this process's records --------------------------------------------------

    @contextlib.contextmanager
    def _editing(self) -> Iterator[dict[str, Any]]:
        """The records to change, written back on exit (the file under its lock)."""
        if self.path is None:
            records = {ns: _as_fields(c.state) for ns, c in self._cache.items()}
            yield records
            self._cache = {
                ns: _Cached(parse_record(fields), self._clock()) for ns, fields in records.items()
            }
            self._file = records
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._file_mtime = None
            self._load_file()
            records = dict(self._file)
            yield records
            handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".lifecycle-")
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(records, out)
            os.replace(temporary, self.path)
            self._file_mtime = None
            self._load_file()


def _raise(key: str, name: str, at: float) -> Callable[[Redis | RedisCluster], Awaitable[Any]]:
    """The Redis call that raises field `name` of `key` to `at`."""

    def call(client: Redis | RedisCluster) -> Awaitable[Any]:
        return client.eval(_RAISE, 1, key, name, repr(at))

    return call


def _as_fields(state: NamespaceState) -> dict[str, Any]:
    return {"epoch": state.epoch, "not_before": state.not_before, **state.retired}
