r"""The suite model (``tests.suite_model``) as a Qwen-family model: langchain-tests' scenarios,
written the Qwen way, in a Qwen3-architecture GGUF with ``QWEN_TEMPLATE``.

Data flow: the scenarios below -> prompt-keyed rules (``<|im_end|>`` ends each turn) ->
``build_gguf(architecture="qwen3")`` -> a cached GGUF (key: rules, template, generator code).

* ordinary prompts (the fallback): with thinking on (the prompt ends ``assistant\n``)
  ``<think>REASONING</think>\n\nANSWER``; with thinking off (the template closes an empty
  reasoning, the prompt ends ``\n\n``) ``ANSWER``, as the default model's script;
* langchain-tests' tool prompts (magic_function(3), the pirate greeting, the weather in San
  Francisco, unicode customer names): a short reasoning, then the ``<tool_call>`` opener; the
  decoder continues the turn after ``<tool_call>\n`` with the call's compact JSON (keyed on
  the opener, as ``families.family_rules`` does);
* after the San Francisco weather tool's result (``<tool_response>`` in the prompt): a reasoning
  and ``SUNNY_ANSWER``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sealion_agents.testing import files, rules, weights
from sealion_agents.testing.agent import _split_at_parameters
from sealion_agents.testing.cache import GENERATOR_VERSION, _cache_dir, build_file_once
from sealion_agents.testing.families import QWEN_TEMPLATE
from sealion_agents.testing.files import build_gguf
from sealion_agents.testing.rules import JSON_PREFERENCES, KEYED_VERSION, Preference, Rule
from sealion_agents.testing.scripts import ANSWER, REASONING
from sealion_agents.testing.vocab import (
    IM_END_ID,
    THINK_CLOSE_ID,
    THINK_OPEN_ID,
    TOOL_CALL_OPEN_ID,
    TOOL_RESPONSE_OPEN_ID,
    encode,
    encode_one,
)

#: The answer after the weather tool's result in langchain-tests' agent loop.
SUNNY_ANSWER = "It is sunny in San Francisco!"

_PROMPT_END = encode("\n")  # the last token of "<|im_start|>assistant\n" and of "<tool_call>\n"
_GAP = encode("\n\n")  # after "</think>", and the end of a thinking-off prompt


def _turn(reasoning: str, answer: list[int], when: frozenset[int] = frozenset()) -> Rule:
    r"""``<think>reasoning</think>\n\n`` then ``answer``, where ``when`` occurs."""
    thought = [THINK_OPEN_ID, *encode(reasoning), THINK_CLOSE_ID]
    return Rule([*_PROMPT_END, *thought, *_GAP, *answer], when=when)


def _call(marker: str, reasoning: str, call: str, *, end: bool = True) -> list[Rule]:
    r"""Reasoning and ``<tool_call>`` where ``marker`` occurs, then the call's compact JSON
    after the ``<tool_call>\n`` the decoder writes (unfinished when not ``end``)."""
    when = frozenset({encode_one(marker)})
    after = [IM_END_ID] if end else []
    return [
        _turn(reasoning, [TOOL_CALL_OPEN_ID], when),
        *_split_at_parameters(_PROMPT_END, call, after, when | {TOOL_CALL_OPEN_ID}),
    ]


def qwen_suite_rules() -> list[Rule | Preference]:
    """The scenarios of the module docstring; ``JSON_PREFERENCES`` end constrained replies."""
    out: list[Rule | Preference] = [_turn(REASONING, [*encode(ANSWER), IM_END_ID])]
    out += _call(
        ")?",
        "I should call the magic function.",
        '{"name":"magic_function","arguments":{"input":3}}',
    )
    out += _call(
        " Pirate",
        "I should call the greeting tool.",
        '{"name":"greeting_generator","arguments":{"answer_style":"pirate"}}',
    )
    out += _call(
        " Francisco",
        "I should look up the weather.",
        '{"name":"get_weather","arguments":{"location":"San Francisco"}}',
    )
    answered = frozenset({encode_one(" Francisco"), TOOL_CALL_OPEN_ID, TOOL_RESPONSE_OPEN_ID})
    out.append(_turn("The tool has answered.", [*encode(SUNNY_ANSWER), IM_END_ID], answered))
    for marker, name in ((" Chinese", "你好啊集团"), (" Japanese", "こんにちは株式会社")):
        call = '{"name":"unicode_customer","arguments":{"customer_name":"' + name
        out += _call(marker, "I should create the customer.", call, end=False)
    return [*out, *JSON_PREFERENCES]


def qwen_suite_gguf() -> Path:
    """The Qwen suite model as a Qwen3-architecture GGUF, built once and cached."""
    scripted = qwen_suite_rules()
    code = hashlib.sha256()
    for module in (files, rules, weights):  # the code that writes the model
        code.update(Path(str(module.__file__)).read_bytes())
    spec = {
        "generator": GENERATOR_VERSION,
        "keyed": KEYED_VERSION,
        "template": QWEN_TEMPLATE,
        "rules": [rule.spec() for rule in scripted],
        "code": code.hexdigest(),
    }
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return build_file_once(
        _cache_dir() / f"sealion-tiny-suite-qwen-qwen3-{digest}.gguf",
        lambda tmp: build_gguf(
            tmp,
            rules=scripted,
            chat_template=QWEN_TEMPLATE,
            architecture="qwen3",
            eos_token_id=IM_END_ID,
        ),
    )
