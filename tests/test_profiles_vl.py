"""The Qwen VL profile (SEA-LION v4 VL, Qwen3-VL Instruct) in the feature matrix on llama.cpp.

``families.qwen_vl_rules`` in the Qwen3 architecture with ``QWEN_VL_TEMPLATE``: Qwen's turns,
no thinking switch (``thinking`` and ``max_thinking_tokens`` are documented no-ops: the
prompt is the same and no reasoning comes back), Hermes ``<tool_call>`` calls with the tools
in the template, results as ``<tool_response>``. Text only: the vision tower is not loaded.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from sealion_agents import ChatSeaLion
from sealion_agents.agents import create_sealion_agent
from sealion_agents.testing.families import GREETING, SUNNY, tiny_family_gguf
from sealion_agents.tool_formats import HERMES_CALLS
from tests.profile_matrix import FORECAST, MODES, QUESTION, get_weather, rendered_prompt, reply_by

VL = "qwen-sea-lion-v4-vl"


@pytest.fixture(scope="module")
def llm() -> Any:
    model = ChatSeaLion.from_gguf(tiny_family_gguf("qwen-vl"), profile=VL, temperature=0)
    yield model
    model.close()


def test_the_profile_and_its_no_op_switch(llm: ChatSeaLion) -> None:
    profile = llm.sealion_profile
    assert profile.name == VL and profile.thinking is None and not profile.can_think
    assert profile.tools is HERMES_CALLS and profile.context_window == 262144
    on = rendered_prompt(llm, [HumanMessage("Hi")], thinking=True)
    assert on == rendered_prompt(llm, [HumanMessage("Hi")], thinking=False)
    assert on == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("thinking", [True, False])
def test_thinking_and_a_budget_are_no_ops(llm: ChatSeaLion, mode: str, thinking: bool) -> None:
    reply = reply_by(
        llm, mode, [HumanMessage("Hi there")], thinking=thinking, max_thinking_tokens=2
    )
    assert reply.content == GREETING
    assert "reasoning_content" not in reply.additional_kwargs
    assert reply.response_metadata.get("thinking_budget_reached") is None
    assert reply.usage_metadata["output_token_details"]["reasoning"] == 0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("choice", ["auto", "any", "get_weather"])
def test_calls_in_the_native_format(llm: ChatSeaLion, mode: str, choice: str) -> None:
    bound = llm.bind_tools([get_weather], tool_choice=choice)
    reply = reply_by(bound, mode, [HumanMessage(QUESTION)])
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [
        ("get_weather", {"city": "Bangkok"})
    ]
    assert not reply.invalid_tool_calls and reply.content == ""
    assert reply.response_metadata["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("choice", ["auto", "any", "get_weather"])
def test_a_wrong_value_cannot_pass_the_constraint(llm: ChatSeaLion, choice: str) -> None:
    """The model writes ``{"city":42}`` for a string: decoding allows only a string."""
    reply = llm.bind_tools([get_weather], tool_choice=choice).invoke(FORECAST)
    assert not reply.invalid_tool_calls
    (call,) = reply.tool_calls
    assert call["name"] == "get_weather" and isinstance(call["args"]["city"], str)
    assert call["args"]["city"] != "42"


def test_history_reads_results(llm: ChatSeaLion) -> None:
    bound = llm.bind_tools([get_weather])
    first = bound.invoke(QUESTION)
    history = [
        HumanMessage(QUESTION),
        first,
        ToolMessage("It is sunny, 31 C.", tool_call_id=first.tool_calls[0]["id"]),
    ]
    prompt = rendered_prompt(llm, history)
    assert prompt.endswith(
        "<|im_start|>user\n<tool_response>\nIt is sunny, 31 C.\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    answer = bound.invoke(history)
    assert answer.content == SUNNY and not answer.tool_calls


def test_the_agent_calls_the_tool_and_answers(llm: ChatSeaLion) -> None:
    agent = create_sealion_agent(llm, [get_weather])
    messages = agent.invoke({"messages": [HumanMessage(QUESTION)]})["messages"]
    assert isinstance(messages[1], AIMessage) and messages[1].tool_calls[0]["name"] == "get_weather"
    assert isinstance(messages[2], ToolMessage)
    assert messages[-1].content == SUNNY
