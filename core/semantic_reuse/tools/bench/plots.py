"""The PNGs of the benches (matplotlib, imported lazily, the Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

COLOURS = {"semantic-reuse": "#1f77b4", "semantic-reuse (cosine)": "#7fb2d9", "gptcache": "#d62728"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def quality_png(comparison: Mapping[str, Any], path: Path) -> Path:
    """Error rate against hit rate, precision against recall, and the share of served
    answers that are wrong against the share of queries served (the error budget marked)."""
    plt = _pyplot()
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4.4))
    for system in comparison["systems"]:
        name = system["system"]
        colour = COLOURS.get(name)
        sweep = system["sweep"]
        default = system["default"]
        rule = (
            f"max_error_rate {system['max_error_rate']}"
            if "max_error_rate" in system
            else f"t={default['threshold']}"
        )
        label = f"{name} (default {rule})"
        left.plot([p["hit_rate"] for p in sweep], [p["error_rate"] for p in sweep],
                  "-", color=colour, label=label)  # fmt: skip
        left.plot([default["hit_rate"]], [default["error_rate"]], "o", color=colour)
        middle.plot([p["recall"] for p in sweep], [p["precision"] for p in sweep],
                    "-", color=colour, label=label)  # fmt: skip
        middle.plot([default["recall"]], [default["precision"]], "o", color=colour)
        served = [p for p in sweep if p["hits"]]
        right.plot([p["hit_rate"] for p in served], [1 - p["precision"] for p in served],
                   "-", color=colour, label=name)  # fmt: skip
        if default["hits"]:
            right.plot([default["hit_rate"]], [1 - default["precision"]], "o", color=colour)
        if "max_error_rate" in system:
            right.axhline(system["max_error_rate"], color=colour, ls=":", lw=1,
                          label=f"max_error_rate {system['max_error_rate']}")  # fmt: skip
    left.set_xlabel("hit rate (hits / queries)")
    left.set_ylabel("error rate (wrong hits / queries)")
    left.set_title("served vs wrong (lower right is better)")
    middle.set_xlabel("recall")
    middle.set_ylabel("precision")
    middle.set_title("precision vs recall (dots: defaults)")
    right.set_xlabel("served (hits / queries)")
    right.set_ylabel("wrong share of served (1 - precision)")
    right.set_title("the error budget (dotted) against what was served")
    for ax in (left, middle, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    name = Path(str(comparison["pairs_file"])).name
    fig.suptitle(f"Shared-cache protocol: {name}, embedder {comparison['embedder']}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


#: One colour per speed-bench system, the same in every plot.
SYSTEM_COLOURS = {
    "edge": "#1f77b4",
    "edge-cosine": "#aec7e8",
    "edge-onnx": "#17becf",
    "edge-torch": "#2ca02c",
    "qdrant-local": "#9467bd",
    "gptcache": "#d62728",
}
KINDS = ("exact", "semantic", "miss")


def _save(fig: Any, plt: Any, path: Path) -> Path:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def latency_vs_size_png(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Median (solid) and p99 (dashed) latency against the number of cached entries, one panel
    per kind of answer (exact, semantic, miss), one colour per system."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(KINDS), figsize=(13, 4.2), sharey=True)
    systems = sorted({r["system"] for r in rows})
    sizes_all = sorted({int(r["entries"]) for r in rows})
    for ax, kind in zip(axes, KINDS, strict=True):
        for system in systems:
            stats = sorted(
                (r["entries"], r["lookups"][kind])
                for r in rows
                if r["system"] == system and r["lookups"].get(kind, {}).get("median_ms")
            )
            if not stats:
                continue
            colour = SYSTEM_COLOURS.get(system)
            sizes = [n for n, _ in stats]
            ax.plot(sizes, [s["median_ms"] for _, s in stats], "-o", color=colour,
                    label=f"{system} median")  # fmt: skip
            ax.plot(sizes, [s["p99_ms"] for _, s in stats], "--", color=colour, alpha=0.6,
                    label=f"{system} p99")  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sizes_all, [_entries(n) for n in sizes_all])
        ax.tick_params(axis="x", which="minor", bottom=False, labelbottom=False)
        ax.set_xlabel("cached entries")
        ax.set_title(f"{kind} lookups")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("lookup latency (ms), one at a time")
    axes[-1].legend(fontsize=7)
    fig.suptitle("Lookup latency against cache size (solid: median, dashed: p99)")
    return _save(fig, plt, path)


def _entries(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def throughput_png(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Lookups per second against the number of lookups in flight, one line per system."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    levels: set[int] = set()
    for r in sorted(rows, key=lambda r: (r["system"], r["entries"])):
        if "throughput_per_s" not in r:
            continue
        points = sorted((int(c), float(v)) for c, v in r["throughput_per_s"].items())
        levels.update(c for c, _ in points)
        ax.plot([c for c, _ in points], [v for _, v in points], "-o",
                color=SYSTEM_COLOURS.get(r["system"]),
                label=f"{r['system']} ({r['entries']:,} entries)")  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(levels), [str(c) for c in sorted(levels)])
    ax.set_ylim(bottom=0)
    ax.set_xlabel("concurrent lookups")
    ax.set_ylabel("lookups per second")
    ax.set_title("Throughput against concurrency (mixed semantic and miss lookups)")
    ax.grid(alpha=0.3, which="both")
    if levels:
        ax.legend(fontsize=8)
    return _save(fig, plt, path)


def speed_pngs(speed: Mapping[str, Any], out: Path) -> list[Path]:
    """The speed bench's plots: latency against size, latency CDFs (at the middle size and the
    largest, where the rows kept their samples), throughput against concurrency."""
    rows: Sequence[Mapping[str, Any]] = speed["rows"]
    written = [latency_vs_size_png(rows, out / "latency-vs-size.png")]
    sizes = sorted(speed["sizes"])
    shown = list(dict.fromkeys([sizes[len(sizes) // 2], sizes[-1]]))
    panels = {
        f"{size:,} entries": {
            f"{r['system']} {kind}": r["samples_ms"][kind]
            for r in rows
            if r["entries"] == size
            for kind in ("semantic", "miss")
            if r.get("samples_ms", {}).get(kind)
        }
        for size in shown
    }
    written.append(latency_cdf_png(panels, out / "latency-cdf.png", "Lookup latency CDF"))
    if any("throughput_per_s" in r for r in rows):
        written.append(throughput_png(rows, out / "throughput-vs-concurrency.png"))
    return written


def latency_cdf_png(
    panels: Mapping[str, Mapping[str, Sequence[float]]], path: Path, title: str
) -> Path:
    """Empirical CDFs of labelled latency samples (milliseconds), one panel per key of
    `panels` (say, per cache size); a label's colour is its system's, misses dashed."""
    plt = _pyplot()
    shown = {name: samples for name, samples in panels.items() if any(samples.values())}
    fig, axes = plt.subplots(1, max(1, len(shown)), figsize=(6.5 * max(1, len(shown)), 4.2),
                             sharey=True, squeeze=False)  # fmt: skip
    for ax, (name, samples) in zip(axes[0], shown.items(), strict=False):
        for label, values in samples.items():
            ordered = sorted(values)
            if not ordered:
                continue
            n = len(ordered)
            system = label.rsplit(" ", 1)[0]
            style = "--" if label.endswith(" miss") else "-"
            ax.plot(ordered, [(i + 1) / n for i in range(n)], style,
                    color=SYSTEM_COLOURS.get(system), label=label)  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("lookup latency (ms)")
        ax.set_title(name)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("fraction of lookups")
    fig.suptitle(title)
    return _save(fig, plt, path)
