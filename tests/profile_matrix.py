"""What the profile feature matrices share: the tool, the questions, replies in four modes and
the prompt a profile renders (tests/test_profiles*.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from sealion_agents import ChatSeaLion
from sealion_agents.backends.base import GenerationRequest
from sealion_agents.messages import to_template_messages
from sealion_agents.options import GenerationOptions
from sealion_agents.tool_calls import tool_specs

QUESTION = "What is the weather in Bangkok?"
FORECAST = "What is the forecast in Bangkok?"
RESULT = "It is sunny, 31 C."
#: The ways to ask for one reply (see ``reply_by``).
MODES = ["invoke", "stream", "ainvoke", "batch"]


def get_weather(city: str) -> str:
    """Look up the sky over a city."""
    return RESULT


def reply_by(llm: Any, mode: str, messages: Any, **options: Any) -> Any:
    """One reply by ``invoke``, ``stream`` (chunks summed), ``ainvoke`` or ``batch``."""
    if mode == "invoke":
        return llm.invoke(messages, **options)
    if mode == "stream":
        chunks = list(llm.stream(messages, **options))
        whole = chunks[0]
        for chunk in chunks[1:]:
            whole = whole + chunk
        return whole
    if mode == "ainvoke":
        return asyncio.run(llm.ainvoke(messages, **options))
    return llm.batch([messages, messages], **options)[1]


def rendered_prompt(
    llm: ChatSeaLion, messages: list[Any], *, tools: bool = False, **options: Any
) -> str:
    """The prompt the model reads; ``tools``: with ``get_weather`` bound (in the template's
    ``tools`` variable where the profile's format puts it there)."""
    profile = llm.sealion_profile
    specs: list[dict[str, Any]] = []
    if tools and profile.tools.tools_in_template:
        specs = profile.tools.template_tools(tool_specs([get_weather]))
    request = GenerationRequest(
        messages=to_template_messages(messages, profile),
        options=GenerationOptions(**options),
        tools=tuple(specs),
    )
    return str(llm.backend.render(request))
