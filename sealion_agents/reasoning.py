"""Split a model's raw output into reasoning and answer, streaming-safe.

Data flow: raw text pieces (any chunking; tags may be split across pieces) ->
``ReasoningParser.feed`` -> ``Split(reasoning, content)`` deltas -> ``finish``. Reasoning a
server already split out arrives through ``feed_reasoning``; the answer text after it ends
the reasoning. This is the only module that reads reasoning tags in model output.

The tags are the model profile's ``ReasoningTags``: SEA-LION R models write
``<think> ... </think>`` before the answer (``THINK_TAGS``, the default everywhere). A chat
template may pre-fill the opening tag in the prompt, in which case the output holds only
``reasoning</think>answer``: start the parser with ``in_reasoning=True`` then.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = [
    "THINK_CLOSE",
    "THINK_OPEN",
    "THINK_TAGS",
    "Phase",
    "ReasoningParser",
    "ReasoningTags",
    "Split",
    "reasoning_in",
    "strip_reasoning",
]


@dataclass(frozen=True)
class ReasoningTags:
    """The tags a model writes around its reasoning, e.g. ``<think>`` and ``</think>``."""

    open: str = "<think>"
    close: str = "</think>"
    gap: str = "\n\n"
    """What the model writes between the closing tag and its answer (where the decoder
    writes the answer's start itself: a call's opener after the reasoning)."""

    def __post_init__(self) -> None:
        for role, tag in (("opening", self.open), ("closing", self.close)):
            if not isinstance(tag, str) or not tag.strip() or tag != tag.strip():
                raise ValueError(
                    f"The {role} reasoning tag {tag!r} must be non-empty text without "
                    "surrounding whitespace, e.g. ReasoningTags(open='<think>', close='</think>')."
                )
        if self.open == self.close:
            raise ValueError(
                f"The reasoning tags are both {self.open!r}: the opening and closing tags must "
                "differ, e.g. ReasoningTags(open='<think>', close='</think>')."
            )


THINK_TAGS = ReasoningTags()
"""SEA-LION's (and DeepSeek-R1's) tags: ``<think>`` and ``</think>``."""
THINK_OPEN = THINK_TAGS.open
THINK_CLOSE = THINK_TAGS.close


class Phase(str, Enum):
    """Where the parser is in the output."""

    START = "start"  # nothing but whitespace seen yet; a <think> may still open
    REASONING = "reasoning"
    ANSWER = "answer"


@dataclass(frozen=True)
class Split:
    """One parsed delta: reasoning text and answer text (either may be empty)."""

    reasoning: str = ""
    content: str = ""

    def __bool__(self) -> bool:
        return bool(self.reasoning or self.content)


def partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``.

    Reads at most the last ``len(tag) - 1`` characters: only where ``tag``'s first
    character occurs can such a suffix begin.
    """
    first = tag[:1]
    pos = text.find(first, max(0, len(text) - len(tag) + 1)) if first else -1
    while pos >= 0:
        if tag.startswith(text[pos:]):
            return len(text) - pos
        pos = text.find(first, pos + 1)
    return 0


