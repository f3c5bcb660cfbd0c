"""Guardrails for agents: a ``create_agent`` middleware that screens a run with a ``Guard``.

Data flow (each stage only when ``Guardrails`` screens it):

* input: ``before_agent`` -> the user's turn (the user messages that end the conversation,
  joined) -> ``Guardrails.check_input`` -> unsafe: the run ends at once (``jump_to="end"``)
  with an ``AIMessage`` holding ``refusal(user text)``; no model call, no tool call;
* tools: ``wrap_tool_call`` -> the tool's ``ToolMessage`` (or the ``ToolMessage`` objects of
  a ``Command`` update) -> ``Guardrails.check_tool_result`` -> unsafe: its content becomes
  ``WITHHELD_TOOL_RESULT`` (same ``tool_call_id``, ``status="error"``, artifact dropped)
  before the model reads it;
* output: ``wrap_model_call`` -> a final answer (an ``AIMessage`` without tool calls) and the
  user's question -> ``Guardrails.check_output`` (exchange format) -> unsafe: the answer is
  replaced by ``refusal(question)`` (reasoning and structured response dropped) before it
  enters the agent's state. While this stage is on, every model step is held: its tokens
  are not streamed (the model runs tagged ``nostream``), and ``stream_mode="messages"``
  gets the step's whole message, or the refusal, when the step ends
  (``Guardrails.stream_reasoning`` does not apply: reasoning comes with its step).

A refusal's ``response_metadata`` says who blocked it: ``{"finish_reason":
"content_filter", "guard": {"stage", "model", "label", "failed"}}``. The guard's own model
calls are tagged ``nostream`` with ``internal_call_metadata()``, so they stay out of the
agent's message stream.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from langchain.agents.middleware import (
    AgentMiddleware,
    AgentState,
    ModelRequest,
    ModelResponse,
    ToolCallRequest,
    hook_config,
)
from langchain.agents.middleware.internal_call_transformer import (
    InternalCallTransformer,
    internal_call_metadata,
)
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.constants import TAG_NOSTREAM
from langgraph.runtime import Runtime
from langgraph.types import Command

from sealion_agents.guard import Verdict
from sealion_agents.guardrails import Guardrails, Stage, refusal

__all__ = ["WITHHELD_TOOL_RESULT", "GuardrailsMiddleware"]

WITHHELD_TOOL_RESULT = "The tool result was withheld by a safety check."
"""What the model reads instead of a tool result the guard found unsafe."""

ToolResult = ToolMessage | Command[Any]


class GuardrailsMiddleware(AgentMiddleware):
    """Agent middleware: the user turn, each tool result and the final answer, screened.

    ``create_sealion_agent(..., guardrails=Guardrails(guard))`` adds it; with LangChain's
    ``create_agent`` put it in ``middleware=[...]``. See the module docstring for what each
    stage does when the guard finds something unsafe.
    """

    transformers = (InternalCallTransformer,)

    def __init__(self, guardrails: Guardrails) -> None:
        """Screen agent runs with ``guardrails`` (its guard and stages)."""
        if not isinstance(guardrails, Guardrails):
            raise TypeError(
                f"GuardrailsMiddleware needs a Guardrails (Guardrails(Guard(llm), stages=...)), "
                f"not {type(guardrails).__name__}."
            )
        super().__init__()
        self.guardrails = guardrails

    # -- input: the user's turn, before anything runs -----------------------------------

    @hook_config(can_jump_to=["end"])
    def before_agent(self, state: AgentState, runtime: Runtime) -> dict[str, Any] | None:
        """Check the user's turn; unsafe: end the run with a refusal."""
        text = _user_turn(state["messages"])
        verdict = self.guardrails.check_input(text, _guard_config("input"))
        return self._ended(text, verdict)

    @hook_config(can_jump_to=["end"])
    async def abefore_agent(self, state: AgentState, runtime: Runtime) -> dict[str, Any] | None:
        """Async ``before_agent``."""
        text = _user_turn(state["messages"])
        verdict = await self.guardrails.acheck_input(text, _guard_config("input"))
        return self._ended(text, verdict)

    def _ended(self, text: str, verdict: Verdict | None) -> dict[str, Any] | None:
        if verdict is None or verdict.safe:
            return None
        return {"messages": [self.refused(text, verdict)], "jump_to": "end"}

    # -- tools: each result, before the model reads it ----------------------------------

    def wrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], ToolResult]
    ) -> ToolResult:
        """Run the tool; a result the guard finds unsafe is withheld from the model."""
        result = handler(request)
        config = _guard_config("tools")
        passing = [self.guardrails.check_tool_result(m.text, config) for m in _results(result)]
        return self._withheld(result, passing)

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolResult]],
    ) -> ToolResult:
        """Async ``wrap_tool_call``."""
        result = await handler(request)
        config = _guard_config("tools")
        passing = [
            await self.guardrails.acheck_tool_result(m.text, config) for m in _results(result)
        ]
        return self._withheld(result, passing)

    def _withheld(self, result: ToolResult, passing: list[bool]) -> ToolResult:
        """``result`` with each tool message that did not pass replaced by the note."""
        if all(passing):
            return result
        marks = iter(passing)

        def screened(message: Any) -> Any:
            if not isinstance(message, ToolMessage) or next(marks):
                return message
            return ToolMessage(
                WITHHELD_TOOL_RESULT,
                tool_call_id=message.tool_call_id,
                name=message.name,
                id=message.id,
                status="error",
                response_metadata={"guard": self._who("tools")},
            )

        if isinstance(result, ToolMessage):
            return screened(result)
        if not isinstance(result.update, dict):  # _results reads only dict updates
            return result
        update = dict(result.update)
        update["messages"] = [screened(m) for m in update["messages"]]
        return dataclasses.replace(result, update=update)

    # -- output: the final answer, before it enters the state ---------------------------

    def wrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], ModelResponse],
    ) -> ModelResponse:
        """Run the model step; a final answer the guard finds unsafe becomes a refusal."""
        response = handler(self._held(request))
        answer = _final_answer(response)
        if answer is None:
            return response
        question = _question(request.messages)
        verdict = self.guardrails.check_output(question, answer.text, _guard_config("output"))
        return self._answered(response, answer, question, verdict)

    async def awrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], Awaitable[ModelResponse]],
    ) -> ModelResponse:
        """Async ``wrap_model_call``."""
        response = await handler(self._held(request))
        answer = _final_answer(response)
        if answer is None:
            return response
        question = _question(request.messages)
        config = _guard_config("output")
        verdict = await self.guardrails.acheck_output(question, answer.text, config)
        return self._answered(response, answer, question, verdict)

    def _held(self, request: ModelRequest) -> ModelRequest:
        """The request with its model's tokens kept off the stream while answers are held."""
        model = request.model
        if not self.guardrails.holds_answer or TAG_NOSTREAM in (model.tags or []):
            return request
        held = model.model_copy(update={"tags": [*(model.tags or []), TAG_NOSTREAM]})
        return request.override(model=held)

    def _answered(
        self,
        response: ModelResponse,
        answer: AIMessage,
        question: str,
        verdict: Verdict | None,
    ) -> ModelResponse:
        if verdict is None or verdict.safe:
            return response
        refused = self.refused(question, verdict, id=answer.id)
        result = [refused if m is answer else m for m in response.result]
        return ModelResponse(result=result, structured_response=None)

    # -- what a blocked turn answers ----------------------------------------------------

    def refused(self, text: str, verdict: Verdict, *, id: str | None = None) -> AIMessage:
        """The refusal in the language of ``text``, marked with the stage that blocked."""
        who = {**self._who(verdict.stage), "label": verdict.label, "failed": verdict.failed}
        return AIMessage(
            refusal(text),
            id=id,
            response_metadata={"finish_reason": "content_filter", "guard": who},
        )

    def _who(self, stage: str) -> dict[str, Any]:
        return {"stage": stage, "model": self.guardrails.guard_name}


