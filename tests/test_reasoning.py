"""Unit tests of the pure reasoning parser: every way of cutting the text into chunks."""

from __future__ import annotations

import itertools

import pytest

from sealion_agents.reasoning import Phase, ReasoningParser, Split, strip_reasoning


def parse(pieces: list[str], *, in_reasoning: bool = False) -> tuple[str, str]:
    parser = ReasoningParser(in_reasoning=in_reasoning)
    parts = [parser.feed(p) for p in pieces] + [parser.finish()]
    return "".join(p.reasoning for p in parts), "".join(p.content for p in parts)


def every_split(text: str, cuts: int = 2) -> list[list[str]]:
    """All ways of cutting ``text`` at up to ``cuts`` places."""
    out = [[text]]
    for n in range(1, cuts + 1):
        for points in itertools.combinations(range(1, len(text)), n):
            bounds = (0, *points, len(text))
            out.append([text[a:b] for a, b in itertools.pairwise(bounds)])
    return out


CASES = [
    # raw output, starts in reasoning, expected reasoning, expected answer
    ("<think>Let me see.</think>The answer.", False, "Let me see.", "The answer."),
    ("<think>\nLet me see.\n</think>\n\nThe answer.", False, "Let me see.", "The answer."),
    ("\n<think>a < b</think>\n\nx</thin", False, "a < b", "x</thin"),
    ("Let me see.</think>The answer.", True, "Let me see.", "The answer."),
    ("\nLet me\nsee.\n</think>\n\nThe answer.\n", True, "Let me\nsee.", "The answer.\n"),
    ("The answer only.", False, "", "The answer only."),
    ("<thin>k", False, "", "<thin>k"),
    ("<b>bold</b> <think>x</think>", False, "", "<b>bold</b> <think>x</think>"),
    ("<think></think>Answer", False, "", "Answer"),
    ("<think>cut off in the mid", False, "cut off in the mid", ""),
    ("cut off </thi", True, "cut off </thi", ""),
    ("", False, "", ""),
    ("  ", False, "", ""),
    ("<thi", False, "", "<thi"),
]


@pytest.mark.parametrize(("raw", "in_reasoning", "reasoning", "content"), CASES)
def test_every_chunking_gives_the_same_split(
    raw: str, in_reasoning: bool, reasoning: str, content: str
) -> None:
    for pieces in every_split(raw):
        assert parse(pieces, in_reasoning=in_reasoning) == (reasoning, content), pieces


@pytest.mark.parametrize(("raw", "in_reasoning", "reasoning", "content"), CASES)
def test_character_by_character(raw: str, in_reasoning: bool, reasoning: str, content: str) -> None:
    assert parse(list(raw), in_reasoning=in_reasoning) == (reasoning, content)


def test_reasoning_streams_before_the_close_tag_arrives() -> None:
    parser = ReasoningParser()
    assert parser.feed("<think>Step one") == Split(reasoning="Step one")
    assert parser.in_reasoning
    assert parser.feed(", step two </th") == Split(reasoning=", step two")
    assert parser.feed("ink>Done") == Split(content="Done")
    assert parser.phase is Phase.ANSWER


def test_close_reasoning_for_a_budget() -> None:
    parser = ReasoningParser(in_reasoning=True)
    assert parser.feed("thinking hard </") == Split(reasoning="thinking hard")
    assert parser.close_reasoning() == Split(reasoning=" </")
    assert parser.feed("\n\nAnswer") == Split(content="Answer")


def test_strip_reasoning() -> None:
    assert strip_reasoning("<think>r</think>\n\nAnswer") == "Answer"
    assert strip_reasoning("r</think>Answer") == "Answer"
    assert strip_reasoning("Answer <think>more") == "Answer"
    assert strip_reasoning("plain") == "plain"
