"""Host shared memory with real segments and real processes (spawn), no mocks."""

from __future__ import annotations

import mmap
import multiprocessing as mp
import os
import random
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from multiprocessing.shared_memory import SharedMemory
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import pytest

from semantic_reuse.answer import CachedAnswer
from semantic_reuse.exact.segment import (
    HEADER_BYTES,
    MAGIC,
    lock_path,
    overhead_bytes,
    segment_name,
    unlink_segment,
)
from semantic_reuse.exact.shared import (
    SimilarRequestMemoryConfig,
    SimilarRequestMemoryManager,
)

SPAWN = mp.get_context("spawn")
SHM = Path("/dev/shm")
NS = "tenant-a"


def hid(*parts: object) -> str:
    """A hash id (32 hex chars) made of ``parts``."""
    return uuid.uuid5(uuid.NAMESPACE_OID, repr(parts)).hex


@pytest.fixture
def config(tmp_path: Path) -> Iterator[SimilarRequestMemoryConfig]:
    tag = uuid.uuid4().hex[:12]
    cfg = SimilarRequestMemoryConfig(
        request_mapping_memory_size=256 * 1024,
        token_mapping_memory_size=1024 * 1024,
        max_entries=64,
        request_mapping_shared_name=f"srtest-{tag}-req",
        token_mapping_shared_name=f"srtest-{tag}-tok",
        secret_path=tmp_path / "secret",
    )
    yield cfg
    for name in (cfg.request_mapping_shared_name, cfg.token_mapping_shared_name):
        unlink_segment(name)


def counter_answer(n: int) -> CachedAnswer:
    """An answer whose every field encodes ``n``, so a mixed read cannot pass `check`."""
    return CachedAnswer(
        text=f"counter {n} " + "x" * (n % 300),
        token_ids=tuple(range(n, n + 200)),
        usage={"completion_tokens": 200, "n": n},
        metadata={"n": n},
    )


def check(answer: CachedAnswer) -> int:
    n = int(answer.text.split()[1])
    assert answer.text == f"counter {n} " + "x" * (n % 300)
    assert answer.token_ids == tuple(range(n, n + 200))
    assert answer.usage == {"completion_tokens": 200, "n": n}
    assert answer.metadata == {"n": n}
    return n


def counter_similar(n: int) -> list[tuple[str, float]]:
    return [(hid("similar", n, m), n + m / 8) for m in range(n % 7 + 1)]


def raw_segment(name: str) -> tuple[mmap.mmap, Any]:
    fd = os.open(SHM / segment_name(name), os.O_RDWR)
    try:
        return mmap.mmap(fd, os.fstat(fd).st_size), fd
    finally:
        os.close(fd)


# --- child processes (module level, so spawn can import them) -----------------------------


def _attach_read_write(cfg: SimilarRequestMemoryConfig, key: str, out: Any) -> None:
    with SimilarRequestMemoryManager.attach(cfg) as shared:
        answer = shared.get_tokens(key, namespace=NS)
        out.put((shared.is_owner, answer, shared.get_similar(key, namespace=NS)))
        shared.put_tokens(
            hid("from child"), CachedAnswer("child wrote this", token_ids=(7,)), namespace=NS
        )


def _create_and_wait(cfg: SimilarRequestMemoryConfig, ready: Event, done: Event) -> None:
    shared = SimilarRequestMemoryManager(cfg)
    shared.put_tokens(
        hid("child owner"), CachedAnswer("owned by the child", token_ids=(1, 2)), namespace=NS
    )
    ready.set()
    done.wait(30)
    shared.close()


def _hammer(
    cfg: SimilarRequestMemoryConfig, keys: list[str], started: Event, seconds: float
) -> None:
    with SimilarRequestMemoryManager.attach(cfg) as shared:
        deadline, n = time.monotonic() + seconds, 0
        while time.monotonic() < deadline:
            key = keys[n % len(keys)]
            shared.put_tokens(key, counter_answer(n), namespace=NS)
            shared.put_similar(key, counter_similar(n), namespace=NS)
            n += 1
            if n == len(keys):
                started.set()


# --- one process ---------------------------------------------------------------------------


