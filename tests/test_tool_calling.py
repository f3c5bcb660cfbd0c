"""Tool calling and structured output on every backend, with the scripted agent model.

Backends: llama.cpp in-process, vLLM in-process, vLLM's server with and without its
reasoning parser, llama-cpp-python's server. The model (``tests.suite_model``, built on
``testing.agent_rules``) calls
``search_documents`` then ``calculator`` for ``AGENT_QUESTION``, reasons in call-like JSON for
``JSON_IN_REASONING_QUESTION``, and otherwise writes the default reply, which is not JSON:
every schema-valid call it makes for other prompts comes from constrained decoding.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import jsonschema
import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel, Field
from sealion_agents.tools import Calculator
from typing_extensions import TypedDict

from sealion_agents import ChatSeaLion
from sealion_agents import testing as tm
from sealion_agents.backends.base import ChatBackend
from sealion_agents.backends.llamacpp import LlamaCppBackend
from sealion_agents.errors import ServerError, UnsupportedSchemaError
from tests.conftest import LLAMA_TEST_KWARGS
from tests.suite_model import suite_gguf

pytestmark = pytest.mark.timeout(300)

BACKENDS = ["gguf", "vllm", "vllm-server", "vllm-r1-server", "llamacpp-server"]
_GGUF: dict[str, LlamaCppBackend] = {}


@tool
def search_documents(query: str) -> str:
    """Search the company documents for passages about the query."""
    return f"[1] (policy.txt)\n{tm.AGENT_PASSAGE}"


TOOLS = [search_documents, Calculator()]


@pytest.fixture(scope="module", params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make_backend(request: pytest.FixtureRequest, name: str, variant: str) -> ChatBackend:
    if name == "gguf":
        if variant not in _GGUF:
            _GGUF[variant] = LlamaCppBackend(suite_gguf(variant), **LLAMA_TEST_KWARGS)
        return _GGUF[variant]
    if name == "vllm":
        return request.getfixturevalue("vllm_backends")[variant]  # type: ignore[no-any-return]
    from tests.test_openai_backend import make_backend as server_backend

    server = {"vllm-server": "vllm", "vllm-r1-server": "vllm-r1", "llamacpp-server": "llamacpp"}
    return server_backend(request, server[name], variant)


@pytest.fixture
def llm(request: pytest.FixtureRequest, backend_name: str, variant: str) -> ChatSeaLion:
    backend = make_backend(request, backend_name, variant)
    return ChatSeaLion(backend=backend, temperature=0, max_tokens=200)


def reasoning_of(message: Any) -> str:
    return str(message.additional_kwargs.get("reasoning_content", ""))


def tool_schema(name: str) -> dict[str, Any]:
    from sealion_agents.tool_calls import tool_specs

    return next(s["parameters"] for s in tool_specs(TOOLS) if s["name"] == name)


def assert_valid_calls(message: AIMessage) -> None:
    """At least one call, every call to a bound tool with schema-valid arguments."""
    assert message.tool_calls, (message.content, message.invalid_tool_calls)
    assert not message.invalid_tool_calls
    for call in message.tool_calls:
        jsonschema.validate(call["args"], tool_schema(call["name"]))
        assert call["id"] and call["type"] == "tool_call"


# -- the agent's conversation ---------------------------------------------------------------


@pytest.mark.parametrize("thinking", [True, False])
def test_two_tool_calls_then_a_cited_answer(llm: ChatSeaLion, thinking: bool) -> None:
    model = llm.bind_tools(TOOLS)
    history: list[Any] = [HumanMessage(tm.AGENT_QUESTION)]
    for step, call in enumerate(tm.AGENT_CALLS):
        reply = model.invoke(history, thinking=thinking)
        assert reply.content == ""
        assert [(c["name"], c["args"]) for c in reply.tool_calls] == [(call["name"], call["args"])]
        assert reply.response_metadata["finish_reason"] == "tool_calls"
        assert reasoning_of(reply) == (tm.AGENT_REASONING[step] if thinking else "")
        tool_ = {t.name: t for t in TOOLS}[call["name"]]
        result = tool_.invoke(reply.tool_calls[0]["args"])
        history += [reply, ToolMessage(str(result), tool_call_id=reply.tool_calls[0]["id"])]
    final = model.invoke(history, thinking=thinking)
    assert final.content == tm.AGENT_ANSWER
    assert not final.tool_calls
    assert reasoning_of(final) == (tm.AGENT_REASONING[2] if thinking else "")


@pytest.mark.parametrize("thinking", [True, False])
def test_auto_goes_both_ways(llm: ChatSeaLion, thinking: bool) -> None:
    model = llm.bind_tools(TOOLS, tool_choice="auto")
    called = model.invoke(tm.AGENT_QUESTION, thinking=thinking)
    assert_valid_calls(called)
    text = model.invoke("Hello there", thinking=thinking)
    assert text.content == tm.ANSWER and not text.tool_calls and not text.invalid_tool_calls
    assert text.response_metadata["finish_reason"] == "stop"


def test_json_in_the_reasoning_is_never_a_call(llm: ChatSeaLion) -> None:
    reply = llm.bind_tools(TOOLS).invoke(tm.JSON_IN_REASONING_QUESTION, thinking=True)
    assert reasoning_of(reply) == tm.JSON_IN_REASONING
    assert reply.content == tm.JSON_IN_REASONING_ANSWER
    assert not reply.tool_calls and not reply.invalid_tool_calls


# -- forced choices: the free reply is not JSON, the call is valid all the same ---------------


@pytest.mark.parametrize("choice", ["any", True, "calculator"])
@pytest.mark.parametrize("thinking", [True, False])
def test_forced_choice_gives_a_schema_valid_call(
    llm: ChatSeaLion, choice: Any, thinking: bool
) -> None:
    """Every spelling of a forced call binds one of these requests (the test below).

    "any": a call to either tool; a tool name: that tool (the second one bound, so it is
    picked by name, not by place); True with one tool: that tool ("search_documents", so the
    schema of each tool is decoded under force).
    """
    assert not tm.ANSWER.lstrip().startswith(("{", "["))  # the free reply is text
    tools = TOOLS if choice is not True else [search_documents]
    reply = llm.bind_tools(tools, tool_choice=choice).invoke("Hello there", thinking=thinking)
    assert_valid_calls(reply)
    if choice is True or choice != "any":
        name = "search_documents" if choice is True else choice
        assert {c["name"] for c in reply.tool_calls} == {name}
    assert reasoning_of(reply) == (tm.REASONING if thinking else "")
    assert reply.content == ""


def test_forced_spellings_bind_the_same_request(request: pytest.FixtureRequest) -> None:
    """The spelling "required" binds what "any" binds, True with one tool that tool's name.

    No backend code has run yet, so each backend sees the same request for each pair.
    """
    llm = ChatSeaLion(backend=make_backend(request, "gguf", "writes"))

    def bound(tools: list[Any], choice: Any) -> dict[str, Any]:
        return dict(llm.bind_tools(tools, tool_choice=choice).kwargs)  # type: ignore[attr-defined]

    assert bound(TOOLS, "required") == bound(TOOLS, "any")
    assert bound([search_documents], True) == bound([search_documents], "search_documents")
    assert bound(TOOLS, True) == bound(TOOLS, "any")
    assert bound(TOOLS, "search_documents") != bound(TOOLS, "any")


@pytest.mark.parametrize("backend_name", ["gguf", "vllm"])
def test_without_the_constraint_the_forced_call_fails(
    llm: ChatSeaLion, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: with constrained decoding switched off, the same call is invalid.

    In-process engines only: "none" is read by the chat model (``TurnDecoder``), which then
    sends no constraint, and the servers have the real "none" mode (the test below).
    """
    monkeypatch.setattr(type(llm.backend), "constraint_support", property(lambda self: "none"))
    raw = llm.with_structured_output(TripDict, include_raw=True).invoke("Plan a trip")
    assert raw["parsed"] is None and raw["parsing_error"] is not None
    assert raw["raw"].response_metadata["structured_output_error"].startswith("not valid JSON")
    reply = llm.bind_tools(TOOLS, tool_choice="any").invoke("Hello there", thinking=False)
    assert not reply.tool_calls
    assert reply.invalid_tool_calls and "not valid JSON" in str(
        reply.invalid_tool_calls[0]["error"]
    )


