"""Optimizing an Edge folder beside itself: export, build and index a copy in a child, swap.

``qdrant_edge``'s ``optimize()`` holds the GIL and needs the shard to itself, so an
:class:`~semantic_reuse.semantic.edge_store.EdgeStore` never optimizes its live folder. A
:class:`Rebuild`, driven by the store's worker thread, does it beside it, in
``<name>.rebuild-*/`` (``export/`` and ``shard/``):

1. :meth:`Rebuild.start` turns the live folder's journal on: every later write is applied to the
   live folder as usual and also kept.
2. :meth:`Rebuild.copy_step` reads ``COPY_CHUNK`` points (vectors and payloads) from the live
   folder and appends them to the export; the worker runs one step at a time between the calls
   that wait for it (a few milliseconds each).
3. :meth:`Rebuild.launch` starts a child process that builds ``shard/`` from the export, laid
   out as the live folder, and indexes it (:mod:`~semantic_reuse.semantic.edge_child`, at a lower
   CPU priority); the live folder keeps answering. A thread reads the child's output: when the
   index is built, :meth:`Rebuild.hand_over` (in that thread) writes the journal so far to a file
   that the child replays into the copy before it closes it; when the child has exited,
   :meth:`Rebuild.swap` goes to the worker.
4. :meth:`Rebuild.swap` closes the live folder, renames it ``<name>.replaced-*``, moves the copy
   in its place, opens it and replays the writes that came after the hand-over (flushing them
   if a ``flush()`` came meanwhile), and deletes the replaced folder. Lookups wait for this step
   only: closing one shard, loading the other, and a few writes.

The folder's lock (``<name>.lock``, :class:`~semantic_reuse.semantic.edge_files.FolderLock`) is
held throughout, so no other process opens the folder during the swap. If the process dies in
the middle, the replaced folder is complete (the journal was never lost from it) and the next
opener puts it back (:func:`~semantic_reuse.semantic.edge_files.recover`). A child that fails
or finds nothing to improve leaves the live folder as it was.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Generator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from semantic_reuse._log import logger
from semantic_reuse.redaction import describe_error
from semantic_reuse.semantic.edge_child import Export, dump_journal
from semantic_reuse.semantic.edge_files import BUILDER_PID, sibling
from semantic_reuse.semantic.edge_folder import EdgeFolder
from semantic_reuse.semantic.edge_optimize import (
    OptimizePolicy,
    child_outcome,
    start_optimize_child,
)
from semantic_reuse.semantic.edge_worker import EdgeWorker

__all__ = ["COPY_CHUNK", "Optimizations", "Rebuild"]

#: Points exported (or merged) per worker step.
COPY_CHUNK = 256


class Rebuild:
    """One optimize of ``live`` beside it; every method but the waiting thread's runs on the
    store's worker thread. ``done`` resolves to True when the copy was swapped in, False when
    the child found nothing to improve, or to the error."""

    def __init__(self, live: EdgeFolder, nice: int, chunk: int = COPY_CHUNK) -> None:
        self.live = live
        self.nice = nice
        self.chunk = chunk
        self.done: Future[bool] = Future()
        self.workdir = sibling(live.folder, "rebuild")
        self.copied = 0
        self._export: Export | None = None
        self._offset: Any = None
        self._proc: subprocess.Popen[str] | None = None
        self._output: tuple[int, str, str] | None = None
        #: The child indexed the copy (None: not yet), and how much of the journal it replays.
        self.indexed: bool | None = None
        self._handed = 0

    def start(self) -> None:
        """Start the export and the journal of the live folder's writes."""
        self._export = Export(self.workdir / "export", self.live.dim)
        self.live.journal = []
        self.live.journal_flushed = False

    def copy_step(self) -> bool:
        """Export the next chunk of points; True while more remain."""
        assert self._export is not None
        items, self._offset = self.live.scroll(self._offset, self.chunk)
        self._export.write(items)
        self.copied += len(items)
        return self._offset is not None

    def launch(self, on_exit: Callable[[], None]) -> None:
        """Close the export and build and index the copy in a child process. In another
        thread: :meth:`hand_over` once the index is built, and ``on_exit`` once the child has
        exited (then :meth:`swap`, on the worker)."""
        assert self._export is not None
        self._export.close()
        self._export = None
        log = self.workdir / "child.log"
        proc = self._proc = start_optimize_child(
            self.workdir / "export", self.workdir / "shard", self.live.folder, self.live.dim,
            self.nice, log,
        )  # fmt: skip
        (self.workdir / BUILDER_PID).write_text(str(proc.pid))

        def wait() -> None:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            if first.startswith("indexed"):
                self.indexed = first.split()[1:] == ["optimized"]
                self.hand_over()
            rest = proc.stdout.read()
            proc.wait()
            err = ""
            with contextlib.suppress(OSError):
                err = log.read_text()
            self._output = (proc.returncode, first + rest, err)
            on_exit()

        threading.Thread(target=wait, name="semantic-reuse-edge-optimize", daemon=True).start()

    def hand_over(self) -> None:
        """Give the child the writes made so far, to replay before it closes the copy (the
        swap then replays only the later ones). Runs in the waiting thread, not the worker:
        encoding thousands of writes takes a while (the entries are never changed once
        appended, and copying the list is atomic)."""
        proc, journal = self._proc, list(self.live.journal or ())
        assert proc is not None
        assert proc.stdin is not None
        try:
            if self.indexed and journal:
                path = self.workdir / "journal.jsonl"
                dump_journal(journal, path)
                proc.stdin.write(f"replay {path}\n")
                self._handed = len(journal)
            proc.stdin.close()
        except OSError:
            pass  # the child is gone (or killed, the store closing): swap() reports it

    def swap(self) -> bool:
        """Put the indexed copy in place of the live folder (it stays open); True when swapped.

        RuntimeError when the child failed; the live folder is left as it was."""
        assert self._output is not None
        if not child_outcome(self.live.folder, *self._output):
            self.abandon()
            return False
        journal, self.live.journal = (self.live.journal or [])[self._handed :], None
        folder = self.live.folder
        replaced = sibling(folder, "replaced")
        # The live folder's writes are in its log; the folder goes once the copy has them.
        self.live.close(flush=False)
        os.rename(folder, replaced)
        os.rename(self.workdir / "shard", folder)
        try:
            self.live.open()
            self.live.replay(journal)
            if self.live.journal_flushed:  # acknowledged as on disk: keep it so
                self.live.flush()
        except BaseException:
            with contextlib.suppress(Exception):
                self.live.close()
            shutil.rmtree(folder, ignore_errors=True)
            os.rename(replaced, folder)
            self.live.open()
            raise
        trash = sibling(folder, "trash")
        os.rename(replaced, trash)
        # Deleting a few hundred MB takes a while: not on the worker (an unfinished deletion
        # is finished by the next opener).
        threading.Thread(
            target=_remove, args=(trash, self.workdir), name="semantic-reuse-edge-rm", daemon=True
        ).start()
        return True

    def abandon(self) -> None:
        """Stop: kill the child if it runs, delete the copy, stop the journal."""
        self.live.journal = None
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)
        if self._export is not None:
            with contextlib.suppress(Exception):
                self._export.close()
            self._export = None
        shutil.rmtree(self.workdir, ignore_errors=True)


