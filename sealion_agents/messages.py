"""Convert LangChain messages into chat-template dicts.

Data flow: ``BaseMessage`` list + the model's profile -> ``[{"role": ..., "content": ...}]``.
Reasoning from earlier assistant turns (``reasoning_content``, reasoning blocks, inline
``<think>`` tags) is removed from the text; a profile that keeps it (``keeps_reasoning``)
gets it back as the turn's ``reasoning_content``, which its chat template renders. Tool calls
and results follow the profile's ``ToolFormat``: calls in the assistant's text as the model
writes them, results in the format's role (``ipython`` for Llama 3.1; ``tool``; ``user``
for Gemma, whose template allows only alternating turns: consecutive results are joined).
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

from sealion_agents.profiles import ModelProfile
from sealion_agents.reasoning import THINK_TAGS, ReasoningTags, reasoning_in, strip_reasoning
from sealion_agents.tool_formats import JSON_CALLS, ToolFormat

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


def _role_of(message: BaseMessage, tool_format: ToolFormat) -> str:
    if isinstance(message, HumanMessage):
        return "user"
    if isinstance(message, AIMessage):
        return "assistant"
    if isinstance(message, SystemMessage):
        return "system"
    if isinstance(message, ToolMessage):
        return tool_format.result_role
    if isinstance(message, ChatMessage):
        return message.role
    raise ValueError(
        f"Unsupported message type {type(message).__name__}: use System, Human, AI, Tool "
        "or ChatMessage."
    )


def _reasoning_of(message: AIMessage, tags: ReasoningTags) -> str:
    """An earlier turn's reasoning: its field, its reasoning blocks or its inline tags."""
    field = message.additional_kwargs.get("reasoning_content")
    if isinstance(field, str) and field.strip():
        return field.strip()
    parts: list[str] = []
    if isinstance(message.content, list):
        for block in message.content:
            if isinstance(block, dict) and block.get("type") in _REASONING_BLOCK_TYPES:
                parts.append(str(block.get("reasoning") or block.get("thinking") or ""))
        text = "".join(b for b in message.content if isinstance(b, str))
    else:
        text = message.content
    if not parts:
        return reasoning_in(text, tags)
    return "".join(parts).strip()


def to_template_messages(
    messages: Sequence[BaseMessage], profile: ModelProfile | None = None
) -> list[dict[str, str]]:
    """Turn LangChain messages into the role/content dicts a chat template renders."""
    if not messages:
        raise ValueError("No messages to send: pass at least one message.")
    tool_format = profile.tools if profile is not None else JSON_CALLS
    keeps_reasoning = profile is not None and profile.keeps_reasoning
    tags = profile.reasoning_tags if profile is not None else THINK_TAGS
    out: list[dict[str, str]] = []
    for message in messages:
        role = _role_of(message, tool_format)
        text = _text_of(message.content, role=role)
        entry = {"role": role, "content": text}
        if role == "assistant":
            entry["content"] = strip_reasoning(text, tags)
            if isinstance(message, AIMessage) and message.tool_calls:
                calls = tool_format.format_calls(message.tool_calls)
                entry["content"] = (entry["content"] + "\n" if entry["content"] else "") + calls
            if keeps_reasoning and isinstance(message, AIMessage):
                reasoning = _reasoning_of(message, tags)
                if reasoning:
                    entry["reasoning_content"] = reasoning
        if isinstance(message, ToolMessage):
            if message.status == "error":
                entry["content"] = f"Error: {text}"
            entry["content"] = tool_format.result_text(entry["content"])
            entry["tool_call_id"] = message.tool_call_id  # servers want it with role "tool"
            previous = out[-1] if out else None
            if role == "user" and previous is not None and previous.get("tool_call_id"):
                # a template of alternating turns: results of one turn's calls in one message
                previous["content"] += "\n\n" + entry["content"]
                continue
        out.append(entry)
    return out
