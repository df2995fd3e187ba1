"""One live Edge store per folder in a process: the registry that
:func:`~semantic_reuse.semantic.edge_store.open_edge_store` shares them through.

A folder can be open once per process (Edge locks it). The registry maps each folder (by its
resolved path, :func:`folder_key`) to its live store, weakly, and keeps the folders whose last
holder is closing them: an open of such a folder waits for that close to finish, so that the
two never hold the folder at once.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from concurrent.futures import Future
from pathlib import Path
from typing import Generic, TypeVar

__all__ = ["LiveFolders", "folder_key"]

S = TypeVar("S")


def folder_key(path: str | Path) -> tuple[Path, str]:
    """The folder of ``path`` (created when missing), resolved, and the key the registry uses."""
    folder = Path(path).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    resolved = folder.resolve()
    return resolved, str(resolved)


class LiveFolders(Generic[S]):
    """The live stores of this process by folder key, and the closes still running.

    Thread-safe under :attr:`lock` (re-entrant): every method but :meth:`closed` expects its
    caller to hold it, since a check and the change it leads to must happen under one hold.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._live: weakref.WeakValueDictionary[str, S] = weakref.WeakValueDictionary()
        #: Folders whose last holder is closing them: an open waits for that close to finish.
        self._closing: dict[str, Future[None]] = {}

    def get(self, key: str) -> S | None:
        """The live store of this folder, if any."""
        return self._live.get(key)

    def wait_closed(self, key: str) -> None:
        """Wait for a close of this folder still running (whatever its outcome)."""
        if pending := self._closing.get(key):
            with contextlib.suppress(Exception):
                pending.result()

    def add(self, key: str, store: S) -> None:
        self._live[key] = store

    def closing(self, key: str, store: S, done: Future[None]) -> None:
        """``store`` is closing its folder; ``done`` resolves when the folder is released."""
        if self._live.get(key) is store:
            del self._live[key]
        self._closing[key] = done

    def closed(self, key: str, done: Future[None]) -> None:
        """The close that ``done`` stands for has finished (takes the lock itself)."""
        with self.lock:
            if self._closing.get(key) is done:
                del self._closing[key]
