"""Recipe: the OpenAI-compatible server, used with the plain `openai` SDK.

Shows: `semantic-reuse serve` (vLLM's OpenAI server with reuse) started with two tenants;
unchanged `openai` client code gets tenant acme's repeat and paraphrase reused (the
`x-semantic-reuse` header, and `semantic_reuse` in the response's `model_extra`), while
tenant globex, with its own key, gets an answer of its own.
Runs: offline on the default model (SmolLM2-135M-Instruct, vLLM's CPU build); 1-2 minutes
on a 2-core machine, most of it starting vLLM.
Run: .venv/bin/python cookbook/openai_server.py
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from openai import OpenAI

KEYS = {"acme": "sk-acme-example", "globex": "sk-globex-example"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        env = {
            **os.environ,
            # Tenants and their keys (any number of keys each); see docs/server.md.
            "SEMANTIC_REUSE_SERVER__TENANTS": json.dumps({t: [k] for t, k in KEYS.items()}),
            "SEMANTIC_REUSE_CACHE__QDRANT_PATH": folder,
        }
        # The same as `semantic-reuse serve --port PORT` in a shell: no model given, so the
        # default one (prepared on first use) is served as "SmolLM2-135M-Instruct".
        server = subprocess.Popen(
            [sys.executable, "-m", "semantic_reuse.tools.cli", "serve", "--port", str(port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_until_up(f"http://127.0.0.1:{port}/health", server)
            base_url = f"http://127.0.0.1:{port}/v1"
            for tenant, question in [
                ("acme", "How do I reset my password?"),
                ("acme", "How do I reset my password?"),
                ("acme", "How can I reset my password?"),
                ("globex", "How do I reset my password?"),
            ]:
                client = OpenAI(base_url=base_url, api_key=KEYS[tenant])
                raw = client.chat.completions.with_raw_response.create(
                    model="SmolLM2-135M-Instruct", max_tokens=40, temperature=0,
                    messages=[{"role": "user", "content": question}],
                )  # fmt: skip
                reply = raw.parse()
                info = (reply.model_extra or {})["semantic_reuse"]
                kind = raw.headers["x-semantic-reuse"]  # the same as info["kind"]
                text = reply.choices[0].message.content or ""
                print(f"{tenant:7} {question!r:32} -> {kind:8} {text[:40]!r}")
                assert info["kind"] == kind
        finally:
            server.terminate()
            server.wait(timeout=60)


def wait_until_up(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("the server exited; run `semantic-reuse serve` to see why")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(1)
    raise SystemExit("the server did not start in 400 s")


if __name__ == "__main__":
    main()
