"""Tools in the client layer, without a model: the parameters that key them, the stream's
tool-call deltas put together, LangChain's messages and tool choices in the API's shape, and
the in-process backend refusing tools it cannot send (tests/e2e/server has the real calls)."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from langchain_semantic_reuse import ChatSemanticReuse
from langchain_semantic_reuse._messages import to_chat
from langchain_semantic_reuse.chat_models import openai_tool_choice
from semantic_reuse import CachedAnswer, GenerationParams, ReuseRequest
from semantic_reuse.clients.tool_calls import TOOL_CALLS, ToolCallAssembler, tool_calls_of
from semantic_reuse.planning import storable

TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def _key(params: GenerationParams) -> tuple[str, str]:
    request = ReuseRequest(messages=[{"role": "user", "content": "Weather?"}],
                           params=params.as_dict())  # fmt: skip
    return request.hash_id, request.fingerprint


def test_tools_and_tool_choice_are_in_the_key_and_the_fingerprint() -> None:
    plain = GenerationParams(max_tokens=8)
    tools = GenerationParams(max_tokens=8, tools=(TOOL,))
    forced = GenerationParams(max_tokens=8, tools=(TOOL,), tool_choice="required")
    none = GenerationParams(max_tokens=8, tools=(TOOL,), tool_choice="none")
    keys = [_key(p) for p in (plain, tools, forced, none)]
    assert len({k for k, _ in keys}) == 4
    assert len({f for _, f in keys}) == 4
    assert tools.structured
    assert not plain.structured
    request = ReuseRequest("What is Redis and how does it store data?", params=forced.as_dict())
    assert request.structured  # never split into clauses


@pytest.mark.parametrize(
    ("field", "value"),
    [("tools", "get_weather"), ("tools", [1]), ("tool_choice", 3), ("response_format", "json")],
)
def test_bad_tool_parameters_name_themselves(field: str, value: Any) -> None:
    with pytest.raises(TypeError, match=field):
        GenerationParams(**{field: value})


def test_stream_deltas_become_whole_calls() -> None:
    calls = ToolCallAssembler()
    assert not calls
    calls.add([{"index": 0, "id": "call_a", "function": {"name": "get_weather", "arguments": ""}}])
    calls.add([{"index": 0, "function": {"arguments": '{"city": '}}])
    calls.add([{"index": 1, "function": {"name": "get_time", "arguments": "{}"}}])
    calls.add([{"index": 0, "function": {"arguments": '"Paris"}'}}])
    calls.add(None)
    first, second = calls.calls()
    function = {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert first == {"id": "call_a", "type": "function", "function": function}
    assert second["function"]["name"] == "get_time"
    assert second["id"].startswith("call_")  # the endpoint gave none

    answer = CachedAnswer("", finish_reason="tool_calls", metadata={TOOL_CALLS: [first, second]})
    assert storable(answer)  # only tool calls: not an empty answer
    assert not storable(CachedAnswer("", finish_reason="tool_calls"))
    assert tool_calls_of(answer) == (first, second)
    assert tool_calls_of(CachedAnswer("x", metadata={TOOL_CALLS: "garbage"})) == ()


def test_langchain_messages_and_tool_choices_in_the_api_shape() -> None:
    call = {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1", "type": "tool_call"}
    chat = to_chat([HumanMessage("Weather?"), AIMessage("", tool_calls=[call]),
                    ToolMessage("sunny", tool_call_id="call_1")])  # fmt: skip
    assert chat[1]["tool_calls"] == [{"id": "call_1", "type": "function", "function": {
        "name": "get_weather", "arguments": '{"city": "Paris"}'}}]  # fmt: skip
    assert chat[2] == {"role": "tool", "content": "sunny", "tool_call_id": "call_1"}
    assert openai_tool_choice("any") == "required"
    assert openai_tool_choice(True) == "required"
    assert openai_tool_choice("none") == "none"
    assert openai_tool_choice("get_weather") == {
        "type": "function", "function": {"name": "get_weather"}}  # fmt: skip
    with pytest.raises(TypeError, match="tool_choice"):
        openai_tool_choice(3)  # type: ignore[arg-type]


def test_the_in_process_backend_refuses_tools_with_a_clear_error() -> None:
    model = ChatSemanticReuse(model="unused-folder").bind_tools([TOOL], tool_choice="any")
    with pytest.raises(ValueError, match="endpoint"):
        model.invoke("Weather?")


def test_arguments_that_are_not_a_json_object_make_an_invalid_call() -> None:
    from langchain_semantic_reuse.chat_models import _result
    from semantic_reuse import Completion
    from semantic_reuse.outcome import ReuseInfo, ReuseKind

    calls = (
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}},
        {"id": "b", "type": "function", "function": {"name": "f", "arguments": '"Paris"'}},
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"x": '}},
    )
    completion = Completion("", ReuseInfo(ReuseKind.MISS), model="m", tool_calls=calls)
    message = _result(completion).generations[0].message
    assert isinstance(message, AIMessage)
    assert [(c["id"], c["args"]) for c in message.tool_calls] == [("a", {"x": 1})]
    assert [c["id"] for c in message.invalid_tool_calls] == ["b", "c"]