def test_round_trip_in_one_process(config: SimilarRequestMemoryConfig) -> None:
    with SimilarRequestMemoryManager(config) as shared:
        assert shared.is_owner
        key = hid("q")
        answer = CachedAnswer(
            "Paris.",
            token_ids=(1, 2, 3, 150_000),
            finish_reason="length",
            usage={"completion_tokens": 4},
            source_prompt="capital of France?",
            metadata={"model": "m", "tags": ["a", 1]},
        )
        assert shared.get_tokens(key, namespace=NS) is None
        assert shared.get_similar(key, namespace=NS) == []
        assert shared.put_tokens(key, answer, namespace=NS)
        assert shared.get_tokens(key, namespace=NS) == answer
        similar = [(hid("a"), 0.93), (hid("b"), 0.5), (hid("c"), 1.0)]
        assert shared.put_similar(key, similar, namespace=NS)
        assert shared.get_similar(key, namespace=NS) == similar
        assert shared.put_similar(hid("none"), [], namespace=NS)
        assert shared.get_similar(hid("none"), namespace=NS) == []

        assert shared.put_tokens(key, CachedAnswer("Paris, again."), namespace=NS)  # replaces
        assert shared.get_tokens(key, namespace=NS).text == "Paris, again."  # type: ignore[union-attr]
        stats = shared.stats()
        assert (stats.tokens.entries, stats.requests.entries) == (1, 2)
        assert stats.tokens.overwrites == 0
        assert stats.tokens.bytes_used > 0

        assert shared.delete(key, namespace=NS)
        assert not shared.delete(key, namespace=NS)
        assert shared.get_tokens(key, namespace=NS) is None
        assert shared.get_similar(key, namespace=NS) == []
        shared.put_tokens(key, answer, namespace=NS)
        shared.clear_all()
        assert shared.get_tokens(key, namespace=NS) is None
        assert shared.stats().tokens.entries == shared.stats().requests.entries == 0


def test_bad_arguments_name_themselves(config: SimilarRequestMemoryConfig) -> None:
    with SimilarRequestMemoryManager(config) as shared:
        with pytest.raises(ValueError, match="hash_id"):
            shared.get_tokens("not-a-hash", namespace=NS)
        with pytest.raises(TypeError, match="hash_id"):
            shared.put_tokens(123, CachedAnswer("x"), namespace=NS)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="answer"):
            shared.put_tokens(hid(1), "text", namespace=NS)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="similar"):
            shared.put_similar(hid(1), [("short", 0.5)], namespace=NS)
        with pytest.raises(ValueError, match="finite"):
            shared.put_similar(hid(1), [(hid(2), float("nan"))], namespace=NS)


def test_oldest_entries_are_overwritten_beyond_max_entries(
    config: SimilarRequestMemoryConfig,
) -> None:
    with SimilarRequestMemoryManager(replace(config, max_entries=8)) as shared:
        keys = [hid(i) for i in range(12)]
        for i, key in enumerate(keys):
            assert shared.put_tokens(key, counter_answer(i), namespace=NS)
        assert [shared.get_tokens(k, namespace=NS) is not None for k in keys] == [False] * 4 + [
            True
        ] * 8
        assert [check(shared.get_tokens(k, namespace=NS)) for k in keys[4:]] == list(range(4, 12))  # type: ignore[arg-type]
        stats = shared.stats().tokens
        assert (stats.entries, stats.overwrites, stats.max_entries) == (8, 4, 8)


def test_oldest_entries_are_overwritten_when_the_bytes_run_out(
    config: SimilarRequestMemoryConfig,
) -> None:
    small = replace(config, max_entries=8, token_mapping_memory_size=overhead_bytes(8) + 8000)
    with SimilarRequestMemoryManager(small) as shared:
        capacity = shared.stats().tokens.data_capacity
        for i in range(40):  # ~1.3 kB each (token ids above 65535): the ring wraps 6 times
            assert shared.put_tokens(hid(i), counter_answer(100_000 + i), namespace=NS)
            assert shared.stats().tokens.bytes_used <= capacity
        present = [i for i in range(40) if shared.get_tokens(hid(i), namespace=NS) is not None]
        assert present == list(range(40 - len(present), 40))
        assert 3 <= len(present) < 8
        assert all(check(shared.get_tokens(hid(i), namespace=NS)) == 100_000 + i for i in present)  # type: ignore[arg-type]
        assert shared.stats().tokens.overwrites == 40 - len(present)