class Optimizations:
    """A store's optimize in progress (one at a time), driven on its worker."""

    def __init__(self, worker: EdgeWorker, policy: OptimizePolicy) -> None:
        self._worker = worker
        self._policy = policy
        self.current: Rebuild | None = None

    def maybe_start(self, live: EdgeFolder) -> None:
        """Start an optimize if the policy calls for one now (after writes, on open)."""
        policy = self._policy
        if not policy.due():
            return
        stats = live.stats()
        if not policy.wants(stats["points"], stats["indexed_vectors"]):
            return
        if policy.optimizer == "subprocess":
            self.start(live)
        else:
            self._worker.submit(functools.partial(self._in_process, live))

    def _in_process(self, live: EdgeFolder) -> None:
        try:
            live.optimize()
        except Exception as exc:
            logger.warning(
                "Edge store {}: automatic optimize failed: {}", live.folder, describe_error(exc)
            )
        finally:
            self._policy.ended()

    def start(self, live: EdgeFolder) -> Future[bool]:
        """Start optimizing ``live`` beside it (or join the optimize running); its outcome."""
        if self.current is not None:
            return self.current.done
        rebuild = self.current = Rebuild(live, self._policy.nice)
        self._worker.steps(self._copy(rebuild), "optimize")
        return rebuild.done

    def stop(self, error: BaseException) -> None:
        """Abandon the optimize running, if any (the store closes)."""
        if self.current is not None:
            self._end(self.current, error=error, quiet=True)

    def _copy(self, rebuild: Rebuild) -> Generator[None, None, None]:
        try:
            rebuild.start()
            while rebuild.copy_step():
                yield
            swap = functools.partial(self._swap, rebuild)
            rebuild.launch(functools.partial(self._worker.submit, swap))
        except Exception as exc:
            self._end(rebuild, error=exc)

    def _swap(self, rebuild: Rebuild) -> None:
        if self.current is not rebuild:
            return
        try:
            changed = rebuild.swap()
        except Exception as exc:
            self._end(rebuild, error=exc)
        else:
            self._end(rebuild, changed=changed)

    def _end(
        self,
        rebuild: Rebuild,
        *,
        changed: bool = False,
        error: BaseException | None = None,
        quiet: bool = False,
    ) -> None:
        if self.current is rebuild:
            self.current = None
            self._policy.ended()
        if error is None:
            rebuild.done.set_result(changed)
            return
        rebuild.abandon()
        if not quiet:
            logger.warning(
                "Edge store {}: optimize failed: {}", rebuild.live.folder, describe_error(error)
            )
        rebuild.done.set_exception(error)


def _remove(*folders: Path) -> None:
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
