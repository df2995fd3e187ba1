"""What reuse saved, per namespace: requests, reuse by kind and tier, tokens, seconds, money.

Every request the pipeline answers (and every `ReuseEngine.lookup`) is recorded once:

- requests, by kind (exact, semantic, composed, partial, miss) and by tier (the tier of a
  reused whole answer: memory, shared, redis, vector, inflight; "clauses" for a composed or
  partial answer; "none" for a miss);
- reused tokens: the generated tokens a reused answer (or reused clauses) stood for, i.e.
  generation avoided: the answer's token ids, else its ``usage["completion_tokens"]``, else an
  estimate from its text (`estimate_tokens`);
- the generation rate, measured on this engine's misses: tokens generated over the wall
  seconds of their generation (prefill and queueing included), summed over every namespace;
  before any miss, `savings.tokens_per_second` when configured;
- seconds saved: reused tokens / that rate (an estimate: a reused answer would have taken
  about as long as the answers this engine did generate);
- money saved: reused tokens / 1000 x `savings.price_per_1k_tokens`, when configured.

The figures are in `stats()["savings"]`, in Prometheus (`Metrics.register`: counters
``semantic_reuse_savings_*_total`` and gauges ``semantic_reuse_saved_seconds``,
``semantic_reuse_saved_money``, ``semantic_reuse_generation_tokens_per_second``), and, with
`savings.history_path`, in a JSONL file that gets one snapshot every
`savings.history_interval_s` (and one on close): what ``semantic-reuse stats`` reads.
"""

from __future__ import annotations

import json
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semantic_reuse._log import logger
from semantic_reuse.answer import CachedAnswer
from semantic_reuse.config import SavingsConfig
from semantic_reuse.metrics import Metrics
from semantic_reuse.outcome import ReuseKind

#: Kinds whose answer came wholly from the cache (the hit rate counts these).
COMPLETE = (ReuseKind.EXACT, ReuseKind.SEMANTIC, ReuseKind.COMPOSED)


def estimate_tokens(text: str) -> int:
    """About how many tokens a text is when its producer did not count them: one per CJK
    character (and other wide scripts), one per four other characters (OpenAI's rule of
    thumb for English)."""
    wide = sum(1 for ch in text if ord(ch) >= 0x2E80)
    return wide + math.ceil((len(text) - wide) / 4)


def answer_tokens(answer: CachedAnswer) -> int:
    """The tokens generating `answer` took (counted by the backend, else estimated)."""
    counted = len(answer.token_ids) or answer.usage.get("completion_tokens", 0)
    return counted if counted > 0 else estimate_tokens(answer.text)


@dataclass
class NamespaceSavings:
    """One namespace's counts since the engine started."""

    requests: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    tiers: dict[str, int] = field(default_factory=dict)
    reused_tokens: int = 0
    generated_tokens: int = 0
    generation_s: float = 0.0

    @property
    def hits(self) -> int:
        return sum(self.kinds.get(k.value, 0) for k in COMPLETE)

    def as_dict(self, rate: float | None, price: float | None) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "hits": self.hits,
            "hit_rate": self.hits / self.requests if self.requests else 0.0,
            "kinds": dict(sorted(self.kinds.items())),
            "tiers": dict(sorted(self.tiers.items())),
            "reused_tokens": self.reused_tokens,
            "generated_tokens": self.generated_tokens,
            "generation_s": round(self.generation_s, 6),
            "saved_s": None if rate is None else round(self.reused_tokens / rate, 6),
            "saved_money": None if price is None else round(self.reused_tokens / 1000 * price, 6),
        }


