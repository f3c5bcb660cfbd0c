"""Guardrails: where a ``Guard`` screens a conversation, and what a blocked turn answers.

One ``Guardrails`` object is shared by ``GroundedQA``, the agent middleware
(``GuardrailsMiddleware``), ``sealion serve`` and the CLI. Its stages:

* ``input``: the user's question or turn, before anything else runs (prompt format);
* ``passages``: each retrieved passage, before the model reads it; an unsafe one is dropped
  and the answer says a source was withheld (prompt format: a passage is text the model is
  asked to read, where smuggled instructions hide);
* ``tools``: each tool result an agent receives, the same way (prompt format);
* ``output``: the answer, with the question it answers (exchange format), before anyone sees
  it. While this stage is on, an answer is held until it passes; its reasoning is held too
  unless ``stream_reasoning``.

A blocked turn answers ``refusal(text)``: a short message in the language of ``text`` (the
13 languages of ``qa.language``), never the model's words.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from langchain_core.runnables import RunnableConfig

from sealion_agents.guard import Guard, Verdict
from sealion_agents.qa.language import LANGUAGES, detect_language

__all__ = [
    "DEFAULT_STAGES",
    "STAGES",
    "Guardrails",
    "Stage",
    "parse_stages",
    "refusal",
]

Stage = Literal["input", "passages", "tools", "output"]
STAGES: tuple[Stage, ...] = ("input", "passages", "tools", "output")
DEFAULT_STAGES: frozenset[Stage] = frozenset({"input", "tools", "output"})
"""Every stage but ``passages`` (a check per retrieved passage: opt in)."""


def parse_stages(value: str | Iterable[str]) -> frozenset[Stage]:
    """Stages from ``"input,output,passages"`` (or a list of names); a clear error else."""
    names = value.split(",") if isinstance(value, str) else list(value)
    found = [name.strip().lower() for name in names if name and name.strip()]
    unknown = sorted(set(found) - set(STAGES))
    if unknown:
        raise ValueError(
            f"unknown guard stage(s) {', '.join(map(repr, unknown))}: use a comma-separated "
            f"list of {', '.join(STAGES)} (e.g. input,output,passages)"
        )
    if not found:
        raise ValueError(f"no guard stage given: name at least one of {', '.join(STAGES)}")
    return frozenset(found)  # type: ignore[arg-type]


def refusal(text: str, default: str = "en") -> str:
    """The refusal in the language of ``text`` (``default`` when unsure)."""
    if not text.strip():
        return LANGUAGES[default].refusal
    return detect_language(text, default=default).refusal


@dataclass(frozen=True)
class Guardrails:
    """A guard and the stages it screens (see the module docstring)."""

    guard: Guard
    stages: frozenset[Stage] = DEFAULT_STAGES
    stream_reasoning: bool = False
    """Show reasoning while the answer it leads to is held for the output check."""

    def __post_init__(self) -> None:
        if not isinstance(self.guard, Guard):
            raise TypeError(f"Guardrails needs a Guard, not {type(self.guard).__name__}.")
        object.__setattr__(self, "stages", parse_stages(self.stages))

    def screens(self, stage: Stage) -> bool:
        """Whether ``stage`` is checked."""
        return stage in self.stages

    @property
    def holds_answer(self) -> bool:
        """Whether answers wait for the output check before they are shown."""
        return self.screens("output")

    @property
    def shows_reasoning(self) -> bool:
        """Whether reasoning may stream before the answer has passed."""
        return self.stream_reasoning or not self.holds_answer

    @property
    def guard_name(self) -> str:
        """The guard model's name (who blocked)."""
        return self.guard.llm.model_name

    # -- checks: None (or every text passing) when the stage is off --------------------

    def check_input(self, text: str, config: RunnableConfig | None = None) -> Verdict | None:
        """The user's question or turn."""
        if not self.screens("input") or not text.strip():
            return None
        return self.guard.check(text, stage="input", config=config)

    async def acheck_input(self, text: str, config: RunnableConfig | None = None) -> Verdict | None:
        """Async ``check_input``."""
        if not self.screens("input") or not text.strip():
            return None
        return await self.guard.acheck(text, stage="input", config=config)

    def check_output(
        self, question: str, answer: str, config: RunnableConfig | None = None
    ) -> Verdict | None:
        """An answer, with the question it answers (or alone when there is none)."""
        if not self.screens("output") or not answer.strip():
            return None
        return self.guard.check(question or None, answer, stage="output", config=config)

    async def acheck_output(
        self, question: str, answer: str, config: RunnableConfig | None = None
    ) -> Verdict | None:
        """Async ``check_output``."""
        if not self.screens("output") or not answer.strip():
            return None
        return await self.guard.acheck(question or None, answer, stage="output", config=config)

    def check_passages(
        self, texts: Sequence[str], config: RunnableConfig | None = None
    ) -> list[bool]:
        """Whether each passage may be read (one batch: one engine call on vLLM)."""
        passing = [True] * len(texts)
        if not self.screens("passages"):
            return passing
        asked = [i for i, text in enumerate(texts) if text.strip()]
        if asked:
            verdicts = self.guard.batch([texts[i] for i in asked], config, stage="passages")
            for i, verdict in zip(asked, verdicts, strict=True):
                passing[i] = verdict.safe
        return passing

    def check_tool_result(self, text: str, config: RunnableConfig | None = None) -> bool:
        """Whether a tool's result may reach the model."""
        if not self.screens("tools") or not text.strip():
            return True
        return self.guard.check(text, stage="tools", config=config).safe

    async def acheck_tool_result(self, text: str, config: RunnableConfig | None = None) -> bool:
        """Async ``check_tool_result``."""
        if not self.screens("tools") or not text.strip():
            return True
        verdict = await self.guard.acheck(text, stage="tools", config=config)
        return verdict.safe
