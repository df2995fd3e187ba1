"""The library does not take over logging, leaks no secret, and raises one error hierarchy.

Real components: the bundled embedder, Qdrant Edge, spaCy, a Redis URL nothing answers
(with a password), and a loopback HTTP server speaking the OpenAI streaming protocol in
place of an LLM endpoint. The one injected fault is an embedder that fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from loguru import logger

from semantic_reuse import (
    CachedAnswer,
    CallableBackend,
    GenerationParams,
    HandlerConfig,
    OpenAICompatibleClient,
    ReuseEngine,
    ReuseKind,
    ReuseRequest,
    SemanticReuseError,
)
from semantic_reuse.clauses import AsyncConjunctionExtractor
from semantic_reuse.defaults import build_search_helper_from
from semantic_reuse.errors import ConfigurationError, InvalidRequestError, InvalidTypeError
from semantic_reuse.redaction import describe_error, endpoint_scope, redact_url
from tests.conftest import EngineFactory

MARKER = "zebracorn7391"
PROMPT = f"What is the capital of France? Ask {MARKER}."
ANSWER = f"Paris, says {MARKER}."
PASSWORD = "s3cretpw"
API_KEY = "sk-t0psecret"
SECRET_REDIS = f"redis://:{PASSWORD}@127.0.0.1:1/0"  # nothing listens on port 1
# One failure opens a breaker; no trial call during a test.
FRAGILE = {"breaker_failure_threshold": 1, "breaker_reset_s": 600.0, "breaker_max_reset_s": 600.0}


class FailingEmbedder:
    """The injected fault: the bundled embedder's name and size, but every encode fails."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    @property
    def name(self) -> str:
        return str(self._inner.name)

    @property
    def dim(self) -> int:
        return int(self._inner.dim)

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        raise RuntimeError("the embedding runtime crashed")


class FailingSplitter:
    """The injected fault of the clause splitter: it fails on every text."""

    def split(self, text: str) -> list[str]:
        raise RuntimeError("the clause parser crashed")


async def _use_the_library(engine: ReuseEngine) -> None:
    """Store, look up and generate a prompt holding the marker, then wait for the writes."""
    await engine.store(PROMPT, ANSWER)
    await engine.flush()
    hit = await engine.lookup(PROMPT)
    assert hit is not None  # memory answers; Redis is down
    assert hit.answer.text == ANSWER
    result = await engine.generate(
        f"How tall is the tower {MARKER} and who built it?", CallableBackend(_model)
    )
    assert result.info.kind is ReuseKind.MISS
    await engine.flush()
    assert engine.cache.redis is not None
    assert engine.cache.redis.breaker.opened_count == 1  # the failure really happened


async def _model(prompt: object, params: object) -> str:
    return f"an answer about {MARKER}"


# -- (a) silent unless enabled ----------------------------------------------------------------


async def test_the_library_is_silent_until_the_application_enables_it(
    make_engine: EngineFactory, capfd: pytest.CaptureFixture[str]
) -> None:
    records: list[str] = []
    # A process that never enabled the library's logs (other tests of this session may have;
    # tests/integration/test_logging.py::test_a_fresh_process_prints_nothing_on_stderr checks
    # the default in a process of its own).
    logger.disable("semantic_reuse")
    # The application's own sink at DEBUG: it must get nothing from semantic_reuse either.
    sink = logger.add(
        lambda m: records.append(m.record["name"] or ""), level="DEBUG", diagnose=True
    )
    try:
        capfd.readouterr()  # what loading the shared models printed is not ours
        engine = make_engine(cache={"redis_url": SECRET_REDIS}, performance=FRAGILE)
        await _use_the_library(engine)
        await engine.aclose()
    finally:
        logger.remove(sink)
    out, err = capfd.readouterr()
    assert [name for name in records if name.startswith("semantic_reuse")] == []
    assert err == ""
    assert MARKER not in out + err
    assert PASSWORD not in out + err


SCRIPT = """
import asyncio, sys
from semantic_reuse import HandlerConfig, ReuseEngine

async def main() -> None:
    config = HandlerConfig(
        cache={"qdrant_path": sys.argv[1], "redis_url": sys.argv[2]},
        performance={"breaker_failure_threshold": 1},
    )
    async with ReuseEngine.from_config(config) as engine:
        await engine.store(sys.argv[3], "Paris.")
        await engine.flush()
        hit = await engine.lookup(sys.argv[3])
        print("hit" if hit is not None else "miss")
        print(engine.cache.redis.breaker.opened_count)
        # a compound Chinese question: the clause splitter loads jieba
        decision = await engine.analyze("怎么重置我的密码？另外，家用烤箱哪个牌子比较好？")
        print(len(decision.info.clauses))

asyncio.run(main())
"""


