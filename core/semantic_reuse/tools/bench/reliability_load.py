"""The load and the faults of `semantic-reuse bench reliability` (see reliability.py).

One workload (the serve bench's: Zipf-skewed questions over `topics` subjects in two
phrasings, so repeats dominate) is sent at a fixed arrival rate with at most `concurrency`
requests in flight; a fault begins at `fault_at_s` and ends `fault_s` later. Reported per
run: failed requests, answers by kind and tier before, during and after the fault, latency
(p50, p99, slowest), the peak of pending background Redis writes and of RSS, the breaker's
state changes and counters, and the answers found in Redis at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from semantic_reuse.tools.bench.reliability_proxy import ProxyMode, RedisProxy, RedisServer
from semantic_reuse.tools.bench.serve import workload

Call = Callable[[int, str], Awaitable[str]]
"""Sends request number `i` with a prompt; returns how it was answered ("exact/redis")."""


@dataclass(frozen=True)
class LoadOptions:
    requests: int = 1000
    concurrency: int = 100
    duration_s: float = 20.0
    """Arrivals are spread evenly over this time (a request waits for a free slot)."""
    fault_at_s: float = 6.0
    fault_s: float = 4.0
    vllm_fault_s: float = 12.0
    """The vLLM run's outage: longer, so that requests start during it (a CPU answers 100
    concurrent requests in seconds each)."""
    topics: int = 256
    generate_s: float = 0.2
    """The stand-in model's time per answer (ReuseEngine runs)."""
    memory_entries: int = 64
    delay_s: float = 2.0
    max_tokens: int = 12


class Fault(Protocol):
    @property
    def name(self) -> str: ...

    def begin(self) -> None: ...

    def end(self) -> None: ...


class NoFault:
    name = "healthy"

    def begin(self) -> None:
        pass

    def end(self) -> None:
        pass


@dataclass
class KillRedis:
    """SIGKILL the server; restart it (empty) on the same port."""

    server: RedisServer
    name: str = "kill"

    def begin(self) -> None:
        self.server.kill()

    def end(self) -> None:
        self.server.start()


@dataclass
class ProxyFault:
    proxy: RedisProxy
    mode: ProxyMode

    @property
    def name(self) -> str:
        return {"delay": "slow", "drop": "drop"}.get(self.mode, self.mode)

    def begin(self) -> None:
        self.proxy.mode = self.mode

    def end(self) -> None:
        self.proxy.mode = "pass"


@dataclass
class Outcome:
    start: float
    seconds: float
    how: str
    error: str | None = None


@dataclass
class Watch:
    """Samples of the engine's stats while a run goes on."""

    samples: list[tuple[float, int, int]] = field(default_factory=list)  # t, pending, rss
    transitions: list[tuple[float, str]] = field(default_factory=list)
    loop_lag_s: float = 0.0
    """The longest the event loop woke late for a sample: time no Redis reply is read."""


def rss_bytes() -> int:
    """This process's resident memory (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


async def _watch(engine: Any, t0: float, watch: Watch, stop: asyncio.Event) -> None:
    state = "closed"
    while not stop.is_set():
        redis = engine.stats()["tiers"].get("redis", {})
        now = time.perf_counter() - t0
        watch.samples.append((now, int(redis.get("pending_writes", 0)), rss_bytes()))
        if redis.get("breaker", state) != state:
            state = redis["breaker"]
            watch.transitions.append((round(now, 3), state))
        asleep = time.perf_counter()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.02)
        watch.loop_lag_s = max(watch.loop_lag_s, time.perf_counter() - asleep - 0.02)


async def run_scenario(
    engine: Any, call: Call, fault: Fault, options: LoadOptions, *, keys: Callable[[], int]
) -> dict[str, Any]:
    """The workload through `call` with `fault` from `fault_at_s` for `fault_s`; after
    `engine.flush()`, `keys()` counts the answers in Redis."""
    prompts = workload(options.requests, options.topics)
    gate = asyncio.Semaphore(options.concurrency)
    outcomes: list[Outcome] = []
    window: list[float] = []
    healed: dict[str, float] = {}  # Redis stores counted when the fault ended
    t0 = time.perf_counter()
    before = engine.stats()["tiers"]["redis"]["opened"]

    async def one(i: int, prompt: str) -> None:
        async with gate:
            start = time.perf_counter()
            try:
                how = await call(i, prompt)
            except Exception as exc:  # counted: the bench's first figure
                outcomes.append(Outcome(start - t0, time.perf_counter() - start, "failed",
                                        f"{type(exc).__name__}: {exc}"[:200]))  # fmt: skip
                return
            outcomes.append(Outcome(start - t0, time.perf_counter() - start, how))

    async def inject() -> None:
        await asyncio.sleep(options.fault_at_s)
        window.append(time.perf_counter() - t0)
        await asyncio.to_thread(fault.begin)
        await asyncio.sleep(options.fault_s)
        # Counted before the fault ends: a write that succeeds while the server restarts
        # (the loop runs meanwhile) is one made after the fault, never before it.
        healed.update(_redis_stores(engine.stats()))
        await asyncio.to_thread(fault.end)
        window.append(time.perf_counter() - t0)

    watch, stop = Watch(), asyncio.Event()
    watcher = asyncio.create_task(_watch(engine, t0, watch, stop))
    injector = asyncio.create_task(inject())
    tasks = []
    for i, prompt in enumerate(prompts):
        await asyncio.sleep(max(0.0, t0 + i * options.duration_s / len(prompts)
                                - time.perf_counter()))  # fmt: skip
        tasks.append(asyncio.create_task(one(i, prompt)))
    await asyncio.gather(*tasks, injector)
    wall_s = time.perf_counter() - t0
    await engine.flush()
    stop.set()
    await watcher
    stats = engine.stats()
    report = summarize(outcomes, watch, window, stats, options, fault.name,
                       opened=stats["tiers"]["redis"]["opened"] - before, keys=keys(),
                       wall_s=wall_s)  # fmt: skip
    report["redis_stores_after_fault"] = {
        k: n - healed.get(k, 0) for k, n in report["redis_stores"].items()
    }
    return report


def _redis_stores(stats: dict[str, Any]) -> dict[str, float]:
    """The Redis tier's background writes so far, by outcome ("ok", "skip")."""
    return {
        k.split("outcome=")[1].split(",")[0]: v
        for k, v in stats["counters"].get("stores_total", {}).items()
        if "tier=redis" in k
    }


