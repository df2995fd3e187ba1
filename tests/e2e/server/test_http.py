"""The HTTP surface with httpx: SSE framing, errors in the OpenAI shape (never a 500),
tools and response formats in the key, the model list, health, metrics and admin."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.e2e.server.conftest import ADMIN_KEY, KEYS, MAX_BODY, MODEL, Served

ACME = {"authorization": f"Bearer {KEYS['acme']}"}


def _body(text: str = "What is the capital of France?", **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}],
            "max_tokens": 12, "temperature": 0, **extra}  # fmt: skip


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert {"message", "type", "param", "code"} <= set(error)
    assert isinstance(error["message"], str)
    assert error["message"]
    return dict(error)


def test_sse_framing(served: Served, space: dict[str, str]) -> None:
    headers = {**ACME, **space}
    with httpx.Client(base_url=served.url, headers=headers, timeout=300) as http:
        for expected in ("miss", "exact"):
            body = _body(stream=True, stream_options={"include_usage": True})
            with http.stream("POST", "/v1/chat/completions", json=body) as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                assert response.headers["x-semantic-reuse"] == expected
                raw = "".join(response.iter_text())
            events = raw.split("\n\n")
            assert events[-1] == ""
            assert events[-2] == "data: [DONE]"
            chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
            assert all(e.startswith("data: ") for e in events[:-1])
            assert chunks[0]["semantic_reuse"]["kind"] == expected
            assert chunks[-1]["choices"] == []
            assert chunks[-1]["usage"]["completion_tokens"] > 0


def test_errors_are_openai_shaped(served: Served) -> None:
    with httpx.Client(base_url=served.url, headers=ACME, timeout=300) as http:
        post = http.post
        assert _error(post("/v1/chat/completions", content=b'{"model": '), 400)["code"] == (
            "invalid_json"
        )
        _error(post("/v1/chat/completions", json=_body("x" * (MAX_BODY + 1))), 413)
        error = _error(post("/v1/chat/completions", json={**_body(), "model": "gpt-9"}), 404)
        assert error["code"] == "model_not_found"
        _error(post("/v1/chat/completions", json={"model": MODEL, "messages": "hi"}), 400)
        _error(post("/v1/chat/completions", json=_body(max_tokens=-5)), 400)
        _error(http.post("/v1/chat/completions", json=_body(), headers={"authorization": ""}),
               401)  # fmt: skip
        _error(post("/v1/completions", json={"model": MODEL, "prompt": "x"},
                    headers={"authorization": "Bearer nope"}), 401)  # fmt: skip
        _error(http.get("/v1/models", headers={"authorization": "Bearer nope"}), 401)
        models = http.get("/v1/models").json()
        assert [m["id"] for m in models["data"]] == [MODEL]
        assert http.get("/health").status_code == 200


def test_tools_and_formats_are_part_of_the_key(served: Served, space: dict[str, str]) -> None:
    def tool(name: str) -> list[dict[str, Any]]:
        function = {"name": name, "description": "looks it up",
                    "parameters": {"type": "object", "properties": {}}}  # fmt: skip
        return [{"type": "function", "function": function}]

    def kind(**extra: Any) -> str:
        response = http.post("/v1/chat/completions", json=_body(**extra))
        assert response.status_code == 200, response.text
        return response.headers["x-semantic-reuse"]

    with httpx.Client(base_url=served.url, headers={**ACME, **space}, timeout=300) as http:
        assert kind(tools=tool("lookup"), tool_choice="none") == "miss"
        assert kind(tools=tool("lookup"), tool_choice="none") == "exact"
        assert kind(tools=tool("search"), tool_choice="none") == "miss"
        assert kind() == "miss"  # no tools: not the tool request's answer
        assert kind(response_format={"type": "json_object"}) == "miss"
        assert kind(response_format={"type": "json_object"}) == "exact"


def test_metrics_and_admin(served: Served, space: dict[str, str]) -> None:
    namespace = f"acme.{space['x-semantic-reuse-namespace']}"
    with httpx.Client(base_url=served.url, headers={**ACME, **space}, timeout=300) as http:
        for _ in range(2):
            assert http.post("/v1/chat/completions", json=_body("Why is the sky blue?")).is_success
        metrics = http.get("/metrics", headers={"authorization": ""}).text
        assert (f'semantic_reuse_server_requests_total{{endpoint="chat",kind="exact",'
                f'namespace="{namespace}",tier="memory"}} 1.0') in metrics  # fmt: skip
        assert f'semantic_reuse_server_saved_tokens_total{{namespace="{namespace}"}}' in metrics
        assert "semantic_reuse_requests_total" in metrics  # the engine's own
        assert "vllm:" in metrics  # and vLLM's
        _error(http.get("/admin/stats"), 401)  # a tenant key is not the admin key
        admin = {"authorization": f"Bearer {ADMIN_KEY}"}
        stats = http.get("/admin/stats", headers=admin)
        assert stats.status_code == 200
        assert stats.json()["server"]["counters"]["requests_total"]
        cleared = http.post("/admin/invalidate", json={"namespace": namespace}, headers=admin)
        assert cleared.status_code == 200
        again = http.post("/v1/chat/completions", json=_body("Why is the sky blue?"))
        assert again.headers["x-semantic-reuse"] == "miss"
        hash_id = again.json()["semantic_reuse"]["hash_id"]
        assert http.post("/v1/chat/completions", json=_body("Why is the sky blue?")).headers[
            "x-semantic-reuse"] == "exact"  # fmt: skip
        one = {"hash_id": hash_id, "namespace": namespace}
        assert http.post("/admin/invalidate", json=one, headers=admin).status_code == 200
        assert http.post("/v1/chat/completions", json=_body("Why is the sky blue?")).headers[
            "x-semantic-reuse"] == "miss"  # fmt: skip
        _error(http.post("/admin/invalidate", json={"older_than_s": "x"}, headers=admin), 400)


def test_a_tool_call_is_replayed_only_to_the_same_tools(
    served: Served, space: dict[str, str]
) -> None:
    """`tool_choice: "required"` makes even the small model call a tool (vLLM constrains the
    output); the same request gets the same call back, other tools get a call of their own."""

    def call(name: str) -> tuple[str, dict[str, Any]]:
        function = {
            "name": name,
            "description": "looks it up",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        }
        body = _body(tools=[{"type": "function", "function": function}],
                     tool_choice="required", max_tokens=64)  # fmt: skip
        response = http.post("/v1/chat/completions", json=body)
        assert response.status_code == 200, response.text
        calls = response.json()["choices"][0]["message"]["tool_calls"]
        return response.headers["x-semantic-reuse"], calls[0]["function"]

    with httpx.Client(base_url=served.url, headers={**ACME, **space}, timeout=300) as http:
        kind, first = call("lookup")
        assert (kind, first["name"]) == ("miss", "lookup")
        kind, again = call("lookup")
        assert (kind, again) == ("exact", first)
        kind, other = call("search")
        assert (kind, other["name"]) == ("miss", "search")