def test_a_fresh_process_prints_nothing_on_stderr(tmp_path: Path) -> None:
    """loguru's default sink (DEBUG, with variable dumps) is live in a fresh process."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "qdrant"), SECRET_REDIS, PROMPT],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["hit", "1", "2"]
    # transformers draws a progress bar while it loads the embedder (its own, global
    # switch); anything else (our logs, jieba's dictionary loading) is noise
    noise = [
        line for line in run.stderr.splitlines() if line.strip() and "Loading weights" not in line
    ]
    assert noise == []
    assert MARKER not in run.stderr
    assert PASSWORD not in run.stderr


ENABLE_FIRST = """
import sys
import semantic_reuse  # loguru is not loaded yet: nothing of ours logs so far
from loguru import logger
logger.remove()
logger.add(sys.stderr, level="INFO", format="{name}|{message}")
logger.enable("semantic_reuse")
from semantic_reuse.breaker import CircuitBreaker  # the first of our modules that logs
CircuitBreaker("probe", failure_threshold=1).record_failure(RuntimeError("down"))
"""


def test_an_application_that_enables_logs_early_keeps_its_choice() -> None:
    """`import semantic_reuse` loads no loguru (it is costly); the logger is disabled when a
    module that logs loads, unless the application has decided already."""
    run = subprocess.run(
        [sys.executable, "-c", ENABLE_FIRST], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    assert "semantic_reuse.breaker|" in run.stderr


# -- (b) enabled: one line per state change, no prompt, no secret -----------------------------


@pytest.fixture
def library_logs() -> Iterator[list[str]]:
    """What an application sees after enabling the library's logs with a sink at INFO
    (loguru's defaults otherwise: tracebacks with variable dumps would show)."""
    lines: list[str] = []
    sink = logger.add(lines.append, level="INFO")
    logger.enable("semantic_reuse")
    try:
        yield lines
    finally:
        logger.disable("semantic_reuse")
        logger.remove(sink)


async def test_enabled_logs_carry_one_line_per_failure_and_no_prompt_or_secret(
    minilm: Any, tmp_path: Path, library_logs: list[str]
) -> None:
    config = HandlerConfig(cache={"redis_url": SECRET_REDIS}, performance=FRAGILE)
    search = build_search_helper_from(config, FailingEmbedder(minilm), tmp_path / "edge")
    splitter = AsyncConjunctionExtractor(english=FailingSplitter())
    engine = ReuseEngine(config, search=search, splitter=splitter)
    try:
        await _use_the_library(engine)
        assert engine.semantic.breaker.opened_count == 1
        assert splitter.stats.failures >= 1
    finally:
        await engine.aclose()
        await search.embedder.aclose()
        await search.store.aclose()
        splitter.close()
    text = "".join(library_logs)
    assert any("redis L2 unavailable (ConnectionError" in line for line in library_logs), text
    assert any("semantic unavailable (RuntimeError: the embedding" in line for line in library_logs)
    assert any("splitter unavailable (RuntimeError: the clause" in line for line in library_logs)
    assert len(library_logs) == 3, text  # one line per breaker state change, one per fault
    assert all(line.count("\n") == 1 for line in library_logs), text  # no traceback
    assert "Traceback" not in text
    assert MARKER not in text
    assert PASSWORD not in text


HOLDER = """
import sys
from semantic_reuse import HandlerConfig
from semantic_reuse.defaults import build_store

config = HandlerConfig(cache={"qdrant_path": sys.argv[1]})
store = build_store(config, sys.argv[2], int(sys.argv[3]))
print("holding", flush=True)
sys.stdin.read()  # the Edge folder stays open (and locked) until the test closes stdin
"""


@pytest.fixture
def busy_store(tmp_path: Path, minilm: Any) -> Iterator[Path]:
    """The default Edge folder of the default embedder, held open by another process."""
    from semantic_reuse.defaults import build_embedder

    default_name = build_embedder(HandlerConfig()).name  # the runtime's own folder (int8)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path), default_name, str(minilm.dim)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "holding"
        yield tmp_path
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)


