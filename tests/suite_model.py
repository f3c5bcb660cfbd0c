"""The model the shared test engines and servers serve: the scripted agent, plus scripts for
langchain-tests' tool-calling prompts (a call with the arguments each test checks).

Ordinary prompts get the default script (``REASONING`` / ``ANSWER``), so every other test
reads the same replies as from ``tiny_gguf``.
"""

from __future__ import annotations

from pathlib import Path

from sealion_agents import testing as tm
from sealion_agents.testing import EOT_ID, THINK_CLOSE_ID, Preference, Rule, call_rules, encode


def suite_rules() -> list[Rule | Preference]:
    """``agent_rules`` plus langchain-tests' queries (magic_function(3), the pirate greeting,
    the weather in San Francisco and its answer, unicode customer names)."""
    rules = tm.agent_rules()
    rules += call_rules('{"name":"magic_function","parameters":{"input":3}}', [")?"])
    rules += call_rules(
        '{"name":"greeting_generator","parameters":{"answer_style":"pirate"}}', [" Pirate"]
    )
    rules += call_rules(
        '{"name":"get_weather","parameters":{"location":"San Francisco"}}', [" Francisco"]
    )
    rules.append(
        Rule([THINK_CLOSE_ID, *encode("It is sunny there."), EOT_ID], when={" Francisco", " sunny"})
    )
    for marker, name in ((" Chinese", "你好啊集团"), (" Japanese", "こんにちは株式会社")):
        call = '{"name":"unicode_customer","parameters":{"customer_name":"' + name
        rules += call_rules(call, [marker], end=False)
    return rules


def suite_gguf(variant: str = "writes") -> Path:
    return tm.tiny_rules_gguf("suite", suite_rules(), variant)


def suite_hf_folder(variant: str = "writes") -> Path:
    return tm.tiny_rules_hf_folder("suite", suite_rules(), variant)
