"""`ServerContext`: what the middleware and the admin endpoints need, one per app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from semantic_reuse.config import ServerConfig
from semantic_reuse.engine import ReuseEngine
from semantic_reuse.server.auth import Tenants
from semantic_reuse.server.metrics import ServerMetrics

T = TypeVar("T")
Runner = Callable[[Coroutine[Any, Any, Any]], Awaitable[Any]]


async def _same_loop(coro: Coroutine[Any, Any, T]) -> T:
    return await coro


@dataclass
class ServerContext:
    """Config, tenants, metrics, the served model names and the reuse engine.

    `run` awaits a coroutine of the reuse engine on the loop the engine lives on (the
    server's own loop in engine mode; the gateway client's loop thread in gateway mode).
    """

    config: ServerConfig
    engine: ReuseEngine
    models: Callable[[], Awaitable[Collection[str]]]
    run: Runner = _same_loop
    tenants: Tenants = field(init=False)
    metrics: ServerMetrics = field(default_factory=ServerMetrics)

    def __post_init__(self) -> None:
        self.tenants = Tenants(self.config)


def context_of(app: Any) -> ServerContext:
    """The app's context: set by the gateway, or built from vLLM's app state on first use
    (`ServedAsyncLLM` is the engine client; `openai_serving_models` names the models)."""
    state = app.state
    context = getattr(state, "semantic_reuse", None)
    if context is None:
        engine = state.engine_client
        serving = state.openai_serving_models

        async def models() -> Collection[str]:
            listed = await serving.show_available_models()
            return {m.id for m in listed.data}

        context = ServerContext(engine.handler_config.server, engine.reuse_engine, models)
        state.semantic_reuse = context
        register_metrics(context)
    assert isinstance(context, ServerContext)
    return context


def register_metrics(context: ServerContext, registry: Any = None) -> None:
    """Put the engine's and the server's metrics on a Prometheus registry (default: vLLM's,
    which its /metrics serves)."""
    if registry is None:
        from vllm.v1.metrics.prometheus import get_prometheus_registry

        registry = get_prometheus_registry()
    context.engine.metrics.register(registry)
    context.metrics.metrics.register(registry)
