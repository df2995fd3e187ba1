"""One host shared-memory mapping: a bounded key -> bytes table in a named segment.

Layout (little-endian; offsets in bytes; the header and the segment's life are in
`semantic_reuse.exact.segment`)::

    0         header    magic, layout version, kind, geometry, owner
    128       state     writer pid, ring counters, entries, bytes used, overwrites, recoveries
    256       slots     max_entries records of 64 bytes, used in ring (insertion) order:
                        version (seqlock), key (16 bytes), data position, length, flags,
                        MAC (16 bytes), tag (8 bytes: the namespace's, see `clear_tag`)
    ...       index     open addressing with linear probing, a power of two >= 2 * max_entries
                        buckets of 8 bytes: (hash & 0xffffffff) << 32 | (slot + 1); 0 = empty
    ...       data      the rest: a byte ring holding the payloads in insertion order

Payloads vary in size (an answer of 20 tokens or of 2,000), so they live in a byte ring
rather than in fixed-size slots; slots and payloads are both allocated in insertion order,
so making room always means evicting the oldest entries, O(1) each. A replaced or deleted
entry's slot and bytes come back when the ring reaches them, so heavy replacement leaves
fewer than max_entries live entries.

Concurrency: one writer at a time (``flock`` on a lock file beside the segment, plus a thread
lock, since ``flock`` does not exclude threads sharing the descriptor); readers take no lock.
Each slot is a seqlock: a writer makes its version odd, writes the record and the payload,
then makes it even. A reader copies the record and the payload and keeps them only if the
version was even and unchanged; each entry also carries a MAC (HMAC-SHA256 keyed with the
user's secret over key, tag and payload, truncated to 16 bytes), so damage the version cannot
see, or an entry written by anyone without the secret, is a counted miss. The index is only a
hint: a reader trusts nothing it has not checked against the slot, so a bucket moved under it
means a miss.

A writer that dies in the middle of an update leaves its pid in the state block; the next
writer finds it there and resets the table (entries lost, counted in ``recoveries``).
"""

from __future__ import annotations

import contextlib
import hmac
import mmap
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import xxhash

from semantic_reuse.exact.segment import (
    HEADER,
    HEADER_BYTES,
    SLOT_BYTES,
    WriterLock,
    close_segment,
    open_segment,
)

KEY_BYTES = 16
TAG_BYTES = 8
MAC_BYTES = 16
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_BODY = struct.Struct("<16sQII16s8s")  # key, position, length, flags, MAC, tag (at slot + 8)
# The state block: one u64 each, written by the writer only, under the lock.
_WRITER, _SEQ_HEAD, _SEQ_TAIL, _POS_HEAD, _ENTRIES, _BYTES, _OVERWRITES, _RECOVERIES = (
    128 + 8 * i for i in range(8)
)
_LIVE = 1
_READ_ATTEMPTS = 16


@dataclass(frozen=True, slots=True)
class TableStats:
    """One mapping. Overwrites and recoveries are the segment's (all processes); torn-read
    retries and integrity failures (a MAC that does not match) are this process's, since
    readers write nothing shared."""

    entries: int
    bytes_used: int
    data_capacity: int
    max_entries: int
    overwrites: int
    recoveries: int
    torn_read_retries: int
    integrity_failures: int