def _guard_config(stage: Stage) -> RunnableConfig:
    """The guard's calls: internal to the agent, never streamed as its messages."""
    return {
        "run_name": f"guardrails:{stage}",
        "tags": [TAG_NOSTREAM],
        "metadata": {"lc_source": "guardrails", "guard_stage": stage, **internal_call_metadata()},
    }


def _user_turn(messages: list[AnyMessage]) -> str:
    """The text of the user's new turn: the user messages that end the conversation."""
    turn: list[str] = []
    for message in reversed(messages):
        if not isinstance(message, HumanMessage):
            break
        turn.insert(0, message.text)
    return "\n\n".join(text for text in turn if text.strip())


def _question(messages: list[AnyMessage]) -> str:
    """The text of the last user message (what the answer answers)."""
    return next((m.text for m in reversed(messages) if isinstance(m, HumanMessage)), "")


def _final_answer(response: ModelResponse) -> AIMessage | None:
    """The response's answer to the user: an ``AIMessage`` that calls no tool."""
    return next((m for m in response.result if isinstance(m, AIMessage) and not m.tool_calls), None)


def _results(result: ToolResult) -> list[ToolMessage]:
    """The tool messages the model will read from a tool's result."""
    if isinstance(result, ToolMessage):
        return [result]
    update = result.update
    if isinstance(update, dict) and isinstance(update.get("messages"), list):
        return [m for m in update["messages"] if isinstance(m, ToolMessage)]
    return []
