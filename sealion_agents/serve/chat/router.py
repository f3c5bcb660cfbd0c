"""The routes of the OpenAI-compatible API, each one call of :class:`ChatServing`.

data flow: request -> ``Caller`` (key, rate) -> ``read_body`` (bounded JSON, validated)
-> the ``ChatServing`` of the app (``app.state.chat``) -> JSON or a stream.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from sealion_agents.serve.chat.serving import ChatServing
from sealion_agents.serve.deps import Caller, read_body
from sealion_agents.serve.openai_protocol import ChatRequest, TokenizeRequest

__all__ = ["Chat", "chat_serving", "router"]

router = APIRouter()


async def chat_serving(request: Request) -> ChatServing:
    """The app's :class:`ChatServing`."""
    serving: ChatServing = request.app.state.chat
    return serving


Chat = Annotated[ChatServing, Depends(chat_serving)]
"""A route parameter: the app's :class:`ChatServing`."""


@router.get("/v1/models")
async def models(key: Caller, chat: Chat) -> dict[str, Any]:
    """The chat model and a ``qa/<collection>`` model per collection of the caller."""
    return chat.models(key)


@router.post("/v1/chat/completions")
async def chat_completions(request: Request, key: Caller, chat: Chat) -> Any:
    """A chat completion (or its stream) from the chat model or a ``qa/`` model."""
    body = await read_body(request, ChatRequest)
    return await chat.create_completion(request, body, key)


@router.post("/tokenize")
async def tokenize(request: Request, key: Caller, chat: Chat) -> dict[str, Any]:
    """The count of a text by the model's own tokenizer (vLLM's ``/tokenize``, text form)."""
    body = await read_body(request, TokenizeRequest, chat.tokenize_limit())
    return await chat.tokenize(body, key)
