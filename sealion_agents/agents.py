"""Agents on SEA-LION: LangChain's ``create_agent`` with thinking chosen per step.

Data flow: ``create_sealion_agent(model, tools, ...)`` -> ``langchain.agents.create_agent``
with ``ThinkingPerStep`` first in the middleware (then ``GuardrailsMiddleware`` when
``guardrails`` is given: the user turn, tool results and the final answer screened) -> each
model step: the middleware reads the step (who spoke last, whether the call is already
decided) and sets ``thinking`` and ``max_thinking_tokens`` for that call -> ``ChatSeaLion``
(tools decoded under their schemas). Each step's reasoning stays in its ``AIMessage``'s
``reasoning_content``; the chat model never sends earlier reasoning back to the model.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain.agents.structured_output import ToolStrategy
from langchain_core.messages import HumanMessage, ToolMessage

from sealion_agents.agent_guardrails import GuardrailsMiddleware
from sealion_agents.guardrails import Guardrails

__all__ = ["ThinkingPerStep", "create_sealion_agent"]


class ThinkingPerStep(AgentMiddleware):  # type: ignore[type-arg]
    """Agent middleware: SEA-LION's thinking on or off for each model step.

    Steps come in three kinds:

    * planning: the user spoke last (default: think);
    * after tool results: the model reads them and decides the next call or answers
      (default: think);
    * filling in arguments: the call is already decided, because ``tool_choice`` names one
      tool or the only tools are the structured-response ones (default: do not think).

    ``max_thinking_tokens`` is the budget of every step that thinks (None: no budget).
    """

    def __init__(
        self,
        *,
        planning: bool = True,
        after_tool_results: bool = True,
        filling_arguments: bool = False,
        max_thinking_tokens: int | None = 1024,
    ) -> None:
        super().__init__()
        self.planning = planning
        self.after_tool_results = after_tool_results
        self.filling_arguments = filling_arguments
        self.max_thinking_tokens = max_thinking_tokens

    def step_kind(self, request: ModelRequest) -> str:  # type: ignore[type-arg]
        """The kind of step: planning, after_tool_results or filling_arguments."""
        choice = request.tool_choice
        named = isinstance(choice, dict) or (
            isinstance(choice, str) and choice not in ("auto", "any", "required", "none")
        )
        only_response = not request.tools and isinstance(request.response_format, ToolStrategy)
        if named or only_response:
            return "filling_arguments"
        last = request.messages[-1] if request.messages else None
        if isinstance(last, ToolMessage):
            return "after_tool_results"
        if last is None or isinstance(last, HumanMessage):
            return "planning"
        return "after_tool_results"

    def settings(self, request: ModelRequest) -> dict[str, Any]:  # type: ignore[type-arg]
        """The call options this step gets."""
        thinking = bool(getattr(self, self.step_kind(request)))
        settings: dict[str, Any] = {"thinking": thinking}
        if thinking and self.max_thinking_tokens is not None:
            settings["max_thinking_tokens"] = self.max_thinking_tokens
        return settings

    def wrap_model_call(
        self,
        request: ModelRequest,  # type: ignore[type-arg]
        handler: Callable[[ModelRequest], ModelResponse],  # type: ignore[type-arg]
    ) -> ModelResponse:  # type: ignore[type-arg]
        """Run the step with its thinking settings."""
        settings = {**request.model_settings, **self.settings(request)}
        return handler(request.override(model_settings=settings))

    async def awrap_model_call(
        self,
        request: ModelRequest,  # type: ignore[type-arg]
        handler: Callable[[ModelRequest], Awaitable[ModelResponse]],  # type: ignore[type-arg]
    ) -> ModelResponse:  # type: ignore[type-arg]
        """Async twin of ``wrap_model_call``."""
        settings = {**request.model_settings, **self.settings(request)}
        return await handler(request.override(model_settings=settings))


def create_sealion_agent(
    model: Any,
    tools: Sequence[Any] = (),
    *,
    thinking: ThinkingPerStep | None = None,
    guardrails: Guardrails | None = None,
    middleware: Sequence[Any] = (),
    **kwargs: Any,
) -> Any:
    """``langchain.agents.create_agent`` with ``ThinkingPerStep`` (default settings) first.

    ``guardrails`` adds ``GuardrailsMiddleware`` next, outside the other ``middleware``
    (it screens the tool results and answers they produce). Other keyword arguments
    (``system_prompt``, ``response_format``, ``checkpointer``...) go to ``create_agent``.
    """
    policy = thinking if thinking is not None else ThinkingPerStep()
    guarded = [GuardrailsMiddleware(guardrails)] if guardrails is not None else []
    return create_agent(model, list(tools), middleware=[policy, *guarded, *middleware], **kwargs)
