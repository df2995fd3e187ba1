"""`semantic-reuse stats`: what reuse saved, from the savings history file.

The engine appends a snapshot of `Savings.stats()` to `savings.history_path` every
`savings.history_interval_s` and when it closes (one line per snapshot, each naming its
engine: host, process id and a random id). The current figures are the latest snapshot of
every engine, summed per namespace; `--plot` draws, over time, the hit rate and what was
saved (the same sums after each snapshot).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

KINDS = ("exact", "semantic", "composed", "partial", "miss")
_SUMMED = ("requests", "hits", "reused_tokens", "generated_tokens", "generation_s")


def read_history(path: Path) -> list[dict[str, Any]]:
    """The snapshots of a history file, in time order (unreadable lines skipped)."""
    snapshots = []
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            try:
                snapshot = json.loads(line)
            except ValueError:
                continue  # a line cut by a crash
            if isinstance(snapshot, dict) and isinstance(snapshot.get("namespaces"), dict):
                snapshots.append(snapshot)
    return sorted(snapshots, key=lambda s: float(s.get("time", 0.0)))


def totals(latest: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per namespace, the sum over engines of their latest snapshots."""
    out: dict[str, dict[str, Any]] = {}
    for snapshot in latest:
        for namespace, figures in snapshot["namespaces"].items():
            into = out.setdefault(namespace, {"kinds": {}, "tiers": {}, "saved_s": None,
                                              "saved_money": None})  # fmt: skip
            for name in _SUMMED:
                into[name] = into.get(name, 0) + (figures.get(name) or 0)
            for group in ("kinds", "tiers"):
                for key, count in (figures.get(group) or {}).items():
                    into[group][key] = into[group].get(key, 0) + count
            for name in ("saved_s", "saved_money"):
                if figures.get(name) is not None:
                    into[name] = (into[name] or 0.0) + figures[name]
    for figures in out.values():
        figures["hit_rate"] = figures["hits"] / figures["requests"] if figures["requests"] else 0.0
    return out


def series(snapshots: Sequence[dict[str, Any]], namespace: str | None) -> list[dict[str, Any]]:
    """After each snapshot: the time and the summed hit rate and savings so far."""
    latest: dict[str, dict[str, Any]] = {}
    points = []
    for snapshot in snapshots:
        latest[str(snapshot.get("engine"))] = snapshot
        figures = totals(latest.values())
        chosen = [f for ns, f in figures.items() if namespace is None or ns == namespace]
        requests = sum(f["requests"] for f in chosen)
        points.append({
            "time": float(snapshot.get("time", 0.0)),
            "hit_rate": sum(f["hits"] for f in chosen) / requests if requests else 0.0,
            "saved_s": sum(f["saved_s"] or 0.0 for f in chosen),
            "saved_money": sum(f["saved_money"] or 0.0 for f in chosen),
            "reused_tokens": sum(f["reused_tokens"] for f in chosen),
        })  # fmt: skip
    return points


def table(figures: dict[str, dict[str, Any]], currency: str) -> Table:
    grid = Table(title="semantic-reuse savings", title_justify="left")
    for column in ("namespace", "requests", *KINDS, "hit rate", "by tier", "tokens reused",
                   "time saved", f"saved ({currency})"):  # fmt: skip
        grid.add_column(column, justify="left" if column in ("namespace", "by tier") else "right")
    rows = sorted(figures.items())
    if len(rows) > 1:
        rows.append(("(all)", _sum_rows(figures)))
    for namespace, f in rows:
        tiers = " ".join(f"{t}={n}" for t, n in sorted(f["tiers"].items()) if t != "none")
        grid.add_row(
            namespace, str(f["requests"]), *(str(f["kinds"].get(k, 0)) for k in KINDS),
            f"{f['hit_rate']:.1%}", tiers or "-", f"{f['reused_tokens']:,}",
            "-" if f["saved_s"] is None else f"{f['saved_s']:.1f} s",
            "-" if f["saved_money"] is None else f"{f['saved_money']:.4f}",
        )  # fmt: skip
    return grid


def _sum_rows(figures: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every namespace's figures summed (the table's last row)."""
    return totals([{"namespaces": {"all": f}} for f in figures.values()])["all"]


def plot(points: Sequence[dict[str, Any]], path: Path, title: str) -> Path:
    """Hit rate and seconds (and money, when priced) saved over time, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    times = [datetime.fromtimestamp(p["time"], UTC) for p in points]
    fig, (rate, saved) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    rate.plot(times, [p["hit_rate"] for p in points], "-o", ms=3, color="#1f77b4")
    rate.set_ylabel("hit rate (complete reuse)")
    rate.set_ylim(0, 1)
    rate.set_title(title)
    saved.plot(times, [p["saved_s"] for p in points], "-o", ms=3, color="#2ca02c",
               label="generation seconds saved")  # fmt: skip
    saved.set_ylabel("seconds saved")
    if any(p["saved_money"] for p in points):
        money = saved.twinx()
        money.plot(times, [p["saved_money"] for p in points], "--", color="#d62728",
                   label="money saved")  # fmt: skip
        money.set_ylabel("money saved")
    saved.set_xlabel("time (UTC)")
    saved.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))  # type: ignore[no-untyped-call]
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_stats(args: argparse.Namespace, console: Console) -> int:
    path = args.history
    if path is None:
        from semantic_reuse import HandlerConfig

        path = HandlerConfig().savings.history_path
    if path is None or not Path(path).is_file():
        console.print(
            f"no savings history at {path}: set SEMANTIC_REUSE_SAVINGS__HISTORY_PATH for the "
            "application (the engine appends to it) and pass it here with --history",
            markup=False,
        )
        return 1
    snapshots = read_history(Path(path))
    latest: dict[str, dict[str, Any]] = {}
    for snapshot in snapshots:
        latest[str(snapshot.get("engine"))] = snapshot
    figures = totals(latest.values())
    if args.namespace is not None:
        figures = {ns: f for ns, f in figures.items() if ns == args.namespace}
    if args.json:
        console.print_json(json.dumps(figures))
    else:
        currencies = {str(s["currency"]) for s in latest.values() if s.get("currency")}
        console.print(table(figures, "/".join(sorted(currencies)) or "-"))
        rates = [s.get("tokens_per_second") for s in latest.values() if s.get("tokens_per_second")]
        since = min((s["time"] for s in snapshots), default=None)
        start = "-" if since is None else f"{datetime.fromtimestamp(since, UTC):%Y-%m-%d %H:%M:%S}"
        console.print(
            f"{len(snapshots)} snapshots from {len(latest)} engine(s) since {start} UTC; "
            f"generation rate {', '.join(f'{r:.1f}' for r in rates) or '-'} tokens/s "
            "(measured on misses; time saved = tokens reused / rate)",
            markup=False,
        )
    if args.plot is not None:
        title = f"semantic-reuse: {args.namespace or 'all namespaces'}"
        console.print(f"plot: {plot(series(snapshots, args.namespace), args.plot, title)}")
    return 0


def add_stats_command(commands: Any) -> None:
    stats = commands.add_parser("stats", help="what reuse saved, per namespace (a table, a plot)")
    stats.add_argument("--history", type=Path, default=None,
                       help="the savings history (default: savings.history_path)")  # fmt: skip
    stats.add_argument("--namespace", default=None, help="one namespace (default: all)")
    stats.add_argument("--plot", type=Path, default=None, help="write a PNG over time here")
    stats.add_argument("--json", action="store_true", help="print the figures as JSON")
    stats.set_defaults(run=run_stats)
