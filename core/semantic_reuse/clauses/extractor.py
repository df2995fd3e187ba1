"""Language routing and the asynchronous, bounded, time-limited extractor.

Timeout policy
--------------
``AsyncConjunctionExtractor.extract_conjunctions_async`` never raises on a
timeout or on a failure inside a splitter: it returns ``[]`` ("treat the
prompt as a single question"), which is exactly the engine's degraded path,
and counts the event in :attr:`AsyncConjunctionExtractor.stats`
(``timeouts`` / ``failures``) and logs it. Splitting is an optimisation; it
must never fail a request. Only caller errors raise: a non-``str`` prompt
(``TypeError``) and an invalid limit (``ValueError``).

The engine calls it with ``raise_on_failure=True``: the event is counted the
same, then raised (a ``TimeoutError`` for a timeout), so that the splitter's
circuit breaker sees it. A hanging splitter then costs three requests a
timeout each, not every compound question for as long as it hangs; the
breaker's one WARNING replaces the extractor's own.

The timeout covers the whole call, waiting for a slot included. A thread
cannot be killed, so a split that overruns keeps its concurrency slot until
it really finishes: the limit bounds the CPU work actually in flight, not
just the callers waiting.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections import deque
from dataclasses import dataclass

from semantic_reuse._log import logger
from semantic_reuse.errors import InvalidRequestError, InvalidTypeError
from semantic_reuse.redaction import describe_error

from .chinese import ChineseClauseSplitter
from .english import EnglishClauseSplitter
from .rules import ClauseSplitter, Language, detect_language, may_be_compound

__all__ = [
    "AsyncConjunctionExtractor",
    "ExtractorStats",
    "MultilingualClauseSplitter",
]


class MultilingualClauseSplitter:
    """Routes a text to the English or the Chinese splitter by its
    CJK-character ratio (:func:`~semantic_reuse.clauses.rules.detect_language`).
    Both splitters are created lazily unless given."""

    def __init__(
        self,
        *,
        english: ClauseSplitter | None = None,
        chinese: ClauseSplitter | None = None,
    ) -> None:
        self._english = english
        self._chinese = chinese
        self._lock = threading.Lock()

    def splitter_for(self, language: Language) -> ClauseSplitter:
        with self._lock:
            if language == "zh":
                if self._chinese is None:
                    self._chinese = ChineseClauseSplitter()
                return self._chinese
            if self._english is None:
                self._english = EnglishClauseSplitter()
            return self._english

    def split(self, text: str) -> list[str]:
        if not isinstance(text, str):
            raise InvalidTypeError(f"text must be str, got {type(text).__name__}")
        return self.splitter_for(detect_language(text)).split(text)


@dataclass(frozen=True)
class ExtractorStats:
    """Counters since the extractor was created."""

    calls: int
    splits: int
    #: Calls answered without parsing: the text has none of the marks a cut needs.
    skipped: int
    timeouts: int
    failures: int
    in_flight: int
    max_concurrent: int


class _SlotGate:
    """A resizable counting semaphore usable from any event loop and thread.

    Waiters are granted slots in FIFO order; ``release`` may run in a worker
    thread (it wakes waiters with ``call_soon_threadsafe``).
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._active = 0
        self._lock = threading.Lock()
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def active(self) -> int:
        return self._active

    def set_limit(self, limit: int) -> None:
        with self._lock:
            self._limit = limit
            grants = self._pop_grants()
        self._grant(grants)

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._active < self._limit and not self._waiters:
                self._active += 1
                return
            fut: asyncio.Future[None] = loop.create_future()
            entry = (loop, fut)
            self._waiters.append(entry)
        try:
            await fut
        except asyncio.CancelledError:
            with self._lock:
                if entry in self._waiters:
                    self._waiters.remove(entry)
                    raise
            # The slot was handed to us before we were cancelled.
            if fut.done() and not fut.cancelled():
                self.release()
            # else: the pending grant callback sees the cancelled future and
            # releases the slot itself.
            raise

    def release(self) -> None:
        with self._lock:
            self._active -= 1
            grants = self._pop_grants()
        self._grant(grants)

    def _pop_grants(self) -> list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]:
        grants = []
        while self._waiters and self._active < self._limit:
            grants.append(self._waiters.popleft())
            self._active += 1  # the slot now belongs to that waiter
        return grants

    def _grant(self, grants: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]) -> None:
        for loop, fut in grants:
            try:
                loop.call_soon_threadsafe(self._wake, fut)
            except RuntimeError:  # that loop is closed: nobody is waiting there
                self.release()

    def _wake(self, fut: asyncio.Future[None]) -> None:
        if fut.done():  # cancelled meanwhile: pass the slot on
            self.release()
        else:
            fut.set_result(None)