def test_an_oversized_entry_is_refused_and_harms_nothing(
    config: SimilarRequestMemoryConfig,
) -> None:
    with SimilarRequestMemoryManager(config) as shared:
        shared.put_tokens(hid("keep"), counter_answer(5), namespace=NS)
        shared.put_similar(hid("keep"), counter_similar(5), namespace=NS)
        capacity = shared.stats().tokens.data_capacity
        assert not shared.put_tokens(hid("big"), CachedAnswer("x" * capacity), namespace=NS)
        assert not shared.put_similar(
            hid("big"), [(hid(i), 0.5) for i in range(20_000)], namespace=NS
        )
        assert shared.get_tokens(hid("big"), namespace=NS) is None
        assert check(shared.get_tokens(hid("keep"), namespace=NS)) == 5  # type: ignore[arg-type]
        assert shared.get_similar(hid("keep"), namespace=NS) == counter_similar(5)


def test_threads_of_one_process_write_safely(config: SimilarRequestMemoryConfig) -> None:
    with SimilarRequestMemoryManager(config) as shared:

        def work(t: int) -> None:
            for i in range(100):
                shared.put_tokens(hid(t, i % 20), counter_answer(1000 * t + i), namespace=NS)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # A replaced entry's slot is reused only when the ring comes round to it, so fewer
        # than 64 of the 80 keys remain; every one that does is whole.
        answers = [shared.get_tokens(hid(t, i), namespace=NS) for t in range(4) for i in range(20)]
        present = [check(a) for a in answers if a is not None]
        assert len(present) == shared.stats().tokens.entries >= 20


def test_damaged_and_half_written_entries_are_counted_misses(
    config: SimilarRequestMemoryConfig,
) -> None:
    with SimilarRequestMemoryManager(config) as shared:
        shared.put_tokens(
            hid(0), counter_answer(0), namespace=NS
        )  # slot 0, at the start of the data ring
        raw, _ = raw_segment(config.token_mapping_shared_name)
        slot0 = HEADER_BYTES
        data = overhead_bytes(config.max_entries)
        raw[data + 10] ^= 0xFF
        assert shared.get_tokens(hid(0), namespace=NS) is None
        assert shared.stats().tokens.integrity_failures == 1
        raw[data + 10] ^= 0xFF
        assert check(shared.get_tokens(hid(0), namespace=NS)) == 0  # type: ignore[arg-type]

        raw[slot0] |= 1  # the version of a writer caught mid-write
        assert shared.get_tokens(hid(0), namespace=NS) is None
        assert shared.stats().tokens.torn_read_retries >= 1
        raw[slot0] &= 0xFE
        assert check(shared.get_tokens(hid(0), namespace=NS)) == 0  # type: ignore[arg-type]

        raw[128:136] = (424242).to_bytes(8, "little")  # a writer that died half-way
        assert shared.put_tokens(hid(1), counter_answer(1), namespace=NS)
        assert shared.get_tokens(hid(0), namespace=NS) is None
        assert check(shared.get_tokens(hid(1), namespace=NS)) == 1
        assert shared.stats().tokens.recoveries == 1
        raw.close()


# --- lifecycle ------------------------------------------------------------------------------


def test_close_unlinks_and_a_later_attach_fails(config: SimilarRequestMemoryConfig) -> None:
    shared = SimilarRequestMemoryManager(config)
    with SimilarRequestMemoryManager.attach(config) as other:
        assert not other.is_owner
    shared.put_tokens(
        hid(1), counter_answer(1), namespace=NS
    )  # the attacher's close removed nothing
    shared.close()
    shared.close()
    assert not lock_path(config.token_mapping_shared_name).exists()
    with pytest.raises(FileNotFoundError):
        SimilarRequestMemoryManager.attach(config)
    with pytest.raises(ValueError, match="closed"):
        shared.get_tokens(hid(1), namespace=NS)


def test_other_layouts_and_programs_are_refused(config: SimilarRequestMemoryConfig) -> None:
    name = segment_name(config.request_mapping_shared_name)
    foreign = SharedMemory(name, create=True, size=64 * 1024)
    try:
        foreign.buf[:8] = b"NOTOURS!"
        with pytest.raises(ValueError, match="refusing"):
            SimilarRequestMemoryManager(config)
        foreign.buf[:12] = MAGIC + (99).to_bytes(4, "little")  # ours, another layout
        with pytest.raises(ValueError, match="layout 99"):
            SimilarRequestMemoryManager.attach(config)
        assert bytes(foreign.buf[:8]) == MAGIC  # left alone
    finally:
        foreign.close()
        foreign.unlink()


