"""One `semantic-reuse serve` of the default model for the session (vLLM starts in 20-100 s
here), with two tenants and an admin key; and a gateway (`serve --upstream`) in front of it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[3]
MODEL = "smollm2"
KEYS = {"acme": "key-acme", "beta": "key-beta"}
ADMIN_KEY = "key-admin"
MAX_BODY = 65536


@dataclass(frozen=True)
class Served:
    url: str  # http://127.0.0.1:PORT (the OpenAI base URL is url + "/v1")
    log: Path

    @property
    def base_url(self) -> str:
        return self.url + "/v1"


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    path = os.pathsep.join([str(ROOT / "core"), str(ROOT / "integrations"), str(ROOT)])
    return {
        **os.environ, "PYTHONPATH": path, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1",
        "SEMANTIC_REUSE_CACHE__QDRANT_PATH": str(tmp / "qdrant"),
        "SEMANTIC_REUSE_PERFORMANCE__HIT_STREAM_CHUNK_TOKENS": "4", **extra,
    }  # fmt: skip


def _start(command: list[str], env: dict[str, str], log: Path, url: str) -> subprocess.Popen[bytes]:
    """Start a server and wait for its /health (another process's start: polled, bounded)."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    deadline = time.monotonic() + 400
    while True:
        if process.poll() is not None:
            pytest.fail(f"the server exited ({process.returncode}):\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return process
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the server did not answer in 400 s:\n{log.read_text()[-4000:]}")
        time.sleep(1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def served(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("serve")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = _env(
        tmp,
        SEMANTIC_REUSE_SERVER__TENANTS=json.dumps({t: [k] for t, k in KEYS.items()}),
        SEMANTIC_REUSE_SERVER__ADMIN_KEY=ADMIN_KEY,
        SEMANTIC_REUSE_SERVER__MAX_BODY_BYTES=str(MAX_BODY),
    )
    command = [sys.executable, "-m", "semantic_reuse.tools.cli", "serve", str(model_path),
               "--served-model-name", MODEL, "--host", "127.0.0.1", "--port", str(port),
               "--dtype", "bfloat16", "--enforce-eager", "--max-model-len", "2048",
               # tool_choice "required" and named tools: vLLM constrains the output to a call,
               # and ("parameter") its arguments to the tool's schema, as if each were strict
               "--enable-auto-tool-choice", "--tool-call-parser", "hermes",
               "--tool-strict-level", "parameter"]  # fmt: skip
    process = _start(command, env, tmp / "serve.log", url)
    yield Served(url, tmp / "serve.log")
    _stop(process)


@pytest.fixture(scope="session")
def gateway(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`serve --upstream` in front of the session's server (tenant acme's key upstream); no
    keys of its own, so it listens on loopback only."""
    tmp = tmp_path_factory.mktemp("gateway")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = _env(tmp, SEMANTIC_REUSE_SERVER__UPSTREAM_API_KEY=KEYS["acme"])
    command = [sys.executable, "-m", "semantic_reuse.tools.cli", "serve", MODEL,
               "--upstream", served.base_url, "--port", str(port)]  # fmt: skip
    process = _start(command, env, tmp / "gateway.log", url)
    yield Served(url, tmp / "gateway.log")
    _stop(process)


@pytest.fixture
def space() -> dict[str, str]:
    """A namespace header of one test's own (narrowing the tenant): tests never share answers."""
    return {"x-semantic-reuse-namespace": f"t{uuid.uuid4().hex[:12]}"}
