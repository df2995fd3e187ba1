"""Private Edge folders: where a process goes when another one holds the shared folder.

An Edge folder is open in one process at a time. With ``EdgeStore(if_in_use="private")`` a
process that finds ``<name>`` in use opens ``<name>.private-<pid>-<hex>`` beside it instead
(its own folder and lock: :mod:`~semantic_reuse.semantic.edge_files`), so that paraphrase
reuse keeps working there for what that process stores. Nothing stored there is thrown away:

- when that process closes its store and nobody holds the shared folder any more, it merges its
  points into the shared folder and deletes its own (:func:`hand_back`);
- otherwise the private folder stays, and the next process that opens the shared folder merges
  it in (:func:`merge_steps`, in chunks between other calls) and deletes it, as it does with the
  private folder of a process that died.

A point already in the shared folder under the same id (the same question in the same scope) is
overwritten by the private one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from pathlib import Path
from typing import Any

from semantic_reuse._log import logger
from semantic_reuse.errors import StoreInUseError
from semantic_reuse.redaction import describe_error
from semantic_reuse.semantic.edge_files import (
    FolderLock,
    recover,
    remove_folder,
    sibling,
    siblings,
)
from semantic_reuse.semantic.edge_folder import EdgeFolder

__all__ = ["hand_back", "merge_steps", "open_private", "take"]


def take(edge: EdgeFolder) -> FolderLock:
    """Lock ``edge``'s folder, undo an interrupted optimize and open it; StoreInUseError when
    another process holds it."""
    lock = FolderLock(edge.folder)
    if not lock.acquire():
        raise StoreInUseError(f"the Edge store at {edge.folder} is open in another process")
    try:
        recover(edge.folder)
        edge.open()
    except BaseException:
        lock.release()
        raise
    return lock


def open_private(shared: EdgeFolder, hnsw_ef: int | None) -> tuple[EdgeFolder, FolderLock]:
    """A new private folder beside ``shared`` (which another process holds), opened and locked;
    says so in one WARNING line."""
    private = EdgeFolder(sibling(shared.folder, "private"), shared.dim, hnsw_ef)
    lock = take(private)
    logger.warning(
        "Edge store {} is open in another process; this process uses a private folder beside "
        "it ({}), which sees only what this process stores and is merged back later "
        "(cache.qdrant_path_in_use; share one store between processes with cache.qdrant_url)",
        shared.folder,
        private.folder.name,
    )
    return private, lock


def merge_steps(live: EdgeFolder, shared: Path, chunk: int) -> Generator[int, None, None]:
    """Merge into ``live`` (the open folder ``shared``) every private folder beside it whose
    process is gone, and delete them; yields the points merged after each chunk."""
    for private in siblings(shared, "private"):
        lock = FolderLock(private)
        if not lock.acquire():
            continue  # its process still runs
        try:
            recover(private)
            source = EdgeFolder(private, live.dim, None)
            try:
                source.open()
            except StoreInUseError:
                continue
            offset: Any = None
            try:
                while True:
                    copied, offset = source.copy_into(live, offset, chunk)
                    yield copied
                    if offset is None:
                        break
            finally:
                source.close()
            remove_folder(private)
            lock.release(unlink=True)
        finally:
            lock.release()


def hand_back(private: EdgeFolder, shared: Path, chunk: int) -> bool:
    """Merge the closed ``private`` folder into ``shared`` if no process holds it, and delete
    it; False when it stays (the shared folder is in use, or merging failed: logged)."""
    try:
        merged = _merge_into(private, shared, chunk)
    except Exception as exc:
        logger.warning(
            "Edge store {}: merging the private folder {} failed: {}",
            shared,
            private.folder.name,
            describe_error(exc),
        )
        return False
    if merged is None:
        return False
    remove_folder(private.folder)
    logger.info("Edge store {}: {} points merged from a private folder", shared, merged)
    return True


def _merge_into(private: EdgeFolder, shared: Path, chunk: int) -> int | None:
    lock = FolderLock(shared)
    if not lock.acquire():
        return None
    try:
        recover(shared)
        target = EdgeFolder(shared, private.dim, None)
        try:
            target.open()
        except StoreInUseError:
            return None
        merged = 0
        try:
            source = EdgeFolder(private.folder, private.dim, None)
            source.open()
            try:
                offset: Any = None
                while True:
                    copied, offset = source.copy_into(target, offset, chunk)
                    merged += copied
                    if offset is None:
                        break
            finally:
                source.close()
        finally:
            with contextlib.suppress(Exception):
                target.close()
        return merged
    finally:
        lock.release()
