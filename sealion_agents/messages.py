"""Convert LangChain messages into chat-template dicts.

Data flow: ``BaseMessage`` list -> ``[{"role": ..., "content": ...}]``. Reasoning from
earlier assistant turns (``reasoning_content``, reasoning blocks, inline ``<think>``
tags) is never sent back to the model. Tool calls and results follow the format that
``tool_calls`` documents: calls as JSON in the assistant's text, results in the ``ipython``
role.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from sealion_agents.reasoning import strip_reasoning
from sealion_agents.tool_calls import format_calls

__all__ = ["to_template_messages"]

_TEXT_BLOCK_TYPES = {"text", "text-plain"}
_REASONING_BLOCK_TYPES = {"reasoning", "thinking"}
_CALL_BLOCK_TYPES = {"tool_use", "tool_call", "function_call"}  # also in ``tool_calls``


def _text_of(content: str | list[Any], *, role: str) -> str:
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
            continue
        kind = block.get("type")
        if kind in _TEXT_BLOCK_TYPES:
            parts.append(block.get("text", ""))
        elif kind in _REASONING_BLOCK_TYPES or (role == "assistant" and kind in _CALL_BLOCK_TYPES):
            continue
        else:
            raise ValueError(
                f"A {role} message holds a content block of type {kind!r}; SEA-LION reads "
                "text only. Send text blocks (or a plain string) instead."
            )
    return "".join(parts)


def _role_of(message: BaseMessage) -> str:
    if isinstance(message, HumanMessage):
        return "user"
    if isinstance(message, AIMessage):
        return "assistant"
    if isinstance(message, SystemMessage):
        return "system"
    if isinstance(message, ToolMessage):
        return "ipython"  # the Llama 3.1 role for tool results
    if isinstance(message, ChatMessage):
        return message.role
    raise ValueError(
        f"Unsupported message type {type(message).__name__}: use System, Human, AI, Tool "
        "or ChatMessage."
    )


def to_template_messages(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """Turn LangChain messages into the role/content dicts a chat template renders."""
    if not messages:
        raise ValueError("No messages to send: pass at least one message.")
    out: list[dict[str, str]] = []
    for message in messages:
        role = _role_of(message)
        text = _text_of(message.content, role=role)
        if role == "assistant":
            text = strip_reasoning(text)
            if isinstance(message, AIMessage) and message.tool_calls:
                text = (text + "\n" if text else "") + format_calls(message.tool_calls)
        entry = {"role": role, "content": text}
        if isinstance(message, ToolMessage):
            if message.status == "error":
                entry["content"] = f"Error: {text}"
            entry["tool_call_id"] = message.tool_call_id  # servers want it with role "tool"
        out.append(entry)
    return out
