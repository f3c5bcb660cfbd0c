"""Tools through the server: an OpenAI client's tools reach ChatSeaLion's tool calling, calls
come back in OpenAI's shape (whole and streamed), and the results lead to the answer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from openai import OpenAI
from sealion_agents.tools import Calculator

from sealion_agents import testing as tm
from sealion_agents.testing.servers import sealion_server
from tests.serve.conftest import Served, make_keys


@tool
def search_documents(query: str) -> str:
    """Search the company documents for passages about the query."""
    return f"[1] (policy.txt)\n{tm.AGENT_PASSAGE}"


TOOLS = [search_documents, Calculator()]


@pytest.fixture(scope="module")
def agent_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data_dir = tmp_path_factory.mktemp("agent")
    keys = make_keys(data_dir, ("acme",))
    server = sealion_server(tm.tiny_agent_gguf(), data_dir, extra=["--rate-limit", "0"]).start()
    try:
        yield Served(server.wait(180), keys, data_dir)
    finally:
        server.stop()


def test_chat_openai_agent_loop_through_the_server(agent_server: Served) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(
        base_url=f"{agent_server.url}/v1", api_key=agent_server.keys["acme"], model="sealion"
    ).bind_tools(TOOLS)
    history: list[Any] = [HumanMessage(tm.AGENT_QUESTION)]
    for call in tm.AGENT_CALLS:
        reply = llm.invoke(history)
        assert [(c["name"], c["args"]) for c in reply.tool_calls] == [(call["name"], call["args"])]
        assert reply.response_metadata["finish_reason"] == "tool_calls"
        result = {t.name: t for t in TOOLS}[call["name"]].invoke(reply.tool_calls[0]["args"])
        history += [reply, ToolMessage(str(result), tool_call_id=reply.tool_calls[0]["id"])]
    final = llm.invoke(history)
    assert final.content == tm.AGENT_ANSWER and not final.tool_calls


def test_streamed_tool_call_in_openai_shape(agent_server: Served) -> None:
    from langchain_core.utils.function_calling import convert_to_openai_tool

    client = OpenAI(base_url=f"{agent_server.url}/v1", api_key=agent_server.keys["acme"])
    stream = client.chat.completions.create(
        model="sealion",
        messages=[{"role": "user", "content": tm.AGENT_QUESTION}],
        tools=[convert_to_openai_tool(t) for t in TOOLS],
        tool_choice="required",
        stream=True,
    )
    name, arguments, finish, reasoning = "", "", None, ""
    for chunk in stream:
        delta = chunk.choices[0].delta
        reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
        assert not delta.content
        for piece in delta.tool_calls or []:
            name += piece.function.name or ""
            arguments += piece.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    first = tm.AGENT_CALLS[0]
    assert (name, json.loads(arguments)) == (first["name"], first["args"])
    assert finish == "tool_calls"
    assert reasoning == tm.AGENT_REASONING[0]
