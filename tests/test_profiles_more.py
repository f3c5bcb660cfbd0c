"""More profiles in the feature matrix on llama.cpp: Gemma 4 (v4.5) and Llama 3.1 IT (v3).

* ``gemma-sea-lion-v4.5-e2b-it``: ``families.gemma4_rules`` in the Gemma 3 architecture with
  ``GEMMA4_TEMPLATE`` (Gemma 4's ``<|turn>`` turns, ``enable_thinking``, reasoning in a
  ``<|channel>thought ... <channel|>`` channel), native ``<|tool_call>call:...`` calls,
  results in ``tool`` turns, earlier reasoning dropped.
* ``llama-sea-lion-v3-it``: ``families.llama3_it_rules`` in the tiny Llama model (Llama 3
  headers): no thinking (``thinking`` and ``max_thinking_tokens`` are no-ops), bare JSON
  calls, results in the ``ipython`` role.

The same matrix as the Qwen and Gemma families of tests/test_profiles.py (tests/profile_matrix.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from sealion_agents import ChatSeaLion
from sealion_agents.agents import create_sealion_agent
from sealion_agents.backends.base import GenerationRequest
from sealion_agents.messages import to_template_messages
from sealion_agents.options import GenerationOptions
from sealion_agents.profiles import ENABLE_THINKING
from sealion_agents.testing import tiny_rules_gguf
from sealion_agents.testing.families import (
    GREETING,
    SUNNY,
    gemma4_rules,
    llama3_it_rules,
    tiny_family_gguf,
)
from sealion_agents.testing.rules import Rule, rule_continuation
from sealion_agents.testing.vocab import EOT_ID, TURN_CLOSE_ID
from sealion_agents.tool_formats import GEMMA4_CALLS, JSON_CALLS
from tests.profile_matrix import (
    FORECAST,
    MODES,
    QUESTION,
    RESULT,
    get_weather,
    rendered_prompt,
    reply_by,
)

GEMMA4 = "gemma-sea-lion-v4.5-e2b-it"
LLAMA3_IT = "llama-sea-lion-v3-it"
#: Each profile's script and end token (for the token-for-token check).
SCRIPTS = {GEMMA4: (gemma4_rules, TURN_CLOSE_ID), LLAMA3_IT: (llama3_it_rules, EOT_ID)}


@pytest.fixture(scope="module")
def gemma4() -> Any:
    model = ChatSeaLion.from_gguf(tiny_family_gguf("gemma4"), profile=GEMMA4, temperature=0)
    yield model
    model.close()


@pytest.fixture(scope="module")
def llama3_it() -> Any:
    path = tiny_rules_gguf("llama3-it", llama3_it_rules())
    model = ChatSeaLion.from_gguf(path, profile=LLAMA3_IT, temperature=0)
    yield model
    model.close()


@pytest.fixture(params=["gemma4", "llama3_it"])
def llm(request: pytest.FixtureRequest) -> Any:
    """Each profile's tiny model on llama.cpp."""
    return request.getfixturevalue(str(request.param))


def _reasoning(llm: ChatSeaLion, thinking: bool, text: str) -> str | None:
    """The reasoning a reply holds: ``text`` only with thinking on, on a model that thinks."""
    return text if thinking and llm.sealion_profile.can_think else None


# -- the profiles and their prompts ------------------------------------------------------------


def test_gemma4_profile_and_template_switch(gemma4: ChatSeaLion) -> None:
    profile = gemma4.sealion_profile
    assert profile.thinking == ENABLE_THINKING and profile.tools is GEMMA4_CALLS
    assert profile.reasoning_tags.open == "<|channel>thought"
    assert profile.end_tokens == ("<turn|>",) and not profile.keeps_reasoning
    assert gemma4.backend.llama.metadata["general.architecture"] == "gemma3"
    messages = [SystemMessage("Be brief."), HumanMessage("Hi")]
    on = rendered_prompt(gemma4, messages, thinking=True)
    off = rendered_prompt(gemma4, messages, thinking=False)
    turns = "<|turn>user\nHi<turn|>\n<|turn>model\n"
    assert on == f"<|begin_of_text|><|turn>system\n<|think|>Be brief.<turn|>\n{turns}"
    assert off == (
        f"<|begin_of_text|><|turn>system\nBe brief.<turn|>\n{turns}<|channel>thought\n<channel|>"
    )


