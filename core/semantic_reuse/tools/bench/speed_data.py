"""The texts of the speed bench, derived from the pair files at run time (never shipped).

- *Probes*: labelled duplicates (q1, q2) of the English pair files. Each probe's q1 is cached;
  asking its q2 is the semantic lookup, asking its q1 again the exact one.
- *Misses*: English questions that are neither cached nor labelled duplicates of anything
  cached (q2 of non-duplicate pairs whose q1 is not cached either).
- *Fillers*: every other question of every pair file (both languages), then deterministic
  variants, each the first half of one question joined to the second half of another (so
  no variant is a near-copy of a probe), up to the largest cache size.

Lookups are classified by what the system actually answered (a "miss" probe that a system
serves counts as a hit of that system), so the split above only sets the mix.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from semantic_reuse.tools.calibrate import LabelledPair, load_pairs

PAIR_FILES = ("qqp_dev_5k.jsonl", "gptcache_mock_pairs.jsonl", "lcqmc_dev.jsonl")
SEED = 20261125


@dataclass(frozen=True, slots=True)
class SpeedTexts:
    probes: tuple[tuple[str, str], ...]  # (cached q1, asked q2)
    misses: tuple[str, ...]
    fillers: tuple[str, ...]
    spare: tuple[str, ...]  # fresh texts for insert and throughput runs


def _variant(a: str, b: str) -> str:
    wa, wb = a.split(), b.split()
    return " ".join(wa[: max(1, len(wa) // 2)] + wb[len(wb) // 2 :])


def build_texts(
    pairs: Sequence[LabelledPair],
    *,
    n_probes: int,
    n_misses: int,
    n_fillers: int,
    n_spare: int = 512,
) -> SpeedTexts:
    """Split the questions of `pairs` into probes, misses, fillers and spare texts."""
    rng = random.Random(SEED)
    english = [p for p in pairs if p.lang == "en"]
    dups = [p for p in english if p.label == 1]
    rng.shuffle(dups)
    probes = [(p.q1, p.q2) for p in dups[:n_probes]]
    used = {t for pair in probes for t in pair}
    others = [p for p in english if p.label == 0 and p.q1 not in used and p.q2 not in used]
    rng.shuffle(others)
    misses = [p.q2 for p in others[:n_misses]]
    # Their q1 must stay out of the cache too, or a "miss" would find its own pair.
    used |= set(misses) | {p.q1 for p in others[:n_misses]}
    spare = [p.q2 for p in others[n_misses : n_misses + n_spare]]
    used |= set(spare)
    pool = list(dict.fromkeys(t for p in pairs for t in (p.q1, p.q2) if t not in used))
    rng.shuffle(pool)
    fillers = pool[:n_fillers]
    i = 0
    seen = set(fillers) | used
    while len(fillers) < n_fillers and len(pool) > 1:
        n, rnd = len(pool), i // len(pool)
        a, b = pool[i % n], pool[(i * 7919 + 13 + rnd * 104_729) % n]
        i += 1
        text = _variant(a, b)
        if text not in seen:
            seen.add(text)
            fillers.append(text)
        if i > 20 * n_fillers:
            break
    return SpeedTexts(tuple(probes), tuple(misses), tuple(fillers), tuple(spare))


def load_speed_texts(
    datasets: Path, *, n_probes: int, n_misses: int, n_fillers: int, n_spare: int = 512
) -> SpeedTexts:
    """`build_texts` on the pair files found in `datasets`."""
    pairs: list[LabelledPair] = []
    for name in PAIR_FILES:
        path = datasets / name
        if path.is_file():
            pairs.extend(load_pairs(path))
    if not pairs:
        raise ValueError(f"no pair files in {datasets} (expected {', '.join(PAIR_FILES)})")
    return build_texts(
        pairs, n_probes=n_probes, n_misses=n_misses, n_fillers=n_fillers, n_spare=n_spare
    )