def _latency(outcomes: list[Outcome]) -> dict[str, Any]:
    ordered = sorted(o.seconds for o in outcomes if o.error is None)
    if not ordered:
        return {"p50_s": None, "p99_s": None, "max_s": None}

    def pct(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"p50_s": pct(0.5), "p99_s": pct(0.99), "max_s": round(ordered[-1], 3)}


def summarize(
    outcomes: list[Outcome], watch: Watch, window: list[float], stats: dict[str, Any],
    options: LoadOptions, name: str, *, opened: int, keys: int, wall_s: float,
) -> dict[str, Any]:  # fmt: skip
    begin, end = window
    phases: dict[str, list[Outcome]] = {"before": [], "during": [], "after": []}
    for o in outcomes:
        phases["before" if o.start < begin else "during" if o.start < end else "after"].append(o)
    during = [s for s in watch.samples if begin <= s[0] <= end]
    counters = stats["counters"]
    redis_ops: dict[str, float] = {}
    for label, n in counters.get("tier_ops_total", {}).items():
        parts = dict(p.split("=", 1) for p in label.split(","))
        if parts.get("tier") == "redis":
            redis_ops[f"{parts['op']}/{parts['outcome']}"] = n
    errors = [o.error for o in outcomes if o.error]
    mib = 1024 * 1024
    return {
        "fault": name,
        "requests": len(outcomes),
        "failed": len(errors),
        "errors": sorted(set(errors))[:5],
        "wall_s": round(wall_s, 2),
        "fault_window_s": [round(begin, 2), round(end, 2)],
        "latency": _latency(outcomes),
        "phases": {
            phase: {"requests": len(items), **_latency(items), "answers": _count(items)}
            for phase, items in phases.items()
        },
        "redis_hits_after": sum(o.how == "exact/redis" for o in phases["after"]),
        "redis_keys_at_end": keys,
        "redis_stores": _redis_stores(stats),
        "redis_ops": dict(sorted(redis_ops.items())),
        "event_loop_lag_max_s": round(watch.loop_lag_s, 3),
        "pending_writes_peak": max((s[1] for s in watch.samples), default=0),
        "pending_writes_peak_during": max((s[1] for s in during), default=0),
        "rss_mib": {
            "at_fault": round(during[0][2] / mib, 1) if during else None,
            "peak_during": round(max(s[2] for s in during) / mib, 1) if during else None,
            "end": round(rss_bytes() / mib, 1),
        },
        "breaker": {
            "opened": opened,
            "transitions": watch.transitions,
            "closed_after_fault_s": next(
                (
                    round(t - end, 2)
                    for t, state in watch.transitions
                    if t >= end and state == "closed"
                ),
                None,
            ),
            "final": stats["tiers"]["redis"]["breaker"],
        },
        "options": {
            "concurrency": options.concurrency,
            "duration_s": options.duration_s,
            "fault_at_s": options.fault_at_s,
            "fault_s": options.fault_s,
        },
    }


def _count(items: list[Outcome]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for o in items:
        counts[o.how] = counts.get(o.how, 0) + 1
    return dict(sorted(counts.items()))


def describe(info: Any) -> str:
    """ "kind/tier" of a `ReuseInfo` ("plain" when there is none)."""
    if info is None:
        return "plain"
    return f"{info.kind.value}/{info.tier}" if info.tier else str(info.kind.value)
