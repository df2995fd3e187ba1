"""The gateway (`serve --upstream`) in front of a small real OpenAI-compatible server started
here (uvicorn on a free loopback port, answering from a table and counting its calls)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from semantic_reuse import HandlerConfig
from semantic_reuse.server.gateway import Gateway, build_gateway_app
from tests.conftest import eventually, free_port

MODEL = "up-model"
ANSWER = "Open Settings, choose Security, then Reset password and follow the link we email you."


class Upstream:
    """An OpenAI-compatible endpoint: one fixed answer, streamed word by word on request."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        routes = [Route("/v1/chat/completions", self.chat, methods=["POST"]),
                  Route("/v1/models", self.models, methods=["GET"])]  # fmt: skip
        self.app = Starlette(routes=routes)

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": MODEL, "object": "model"}]})

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        self.calls.append(body)
        base = {"id": "up", "created": 1, "model": MODEL}
        usage = {"prompt_tokens": 9, "completion_tokens": 15, "total_tokens": 24}
        if not body.get("stream"):
            message = {"role": "assistant", "content": ANSWER}
            return JSONResponse({**base, "object": "chat.completion", "usage": usage,
                                 "choices": [{"index": 0, "message": message,
                                              "finish_reason": "stop"}]})  # fmt: skip

        async def events() -> AsyncIterator[str]:
            for i, word in enumerate(ANSWER.split(" ")):
                piece = word if i == 0 else " " + word
                choice = {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                yield f"data: {json.dumps({**base, 'choices': [choice]})}\n\n"
            end = {"index": 0, "delta": {}, "finish_reason": "stop"}
            yield f"data: {json.dumps({**base, 'choices': [end]})}\n\n"
            yield f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[Upstream, str]]:
    served = Upstream()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(served.app, host="127.0.0.1", port=port,
                                           log_level="warning"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()

    async def started() -> bool:
        await asyncio.sleep(0.05)  # the server thread's own start: polled, bounded
        return bool(server.started)

    asyncio.run(eventually(started, "the upstream server started"))
    yield served, f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
async def gateway(upstream: tuple[Upstream, str], tmp_path: Path) -> AsyncIterator[Gateway]:
    config = HandlerConfig(
        features={"enable_nlp_enhancement": False},
        cache={"qdrant_path": tmp_path / "qdrant"},
        server={"upstream_api_key": "sk-up"},
    )
    gateway = Gateway(upstream[1], [MODEL], config)
    yield gateway
    await gateway.aclose()


def _http(gateway: Gateway) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=build_gateway_app(gateway)),
                             base_url="http://gateway", timeout=60)  # fmt: skip


def _body(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **extra}


async def test_reuse_through_the_gateway(gateway: Gateway, upstream: tuple[Upstream, str]) -> None:
    calls = upstream[0].calls
    before = len(calls)
    async with _http(gateway) as http:
        first = await http.post("/v1/chat/completions", json=_body("How do I reset my password?"))
        assert first.headers["x-semantic-reuse"] == "miss"
        assert first.json()["choices"][0]["message"]["content"] == ANSWER
        assert calls[-1]["stream"] is True  # the client streams from upstream
        again = await http.post("/v1/chat/completions", json=_body("How do I reset my password?"))
        assert again.headers["x-semantic-reuse"] == "exact"
        assert again.json()["semantic_reuse"]["kind"] == "exact"
        assert again.json()["usage"]["completion_tokens"] == 15
        assert len(calls) == before + 1

        stream = await http.post(
            "/v1/chat/completions",
            json=_body(
                "How do I reset my password?", stream=True, stream_options={"include_usage": True}
            ),
        )
        events = [e.removeprefix("data: ") for e in stream.text.split("\n\n") if e]
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        assert chunks[0]["semantic_reuse"]["kind"] == "exact"
        pieces = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
        assert "".join(p for p in pieces if p) == ANSWER
        assert sum(1 for p in pieces if p) > 2  # in chunks, like a generated answer
        assert chunks[-1]["usage"]["completion_tokens"] == 15
        assert len(calls) == before + 1

        fresh = await http.post("/v1/chat/completions", json=_body(
            "How do I reset my password?"), headers={"cache-control": "no-cache"})  # fmt: skip
        assert fresh.headers["x-semantic-reuse"] == "miss"
        assert len(calls) == before + 2


async def test_no_store_and_pass_through(gateway: Gateway, upstream: tuple[Upstream, str]) -> None:
    calls = upstream[0].calls
    async with _http(gateway) as http:
        no_store = {"cache-control": "no-store"}
        one = await http.post("/v1/chat/completions", json=_body("What is Redis?"),
                              headers=no_store)  # fmt: skip
        assert one.json()["semantic_reuse"]["refused_by"] == "no-store"
        assert "stream" not in calls[-1]  # passed upstream as it came
        two = await http.post("/v1/chat/completions", json=_body("What is Redis?"))
        assert two.headers["x-semantic-reuse"] == "miss"  # the first was not stored

        tool = {"type": "function", "function": {"name": "f", "parameters": {}}}
        before = len(calls)
        for _ in range(2):
            passed = await http.post("/v1/chat/completions", json=_body("What is Redis?",
                                                                        tools=[tool]))  # fmt: skip
            assert passed.status_code == 200
            assert passed.json()["semantic_reuse"]["refused_by"] == "fields"
        assert calls[-1]["tools"] == [tool]
        assert len(calls) == before + 2  # never reused


async def test_upstream_down_is_a_502_in_the_openai_shape(tmp_path: Path) -> None:
    config = HandlerConfig(features={"enable_nlp_enhancement": False,
                                     "enable_semantic_reuse": False},
                           cache={"qdrant_path": tmp_path / "q"})  # fmt: skip
    gateway = Gateway(f"http://127.0.0.1:{free_port()}/v1", [MODEL], config)
    try:
        async with _http(gateway) as http:
            for body in (_body("hi"), _body("hi", tools=[])):
                response = await http.post("/v1/chat/completions", json=body)
                assert response.status_code == 502
                assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    finally:
        await gateway.aclose()
