"""Host shared memory against another local user: real segments, real lock files, and a real
second uid (a forked child that drops to nobody, 65534), so the tests run as root.

The attacks: a segment or lock file pre-created under our name by another user (to serve
forged answers, or to hold the lock and block the cache), files of ours left open to others,
a forged entry without the user's secret, a secret file someone else could know. Each one
must be refused: the tier falls through to the next, counts it and logs it once.
"""

from __future__ import annotations

import fcntl
import hmac
import os
import shutil
import tempfile
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from loguru import logger

from semantic_reuse import CachedAnswer
from semantic_reuse.answer import AnswerCodec
from semantic_reuse.errors import SharedMemoryRefusedError
from semantic_reuse.exact.host import HostSharedTier
from semantic_reuse.exact.secret import load_secret
from semantic_reuse.exact.segment import (
    HEADER_BYTES,
    lock_path,
    overhead_bytes,
    segment_name,
    unlink_segment,
)
from semantic_reuse.exact.shared import SimilarRequestMemoryConfig, SimilarRequestMemoryManager
from semantic_reuse.exact.tiers import MultiLevelCacheManager
from semantic_reuse.metrics import Metrics

NOBODY = 65534
SHM = Path("/dev/shm")
NS = "tenant-a"
KEY = uuid.uuid5(uuid.NAMESPACE_OID, "the question").hex


@pytest.fixture(autouse=True)
def running_as_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("these tests act as a second user (uid 65534): run them as root")


@pytest.fixture
def config(tmp_path: Path) -> Iterator[SimilarRequestMemoryConfig]:
    tag = uuid.uuid4().hex[:12]
    cfg = SimilarRequestMemoryConfig(
        request_mapping_memory_size=256 * 1024,
        token_mapping_memory_size=256 * 1024,
        max_entries=16,
        request_mapping_shared_name=f"srsec-{tag}-req",
        token_mapping_shared_name=f"srsec-{tag}-tok",
        secret_path=tmp_path / "secret",
    )
    yield cfg
    for name in (cfg.request_mapping_shared_name, cfg.token_mapping_shared_name):
        unlink_segment(name)


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    """The library's WARNING lines, as an application that enabled them would see them."""
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="WARNING", format="{message}")
    logger.enable("semantic_reuse")
    yield lines
    logger.disable("semantic_reuse")
    logger.remove(sink)


def as_nobody(action: Callable[[], None]) -> None:
    """Run `action` in a forked child that has dropped to uid and gid 65534."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            assert os.geteuid() == NOBODY
            action()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child acting as nobody failed"


def segment_images(config: SimilarRequestMemoryConfig, answer: CachedAnswer) -> dict[str, bytes]:
    """Real segments holding `answer` for (NS, KEY), keyed with this user's secret, as
    bytes: made under other names, so that only the files' owner will differ."""
    template = replace(
        config,
        request_mapping_shared_name=config.request_mapping_shared_name + "-t",
        token_mapping_shared_name=config.token_mapping_shared_name + "-t",
    )
    with SimilarRequestMemoryManager(template) as made:
        assert made.put_tokens(KEY, answer, namespace=NS)
        return {
            name: (SHM / segment_name(name + "-t")).read_bytes()
            for name in (config.request_mapping_shared_name, config.token_mapping_shared_name)
        }


def write_files(images: dict[Path, bytes], mode: int = 0o600) -> Callable[[], None]:
    def write() -> None:
        for path, data in images.items():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            os.fchmod(fd, mode)
            os.write(fd, data)
            os.close(fd)

    return write


# --- segments and lock files of another user ---------------------------------------------


def test_a_segment_another_user_planted_under_our_name_is_refused_and_left_alone(
    config: SimilarRequestMemoryConfig, warnings: list[str]
) -> None:
    forged = CachedAnswer("a forged answer")
    images = segment_images(config, forged)
    paths = {SHM / segment_name(name): data for name, data in images.items()}
    # Control: the same bytes in files of our own are a valid table that serves the answer,
    # so what the refusal below rests on is the owner alone.
    write_files(paths)()
    with SimilarRequestMemoryManager.attach(config) as ours:
        assert ours.get_tokens(KEY, namespace=NS) == forged
    for path in paths:
        path.unlink()

    as_nobody(write_files(paths))
    assert {p.stat().st_uid for p in paths} == {NOBODY}
    with pytest.raises(SharedMemoryRefusedError, match="owned by uid 65534"):
        SimilarRequestMemoryManager(config)
    with pytest.raises(SharedMemoryRefusedError, match="owned by uid 65534"):
        SimilarRequestMemoryManager.attach(config)

    metrics = Metrics()
    tier = HostSharedTier.open(config, metrics=metrics)
    assert not tier.available
    assert tier.refused is not None
    assert "owned by uid 65534" in tier.refused
    assert metrics.counter("errors_total", component="shared") == 1
    assert [line for line in warnings if "shared memory" in line] == [
        f"host shared memory is off for this process: {tier.refused}\n"
    ]
    assert tier.get_nowait(NS, KEY) is None  # falls through: never the forged answer
    assert not tier.set_nowait(NS, KEY, CachedAnswer("mine"))
    assert {p: p.read_bytes() for p in paths} == paths  # the other user's files: untouched