async def test_a_busy_store_is_silent_by_default_and_one_line_when_enabled(
    busy_store: Path, splitter: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    """The README's case: the default store is held by another process. This one works in a
    private folder; the application sees nothing, or one line if it asked."""
    config = HandlerConfig(cache={"qdrant_path": busy_store}, performance=FRAGILE)

    async def use() -> ReuseEngine:
        engine = ReuseEngine(config, splitter=splitter)
        for n in range(3):
            result = await engine.generate(f"Question {n} from {MARKER}?", CallableBackend(_model))
            assert result.info.kind is ReuseKind.MISS
        await engine.aclose()
        return engine

    capfd.readouterr()
    names: list[str] = []  # the application's own sink at DEBUG, our logs not enabled
    sink = logger.add(lambda m: names.append(m.record["name"] or ""), level="DEBUG")
    try:
        silent = await use()
    finally:
        logger.remove(sink)
    assert silent.semantic.ready is not None
    assert silent.semantic.ready.store.private  # the shared folder really could not be opened
    assert [name for name in names if name.startswith("semantic_reuse")] == []
    err = capfd.readouterr().err
    assert [
        line for line in err.splitlines() if line.strip() and "Loading weights" not in line
    ] == []
    lines: list[str] = []
    sink = logger.add(lines.append, level="INFO")
    logger.enable("semantic_reuse")
    try:
        await use()
    finally:
        logger.disable("semantic_reuse")
        logger.remove(sink)
    assert len(lines) == 1, lines
    assert "is open in another process; this process uses a private folder" in lines[0]
    assert lines[0].count("\n") == 1
    assert MARKER not in lines[0]


def test_describe_error_is_one_line_without_userinfo() -> None:
    error = ConnectionError(f"cannot reach redis://:{PASSWORD}@cache:6379/0\nretrying\tlater")
    line = describe_error(error)
    assert line == "ConnectionError: cannot reach redis://:***@cache:6379/0 retrying later"
    assert describe_error(RuntimeError()) == "RuntimeError"
    assert len(describe_error(ValueError("x" * 10_000))) < 400


# -- (c) reprs ---------------------------------------------------------------------------------


def test_config_repr_str_and_errors_mask_the_redis_password() -> None:
    config = HandlerConfig(
        cache={"redis_url": SECRET_REDIS, "qdrant_url": f"https://reader:{PASSWORD}@q:6333"}
    )
    for shown in (repr(config), str(config), repr(config.cache), str(config.cache)):
        assert PASSWORD not in shown
        assert "redis://:***@127.0.0.1:1/0" in shown
    assert config.cache.redis_url == SECRET_REDIS  # the value itself is intact
    with pytest.raises(ValueError, match="redis_url") as refused:
        HandlerConfig(cache={"redis_url": f"http://:{PASSWORD}@127.0.0.1:1"})
    assert PASSWORD not in str(refused.value)
    with pytest.raises(ValueError, match="redis_url") as refused:
        config.cache.redis_url = f"tcp://:{PASSWORD}@127.0.0.1:1"
    assert PASSWORD not in str(refused.value)


def test_redact_url() -> None:
    assert redact_url(SECRET_REDIS) == "redis://:***@127.0.0.1:1/0"
    assert redact_url("redis://app:pw@h:6379/2") == "redis://app:***@h:6379/2"
    assert redact_url("https://ghp_token@h/v1") == "https://***@h/v1"
    assert (
        redact_url("unix:///tmp/r.sock?password=pw&db=1") == "unix:///tmp/r.sock?password=***&db=1"
    )
    assert redact_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"
    assert endpoint_scope(f"https://u:{PASSWORD}@api.example:8443/v1/?key={API_KEY}#x") == (
        "https://api.example:8443/v1"
    )


async def test_client_and_model_reprs_hold_no_secret(make_engine: EngineFactory) -> None:
    from langchain_semantic_reuse import ChatSemanticReuse

    engine = make_engine()
    url = f"http://user:{PASSWORD}@127.0.0.1:9/v1?api_key={API_KEY}"
    client = OpenAICompatibleClient(url, "served", api_key=API_KEY, engine=engine)
    chat = ChatSemanticReuse(base_url=url, model="served", api_key=API_KEY, engine=engine)
    shown = [repr(client), str(client), repr(chat), str(chat), str(chat._identifying_params)]
    for text in shown:
        assert PASSWORD not in text
        assert API_KEY not in text
    assert "127.0.0.1:9/v1" in repr(client)
    assert "127.0.0.1:9/v1" in repr(chat)
    with pytest.raises(InvalidRequestError, match="base_url") as refused:
        OpenAICompatibleClient(f"ftp://u:{PASSWORD}@h/", "served", engine=engine)
    assert PASSWORD not in str(refused.value)
    await client.aclose()


# -- (d) what is stored for an endpoint --------------------------------------------------------


class _Completions(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint on loopback: a model list and a streamed completion."""

    def do_GET(self) -> None:
        model = {"id": "served", "object": "model", "created": 0, "owned_by": "t"}
        body = json.dumps({"object": "list", "data": [model]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        base = {"id": "c1", "object": "text_completion", "created": 0, "model": "served"}
        events = [
            {**base, "choices": [{"index": 0, "text": "Paris", "finish_reason": None}]},
            {**base, "choices": [{"index": 0, "text": ".", "finish_reason": "stop"}]},
            {**base, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2,
                                              "total_tokens": 11}},
        ]  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for event in events:
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Completions)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()
    thread.join()


def test_the_stored_scope_of_an_endpoint_holds_no_secret(
    endpoint: int, minilm: Any, splitter: Any, tmp_path: Path
) -> None:
    config = HandlerConfig()
    folder = tmp_path / "edge"
    search = build_search_helper_from(config, minilm, folder)
    engine = ReuseEngine(config, search=search, splitter=splitter)
    url = f"http://user:{PASSWORD}@127.0.0.1:{endpoint}/v1/?api_key={API_KEY}"
    client = OpenAICompatibleClient(url, "served", api_key=API_KEY, engine=engine)
    try:
        completion = client.complete_sync(PROMPT)
        assert completion.text == "Paris."
        engine.run_sync(engine.flush())
        expected = f"openai:http://127.0.0.1:{endpoint}/v1/served"
        request = ReuseRequest(PROMPT, model=expected, params=GenerationParams().as_dict())
        stored = engine.run_sync(search.store.get(request.hash_id))
        assert stored is not None
        assert stored.model == expected
        assert PASSWORD not in json.dumps(stored.answer) + stored.prompt
        assert API_KEY not in json.dumps(stored.answer)
        engine.run_sync(search.store.flush())
        written = b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())
        assert f"127.0.0.1:{endpoint}/v1/served".encode() in written  # payloads are readable
        assert PASSWORD.encode() not in written
        assert API_KEY.encode() not in written
    finally:
        client.close()
        engine.run_sync(search.store.aclose())
        engine.close_sync()


# -- (e) one hierarchy -------------------------------------------------------------------------


def test_bad_input_raises_the_library_error_and_the_builtin() -> None:
    engine = ReuseEngine()  # nothing is built until it is used
    try:
        with pytest.raises(InvalidRequestError, match="prompt") as empty:
            engine.lookup_sync("")
        assert isinstance(empty.value, SemanticReuseError)
        assert isinstance(empty.value, ValueError)
        with pytest.raises(InvalidTypeError, match="prompt") as wrong:
            engine.lookup_sync(42)
        assert isinstance(wrong.value, SemanticReuseError)
        assert isinstance(wrong.value, TypeError)
        with pytest.raises(ConfigurationError, match="not both") as both:
            OpenAICompatibleClient(
                "http://127.0.0.1:9/v1", "served", engine=engine, config=HandlerConfig()
            )
        assert isinstance(both.value, ValueError)
    finally:
        engine.close_sync()
    with pytest.raises(SemanticReuseError, match="namespace") as bad_namespace:
        ReuseRequest(prompt="x", namespace="bad ns!")
    assert isinstance(bad_namespace.value, ValueError)
    with pytest.raises(SemanticReuseError, match="namespace") as not_str:
        ReuseRequest(prompt="x", namespace=7)  # type: ignore[arg-type]
    assert isinstance(not_str.value, TypeError)


def test_component_and_codec_errors_join_the_hierarchy() -> None:
    from semantic_reuse.semantic.batching import EmbedderClosedError
    from semantic_reuse.semantic.embedder import EmbedderUnavailableError
    from semantic_reuse.spi import (
        AnswerCodec,
        AnswerDecodeError,
        ComponentUnavailableError,
        UsageError,
    )
    from semantic_reuse.vllm.model import ModelPreparationError

    for error in (EmbedderUnavailableError, EmbedderClosedError, ModelPreparationError):
        assert issubclass(error, ComponentUnavailableError)
        assert issubclass(error, RuntimeError)
    assert issubclass(UsageError, RuntimeError)
    with pytest.raises(AnswerDecodeError) as foreign:
        AnswerCodec().decode(b"not ours")
    assert isinstance(foreign.value, SemanticReuseError)
    assert isinstance(foreign.value, ValueError)
    with pytest.raises(InvalidTypeError, match="text"):
        CachedAnswer(text=3)  # type: ignore[arg-type]