@pytest.mark.parametrize("backend_name", [b for b in BACKENDS if b.endswith("server")])
def test_a_server_without_structured_outputs_validates_free_replies(
    request: pytest.FixtureRequest, backend_name: str, variant: str
) -> None:
    """``structured_output="none"`` (a hosted API): free replies, checked by jsonschema.

    Servers only: in-process engines always constrain (the control test above switches that
    off).
    """
    from sealion_agents.backends.openai import OpenAIBackend

    server = make_backend(request, backend_name, variant)
    assert isinstance(server, OpenAIBackend)
    hosted = OpenAIBackend(
        server.base_url,
        model=server.model,
        thinking_off_model=server.thinking_off_model,
        api_key=server._api_key,
        extra_body=server.extra_body,
        structured_output="none",
    )
    assert hosted.constraint_support == "none"
    llm = ChatSeaLion(backend=hosted, temperature=0, max_tokens=200)
    reply = llm.bind_tools(TOOLS).invoke(tm.AGENT_QUESTION)
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [
        (tm.AGENT_CALLS[0]["name"], tm.AGENT_CALLS[0]["args"])
    ]
    forced = llm.bind_tools(TOOLS, tool_choice="any").invoke("Hello there")
    assert not forced.tool_calls and forced.invalid_tool_calls  # text, after two retries
    assert reasoning_of(forced) == tm.REASONING  # shown once, not once per attempt


