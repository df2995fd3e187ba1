"""`semantic-reuse serve`: parse the flags, then run the engine server or the gateway.

Engine mode is vLLM's own launcher with one part changed: `run_server_worker` builds a
plain `AsyncLLM`; here `ServedAsyncLLM.from_vllm_config` builds the engine from the same
parsed arguments, and vLLM's `build_and_serve(engine_client, ...)` (its app, its state,
its uvicorn) serves it. `ReuseMiddleware` joins through vLLM's own ``--middleware`` list.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Sequence
from typing import Any

from pydantic import SecretStr

from semantic_reuse._log import logger
from semantic_reuse.config import HandlerConfig
from semantic_reuse.redaction import redact_url

MIDDLEWARE = "semantic_reuse.server.middleware.ReuseMiddleware"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
DEFAULT_PORT = 8000


def main(argv: Sequence[str]) -> int:
    """Run the server until it is stopped (SIGINT/SIGTERM)."""
    argv = list(argv)
    if any(a == "--upstream" or a.startswith("--upstream=") for a in argv):
        return run_gateway(argv)
    return run_engine(argv)


def fold_api_keys(config: HandlerConfig, keys: Sequence[str] | None) -> None:
    """`--api-key` (and ``$VLLM_API_KEY``) as keys of the tenant ``default``: the server's
    own check answers in the OpenAI error shape (vLLM's answers ``{"error": "Unauthorized"}``)."""
    given = [k for k in (keys or []) if k]
    if os.environ.get("VLLM_API_KEY"):
        given.append(os.environ.pop("VLLM_API_KEY"))
    if given:
        tenants = dict(config.server.tenants)
        tenants["default"] = [*tenants.get("default", []), *(SecretStr(k) for k in given)]
        config.server.tenants = tenants


def loopback_unless_keys(config: HandlerConfig, host: str | None) -> str | None:
    """The host to bind: as asked when keys are configured, else loopback only."""
    if config.server.tenants:
        return host
    if host not in LOOPBACK:
        logger.warning(
            "no API keys configured (server.tenants or --api-key): listening on 127.0.0.1 "
            "only, not on {}", host or "every interface",
        )  # fmt: skip
        return "127.0.0.1"
    logger.info("no API keys configured (server.tenants or --api-key): loopback only, no key")
    return host


# -- engine mode -----------------------------------------------------------------------------


def run_engine(argv: list[str]) -> int:
    import uvloop
    from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
    from vllm.entrypoints.serve.utils.api_utils import cli_env_setup
    from vllm.logger import configure_logging_from_args
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    cli_env_setup()  # type: ignore[no-untyped-call]
    parser = make_arg_parser(FlexibleArgumentParser(  # type: ignore[no-untyped-call]
        prog="semantic-reuse serve",
        description="vLLM's OpenAI-compatible server with reuse (the flags of `vllm serve`); "
        "or, with --upstream URL, a gateway in front of any OpenAI-compatible endpoint.",
    ))  # fmt: skip
    args = parser.parse_args(argv)
    _engine_defaults(args, parser.parse_args([]))
    if getattr(args, "headless", False) or (args.api_server_count or 1) > 1 or args.grpc:
        parser.error("semantic-reuse serve runs one API server: no --headless, --grpc or "
                     "--api-server-count above 1")  # fmt: skip
    configure_logging_from_args(args)
    validate_parsed_serve_args(args)
    config = HandlerConfig()
    fold_api_keys(config, args.api_key)
    args.api_key = None
    args.host = loopback_unless_keys(config, args.host)
    args.middleware = [*args.middleware, MIDDLEWARE]
    uvloop.run(serve_engine(args, config))
    return 0


def _engine_defaults(args: argparse.Namespace, defaults: argparse.Namespace) -> None:
    """No model: the default model (`prepare-model`) under its own name, with the settings
    `default_engine_args` gives it (on a CPU: bf16, eager, 1 GiB of KV cache; 2048 tokens)
    where the flags leave vLLM's defaults. A model named on the command line gets vLLM's."""
    from semantic_reuse.vllm.model import MODEL_NAME, default_engine_args, prepare_default_model

    if args.model_tag:
        args.model = args.model_tag
    if args.model != defaults.model:
        return  # a model of the user's: vLLM's own defaults, as `vllm serve` has them
    args.model = str(prepare_default_model())
    if args.served_model_name is None:
        args.served_model_name = [MODEL_NAME]
    engine_defaults = default_engine_args(args.model)
    for name in ("dtype", "enforce_eager", "max_model_len"):
        if getattr(args, name) == getattr(defaults, name):
            setattr(args, name, getattr(engine_defaults, name))


async def serve_engine(args: argparse.Namespace, config: HandlerConfig) -> None:
    """vLLM's `run_server_worker`, with `ServedAsyncLLM` as the engine client."""
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.entrypoints.launchers.api_server.entry import build_and_serve
    from vllm.entrypoints.launchers.launcher import setup_server
    from vllm.usage.usage_lib import UsageContext

    from semantic_reuse.server.engine import ServedAsyncLLM

    listen_address, sock = setup_server(args, reuse_port=False)
    engine_args = AsyncEngineArgs.from_cli_args(args)
    usage = UsageContext.OPENAI_API_SERVER
    engine = ServedAsyncLLM.from_vllm_config(
        engine_args.create_engine_config(usage_context=usage),
        handler_config=config,
        usage_context=usage,
        enable_log_requests=engine_args.enable_log_requests,
        aggregate_engine_logging=engine_args.aggregate_engine_logging,
        disable_log_stats=engine_args.disable_log_stats,
    )
    try:
        await engine.reuse_engine.warm_up()  # the embedder loads before the first request
        logger.info("semantic-reuse: reuse ready, serving on {}", listen_address)
        shutdown_task = await build_and_serve(engine, listen_address, sock, args)
    finally:
        await engine.aclose(shutdown_timeout_s=engine.vllm_config.shutdown_timeout or None)
    try:
        await shutdown_task
    finally:
        sock.close()


# -- gateway mode ----------------------------------------------------------------------------


def gateway_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="semantic-reuse serve --upstream URL",
        description="The reuse server in front of any OpenAI-compatible endpoint.",
    )
    parser.add_argument("model", nargs="*", help="the upstream's model names (default: all)")
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:8001/v1")
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--api-key", action="append", default=None,
                        help="a key of the tenant 'default' (repeatable)")  # fmt: skip
    parser.add_argument("--uvicorn-log-level", default="info")
    return parser


