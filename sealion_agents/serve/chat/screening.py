"""The guard around a chat completion: the request screened before, the reply after.

``screen_request`` checks the last user turn (stage ``input``) and the tool results sent
after it (stage ``tools``); ``screen_reply`` checks the reply's text with the user turn it
answers (stage ``output``). A ``Blocked`` becomes an OpenAI-shaped answer whose content is
the refusal, in the user's language, with ``finish_reason: "content_filter"`` and a
``sealion`` field that says which check blocked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from sealion_agents.guardrails import Guardrails, refusal

__all__ = ["CONTENT_FILTER", "Blocked", "last_user_text", "screen_reply", "screen_request"]

CONTENT_FILTER = "content_filter"
"""OpenAI's ``finish_reason`` for an answer a safety filter withheld."""


@dataclass(frozen=True)
class Blocked:
    """A turn the guard refused: where, by which model, and what the caller is told."""

    stage: str
    guard: str
    refusal: str

    def message(self) -> AIMessage:
        """The refusal as the reply."""
        return AIMessage(self.refusal, response_metadata={"finish_reason": CONTENT_FILTER})

    def extra(self) -> dict[str, Any]:
        """What a blocked completion adds: which check blocked, and which guard."""
        return {
            "sealion": {"status": "blocked", "blocked_stage": self.stage, "blocked_by": self.guard}
        }


def last_user_text(messages: list[BaseMessage]) -> str:
    """The text of the last user turn ("" when there is none)."""
    return next((m.text for m in reversed(messages) if isinstance(m, HumanMessage)), "")


async def screen_request(
    rails: Guardrails, messages: list[BaseMessage], default_language: str
) -> Blocked | None:
    """The last user turn, then each tool result after it; the first that is unsafe."""
    user = last_user_text(messages)
    verdict = await rails.acheck_input(user)
    if verdict is not None and not verdict.safe:
        return _blocked("input", rails, user, default_language)
    after_user = _after_last_user(messages)
    for message in after_user:
        if isinstance(message, ToolMessage) and not await rails.acheck_tool_result(message.text):
            return _blocked("tools", rails, user, default_language)
    return None


async def screen_reply(
    rails: Guardrails, messages: list[BaseMessage], reply: str, default_language: str
) -> Blocked | None:
    """The reply's text, with the user turn it answers."""
    user = last_user_text(messages)
    verdict = await rails.acheck_output(user, reply)
    if verdict is not None and not verdict.safe:
        return _blocked("output", rails, user, default_language)
    return None


def _after_last_user(messages: list[BaseMessage]) -> list[BaseMessage]:
    for i in range(len(messages) - 1, -1, -1):
        if isinstance(messages[i], HumanMessage):
            return messages[i + 1 :]
    return messages


def _blocked(stage: str, rails: Guardrails, user: str, default_language: str) -> Blocked:
    return Blocked(stage, rails.guard_name, refusal(user, default=default_language))
