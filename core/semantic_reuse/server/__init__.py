"""`semantic-reuse serve`: an OpenAI-compatible HTTP server with reuse.

Two modes share one HTTP surface (`middleware.ReuseMiddleware`: keys and tenants, per-request
headers, the reuse decision in a header and in the JSON):

- engine (`launch.run_engine_server`): vLLM's own OpenAI-compatible server, in this process,
  with `engine.ServedAsyncLLM` (an `EnhancedAsyncLLM`) as its engine client;
- gateway (`gateway.build_gateway_app`): the same endpoints in front of any OpenAI-compatible
  endpoint, through `OpenAICompatibleClient`.

Nothing here is imported by the library; docs/server.md describes the server.
"""
