"""The gateway: the server's HTTP surface in front of any OpenAI-compatible endpoint.

`semantic-reuse serve --upstream URL` answers ``/v1/chat/completions`` and
``/v1/completions`` through `OpenAICompatibleClient` (one per served model, sharing one
`ReuseEngine`), and ``/v1/models``, ``/health`` and ``/metrics`` itself. A request the
client cannot reproduce faithfully (tools, response formats, logprobs, ``n > 1``, content
other than text: any body field beyond the prompt, ``max_tokens``, ``temperature``,
``top_p``, ``seed`` and ``stop``) is passed upstream unchanged and not reused.
``no-cache`` forgets the stored answer and generates afresh (which is stored); ``no-store``
serves a stored answer when there is one, else passes the request upstream.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Collection
from typing import Any

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from semantic_reuse.backend import PromptInput
from semantic_reuse.clients.base import GenerationParams
from semantic_reuse.clients.openai_compat import OpenAICompatibleClient
from semantic_reuse.config import HandlerConfig
from semantic_reuse.engine import ReuseEngine
from semantic_reuse.errors import SemanticReuseError
from semantic_reuse.options import ReuseOptions
from semantic_reuse.outcome import ReuseInfo
from semantic_reuse.server.context import ServerContext, register_metrics
from semantic_reuse.server.errors import HTTPError
from semantic_reuse.server.middleware import ReuseMiddleware
from semantic_reuse.server.slot import CHAT, RequestSlot, current_slot

#: Body fields the client reproduces; any other one sends the request upstream as it is.
_REUSABLE = frozenset(
    {"model", "messages", "prompt", "stream", "stream_options", "user", "max_tokens",
     "max_completion_tokens", "temperature", "top_p", "seed", "stop", "n"}
)  # fmt: skip
_ROLES = frozenset({"system", "user", "assistant", "developer"})
_WORDS = re.compile(r"\S+\s*|\s+")
HIT_CHUNK_WORDS = 4


class Gateway:
    """The clients, the upstream pass-through and the response shapes."""

    def __init__(self, upstream: str, models: list[str], config: HandlerConfig) -> None:
        self.upstream = upstream.rstrip("/")
        self.models = models
        self.engine = ReuseEngine.from_config(config)
        key = config.server.upstream_api_key
        self._key = key.get_secret_value() if key is not None else "EMPTY"
        self.clients = {
            m: OpenAICompatibleClient(self.upstream, m, self._key, engine=self.engine)
            for m in models
        }
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(600.0, connect=10.0))
        home = self.clients[models[0]].home()
        self.registry = CollectorRegistry()
        self.context = ServerContext(config.server, self.engine, self._model_names, home.run)
        register_metrics(self.context, self.registry)

    async def _model_names(self) -> Collection[str]:
        return self.models

    async def aclose(self) -> None:
        await self._http.aclose()
        home = self.clients[self.models[0]].home()
        await home.run(self.engine.aclose())
        self.engine.runner.close()

    # -- endpoints ---------------------------------------------------------------------------

    async def completions(self, request: Request) -> Response:
        slot = current_slot()
        assert slot is not None  # the middleware made it
        client = self.clients[slot.body.get("model") or self.models[0]]
        try:
            plan = _plan(slot)
        except SemanticReuseError:
            plan = None
        if plan is None:
            slot.bypass("fields")
            return await self._pass_through(request.url.path, slot)
        prompt, params = plan
        options = ReuseOptions(
            namespace=slot.namespace, threshold=slot.threshold, ttl_s=slot.ttl_s, tags=slot.tags,
            max_error_rate=slot.max_error_rate,
        )  # fmt: skip
        if slot.no_store:
            hit = await self.context.run(self.engine.lookup(prompt, options=client.scoped(
                options, params)))  # fmt: skip
            if hit is None:
                slot.bypass("no-store")
                return await self._pass_through(request.url.path, slot)
            events = _hit_events(hit.text, hit.info, hit.answer.finish_reason,
                                 dict(hit.answer.usage))  # fmt: skip
        else:
            if slot.no_cache:
                await self.context.run(
                    self.engine.invalidate(prompt, options=client.scoped(options, params))
                )
                options = options.replace(reuse=False)
            events = client.home().iterate(_events(client, prompt, params, options))
        try:  # the decision: the header and the first chunk carry it
            first = await anext(events)
        except (httpx.HTTPError, OSError, ImportError) as exc:
            raise HTTPError(502, "The upstream endpoint failed.") from exc
        except Exception as exc:
            if type(exc).__module__.startswith("openai"):
                raise HTTPError(502, "The upstream endpoint failed.") from exc
            raise
        assert isinstance(first, ReuseInfo)
        slot.note(first)
        shape = _Shape(slot, client.model_name)
        if slot.body.get("stream"):
            return StreamingResponse(shape.sse(events), media_type="text/event-stream")
        return JSONResponse(await shape.whole(events))

    async def list_models(self, request: Request) -> Response:
        created = int(time.time())
        data = [{"id": m, "object": "model", "created": created, "owned_by": "semantic-reuse"}
                for m in self.models]  # fmt: skip
        return JSONResponse({"object": "list", "data": data})

    async def health(self, request: Request) -> Response:
        return Response(status_code=200)

    async def metrics(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    async def _pass_through(self, path: str, slot: RequestSlot) -> Response:
        url = self.upstream + path.removeprefix("/v1")
        headers = {"authorization": f"Bearer {self._key}", "content-type": "application/json"}
        try:
            upstream = await self._http.send(
                self._http.build_request("POST", url, json=dict(slot.body), headers=headers),
                stream=True,
            )
        except httpx.HTTPError:
            raise HTTPError(502, "The upstream endpoint could not be reached.") from None
        media = upstream.headers.get("content-type", "application/json")

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in upstream.aiter_raw():
                    yield chunk
            finally:
                await upstream.aclose()

        return StreamingResponse(body(), status_code=upstream.status_code, media_type=media)


def _plan(slot: RequestSlot) -> tuple[PromptInput, GenerationParams] | None:
    """The client's prompt and parameters, or None when the request needs more."""
    body = slot.body
    if set(body) - _REUSABLE or body.get("n", 1) != 1:
        return None
    stop = body.get("stop")
    params = GenerationParams(
        max_tokens=body.get("max_completion_tokens") or body.get("max_tokens"),
        temperature=body.get("temperature"), top_p=body.get("top_p"), seed=body.get("seed"),
        stop=(stop,) if isinstance(stop, str) else tuple(stop or ()),
    )  # fmt: skip
    if slot.endpoint == CHAT:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return None
        for m in messages:
            if not isinstance(m, dict) or set(m) - {"role", "content", "name"}:
                return None
            if m.get("role") not in _ROLES or not isinstance(m.get("content"), str):
                return None
        return messages, params
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    return (prompt, params) if isinstance(prompt, str) and prompt.strip() else None


