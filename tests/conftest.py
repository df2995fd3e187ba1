"""Shared fixtures: a real Redis (from `make test`), private Redis servers for fault tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from semantic_reuse import RedisTier


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The real Redis that `make test` (scripts/with-redis.sh) provides."""
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    host, port = "127.0.0.1", 6379
    if url.startswith("redis://"):
        hostport = url.removeprefix("redis://").split("/")[0]
        host, _, p = hostport.rpartition(":")
        port = int(p)
    try:
        socket.create_connection((host or "127.0.0.1", port), timeout=1).close()
    except OSError:
        pytest.fail(f"no Redis at {url}: run the tests through `make test` or set REDIS_URL")
    return url


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of this test alone, so tests never see each other's keys."""
    return f"srtest-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def redis_tier(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisTier]:
    tier = RedisTier(redis_url, prefix=redis_prefix, timeout_s=1.0)
    yield tier
    await tier.clear()
    await tier.aclose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PrivateRedis:
    """A redis-server of one test's own, which the test may stop and start again."""

    port: int
    folder: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not on PATH (make test installs it when it can)")
    with tempfile.TemporaryDirectory() as folder:
        server = PrivateRedis(free_port(), Path(folder))
        server.start()
        yield server
        server.stop()
