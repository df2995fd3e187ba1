"""The admin endpoints, behind `server.admin_key` (a bearer key of its own):

- ``GET /admin/stats``: the reuse engine's `stats()` and the server's metrics;
- ``POST /admin/invalidate`` with one of ``{"namespace": NS}`` (forget a tenant's answers),
  ``{"hash_id": ID, "namespace": NS}`` (one answer: the ``hash_id`` of the reuse info),
  ``{"older_than_s": SECONDS}`` (answers stored longer ago than that; with ``"namespace"``:
  that namespace's, in every tier and process), ``{"tag": T, "namespace": NS}`` (the answers
  stored with tag T) or ``{"bump_epoch": true, "namespace": NS}`` (every answer of the
  namespace at once; the reply names the new epoch). docs/operations.md, Answer lifecycle.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from semantic_reuse.errors import SemanticReuseError
from semantic_reuse.request import validate_namespace
from semantic_reuse.server.context import ServerContext
from semantic_reuse.server.errors import HTTPError, send_error

PREFIX = "/admin/"
_MAX_BODY = 64 * 1024


async def handle_admin(context: ServerContext, scope: Scope, receive: Receive, send: Send) -> None:
    try:
        context.tenants.check_admin(Headers(scope=scope))
        route = (scope["method"], scope["path"])
        if route == ("GET", "/admin/stats"):
            result: dict[str, Any] = {
                "engine": context.engine.stats(),
                "server": context.metrics.metrics.snapshot(),
            }
        elif route == ("POST", "/admin/invalidate"):
            result = await _invalidate(context, await read_json(receive, _MAX_BODY))
        else:
            raise HTTPError(404, f"No admin endpoint {scope['method']} {scope['path']}.")
    except HTTPError as error:
        context.metrics.rejected(error.status)
        await send_error(send, error)
        return
    body = json.dumps(result, default=str).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})  # fmt: skip


async def _invalidate(context: ServerContext, data: dict[str, Any]) -> dict[str, Any]:
    engine = context.engine
    keys = set(data)
    try:
        if "namespace" in data:
            validate_namespace(data["namespace"])
        if keys == {"namespace"}:
            await context.run(engine.clear(data["namespace"]))
        elif keys == {"hash_id", "namespace"}:
            await context.run(engine.invalidate_id(data["hash_id"], data["namespace"]))
        elif keys == {"older_than_s"}:
            await context.run(engine.forget_older_than(data["older_than_s"]))
        elif keys == {"older_than_s", "namespace"}:
            await context.run(
                engine.forget_older_than(data["older_than_s"], namespace=data["namespace"])
            )
        elif keys == {"tag", "namespace"}:
            await context.run(engine.invalidate_tag(data["tag"], namespace=data["namespace"]))
        elif keys == {"bump_epoch", "namespace"} and data["bump_epoch"] is True:
            epoch = await context.run(engine.bump_epoch(data["namespace"]))
            return {"invalidated": data, "epoch": epoch}
        else:
            raise HTTPError(
                400,
                "Give one of {namespace}, {hash_id, namespace}, {older_than_s[, namespace]}, "
                "{tag, namespace} or {bump_epoch: true, namespace}.",
            )
    except SemanticReuseError as exc:
        raise HTTPError(400, str(exc)) from None
    return {"invalidated": data}


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body; 413 past `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HTTPError(400, "The client went away before the body was read.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, f"The request body is larger than {limit} bytes.",
                            code="request_too_large")  # fmt: skip
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def read_json(receive: Receive, limit: int) -> dict[str, Any]:
    """The body as a JSON object; 400 when it is not one."""
    return parse_json(await read_body(receive, limit))


def parse_json(body: bytes) -> dict[str, Any]:
    """`body` as a JSON object; 400 when it is not one."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise HTTPError(400, "We could not parse the JSON body of your request.",
                        code="invalid_json") from None  # fmt: skip
    if not isinstance(data, dict):
        raise HTTPError(400, "The JSON body must be an object.", code="invalid_json")
    return data