class Savings:
    """The savings ledger of one engine (thread-safe)."""

    def __init__(
        self,
        config: SavingsConfig | None = None,
        *,
        metrics: Metrics | None = None,
        clock: Any = time.time,
    ) -> None:
        self.config = config or SavingsConfig()
        self.metrics = metrics or Metrics()
        self._clock = clock
        self._lock = threading.Lock()
        self._namespaces: dict[str, NamespaceSavings] = {}
        self._last_write: float | None = None
        self._engine_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.metrics.gauge("generation_tokens_per_second", lambda: self.rate() or 0.0)

    def record(
        self,
        namespace: str,
        kind: ReuseKind,
        tier: str | None,
        reused: Sequence[CachedAnswer] = (),
        generated: Sequence[CachedAnswer] = (),
        generation_s: float | None = None,
    ) -> float:
        """One answered request (`generation_s`: how long its generation took, if any);
        returns the generation seconds its reuse saved (0 when no rate is known yet)."""
        label = "none" if kind is ReuseKind.MISS else tier or "clauses"
        saved = sum(answer_tokens(a) for a in reused)
        made = sum(answer_tokens(a) for a in generated) if generation_s is not None else 0
        with self._lock:
            entry = self._namespaces.get(namespace)
            if entry is None:
                entry = self._namespaces[namespace] = NamespaceSavings()
                self._add_gauges(namespace)
            entry.requests += 1
            entry.kinds[kind.value] = entry.kinds.get(kind.value, 0) + 1
            entry.tiers[label] = entry.tiers.get(label, 0) + 1
            entry.reused_tokens += saved
            if made and generation_s:
                entry.generated_tokens += made
                entry.generation_s += generation_s
        self.metrics.inc("savings_requests_total", namespace=namespace, kind=kind.value, tier=label)
        if saved:
            self.metrics.inc("savings_reused_tokens_total", saved, namespace=namespace)
        if made and generation_s:
            self.metrics.inc("savings_generated_tokens_total", made, namespace=namespace)
            self.metrics.inc("savings_generation_seconds_total", generation_s, namespace=namespace)
        self._maybe_write_history()
        rate = self.rate() if saved else None
        return saved / rate if rate else 0.0

    def rate(self) -> float | None:
        """Generated tokens per second measured on misses; else the configured rate."""
        with self._lock:
            tokens = sum(n.generated_tokens for n in self._namespaces.values())
            seconds = sum(n.generation_s for n in self._namespaces.values())
        if tokens and seconds > 0:
            return tokens / seconds
        return self.config.tokens_per_second

    def stats(self) -> dict[str, Any]:
        """Per namespace (see `NamespaceSavings.as_dict`), the rate in use and the price."""
        rate, price = self.rate(), self.config.price_per_1k_tokens
        with self._lock:
            spaces = {ns: n.as_dict(rate, price) for ns, n in sorted(self._namespaces.items())}
        return {
            "tokens_per_second": rate,
            "price_per_1k_tokens": price,
            "currency": self.config.currency,
            "namespaces": spaces,
        }

    def snapshot(self) -> dict[str, Any]:
        """One line of the history file: the time, this engine (host, pid, a random id),
        `stats()`."""
        return {"time": self._clock(), "engine": self._engine_id, **self.stats()}

    def write_history(self) -> Path | None:
        """Append a snapshot to `savings.history_path` now (None when there is none)."""
        path = self.config.history_path
        if path is None:
            return None
        self._last_write = time.monotonic()
        line = json.dumps(self.snapshot(), separators=(",", ":")) + "\n"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as out:  # one short append: whole lines
                out.write(line)
        except OSError as exc:
            logger.warning("savings history not written to {}: {}", path, exc.strerror or exc)
            return None
        return path

    def _maybe_write_history(self) -> None:
        if self.config.history_path is None:
            return
        last = self._last_write
        if last is None:
            self._last_write = time.monotonic()  # the first snapshot after one interval
            return
        if time.monotonic() - last >= self.config.history_interval_s:
            self.write_history()

    def _add_gauges(self, namespace: str) -> None:
        def saved_s() -> float:
            rate = self.rate()
            with self._lock:
                tokens = self._namespaces[namespace].reused_tokens
            return tokens / rate if rate else 0.0

        def saved_money() -> float:
            with self._lock:
                tokens = self._namespaces[namespace].reused_tokens
            return tokens / 1000 * (self.config.price_per_1k_tokens or 0.0)

        self.metrics.gauge("saved_seconds", saved_s, namespace=namespace)
        if self.config.price_per_1k_tokens is not None:
            self.metrics.gauge("saved_money", saved_money, namespace=namespace)