def test_bad_config_values_raise_value_error_naming_the_field() -> None:
    bad: list[tuple[str, object]] = [
        ("max_entries", 0),
        ("max_entries", -3),
        ("max_entries", True),
        ("max_entries", "5000"),
        ("request_mapping_memory_size", 0),
        ("token_mapping_memory_size", 1024),  # below header, slots and index for 5,000
        ("token_mapping_memory_size", 8.0),
        ("request_mapping_shared_name", ""),
        ("request_mapping_shared_name", "a/b"),
        ("token_mapping_shared_name", ".hidden"),
        ("token_mapping_shared_name", "x" * 201),
        ("token_mapping_shared_name", "semantic-reuse-requests"),  # same as the other
    ]
    for field, value in bad:
        with pytest.raises(ValueError, match=field):
            SimilarRequestMemoryConfig(**{field: value})  # type: ignore[arg-type]
    assert SimilarRequestMemoryConfig().max_entries == 5000


# --- other processes -----------------------------------------------------------------------


def test_another_process_reads_the_same_answer_and_its_exit_unlinks_nothing(
    config: SimilarRequestMemoryConfig,
) -> None:
    with SimilarRequestMemoryManager(config) as shared:
        key, answer = hid("shared"), counter_answer(42)
        shared.put_tokens(key, answer, namespace=NS)
        shared.put_similar(key, counter_similar(42), namespace=NS)
        out = SPAWN.Queue()
        child = SPAWN.Process(target=_attach_read_write, args=(config, key, out))
        child.start()
        is_owner, seen, similar = out.get(timeout=30)
        child.join(30)
        assert child.exitcode == 0
        assert not is_owner
        assert seen == answer
        assert similar == counter_similar(42)
        assert seen.token_ids == tuple(range(42, 242))
        # The child has exited: the segments are still there, and hold what it wrote.
        assert shared.get_tokens(hid("from child"), namespace=NS).text == "child wrote this"  # type: ignore[union-attr]
        with SimilarRequestMemoryManager.attach(config) as again:
            assert again.get_tokens(key, namespace=NS) == answer


def test_a_live_owner_is_attached_and_a_killed_one_is_recovered(
    config: SimilarRequestMemoryConfig,
) -> None:
    ready, done = SPAWN.Event(), SPAWN.Event()
    child = SPAWN.Process(target=_create_and_wait, args=(config, ready, done))
    child.start()
    try:
        assert ready.wait(30)
        with SimilarRequestMemoryManager(config) as attached:  # the owner lives: attach
            assert not attached.is_owner
            assert (
                attached.get_tokens(hid("child owner"), namespace=NS).text == "owned by the child"
            )  # type: ignore[union-attr]
    finally:
        child.kill()  # SIGKILL: no close, no atexit
        child.join(30)
    assert (SHM / segment_name(config.token_mapping_shared_name)).exists() or not SHM.is_dir()
    with SimilarRequestMemoryManager(config) as recovered:
        assert recovered.is_owner
        assert recovered.get_tokens(hid("child owner"), namespace=NS) is None
        assert recovered.put_tokens(hid("new"), counter_answer(3), namespace=NS)
        assert check(recovered.get_tokens(hid("new"), namespace=NS)) == 3  # type: ignore[arg-type]


def test_readers_never_see_a_torn_entry_while_another_process_writes(
    config: SimilarRequestMemoryConfig,
) -> None:
    # Few slots and a small data ring: entries are evicted and the ring wraps under the
    # reader all the time; sizes vary with the counter, so entries straddle old ones.
    small = replace(config, max_entries=8, token_mapping_memory_size=overhead_bytes(8) + 9000)
    keys = [hid("hammer", i) for i in range(10)]
    with SimilarRequestMemoryManager(small) as shared:
        started = SPAWN.Event()
        writer = SPAWN.Process(target=_hammer, args=(small, keys, started, 1.2))
        writer.start()
        assert started.wait(30)
        reads, seen = 0, set()
        while writer.is_alive() or reads < 3000:
            key = random.choice(keys)
            answer = shared.get_tokens(key, namespace=NS)
            if answer is not None:
                seen.add(check(answer))
            similar = shared.get_similar(key, namespace=NS)
            if similar:
                n = int(similar[0][1])
                assert similar == counter_similar(n)
            reads += 1
        writer.join(30)
        assert writer.exitcode == 0
        stats = shared.stats()
        assert stats.tokens.integrity_failures == stats.requests.integrity_failures == 0
        assert stats.decode_failures == 0
        assert len(seen) > 50, f"only {len(seen)} distinct answers in {reads} reads"
