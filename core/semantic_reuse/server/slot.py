"""What the HTTP layer knows about one request, handed to the engine through a contextvar.

The middleware parses the request once (tenant, cache directives, threshold, the JSON body)
into a `RequestSlot` and sets `CURRENT` before it calls the app; a pure ASGI middleware runs
the app in the same task, and the tasks the app starts copy the context, so the engine finds
the same slot (`current_slot()`) and writes what it decided into it (`note`), which the
middleware then puts in a header and in the JSON. Outside a server request there is no slot.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from semantic_reuse.canonical import structured
from semantic_reuse.outcome import ReuseInfo, ReuseKind

#: Body fields that only say how an answer is delivered or billed, never what it says: they
#: stay out of the key. Every other field (tools, tool_choice, response_format, templates,
#: sampling...) shapes the answer and joins the exact key and the fingerprint.
DELIVERY_FIELDS = frozenset(
    {"model", "messages", "prompt", "stream", "stream_options", "user", "request_id",
     "priority", "metadata", "store", "service_tier", "cache_salt"}
)  # fmt: skip


CHAT = "chat"
COMPLETIONS = "completions"


@dataclass
class RequestSlot:
    """One HTTP request's reuse settings (read by the engine) and outcome (written by it)."""

    namespace: str
    endpoint: str | None = None
    """`CHAT` or `COMPLETIONS` for the two endpoints that reuse; None: any other path."""
    body: Mapping[str, Any] = field(default_factory=dict)
    no_cache: bool = False
    """``Cache-Control: no-cache``: generate afresh (no lookup), then store."""
    no_store: bool = False
    """``Cache-Control: no-store``: do not store this request's answer."""
    threshold: float | None = None
    max_error_rate: float | None = None
    """The error budget header's (exclusive with `threshold`: the middleware checked)."""
    ttl_s: float | None = None
    """The lifetime of the answer this request stores (the ttl header), seconds."""
    tags: tuple[str, ...] = ()
    """Tags stored with the answer (the tags header, comma-separated)."""
    info: ReuseInfo | None = None
    """The decision (first output), then the final outcome (last output)."""
    completion_tokens: int = 0

    @property
    def reusable(self) -> bool:
        return self.endpoint is not None

    def structured(self) -> bool:
        """True when tools, a tool choice or an output format shape the answer."""
        return structured(self.body)

    def request_params(self) -> dict[str, Any]:
        """The body's answer-shaping fields (everything but the prompt and delivery)."""
        return {k: v for k, v in self.body.items() if k not in DELIVERY_FIELDS}

    def note(self, info: ReuseInfo | None) -> None:
        if info is not None:
            self.info = info

    def bypass(self, reason: str) -> None:
        """This request is generated without reuse (and not stored)."""
        self.info = ReuseInfo(ReuseKind.MISS, refused_by=reason)

    def saved_tokens(self) -> int:
        """Completion tokens that were reused instead of generated."""
        info = self.info
        if info is None or info.kind is ReuseKind.MISS:
            return 0
        if info.kind is ReuseKind.PARTIAL:
            return max(self.completion_tokens - info.generated_tokens, 0)
        return self.completion_tokens


CURRENT: contextvars.ContextVar[RequestSlot | None] = contextvars.ContextVar(
    "semantic_reuse_request", default=None
)


def current_slot() -> RequestSlot | None:
    """The slot of the HTTP request this code runs for, or None outside one."""
    return CURRENT.get()
