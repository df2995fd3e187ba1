"""`shutdown()` (what `AsyncLLM.__del__` and drop-in users call) closes the reuse engine it
made (the Edge store is flushed and closed: a new process finds the answer), and the process
ends cleanly.

Runs in a subprocess: it starts and shuts down an engine of its own (~30-90 s).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from vllm import SamplingParams
    from semantic_reuse import HandlerConfig
    from semantic_reuse.vllm import EnhancedAsyncLLM
    from semantic_reuse.vllm.model import default_engine_args

    async def main(llm):
        params = SamplingParams(temperature=0.0, max_tokens=8)
        messages = [{"role": "user", "content": "What colour is the sky?"}]
        async for out in llm.generate_chat(messages, params, "only"):
            pass
        print("GENERATED", out.outputs[0].text.strip() != "", flush=True)
        await llm.reuse_engine.flush()  # leaving the loop cancels what is still pending

    if __name__ == "__main__":
        config = HandlerConfig(cache={"qdrant_path": sys.argv[1]}, features={"enable_redis": False})
        llm = EnhancedAsyncLLM.from_engine_args(default_engine_args(), handler_config=config)
        asyncio.run(main(llm))
        llm.shutdown()  # no aclose(): shutdown closes the reuse engine
        print("CLOSED", llm.reuse_engine.closed, flush=True)
    """
)


def test_shutdown_closes_the_reuse_engine_and_keeps_the_answer(
    tmp_path: Path, model_path: Path
) -> None:
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    folder = tmp_path / "edge"
    done = subprocess.run(
        [sys.executable, str(script), str(folder)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "GENERATED True" in done.stdout
    assert "CLOSED True" in done.stdout

    import asyncio

    from vllm import SamplingParams

    from semantic_reuse import HandlerConfig, ReuseEngine

    async def look() -> object:
        config = HandlerConfig(cache={"qdrant_path": folder}, features={"enable_redis": False})
        async with ReuseEngine(config) as engine:
            return await engine.lookup(
                [{"role": "user", "content": "What colour is the sky?"}], model=str(model_path),
                params=SamplingParams(temperature=0.0, max_tokens=8),
            )  # fmt: skip

    hit = asyncio.run(look())
    assert hit is not None  # found by a new process on the same folder
