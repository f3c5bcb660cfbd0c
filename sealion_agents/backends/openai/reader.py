"""Server stream chunks -> backend events: a pure reader, one per generation (no I/O).

Data flow: SSE lines (``data: {...}``) -> JSON chunks -> ``ChunkReader`` -> events, whichever
way the server sent the reasoning:

* a ``reasoning`` field (vLLM with ``--reasoning-parser``), or ``reasoning_content`` (older
  vLLM, llama.cpp's C++ server): ``ReasoningDelta`` events;
* inline reasoning tags (the profile's, ``<think>``) in ``content`` (no reasoning parser on
  the server): ``TextDelta``
  events, parsed by ``ReasoningParser`` like every other backend's output. When whether
  the prompt opened the reasoning is unknown, the output is held back until it shows
  (``learned`` then says what it showed).

With thinking off, text a server puts in the reasoning field is answer text (vLLM's
reasoning parser can misfile the whole answer there when the prompt already closed the
reasoning). The server's cumulative ``usage`` becomes per-event token counts.
"""

from __future__ import annotations

import json
from typing import Any

from sealion_agents.backends.base import Event, Finished, PromptInfo, ReasoningDelta, TextDelta
from sealion_agents.errors import ServerError
from sealion_agents.reasoning import THINK_TAGS, ReasoningTags

__all__ = ["ChunkReader"]


class ChunkReader:
    """Turn the server's stream chunks into backend events (one reader per generation).

    ``opens``: whether the prompt ends inside the reasoning (None: unknown; the output is
    held back until it shows). Server-split reasoning becomes ``ReasoningDelta`` events;
    tags in ``content`` stay as they are, for the reasoning parser. ``tags``: the reasoning
    tags of the model's profile.
    """

    def __init__(
        self,
        *,
        thinking: bool,
        opens: bool | None,
        continuing: bool,
        tags: ReasoningTags = THINK_TAGS,
    ) -> None:
        self.thinking = thinking
        self.tags = tags
        self.opens: bool | None = opens if thinking else False
        if continuing and self.opens is None:
            self.opens = False  # a continuation keeps the first prompt's parser anyway
        self.learned: bool | None = None  # what the output showed about the prompt
        self.prompt_tokens = 0
        self.finish_reason: str | None = None
        self.done = False
        self._started = False
        self._in_split_reasoning = False  # the server is sending reasoning in its own field
        self._held: list[TextDelta | ReasoningDelta] = []
        self._completion = 0  # cumulative completion tokens the server reported
        self._produced = 0

    def feed_line(self, line: str) -> list[Event]:
        """Consume one SSE line."""
        if not line.startswith("data:"):
            return []
        data = line[5:].strip()
        if data == "[DONE]":
            self.done = True
            return []
        chunk = json.loads(data)
        if "error" in chunk and not chunk.get("choices"):
            error = chunk["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            raise ServerError(f"the server reported an error mid-stream: {message}")
        return self.feed_chunk(chunk)

    def feed_chunk(self, chunk: dict[str, Any]) -> list[Event]:
        """Consume one parsed chunk."""
        events: list[Event] = []
        usage = chunk.get("usage") or {}
        if not self._started:
            self._started = True
            self.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            if self.opens is not None:
                events.append(PromptInfo(self.prompt_tokens, opens_reasoning=self.opens))
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or choice.get("message") or {}
            reasoning = delta.get("reasoning") or delta.get("reasoning_content") or ""
            content = delta.get("content") or ""
            tokens = self._tokens(usage, bool(reasoning or content))
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
                if self.finish_reason == "stop" and "completion_tokens" in usage:
                    tokens = max(0, tokens - 1)  # the server counted the end-of-turn token
                elif not (reasoning or content):
                    tokens = 0
            for piece in self._pieces(reasoning, content, tokens):
                events += self._route(piece)
        return events

    def finish(self) -> list[Event]:
        """The closing events once the stream has ended."""
        events: list[Event] = []
        if not self._started:
            events.append(PromptInfo(0, opens_reasoning=bool(self.opens)))
        if self.opens is None:  # the reply never showed reasoning
            events += self._release(False)
        reason = "length" if self.finish_reason == "length" else "stop"
        events.append(Finished(reason=reason, completion_tokens=self._produced))
        return events

    def _tokens(self, usage: dict[str, Any], has_text: bool) -> int:
        completion = usage.get("completion_tokens")
        if completion is None:
            return 1 if has_text else 0
        tokens = max(0, int(completion) - self._completion)
        self._completion = int(completion)
        return tokens

    def _pieces(
        self, reasoning: str, content: str, tokens: int
    ) -> list[TextDelta | ReasoningDelta]:
        """The chunk's events, its tokens shared out between reasoning and answer."""
        if not (reasoning or content):
            return []
        if not self.thinking:
            return [TextDelta(reasoning + content, tokens)]  # thinking off: it is all answer
        pieces: list[TextDelta | ReasoningDelta] = []
        if reasoning and not self._in_split_reasoning and reasoning.startswith(self.tags.open):
            # vLLM's reasoning parser keeps the tag when it arrives in one chunk with more
            # tokens (a busy server batches its deltas): the tag is not reasoning text
            reasoning = reasoning[len(self.tags.open) :]
        if reasoning:
            self._in_split_reasoning = True
            pieces.append(ReasoningDelta(reasoning, tokens if not content else max(0, tokens - 1)))
            tokens = min(tokens, 1) if content else 0
        if content:
            if self._in_split_reasoning and not reasoning and tokens > 1:
                # the server swallowed the closing tag's token: count it with the reasoning
                pieces.append(ReasoningDelta("", tokens - 1))
                tokens = 1
            self._in_split_reasoning = False
            pieces.append(TextDelta(content, tokens))
        return pieces

    def _route(self, piece: TextDelta | ReasoningDelta) -> list[Event]:
        if self.opens is not None:
            self._produced += piece.tokens
            return [piece]
        self._held.append(piece)
        held = "".join(p.text for p in self._held if isinstance(p, TextDelta))
        if isinstance(piece, ReasoningDelta) or held.lstrip().startswith(self.tags.open):
            self.learned = False  # the output opened the reasoning itself
            return self._release(False)
        if self.tags.close in held:
            self.learned = True  # reasoning closed that never opened: the prompt opened it
            return self._release(True)
        return []

    def _release(self, opens: bool) -> list[Event]:
        self.opens = opens
        events: list[Event] = [PromptInfo(self.prompt_tokens, opens_reasoning=opens)]
        for piece in self._held:
            self._produced += piece.tokens
            events.append(piece)
        self._held = []
        return events
