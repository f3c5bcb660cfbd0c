"""The request bodies of the document API, and ``/ask``'s as GroundedQA's input.

data flow: JSON body -> :class:`AskRequest` (validated; unknown fields ignored) ->
``ask_input`` -> the question with its history (LangChain messages) and the options it set
(``GenerationOptions``' names, mapped as a chat request's are).
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from pydantic import BaseModel, Field

from sealion_agents.serve.openai_protocol import RequestError, RequestOptions, request_options

__all__ = ["AskRequest", "NewCollection", "Turn", "ask_input"]


class NewCollection(BaseModel):
    """``POST /v1/collections``."""

    name: str = Field(min_length=1, max_length=200)


class Turn(BaseModel):
    """One earlier turn of the conversation."""

    role: str
    content: str


class AskRequest(RequestOptions):
    """``POST /v1/collections/{name}/ask``; its generation options go to the answer step."""

    question: str = Field(min_length=1, max_length=8000)
    history: list[Turn] = Field(default_factory=list)
    stream: bool = False


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
    options = request_options(body).model_dump(exclude_unset=True)
    return {"question": body.question, "history": _history(body.history)}, options
