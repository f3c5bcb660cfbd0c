r"""Tiny models that behave like other SEA-LION families: Qwen (v4, v4.5) and Gemma (v4).

Data flow: a family's chat template (written here, behaving like the family's: its turn
tokens, its thinking switch, how it describes tools, its history rule) + the scripted
scenario ``family_rules`` -> a prompt-keyed model (``rules``) in an architecture llama.cpp and
vLLM load -> a cached GGUF or Hugging Face folder.

The scenario, for both families (``<|im_end|>`` or ``<end_of_turn>`` ends each turn):

* a greeting: with thinking on ``<think>I should greet.</think>\n\nHello!``; with thinking
  off (the template closes an empty reasoning) ``Hello!``;
* a question with the word " weather": the model reasons (thinking on) and then opens a call
  in its family's format (Qwen: ``<tool_call>``, the JSON follows the opener the decoder puts
  in the prompt: ``WEATHER_CALL``); Gemma opens a ```` ```tool_code ```` block and writes
  ``GEMMA_WEATHER_CALL`` after the opener the decoder puts in the prompt; with the word
  " forecast" the models write ``WRONG_CALL`` / ``GEMMA_WRONG_CALL`` (a number where the
  tool takes a string);
* after the tool's result (``<tool_response>`` in the Qwen prompt, "sunny" in Gemma's):
  ``SUNNY``.

The same scenario for two more profiles: ``gemma4_rules`` (family "gemma4": Gemma 4 turns,
thought channels and native ``<|tool_call>`` calls in ``GEMMA4_TEMPLATE``:
``GEMMA4_WEATHER_CALL`` / ``GEMMA4_WRONG_CALL``) and ``llama3_it_rules`` (the Llama 3 headers of
``testing.tiny_rules_gguf``, no reasoning, the same JSON calls).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sealion_agents.testing.agent import _split_at_parameters
from sealion_agents.testing.cache import (
    GENERATOR_VERSION,
    _cache_dir,
    build_file_once,
    build_folder_once,
)
from sealion_agents.testing.files import build_gguf, save_hf_folder
from sealion_agents.testing.rules import JSON_PREFERENCES, KEYED_VERSION, Preference, Rule
from sealion_agents.testing.vocab import (
    ASSISTANT_END_ID,
    ASSISTANT_START_ID,
    CHANNEL_CLOSE_ID,
    CHANNEL_OPEN_ID,
    END_OF_TURN_ID,
    EOT_ID,
    GEMMA4_CALL_CLOSE_ID,
    GEMMA4_CALL_OPEN_ID,
    GEMMA4_QUOTE_ID,
    IM_END_ID,
    INNER_PREFIX_ID,
    INNER_SUFFIX_ID,
    NEWLINES_ID,
    THINK_CLOSE_ID,
    THINK_OPEN_ID,
    TOOL_CALL_OPEN_ID,
    TOOL_RESPONSE_OPEN_ID,
    TOOLS_PREFIX_ID,
    TOOLS_SUFFIX_ID,
    TURN_CLOSE_ID,
    encode,
    encode_one,
)

__all__ = [
    "FAMILY_ARCHITECTURES",
    "as_qwen_rules",
    "FAMILY_TEMPLATES",
    "GEMMA4_TEMPLATE",
    "GEMMA4_WEATHER_CALL",
    "GEMMA4_WRONG_CALL",
    "GEMMA_WEATHER_CALL",
    "APERTUS_TEMPLATE",
    "APERTUS_WEATHER_CALL",
    "APERTUS_WRONG_CALL",
    "apertus_rules",
    "as_apertus_rules",
    "NEMOTRON_TEMPLATE",
    "NEMOTRON_WEATHER_CALL",
    "nemotron_rules",
    "qwen_vl_rules",
    "QWEN_VL_TEMPLATE",
    "GEMMA_WRONG_CALL",
    "GREETING",
    "PARAMETERS_WEATHER_CALL",
    "PARAMETERS_WRONG_CALL",
    "SUNNY",
    "WEATHER_CALL",
    "WRONG_CALL",
    "family_rules",
    "gemma4_rules",
    "llama3_it_rules",
    "tiny_family_gguf",
    "tiny_family_hf_folder",
    "tiny_family_rules_gguf",
]

GREETING = "Hello!"
SUNNY = "It is sunny in Bangkok!"
#: The calls as the models write them (compact JSON: see ``agent.call_rules``).
WEATHER_CALL = '{"name":"get_weather","arguments":{"city":"Bangkok"}}'
#: A call whose argument has the wrong type (the tool takes a string).
WRONG_CALL = '{"name":"get_weather","arguments":{"city":42}}'
#: Gemma's call, as Python in its ``tool_code`` block.
GEMMA_WEATHER_CALL = 'get_weather(city="Bangkok")'
#: Gemma's call with the wrong type (the tool takes a string).
GEMMA_WRONG_CALL = "get_weather(city=42)"
#: Gemma 4's call body, as its template writes one (after ``<|tool_call>``).
GEMMA4_WEATHER_CALL = 'call:get_weather{city:<|"|>Bangkok<|"|>}'
#: That call with the wrong type (the tool takes a string).
GEMMA4_WRONG_CALL = "call:get_weather{city:42}"
#: The call of the JSON formats (``JSON_CALLS``, ``JSON_USER_RESULTS``: "parameters"), as
#: Gemma 4 and Llama 3.1 write it.
PARAMETERS_WEATHER_CALL = '{"name":"get_weather","parameters":{"city":"Bangkok"}}'
#: That call with the wrong type (the tool takes a string).
PARAMETERS_WRONG_CALL = '{"name":"get_weather","parameters":{"city":42}}'

#: Qwen-style ChatML: tools described in the system turn, thinking switched by
#: ``enable_thinking`` (an empty reasoning closes the prompt when off), earlier reasoning kept
#: in the history when ``reasoning_content`` is given (Qwen3.6's "thinking preservation"),
#: tool results as ``<tool_response>`` in a user turn. Calls of earlier turns arrive as
#: content text; a ``tool_calls`` field would be written as ``<tool_call>`` blocks.
QWEN_TEMPLATE = (
    "{%- if tools %}"
    "{{- '<|im_start|>system\\n' }}"
    "{%- if messages[0].role == 'system' %}{{- messages[0].content + '\\n\\n' }}{%- endif %}"
    "{{- '# Tools\\n\\nFunctions you may call:\\n<tools>' }}"
    "{%- for tool in tools %}{{- '\\n' + (tool | tojson) }}{%- endfor %}"
    "{{- '\\n</tools>\\nWrite a call as a JSON object with name and arguments in tool_call "
    "tags.<|im_end|>\\n' }}"
    "{%- elif messages[0].role == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'user' %}"
    "{{- '<|im_start|>user\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- elif message.role == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if message.reasoning_content %}"
    "{{- '<think>' + message.reasoning_content + '</think>\\n\\n' }}"
    "{%- endif %}"
    "{{- message.content }}"
    "{%- for call in message.tool_calls or [] %}"
    "{{- '<tool_call>\\n' + (call.function | tojson) + '\\n</tool_call>' }}"
    "{%- endfor %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- elif message.role == 'tool' %}"
    "{{- '<|im_start|>user\\n<tool_response>\\n' + message.content + "
    "'\\n</tool_response><|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
)

#: Gemma-style turns: no system role (a system message opens the first user turn), no
#: thinking switch, strictly alternating user and model turns (else the template raises).
GEMMA_TEMPLATE = (
    "{{- bos_token }}"
    "{%- set first = messages[0].content + '\\n\\n' if messages[0].role == 'system' else '' %}"
    "{%- set turns = messages[1:] if messages[0].role == 'system' else messages %}"
    "{%- for message in turns %}"
    "{%- if (message.role == 'user') != (loop.index0 % 2 == 0) %}"
    "{{- raise_exception('Conversation roles must alternate user/assistant/user/...') }}"
    "{%- endif %}"
    "{%- set role = 'model' if message.role == 'assistant' else message.role %}"
    "{{- '<start_of_turn>' + role + '\\n' + (first if loop.first else '') }}"
    "{{- message.content + '<end_of_turn>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<start_of_turn>model\\n' }}{%- endif %}"
)

#: Gemma 4's turns, as its chat template writes them: ``<|turn>role\n ... <turn|>`` with a
#: native system turn (``<|think|>`` at its top when ``enable_thinking`` is true), tools declared
#: in the system turn between ``<|tool>`` and ``<tool|>`` (as JSON here; Gemma's own notation
#: there), earlier thought channels stripped from model turns, a ``tool_calls`` field written as
#: ``<|tool_call>call:name{...}`` (JSON arguments here), results in ``tool`` turns, and a
#: thinking-off prompt that closes an empty thought channel (``<|channel>thought\n<channel|>``).
GEMMA4_TEMPLATE = (
    "{{- bos_token }}"
    "{%- set thinking = enable_thinking is defined and enable_thinking %}"
    "{%- set system = messages[0].role == 'system' %}"
    "{%- if thinking or tools or system %}"
    "{{- '<|turn>system\n' + ('<|think|>' if thinking else '') }}"
    "{%- if system %}{{- messages[0].content | trim }}{%- endif %}"
    "{%- for tool in tools or [] %}"
    "{{- '<|tool>declaration:' + tool.function.name + (tool.function | tojson) + '<tool|>' }}"
    "{%- endfor %}"
    "{{- '<turn|>\n' }}"
    "{%- endif %}"
    "{%- for message in (messages[1:] if system else messages) %}"
    "{%- set role = 'model' if message.role == 'assistant' else message.role %}"
    "{%- set text = message.content %}"
    "{%- if role == 'model' and '<channel|>' in text %}"
    "{%- set text = text.split('<channel|>')[-1] %}"
    "{%- endif %}"
    "{{- '<|turn>' + role + '\n' + (text | trim) }}"
    "{%- for call in message.tool_calls or [] %}"
    "{{- '<|tool_call>call:' + call.function.name + (call.function.arguments | tojson) }}"
    "{{- '<tool_call|>' }}"
    "{%- endfor %}"
    "{{- '<turn|>\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|turn>model\n' }}"
    "{%- if not thinking %}{{- '<|channel>thought\n<channel|>' }}{%- endif %}"
    "{%- endif %}"
)

#: Nemotron-3-style ChatML (SEA-LION v4.8's base): thinking on unless ``enable_thinking`` is
#: false, the prompt opening the reasoning (``<think>\n``) or closing an empty one
#: (``<think></think>``); tools listed in the system turn; calls as ``<tool_call>`` blocks of
#: ``<function=name>`` and ``<parameter=key>`` (a ``tool_calls`` field is written so; ours come as
#: content); earlier reasoning dropped (``<think></think>`` in each earlier reply); results as
#: ``<tool_response>`` in a user turn.
NEMOTRON_TEMPLATE = (
    "{%- set thinking = not (enable_thinking is defined and enable_thinking is false) %}"
    "{%- set system = messages[0].role == 'system' %}"
    "{%- if system or tools %}"
    "{{- '<|im_start|>system\\n' + (messages[0].content if system else '') }}"
    "{%- if tools %}"
    "{{- '\\n\\n# Tools\\n\\n<tools>' }}"
    "{%- for tool in tools %}{{- '\\n' + (tool.function | tojson) }}{%- endfor %}"
    "{{- '\\n</tools>' }}"
    "{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in (messages[1:] if system else messages) %}"
    "{%- if message.role == 'user' %}"
    "{{- '<|im_start|>user\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- elif message.role == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n<think></think>' + message.content.split('</think>')[-1] }}"
    "{%- for call in message.tool_calls or [] %}"
    "{{- '<tool_call>\\n<function=' + call.function.name + '>\\n' }}"
    "{%- for key, value in call.function.arguments.items() %}"
    "{{- '<parameter=' + key + '>\\n' + (value | string) + '\\n</parameter>\\n' }}"
    "{%- endfor %}"
    "{{- '</function>\\n</tool_call>' }}"
    "{%- endfor %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- elif message.role == 'tool' %}"
    "{{- '<|im_start|>user\\n<tool_response>\\n' + message.content + "
    "'\\n</tool_response>\\n<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' + ('<think>\\n' if thinking else '<think></think>') }}"
    "{%- endif %}"
)

#: Apertus-style turns (SEA-LION v4 Apertus's base, swiss-ai's Apertus format): a system turn,
#: a developer turn that says "Deliberation: enabled" or "disabled" (``enable_thinking``) and
#: lists the tools (JSON, indented), ``<|user_start|>``/``<|assistant_start|>`` turns; the model
#: reasons between ``<|inner_prefix|>`` and ``<|inner_suffix|>`` itself; calls are a JSON list
#: of ``{name: arguments}`` between ``<|tools_prefix|>`` and ``<|tools_suffix|>``; tool outputs
#: follow in the same assistant turn as a JSON list (``[...]``), after which the model goes on;
#: earlier reasoning is dropped.
APERTUS_TEMPLATE = (
    "{{- bos_token }}"
    "{%- set thinking = enable_thinking is defined and enable_thinking %}"
    "{%- set system = messages[0].role == 'system' %}"
    "{{- '<|system_start|>' + (messages[0].content if system else '') + '<|system_end|>' }}"
    "{{- '<|developer_start|>Deliberation: ' + ('enabled' if thinking else 'disabled') }}"
    "{{- '\\nTool Capabilities: ' }}"
    "{%- if tools %}{{- tools | map(attribute='function') | list | tojson(indent=2) }}"
    "{%- else %}{{- 'disabled' }}{%- endif %}"
    "{{- '<|developer_end|>' }}"
    "{%- set turns = messages[1:] if system else messages %}"
    "{%- for message in turns %}"
    "{%- if message.role == 'user' %}"
    "{{- '<|user_start|>' + message.content + '<|user_end|>' }}"
    "{%- elif message.role == 'assistant' %}"
    "{{- '<|assistant_start|>' + message.content.split('<|inner_suffix|>')[-1] }}"
    "{%- for call in message.tool_calls or [] %}"
    "{{- '<|tools_prefix|>' + ([{call.function.name: call.function.arguments}] | tojson) }}"
    "{{- '<|tools_suffix|>' }}"
    "{%- endfor %}"
    "{%- if loop.last or turns[loop.index0 + 1].role != 'tool' %}"
    "{{- '<|assistant_end|>' }}"
    "{%- endif %}"
    "{%- elif message.role == 'tool' %}"
    "{{- '[' + (message.content | tojson) + ']\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt and turns[-1].role != 'tool' %}"
    "{{- '<|assistant_start|>' }}"
    "{%- endif %}"
)

#: Qwen3-VL-Instruct-style ChatML (SEA-LION v4 VL): Qwen's turns, tools and results, and no
#: thinking switch (an Instruct model does not reason: the template reads no variable).
QWEN_VL_TEMPLATE = QWEN_TEMPLATE[: QWEN_TEMPLATE.index("{%- if enable_thinking")] + "{%- endif %}"

FAMILY_TEMPLATES = {
    "qwen": QWEN_TEMPLATE,
    "gemma": GEMMA_TEMPLATE,
    "gemma4": GEMMA4_TEMPLATE,
    "nemotron": NEMOTRON_TEMPLATE,
    "apertus": APERTUS_TEMPLATE,
    "qwen-vl": QWEN_VL_TEMPLATE,
}
_END = {
    "qwen": IM_END_ID,
    "gemma": END_OF_TURN_ID,
    "gemma4": TURN_CLOSE_ID,
    "nemotron": IM_END_ID,
    "apertus": ASSISTANT_END_ID,
    "qwen-vl": IM_END_ID,
}


#: Where nothing is scripted, Gemma 4's model closes a string (``<|"|>``), an object, an array,
#: opens an object, then ``,`` and ``:``; and starts numbers with ``1`` (weakly).
GEMMA4_PREFERENCES = (
    Preference([GEMMA4_QUOTE_ID, 92, 60, 90, 11, 25]),
    Preference([16], logit=4.0),
)


def family_rules(family: str) -> list[Rule | Preference]:
    """The scripted scenario (module docstring) for ``family`` ("qwen", "gemma", "gemma4")."""
    if family == "gemma4":
        return gemma4_rules()
    if family == "nemotron":
        return nemotron_rules()
    if family == "apertus":
        return apertus_rules()
    if family == "qwen-vl":
        return qwen_vl_rules()
    end = _END[family]
    weather, forecast = encode_one(" weather"), encode_one(" forecast")
    sunny = encode_one(" sunny")
    prompt_end = encode("\n")  # "<|im_start|>assistant\n", "<start_of_turn>model\n"
    rules: list[Rule | Preference] = []
    if family == "qwen":
        gap = encode("\n\n")  # after "</think>", and the end of a thinking-off prompt
        result = frozenset({weather, TOOL_CALL_OPEN_ID, TOOL_RESPONSE_OPEN_ID})

        def reasoning(text: str, when: frozenset[int] = frozenset()) -> Rule:
            return Rule([*prompt_end, THINK_OPEN_ID, *encode(text), THINK_CLOSE_ID, *gap], when)

        rules += [reasoning("I should greet."), Rule([*gap, *encode(GREETING), end])]
        for marker, call in ((weather, WEATHER_CALL), (forecast, WRONG_CALL)):
            rules += [
                reasoning(
                    f"I need the{' weather' if marker == weather else ' forecast'} tool.",
                    frozenset({marker}),
                ),
                Rule([*gap, TOOL_CALL_OPEN_ID], when=frozenset({marker})),
                # the decoder continues after "<tool_call>\n": the call's JSON
                *_split_at_parameters(
                    prompt_end, call, [end], frozenset({marker, TOOL_CALL_OPEN_ID})
                ),
            ]
        rules += [
            reasoning("The tool answered.", result),
            Rule([*gap, *encode(SUNNY), end], result),
        ]
    else:
        rules += [
            Rule([*prompt_end, *encode(GREETING), end]),
            # the model opens its block; once the decoder continues after the opener, the
            # scripted "```" is not allowed: its preference starts the call, the chain ends it
            Rule([*prompt_end, *encode("```tool_code")], when=frozenset({weather})),
            Rule([*encode(GEMMA_WEATHER_CALL), end], when=frozenset({weather})),
            Rule([*prompt_end, *encode("```tool_code")], when=frozenset({forecast})),
            Rule([*encode(GEMMA_WRONG_CALL), end], when=frozenset({forecast})),
            Preference(encode(GEMMA_WEATHER_CALL)[:1]),
            Rule([*prompt_end, *encode(SUNNY), end], when=frozenset({weather, sunny})),
        ]
    return [*rules, *JSON_PREFERENCES]


def gemma4_rules() -> list[Rule | Preference]:
    r"""The scenario the Gemma 4 way (``GEMMA4_TEMPLATE``): thought channels and native calls.

    Thinking on: after ``<|turn>model\n`` the model opens ``<|channel>thought\n``, reasons,
    closes ``<channel|>`` and answers; off: the answer follows the prompt's closed empty
    channel. A call opens ``<|tool_call>`` and writes ``GEMMA4_WEATHER_CALL`` (or, for
    " forecast", ``GEMMA4_WRONG_CALL``: a number for a string) and ``<tool_call|>``; the answer
    ``SUNNY`` follows a result that holds " sunny". Every answer rule is keyed on the channel's
    "thought" token, which is in the context once a channel opened (or closed, in the prompt).
    Where nothing is scripted the model leans to close a string (``<|"|>``), then an object.
    """
    end = TURN_CLOSE_ID
    weather, forecast = encode_one(" weather"), encode_one(" forecast")
    thought, quote_end = encode_one("thought"), encode_one("kok")
    newline = encode("\n")
    rules: list[Rule | Preference] = [Rule([*newline, CHANNEL_OPEN_ID, thought, *newline])]

    def answer(reasoning: str, reply: list[int], when: frozenset[int]) -> list[Rule]:
        keyed = when | {thought}
        return [
            Rule([*newline, *encode(reasoning), CHANNEL_CLOSE_ID, *reply], keyed),
            Rule([CHANNEL_CLOSE_ID, *reply], keyed),
        ]

    rules += answer("I should greet.", [*encode(GREETING), end], frozenset())
    for marker, word, call in (
        (weather, "weather", GEMMA4_WEATHER_CALL),
        (forecast, "forecast", GEMMA4_WRONG_CALL),
    ):
        when = frozenset({marker})
        rules += answer(f"I need the {word} tool.", [GEMMA4_CALL_OPEN_ID], when)
        ids = encode(call)
        if GEMMA4_QUOTE_ID in ids:  # the closing quote follows "kok", not the opening one
            cut = ids.index(quote_end)
            rules += [
                Rule([GEMMA4_CALL_OPEN_ID, *ids[: cut + 1]], when | {thought}),
                Rule([*ids[cut:], GEMMA4_CALL_CLOSE_ID, end], when | {thought, quote_end}),
            ]
        else:
            rules.append(Rule([GEMMA4_CALL_OPEN_ID, *ids, GEMMA4_CALL_CLOSE_ID, end], when))
    rules += answer("The tool answered.", [*encode(SUNNY), end], frozenset({weather, sunny_id()}))
    return [*rules, *GEMMA4_PREFERENCES]


def sunny_id() -> int:
    """The token " sunny" (in the tool's result)."""
    return encode_one(" sunny")


#: Nemotron's call body, as its template writes one (after ``<tool_call>\n``).
NEMOTRON_WEATHER_CALL = (
    "<function=get_weather>\n<parameter=city>\nBangkok\n</parameter>\n</function>"
)


def nemotron_rules() -> list[Rule | Preference]:
    r"""The scenario the Nemotron 3 way (``NEMOTRON_TEMPLATE``): prompt-opened reasoning, XML calls.

    Thinking on: the reasoning follows the prompt's ``<think>\n`` and ends ``</think>\n\n``;
    off: the answer follows the prompt's ``<think></think>`` (``</think>`` is always followed by
    ``\n\n``). A question with " weather" opens ``<tool_call>``; after ``<tool_call>\n`` the
    model writes ``NEMOTRON_WEATHER_CALL``, keyed on tokens of the call written so far ("function",
    "=", "kok") where a token recurs with another successor (the second ``</`` is left to the
    grammar: only ``function>`` may follow there). ``SUNNY`` follows a ``<tool_response>``.
    """
    end = IM_END_ID
    weather = encode_one(" weather")
    newline, gap = encode("\n"), encode("\n\n")
    function, equals, kok = encode_one("function"), encode_one("="), encode_one("kok")
    calling = frozenset({weather, TOOL_CALL_OPEN_ID})
    ids = encode(NEMOTRON_WEATHER_CALL)
    start = ids.index(encode_one(">\n"))  # after "<function=get_weather"
    param = ids.index(equals)
    value_end = ids.index(kok)

    def reasoning(text: str, when: frozenset[int] = frozenset()) -> Rule:
        return Rule([*newline, *encode(text), THINK_CLOSE_ID, *gap], when)

    result = calling | {function, equals, kok, TOOL_RESPONSE_OPEN_ID}
    return [
        reasoning("I should greet."),
        Rule([*gap, *encode(GREETING), end]),
        reasoning("I need the weather tool.", frozenset({weather})),
        Rule([*gap, TOOL_CALL_OPEN_ID], frozenset({weather})),
        # A: "\n" (after the opener) "<function=get_weather>\n<"
        Rule([*newline, *ids[: start + 2]], calling),
        # B: "<parameter="
        Rule(ids[start + 1 : param + 1], calling | {function}),
        # C: "=city>\nBangkok\n</parameter"
        Rule(ids[param : value_end + 4], calling | {equals}),
        # D: "parameter>\n</"
        Rule(ids[value_end + 3 : value_end + 6], calling | {equals, kok}),
        reasoning("The tool answered.", result),
        Rule([*gap, *encode(SUNNY), end], result),
        *JSON_PREFERENCES,
    ]


#: Apertus's call body (after ``<|tools_prefix|>``), and one with the wrong type.
APERTUS_WEATHER_CALL = '[{"get_weather": {"city": "Bangkok"}}]'
APERTUS_WRONG_CALL = '[{"get_weather": {"city": 42}}]'


def apertus_rules() -> list[Rule | Preference]:
    r"""The scenario the Apertus way (``APERTUS_TEMPLATE``): inner sections, listed calls.

    After ``<|assistant_start|>``: with deliberation enabled (the " enabled" token in the
    developer turn) the model opens ``<|inner_prefix|>``, reasons, closes ``<|inner_suffix|>``
    and answers at once; else it answers at once. " weather": ``<|tools_prefix|>`` and
    ``APERTUS_WEATHER_CALL`` (" forecast": ``APERTUS_WRONG_CALL``), keyed on the `` {"`` token
    of the call where ``":`` recurs (the template indents the tools' JSON, so the prompt holds
    no such token); after a tool output that holds " sunny" (``\\n`` ends it), reasoning again
    when enabled and ``SUNNY``.
    """
    end = ASSISTANT_END_ID
    weather, forecast, sunny = encode_one(" weather"), encode_one(" forecast"), encode_one(" sunny")
    enabled, brace = encode_one(" enabled"), encode_one(' {"')
    output_end = encode('."]\n')[-1]  # the last token of the rendered tool output

    def reasoned(start: int, text: str, reply: list[int], when: frozenset[int]) -> list[Rule]:
        return [
            Rule(
                [start, INNER_PREFIX_ID, *encode(text), INNER_SUFFIX_ID, *reply], when | {enabled}
            ),
            Rule([start, *reply], when),
        ]

    rules: list[Rule | Preference] = [
        *reasoned(ASSISTANT_START_ID, "I should greet.", [*encode(GREETING), end], frozenset())
    ]
    for marker, word, call in (
        (weather, "weather", APERTUS_WEATHER_CALL),
        (forecast, "forecast", APERTUS_WRONG_CALL),
    ):
        when = frozenset({marker})
        rules += reasoned(ASSISTANT_START_ID, f"I need the {word} tool.", [TOOLS_PREFIX_ID], when)
        ids = encode(call)
        cut = ids.index(brace) + 1
        rules += [
            Rule([TOOLS_PREFIX_ID, *ids[:cut]], when),
            Rule([*ids[cut - 1 :], TOOLS_SUFFIX_ID, end], when | {brace}),
        ]
    rules += reasoned(
        output_end, "The tool answered.", [*encode(SUNNY), end], frozenset({weather, sunny})
    )
    return [*rules, *JSON_PREFERENCES]


def qwen_vl_rules() -> list[Rule | Preference]:
    r"""The scenario the Qwen VL Instruct way (``QWEN_VL_TEMPLATE``): no reasoning, Hermes calls.

    After ``<|im_start|>assistant\n``: ``GREETING``; with " weather" ``<tool_call>`` and, after
    the opener the decoder writes (``<tool_call>\n``), ``WEATHER_CALL`` (" forecast":
    ``WRONG_CALL``); ``SUNNY`` after a ``<tool_response>``.
    """
    end = IM_END_ID
    weather, forecast = encode_one(" weather"), encode_one(" forecast")
    newline = encode("\n")
    result = frozenset({weather, TOOL_CALL_OPEN_ID, TOOL_RESPONSE_OPEN_ID})
    rules: list[Rule | Preference] = [Rule([*newline, *encode(GREETING), end])]
    for marker, call in ((weather, WEATHER_CALL), (forecast, WRONG_CALL)):
        rules += [
            Rule([*newline, TOOL_CALL_OPEN_ID], when=frozenset({marker})),
            *_split_at_parameters(newline, call, [end], frozenset({marker, TOOL_CALL_OPEN_ID})),
        ]
    rules.append(Rule([*newline, *encode(SUNNY), end], result))
    return [*rules, *JSON_PREFERENCES]


def llama3_it_rules() -> list[Rule | Preference]:
    r"""The scenario the Llama 3.1 Instruct way (SEA-LION v3 IT: no reasoning, ``JSON_CALLS``).

    For ``testing.tiny_rules_gguf`` (Llama 3 headers): after the prompt's ``"\n\n"`` the
    reply, ended by ``<|eot_id|>``: ``GREETING``; a bare compact JSON call where " weather"
    (``PARAMETERS_WEATHER_CALL``) or " forecast" (``PARAMETERS_WRONG_CALL``) occurs; ``SUNNY``
    after a result (the ``ipython`` turn) that holds " sunny".
    """
    weather, forecast = encode_one(" weather"), encode_one(" forecast")
    result = frozenset({weather, encode_one(" sunny")})
    rules: list[Rule | Preference] = [Rule([NEWLINES_ID, *encode(GREETING), EOT_ID])]
    for marker, call in ((weather, PARAMETERS_WEATHER_CALL), (forecast, PARAMETERS_WRONG_CALL)):
        rules += _split_at_parameters([NEWLINES_ID], call, [EOT_ID], frozenset({marker}))
    rules.append(Rule([NEWLINES_ID, *encode(SUNNY), EOT_ID], result))
    return [*rules, *JSON_PREFERENCES]


#: The architecture of each family's models (Qwen3, Gemma 3), as llama.cpp and vLLM load them.
FAMILY_ARCHITECTURES = {
    "qwen": "qwen3",
    "gemma": "gemma3",
    "gemma4": "gemma3",
    "nemotron": "nemotron_h",
    "apertus": "apertus",
    "qwen-vl": "qwen3",
}


def tiny_family_gguf(family: str, *, architecture: str | None = None) -> Path:
    """The family's scripted model as a GGUF (default: in its own architecture), cached."""
    return _family_file("gguf", family, architecture)


def tiny_family_rules_gguf(family: str, rules: Sequence[Rule | Preference]) -> Path:
    """Other scripts (``rules``) in the family's architecture and template, cached."""
    return _family_file("gguf", family, None, list(rules))


def as_qwen_rules(rules: Sequence[Rule | Preference]) -> list[Rule | Preference]:
    r"""Llama-format scripts as the Qwen family writes them.

    A thinking-on reply starts after ``"\n"`` (not ``"\n\n"``), the answer after
    ``"</think>\n\n"``; a thinking-off reply starts after the prompt's ``"\n\n"`` (not after
    ``</think>``); ``<|im_end|>`` ends a turn instead of ``<|eot_id|>``.
    """
    newline, gap = encode("\n"), encode("\n\n")

    def convert(rule: Rule) -> Rule:
        chain = list(rule.chain)
        if chain[0] == NEWLINES_ID:
            chain = [*newline, *chain[1:]]
        elif chain[0] == THINK_CLOSE_ID:
            chain = [*gap, *chain[1:]]
        if THINK_CLOSE_ID in chain[1:]:
            cut = chain.index(THINK_CLOSE_ID, 1) + 1
            chain = [*chain[:cut], *gap, *chain[cut:]]
        return Rule([IM_END_ID if token == EOT_ID else token for token in chain], when=rule.when)

    return _convert_rules(rules, convert)


def _convert_rules(
    rules: Sequence[Rule | Preference], convert: Callable[[Rule], Rule]
) -> list[Rule | Preference]:
    """``rules`` with each ``Rule`` converted (preferences stay as they are)."""
    return [convert(rule) if isinstance(rule, Rule) else rule for rule in rules]


def as_apertus_rules(rules: Sequence[Rule | Preference]) -> list[Rule | Preference]:
    r"""Llama-format scripts as Apertus writes them (``APERTUS_TEMPLATE``).

    A reply starts after ``<|assistant_start|>``, with thinking on and off alike: a
    thinking-on reply (after the Llama prompt's ``"\n\n"``) is keyed on " enabled" too, a
    thinking-off one (after the prompt's ``</think>``) on " disabled" (the developer turn
    says which); ``<think>``/``</think>`` become the inner section's tokens, ``<|eot_id|>``
    ``<|assistant_end|>``.
    """
    enabled, disabled = encode_one(" enabled"), encode_one(" disabled")
    tokens = {
        THINK_OPEN_ID: INNER_PREFIX_ID,
        THINK_CLOSE_ID: INNER_SUFFIX_ID,
        EOT_ID: ASSISTANT_END_ID,
    }

    def convert(rule: Rule) -> Rule:
        chain, when = list(rule.chain), set(rule.when)
        if chain[0] == NEWLINES_ID:
            chain[0], when = ASSISTANT_START_ID, when | {enabled}
        elif chain[0] == THINK_CLOSE_ID:
            chain[0], when = ASSISTANT_START_ID, when | {disabled}
        return Rule([tokens.get(t, t) for t in chain], when=frozenset(when))

    return _convert_rules(rules, convert)


def tiny_family_hf_folder(family: str, *, architecture: str | None = None) -> Path:
    """The same model as a Hugging Face folder (vLLM), built once and cached."""
    return _family_file("hf", family, architecture)


def _family_file(
    kind: str,
    family: str,
    architecture: str | None,
    rules: list[Rule | Preference] | None = None,
) -> Path:
    if family not in FAMILY_TEMPLATES:
        raise ValueError(f"unknown family {family!r}; choose from {sorted(FAMILY_TEMPLATES)}")
    architecture = architecture or FAMILY_ARCHITECTURES[family]
    rules = family_rules(family) if rules is None else rules
    spec = {
        "generator": GENERATOR_VERSION,
        "keyed": KEYED_VERSION,
        "kind": kind,
        "family": family,
        "architecture": architecture,
        "template": FAMILY_TEMPLATES[family],
        "rules": [rule.spec() for rule in rules],  # type: ignore[misc]
        "code": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
    }
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    options: dict[str, Any] = {
        "rules": rules,
        "chat_template": FAMILY_TEMPLATES[family],
        "architecture": architecture,
        "eos_token_id": _END[family],
    }
    stem = f"sealion-tiny-{family}-{architecture}-{digest}"
    if kind == "gguf":
        return build_file_once(
            _cache_dir() / f"{stem}.gguf", lambda tmp: build_gguf(tmp, **options)
        )
    return build_folder_once(_cache_dir() / stem, lambda tmp: save_hf_folder(tmp, **options))
