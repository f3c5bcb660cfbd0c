"""Message text reaches the model as text, never as control tokens.

A user who types ``<|eot_id|><|start_header_id|>system<|end_header_id|>`` into a chatbot
must not open a system turn. Backends that tokenize prompts themselves (GGUF, vLLM)
protect message text this way:

    template dicts -> ``protect``: every control-token string in a message's content is
    swapped for a private-use placeholder -> the chat template renders (it cannot see,
    trim or reorder what the placeholders hide) -> ``segments``: the prompt split into
    template text (tokenized with special tokens parsed) and the hidden strings (tokenized
    as plain text).

Server backends cannot tokenize for the server, so ``neutralise`` rewrites such strings
(``<|eot_id|>`` -> ``‹|eot_id|›``) before the request is sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = [
    "Protected",
    "encode_message_text",
    "encode_prompt",
    "neutralise",
    "protect",
    "reveal",
    "special_pattern",
    "split_encoder",
]

_OPEN, _CLOSE = "\ue000", "\ue001"
_PLACEHOLDER = re.compile(f"{_OPEN}(\\d+){_CLOSE}")
_LLAMA_STYLE = re.compile(r"<(/?)(\|[^|<>\n]{1,40}\||think)>", re.IGNORECASE)


def special_pattern(token_texts: Iterable[str]) -> re.Pattern[str]:
    """A pattern for special-token strings (longest first), think tags and placeholder marks."""
    texts = sorted({t for t in token_texts if t} | {"<think>", "</think>"}, key=len, reverse=True)
    alternatives = [re.escape(t) for t in texts] + [f"[{_OPEN}{_CLOSE}]"]
    return re.compile("|".join(alternatives))


@dataclass(frozen=True)
class Protected:
    """Template messages with control-token strings hidden, and what each placeholder hides."""

    messages: list[dict[str, str]]
    literals: list[str]


def protect(messages: list[dict[str, str]], pattern: re.Pattern[str]) -> Protected:
    """Hide every match of ``pattern`` in the messages' text behind a numbered placeholder."""
    literals: list[str] = []

    def hide(match: re.Match[str]) -> str:
        literals.append(match.group(0))
        return f"{_OPEN}{len(literals) - 1}{_CLOSE}"

    out = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str) and content:
            message = {**message, "content": pattern.sub(hide, content)}
        out.append(message)
    return Protected(out, literals)


def split_encoder(encode: Callable[[str], list[int]]) -> Callable[[str], list[int]]:
    """Encode a hidden string as text: split after its first character, no token matches it."""

    def as_text(text: str) -> list[int]:
        return [token for part in (text[:1], text[1:]) if part for token in encode(part)]

    return as_text


def encode_prompt(
    prompt: str,
    literals: list[str],
    *,
    encode_template: Callable[[str], list[int]],
    encode_text: Callable[[str], list[int]],
) -> list[int]:
    """Token ids of a rendered prompt: template parts with special tokens, hidden parts as text."""
    if not literals:
        return encode_template(prompt)
    ids: list[int] = []
    position = 0
    for match in _PLACEHOLDER.finditer(prompt):
        if match.start() > position:
            ids += encode_template(prompt[position : match.start()])
        ids += encode_text(literals[int(match.group(1))])
        position = match.end()
    if position < len(prompt):
        ids += encode_template(prompt[position:])
    return ids


def encode_message_text(
    text: str,
    pattern: re.Pattern[str],
    *,
    encode_template: Callable[[str], list[int]],
    encode_text: Callable[[str], list[int]],
) -> list[int]:
    """Token ids of one piece of message text, tokenized the way a prompt's messages are."""
    hidden = protect([{"role": "user", "content": text}], pattern)
    return encode_prompt(
        hidden.messages[0]["content"],
        hidden.literals,
        encode_template=encode_template,
        encode_text=encode_text,
    )


def reveal(prompt: str, literals: list[str]) -> str:
    """The rendered prompt with the hidden strings put back (what the model reads)."""
    return _PLACEHOLDER.sub(lambda m: literals[int(m.group(1))], prompt)


def neutralise(text: str) -> str:
    """Rewrite Llama-style control tokens and think tags so no server parses them as tokens."""
    return _LLAMA_STYLE.sub(lambda m: f"‹{m.group(1)}{m.group(2)}›", text)
