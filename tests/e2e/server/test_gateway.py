"""`serve --upstream`: the same surface in front of another OpenAI-compatible server (here
the session's own `semantic-reuse serve`), through `OpenAICompatibleClient`."""

from __future__ import annotations

import json

import httpx
import openai

from tests.e2e.server.conftest import MODEL, Served

QUESTION = "What is a good name for a cat?"


def test_gateway_reuses_streams_and_passes_the_rest_through(
    gateway: Served, space: dict[str, str]
) -> None:
    client = openai.OpenAI(base_url=gateway.base_url, api_key="unused")
    params = {"model": MODEL, "max_tokens": 24, "temperature": 0, "extra_headers": space}
    kinds, texts = [], []
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(
            messages=[{"role": "user", "content": QUESTION}],
            **params,
        )
        response = raw.parse()
        kinds.append(raw.headers["x-semantic-reuse"])
        assert (response.model_extra or {})["semantic_reuse"]["kind"] == kinds[-1]
        texts.append(response.choices[0].message.content)
    assert kinds == ["miss", "exact"]
    assert texts[0] == texts[1]
    assert texts[0]

    stream = client.chat.completions.create(
        messages=[{"role": "user", "content": QUESTION}], stream=True,
        stream_options={"include_usage": True}, **params,
    )  # fmt: skip
    chunks = list(stream)
    assert (chunks[0].model_extra or {})["semantic_reuse"]["kind"] == "exact"
    pieces = [c.choices[0].delta.content for c in chunks if c.choices]
    pieces = [p for p in pieces if p]
    assert "".join(pieces) == texts[0]
    assert len(pieces) > 1
    assert chunks[-1].usage is not None

    # A request the client cannot reproduce (tools) goes upstream as it is, not reused.
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    body = {"model": MODEL, "messages": [{"role": "user", "content": QUESTION}],
            "max_tokens": 8, "tools": [tool], "tool_choice": "none"}  # fmt: skip
    passed = httpx.post(f"{gateway.base_url}/chat/completions", json=body, headers=space,
                        timeout=300)  # fmt: skip
    assert passed.status_code == 200, passed.text
    assert passed.headers["x-semantic-reuse"] == "miss"
    assert passed.json()["semantic_reuse"]["refused_by"] == "fields"

    unknown = httpx.post(f"{gateway.base_url}/chat/completions",
                         json={**body, "model": "other"}, timeout=60)  # fmt: skip
    assert unknown.status_code == 404
    assert json.loads(unknown.text)["error"]["code"] == "model_not_found"
    models = httpx.get(f"{gateway.base_url}/models").json()
    assert [m["id"] for m in models["data"]] == [MODEL]
    assert "semantic_reuse_server_requests_total" in httpx.get(f"{gateway.url}/metrics").text
