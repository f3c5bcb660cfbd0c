"""The decoder's work per token does not grow with the length of the reply.

Operations are counted, not timed: the Python lines ``sealion_agents`` executes and the
characters its string methods read (``find``, ``strip``, ``startswith``... on a string:
``len`` of that string per call). Feeding 4096 tokens may cost about 4 times feeding 1024;
a rescan of everything so far would cost about 16 times.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

import sealion_agents
from sealion_agents.backends.base import (
    Event,
    Finished,
    GenerationRequest,
    PromptInfo,
    ReasoningDelta,
    TextDelta,
)
from sealion_agents.decoding import TurnDecoder
from sealion_agents.options import GenerationOptions
from sealion_agents.reasoning import ReasoningParser

PACKAGE = str(Path(sealion_agents.__file__).parent)
WORDS = [" the", " cat", " sails", " to", " Borneo", ",", " and", "\n", " it", " was"]
LINEAR = 4 * 1.1  # 4 times the tokens, with a margin for fixed costs


def words(n: int) -> Iterator[str]:
    return (WORDS[i % len(WORDS)] for i in range(n))


def reasoning_then_answer(n: int) -> list[Event]:
    """Half reasoning, half answer, one word per token."""
    return [TextDelta("<think>"), *map(TextDelta, words(n // 2)), TextDelta("</think>")] + [
        TextDelta(text) for text in words(n - n // 2 - 2)
    ]


def blank_run_in_reasoning(n: int) -> list[Event]:
    """A model that writes newlines inside its reasoning (held back: they may end it)."""
    blanks = [TextDelta("\n") for _ in range(n - 4)]
    return [TextDelta("<think>"), TextDelta("Hmm"), *blanks, TextDelta("ok"), TextDelta("</think>")]


def blanks_before_anything(n: int) -> list[Event]:
    """Blank tokens before the opening tag (they are dropped, never re-read)."""
    return [TextDelta(" ") for _ in range(n - 3)] + [
        TextDelta("<think>"),
        TextDelta("hi"),
        TextDelta("</think>"),
    ]


def server_split(n: int) -> list[Event]:
    """Reasoning a server sent apart, then the answer."""
    return [ReasoningDelta(text) for text in words(n // 2)] + [
        TextDelta(text) for text in words(n - n // 2)
    ]


def count_operations(run: Callable[[], Any]) -> tuple[int, int]:
    """(lines executed, characters read by string methods) in ``sealion_agents`` code."""
    lines = chars = 0

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal lines
        if event == "line":
            lines += 1
        return local

    def calls(frame: FrameType, event: str, arg: Any) -> Any:
        return local if frame.f_code.co_filename.startswith(PACKAGE) else None

    def c_calls(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal chars
        if event == "c_call" and frame.f_code.co_filename.startswith(PACKAGE):
            owner = getattr(arg, "__self__", None)
            if isinstance(owner, str):
                chars += len(owner)

    sys.settrace(calls)
    sys.setprofile(c_calls)
    try:
        run()
    finally:
        sys.settrace(None)
        sys.setprofile(None)
    return lines, chars


def decode(events: list[Event], plan: Any = None) -> Callable[[], None]:
    def run() -> None:
        decoder = TurnDecoder(
            model_name="m", stop=["Observation:", "\n\nUser:"], plan=plan, support="answer"
        )
        if plan is not None:  # a forced answer, constrained from its start (thinking off)
            options = GenerationOptions(thinking=False)
            decoder.first_request(GenerationRequest(messages=[], options=options))
            assert decoder._constrained
        decoder.feed(PromptInfo(prompt_tokens=7))
        for event in events:
            decoder.feed(event)
        decoder.feed(Finished(reason="stop"))
        decoder.finish()

    return run


@pytest.mark.parametrize(
    "script", [reasoning_then_answer, blank_run_in_reasoning, blanks_before_anything, server_split]
)
def test_decoder_work_per_token_does_not_grow_with_the_reply(
    script: Callable[[int], list[Event]],
) -> None:
    short_lines, short_chars = count_operations(decode(script(1024)))
    long_lines, long_chars = count_operations(decode(script(4096)))
    assert short_lines > 1024 and short_chars > 0  # the counters see the decoder's work
    assert long_lines <= LINEAR * short_lines, (short_lines, long_lines)
    assert long_chars <= LINEAR * short_chars, (short_chars, long_chars)


def test_parser_work_per_piece_does_not_grow_inside_a_long_reasoning() -> None:
    def parse(n: int) -> Callable[[], None]:
        def run() -> None:
            parser = ReasoningParser(in_reasoning=True)
            for i in range(n):
                parser.feed(" step" if i % 3 else "\n")  # words and blank lines
            parser.feed("</think>Done")
            parser.finish()

        return run

    short_lines, short_chars = count_operations(parse(1024))
    long_lines, long_chars = count_operations(parse(4096))
    assert long_lines <= LINEAR * short_lines, (short_lines, long_lines)
    assert long_chars <= LINEAR * short_chars, (short_chars, long_chars)


def test_blank_run_in_reasoning_is_kept_exactly() -> None:
    """Blanks held back in pieces come out as written when the reasoning goes on."""
    parser = ReasoningParser(in_reasoning=True)
    out = [parser.feed(piece).reasoning for piece in ["a", "\n", " ", "\n\n", "b", " </th"]]
    assert out == ["a", "", "", "", "\n \n\nb", ""]
    assert parser.feed("ink>c").content == "c"
    assert parser.raw == "a\n \n\nb </think>c"


def long_value(n: int, opener: str = "", close: str = '"}') -> list[Event]:
    """A forced answer: one string value of n - 2 words (no bracket in it until the end)."""
    head = opener + '{"story": "'
    return [TextDelta(head), *map(TextDelta, words(n - 2)), TextDelta(close)]


def _plans() -> dict[str, tuple[Any, Callable[[int], list[Event]]]]:
    from sealion_agents.tool_calls import AnswerPlan
    from sealion_agents.tool_formats import GEMMA4_CALLS, HERMES_CALLS, XML_CALLS

    spec = {
        "name": "tell",
        "description": "Tell a story.",
        "parameters": {"type": "object", "properties": {"story": {"type": "string"}}},
    }

    def tools(tool_format: Any) -> Any:
        return AnswerPlan.for_tools([spec], "any", tool_format=tool_format)

    def xml(n: int) -> list[Event]:
        body = "<function=tell>\n<parameter=story>\n"
        tail = "\n</parameter>\n</function>"
        return [TextDelta(body), *map(TextDelta, words(n - 2)), TextDelta(tail)]

    def gemma4(n: int) -> list[Event]:
        return [TextDelta('call:tell{story:<|"|>'), *map(TextDelta, words(n - 2)),
                TextDelta('<|"|>}')]  # fmt: skip

    return {
        "structured": (AnswerPlan.for_json({"type": "object"}), long_value),
        "hermes": (tools(HERMES_CALLS), lambda n: long_value(n, close='"}}')),
        "xml": (tools(XML_CALLS), xml),
        "gemma4": (tools(GEMMA4_CALLS), gemma4),
    }


@pytest.mark.parametrize("kind", ["structured", "hermes", "xml", "gemma4"])
def test_a_long_constrained_answer_is_read_once(kind: str) -> None:
    """Where a structured answer or a call ends is found without rereading it per token."""
    plan, script = _plans()[kind]
    if kind == "hermes":  # the call's JSON, with its name, in the body
        script = lambda n: long_value(n, opener='{"name": "tell", "arguments": ', close='"}}')  # noqa: E731
    short_lines, short_chars = count_operations(decode(script(1024), plan))
    long_lines, long_chars = count_operations(decode(script(4096), plan))
    decoder = TurnDecoder(model_name="m", plan=plan, support="answer")
    decoder.first_request(GenerationRequest(messages=[], options=GenerationOptions(thinking=False)))
    decoder.feed(PromptInfo(prompt_tokens=7))
    for event in script(64):
        decoder.feed(event)
    assert decoder._json_done  # the end was found
    assert long_lines <= LINEAR * short_lines, (short_lines, long_lines)
    assert long_chars <= LINEAR * short_chars, (short_chars, long_chars)
