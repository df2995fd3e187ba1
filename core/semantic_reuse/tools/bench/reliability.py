"""`semantic-reuse bench reliability`: Redis faults under load (and, with ``--faults all``, the
default, the component faults of reliability_components.py).

A real redis-server of the bench's own (loopback, no persistence) is hit part-way through
a run and then heals (the load and the figures: reliability_load.py):

- ``kill``: SIGKILLed and, `fault_s` later, restarted empty on the same port; through
  `ReuseEngine` with a deterministic stand-in model, and through `EnhancedAsyncLLM` on
  the real default model (vLLM's CPU build, `max_tokens` tokens an answer);
- ``slow`` / ``drop``: a loopback proxy in front of it holds every reply `delay_s`, or cuts
  connections mid-reply (reliability_proxy.py); ``healthy`` is the same run through the
  proxy with no fault, for comparison.

The memory tier holds `memory_entries` answers, so that repeats outside the hot set reach
Redis as they would from a second worker. Writes ``reliability.json`` and ``reliability.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import json
import tempfile
import uuid
from pathlib import Path
from typing import Any

from semantic_reuse.config import HandlerConfig
from semantic_reuse.tools.bench.reliability_load import (
    Call,
    Fault,
    KillRedis,
    LoadOptions,
    NoFault,
    ProxyFault,
    describe,
    run_scenario,
)
from semantic_reuse.tools.bench.reliability_proxy import RedisProxy, RedisServer


def engine_call(engine: Any, generate_s: float) -> Call:
    """Requests through `engine.generate` with a deterministic stand-in model."""
    from semantic_reuse.backend import CallableBackend

    async def model(prompt: Any, params: Any) -> str:
        await asyncio.sleep(generate_s)
        return f"An answer to: {prompt}"

    backend = CallableBackend(model)

    async def call(i: int, prompt: str) -> str:
        return describe((await engine.generate(prompt, backend)).info)

    return call


def redis_config(url: str, prefix: str, options: LoadOptions, **cache: Any) -> HandlerConfig:
    """The defaults, with Redis at `url` under `prefix` and a small memory tier."""
    return HandlerConfig.model_validate({"cache": {
        "redis_url": url, "redis_prefix": prefix, "memory_max_entries": options.memory_entries,
        **cache,
    }})  # fmt: skip


async def engine_runs(folder: Path, options: LoadOptions) -> dict[str, Any]:
    """Kill, then healthy / slow / drop through the proxy, each on a fresh ReuseEngine
    (fresh Edge folder and Redis prefix) sharing one embedder and splitter."""
    from semantic_reuse.defaults import build_embedder, build_search_helper_from, build_splitter
    from semantic_reuse.engine import ReuseEngine

    base = redis_config("redis://127.0.0.1:1/0", "unused", options)
    embedder = build_embedder(base)
    splitter = build_splitter(base)
    results: dict[str, Any] = {}
    server = RedisServer(folder / "redis")
    proxy: RedisProxy | None = None
    fault: Fault
    with server.running():
        for name in ("kill", "healthy", "slow", "drop"):
            prefix = f"bench-reliability-{uuid.uuid4().hex[:8]}"
            if name == "kill":
                url, fault = server.url, KillRedis(server)
            else:
                proxy = proxy or RedisProxy(server.port, delay_s=options.delay_s).start()
                url = proxy.url
                fault = NoFault() if name == "healthy" else ProxyFault(
                    proxy, "delay" if name == "slow" else "drop")  # fmt: skip
            config = redis_config(url, prefix, options)
            search = build_search_helper_from(config, embedder, folder / f"edge-{name}")
            engine = ReuseEngine(config, search=search, splitter=splitter)
            try:
                await engine.warm_up()
                results[name] = await run_scenario(
                    engine, engine_call(engine, options.generate_s), fault, options,
                    keys=functools.partial(server.keys, f"{prefix}:*"),
                )  # fmt: skip
            finally:
                await engine.aclose()
                await search.embedder.aclose()
                await search.store.aclose()
        if proxy is not None:
            proxy.stop()
    splitter.close()
    return results


def vllm_call(llm: Any, params: Any, **reuse: Any) -> Call:
    """Chat requests through `EnhancedAsyncLLM.generate_chat` (`reuse`: its reuse options,
    such as `namespace`)."""
    tag = uuid.uuid4().hex[:8]

    async def call(i: int, prompt: str) -> str:
        last = None
        chat = [{"role": "user", "content": prompt}]
        async for out in llm.generate_chat(chat, params, f"rel-{tag}-{i}", **reuse):
            last = out
        return describe(getattr(last, "reuse", None))

    return call


async def vllm_run(folder: Path, options: LoadOptions) -> dict[str, Any]:
    """The kill run through `EnhancedAsyncLLM` on the default model (`max_tokens` each)."""
    from vllm import SamplingParams

    from semantic_reuse.vllm import EnhancedAsyncLLM
    from semantic_reuse.vllm.model import default_engine_args

    server = RedisServer(folder / "redis-vllm")
    prefix = f"bench-reliability-{uuid.uuid4().hex[:8]}"
    with server.running():
        config = redis_config(server.url, prefix, options,
                              qdrant_path=folder / "edge-vllm")  # fmt: skip
        args = default_engine_args(disable_log_stats=True)
        llm = EnhancedAsyncLLM.from_engine_args(args, handler_config=config)
        params = SamplingParams(temperature=0.0, max_tokens=options.max_tokens)
        try:
            await llm.reuse_engine.warm_up()

            result = await run_scenario(
                llm.reuse_engine, vllm_call(llm, params), KillRedis(server),
                dataclasses.replace(options, fault_s=options.vllm_fault_s),
                keys=functools.partial(server.keys, f"{prefix}:*"),
            )  # fmt: skip
        finally:
            await llm.aclose()
            del llm  # shut vLLM down now, not in a finalizer at interpreter exit
    result["max_tokens"] = options.max_tokens
    return result


async def run_reliability(options: LoadOptions, out: Path, *, vllm: bool) -> dict[str, Any]:
    """Every run; the report as plain data, written to `out` (after the ReuseEngine runs,
    and again with the vLLM run)."""
    from semantic_reuse.config import PerformanceConfig

    perf = PerformanceConfig()
    report: dict[str, Any] = {
        "requests": options.requests, "concurrency": options.concurrency,
        "duration_s": options.duration_s, "fault_at_s": options.fault_at_s,
        "fault_s": options.fault_s, "vllm_fault_s": options.vllm_fault_s,
        "delay_s": options.delay_s, "topics": options.topics,
        "memory_entries": options.memory_entries, "generate_s": options.generate_s,
        "redis_timeout_s": perf.redis_timeout_s,
        "breaker": {"failure_threshold": perf.breaker_failure_threshold,
                    "reset_s": perf.breaker_reset_s, "max_reset_s": perf.breaker_max_reset_s},
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="sr-reliability-") as folder:
        report["engine"] = await engine_runs(Path(folder), options)
        write_report(out, report)
        if vllm:
            report["vllm"] = await vllm_run(Path(folder), options)
            write_report(out, report)
    return report


def write_report(out: Path, report: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "reliability.json").write_text(json.dumps(report, indent=1))
    (out / "reliability.md").write_text("\n".join(markdown(report)) + "\n")


def markdown(report: dict[str, Any]) -> list[str]:
    """The short report: one row per run, then the answers by phase."""
    runs = [(f"ReuseEngine, {name}", r) for name, r in report["engine"].items()]
    if "vllm" in report:
        runs.append(("EnhancedAsyncLLM, kill", report["vllm"]))
    lines = [
        "# Redis faults under load (`semantic-reuse bench reliability`)", "",
        f"{report['requests']} requests, concurrency {report['concurrency']}, arrivals over "
        f"{report['duration_s']:g} s; fault from {report['fault_at_s']:g} s for "
        f"{report['fault_s']:g} s (vLLM: {report['vllm_fault_s']:g} s; slow: "
        f"{report['delay_s']:g} s a reply); "
        f"redis_timeout_s {report['redis_timeout_s']:g}; memory tier {report['memory_entries']} "
        "answers.", "",
        "| run | failed | p50 / p99 / max s | during the fault: p50 / p99 / max s | breaker "
        "opened; closed again, s after the fault | pending Redis writes, peak | RSS MiB at the "
        "fault / peak in it / end | exact hits from Redis after | Redis writes after (ok) | "
        "answers in Redis at the end |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]  # fmt: skip
    for name, r in runs:
        lat, during = r["latency"], r["phases"]["during"]
        rss = r["rss_mib"]
        lines.append(
            f"| {name} | {r['failed']} | {lat['p50_s']} / {lat['p99_s']} / {lat['max_s']} | "
            f"{during['p50_s']} / {during['p99_s']} / {during['max_s']} | "
            f"{r['breaker']['opened']}; {r['breaker']['closed_after_fault_s'] or '-'} | "
            f"{r['pending_writes_peak']} | "
            f"{rss['at_fault']} / {rss['peak_during']} / {rss['end']} | "
            f"{r['redis_hits_after']} | {r['redis_stores_after_fault'].get('ok', 0):g} | "
            f"{r['redis_keys_at_end']} |"
        )
    lines += ["", "Answers by kind/tier, by when the request started:", ""]
    for name, r in runs:
        phases = "; ".join(f"{phase} ({p['requests']}): "
                           + ", ".join(f"{k} {n}" for k, n in p["answers"].items())
                           for phase, p in r["phases"].items())  # fmt: skip
        lines.append(f"- {name}: {phases}")
    return lines


def add_reliability_bench(suites: Any) -> None:
    """`bench reliability` on the CLI's `bench` subcommands."""
    rel = suites.add_parser("reliability", help="Redis killed, slow or dropping under load")
    defaults = LoadOptions()
    rel.add_argument("--requests", type=int, default=defaults.requests)
    rel.add_argument("--concurrency", type=int, default=defaults.concurrency)
    rel.add_argument("--duration", type=float, default=defaults.duration_s,
                     help="seconds over which the requests arrive")  # fmt: skip
    rel.add_argument("--fault-at", type=float, default=defaults.fault_at_s)
    rel.add_argument("--fault-for", type=float, default=defaults.fault_s)
    rel.add_argument("--vllm-fault-for", type=float, default=defaults.vllm_fault_s)
    rel.add_argument("--delay", type=float, default=defaults.delay_s, help="slow: s a reply")
    rel.add_argument("--max-tokens", type=int, default=defaults.max_tokens)
    rel.add_argument("--no-vllm", action="store_true", help="ReuseEngine runs only")
    rel.add_argument("--faults", choices=("all", "redis", "components"), default="all",
                     help="Redis faults under load, component faults (reliability_components.py)"
                     ", or both")  # fmt: skip
    rel.add_argument("--requests-per-fault", type=int, default=50,
                     help="component faults: requests against each faulty engine")  # fmt: skip
    rel.add_argument("--out", type=Path, default=Path("bench-reliability"))
    rel.set_defaults(run=_bench_reliability)


def _bench_reliability(args: argparse.Namespace, console: Any) -> int:
    options = LoadOptions(
        requests=args.requests, concurrency=args.concurrency, duration_s=args.duration,
        fault_at_s=args.fault_at, fault_s=args.fault_for, vllm_fault_s=args.vllm_fault_for,
        delay_s=args.delay,
        max_tokens=args.max_tokens,
    )  # fmt: skip
    failed = 0
    if args.faults in ("all", "redis"):
        with console.status("Redis killed, slow and dropping under load..."):
            report = asyncio.run(run_reliability(options, args.out, vllm=not args.no_vllm))
        console.print("\n".join(markdown(report)), markup=False)
        failed += sum(r["failed"] for r in [*report["engine"].values(), report.get("vllm")] if r)
    if args.faults in ("all", "components"):
        from semantic_reuse.tools.bench import reliability_components as components

        with console.status("Embedder, splitter, disk and stored values failing..."):
            faults = asyncio.run(components.run_component_faults(args.out, args.requests_per_fault))
        console.print(components.markdown(faults), markup=False)
        failed += sum(r.get("failed", 0) for r in faults["faults"])
    return 1 if failed else 0
