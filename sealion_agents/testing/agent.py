"""A scripted tool-calling agent: its scenario data and the rules that make a model play it.

Data flow: a tool call (name and arguments) -> compact JSON text -> token ids -> two
:class:`~sealion_agents.testing.rules.Rule` objects keyed on the step's markers
(:func:`call_rules`); the scenario's steps (``AGENT_*``: question, passage, calls, answer) and
the call-like JSON in reasoning (``JSON_IN_REASONING_*``) -> :func:`agent_rules`, the rules of
``tiny_agent_gguf`` / ``tiny_agent_hf_folder``. The notebooks and benchmarks use the scenario
data too, so it lives here and not next to the tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sealion_agents.testing.rules import JSON_PREFERENCES, Preference, Rule
from sealion_agents.testing.scripts import default_chains
from sealion_agents.testing.vocab import (
    EOT_ID,
    NEWLINES_ID,
    THINK_CLOSE_ID,
    THINK_OPEN_ID,
    encode,
    encode_one,
)

#: The question the scripted agent answers with two tool calls (``agent_rules``).
AGENT_QUESTION = "How many days of annual leave do three employees get in total?"
#: A document passage that holds the fact the agent looks up.
AGENT_PASSAGE = "Each employee gets 14 days of annual leave per year."
#: The agent's reasoning at each of its three steps.
AGENT_REASONING = (
    "The user asks about annual leave, so I search the documents first.",
    "The policy gives 14 days each; for three people I multiply with the calculator.",
    "The calculator has answered.",
)
#: The two tool calls, as the model writes them.
AGENT_CALLS = (
    {"name": "search_documents", "args": {"query": "annual leave"}},
    {"name": "calculator", "args": {"expression": "14*3"}},
)
#: The final answer, after both tool results.
AGENT_ANSWER = "Three employees get 42 days of annual leave in total [1]."
#: The final answer as a structured response, when a response tool ``LeaveTotal`` is bound.
AGENT_RESPONSE = {"name": "LeaveTotal", "args": {"total_days": 42}}
#: A question whose reasoning is full of call-like JSON while the answer is text.
JSON_IN_REASONING_QUESTION = "Show me a JSON example."
JSON_IN_REASONING = (
    'I could write {"name":"calculator","parameters":{"expression":"2+3"}} but no tool is needed'
)
JSON_IN_REASONING_ANSWER = "Sure, an example follows."


def _call_text(call: dict[str, Any]) -> str:
    # compact JSON: its '":{"' token appears only in generated calls, never in a prompt
    return json.dumps({"name": call["name"], "parameters": call["args"]}, separators=(",", ":"))


def call_rules(call: str, markers: Iterable[int | str], *, end: bool = True) -> list[Rule]:
    """A compact JSON tool call, written after ``</think>`` where ``markers`` occur: two rules.

    ``'":"'`` appears twice in a call (after the name, then after a string argument's name)
    with different successors; the part after the parameters open is keyed on ``'":{"'`` as
    well, which is in the context by then (and in no prompt: prompts render calls with
    spaces). ``end=False`` leaves the call unfinished: constrained decoding completes it.
    """
    when = frozenset(encode_one(m) if isinstance(m, str) else int(m) for m in markers)
    return _split_at_parameters([THINK_CLOSE_ID], call, [EOT_ID] if end else [], when)


def _split_at_parameters(
    before: Sequence[int], text: str, after: Sequence[int], when: frozenset[int]
) -> list[Rule]:
    """``before`` + ``text`` (holding a compact call) + ``after`` as two rules.

    The second is keyed on ``'":{"'`` too (see ``call_rules``).
    """
    ids = encode(text)
    opener = encode_one('":{"')
    cut = ids.index(opener) + 2  # up to and including the first parameter's name
    return [
        Rule([*before, *ids[:cut]], when=when),
        Rule([*ids[cut - 1 :], *after], when=when | {opener}),
    ]


def agent_rules() -> list[Rule | Preference]:
    """Rules of a scripted agent: two tool calls, then a cited answer; JSON-friendly fallback.

    * ``AGENT_QUESTION`` -> reasoning 1, a call of ``search_documents``; once the passage
      ("14") is in the context -> reasoning 2, a call of ``calculator``; once its result
      ("42") is too -> reasoning 3 and ``AGENT_ANSWER``;
      (or, when a response tool ``LeaveTotal`` is bound, ``AGENT_RESPONSE``);
    * ``JSON_IN_REASONING_QUESTION`` -> reasoning that holds a call-like JSON, then a text answer;
    * anything else: ``REASONING`` / ``ANSWER`` as in the default model.

    ``JSON_PREFERENCES`` make every grammar-constrained reply end.
    """
    leave, fourteen, result = encode_one(" leave"), encode_one("14"), encode_one("42")
    json_marker = encode_one(" example")
    steps = [frozenset({leave}), frozenset({leave, fourteen}), frozenset({leave, fourteen, result})]
    rules: list[Rule | Preference] = [Rule(default_chains()[0])]
    for when, reasoning, call in zip(steps, AGENT_REASONING, AGENT_CALLS + (None,), strict=True):
        rules.append(
            Rule([NEWLINES_ID, THINK_OPEN_ID, *encode(reasoning), THINK_CLOSE_ID], when=when)
        )
        if call is None:
            rules.append(Rule([THINK_CLOSE_ID, *encode(AGENT_ANSWER), EOT_ID], when=when))
        else:
            rules += call_rules(_call_text(call), when)
    rules += call_rules(_call_text(AGENT_RESPONSE), steps[2] | {encode_one("Total")})
    answer = [THINK_CLOSE_ID, *encode(JSON_IN_REASONING_ANSWER), EOT_ID]
    rules += _split_at_parameters(
        [NEWLINES_ID, THINK_OPEN_ID], JSON_IN_REASONING, answer, frozenset({json_marker})
    )
    rules += JSON_PREFERENCES
    return rules
