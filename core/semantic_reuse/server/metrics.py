"""The server's own metrics, per namespace, beside the reuse engine's and vLLM's.

Exposed on /metrics as ``semantic_reuse_server_*``:
``requests_total{namespace, endpoint, kind, tier}``, ``lookup_seconds{namespace}`` (the
reuse decision's latency), ``saved_tokens_total{namespace}`` and
``saved_seconds_total{namespace}`` (what reused answers did not generate: tokens, and the
generation time that saved, `ReuseInfo.saved_s`), ``rejected_total{status}`` (requests refused
before the model: keys, bodies, models).
"""

from __future__ import annotations

from semantic_reuse.metrics import Metrics
from semantic_reuse.server.slot import RequestSlot


class ServerMetrics:
    def __init__(self) -> None:
        self.metrics = Metrics(prefix="semantic_reuse_server")

    def request(self, slot: RequestSlot) -> None:
        info = slot.info
        kind = info.kind.value if info is not None else "none"
        tier = (info.tier if info is not None else None) or ""
        ns = slot.namespace
        self.metrics.inc(
            "requests_total", namespace=ns, endpoint=slot.endpoint or "", kind=kind, tier=tier
        )
        if info is None:
            return
        if info.elapsed_s > 0:
            self.metrics.observe("lookup_seconds", info.elapsed_s, namespace=ns)
        saved = slot.saved_tokens()
        if saved:
            self.metrics.inc("saved_tokens_total", saved, namespace=ns)
        if info.reused and info.saved_s > 0:
            self.metrics.inc("saved_seconds_total", info.saved_s, namespace=ns)

    def rejected(self, status: int) -> None:
        self.metrics.inc("rejected_total", status=str(status))