class SlotTable:
    """A bounded key -> bytes table in one named segment; see the module docstring."""

    def __init__(
        self, name: str, mm: mmap.mmap, lock: WriterLock, *, owner: bool, secret: bytes
    ) -> None:
        self.name = name
        self.owner = owner
        self._secret = secret
        self._mm = mm
        self._lock = lock
        _, _, self.kind, self.max_entries, self._buckets = HEADER.unpack_from(mm)[:5]
        self.data_offset, self.data_capacity = HEADER.unpack_from(mm)[6:8]
        self._index = HEADER_BYTES + SLOT_BYTES * self.max_entries
        self._mask = self._buckets - 1
        self.torn_read_retries = 0
        self.integrity_failures = 0

    @classmethod
    def open(
        cls, name: str, *, kind: int, size: int, max_entries: int, create: bool, secret: bytes
    ) -> SlotTable:
        """Create (or recover a dead owner's) segment, or attach to a live one; entries are
        authenticated with `secret` (the user's, `semantic_reuse.exact.secret`)."""
        mm, lock, owner = open_segment(
            name, kind=kind, size=size, max_entries=max_entries, create=create,
            key_id=key_id(secret),
        )  # fmt: skip
        return cls(name, mm, lock, owner=owner, secret=secret)

    # --- reading (no lock) ---------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        """The payload stored under ``key``, or None: absent, unstable, or damaged."""
        mm = self._mm
        for attempt in range(_READ_ATTEMPTS):
            slot = self._find(key)[1]
            if slot < 0:
                return None
            base = HEADER_BYTES + SLOT_BYTES * slot
            version = _U64.unpack_from(mm, base)[0]
            found, pos, length, flags, mac, tag = _BODY.unpack_from(mm, base + 8)
            if version & 1 or found != key or not flags & _LIVE:
                self.torn_read_retries += 1  # being written, or reused since _find
                if attempt > 1:
                    os.sched_yield()
                continue
            if length > self.data_capacity:
                self.integrity_failures += 1
                return None
            start = self.data_offset + pos % self.data_capacity
            payload = mm[start : start + length]
            if _U64.unpack_from(mm, base)[0] != version:
                self.torn_read_retries += 1
                continue
            if not hmac.compare_digest(self._mac(key, tag, payload), mac):
                self.integrity_failures += 1
                return None
            return payload
        return None

    def _find(self, key: bytes) -> tuple[int, int]:
        """(bucket, slot) of ``key``, or (first empty bucket, -1); (-1, -1) if all are full."""
        mm, mask = self._mm, self._mask
        tag = xxhash.xxh3_64_intdigest(key) & 0xFFFFFFFF
        bucket = tag & mask
        for _ in range(self._buckets):
            value = _U64.unpack_from(mm, self._index + 8 * bucket)[0]
            if value == 0:
                return bucket, -1
            slot = (value & 0xFFFFFFFF) - 1
            if value >> 32 == tag and 0 <= slot < self.max_entries:
                base = HEADER_BYTES + SLOT_BYTES * slot + 8
                if mm[base : base + KEY_BYTES] == key:
                    return bucket, slot
            bucket = (bucket + 1) & mask
        return -1, -1

    def stats(self) -> TableStats:
        mm = self._mm
        return TableStats(
            entries=_U64.unpack_from(mm, _ENTRIES)[0],
            bytes_used=_U64.unpack_from(mm, _BYTES)[0],
            data_capacity=self.data_capacity,
            max_entries=self.max_entries,
            overwrites=_U64.unpack_from(mm, _OVERWRITES)[0],
            recoveries=_U64.unpack_from(mm, _RECOVERIES)[0],
            torn_read_retries=self.torn_read_retries,
            integrity_failures=self.integrity_failures,
        )

    def _mac(self, key: bytes, tag: bytes, payload: bytes) -> bytes:
        return hmac.digest(self._secret, key + tag + payload, "sha256")[:MAC_BYTES]

    # --- writing (under the lock) -------------------------------------------------------

    def put(self, key: bytes, payload: bytes, tag: bytes = bytes(TAG_BYTES)) -> bool:
        """Store, evicting the oldest entries as needed; False if it can never fit. `tag`
        (8 bytes) groups entries for `clear_tag`."""
        length = len(payload)
        if length > self.data_capacity:
            return False
        mac = self._mac(key, tag, payload)
        with self._writing():
            self._remove(key)
            cap = self.data_capacity
            start = self._get(_POS_HEAD)
            if start % cap + length > cap:
                start += cap - start % cap  # a payload never wraps: skip the ring's end
            head, tail = self._get(_SEQ_HEAD), self._get(_SEQ_TAIL)
            while tail < head:  # evict the oldest until a slot and the bytes are free
                oldest = HEADER_BYTES + SLOT_BYTES * (tail % self.max_entries)
                oldest_pos = _BODY.unpack_from(self._mm, oldest + 8)[1]
                if head - tail < self.max_entries and start + length - oldest_pos <= cap:
                    break
                if self._evict(tail % self.max_entries):
                    self._add(_OVERWRITES, 1)
                tail += 1
                self._set(_SEQ_TAIL, tail)
            slot = head % self.max_entries
            base = HEADER_BYTES + SLOT_BYTES * slot
            version = self._begin_slot(base)
            _BODY.pack_into(self._mm, base + 8, key, start, length, _LIVE, mac, tag)
            offset = self.data_offset + start % cap
            self._mm[offset : offset + length] = payload
            _U64.pack_into(self._mm, base, version + 1)
            bucket = self._find(key)[0]
            _U64.pack_into(self._mm, self._index + 8 * bucket, _bucket_value(key, slot))
            self._set(_SEQ_HEAD, head + 1)
            self._set(_POS_HEAD, start + length)
            self._add(_ENTRIES, 1)
            self._add(_BYTES, length)
        return True

    def delete(self, key: bytes) -> bool:
        with self._writing():
            return self._remove(key)

    def clear(self) -> None:
        with self._writing():
            self._reset()

    def clear_tag(self, tag: bytes) -> int:
        """Remove every entry stored with `tag`; how many there were."""
        removed = 0
        with self._writing():
            for slot in range(self.max_entries):
                base = HEADER_BYTES + SLOT_BYTES * slot + 8
                key, _, _, flags, _, found = _BODY.unpack_from(self._mm, base)
                if flags & _LIVE and found == tag:
                    bucket, at = self._find(key)
                    if at == slot:
                        self._unindex(bucket)
                    self._kill(slot)
                    removed += 1
        return removed

    def close(self, *, unlink: bool) -> None:
        """Unmap; ``unlink`` also removes the segment and its lock file (the owner's job)."""
        close_segment(self.name, self._mm, self._lock, unlink=unlink)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        with self._lock:
            if self._get(_WRITER):  # a writer died half-way: nothing is to be trusted
                self._reset()
                self._add(_RECOVERIES, 1)
            self._set(_WRITER, os.getpid())
            try:
                yield
            except BaseException:
                self._reset()  # leave no half-made update behind
                raise
            finally:
                self._set(_WRITER, 0)

    def _remove(self, key: bytes) -> bool:
        bucket, slot = self._find(key)
        if slot < 0:
            return False
        self._unindex(bucket)
        self._kill(slot)
        return True

    def _evict(self, slot: int) -> bool:
        """Drop the entry in ``slot`` if it is live (it is the oldest); True if it was."""
        key, _, _, flags, _, _ = _BODY.unpack_from(self._mm, HEADER_BYTES + SLOT_BYTES * slot + 8)
        if not flags & _LIVE:
            return False
        bucket, found = self._find(key)
        if found == slot:
            self._unindex(bucket)
        self._kill(slot)
        return True

    def _kill(self, slot: int) -> None:
        base = HEADER_BYTES + SLOT_BYTES * slot
        version = self._begin_slot(base)
        length = _U32.unpack_from(self._mm, base + 32)[0]
        _U32.pack_into(self._mm, base + 36, 0)
        _U64.pack_into(self._mm, base, version + 1)
        self._add(_ENTRIES, -1)
        self._add(_BYTES, -length)

    def _begin_slot(self, base: int) -> int:
        """Make the slot's version odd (the next odd one, even after a dead writer's)."""
        version: int = _U64.unpack_from(self._mm, base)[0]
        version += 1 + (version & 1)
        _U64.pack_into(self._mm, base, version)
        return version

    def _unindex(self, hole: int) -> None:
        """Empty a bucket, shifting later ones of the probe run back (no tombstones)."""
        mm, mask, index = self._mm, self._mask, self._index
        nxt = hole
        while True:
            nxt = (nxt + 1) & mask
            value = _U64.unpack_from(mm, index + 8 * nxt)[0]
            if value == 0:
                break
            home = (value >> 32) & mask
            if (nxt - home) & mask >= (nxt - hole) & mask:
                _U64.pack_into(mm, index + 8 * hole, value)
                hole = nxt
        _U64.pack_into(mm, index + 8 * hole, 0)

    def _reset(self) -> None:
        for slot in range(self.max_entries):
            if _U32.unpack_from(self._mm, HEADER_BYTES + SLOT_BYTES * slot + 36)[0] & _LIVE:
                self._kill(slot)
        self._mm[self._index : self._index + 8 * self._buckets] = bytes(8 * self._buckets)
        self._set(_SEQ_TAIL, self._get(_SEQ_HEAD))
        self._set(_ENTRIES, 0)
        self._set(_BYTES, 0)

    def _get(self, at: int) -> int:
        value: int = _U64.unpack_from(self._mm, at)[0]
        return value

    def _set(self, at: int, value: int) -> None:
        _U64.pack_into(self._mm, at, value)

    def _add(self, at: int, delta: int) -> None:
        _U64.pack_into(self._mm, at, max(0, self._get(at) + delta))


def key_id(secret: bytes) -> bytes:
    """8 bytes that tell whether two processes hold the same secret (and reveal nothing
    of it): written in a segment's header by its creator, checked by every attacher."""
    return hmac.digest(secret, b"semantic-reuse shared memory key id", "sha256")[:8]


def _bucket_value(key: bytes, slot: int) -> int:
    return (xxhash.xxh3_64_intdigest(key) & 0xFFFFFFFF) << 32 | (slot + 1)
