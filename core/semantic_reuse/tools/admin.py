"""`semantic-reuse load`, `export` and `invalidate`: operate a namespace's answers.

They open the stores the configuration names (``SEMANTIC_REUSE_*`` variables; ``--redis-url``
and ``--qdrant-path`` override), like the application's engine would: run them against the
store the application uses (an Edge folder is opened by one process at a time: stop the
application, or use a Qdrant server).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console

from semantic_reuse.request import DEFAULT_NAMESPACE


def _engine(args: argparse.Namespace) -> Any:
    from semantic_reuse import HandlerConfig, ReuseEngine

    config = HandlerConfig()
    if getattr(args, "redis_url", None):
        config.cache.redis_url = args.redis_url
    if getattr(args, "qdrant_path", None):
        config.cache.qdrant_path = args.qdrant_path
    return ReuseEngine(config)


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a JSONL file (blank lines skipped); ValueError naming a bad line."""
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not JSON ({exc})") from exc
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number}: a record must be a JSON object")
            yield record


def _count(path: Path) -> int:
    with open(path, encoding="utf-8") as lines:
        return sum(1 for line in lines if line.strip())


def run_load(args: argparse.Namespace, console: Console) -> int:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    total = _count(args.file)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())  # fmt: skip

    async def load() -> Any:
        async with _engine(args) as engine:
            with Progress(*columns, console=console) as bar:
                task = bar.add_task(f"loading {args.file.name} into {args.namespace}", total=total)
                return await engine.load(
                    read_records(args.file), namespace=args.namespace, model=args.model,
                    tags=args.tag or (), ttl_s=args.ttl,
                    progress=lambda n: bar.advance(task, n),
                )  # fmt: skip

    try:
        report = asyncio.run(load())
    except ValueError as exc:
        console.print(f"[red]load failed:[/red] {exc}", markup=True)
        return 1
    console.print(f"stored {report.stored} answers in namespace {args.namespace!r}")
    if report.vector_failures:
        console.print(
            f"[yellow]{report.vector_failures} could not reach the vector store[/yellow] "
            "(stored in the exact tiers only)"
        )
        return 1
    return 0


def run_export(args: argparse.Namespace, console: Console) -> int:
    async def export(out: TextIO) -> int:
        written = 0
        async with _engine(args) as engine:
            async for record in engine.export(args.namespace):
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                written += 1
        return written

    if args.out is None:
        written = asyncio.run(export(sys.stdout))
    else:
        with open(args.out, "w", encoding="utf-8") as out:
            written = asyncio.run(export(out))
    Console(stderr=True).print(f"exported {written} answers of namespace {args.namespace!r}")
    return 0


def run_invalidate(args: argparse.Namespace, console: Console) -> int:
    async def invalidate() -> str:
        async with _engine(args) as engine:
            if args.bump_epoch:
                epoch = await engine.bump_epoch(args.namespace)
                return f"epoch of {args.namespace!r} is now {epoch}"
            if args.tag:
                await engine.invalidate_tag(args.tag, namespace=args.namespace)
                return f"retired the answers tagged {', '.join(args.tag)}"
            if args.id:
                for key in args.id:
                    await engine.invalidate_id(key, namespace=args.namespace)
                return f"retired {len(args.id)} answers by hash id"
            if args.older_than is not None:
                await engine.forget_older_than(args.older_than, namespace=args.namespace)
                return f"retired the answers older than {args.older_than} s"
            await engine.clear(args.namespace)
            return f"cleared namespace {args.namespace!r}"

    console.print(asyncio.run(invalidate()), markup=False)
    return 0


def add_commands(commands: Any) -> None:
    """The subcommands of this module, on the CLI's subparsers."""

    def stores(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--namespace", default=DEFAULT_NAMESPACE, help="the tenant")
        parser.add_argument("--redis-url", default=None, help="default: the configuration's")
        parser.add_argument("--qdrant-path", type=Path, default=None,
                            help="the Edge folder (default: the configuration's)")  # fmt: skip

    load = commands.add_parser("load", help="seed a namespace with question/answer records")
    load.add_argument("file", type=Path, help="JSONL: question, answer[, model, tags, ttl_s]")
    stores(load)
    load.add_argument("--model", default=None, help="model scope of records naming none")
    load.add_argument("--tag", action="append", help="a tag for every record (repeatable)")
    load.add_argument("--ttl", type=float, default=None, help="seconds, for records naming none")
    load.set_defaults(run=run_load)

    export = commands.add_parser("export", help="write a namespace's answers as load records")
    stores(export)
    export.add_argument("--out", type=Path, default=None, help="a JSONL file (default: stdout)")
    export.set_defaults(run=run_export)

    drop = commands.add_parser("invalidate", help="retire answers (every tier and process)")
    stores(drop)
    what = drop.add_mutually_exclusive_group()
    what.add_argument("--tag", action="append", help="answers stored with this tag")
    what.add_argument("--id", action="append", help="the answer stored under this hash id")
    what.add_argument("--older-than", type=float, default=None, help="seconds")
    what.add_argument(
        "--bump-epoch", action="store_true",
        help="every answer of the namespace (a new model or prompt template)",
    )  # fmt: skip
    drop.set_defaults(run=run_invalidate)

    from semantic_reuse.tools.savings_report import add_stats_command

    add_stats_command(commands)
