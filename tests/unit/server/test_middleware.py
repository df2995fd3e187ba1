"""`ReuseMiddleware` on a small ASGI app of its own (no model): keys and tenants, the body
checks, the per-request headers reaching the engine's slot, the decision in the response."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from semantic_reuse import HandlerConfig, ReuseEngine
from semantic_reuse.outcome import ReuseInfo, ReuseKind
from semantic_reuse.server.context import ServerContext
from semantic_reuse.server.middleware import ReuseMiddleware
from semantic_reuse.server.slot import RequestSlot, current_slot

KEYS = {"acme": ["key-acme"], "beta": ["key-beta"]}


def _config(**server: Any) -> HandlerConfig:
    return HandlerConfig(
        features={"enable_semantic_reuse": False, "enable_nlp_enhancement": False},
        server={"tenants": KEYS, "admin_key": "key-admin", "max_body_bytes": 2048, **server},
    )


class App:
    """An engine stand-in: records the slot it sees and decides by the prompt."""

    def __init__(self, config: HandlerConfig) -> None:
        self.seen: list[RequestSlot] = []
        self.engine = ReuseEngine(config)

        async def models() -> set[str]:
            return {"m"}

        routes = [Route("/v1/chat/completions", self.chat, methods=["POST"]),
                  Route("/v1/models", self.models, methods=["GET"]),
                  Route("/health", self.health, methods=["GET"])]  # fmt: skip
        self.app = Starlette(routes=routes)
        self.app.state.semantic_reuse = ServerContext(config.server, self.engine, models)
        self.app.add_middleware(ReuseMiddleware)

    async def chat(self, request: Request) -> Response:
        slot = current_slot()
        assert slot is not None
        self.seen.append(slot)
        body = await request.json()  # the body read by the middleware, handed on
        slot.note(ReuseInfo(ReuseKind.EXACT if "again" in body["messages"][-1]["content"]
                            else ReuseKind.MISS, tier="memory"))  # fmt: skip
        slot.completion_tokens = 3
        doc = {"id": "x", "object": "chat.completion", "choices": [{"index": 0}]}
        if not body.get("stream"):
            return JSONResponse(doc)

        async def events() -> AsyncIterator[str]:
            yield ": keep-alive\n\n"
            for _ in range(2):
                yield f"data: {json.dumps(doc)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": []})

    async def health(self, request: Request) -> Response:
        return Response()


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    config = _config()
    config.lifecycle.state_path = tmp_path / "lifecycle.json"  # not the user's own records
    app = App(config)
    yield app
    await app.engine.aclose()


def _client(app: App, key: str | None = "key-acme") -> httpx.AsyncClient:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app.app),
                             base_url="http://test", headers=headers)  # fmt: skip


def _chat(text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}], **extra}


def _error(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if code is not None:
        assert error["code"] == code


async def test_tenant_from_key_and_namespace_header_narrows_it(app: App) -> None:
    async with _client(app) as client:
        await client.post("/v1/chat/completions", json=_chat())
        await client.post("/v1/chat/completions", json=_chat(),
                          headers={"x-semantic-reuse-namespace": "team1"})  # fmt: skip
    async with _client(app, "key-beta") as client:
        await client.post("/v1/chat/completions", json=_chat(),
                          headers={"x-semantic-reuse-namespace": "acme"})  # fmt: skip
    assert [s.namespace for s in app.seen] == ["acme", "acme.team1", "beta.acme"]


async def test_cache_control_and_threshold_reach_the_engine(app: App) -> None:
    async with _client(app) as client:
        await client.post("/v1/chat/completions", json=_chat(),
                          headers={"cache-control": "No-Cache, no-store",
                                   "x-semantic-reuse-threshold": "0.9"})  # fmt: skip
        await client.post("/v1/chat/completions", json=_chat())
    first, second = app.seen
    assert (first.no_cache, first.no_store, first.threshold) == (True, True, 0.9)
    assert (second.no_cache, second.no_store, second.threshold) == (False, False, None)
    assert first.body["messages"][0]["content"] == "hello"


async def test_error_budget_header_reaches_the_engine(app: App) -> None:
    budget = "x-semantic-reuse-max-error-rate"
    async with _client(app) as client:
        await client.post("/v1/chat/completions", json=_chat(), headers={budget: "0.05"})
        await client.post("/v1/chat/completions", json=_chat())
        for bad in ("0", "1", "1.5", "-0.1", "nan", "tight"):
            refused = await client.post("/v1/chat/completions", json=_chat(),
                                        headers={budget: bad})  # fmt: skip
            _error(refused, 400)
            assert refused.json()["error"]["param"] == budget
        both_headers = {budget: "0.1", "x-semantic-reuse-threshold": "0.9"}
        both = await client.post("/v1/chat/completions", json=_chat(), headers=both_headers)
        _error(both, 400)
        assert "exclusive" in both.json()["error"]["message"]
    first, second = app.seen
    assert (first.max_error_rate, first.threshold) == (0.05, None)
    assert second.max_error_rate is None


async def test_ttl_and_tags_headers_reach_the_engine(app: App) -> None:
    async with _client(app) as client:
        await client.post("/v1/chat/completions", json=_chat(),
                          headers={"x-semantic-reuse-ttl": "600",
                                   "x-semantic-reuse-tags": "doc-2, doc-1,,"})  # fmt: skip
        await client.post("/v1/chat/completions", json=_chat())
        for bad in ({"x-semantic-reuse-ttl": "0"}, {"x-semantic-reuse-ttl": "soon"},
                    {"x-semantic-reuse-tags": "x" * 300}):  # fmt: skip
            refused = await client.post("/v1/chat/completions", json=_chat(), headers=bad)
            _error(refused, 400)
            assert next(iter(bad)) in refused.json()["error"]["param"]
    first, second = app.seen
    assert (first.ttl_s, first.tags) == (600.0, ("doc-1", "doc-2"))
    assert (second.ttl_s, second.tags) == (None, ())


async def test_decision_in_header_and_json(app: App) -> None:
    async with _client(app) as client:
        response = await client.post("/v1/chat/completions", json=_chat("again"))
    assert response.headers["x-semantic-reuse"] == "exact"
    assert response.headers["x-semantic-reuse-tier"] == "memory"
    assert response.json()["semantic_reuse"]["kind"] == "exact"
    assert int(response.headers["content-length"]) == len(response.content)


async def test_stream_carries_the_decision_in_its_first_data_event(app: App) -> None:
    async with _client(app) as client:
        response = await client.post("/v1/chat/completions", json=_chat("again", stream=True))
    assert response.headers["x-semantic-reuse"] == "exact"
    events = [e for e in response.text.split("\n\n") if e.startswith("data: {")]
    first, second = (json.loads(e.removeprefix("data: ")) for e in events)
    assert first["semantic_reuse"]["kind"] == "exact"
    assert "semantic_reuse" not in second
    assert response.text.endswith("data: [DONE]\n\n")


async def test_keys(app: App) -> None:
    async with _client(app, None) as client:
        _error(await client.post("/v1/chat/completions", json=_chat()), 401, "invalid_api_key")
        _error(await client.get("/v1/models"), 401, "invalid_api_key")
        assert (await client.get("/health")).status_code == 200  # probes need no key
    async with _client(app, "wrong") as client:
        _error(await client.post("/v1/chat/completions", json=_chat()), 401, "invalid_api_key")
    assert app.seen == []


async def test_bad_bodies_and_models(app: App) -> None:
    async with _client(app) as client:
        post = client.post
        _error(await post("/v1/chat/completions", content=b"{not json"), 400, "invalid_json")
        _error(await post("/v1/chat/completions", content=b"[1, 2]"), 400, "invalid_json")
        _error(await post("/v1/chat/completions", json=_chat("x" * 4000)), 413)
        _error(await post("/v1/chat/completions", json={**_chat(), "model": "gpt-9"}), 404,
               "model_not_found")  # fmt: skip
        _error(await post("/v1/chat/completions", json=_chat(),
                          headers={"x-semantic-reuse-threshold": "1.5"}), 400)  # fmt: skip
        _error(await post("/v1/chat/completions", json=_chat(),
                          headers={"x-semantic-reuse-namespace": "bad ns!"}), 400)  # fmt: skip
    assert app.seen == []


async def test_admin_needs_its_own_key(app: App) -> None:
    async with _client(app) as client:  # a tenant's key is not the admin key
        _error(await client.get("/admin/stats"), 401)
    async with _client(app, "key-admin") as client:
        stats = await client.get("/admin/stats")
        assert stats.status_code == 200
        assert "engine" in stats.json()
        done = await client.post("/admin/invalidate", json={"namespace": "acme"})
        assert done.json() == {"invalidated": {"namespace": "acme"}}
        _error(await client.post("/admin/invalidate", json={"namespace": "a", "x": 1}), 400)
        _error(await client.post("/admin/invalidate", json={"older_than_s": -1}), 400)
        # lifecycle: by tag, by age in one namespace, by epoch
        tagged = {"tag": "doc-1", "namespace": "acme"}
        assert (await client.post("/admin/invalidate", json=tagged)).json() == {
            "invalidated": tagged
        }
        aged = {"older_than_s": 60, "namespace": "acme"}
        assert (await client.post("/admin/invalidate", json=aged)).status_code == 200
        bumped = await client.post("/admin/invalidate",
                                   json={"bump_epoch": True, "namespace": "acme"})  # fmt: skip
        assert bumped.json()["epoch"] == 1
        assert (await app.engine.lifecycle_state("acme")).epoch == 1
        _error(await client.post("/admin/invalidate", json={"tag": "", "namespace": "a"}), 400)
        _error(await client.post("/admin/invalidate",
                                 json={"bump_epoch": False, "namespace": "a"}), 400)  # fmt: skip
        _error(await client.get("/admin/nothing"), 404)


async def test_admin_off_without_admin_key() -> None:
    app = App(_config(admin_key=None))
    try:
        async with _client(app, "key-acme") as client:
            _error(await client.get("/admin/stats"), 403)
    finally:
        await app.engine.aclose()


async def test_no_keys_means_no_key_asked_and_header_namespace() -> None:
    app = App(_config(tenants={}))
    try:
        async with _client(app, None) as client:
            await client.post("/v1/chat/completions", json=_chat())
            await client.post("/v1/chat/completions", json=_chat(),
                              headers={"x-semantic-reuse-namespace": "solo"})  # fmt: skip
        assert [s.namespace for s in app.seen] == ["default", "solo"]
    finally:
        await app.engine.aclose()


def test_the_matched_prompt_stays_on_the_server() -> None:
    from semantic_reuse.outcome import ClauseOutcome
    from semantic_reuse.server.middleware import public_info

    clause = ClauseOutcome("b?", ReuseKind.SEMANTIC, "vector", 0.9, "someone else's b?", "id2")
    info = ReuseInfo(ReuseKind.SEMANTIC, "vector", 0.9, "someone else's question", (clause,),
                     matched_id="id1")  # fmt: skip
    shown = json.dumps(public_info(info))
    assert "someone else" not in shown
    assert json.loads(shown)["matched_id"] == "id1"