def test_llama3_it_thinking_is_a_documented_no_op(llama3_it: ChatSeaLion) -> None:
    llm = llama3_it
    profile = llm.sealion_profile
    assert profile.thinking is None and profile.tools is JSON_CALLS
    assert llm.backend.llama.metadata["general.architecture"] == "llama"
    on = rendered_prompt(llm, [HumanMessage("Hi")], thinking=True)
    assert on == rendered_prompt(llm, [HumanMessage("Hi")], thinking=False)
    assert on == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


@pytest.mark.parametrize("thinking", [True, False])
@pytest.mark.parametrize("question", ["Hi there", QUESTION, FORECAST])
def test_the_model_follows_its_script_token_for_token(
    llm: ChatSeaLion, question: str, thinking: bool
) -> None:
    """Greedy ids from llama.cpp on the rendered prompt equal the script's, to the end token."""
    rules, end = SCRIPTS[llm.sealion_profile.name]
    request = GenerationRequest(
        messages=to_template_messages([HumanMessage(question)], llm.sealion_profile),
        options=GenerationOptions(thinking=thinking),
    )
    llama = llm.backend.llama
    with llm.backend._lock:
        prompt, _ = llm.backend._encode(llama, request)
        out: list[int] = []
        for token in llama.generate(prompt, top_k=1, temp=0.0, reset=True):
            out.append(token)
            if token == end or len(out) >= 60:
                break
    script = [r for r in rules() if isinstance(r, Rule)]
    assert out == rule_continuation(script, prompt, end_token=end)
    assert out[-1] == end


# -- thinking on, off and on a budget ---------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("thinking", [True, False])
def test_thinking_on_and_off(llm: ChatSeaLion, mode: str, thinking: bool) -> None:
    reply = reply_by(llm, mode, [HumanMessage("Hi there")], thinking=thinking)
    assert reply.content == GREETING
    reasoning = reply.additional_kwargs.get("reasoning_content")
    assert reasoning == _reasoning(llm, thinking, "I should greet.")


@pytest.mark.parametrize("mode", MODES)
def test_thinking_budget(llm: ChatSeaLion, mode: str) -> None:
    """Gemma 4 cuts its reasoning at the budget; on Llama 3.1 IT the budget is a no-op."""
    # <|channel>, "thought", "\n" (the opening tag and its newline), "I", " should"
    budget = 5
    reply = reply_by(
        llm, mode, [HumanMessage("Hi there")], thinking=True, max_thinking_tokens=budget
    )
    assert reply.content == GREETING
    thinks = llm.sealion_profile.can_think
    assert reply.additional_kwargs.get("reasoning_content") == ("I should" if thinks else None)
    assert reply.response_metadata.get("thinking_budget_reached") is (True if thinks else None)
    assert reply.usage_metadata["output_token_details"]["reasoning"] == (budget if thinks else 0)


# -- tool calls: native format, forced, named and auto; a wrong value ---------------------------


def test_tools_are_described_in_the_system_message(llm: ChatSeaLion) -> None:
    from sealion_agents.tool_calls import AnswerPlan, tool_specs

    tools = llm.sealion_profile.tools
    plan = AnswerPlan.for_tools(tool_specs([get_weather]), "auto", tool_format=tools)
    assert plan is not None
    if llm.sealion_profile.name == GEMMA4:  # the template declares the tools
        assert plan.template_tools and "JSON schemas" not in plan.instructions
        prompt = rendered_prompt(llm, [HumanMessage("Hi")], tools=True, thinking=False)
        assert prompt.startswith("<|begin_of_text|><|turn>system\n<|tool>declaration:get_weather")
    else:
        assert not plan.template_tools and "JSON schemas" in plan.instructions
        assert 'Tool results come back in messages from "ipython"' in plan.instructions


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("thinking", [True, False])
@pytest.mark.parametrize("choice", ["auto", "any", "get_weather"])
def test_calls_in_the_native_format(
    llm: ChatSeaLion, mode: str, thinking: bool, choice: str
) -> None:
    bound = llm.bind_tools([get_weather], tool_choice=choice)
    reply = reply_by(bound, mode, [HumanMessage(QUESTION)], thinking=thinking)
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [
        ("get_weather", {"city": "Bangkok"})
    ]
    assert not reply.invalid_tool_calls
    assert reply.content == ""
    assert reply.response_metadata["finish_reason"] == "tool_calls"
    reasoning = reply.additional_kwargs.get("reasoning_content")
    assert reasoning == _reasoning(llm, thinking, "I need the weather tool.")


