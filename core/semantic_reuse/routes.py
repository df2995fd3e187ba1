"""The semantic components of an engine, one per embedder, and which one a text goes to.

With ``semantic.embedder = "auto"`` (the default) an engine has two: the English MiniLM
for Latin-script text and the multilingual e5 for Chinese, mixed and other scripts
(`semantic.script.needs_multilingual`), each with its own vector store and verifier.
Vectors of two models are never compared: a text always takes the same route, so its
paraphrases meet it in the same store. Each route is a `Guarded` component of its own
(breaker, deadline) built on the first text that needs it, so an English-only service
never loads the multilingual model. Any other ``semantic.embedder`` (or a search helper
given by the caller) makes one route that every text takes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Final, Self

from semantic_reuse.breaker import CircuitBreaker
from semantic_reuse.components import Guarded
from semantic_reuse.config import AUTO_EMBEDDER, HandlerConfig
from semantic_reuse.defaults import build_search_helper
from semantic_reuse.metrics import Metrics
from semantic_reuse.semantic.script import needs_multilingual
from semantic_reuse.semantic.search import SimilaritySearchHelper

#: Each route of ``embedder = "auto"``: its component name and embedder.
AUTO_ROUTES: Final = (("semantic", "minilm"), ("semantic-multilingual", "e5"))

SemanticComponent = Guarded[SimilaritySearchHelper]


class SemanticRoutes:
    """One `Guarded` search helper per embedder; `for_text` picks a text's."""

    def __init__(
        self,
        routes: Sequence[SemanticComponent],
        choose: Callable[[str], int] | None = None,
    ) -> None:
        if not routes:
            raise ValueError("routes must not be empty")
        self.routes = tuple(routes)
        self._choose = choose or (lambda _text: 0)

    @classmethod
    def from_config(
        cls,
        config: HandlerConfig,
        metrics: Metrics,
        *,
        search: SimilaritySearchHelper | None = None,
    ) -> Self:
        """The routes `config` asks for; a caller's `search` helper is the only route."""
        if search is not None or config.semantic.embedder != AUTO_EMBEDDER:
            return cls([_component("semantic", config, metrics, search)])
        routes = [
            _component(name, config.with_embedder(embedder), metrics)
            for name, embedder in AUTO_ROUTES
        ]
        return cls(routes, lambda text: int(needs_multilingual(text)))

    @property
    def primary(self) -> SemanticComponent:
        """The route of English text (the only one with a single embedder)."""
        return self.routes[0]

    def for_text(self, text: str) -> SemanticComponent:
        """The route `text` takes (always the same for the same text)."""
        return self.routes[self._choose(text)]

    def partition(self, texts: Sequence[str]) -> list[tuple[SemanticComponent, list[int]]]:
        """The indexes of `texts` per route, routes in their order, empty ones left out."""
        groups: dict[int, list[int]] = {}
        for i, text in enumerate(texts):
            groups.setdefault(self._choose(text), []).append(i)
        return [(self.routes[route], groups[route]) for route in sorted(groups)]

    def built(self) -> list[SimilaritySearchHelper]:
        """The helpers built so far (nothing is built for this)."""
        return [helper for route in self.routes if (helper := route.ready) is not None]


def _component(
    name: str,
    config: HandlerConfig,
    metrics: Metrics,
    search: SimilaritySearchHelper | None = None,
) -> SemanticComponent:
    return Guarded(
        name,
        breaker=CircuitBreaker.from_config(name, config.performance),
        metrics=metrics,
        instance=search,
        build=(
            functools.partial(build_search_helper, config, metrics)
            if config.features.enable_semantic_reuse
            else None
        ),
        timeout_s=config.semantic.timeout_s,
    )