class AsyncConjunctionExtractor:
    """Runs a clause splitter off the event loop, bounded and time-limited.

    ``english`` / ``chinese``: splitters to use (default: the spaCy and jieba
    ones, created lazily). ``executor``: where the splitting runs (default:
    a thread pool owned by this extractor, created on first use; call
    :meth:`close` to shut it down).
    """

    def __init__(
        self,
        *,
        max_concurrent: int = 4,
        timeout_s: float = 2.0,
        english: ClauseSplitter | None = None,
        chinese: ClauseSplitter | None = None,
        executor: concurrent.futures.Executor | None = None,
    ) -> None:
        _check_limit(max_concurrent, "max_concurrent")
        if not timeout_s > 0:
            raise InvalidRequestError(f"timeout_s must be > 0, got {timeout_s!r}")
        self.timeout_s = float(timeout_s)
        self._splitter = MultilingualClauseSplitter(english=english, chinese=chinese)
        self._gate = _SlotGate(max_concurrent)
        self._executor = executor
        self._own_executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._calls = 0
        self._skipped = 0
        self._splits = 0
        self._timeouts = 0
        self._failures = 0

    # ------------------------------------------------------------ settings

    @property
    def max_concurrent(self) -> int:
        return self._gate.limit

    def set_max_concurrent_tasks(self, n: int) -> None:
        """Change the concurrency limit; waiting calls are admitted at once
        when it grows. Raises ``ValueError`` when ``n`` < 1."""
        _check_limit(n, "n")
        self._gate.set_limit(n)

    @property
    def splitter(self) -> MultilingualClauseSplitter:
        return self._splitter

    @property
    def stats(self) -> ExtractorStats:
        with self._lock:
            return ExtractorStats(
                calls=self._calls,
                splits=self._splits,
                skipped=self._skipped,
                timeouts=self._timeouts,
                failures=self._failures,
                in_flight=self._gate.active,
                max_concurrent=self._gate.limit,
            )

    # ------------------------------------------------------------------ API

    def extract_conjunctions(self, prompt: str) -> list[str]:
        """Synchronous split in the calling thread (no limit, no timeout)."""
        if not isinstance(prompt, str):
            raise InvalidTypeError(f"prompt must be str, got {type(prompt).__name__}")
        return self._splitter.split(prompt)

    async def extract_conjunctions_async(
        self, prompt: str, *, raise_on_failure: bool = False
    ) -> list[str]:
        """The clauses of ``prompt`` (two or more), or ``[]`` when it is a
        single question, when splitting timed out or when it failed (with
        `raise_on_failure`, those two raise instead: see the module's docs)."""
        if not isinstance(prompt, str):
            raise InvalidTypeError(f"prompt must be str, got {type(prompt).__name__}")
        with self._lock:
            self._calls += 1
            if not may_be_compound(prompt):
                self._skipped += 1
                return []  # nothing to cut: no thread hop, no slot, no parse
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        try:
            async with asyncio.timeout_at(deadline):
                await self._gate.acquire()
        except TimeoutError:
            return self._timed_out(prompt, "waiting for a slot", raise_on_failure)
        try:
            cfut = self._executor_for_use().submit(self._splitter.split, prompt)
        except BaseException:
            self._gate.release()
            raise
        cfut.add_done_callback(lambda _f: self._gate.release())
        wrapped = asyncio.wrap_future(cfut)
        try:
            async with asyncio.timeout_at(deadline):
                clauses = await asyncio.shield(wrapped)
        except TimeoutError:
            # the late result (or error) is of no use: retrieve it silently
            wrapped.add_done_callback(_discard_outcome)
            return self._timed_out(prompt, "splitting", raise_on_failure)
        except Exception as exc:  # a splitter bug must not fail the request
            with self._lock:
                self._failures += 1
                failures = self._failures
            if raise_on_failure:
                raise
            logger.log(
                _level(failures),
                "clause splitting failed ({}; {} so far); treating the prompt as one question",
                describe_error(exc),
                failures,
            )
            logger.opt(exception=exc).debug("clause splitting failed")
            return []
        if len(clauses) >= 2:
            with self._lock:
                self._splits += 1
            return list(clauses)
        return []

    def warm_up(self) -> None:
        """Load the language tools now (blocking; about 1-3 s for spaCy, 1 s for
        jieba), so that the first real call does not spend its timeout on it.
        Call it from a thread (``await asyncio.to_thread(ex.warm_up)``) at start-up."""
        for language in ("en", "zh"):
            splitter = self._splitter.splitter_for(language)
            warm = getattr(splitter, "warm_up", None)
            if callable(warm):
                warm()

    def close(self) -> None:
        """Shut down the thread pool this extractor created (if any)."""
        with self._lock:
            pool, self._own_executor = self._own_executor, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------ internals

    def _executor_for_use(self) -> concurrent.futures.Executor:
        if self._executor is not None:
            return self._executor
        with self._lock:
            if self._own_executor is None:
                self._own_executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=32, thread_name_prefix="clause-split"
                )
            return self._own_executor

    def _timed_out(self, prompt: str, stage: str, raise_on_failure: bool) -> list[str]:
        with self._lock:
            self._timeouts += 1
            timeouts = self._timeouts
        if raise_on_failure:
            raise TimeoutError(f"clause splitting timed out after {self.timeout_s:.3f}s ({stage})")
        logger.log(
            _level(timeouts),
            "clause splitting timed out after {:.3f}s ({}; {} so far); treating the prompt "
            "({} chars) as one question",
            self.timeout_s,
            stage,
            timeouts,
            len(prompt),
        )
        return []


def _level(count: int) -> str:
    """WARNING for the first event of a kind and every 1000th, DEBUG in between."""
    return "WARNING" if count == 1 or count % 1000 == 0 else "DEBUG"


def _discard_outcome(fut: asyncio.Future[list[str]]) -> None:
    if not fut.cancelled():
        fut.exception()


def _check_limit(n: int, name: str) -> None:
    if isinstance(n, bool) or not isinstance(n, int):
        raise InvalidTypeError(f"{name} must be an int, got {type(n).__name__}")
    if n < 1:
        raise InvalidRequestError(f"{name} must be >= 1, got {n}")
