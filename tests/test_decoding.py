"""Unit tests of the pure turn decoder: events in, LangChain chunks out."""

from __future__ import annotations

from langchain_core.messages import AIMessageChunk

from sealion_agents.backends.base import (
    Finished,
    GenerationRequest,
    PromptInfo,
    ReasoningDelta,
    TextDelta,
)
from sealion_agents.decoding import CLOSE_REASONING, TurnDecoder


def run(decoder: TurnDecoder, tokens: list[str], *, opens: bool = False, reason: str = "stop"):
    chunks = decoder.feed(PromptInfo(prompt_tokens=7, opens_reasoning=opens))
    for token in tokens:
        chunks += decoder.feed(TextDelta(text=token))
        if decoder.interrupted:
            break
    else:
        chunks += decoder.feed(Finished(reason=reason))
    return chunks


def merged(chunks) -> AIMessageChunk:
    message = chunks[0].message
    for chunk in chunks[1:]:
        message = message + chunk.message
    return message


def test_reasoning_and_answer_are_separate_and_usage_counts_reasoning() -> None:
    decoder = TurnDecoder(model_name="m")
    tokens = ["\n", "<think>", "Hmm", ",", " ok", "</think>", "\n\n", "Hi", "!"]
    message = merged(run(decoder, tokens) + decoder.finish())
    assert message.content == "Hi!"
    assert message.additional_kwargs["reasoning_content"] == "Hmm, ok"
    assert message.usage_metadata == {
        "input_tokens": 7,
        "output_tokens": 9,
        "total_tokens": 16,
        "output_token_details": {"reasoning": 5},
    }
    assert message.response_metadata["finish_reason"] == "stop"
    assert "reasoning_incomplete" not in message.response_metadata


def test_max_tokens_inside_reasoning_gives_empty_content_and_says_so() -> None:
    decoder = TurnDecoder(model_name="m")
    message = merged(run(decoder, ["<think>", "long", " road"], reason="length") + decoder.finish())
    assert message.content == ""
    assert message.additional_kwargs["reasoning_content"] == "long road"
    assert message.response_metadata["finish_reason"] == "length"
    assert message.response_metadata["reasoning_incomplete"] is True


def test_stop_sequence_cuts_the_answer_not_the_reasoning() -> None:
    decoder = TurnDecoder(model_name="m", stop=["END"])
    tokens = ["Think", " END", " here", "</think>", "Answer", " E", "ND", " more"]
    message = merged(run(decoder, tokens, opens=True) + decoder.finish())
    assert message.additional_kwargs["reasoning_content"] == "Think END here"
    assert message.content == "Answer "
    assert message.response_metadata["finish_reason"] == "stop"


def test_budget_interrupts_and_continues_the_same_turn() -> None:
    decoder = TurnDecoder(model_name="m", max_thinking_tokens=3, max_tokens=50)
    chunks = run(decoder, ["<think>", "a", " b", " c", " d"])
    assert decoder.interrupted
    request = GenerationRequest(messages=[{"role": "user", "content": "q"}])
    follow = decoder.next_request(request)
    assert follow is not None
    assert follow.assistant_prefix == "<think>a b" + CLOSE_REASONING
    assert follow.max_tokens == 47
    chunks += decoder.feed(PromptInfo(prompt_tokens=12))
    for token in ["\n\n", "Done", "."]:
        chunks += decoder.feed(TextDelta(text=token))
    chunks += decoder.feed(Finished(reason="stop"))
    assert decoder.next_request(follow) is None
    message = merged(chunks + decoder.finish())
    assert message.additional_kwargs["reasoning_content"] == "a b"
    assert message.content == "Done."
    assert message.response_metadata["thinking_budget_reached"] is True
    assert message.usage_metadata["input_tokens"] == 7
    assert message.usage_metadata["output_tokens"] == 6
    assert message.usage_metadata["output_token_details"] == {"reasoning": 3}


def test_server_split_reasoning_field_is_reasoning() -> None:
    decoder = TurnDecoder(model_name="m")
    decoder.feed(PromptInfo(prompt_tokens=1))
    chunks = decoder.feed(ReasoningDelta(text="thought"))
    chunks += decoder.feed(TextDelta(text="answer"))
    message = merged(chunks + decoder.finish())
    assert message.additional_kwargs["reasoning_content"] == "thought"
    assert message.content == "answer"
    assert message.usage_metadata["output_token_details"] == {"reasoning": 1}


def test_merged_piece_across_the_close_tag_counts_its_answer_token() -> None:
    """A server that lags merges "</think>" and the answer's first token into one chunk."""
    decoder = TurnDecoder(model_name="m")
    decoder.feed(PromptInfo(prompt_tokens=1, opens_reasoning=True))
    decoder.feed(TextDelta(text="plan", tokens=1))
    decoder.feed(TextDelta(text="</think>Hi", tokens=2))
    decoder.feed(TextDelta(text=" there", tokens=1))
    message = merged(decoder.finish())
    assert message.usage_metadata["output_token_details"] == {"reasoning": 2}
    assert message.usage_metadata["output_tokens"] == 4


def test_server_reasoning_that_kept_its_opening_tag() -> None:
    decoder = TurnDecoder(model_name="m")
    decoder.feed(PromptInfo(prompt_tokens=1))
    chunks = decoder.feed(ReasoningDelta(text="<think>The plan"))
    chunks += decoder.feed(TextDelta(text="Done"))
    message = merged(chunks + decoder.finish())
    assert message.additional_kwargs["reasoning_content"] == "The plan"
    assert message.content == "Done"