@pytest.mark.parametrize("thinking", [False])  # one prompt for both templates (conftest)
def test_parallel_calls_off_gives_one_object(llm: ChatSeaLion, thinking: bool) -> None:
    reply = llm.bind_tools(TOOLS, tool_choice="any", parallel_tool_calls=False).invoke(
        "Hello there", thinking=thinking
    )
    assert_valid_calls(reply)
    assert len(reply.tool_calls) == 1


def test_a_thinking_budget_then_a_constrained_call(llm: ChatSeaLion) -> None:
    if not llm.backend.continues:  # llama-cpp-python's server: a clear error, no budget
        with pytest.raises(ServerError, match="cannot continue an assistant message"):
            llm.bind_tools(TOOLS, tool_choice="any").invoke(
                "Hello there", thinking=True, max_thinking_tokens=3
            )
        return
    reply = llm.bind_tools(TOOLS, tool_choice="any").invoke(
        "Hello there", thinking=True, max_thinking_tokens=3
    )
    assert reply.response_metadata["thinking_budget_reached"] is True
    assert 0 < len(reasoning_of(reply)) < len(tm.REASONING)
    assert_valid_calls(reply)


@pytest.mark.parametrize("thinking", [True, False])
def test_every_call_style(llm: ChatSeaLion, thinking: bool) -> None:
    model = llm.bind_tools(TOOLS, tool_choice="any")
    chunks = list(model.stream("Hello there", thinking=thinking))
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    assert full.tool_call_chunks and full.tool_calls
    assert_valid_calls(AIMessage(content="", tool_calls=full.tool_calls))
    assert full.response_metadata["finish_reason"] == "tool_calls"

    async def run() -> list[Any]:
        one = await model.ainvoke("Hello there", thinking=thinking)
        many = [c async for c in model.astream(tm.AGENT_QUESTION, thinking=thinking)]
        return [one, many]

    one, many = asyncio.run(run())
    assert_valid_calls(one)
    streamed = many[0]
    for chunk in many[1:]:
        streamed = streamed + chunk
    assert [c["name"] for c in streamed.tool_calls] == ["search_documents"]
    batch = model.batch(["Hello there", tm.AGENT_QUESTION], thinking=thinking)
    for reply in batch:
        assert_valid_calls(reply)
    assert batch[1].tool_calls[0]["args"] == tm.AGENT_CALLS[0]["args"]


