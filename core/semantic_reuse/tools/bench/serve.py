"""`semantic-reuse bench serve`: concurrent streaming clients against `semantic-reuse serve`
and against plain vLLM's OpenAI server on the same model, one after the other.

Each of `clients` tasks sends chat requests (streaming, with usage) back to back for
`duration_s` seconds. The questions come from a fixed, seeded workload: `topics` subjects,
each asked in two phrasings, picked with a Zipf-like skew, so popular questions repeat and
are paraphrased as they would be in traffic. Reported per server: completed requests per
second, time to the first content chunk (p50, p99), reused and generated answers (the
``x-semantic-reuse`` header), failed requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SUBJECTS = (
    "the ocean", "volcanoes", "the moon", "bees", "coffee", "bicycles", "the internet",
    "rain", "chess", "bread", "elephants", "the desert", "trains", "music", "paper",
    "glaciers", "tea", "owls", "bridges", "the sun", "forests", "cheese", "kites", "salt",
    "mountains", "clocks", "dolphins", "snow", "libraries", "rivers", "honey", "maps",
)  # fmt: skip
PHRASINGS = ("Tell me one fact about {}.", "Give me a fact about {}.")


def workload(n: int, topics: int, seed: int = 7) -> list[str]:
    """`n` questions over `topics` subjects (two phrasings each), Zipf-skewed."""
    rng = random.Random(seed)
    subjects = [SUBJECTS[i % len(SUBJECTS)] + ("" if i < len(SUBJECTS) else f" ({i})")
                for i in range(topics)]  # fmt: skip
    weights = [1.0 / (rank + 1) for rank in range(topics)]
    picks = rng.choices(range(topics), weights=weights, k=n)
    return [rng.choice(PHRASINGS).format(subjects[i]) for i in picks]


@dataclass
class LoadStats:
    ttft_s: list[float] = field(default_factory=list)
    ttft_by_kind: dict[str, list[float]] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        ttft = sorted(self.ttft_s)

        def pct(q: float, values: list[float] = ttft) -> float | None:
            ordered = sorted(values)
            return (
                round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3) if ordered else None
            )

        by_kind = {k: {"p50_s": pct(0.5, v), "p99_s": pct(0.99, v)}
                   for k, v in sorted(self.ttft_by_kind.items())}  # fmt: skip
        done = len(ttft)
        reused = sum(n for k, n in self.kinds.items() if k.split("/")[0] not in ("miss", "none"))
        return {
            "completed": done, "failed": self.failed,
            "requests_per_s": round(done / self.wall_s, 2) if self.wall_s else None,
            "ttft_p50_s": pct(0.5), "ttft_p99_s": pct(0.99),
            "reused": reused, "generated": done - reused, "kinds": dict(sorted(self.kinds.items())),
            "ttft_by_kind": by_kind, "errors": self.errors,
        }  # fmt: skip


async def run_load(
    base_url: str, model: str, *, clients: int, duration_s: float, max_tokens: int,
    api_key: str = "EMPTY", topics: int = 256,
) -> dict[str, Any]:  # fmt: skip
    """`clients` streaming clients for `duration_s`; returns `LoadStats.summary()`."""
    import httpx

    questions = workload(100_000, topics)
    stats = LoadStats()
    counter = iter(range(len(questions)))
    # A connection idle longer than the server's keep-alive (uvicorn under vLLM: 5 s) may be
    # closed by the server just as a request goes out on it; clients drop theirs before that.
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients,
                          keepalive_expiry=2.0)  # fmt: skip
    headers = {"authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=600,
                                 headers=headers) as http:  # fmt: skip
        start = time.perf_counter()
        end = start + duration_s

        async def client() -> None:
            while time.perf_counter() < end:
                body = {
                    "model": model,
                    "max_tokens": max_tokens,
                    "temperature": 0,
                    "stream": True,
                    "stream_options": {"include_usage": True},
                    "messages": [{"role": "user", "content": questions[next(counter)]}],
                }
                await one(http, body, stats)  # fmt: skip

        await asyncio.gather(*(client() for _ in range(clients)))
        stats.wall_s = time.perf_counter() - start
    return stats.summary()


async def one(http: Any, body: dict[str, Any], stats: LoadStats) -> None:
    sent = time.perf_counter()
    first: float | None = None
    phase = "before the response"
    try:
        async with http.stream("POST", "/v1/chat/completions", json=body) as response:
            phase = "in the stream"
            if response.status_code != 200:
                await response.aread()
                raise RuntimeError(f"HTTP {response.status_code}")
            kind = response.headers.get("x-semantic-reuse", "none")
            if tier := response.headers.get("x-semantic-reuse-tier"):
                kind = f"{kind}/{tier}"  # exact/inflight: waited for an identical request
            done = False
            async for line in response.aiter_lines():
                if line == "data: [DONE]":
                    done = True
                elif first is None and line.startswith("data: {"):
                    chunk = json.loads(line[6:])
                    if any(c.get("delta", {}).get("content") for c in chunk.get("choices", [])):
                        first = time.perf_counter()
            if not done or first is None:
                raise RuntimeError("stream ended early")
    except Exception as exc:  # every failure is counted, by kind
        stats.failed += 1
        name = str(exc) if isinstance(exc, RuntimeError) else f"{type(exc).__name__} {phase}"
        stats.errors[name] = stats.errors.get(name, 0) + 1
        return
    stats.ttft_s.append(first - sent)
    stats.ttft_by_kind.setdefault(kind, []).append(first - sent)
    stats.kinds[kind] = stats.kinds.get(kind, 0) + 1


def start_server(command: list[str], env: dict[str, str], log: Path, url: str) -> Any:
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{command[2]} exited; see {log}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return process
        except OSError:
            time.sleep(1)
    process.kill()
    raise RuntimeError(f"{command[2]} did not start in 600 s; see {log}")


def stop_server(process: Any) -> None:
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_bench_serve(
    out: Path, *, clients: int, duration_s: float, max_tokens: int, port: int, topics: int = 256
) -> dict[str, Any]:
    """Both servers on the default model, one after the other, the same load each; the
    reuse server starts with an empty vector store of its own (under `out`)."""
    from semantic_reuse.vllm.model import MODEL_NAME, prepare_default_model

    model = str(prepare_default_model())
    out.mkdir(parents=True, exist_ok=True)
    store = out / "qdrant"
    if store.exists():
        shutil.rmtree(store)
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
           "HF_HUB_OFFLINE": "1", "SEMANTIC_REUSE_CACHE__QDRANT_PATH": str(store)}  # fmt: skip
    flags = ["--served-model-name", MODEL_NAME, "--host", "127.0.0.1", "--port", str(port),
             "--dtype", "bfloat16", "--enforce-eager", "--max-model-len", "2048"]  # fmt: skip
    servers = {
        "semantic-reuse serve": [sys.executable, "-m", "semantic_reuse.tools.cli", "serve",
                                 model, *flags],
        "vllm serve": [sys.executable, "-m", "vllm.entrypoints.launchers.api_server.entry",
                       "--model", model, *flags],
    }  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    results: dict[str, Any] = {"clients": clients, "duration_s": duration_s, "topics": topics,
                               "max_tokens": max_tokens, "model": MODEL_NAME}  # fmt: skip
    for name, command in servers.items():
        log = out / f"{name.split()[0]}.log"
        process = start_server(command, env, log, url)
        try:
            results[name] = asyncio.run(run_load(
                url, MODEL_NAME, clients=clients, duration_s=duration_s, max_tokens=max_tokens,
                topics=topics,
            ))  # fmt: skip
        finally:
            stop_server(process)
    (out / "serve.json").write_text(json.dumps(results, indent=1))
    return results


def add_serve_bench(suites: Any) -> None:
    """`bench serve` on the CLI's `bench` subcommands."""
    load = suites.add_parser("serve", help="streaming clients: semantic-reuse serve vs vLLM's")
    load.add_argument("--clients", type=int, default=64)
    load.add_argument("--duration", type=float, default=60.0, help="seconds per server")
    load.add_argument("--max-tokens", type=int, default=32)
    load.add_argument("--topics", type=int, default=256, help="distinct subjects asked")
    load.add_argument("--port", type=int, default=8765)
    load.add_argument("--out", type=Path, default=Path("bench-serve"), help="JSON and logs")
    load.set_defaults(run=_bench_serve)


def _bench_serve(args: argparse.Namespace, console: Any) -> int:
    with console.status(f"{args.clients} streaming clients, {args.duration:g} s per server..."):
        report = run_bench_serve(args.out, clients=args.clients, duration_s=args.duration,
                                 max_tokens=args.max_tokens, port=args.port,
                                 topics=args.topics)  # fmt: skip
    console.print_json(json.dumps(report))
    return 0
