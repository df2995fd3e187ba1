"""The optimizing child process: build an Edge folder from an export, index it, catch up.

The store's worker exports the live folder's points in small chunks (:class:`Export`: a
float32 file of the vectors and a JSON-lines file of the ids and payloads), which costs it a
few milliseconds a chunk; this process does the rest, away from the store's GIL::

    python -m semantic_reuse.semantic.edge_child EXPORT COPY TEMPLATE DIM NICE

creates ``COPY`` laid out as the folder ``TEMPLATE`` (its ``edge_config.json``), upserts the
exported points and builds the HNSW index, then prints ``indexed optimized`` (or ``indexed
unchanged``) and reads one line from stdin: ``replay PATH`` applies the writes the live folder
took meanwhile (:func:`dump_journal`), so that the swap has only the last few to replay; then it
flushes and closes the copy and prints ``done``. On Linux it dies with its parent (a copy whose
owner died is deleted by the next process that opens the folder). No pickle: bytes and JSON.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from semantic_reuse.semantic.edge_folder import EdgeFolder, EdgeItem, JournalOp

__all__ = ["Export", "dump_journal", "load_journal", "read_export"]

_VECTORS = "vectors.f32"
_PAYLOADS = "payloads.jsonl"


class Export:
    """Points written to ``folder`` in the order given (the parent's side)."""

    def __init__(self, folder: Path, dim: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.dim = dim
        self._vectors = (folder / _VECTORS).open("wb")
        self._payloads = (folder / _PAYLOADS).open("w", encoding="utf-8")

    def write(self, items: list[tuple[Any, list[float], dict[str, Any]]]) -> None:
        if not items:
            return
        vectors = np.asarray([vector for _, vector, _ in items], dtype=np.float32)
        if vectors.shape != (len(items), self.dim):
            raise ValueError(f"exported vectors must be {self.dim}-dimensional")
        self._vectors.write(vectors.tobytes())
        self._payloads.writelines(
            json.dumps([str(pid), payload], allow_nan=False) + "\n" for pid, _, payload in items
        )

    def close(self) -> None:
        self._vectors.close()
        self._payloads.close()


def read_export(folder: Path, dim: int, chunk: int) -> Iterator[list[EdgeItem]]:
    """The exported points, ``chunk`` at a time (the child's side)."""
    width = dim * 4
    with (folder / _VECTORS).open("rb") as vectors, (folder / _PAYLOADS).open() as payloads:
        while True:
            lines = [line for _, line in zip(range(chunk), payloads, strict=False)]
            if not lines:
                return
            raw = vectors.read(width * len(lines))
            if len(raw) != width * len(lines):
                raise ValueError("the export's vectors and payloads disagree")
            matrix = np.frombuffer(raw, dtype=np.float32).reshape(len(lines), dim)
            items: list[EdgeItem] = []
            for line, vector in zip(lines, matrix, strict=True):
                pid, payload = json.loads(line)
                items.append((uuid.UUID(pid), vector.tolist(), payload))
            yield items


def dump_journal(journal: list[JournalOp], path: Path) -> None:
    """Write journal entries as JSON lines (vectors as base64 float32)."""
    with path.open("w", encoding="utf-8") as out:
        for kind, arg in journal:
            if kind == "upsert":
                arg = [
                    [str(pid), base64.b64encode(np.asarray(v, np.float32).tobytes()).decode(), p]
                    for pid, v, p in arg
                ]
            elif kind == "delete":
                arg = [str(pid) for pid in arg]
            out.write(json.dumps([kind, arg], allow_nan=False) + "\n")


def load_journal(path: Path) -> list[JournalOp]:
    """What :func:`dump_journal` wrote."""
    journal: list[JournalOp] = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            kind, arg = json.loads(line)
            if kind == "upsert":
                arg = [
                    (uuid.UUID(pid), np.frombuffer(base64.b64decode(v), np.float32).tolist(), p)
                    for pid, v, p in arg
                ]
            elif kind == "delete":
                arg = [uuid.UUID(pid) for pid in arg]
            journal.append((kind, arg))
    return journal


def _die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL (Linux)
    except (OSError, AttributeError):
        pass


def main(argv: list[str]) -> int:
    export, copy, template, dim, nice = argv
    _die_with_parent()
    with contextlib.suppress(AttributeError, OSError, ValueError):
        os.nice(int(nice))
    folder = EdgeFolder(Path(copy), int(dim), None)
    folder.open(template=Path(template))
    try:
        for items in read_export(Path(export), int(dim), 2048):
            folder.upsert(items)
        changed = folder.optimize()
        print("indexed", "optimized" if changed else "unchanged", flush=True)
        command = sys.stdin.readline().split(maxsplit=1)
        if command[:1] == ["replay"]:
            folder.replay(load_journal(Path(command[1].strip())))
    finally:
        folder.close()
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
