"""`ReuseMiddleware`: the HTTP side of reuse, as pure ASGI (the app runs in the same task).

For every HTTP request: the caller's key and tenant (401 in the OpenAI error shape), the
admin endpoints, and for ``POST /v1/chat/completions`` and ``/v1/completions``: the body,
read once (413 past `server.max_body_bytes`, 400 when it is not a JSON object, 404 for a
model the server does not serve), ``Cache-Control``, the threshold or error budget header,
all into a `RequestSlot` that the engine reads and fills. The response then carries the decision:
a header (`server.info_header`: the kind, plus ``-tier`` and ``-similarity``) and a field
of the JSON (`server.info_field`; in a stream, of the first chunk), which the `openai` SDK
keeps in ``model_extra``. For a stream, ``http.response.start`` is held back until the
first body chunk, when the engine has decided.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from semantic_reuse.config import ServerConfig
from semantic_reuse.options import check_ttl, validate_tags
from semantic_reuse.outcome import ReuseInfo
from semantic_reuse.server.admin import PREFIX as ADMIN_PREFIX
from semantic_reuse.server.admin import handle_admin, parse_json, read_body
from semantic_reuse.server.context import ServerContext, context_of
from semantic_reuse.server.errors import HTTPError, send_error
from semantic_reuse.server.slot import CHAT, COMPLETIONS, CURRENT, RequestSlot

REUSE_PATHS = {"/v1/chat/completions": CHAT, "/v1/completions": COMPLETIONS}
#: Paths that need no key even when keys are configured (probes and scrapes).
PUBLIC_PATHS = frozenset({"/health", "/ping", "/version", "/metrics", "/load"})


class ReuseMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") == "OPTIONS":
            await self.app(scope, receive, send)
            return
        context = context_of(scope["app"])
        path = scope["path"].removeprefix(scope.get("root_path", ""))
        if path.startswith(ADMIN_PREFIX):
            await handle_admin(context, scope, receive, send)
            return
        if path in PUBLIC_PATHS or path.startswith("/metrics/"):
            await self.app(scope, receive, send)
            return
        try:
            slot, body = await self._slot(context, scope, receive, path)
        except HTTPError as error:
            context.metrics.rejected(error.status)
            await send_error(send, error)
            return
        token = CURRENT.set(slot)
        try:
            await self.app(scope, _replay(body, receive), _Responder(send, slot, context))
        finally:
            CURRENT.reset(token)
            if slot.reusable:
                context.metrics.request(slot)

    async def _slot(
        self, context: ServerContext, scope: Scope, receive: Receive, path: str
    ) -> tuple[RequestSlot, bytes | None]:
        headers = Headers(scope=scope)
        tenant = context.tenants.tenant(headers)
        slot = RequestSlot(context.tenants.namespace(tenant, headers))
        endpoint = REUSE_PATHS.get(path)
        if endpoint is None or scope["method"] != "POST":
            return slot, None
        body = await read_body(receive, context.config.max_body_bytes)
        data = parse_json(body)
        model = data.get("model")
        if isinstance(model, str) and model not in await _models(context):
            raise HTTPError(404, f"The model `{model}` does not exist.",
                            code="model_not_found", param="model")  # fmt: skip
        slot.endpoint, slot.body = endpoint, data
        directives = {
            d.strip().lower() for d in headers.get("cache-control", "").split(",") if d.strip()
        }
        slot.no_cache, slot.no_store = "no-cache" in directives, "no-store" in directives
        slot.threshold, slot.max_error_rate = _rule(headers, context.config)
        slot.ttl_s, slot.tags = _lifecycle(headers, context.config)
        return slot, body  # handed on as the client sent it


async def _models(context: ServerContext) -> Collection[str]:
    return await context.models()


def _rule(headers: Headers, config: ServerConfig) -> tuple[float | None, float | None]:
    """The request's (threshold, error budget) from their headers; 400 naming a bad one, or
    both (a threshold selects the cosine rule, a budget the verifier's)."""
    threshold = _number(headers, config.threshold_header, lambda v: 0.0 <= v <= 1.0, "[0, 1]")
    budget = _number(headers, config.max_error_rate_header, lambda v: 0.0 < v < 1.0, "(0, 1)")
    if threshold is not None and budget is not None:
        raise HTTPError(400, f"{config.threshold_header} and {config.max_error_rate_header} "
                        "are exclusive: send one.", param=config.max_error_rate_header)  # fmt: skip
    return threshold, budget


def _number(
    headers: Headers, header: str, within: Callable[[float], bool], bounds: str
) -> float | None:
    value = headers.get(header)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if math.isnan(number) or not within(number):
        raise HTTPError(400, f"{header} must be a number in {bounds}.", param=header)
    return number


def _lifecycle(headers: Headers, config: ServerConfig) -> tuple[float | None, tuple[str, ...]]:
    """The stored answer's lifetime and tags, from their headers; 400 naming a bad one."""
    ttl, tags = headers.get(config.ttl_header), headers.get(config.tags_header)
    try:
        ttl_s = None if ttl is None else check_ttl(float(ttl), config.ttl_header)
    except (ValueError, TypeError):
        raise HTTPError(400, f"{config.ttl_header} must be a number of seconds > 0.",
                        param=config.ttl_header) from None  # fmt: skip
    try:
        parts = [] if tags is None else [t.strip() for t in tags.split(",") if t.strip()]
        return ttl_s, validate_tags(parts, config.tags_header)
    except (ValueError, TypeError) as exc:
        raise HTTPError(400, str(exc), param=config.tags_header) from None


def _replay(body: bytes | None, receive: Receive) -> Receive:
    """`receive` that hands the app the body read already, then the client's messages."""
    if body is None:
        return receive
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def info_headers(prefix: str, info: ReuseInfo) -> list[tuple[str, str]]:
    headers = [(prefix, info.kind.value)]
    if info.tier:
        headers.append((f"{prefix}-tier", info.tier))
    if info.similarity is not None:
        headers.append((f"{prefix}-similarity", f"{info.similarity:.4f}"))
    return headers


def public_info(info: ReuseInfo) -> dict[str, Any]:
    """The reuse info a client sees: all of it but the matched prompts, which are other
    requests' questions (of the same tenant, maybe of other users)."""
    data = info.to_dict()
    data.pop("matched_prompt", None)
    for clause in data["clauses"]:
        clause.pop("matched_prompt", None)
    return data


def with_info(document: Any, field: str, info: ReuseInfo) -> Any:
    """A response (or chunk) object with the reuse info added, when it is one."""
    if isinstance(document, dict) and "choices" in document:
        document[field] = public_info(info)
    return document


class _Responder:
    """The `send` of one request: adds the reuse decision to the response."""

    def __init__(self, send: Send, slot: RequestSlot, context: ServerContext) -> None:
        self._send = send
        self._slot = slot
        self._config = context.config
        self._start: Message | None = None
        self._json: list[bytes] | None = None
        self._injected = False
        self._events = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start" and self._slot.reusable:
            self._start = message  # held until the first body chunk: the engine has decided
            return
        if message["type"] != "http.response.body":
            await self._send(message)
            return
        start = self._start
        if start is not None:
            content_type = Headers(raw=start["headers"]).get("content-type", "")
            self._events = content_type.startswith("text/event-stream")
            if start["status"] == 200 and content_type.startswith("application/json"):
                self._json = (self._json or []) + [message.get("body", b"")]
                if message.get("more_body", False):
                    return
                body = self._inject_json(b"".join(self._json))
                await self._flush(start, body)
                await self._send({"type": "http.response.body", "body": body})
                return
            await self._flush(start, None)
        body = message.get("body", b"")
        if self._events and not self._injected:
            body = self._inject_event(body)
        await self._send({**message, "body": body})

    async def _flush(self, start: Message, body: bytes | None) -> None:
        headers = MutableHeaders(raw=list(start["headers"]))
        info = self._slot.info
        if info is not None:
            for name, value in info_headers(self._config.info_header, info):
                headers[name] = value
        if body is not None:
            headers["content-length"] = str(len(body))
        self._start = None
        await self._send({**start, "headers": headers.raw})

    def _inject_json(self, body: bytes) -> bytes:
        info = self._slot.info
        if info is None:
            return body
        try:
            document = json.loads(body)
        except ValueError:
            return body
        return json.dumps(with_info(document, self._config.info_field, info)).encode()

    def _inject_event(self, chunk: bytes) -> bytes:
        """The first ``data:`` event of the stream gets the info (comments are skipped)."""
        info = self._slot.info
        head, sep, rest = chunk.partition(b"\n\n")
        if info is None or not sep or not head.startswith(b"data: {"):
            return chunk
        try:
            document = json.loads(head[len(b"data: ") :])
        except ValueError:
            return chunk
        self._injected = True
        event = json.dumps(with_info(document, self._config.info_field, info)).encode()
        return b"data: " + event + sep + rest
