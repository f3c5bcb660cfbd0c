"""ChatSeaLion on the real llama.cpp runtime with the tiny scripted SEA-LION models.

The tiny models write exactly ``<think>REASONING</think>ANSWER`` (or the answer only with
thinking off), so every assertion here is on exact text.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
from langchain_core.runnables import ConfigurableField

from sealion_agents import ChatSeaLion, ContextWindowExceededError
from sealion_agents.backends.base import GenerationRequest
from sealion_agents.messages import to_template_messages
from sealion_agents.testing import ANSWER, REASONING, encode
from tests.conftest import LLAMA_TEST_KWARGS

QUESTION = [HumanMessage("Hello there")]


@pytest.fixture
def llm(gguf_backends: dict[str, Any], variant: str) -> ChatSeaLion:
    return ChatSeaLion(backend=gguf_backends[variant])


def expected(thinking: bool) -> tuple[str, str]:
    return (REASONING if thinking else "", ANSWER)


def split_of(message: AIMessage | AIMessageChunk) -> tuple[str, str]:
    assert isinstance(message.content, str)
    return message.additional_kwargs.get("reasoning_content", ""), message.content


def collect(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    return full


# -- the reasoning matrix: thinking on / off / default x four call styles x two templates --

THINKING_CASES = [({"thinking": True}, True), ({"thinking": False}, False), ({}, True)]


@pytest.mark.parametrize(("options", "thinking"), THINKING_CASES, ids=["on", "off", "default"])
def test_invoke(llm: ChatSeaLion, options: dict[str, Any], thinking: bool) -> None:
    assert split_of(llm.invoke(QUESTION, **options)) == expected(thinking)


@pytest.mark.parametrize(("options", "thinking"), THINKING_CASES, ids=["on", "off", "default"])
def test_stream(llm: ChatSeaLion, options: dict[str, Any], thinking: bool) -> None:
    chunks = list(llm.stream(QUESTION, **options))
    assert all(THINK_TAG not in str(c.content) for c in chunks for THINK_TAG in ("<think", "</"))
    assert len(chunks) > 3  # token by token, not one lump
    assert split_of(collect(chunks)) == expected(thinking)
    assert chunks[-1].chunk_position == "last"


@pytest.mark.parametrize(("options", "thinking"), THINKING_CASES, ids=["on", "off", "default"])
async def test_ainvoke(llm: ChatSeaLion, options: dict[str, Any], thinking: bool) -> None:
    assert split_of(await llm.ainvoke(QUESTION, **options)) == expected(thinking)


@pytest.mark.parametrize(("options", "thinking"), THINKING_CASES, ids=["on", "off", "default"])
async def test_astream(llm: ChatSeaLion, options: dict[str, Any], thinking: bool) -> None:
    chunks = [chunk async for chunk in llm.astream(QUESTION, **options)]
    assert len(chunks) > 3
    assert split_of(collect(chunks)) == expected(thinking)


def test_instance_default_off(gguf_backends: dict[str, Any], variant: str) -> None:
    llm = ChatSeaLion(backend=gguf_backends[variant], thinking=False)
    assert split_of(llm.invoke(QUESTION)) == expected(False)
    assert split_of(llm.invoke(QUESTION, thinking=True)) == expected(True)


def test_batch_mixes_modes(llm: ChatSeaLion) -> None:
    """One batch whose inputs think and do not think (configured per input)."""
    mixed = llm.configurable_fields(thinking=ConfigurableField(id="thinking"))
    modes = [True, False, False, True]
    configs: list[Any] = [{"configurable": {"thinking": mode}} for mode in modes]
    results = mixed.batch([QUESTION] * 4, config=configs)
    assert [split_of(r) for r in results] == [expected(mode) for mode in modes]
    results = llm.with_thinking(False).batch([QUESTION] * 3)
    assert [split_of(r) for r in results] == [expected(False)] * 3


async def test_abatch(llm: ChatSeaLion) -> None:
    results = await llm.with_thinking(False).abatch([QUESTION] * 3)
    assert [split_of(r) for r in results] == [expected(False)] * 3


def test_per_chain_step(llm: ChatSeaLion) -> None:
    """Two steps of one chain, each with its own thinking mode."""
    first = llm.with_thinking(False)
    second = llm.bind(thinking=True)
    chain = first | (lambda m: [HumanMessage(f"Say more about: {m.content}")]) | second
    result = chain.invoke(QUESTION)
    assert split_of(result) == expected(True)


def test_configurable_field(llm: ChatSeaLion) -> None:
    configurable = llm.configurable_fields(
        thinking=ConfigurableField(id="thinking", name="Thinking mode")
    )
    off = configurable.invoke(QUESTION, config={"configurable": {"thinking": False}})
    on = configurable.invoke(QUESTION)
    assert split_of(off) == expected(False)
    assert split_of(on) == expected(True)


def test_content_blocks_hold_a_standard_reasoning_block(llm: ChatSeaLion) -> None:
    blocks = llm.invoke(QUESTION).content_blocks
    assert blocks == [
        {"type": "reasoning", "reasoning": REASONING},
        {"type": "text", "text": ANSWER},
    ]


# -- history, usage, limits -------------------------------------------------------------


def test_earlier_reasoning_is_never_sent_back(gguf_backends: dict[str, Any], variant: str) -> None:
    llm = ChatSeaLion(backend=gguf_backends[variant])
    first = llm.invoke(QUESTION)
    inline = AIMessage(f"<think>secret plan</think>{ANSWER}")
    history = [SystemMessage("Be brief."), *QUESTION, first, HumanMessage("Again"), inline]
    history.append(HumanMessage("Once more"))
    backend = gguf_backends[variant]
    prompt = backend.render(GenerationRequest(messages=to_template_messages(history)))
    assert REASONING not in prompt and "secret plan" not in prompt
    assert prompt.count(ANSWER) == 2
    result = llm.invoke(history)
    assert result.usage_metadata["input_tokens"] == len(encode(prompt))
    assert split_of(result) == expected(True)


def test_usage_metadata_counts_reasoning(llm: ChatSeaLion, variant: str) -> None:
    result = llm.invoke(QUESTION)
    reasoning = len(encode(REASONING)) + 1 + (1 if variant == "writes" else 0)  # tags
    answer = len(encode(ANSWER))
    assert result.usage_metadata["output_tokens"] == reasoning + answer
    assert result.usage_metadata["output_token_details"] == {"reasoning": reasoning}
    assert result.response_metadata["finish_reason"] == "stop"
    off = llm.invoke(QUESTION, thinking=False)
    assert off.usage_metadata["output_tokens"] == answer
    assert off.usage_metadata["output_token_details"] == {"reasoning": 0}


def test_max_tokens_inside_reasoning(llm: ChatSeaLion) -> None:
    result = llm.invoke(QUESTION, max_tokens=4)
    assert result.content == ""
    assert REASONING.startswith(result.additional_kwargs["reasoning_content"])
    assert result.response_metadata["finish_reason"] == "length"
    assert result.response_metadata["reasoning_incomplete"] is True
    assert result.usage_metadata["output_tokens"] == 4


def test_max_tokens_inside_answer(llm: ChatSeaLion) -> None:
    result = llm.invoke(QUESTION, max_tokens=3, thinking=False)
    assert result.content == "".join(ANSWER_PIECES[:3])
    assert result.response_metadata["finish_reason"] == "length"
    assert "reasoning_incomplete" not in result.response_metadata


def test_thinking_budget_closes_the_reasoning_and_answers(llm: ChatSeaLion, variant: str) -> None:
    budget = 4
    tag = 1 if variant == "writes" else 0  # the model's own <think> counts as reasoning
    result = llm.invoke(QUESTION, max_thinking_tokens=budget)
    cut = "".join(REASONING_PIECES[: budget - tag]).strip()
    assert split_of(result) == (cut, ANSWER)
    assert result.response_metadata["thinking_budget_reached"] is True
    assert result.usage_metadata["output_token_details"] == {"reasoning": budget}
    streamed = collect(list(llm.stream(QUESTION, max_thinking_tokens=budget)))
    assert split_of(streamed) == (cut, ANSWER)


def test_budget_larger_than_the_reasoning_changes_nothing(llm: ChatSeaLion) -> None:
    result = llm.invoke(QUESTION, max_thinking_tokens=500)
    assert split_of(result) == expected(True)
    assert "thinking_budget_reached" not in result.response_metadata


def test_stop_sequence_cuts_the_answer(llm: ChatSeaLion) -> None:
    word = ANSWER_PIECES[2]
    result = llm.invoke(QUESTION, stop=[word])
    assert split_of(result) == (REASONING, ANSWER[: ANSWER.index(word)])
    assert result.response_metadata["finish_reason"] == "stop"


def test_seed_temperature_top_p_are_accepted(llm: ChatSeaLion) -> None:
    hot = llm.invoke(QUESTION, temperature=1.0, top_p=1.0, top_k=0, seed=7)
    assert split_of(hot) == expected(True)


def test_unknown_call_option_is_a_clear_error(llm: ChatSeaLion) -> None:
    with pytest.raises(TypeError, match="unknown call options \\['thinkng'\\]"):
        llm.invoke(QUESTION, thinkng=False)


def test_context_window_error_before_generation(tiny_gguf_paths: dict[str, Any]) -> None:
    llm = ChatSeaLion.from_gguf(
        tiny_gguf_paths["writes"], n_ctx=200, llama_kwargs=LLAMA_TEST_KWARGS
    )
    assert llm.backend.context_window == 256  # rounded up to llama.cpp's multiple of 256
    long = [HumanMessage("word " * 300)]
    prompt_tokens = len(encode(llm.backend.render(GenerationRequest(to_template_messages(long)))))
    with pytest.raises(ContextWindowExceededError) as error:
        llm.invoke(long, max_tokens=10)
    message = str(error.value)
    assert f"The prompt is {prompt_tokens} tokens and max_tokens is 10" in message
    assert "context window of 256 tokens" in message
    with pytest.raises(ContextWindowExceededError, match="max_tokens is 250"):
        llm.invoke(QUESTION, max_tokens=250)
    assert split_of(llm.invoke(QUESTION, max_tokens=30)) == expected(True)
    llm.close()


def test_default_context_is_bounded_by_training(tiny_gguf_paths: dict[str, Any]) -> None:
    llm = ChatSeaLion.from_gguf(tiny_gguf_paths["writes"], llama_kwargs=LLAMA_TEST_KWARGS)
    assert (
        llm.backend.context_window == 4096
    )  # the tiny model's trained context (default cap: 8192)
    with pytest.raises(ValueError, match="more than the 4096 tokens"):
        ChatSeaLion.from_gguf(tiny_gguf_paths["writes"], n_ctx=10_000).load()
    llm.close()


def test_missing_file_is_a_clear_error(tmp_path: Any) -> None:
    with pytest.raises(FileNotFoundError, match="No GGUF file at"):
        ChatSeaLion.from_gguf(tmp_path / "nope.gguf")


def test_prefix_is_reused_across_calls(gguf_backends: dict[str, Any]) -> None:
    """A second call sharing a long prefix evaluates only the new tokens."""
    backend = gguf_backends["writes"]
    llm = ChatSeaLion(backend=backend, thinking=False)
    llama = backend.llama
    evaluated: list[int] = []
    original = llama.eval

    def counting_eval(tokens: Any) -> None:
        evaluated.append(len(tokens))
        original(tokens)

    shared = [SystemMessage("Context: " + "lorem ipsum dolor " * 100)]
    llama.eval = counting_eval
    try:
        llm.invoke([*shared, HumanMessage("first question")])
        first_prompt = evaluated[0]
        evaluated.clear()
        llm.invoke([*shared, HumanMessage("second question")])
    finally:
        del llama.eval
    assert first_prompt > 300
    assert evaluated[0] < 20  # only the differing tail of the prompt


# -- concurrency ------------------------------------------------------------------------


def test_sixteen_threads_on_one_instance(llm: ChatSeaLion) -> None:
    def call(i: int) -> tuple[str, str]:
        return split_of(llm.invoke([HumanMessage(f"Hello {i}")], thinking=i % 2 == 0))

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(call, range(16)))
    assert results == [expected(i % 2 == 0) for i in range(16)]


async def test_sixteen_concurrent_ainvokes_off_the_event_loop(llm: ChatSeaLion) -> None:
    loop_thread = threading.get_ident()
    generating_threads: set[int] = set()
    backend = llm.backend
    real_stream = backend.stream

    def recording_stream(request: GenerationRequest) -> Any:
        generating_threads.add(threading.get_ident())
        yield from real_stream(request)

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    backend.stream = recording_stream
    tick_task = asyncio.create_task(ticker())
    try:
        results = await asyncio.gather(
            *(llm.ainvoke([HumanMessage(f"Hi {i}")], thinking=i % 2 == 1) for i in range(16))
        )
    finally:
        tick_task.cancel()
        del backend.stream
    assert [split_of(r) for r in results] == [expected(i % 2 == 1) for i in range(16)]
    assert loop_thread not in generating_threads and len(generating_threads) >= 2
    assert ticks > 16  # the loop kept running while the model generated


async def test_abandoned_astream_releases_the_model(llm: ChatSeaLion) -> None:
    async for _chunk in llm.astream(QUESTION):
        break
    result = await asyncio.wait_for(llm.ainvoke(QUESTION, thinking=False), timeout=30)
    assert split_of(result) == expected(False)


# token pieces of the scripted texts, as the tiny model emits them
def _pieces(text: str) -> list[str]:
    from sealion_agents.testing import hf_tokenizer

    tokenizer = hf_tokenizer()
    return [tokenizer.decode([t]) for t in encode(text)]


REASONING_PIECES = _pieces(REASONING)
ANSWER_PIECES = _pieces(ANSWER)


def test_user_template_overrides_the_stored_one(tiny_gguf_paths: dict[str, Any]) -> None:
    """The 'writes' GGUF driven by the 'prefilled' template: the prompt now holds <think>."""
    from sealion_agents.testing import TEMPLATES

    llm = ChatSeaLion.from_gguf(
        tiny_gguf_paths["writes"],
        chat_template=TEMPLATES["prefilled"],
        llama_kwargs=LLAMA_TEST_KWARGS,
    )
    prompt = llm.backend.render(GenerationRequest(to_template_messages(QUESTION)))
    assert prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n<think>")
    result = llm.invoke(QUESTION)
    assert split_of(result) == expected(True)
    assert result.usage_metadata["output_token_details"] == {"reasoning": len(REASONING_PIECES) + 1}
    llm.close()