async def _events(
    client: OpenAICompatibleClient, prompt: PromptInput, params: GenerationParams,
    options: ReuseOptions,
) -> AsyncIterator[Any]:  # fmt: skip
    """On the client's home loop: the decision, text deltas, then (finish reason, usage)."""
    stream = client.reuse_stream(prompt, params, options)
    pending: list[str] = []
    async for delta in stream:
        if stream.decision is not None and not pending:
            pending.append("")
            yield stream.decision.info
        yield from_hit(delta) if stream.decision and stream.decision.answer else delta
    result = stream.result
    if not pending:
        yield result.info
    answer = result.answer
    yield (answer.finish_reason or "stop", dict(answer.usage), result.info)


def from_hit(text: str) -> list[str]:
    """A reused answer in chunks of a few words, as a generated one would stream."""
    words = _WORDS.findall(text)
    return ["".join(words[i : i + HIT_CHUNK_WORDS]) for i in range(0, len(words), HIT_CHUNK_WORDS)]


async def _hit_events(
    text: str, info: ReuseInfo, finish: str | None, usage: dict[str, int]
) -> AsyncIterator[Any]:
    yield info
    yield from_hit(text)
    yield (finish or "stop", usage, info)


class _Shape:
    """OpenAI response objects for one request: a whole response or SSE chunks."""

    def __init__(self, slot: RequestSlot, model: str) -> None:
        self.slot = slot
        self.model = model
        chat = slot.endpoint == CHAT
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        self.object = "chat.completion" if chat else "text_completion"
        self.created = int(time.time())

    def _base(self, suffix: str = "") -> dict[str, Any]:
        return {"id": self.id, "object": self.object + suffix, "created": self.created,
                "model": self.model}  # fmt: skip

    def _choice(self, text: str | None, finish: str | None, *, delta: bool) -> dict[str, Any]:
        if self.slot.endpoint != CHAT:
            return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
        key = "delta" if delta else "message"
        content: dict[str, Any] = {} if text is None else {"content": text}
        if not delta:
            content = {"role": "assistant", "content": text or ""}
        return {"index": 0, key: content, "logprobs": None, "finish_reason": finish}

    def _usage(self, usage: dict[str, int], text: str) -> dict[str, int]:
        prompt = int(usage.get("prompt_tokens", 0))
        completion = int(usage.get("completion_tokens", 0)) or len(text.split())
        self.slot.completion_tokens = completion
        return {"prompt_tokens": prompt, "completion_tokens": completion,
                "total_tokens": prompt + completion}  # fmt: skip

    async def whole(self, events: AsyncIterator[Any]) -> dict[str, Any]:
        parts: list[str] = []
        async for event in events:
            if isinstance(event, tuple):
                finish, usage, info = event
                self.slot.note(info)
                text = "".join(parts)
                return {**self._base(), "choices": [self._choice(text, finish, delta=False)],
                        "usage": self._usage(usage, text)}  # fmt: skip
            parts.extend(event if isinstance(event, list) else [event])
        raise RuntimeError("the stream ended without its result")

    async def sse(self, events: AsyncIterator[Any]) -> AsyncIterator[str]:
        suffix = ".chunk" if self.slot.endpoint == CHAT else ""
        parts: list[str] = []
        if self.slot.endpoint == CHAT:
            first = {**self._base(suffix), "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": ""},
                 "logprobs": None, "finish_reason": None}]}  # fmt: skip
            yield _event(first)
        async for event in events:
            if isinstance(event, tuple):
                finish, usage, info = event
                self.slot.note(info)
                yield _event({**self._base(suffix), "choices": [
                    self._choice(None if suffix else "", finish, delta=True)]})  # fmt: skip
                options = self.slot.body.get("stream_options") or {}
                usage_doc = self._usage(usage, "".join(parts))
                if isinstance(options, dict) and options.get("include_usage"):
                    yield _event({**self._base(suffix), "choices": [], "usage": usage_doc})
                yield "data: [DONE]\n\n"
                return
            for piece in event if isinstance(event, list) else [event]:
                parts.append(piece)
                yield _event({**self._base(suffix), "choices": [
                    self._choice(piece, None, delta=True)]})  # fmt: skip


def _event(document: dict[str, Any]) -> str:
    return f"data: {json.dumps(document)}\n\n"


def build_gateway_app(gateway: Gateway) -> Starlette:
    routes = [
        Route("/v1/chat/completions", gateway.completions, methods=["POST"]),
        Route("/v1/completions", gateway.completions, methods=["POST"]),
        Route("/v1/models", gateway.list_models, methods=["GET"]),
        Route("/health", gateway.health, methods=["GET"]),
        Route("/metrics", gateway.metrics, methods=["GET"]),
    ]

    async def error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPError)
        return Response(exc.body(), status_code=exc.status, media_type="application/json")

    app = Starlette(routes=routes, exception_handlers={HTTPError: error})
    app.state.semantic_reuse = gateway.context
    app.add_middleware(ReuseMiddleware)
    return app