# -- structured output ------------------------------------------------------------------------


class Trip(BaseModel):
    """A trip plan."""

    city: str = Field(description="Where to go")
    days: int = Field(ge=2, le=9)
    season: str = Field(json_schema_extra={"enum": ["dry", "wet"]})


class TripDict(TypedDict):
    """A trip plan."""

    city: str
    days: int


TRIP_SCHEMA = {
    "title": "trip",
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "stops": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        "budget": {"anyOf": [{"type": "number"}, {"type": "null"}]},
    },
    "required": ["city", "stops", "budget"],
}


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
@pytest.mark.parametrize("thinking", [True, False])
def test_structured_output_for_pydantic_typeddict_and_json_schema(
    llm: ChatSeaLion, method: str, thinking: bool
) -> None:
    llm = llm.model_copy(update={"thinking": thinking})
    trip = llm.with_structured_output(Trip, method=method).invoke("Plan a trip")
    assert isinstance(trip, Trip) and 2 <= trip.days <= 9 and trip.season in ("dry", "wet")
    plain = llm.with_structured_output(TripDict, method=method).invoke("Plan a trip")
    assert set(plain) == {"city", "days"}
    raw = llm.with_structured_output(TRIP_SCHEMA, method=method, include_raw=True).invoke(
        "Plan a trip"
    )
    assert raw["parsing_error"] is None
    jsonschema.validate(raw["parsed"], TRIP_SCHEMA)
    assert reasoning_of(raw["raw"]) == (tm.REASONING if thinking else "")


@pytest.mark.parametrize("thinking", [False])  # one prompt for both templates (conftest)
def test_json_mode(llm: ChatSeaLion, thinking: bool) -> None:
    llm = llm.model_copy(update={"thinking": thinking})
    value = llm.with_structured_output(method="json_mode").invoke("Reply in JSON")
    assert isinstance(value, dict)


def test_structured_output_streams(llm: ChatSeaLion) -> None:
    parts = list(llm.with_structured_output(TripDict).stream("Plan a trip"))
    assert parts and set(parts[-1]) == {"city", "days"}


def test_an_unenforceable_schema_is_refused_before_generating(llm: ChatSeaLion) -> None:
    schema = {"type": "object", "properties": {"tags": {"type": "array", "uniqueItems": True}}}
    with pytest.raises(UnsupportedSchemaError, match="uniqueItems"):
        llm.with_structured_output(schema).invoke("x")
    with pytest.raises(UnsupportedSchemaError, match="'not'"):
        llm.bind_tools([{"name": "f", "description": "", "parameters": {"not": {}}}])


# -- what the model reads -------------------------------------------------------------------


def test_history_renders_calls_and_results_in_one_format() -> None:
    from sealion_agents.messages import to_template_messages

    call = {"name": "calculator", "args": {"expression": "14*3"}, "id": "c1"}
    messages = to_template_messages(
        [
            HumanMessage("q"),
            AIMessage(
                content=[
                    {"type": "text", "text": "Let me count."},
                    {"type": "tool_use", "id": "c1", "name": "calculator", "input": {}},
                ],
                tool_calls=[call],
                additional_kwargs={"reasoning_content": "secret"},
            ),
            ToolMessage([{"type": "text", "text": "42"}], tool_call_id="c1"),
            ToolMessage("division by zero", tool_call_id="c2", status="error"),
        ]
    )
    assert messages[1] == {
        "role": "assistant",
        "content": 'Let me count.\n{"name": "calculator", "parameters": {"expression": "14*3"}}',
    }
    assert messages[2] == {"role": "ipython", "content": "42", "tool_call_id": "c1"}
    assert messages[3]["content"] == "Error: division by zero"
    assert "secret" not in json.dumps(messages)