def run_gateway(argv: list[str]) -> int:
    args = gateway_parser().parse_args(argv)
    config = HandlerConfig()
    fold_api_keys(config, args.api_key)
    host = loopback_unless_keys(config, args.host) or "0.0.0.0"
    asyncio.run(serve_gateway(args, config, host))
    return 0


async def upstream_models(upstream: str, config: HandlerConfig) -> list[str]:
    import httpx

    key = config.server.upstream_api_key
    headers = {"authorization": f"Bearer {key.get_secret_value() if key else 'EMPTY'}"}
    async with httpx.AsyncClient(timeout=30.0) as http:
        response = await http.get(upstream.rstrip("/") + "/models", headers=headers)
        response.raise_for_status()
        data: Any = response.json()
    return [str(m["id"]) for m in data.get("data", [])]


async def serve_gateway(args: argparse.Namespace, config: HandlerConfig, host: str) -> None:
    import uvicorn

    from semantic_reuse.server.gateway import Gateway, build_gateway_app

    models = list(args.model) or await upstream_models(args.upstream, config)
    if not models:
        raise SystemExit(f"the upstream lists no model: name one ({args.upstream})")
    gateway = Gateway(args.upstream, models, config)
    try:
        await gateway.context.run(gateway.engine.warm_up())
        app = build_gateway_app(gateway)
        logger.info("semantic-reuse gateway: {} via {} on http://{}:{}", ", ".join(models),
                    redact_url(args.upstream), host, args.port)  # fmt: skip
        server = uvicorn.Server(uvicorn.Config(
            app, host=host, port=args.port, log_level=args.uvicorn_log_level
        ))  # fmt: skip
        await server.serve()
    finally:
        await gateway.aclose()