@pytest.mark.parametrize("thinking", [True, False])
@pytest.mark.parametrize("choice", ["auto", "any", "get_weather"])
def test_a_wrong_value_cannot_pass_the_constraint(
    llm: ChatSeaLion, thinking: bool, choice: str
) -> None:
    """The model writes ``{"city":42}`` for a string: decoding allows only a string."""
    reply = llm.bind_tools([get_weather], tool_choice=choice).invoke(FORECAST, thinking=thinking)
    assert not reply.invalid_tool_calls
    (call,) = reply.tool_calls
    assert call["name"] == "get_weather" and isinstance(call["args"]["city"], str)
    assert call["args"]["city"] != "42"


# -- history: calls, results and earlier reasoning as the profile says -------------------------


@pytest.mark.parametrize("thinking", [True, False])
def test_history_drops_earlier_reasoning_and_reads_results(
    llm: ChatSeaLion, thinking: bool
) -> None:
    bound = llm.bind_tools([get_weather])
    first = bound.invoke(QUESTION, thinking=thinking)
    assert first.tool_calls
    reasoning = first.additional_kwargs.get("reasoning_content")
    assert reasoning == _reasoning(llm, thinking, "I need the weather tool.")
    call_id = first.tool_calls[0]["id"]
    history = [
        SystemMessage("Be brief."),
        HumanMessage(QUESTION),
        first,
        ToolMessage(RESULT, tool_call_id=call_id),
        ToolMessage("Humid.", tool_call_id=call_id),
    ]
    call = '{"name": "get_weather", "parameters": {"city": "Bangkok"}}'
    prompt = rendered_prompt(llm, history, tools=True, thinking=True)
    if llm.sealion_profile.name == GEMMA4:  # the call as Gemma 4 writes it, results as tool turns
        call = '<|tool_call>call:get_weather{city:<|"|>Bangkok<|"|>}<tool_call|>'
        assert prompt.startswith("<|begin_of_text|><|turn>system\n<|think|>Be brief.<|tool>")
        expected = prompt[: prompt.index("<turn|>")] + (
            f"<turn|>\n<|turn>user\n{QUESTION}<turn|>\n"
            f"<|turn>model\n{call}<turn|>\n"
            f"<|turn>tool\n{RESULT}<turn|>\n<|turn>tool\nHumid.<turn|>\n"
            "<|turn>model\n"
        )
        assert "<|channel>" not in prompt
    else:  # one ipython turn per result
        expected = "<|begin_of_text|>" + "".join(
            f"<|start_header_id|>{role}<|end_header_id|>\n\n{text}<|eot_id|>"
            for role, text in (
                ("system", "Be brief."),
                ("user", QUESTION),
                ("assistant", call),
                ("ipython", RESULT),
                ("ipython", "Humid."),
            )
        )
        expected += "<|start_header_id|>assistant<|end_header_id|>\n\n"
    assert prompt == expected  # no earlier reasoning in the history
    answer = bound.invoke(history, thinking=thinking)
    assert answer.content == SUNNY and not answer.tool_calls
    reasoning = answer.additional_kwargs.get("reasoning_content")
    assert reasoning == _reasoning(llm, thinking, "The tool answered.")


def test_the_agent_calls_the_tool_and_answers(llm: ChatSeaLion) -> None:
    agent = create_sealion_agent(llm, [get_weather])
    state = agent.invoke({"messages": [HumanMessage(QUESTION)]})
    messages = state["messages"]
    assert isinstance(messages[1], AIMessage) and messages[1].tool_calls[0]["name"] == "get_weather"
    assert isinstance(messages[2], ToolMessage) and messages[2].content == RESULT
    assert messages[-1].content == SUNNY
