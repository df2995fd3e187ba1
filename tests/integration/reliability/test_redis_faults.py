"""Redis faults under load (the short subset of `semantic-reuse bench reliability`): a real
redis-server SIGKILLed and restarted, or made slow or dropping by a loopback proxy, while
100 requests run at concurrency 20 through a `ReuseEngine`. No request fails, the breaker
opens and closes again, and answers reach Redis once it is back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from semantic_reuse.tools.bench.reliability import engine_call
from semantic_reuse.tools.bench.reliability_load import (
    KillRedis,
    LoadOptions,
    ProxyFault,
    run_scenario,
)
from semantic_reuse.tools.bench.reliability_proxy import RedisProxy, RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

#: Short, and the fault ends with a second of load left; a breaker that tries Redis again
#: after 0.05 s (at most 0.1 s), so that it closes within that second.
OPTIONS = LoadOptions(requests=100, concurrency=20, duration_s=3.0, fault_at_s=0.8, fault_s=1.0,
                      generate_s=0.05, memory_entries=16)  # fmt: skip
BREAKER = {"breaker_reset_s": 0.05, "breaker_max_reset_s": 0.1}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis").running() as running:
        yield running


def engine_for(make_engine: Any, url: str, prefix: str) -> Any:
    cache = {"redis_url": url, "redis_prefix": prefix, "memory_max_entries": 16}
    return make_engine(cache=cache, performance=BREAKER)


async def test_redis_killed_and_restarted(make_engine: Any, server: RedisServer) -> None:
    prefix = f"rel-{uuid.uuid4().hex[:8]}"
    engine = engine_for(make_engine, server.url, prefix)
    report = await run_scenario(engine, engine_call(engine, OPTIONS.generate_s),
                                KillRedis(server), OPTIONS,
                                keys=lambda: server.keys(f"{prefix}:*"))  # fmt: skip
    assert report["failed"] == 0, report["errors"]
    assert report["requests"] == OPTIONS.requests
    assert report["phases"]["during"]["requests"] > 0
    assert report["breaker"]["opened"] >= 1
    assert report["breaker"]["final"] == "closed"
    # The restarted server came back empty: every answer in it was written after the restart.
    assert report["redis_keys_at_end"] > 0
    assert report["redis_stores_after_fault"]["ok"] >= report["redis_keys_at_end"]
    # While Redis was down its writes were skipped, not queued: nothing left pending.
    assert engine.stats()["tiers"]["redis"]["pending_writes"] == 0
    assert report["pending_writes_peak_during"] <= OPTIONS.concurrency


@pytest.mark.parametrize("mode", ["delay", "drop"])
async def test_redis_slow_or_dropping(make_engine: Any, server: RedisServer, mode: str) -> None:
    proxy = RedisProxy(server.port, delay_s=2.0).start()
    try:
        prefix = f"rel-{uuid.uuid4().hex[:8]}"
        engine = engine_for(make_engine, proxy.url, prefix)
        report = await run_scenario(engine, engine_call(engine, OPTIONS.generate_s),
                                    ProxyFault(proxy, mode), OPTIONS,  # type: ignore[arg-type]
                                    keys=lambda: server.keys(f"{prefix}:*"))  # fmt: skip
    finally:
        proxy.stop()
    assert report["failed"] == 0, report["errors"]
    assert (proxy.delayed if mode == "delay" else proxy.dropped) > 0
    assert report["breaker"]["opened"] >= 1
    assert report["breaker"]["final"] == "closed"
    assert report["redis_ops"].get("get/error", 0) + report["redis_ops"].get("set/error", 0) > 0
    assert report["redis_keys_at_end"] > 0
