"""``create_agent`` end to end on ChatSeaLion: tool calls, tool results, the final answer, a
structured response, and thinking chosen per step (``ThinkingPerStep``).

The scripted agent model (``testing.agent_rules``) runs on llama.cpp and on vLLM in-process.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.structured_output import ToolStrategy
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel
from sealion_agents.tools import Calculator

from sealion_agents import ChatSeaLion
from sealion_agents import testing as tm
from sealion_agents.agents import ThinkingPerStep, create_sealion_agent
from sealion_agents.messages import to_template_messages

pytestmark = pytest.mark.timeout(300)


@tool
def search_documents(query: str) -> str:
    """Search the company documents for passages about the query."""
    return f"[1] (policy.txt)\n{tm.AGENT_PASSAGE}"


class LeaveTotal(BaseModel):
    """The total days of annual leave."""

    total_days: int


class Prompts(BaseCallbackHandler):
    """What each model step was sent, as the chat template will see it."""

    def __init__(self) -> None:
        self.sent: list[list[dict[str, str]]] = []
        self.options: list[dict[str, Any]] = []

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        self.sent.append(to_template_messages(messages[0]))
        self.options.append(kwargs.get("invocation_params") or {})


@pytest.fixture(scope="module", params=["gguf", "vllm"])
def model(request: pytest.FixtureRequest) -> ChatSeaLion:
    if request.param == "gguf":
        from sealion_agents.backends.llamacpp import LlamaCppBackend
        from tests.conftest import LLAMA_TEST_KWARGS

        backend: Any = LlamaCppBackend(tm.tiny_agent_gguf(), **LLAMA_TEST_KWARGS)
    else:
        backend = request.getfixturevalue("vllm_backends")["writes"]  # the suite model
    return ChatSeaLion(backend=backend, temperature=0, max_tokens=200)


def ai_steps(messages: list[Any]) -> list[AIMessage]:
    return [m for m in messages if isinstance(m, AIMessage)]


def reasoning(message: AIMessage) -> str:
    return str(message.additional_kwargs.get("reasoning_content", ""))


def test_agent_calls_both_tools_and_answers_with_thinking_per_step(model: ChatSeaLion) -> None:
    prompts = Prompts()
    agent = create_sealion_agent(
        model,
        [search_documents, Calculator()],
        thinking=ThinkingPerStep(planning=True, after_tool_results=False),
    )
    state = agent.invoke({"messages": [HumanMessage(tm.AGENT_QUESTION)]}, {"callbacks": [prompts]})
    messages = state["messages"]
    steps = ai_steps(messages)
    assert [[(c["name"], c["args"]) for c in s.tool_calls] for s in steps] == [
        [(tm.AGENT_CALLS[0]["name"], tm.AGENT_CALLS[0]["args"])],
        [(tm.AGENT_CALLS[1]["name"], tm.AGENT_CALLS[1]["args"])],
        [],
    ]
    tool_results = [m for m in messages if isinstance(m, ToolMessage)]
    assert [m.content for m in tool_results][1] == "42"
    assert steps[-1].content == tm.AGENT_ANSWER
    # thinking per step: on for planning, off after tool results (this policy)
    assert [reasoning(s) for s in steps] == [tm.AGENT_REASONING[0], "", ""]
    assert [o.get("thinking") for o in prompts.options] == [True, False, False]
    assert prompts.options[0].get("max_thinking_tokens") == 1024
    # each step's reasoning stays in its message and is never sent back to the model
    assert len(prompts.sent) == 3
    for sent in prompts.sent:
        assert tm.AGENT_REASONING[0] not in str(sent)


def test_agent_thinks_at_every_step_by_default(model: ChatSeaLion) -> None:
    agent = create_sealion_agent(model, [search_documents, Calculator()])
    state = agent.invoke({"messages": [HumanMessage(tm.AGENT_QUESTION)]})
    steps = ai_steps(state["messages"])
    assert [reasoning(s) for s in steps] == list(tm.AGENT_REASONING)
    assert steps[-1].content == tm.AGENT_ANSWER


def test_agent_with_a_structured_response(model: ChatSeaLion) -> None:
    agent = create_sealion_agent(
        model, [search_documents, Calculator()], response_format=ToolStrategy(LeaveTotal)
    )
    state = agent.invoke({"messages": [HumanMessage(tm.AGENT_QUESTION)]})
    assert state["structured_response"] == LeaveTotal(total_days=42)
    steps = ai_steps(state["messages"])
    assert [s.tool_calls[0]["name"] for s in steps] == [
        "search_documents",
        "calculator",
        "LeaveTotal",
    ]
    assert reasoning(steps[-1]) == tm.AGENT_REASONING[2]  # deciding to answer is thought


def test_agent_async_stream_of_steps(model: ChatSeaLion) -> None:
    agent = create_agent(model, [search_documents, Calculator()], middleware=[ThinkingPerStep()])

    async def run() -> list[Any]:
        return [
            update
            async for update in agent.astream(
                {"messages": [HumanMessage(tm.AGENT_QUESTION)]}, stream_mode="updates"
            )
        ]

    updates = asyncio.run(run())
    nodes = [next(iter(u)) for u in updates]
    assert nodes.count("model") == 3 and nodes.count("tools") == 2


def test_filling_arguments_steps_do_not_think() -> None:
    """A step whose call is already chosen (a named tool_choice) only fills in arguments."""
    from langchain.agents.middleware import ModelRequest

    policy = ThinkingPerStep(max_thinking_tokens=64)
    base = dict(model=None, messages=[HumanMessage("q")], tools=[search_documents])
    assert policy.settings(ModelRequest(**base)) == {"thinking": True, "max_thinking_tokens": 64}
    named = ModelRequest(**{**base, "tool_choice": "search_documents"})
    assert policy.step_kind(named) == "filling_arguments"
    assert policy.settings(named) == {"thinking": False}
    after = ModelRequest(**{**base, "messages": [ToolMessage("r", tool_call_id="1")]})
    assert policy.step_kind(after) == "after_tool_results"
    answer_only = ModelRequest(**{**base, "tools": [], "response_format": ToolStrategy(LeaveTotal)})
    assert policy.step_kind(answer_only) == "filling_arguments"