async def test_the_cache_keeps_answering_from_memory_when_the_shared_tier_is_refused(
    config: SimilarRequestMemoryConfig,
) -> None:
    paths = {SHM / segment_name(n): b for n, b in segment_images(config, CachedAnswer("x")).items()}
    as_nobody(write_files(paths))
    metrics = Metrics()
    manager = MultiLevelCacheManager(shared=HostSharedTier.open(config, metrics=metrics))
    try:
        assert await manager.get(KEY, namespace=NS) is None
        await manager.set(KEY, CachedAnswer("generated here"), namespace=NS)
        hit = await manager.get(KEY, namespace=NS)
        assert hit is not None
        assert (hit.tier, hit.answer.text) == ("memory", "generated here")
        await manager.clear(NS)
        assert manager.stats()["tiers"]["shared"]["available"] is False
        assert metrics.counter("too_large_total", tier="shared") == 0
    finally:
        await manager.aclose()


def test_a_lock_file_another_user_planted_and_holds_is_refused_without_waiting(
    config: SimilarRequestMemoryConfig,
) -> None:
    lock = lock_path(config.request_mapping_shared_name)
    held, release = os.pipe(), os.pipe()
    pid = os.fork()
    if pid == 0:  # nobody: plant a lock file anyone may open, hold it until told
        code = 1
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
            os.fchmod(fd, 0o666)
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(held[1], b"1")
            os.read(release[0], 1)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    try:
        assert os.read(held[0], 1) == b"1"
        assert lock.stat().st_uid == NOBODY
        opened: list[HostSharedTier] = []
        opening = threading.Thread(target=lambda: opened.append(HostSharedTier.open(config)))
        opening.start()
        opening.join(60)  # a safety net: a tier that waited on the lock would hang here
        assert not opening.is_alive(), "the tier waits on another user's lock"
        assert not opened[0].available
        assert "lock file" in (opened[0].refused or "")
        assert not (SHM / segment_name(config.request_mapping_shared_name)).exists()
    finally:
        os.write(release[1], b"1")
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert lock.stat().st_uid == NOBODY  # left alone


def test_a_lock_file_swapped_in_while_we_run_is_neither_waited_on_nor_removed(
    config: SimilarRequestMemoryConfig,
) -> None:
    owner = SimilarRequestMemoryManager(config)
    lock = lock_path(config.token_mapping_shared_name)
    lock.unlink()
    as_nobody(write_files({lock: b""}, mode=0o666))
    owner.close()  # would wait on or remove the planted file: it does neither, and stays quiet
    assert lock.stat().st_uid == NOBODY
    segment = SHM / segment_name(config.token_mapping_shared_name)
    assert segment.exists()  # not removed without its lock: left for the next owner to recover
    lock.unlink()


def test_our_own_files_open_to_others_are_refused(config: SimilarRequestMemoryConfig) -> None:
    with SimilarRequestMemoryManager(config) as owner:
        owner.put_tokens(KEY, CachedAnswer("kept"), namespace=NS)
        segment = SHM / segment_name(config.token_mapping_shared_name)
        assert segment.stat().st_mode & 0o777 == 0o600
        segment.chmod(0o644)
        with pytest.raises(SharedMemoryRefusedError, match="mode 0644"):
            SimilarRequestMemoryManager.attach(config)
        segment.chmod(0o600)
        lock = lock_path(config.request_mapping_shared_name)
        assert lock.stat().st_mode & 0o777 == 0o600
        lock.chmod(0o666)
        with pytest.raises(SharedMemoryRefusedError, match=r"lock file .* mode 0666"):
            SimilarRequestMemoryManager.attach(config)
        lock.chmod(0o600)
        with SimilarRequestMemoryManager.attach(config) as again:
            assert again.get_tokens(KEY, namespace=NS).text == "kept"  # type: ignore[union-attr]


def test_a_lock_file_replaced_by_a_link_is_refused(
    config: SimilarRequestMemoryConfig, tmp_path: Path
) -> None:
    lock = lock_path(config.token_mapping_shared_name)
    target = tmp_path / "elsewhere"
    target.write_bytes(b"")
    target.chmod(0o600)
    lock.symlink_to(target)
    try:
        with pytest.raises(SharedMemoryRefusedError, match="lock file"):
            SimilarRequestMemoryManager(config)
    finally:
        lock.unlink()


def test_names_are_per_user(config: SimilarRequestMemoryConfig) -> None:
    name = config.token_mapping_shared_name
    theirs = SHM / f"{name}-u{NOBODY}"
    as_nobody(write_files({theirs: b"another user's own segment"}))
    try:
        with SimilarRequestMemoryManager(config) as shared:
            assert shared.is_owner
            assert segment_name(name) == f"{name}-u{os.geteuid()}"
            assert (SHM / segment_name(name)).stat().st_uid == os.geteuid()
            assert lock_path(name).name == f".sr-{name}-u{os.geteuid()}.lock"
        assert theirs.read_bytes() == b"another user's own segment"
    finally:
        theirs.unlink()


