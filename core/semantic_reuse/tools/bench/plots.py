"""The PNGs of the benches (matplotlib, imported lazily, the Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

COLOURS = {"semantic-reuse": "#1f77b4", "gptcache": "#d62728"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def quality_png(comparison: Mapping[str, Any], path: Path) -> Path:
    """Error rate against hit rate, and precision against recall, for every system."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    for system in comparison["systems"]:
        name = system["system"]
        colour = COLOURS.get(name)
        sweep = system["sweep"]
        default = system["default"]
        label = f"{name} (default t={default['threshold']})"
        left.plot([p["hit_rate"] for p in sweep], [p["error_rate"] for p in sweep],
                  "-", color=colour, label=label)  # fmt: skip
        left.plot([default["hit_rate"]], [default["error_rate"]], "o", color=colour)
        right.plot([p["recall"] for p in sweep], [p["precision"] for p in sweep],
                   "-", color=colour, label=label)  # fmt: skip
        right.plot([default["recall"]], [default["precision"]], "o", color=colour)
    left.set_xlabel("hit rate (hits / queries)")
    left.set_ylabel("error rate (wrong hits / queries)")
    left.set_title("served vs wrong (lower right is better)")
    right.set_xlabel("recall")
    right.set_ylabel("precision")
    right.set_title("precision vs recall (dots: defaults)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    name = Path(str(comparison["pairs_file"])).name
    fig.suptitle(f"Shared-cache protocol: {name}, embedder {comparison['embedder']}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def latency_vs_size_png(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Median semantic-hit and miss latency against the number of cached entries."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    systems = sorted({r["system"] for r in rows})
    for system in systems:
        for kind, style in (("semantic", "-o"), ("miss", "--s")):
            pts = sorted(
                (r["entries"], r["lookups"][kind]["median_ms"])
                for r in rows
                if r["system"] == system and r["lookups"].get(kind, {}).get("median_ms")
            )
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=f"{system} {kind}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("cached entries")
    ax.set_ylabel("median lookup latency (ms)")
    ax.set_title("Lookup latency against cache size (one lookup at a time)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def latency_cdf_png(samples: Mapping[str, Sequence[float]], path: Path, title: str) -> Path:
    """Empirical CDF of each labelled latency sample (milliseconds)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, values in samples.items():
        ordered = sorted(values)
        if not ordered:
            continue
        n = len(ordered)
        ax.plot(ordered, [(i + 1) / n for i in range(n)], label=label)
    ax.set_xscale("log")
    ax.set_xlabel("lookup latency (ms)")
    ax.set_ylabel("fraction of lookups")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
