"""The session's vLLM engine as a `ReuseClient` for the framework model classes."""

from __future__ import annotations

import uuid
from typing import Any

import pytest


@pytest.fixture(scope="session")
def vllm_client(enhanced_llm: Any) -> Any:
    """A `VLLMClient` over the session's EnhancedAsyncLLM (whose home is the session loop:
    async tests using it run with loop_scope="session"; sync ones drive that loop)."""
    from semantic_reuse import VLLMClient

    return VLLMClient(enhanced_llm)


@pytest.fixture
def tenant() -> str:
    """A namespace of its own for one test: answers of other tests never interfere."""
    return f"t{uuid.uuid4().hex[:12]}"
