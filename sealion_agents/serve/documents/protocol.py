"""The request bodies of the document API, and ``/ask``'s as GroundedQA's input.

data flow: JSON body -> :class:`AskRequest` (validated; unknown fields ignored) ->
``ask_input`` -> the question with its history (LangChain messages) and the chain's options.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from pydantic import BaseModel, ConfigDict, Field

from sealion_agents.serve.openai_protocol import RequestError

__all__ = ["AskRequest", "NewCollection", "Turn", "ask_input"]


class NewCollection(BaseModel):
    """``POST /v1/collections``."""

    name: str = Field(min_length=1, max_length=200)


class Turn(BaseModel):
    """One earlier turn of the conversation."""

    role: str
    content: str


class AskRequest(BaseModel):
    """``POST /v1/collections/{name}/ask``."""

    model_config = ConfigDict(extra="ignore")

    question: str = Field(min_length=1, max_length=8000)
    history: list[Turn] = Field(default_factory=list)
    stream: bool = False
    thinking: bool | None = None
    max_thinking_tokens: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=16)


def _history(turns: list[Turn]) -> list[BaseMessage]:
    out: list[BaseMessage] = []
    for i, turn in enumerate(turns):
        if turn.role == "user":
            out.append(HumanMessage(turn.content))
        elif turn.role == "assistant":
            out.append(AIMessage(turn.content))
        else:
            raise RequestError(f"history[{i}].role must be 'user' or 'assistant'", f"history[{i}]")
    return out


def ask_input(body: AskRequest) -> tuple[dict[str, Any], dict[str, Any]]:
    """GroundedQA's input (question and history) and the options the request set."""
    options: dict[str, Any] = {}
    if body.thinking is not None:
        options["thinking"] = body.thinking
    if body.max_thinking_tokens is not None:
        options["max_thinking_tokens"] = body.max_thinking_tokens
    if body.max_tokens is not None:
        options["max_tokens"] = body.max_tokens
    return {"question": body.question, "history": _history(body.history)}, options
