"""Host shared memory: put/get latency of `SimilarRequestMemoryManager`.

    .venv/bin/python benchmarks/shared_memory.py               # 10,000 ops, 200-token answers
    .venv/bin/python benchmarks/shared_memory.py --ops 50000 --tokens 1000

Stores ``--ops`` answers of ``--tokens`` random token ids (vocabulary 150k, ~4 characters of
text per token, the size of a real answer) under distinct hash ids in segments of the
default size (8 MiB, 5,000 entries, so the ring wraps and evicts as in production), and
times each call alone with ``perf_counter_ns``. Then it times gets of entries present (hits)
and absent (misses), the same for similar-request lists of 10, and hits read by a second
process attached by name. Prints the median and p99 in microseconds.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from multiprocessing.queues import Queue
from typing import Any

from semantic_reuse.answer import AnswerCodec, CachedAnswer
from semantic_reuse.exact.shared import SimilarRequestMemoryConfig, SimilarRequestMemoryManager

WORDS = ["the", "of", "and", "to", "in", "is", "you", "that", "it", "he", "was", "for", "on"]


def answer(rng: random.Random, tokens: int) -> CachedAnswer:
    text = " ".join(rng.choice(WORDS) for _ in range(tokens))  # ~4 characters per token
    ids = tuple(rng.randrange(150_000) for _ in range(tokens))
    return CachedAnswer(text, token_ids=ids, usage={"completion_tokens": tokens})


def timed(call: Callable[[int], object], count: int) -> list[float]:
    """Microseconds of ``call(i)`` for each i below ``count``, each timed alone."""
    out = []
    for i in range(count):
        start = time.perf_counter_ns()
        call(i)
        out.append((time.perf_counter_ns() - start) / 1000)
    return out


def summary(name: str, micros: list[float]) -> str:
    micros = sorted(micros)
    p99 = micros[min(len(micros) - 1, int(0.99 * len(micros)))]
    return f"{name:<28} {statistics.median(micros):>9.1f} {p99:>9.1f} {len(micros):>8}"


def _attached_reads(config: SimilarRequestMemoryConfig, keys: list[str], out: Queue[Any]) -> None:
    with SimilarRequestMemoryManager.attach(config) as shared:
        micros = timed(lambda i: shared.get_tokens(keys[i], namespace="bench"), len(keys))
        hits = sum(shared.get_tokens(k, namespace="bench") is not None for k in keys)
    out.put((micros, hits))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", type=int, default=10_000)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    tag = uuid.uuid4().hex[:12]
    config = SimilarRequestMemoryConfig(
        request_mapping_shared_name=f"srbench-{tag}-req",
        token_mapping_shared_name=f"srbench-{tag}-tok",
    )
    keys = [uuid.UUID(int=rng.getrandbits(128)).hex for _ in range(args.ops)]
    answers = [answer(rng, args.tokens) for _ in range(min(args.ops, 500))]
    similar = [[(uuid.uuid4().hex, rng.random()) for _ in range(10)] for _ in range(100)]
    size = len(AnswerCodec().encode(answers[0]))
    print(f"{args.ops} ops, {args.tokens}-token answers (~{size} bytes encoded)\n")

    codec = AnswerCodec()
    blobs = [codec.encode(a) for a in answers]
    encode = timed(lambda i: codec.encode(answers[i % len(answers)]), args.ops)
    decode = timed(lambda i: codec.decode(blobs[i % len(blobs)]), args.ops)
    with SimilarRequestMemoryManager(config) as shared:
        put = timed(
            lambda i: shared.put_tokens(keys[i], answers[i % len(answers)], namespace="bench"),
            args.ops,
        )
        present = [k for k in keys if shared.get_tokens(k, namespace="bench") is not None]
        absent = keys[: len(keys) - len(present)]
        reads = [present[i % len(present)] for i in range(args.ops)]
        rng.shuffle(reads)
        get = timed(lambda i: shared.get_tokens(reads[i], namespace="bench"), args.ops)
        miss = timed(lambda i: shared.get_tokens(absent[i], namespace="bench"), len(absent))
        put_sim = timed(
            lambda i: shared.put_similar(keys[i], similar[i % 100], namespace="bench"), args.ops
        )
        get_sim = timed(lambda i: shared.get_similar(reads[i], namespace="bench"), args.ops)

        out: Queue[Any] = mp.get_context("spawn").Queue()
        reader = mp.get_context("spawn").Process(target=_attached_reads, args=(config, reads, out))
        reader.start()
        other, other_hits = out.get(timeout=120)
        reader.join()
        stats = shared.stats()

    print(f"{'operation':<28} {'median µs':>9} {'p99 µs':>9} {'ops':>8}")
    print(summary("put_tokens", put))
    print(summary("get_tokens (hit)", get))
    print(summary("get_tokens (miss)", miss))
    print(summary("get_tokens (hit, 2nd proc)", other))
    print(summary("put_similar (10)", put_sim))
    print(summary("get_similar (10)", get_sim))
    print(summary("(AnswerCodec.encode alone)", encode))
    print(summary("(AnswerCodec.decode alone)", decode))
    tokens = stats.tokens
    print(
        f"\ntoken mapping: {tokens.entries} entries kept of {args.ops} put, "
        f"{tokens.bytes_used / 2**20:.1f} of {tokens.data_capacity / 2**20:.1f} MiB, "
        f"{tokens.overwrites} overwrites; the second process hit {other_hits}/{len(reads)}"
    )


if __name__ == "__main__":
    main()
