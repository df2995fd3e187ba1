"""A check of a scale-out deployment: answers written on one host are served on another.

Run it with the configuration your app processes use (``SEMANTIC_REUSE_*`` environment
variables: ``CACHE__REDIS_URL``, ``CACHE__REDIS_CLUSTER``, ``CACHE__QDRANT_URL``...)::

    host-a$ python -m semantic_reuse.tools.scale_out write
    host-b$ python -m semantic_reuse.tools.scale_out read
    host-a$ python -m semantic_reuse.tools.scale_out clear

``write`` answers a few questions with a stand-in model (no LLM needed) and stores them in
every tier; ``read``, run anywhere else, looks the same questions up (and, with a Qdrant
server, paraphrases of them), generating nothing, and exits 0 when every one was found in the
shared tiers, 1 otherwise. ``clear`` removes the check's namespace. Without a Qdrant server only
the exact tier is shared: the semantic tier is left off (it would be per host).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
from collections.abc import Sequence

from semantic_reuse.backend import CallableBackend
from semantic_reuse.config import HandlerConfig
from semantic_reuse.engine import ReuseEngine
from semantic_reuse.redaction import redact_url

NAMESPACE = "scale-out-check"
MODEL = "scale-out-check"
#: (question, paraphrase): the paraphrases are served only through a shared Qdrant.
QUESTIONS: tuple[tuple[str, str], ...] = (
    ("What is the capital of France?", "Which city is the capital of France?"),
    ("How do I reset my password?", "How can I reset my password?"),
    ("What is the boiling point of water at sea level?",
     "At sea level, what is the boiling point of water?"),
)  # fmt: skip


def shared_tiers(config: HandlerConfig) -> list[str]:
    """What this configuration shares between hosts, in words (passwords masked)."""
    cache, tiers = config.cache, []
    if config.features.enable_redis and cache.redis_url:
        kind = "Redis Cluster" if cache.redis_cluster else "Redis"
        tiers.append(f"{kind} {redact_url(cache.redis_url)} (prefix {cache.redis_prefix})")
    if config.features.enable_semantic_reuse and cache.qdrant_url:
        tiers.append(
            f"Qdrant {redact_url(cache.qdrant_url)} (collection {cache.qdrant_collection}-*)"
        )
    return tiers


def _engine(config: HandlerConfig) -> ReuseEngine:
    config = config.model_copy(deep=True)
    config.features.enable_nlp_enhancement = False  # the questions are simple
    if not config.cache.qdrant_url:
        config.features.enable_semantic_reuse = False  # an embedded store is per host
    return ReuseEngine.from_config(config)


async def write(config: HandlerConfig, namespace: str) -> int:
    me = f"{socket.gethostname()}/{os.getpid()}"

    async def model(prompt: object, _params: object) -> str:
        return f"answer written by {me} to: {prompt}"

    async with _engine(config) as engine:
        for question, _ in QUESTIONS:
            result = await engine.generate(
                question, CallableBackend(model), namespace=namespace, model=MODEL
            )
            print(f"write {question!r} -> {result.info.kind.value}")
        await engine.flush()  # in Redis and Qdrant before this process exits
    print(f"stored {len(QUESTIONS)} answers in namespace {namespace!r}")
    return 0


async def read(config: HandlerConfig, namespace: str) -> int:
    asks = [q for q, _ in QUESTIONS]
    if config.features.enable_semantic_reuse and config.cache.qdrant_url:
        asks += [p for _, p in QUESTIONS]
    shared = 0
    async with _engine(config) as engine:
        for question in asks:  # lookups: nothing is generated here
            hit = await engine.lookup(question, namespace=namespace, model=MODEL)
            if hit is None:
                print(f"read {question!r} -> not found")
                continue
            shared += 1  # this process's memory tier started empty: the hit came from afar
            print(
                f"read {question!r} -> {hit.info.kind.value} (tier {hit.info.tier}): {hit.text!r}"
            )
    print(f"{shared} of {len(asks)} answers came from the shared tiers")
    return 0 if shared == len(asks) else 1


async def clear(config: HandlerConfig, namespace: str) -> int:
    async with _engine(config) as engine:
        await engine.clear(namespace)
    print(f"cleared namespace {namespace!r}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m semantic_reuse.tools.scale_out",
        description="Check that hosts share answers (configured by SEMANTIC_REUSE_* variables).",
    )
    parser.add_argument("action", choices=("write", "read", "clear"))
    parser.add_argument("--namespace", default=NAMESPACE, help=f"default: {NAMESPACE}")
    args = parser.parse_args(argv)
    config = HandlerConfig()
    tiers = shared_tiers(config)
    if not tiers:
        print("nothing is shared: set SEMANTIC_REUSE_CACHE__REDIS_URL and/or __QDRANT_URL")
        return 2
    print("shared: " + "; ".join(tiers))
    action = {"write": write, "read": read, "clear": clear}[args.action]
    return asyncio.run(action(config, args.namespace))


if __name__ == "__main__":
    raise SystemExit(main())