# --- entries without the secret ------------------------------------------------------------


def _slot_zero(config: SimilarRequestMemoryConfig) -> tuple[Path, int, int]:
    return (
        SHM / segment_name(config.token_mapping_shared_name),
        HEADER_BYTES,  # slot 0: the first entry written
        overhead_bytes(config.max_entries),  # the data ring starts here: its payload
    )


def _forge(config: SimilarRequestMemoryConfig, text: str, mac_key: bytes) -> None:
    """Replace the payload of slot 0 with `text`'s answer, MAC'd with `mac_key`."""
    path, slot, data = _slot_zero(config)
    payload = AnswerCodec("msgpack").encode(CachedAnswer(text))
    with path.open("r+b") as raw:
        raw.seek(slot + 8)
        key = raw.read(16)
        raw.seek(slot + 56)
        tag = raw.read(8)
        raw.seek(slot + 32)
        raw.write(len(payload).to_bytes(4, "little"))
        raw.seek(slot + 40)
        raw.write(hmac.digest(mac_key, key + tag + payload, "sha256")[:16])
        raw.seek(data)
        raw.write(payload)


def test_a_forged_entry_without_the_secret_is_a_counted_miss_logged_once(
    config: SimilarRequestMemoryConfig, warnings: list[str]
) -> None:
    metrics = Metrics()
    tier = HostSharedTier.open(config, metrics=metrics)
    try:
        # Long enough that a forged payload written in its place stays within its bytes.
        assert tier.set_nowait(NS, KEY, CachedAnswer("the real answer " + "." * 200))
        assert tier.set_nowait(NS, "0" * 32, CachedAnswer("another answer"))
        assert config.secret_path is not None
        secret = load_secret(config.secret_path)
        # Control: a forgery MAC'd with the real secret is served, so the refusals below
        # rest on the MAC alone.
        _forge(config, "forged, with the secret", secret)
        assert tier.get_nowait(NS, KEY).text == "forged, with the secret"  # type: ignore[union-attr]
        for attempt in (1, 2):
            _forge(config, f"forged without the secret {attempt}", os.urandom(32))
            assert tier.get_nowait(NS, KEY) is None
            assert metrics.counter("integrity_failures_total", tier="shared") == attempt
        assert tier.get_nowait(NS, "0" * 32).text == "another answer"  # type: ignore[union-attr]
        assert tier.available
        assert len([line for line in warnings if "integrity" in line]) == 1
    finally:
        if tier.manager is not None:
            tier.manager.close()


def test_a_segment_keyed_with_another_secret_is_refused(
    config: SimilarRequestMemoryConfig, tmp_path: Path
) -> None:
    with SimilarRequestMemoryManager(config) as owner:
        owner.put_tokens(KEY, CachedAnswer("keyed with the first secret"), namespace=NS)
        other = replace(config, secret_path=tmp_path / "another-secret")
        with pytest.raises(SharedMemoryRefusedError, match="another secret"):
            SimilarRequestMemoryManager.attach(other)
        tier = HostSharedTier.open(other)
        assert not tier.available


# --- the secret file -------------------------------------------------------------------------


def test_the_secret_is_made_once_private_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "config" / "semantic-reuse" / "shm-secret"
    secret = load_secret(path)
    assert len(secret) == 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert path.read_bytes() == secret
    assert load_secret(path) == secret
    assert os.listdir(path.parent) == ["shm-secret"]  # no temporary file left behind


def test_processes_racing_to_make_the_secret_agree_on_one(tmp_path: Path) -> None:
    path = tmp_path / "shm-secret"
    reads = [os.pipe() for _ in range(6)]
    pids = []
    for _, write in reads:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.write(write, load_secret(path))
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    for pid in pids:
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    seen = {os.read(read, 64) for read, _ in reads}
    assert seen == {path.read_bytes()}


@pytest.mark.parametrize("fault", ["another owner", "mode 0644", "a link", "16 bytes"])
def test_a_secret_file_that_others_could_know_is_refused(
    request: pytest.FixtureRequest, config: SimilarRequestMemoryConfig, fault: str
) -> None:
    folder = Path(tempfile.mkdtemp(prefix="srsec-"))  # outside pytest's 0700 folders
    folder.chmod(0o777)  # so that nobody can write there: a shared folder
    request.addfinalizer(lambda: shutil.rmtree(folder))
    path = folder / "shm-secret"
    real = folder / "real"
    if fault == "another owner":
        as_nobody(write_files({path: os.urandom(32)}))
    elif fault == "mode 0644":
        write_files({path: os.urandom(32)}, mode=0o644)()
    elif fault == "a link":
        write_files({real: os.urandom(32)})()
        path.symlink_to(real)
    else:
        write_files({path: os.urandom(16)})()
    with pytest.raises(SharedMemoryRefusedError, match="secret"):
        load_secret(path)
    tier = HostSharedTier.open(replace(config, secret_path=path))
    assert not tier.available
    assert not (SHM / segment_name(config.token_mapping_shared_name)).exists()