class ReasoningParser:
    """Incremental reasoning parser (``tags``: the profile's); one instance per generation.

    Whitespace between the reasoning and the answer is dropped, as are leading and
    trailing blanks of the reasoning. An opening tag after the answer has begun is
    ordinary answer text.

    Each piece costs time in proportion to its own length (and the tags'), never to the
    output so far: blanks held back inside the reasoning wait as a list of pieces, and
    only the held text that may begin a tag is searched again.
    """

    def __init__(self, *, in_reasoning: bool = False, tags: ReasoningTags = THINK_TAGS) -> None:
        self.tags = tags
        self.phase = Phase.REASONING if in_reasoning else Phase.START
        self._buffer = ""  # text held back: a possible partial tag (after any blanks)
        self._blanks: list[str] = []  # blank pieces held back in the reasoning, before _buffer
        self._reasoning_started = False  # leading whitespace of reasoning is dropped
        self._answer_started = False  # leading whitespace of the answer is dropped
        self._server_split = False  # reasoning arrives apart from the answer (feed_reasoning)
        self._raw: list[str] = []  # the output as the model wrote it, tags inline

    @property
    def raw(self) -> str:
        """Everything consumed so far, as the model wrote it (server-split reasoning in tags)."""
        return "".join(self._raw)

    @property
    def server_split(self) -> bool:
        """True once reasoning arrived apart from the answer (``feed_reasoning``)."""
        return self._server_split

    @property
    def in_reasoning(self) -> bool:
        """True while the output is inside the reasoning."""
        return self.phase is Phase.REASONING

    def feed_reasoning(self, text: str) -> Split:
        """Consume reasoning a server sent apart from the answer (``reasoning`` fields)."""
        if self.phase is Phase.ANSWER:
            return Split(reasoning=text)  # late reasoning: still reasoning, never answer
        if self.phase is Phase.START:
            self._buffer = ""
            self.phase = Phase.REASONING
            self._raw.append(self.tags.open)
        if not self._reasoning_started and text.lstrip().startswith(self.tags.open):
            text = text.lstrip()[len(self.tags.open) :]  # a server that kept the opening tag
        self._server_split = True
        self._raw.append(text)
        self._buffer += text
        return self._drain([], [])

    def feed(self, text: str) -> Split:
        """Consume one piece of raw output and return what can be emitted now."""
        self._raw.append(text)
        phase = self.phase
        if phase is Phase.ANSWER and self._answer_started:
            return Split(content=text)  # nothing is held back in a started answer
        if phase is Phase.REASONING and not self._server_split:
            self._buffer += text
            ready = self._reasoning_ready()
            if ready is not None:
                return Split(reasoning=ready)
            return self._drain([], [])  # the closing tag is here
        reasoning: list[str] = []
        content: list[str] = []
        if self._server_split and phase is Phase.REASONING and text:
            # answer text from a server that splits reasoning: the reasoning is over
            reasoning.append(self._reasoning_text(self._held().rstrip(), final=True))
            self._raw.insert(len(self._raw) - 1, self.tags.close)
            self._buffer = ""
            self.phase = Phase.ANSWER
        self._buffer += text
        return self._drain(reasoning, content)

    def _drain(self, reasoning: list[str], content: list[str]) -> Split:
        while True:
            if self.phase is Phase.START:
                # leading blanks are never emitted (not before a tag, nor an answer)
                stripped = self._buffer = self._buffer.lstrip()
                if not stripped:
                    return self._split(reasoning, content)
                if stripped.startswith(self.tags.open):
                    self._buffer = stripped[len(self.tags.open) :]
                    self.phase = Phase.REASONING
                    continue
                if self.tags.open.startswith(stripped):
                    return self._split(reasoning, content)  # maybe a split tag: wait
                self.phase = Phase.ANSWER
                continue
            if self.phase is Phase.REASONING:
                ready = self._reasoning_ready()
                if ready is not None:
                    reasoning.append(ready)
                    return self._split(reasoning, content)
                held = self._held()
                end = held.find(self.tags.close)
                reasoning.append(self._reasoning_text(held[:end], final=True))
                self._buffer = held[end + len(self.tags.close) :]
                self.phase = Phase.ANSWER
                continue
            # Phase.ANSWER
            text_out = self._buffer
            if not self._answer_started:
                text_out = text_out.lstrip()
                self._answer_started = bool(text_out)
            content.append(text_out)
            self._buffer = ""
            return self._split(reasoning, content)

    def _reasoning_ready(self) -> str | None:
        """The reasoning that can be emitted now, or None when the closing tag is held.

        Blanks and a possible partial closing tag are held back (the reasoning never ends
        in blanks). A tag never begins with a blank, so the held blanks need no search.
        """
        close = self.tags.close
        buffer = self._buffer
        if buffer.find(close) >= 0:
            return None
        ready = buffer[: len(buffer) - partial_suffix(buffer, close)]
        self._buffer = buffer[len(ready) :]
        body = ready.rstrip()
        if not body:
            if ready:
                self._blanks.append(ready)
            return ""
        trailing = ready[len(body) :]
        if self._blanks:
            body = "".join(self._blanks) + body
            self._blanks.clear()
        if trailing:
            self._blanks.append(trailing)
        return self._reasoning_text(body, final=False)

    def _held(self) -> str:
        """All text held back (blanks first), now as one string in ``_buffer``."""
        if self._blanks:
            self._buffer = "".join(self._blanks) + self._buffer
            self._blanks.clear()
        return self._buffer

    def close_reasoning(self) -> Split:
        """End the reasoning here (a thinking budget was reached); later text is answer."""
        out = Split()
        if self.phase is Phase.REASONING:
            out = Split(reasoning=self._reasoning_text(self._held().rstrip(), final=True))
        self._buffer = ""
        self.phase = Phase.ANSWER
        return out

    def finish(self) -> Split:
        """Flush what is held back at the end of the output."""
        held, self._buffer = self._held(), ""
        if self.phase is Phase.REASONING:
            return Split(reasoning=self._reasoning_text(held.rstrip(), final=True))
        if self.phase is Phase.START:
            self.phase = Phase.ANSWER
            return Split(content=held.strip())
        return Split(content=held if self._answer_started else held.lstrip())

    def _reasoning_text(self, text: str, *, final: bool) -> str:
        if not self._reasoning_started:
            text = text.lstrip()
            self._reasoning_started = bool(text)
        return text.rstrip() if final else text

    @staticmethod
    def _split(reasoning: list[str], content: list[str]) -> Split:
        return Split(reasoning="".join(reasoning), content="".join(content))


def reasoning_in(text: str, tags: ReasoningTags = THINK_TAGS) -> str:
    """The text of the first reasoning block (to its closing tag, or the end), else ""."""
    start = text.find(tags.open)
    if start < 0:
        return ""
    start += len(tags.open)
    end = text.find(tags.close, start)
    return text[start : end if end >= 0 else len(text)].strip()


def strip_reasoning(text: str, tags: ReasoningTags = THINK_TAGS) -> str:
    """Remove every reasoning block (``<think>...</think>``; an unclosed one too) from text."""
    out: list[str] = []
    rest = text
    while True:
        start = rest.find(tags.open)
        end = rest.find(tags.close)
        if end >= 0 and (start < 0 or end < start):
            rest = rest[end + len(tags.close) :]  # a close tag with no open tag before it
            out.clear()
            continue
        if start < 0:
            out.append(rest)
            break
        out.append(rest[:start])
        if end < 0:
            break  # unclosed reasoning runs to the end
        rest = rest[end + len(tags.close) :]
    return "".join(out).strip()
